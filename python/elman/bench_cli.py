"""``python -m elman bench``: time elman against its peers and the machine's GEMM.

    python -m elman bench [--quick | --smoke] [--threads N] [--out PATH] [--plot PATH]
                          [--json [PATH]] [--libraries elman,reference,torch,onnxruntime,...]
    python -m elman bench --contention [--quick | --smoke] [--threads N] [--out PATH] [--json [PATH]]

Writes a markdown report (also printed on stdout) and a PNG plot, optionally a JSON dump of
every sample. Exit codes: 0 done, 1 the run failed (a peer disagreed with elman, a worker
crashed), 2 bad arguments. The suite itself is in :mod:`elman.benchmarks`; bench/README.md says
what is measured and how.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys

from ._files import write_atomically
from .benchmarks.configs import LIBRARIES, suite
from .benchmarks.harness import run_benchmark
from .benchmarks.parity import ParityError
from .benchmarks.report import write_json, write_markdown, write_plot
from .benchmarks.workers import WorkerError

__all__ = ["main", "build_parser", "default_output"]

EXIT_FAILED = 1
EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (exit 2), as in ``python -m elman``."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def default_output(contention=False):
    """bench/results.md when run from a checkout (a bench/ folder here), else elman-bench.md;
    bench/contention.md and elman-contention.md for --contention."""
    stem = "contention" if contention else "results"
    return os.path.join("bench", f"{stem}.md") if os.path.isdir("bench") else f"elman-{'contention' if contention else 'bench'}.md"


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


def _library_list(text):
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in LIBRARIES]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown {', '.join(map(repr, unknown))}: choose from "
                                         f"{','.join(LIBRARIES)}")
    # elman is what everything is compared with; keep the report's column order
    return tuple(name for name in LIBRARIES if name == "elman" or name in names)


def build_parser():
    parser = _Parser(
        prog="python -m elman bench",
        description="Time elman against its NumPy reference, torch.nn.RNN, onnxruntime's RNN "
                    "operator and, when installed (elman[peers]), OpenVINO, JAX and TF-XLA, each in its own process on the same threads, after checking that "
                    "they agree; report ms, speed-ups, GFLOP/s and the share of the machine's "
                    "float32 GEMM (the roofline).")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", dest="suite", action="store_const", const="quick", default="full",
                      help="a short run (~1-2 minutes): 3 rounds, no 'large' config, a shorter sweep")
    size.add_argument("--smoke", dest="suite", action="store_const", const="smoke",
                      help="tiny sizes and one round: checks that everything runs (timings mean nothing)")
    parser.add_argument("--contention", action="store_true",
                        help="instead of the suite: elman, torch and onnxruntime quiet and with one "
                             "busy process per CPU, and training processes side by side "
                             "(elman.benchmarks.contention; --quick and --smoke shorten it)")
    parser.add_argument("--threads", type=_positive_int, default=2,
                        help="threads of every library (default 2)")
    parser.add_argument("--libraries", type=_library_list, default=LIBRARIES, metavar="LIST",
                        help=f"comma-separated, from {','.join(LIBRARIES)} (default: all that are "
                             "installed; elman is always included)")
    parser.add_argument("--out", default=None, metavar="PATH",
                        help="the markdown report (default: bench/results.md if there is a bench/ "
                             "folder here, else elman-bench.md)")
    parser.add_argument("--plot", default=None, metavar="PATH",
                        help="the PNG plot (default: the report's path with .png)")
    parser.add_argument("--json", nargs="?", const="", default=None, metavar="PATH",
                        help="also dump every sample as JSON (default path: the report's with .json)")
    return parser


def _stem(path):
    root, ext = os.path.splitext(path)
    return root if ext.lower() == ".md" else path


def _check_writable(parser, option, path):
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        parser.error(f"{option} {path!r}: the directory {directory!r} does not exist")
    if os.path.isdir(path):
        parser.error(f"{option} {path!r} is a directory")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark with the command-line arguments argv (default sys.argv[1:])."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    out = args.out or default_output(contention=args.contention)
    plot = args.plot or _stem(out) + ".png"
    json_path = None if args.json is None else (args.json or _stem(out) + ".json")
    for option, path in (("--out", out), ("--plot", plot), ("--json", json_path)):
        if path is not None:
            _check_writable(parser, option, path)

    command = " ".join(["python -m elman bench", shlex.join(argv)]).strip()
    if args.contention:
        return _contention(args, out, json_path)
    print(f"{command}: {args.suite} run on {args.threads} threads; progress on stderr", file=sys.stderr)
    try:
        results = run_benchmark(suite(args.suite), threads=args.threads, libraries=args.libraries,
                                command=command)
    except (ParityError, WorkerError) as error:
        print(f"python -m elman bench: error: {error}", file=sys.stderr)
        return EXIT_FAILED

    text = write_markdown(results, out)
    written = [out]
    if write_plot(results, plot):
        written.append(plot)
    else:
        print("matplotlib is not installed: no plot (pip install matplotlib)", file=sys.stderr)
    if json_path is not None:
        write_json(results, json_path)
        written.append(json_path)
    print(text)
    print("wrote " + ", ".join(written), file=sys.stderr)
    return 0


# How long the contention run tries, per size of run.
_CONTENTION = {"full": dict(rounds=5, min_sample_seconds=0.2, train_seconds=3.0, train_rounds=2),
               "quick": dict(rounds=3, min_sample_seconds=0.05, train_seconds=1.5, train_rounds=1),
               "smoke": dict(rounds=1, min_sample_seconds=0.0, warmup_seconds=0.0, train_seconds=0.2,
                             train_rounds=0)}


def _contention(args, out, json_path):
    from .benchmarks.contention import contention_markdown, run_contention

    print(f"python -m elman bench --contention: {args.suite} run on {args.threads} threads; "
          "progress on stderr", file=sys.stderr)
    libraries = tuple(name for name in args.libraries if name in ("elman", "torch", "onnxruntime"))
    try:
        results = run_contention(threads=args.threads, libraries=libraries, **_CONTENTION[args.suite])
    except (ParityError, WorkerError) as error:
        print(f"python -m elman bench: error: {error}", file=sys.stderr)
        return EXIT_FAILED
    text = contention_markdown(results)
    write_atomically(out, lambda f: f.write(text), "w", encoding="utf-8")
    written = [out]
    if json_path is not None:
        write_json(results, json_path)
        written.append(json_path)
    print(text)
    print("wrote " + ", ".join(written), file=sys.stderr)
    return 0
