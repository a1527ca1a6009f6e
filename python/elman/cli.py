"""The command line: ``python -m elman train | sample | bench``.

    python -m elman train [TEXT] [--steps N] [--hidden H] [--seq-len T] [--out PATH] ...
    python -m elman sample MODEL [--length N] [--temperature X] [--seed S] [--prime TEXT]
    python -m elman bench [--quick]

``train`` fits a character-level language model (Karpathy's min-char-rnn, batched and with Adam)
to TEXT, or to the docstrings of Python's standard library when no TEXT is given. It shows a
progress bar on stderr, prints samples on stdout as it learns, and writes three files as one
unit: the model (PATH, by ``RNN.save``), its vocabulary (PATH with ``.vocab.json`` in place of
``.npz``), and the loss curve (``.loss.png``, when matplotlib is installed). Either all of them are
replaced or none is (``elman._files``: written next to their targets and renamed at the end);
Ctrl-C stops training and writes what was learnt, or nothing before the first step. ``sample``
reads the model and its vocabulary back and prints generated text as it is generated; Ctrl-C
stops it quietly.

Mistakes in the arguments or the files (a missing file, an empty text, a file that is not a
model) are reported on one line of stderr, with exit code 2, as argparse does.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time

import numpy as np

from ._files import AtomicFiles, check_replaceable

__all__ = ["main", "vocabulary_path", "loss_curve_path"]

EXIT_USAGE = 2  # argparse's code for bad arguments; used for every user mistake
EXIT_INTERRUPTED = 130  # the shell's code for Ctrl-C

DEFAULTS = {  # about a minute on 2 idle cores: ~12 ms per step (H=256, 32 x 64 characters)
    "steps": 5000, "hidden": 256, "seq_len": 64, "batch": 32, "layers": 1, "lr": 2e-3,
    "clip": 5.0, "out": "char_rnn.npz", "sample_length": 200, "temperature": 0.8, "seed": 0,
}


class CommandError(Exception):
    """A mistake of the user's (arguments, files): reported on one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is ONE line on stderr (exit 2), pointing at --help."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


# --------------------------------------------------------------------------- #
# argument types: each checks one value and says what was expected
# --------------------------------------------------------------------------- #

def _positive_int(text):
    value = _parse(int, text, "an integer")
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


def _non_negative_int(text):
    value = _parse(int, text, "an integer")
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def _positive_float(text):
    value = _parse(float, text, "a number")
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text!r}")
    return value


def _non_negative_float(text):
    value = _parse(float, text, "a number")
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return value


def _parse(kind, text, what):
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None


# --------------------------------------------------------------------------- #
# the parser
# --------------------------------------------------------------------------- #

def build_parser():
    parser = _Parser(prog="python -m elman",
                     description="elman: train and sample character-level Elman RNNs on a CPU.")
    commands = parser.add_subparsers(dest="command", metavar="{train,sample,bench}")

    train = commands.add_parser(
        "train", help="train a character-level language model",
        description="Train a character-level language model (min-char-rnn) with truncated BPTT "
                    "and Adam. Without TEXT, the text is the docstrings of Python's standard "
                    "library, gathered at run time.")
    d = DEFAULTS
    option = train.add_argument
    option("text", nargs="?", metavar="TEXT", help="a UTF-8 text file (default: stdlib docstrings)")
    option("--steps", metavar="N", type=_positive_int, default=d["steps"],
           help=f"optimizer steps (default {d['steps']})")
    option("--hidden", metavar="H", type=_positive_int, default=d["hidden"],
           help=f"hidden units H (default {d['hidden']})")
    option("--seq-len", metavar="T", type=_positive_int, default=d["seq_len"],
           help=f"characters per truncated-BPTT chunk (default {d['seq_len']})")
    option("--batch", metavar="B", type=_positive_int, default=d["batch"],
           help=f"parallel text streams per step (default {d['batch']})")
    option("--layers", metavar="L", type=_positive_int, default=d["layers"],
           help=f"stacked layers (default {d['layers']})")
    option("--lr", type=_positive_float, default=d["lr"],
           help=f"Adam's learning rate (default {d['lr']})")
    option("--clip", type=_non_negative_float, default=d["clip"],
           help=f"clip the gradients' global norm to this, 0: never (default {d['clip']})")
    option("--out", default=d["out"], metavar="PATH",
           help=f"where to write the model (default {d['out']})")
    option("--sample-every", type=_non_negative_int, default=None, metavar="N",
           help="print a sample every N steps, 0 for never (default: 5 samples in all)")
    option("--sample-length", type=_positive_int, default=d["sample_length"], metavar="N",
           help=f"characters per sample (default {d['sample_length']})")
    option("--temperature", metavar="X", type=_non_negative_float, default=d["temperature"],
           help=f"sampling temperature of those samples (default {d['temperature']})")
    option("--seed", metavar="S", type=_non_negative_int, default=d["seed"],
           help=f"seed of the initial weights and of the samples (default {d['seed']})")
    option("--threads", metavar="N", type=_positive_int, default=None,
           help="kernel threads (default: all cores)")
    train.set_defaults(run=run_train, parser=train)

    sample = commands.add_parser("sample", help="generate text with a trained model",
                                 description="Print text generated by a model written by 'train'.")
    option = sample.add_argument
    option("model", metavar="MODEL", help="a model written by 'python -m elman train'")
    option("--length", metavar="N", type=_non_negative_int, default=500,
           help="characters to generate (default 500)")
    option("--temperature", metavar="X", type=_non_negative_float, default=d["temperature"],
           help=f"below 1: safer, above 1: wilder, 0: greedy (default {d['temperature']})")
    option("--seed", metavar="S", type=_non_negative_int, default=None,
           help="for a reproducible sample")
    option("--prime", default=None, metavar="TEXT", help="text the model reads first (printed too)")
    sample.set_defaults(run=run_sample, parser=sample)

    # The benchmark suite lives in elman.bench_cli, imported only when asked for; every argument
    # after "bench" (e.g. --quick) is passed on to it untouched.
    bench = commands.add_parser(
        "bench", add_help=False, help="time elman against PyTorch [--quick]",
        description="Run the benchmark suite (arguments go to elman.bench_cli).")
    bench.set_defaults(run=run_bench, parser=bench)
    return parser


def main(argv=None):
    """Run the command line on argv (default sys.argv[1:]); returns the exit code."""
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args, extra = parser.parse_known_args(argv)
    if args.command is None:
        parser.error("choose a command: train, sample or bench")
    if extra and args.command != "bench":
        args.parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return args.run(args, extra)
    except KeyboardInterrupt:  # Ctrl-C outside the loops that handle it: no traceback
        print(file=sys.stderr)
        _info(f"{parser.prog} {args.command}: interrupted")
        return EXIT_INTERRUPTED
    except CommandError as error:
        print(f"{parser.prog} {args.command}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): not an error. Point stdout at devnull so that
        # Python's final flush does not complain a second time.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


# --------------------------------------------------------------------------- #
# file names
# --------------------------------------------------------------------------- #

def _stem(model_path):
    path = os.fspath(model_path)
    return path[:-4] if path.endswith(".npz") else path


def vocabulary_path(model_path):
    """Where train writes a model's vocabulary: ``char_rnn.npz`` -> ``char_rnn.vocab.json``."""
    return _stem(model_path) + ".vocab.json"


def loss_curve_path(model_path):
    """Where train draws the loss curve: ``char_rnn.npz`` -> ``char_rnn.loss.png``."""
    return _stem(model_path) + ".loss.png"


# --------------------------------------------------------------------------- #
# train
# --------------------------------------------------------------------------- #

def run_train(args, _extra):
    from .corpus import Vocabulary
    from .model import RNN
    from .optim import Adam
    from .train import Trainer

    _check_outputs(args.out)
    text, source = _training_text(args.text)
    vocab = Vocabulary.from_text(text)
    tokens = vocab.encode(text)
    batch = _fitted_batch(len(tokens), args.batch, args.seq_len)
    if args.threads is not None:
        from . import set_num_threads
        set_num_threads(args.threads)

    V = len(vocab)
    rnn = RNN(V, args.hidden, num_layers=args.layers, output_size=V, seed=args.seed)
    trainer = Trainer(rnn, Adam(rnn.params, lr=args.lr), clip_norm=args.clip or None)
    _info(f"training on {source}: {len(tokens):,} characters, {V} distinct; "
          f"{args.layers} x {args.hidden} hidden units, {args.steps} steps of "
          f"{batch} x {args.seq_len} characters")
    losses, seconds, status = _training_loop(trainer, vocab, tokens, batch, args)
    if not losses:  # interrupted before the first step: untrained weights replace nothing
        return status

    figure = _loss_figure(losses, rnn, batch, args.seq_len)
    written = _write_outputs(args.out, rnn, vocab, figure)
    chars = len(losses) * batch * args.seq_len
    print(f"loss {losses[0]:.3f} -> {smoothed(losses):.3f} (nats per character, mean of the "
          f"last 50 steps) after {len(losses)} steps; {chars:,} characters in {seconds:.1f} s "
          f"({chars / seconds:,.0f} characters/s)")
    _info("wrote " + ", ".join(written))
    return status


def _training_loop(trainer, vocab, tokens, batch, args):
    """Train for args.steps steps with a progress bar and samples; returns (losses, training
    seconds, exit status). Ctrl-C stops early (status 130) and keeps what was learnt."""
    from .generate import sample
    from .train import train_char_lm

    sample_every = args.sample_every if args.sample_every is not None else max(1, args.steps // 5)
    prime = vocab.encode("\n") if "\n" in vocab.index else tokens[:1]  # samples start a paragraph
    progress = Progress(args.steps)
    losses, seconds, status = [], 0.0, 0
    steps = train_char_lm(trainer, tokens, len(vocab), steps=args.steps, seq_len=args.seq_len,
                          batch_size=batch)
    try:
        started = time.perf_counter()
        for step, loss in enumerate(steps, start=1):
            losses.append(loss)
            seconds += time.perf_counter() - started  # training only: sampling is not counted
            progress.update(step, smoothed(losses), step * batch * args.seq_len / seconds)
            if sample_every and (step % sample_every == 0 or step == args.steps):
                try:
                    generated = sample(trainer.rnn, prime, args.sample_length,
                                       temperature=args.temperature, seed=args.seed + step)
                except ValueError as error:  # NaN weights: step `step` diverged
                    progress.clear()
                    raise CommandError(f"training diverged at step {step}: {error}; nothing "
                                       f"written") from None
                progress.clear()
                print(f"----- sample after step {step} (loss {smoothed(losses):.3f}) -----")
                print(vocab.decode(generated), flush=True)
            started = time.perf_counter()
    except KeyboardInterrupt:
        status = EXIT_INTERRUPTED
        progress.clear()
        if losses:
            _info(f"interrupted after {len(losses)} steps: saving the model as it is")
        else:
            _info(f"interrupted before the first step: nothing written ({args.out!r} and the "
                  f"files beside it are as they were)")
    except FloatingPointError as error:
        progress.clear()
        raise CommandError(f"{error} at step {len(losses) + 1}") from None
    progress.close()
    return losses, seconds, status


def _write_outputs(out, rnn, vocab, figure):
    """The model, its vocabulary and (figure not None) its loss curve as one unit: all of them
    are replaced, or, when one cannot be written, none (elman._files). Returns the paths."""
    paths = [out, vocabulary_path(out)] + ([] if figure is None else [loss_curve_path(out)])
    try:
        with AtomicFiles() as files:
            rnn.save(files.open(out))
            files.open(paths[1], "w", encoding="ascii").write(vocab.to_json() + "\n")
            if figure is not None:
                figure.savefig(files.open(paths[2]), format="png")
    except OSError as error:
        raise CommandError(f"{_cannot_write(error)}; none of {', '.join(map(repr, paths))} was "
                           f"replaced") from None
    return paths


def _check_outputs(out):
    """Before any work: each file train writes can be written (an existing folder; a regular
    file or nothing there, symlinks followed)."""
    for path in (out, vocabulary_path(out), loss_curve_path(out)):
        try:
            check_replaceable(path)
        except OSError as error:
            raise CommandError(_cannot_write(error)) from None


def _cannot_write(error):
    """One line for an OSError of elman._files (which names the user's path)."""
    if error.filename is None:
        return str(error)  # already says "cannot write PATH: ..."
    return f"cannot write {error.filename!r}: {error.strerror or error}"


def _training_text(path):
    """(text, description) of the file at path, or of the default corpus when path is None."""
    if path is None:
        from .corpus import STDLIB_MODULES, default_corpus
        return default_corpus(), f"the docstrings of {len(STDLIB_MODULES)} standard-library modules"
    text = _read_text(path)
    if len(text) < 2:
        raise CommandError(f"{path!r} is {'empty' if not text else 'one character long'}: "
                           "there is nothing to learn")
    return text, repr(path)


def _read_text(path):
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except UnicodeDecodeError as error:
        raise CommandError(f"{path!r} is not UTF-8 text ({error.reason} at byte {error.start})"
                           ) from None
    except OSError as error:
        raise CommandError(f"cannot read {path!r}: {error.strerror or error}") from None


def _fitted_batch(n_tokens, batch, seq_len):
    """The batch size, made smaller when the text is too short for batch x seq_len characters."""
    fits = n_tokens // seq_len - 1  # CharBatches needs (batch + 1) * seq_len tokens
    if fits < 1:
        raise CommandError(f"the text has {n_tokens} characters, too few for --seq-len {seq_len}: "
                           f"give at least {2 * seq_len} characters or a smaller --seq-len")
    if fits < batch:
        _info(f"the text is short: using --batch {fits} instead of {batch}")
        return fits
    return batch


def smoothed(losses, window=50):
    """The mean loss of the last `window` steps: what the progress bar and summary show."""
    recent = losses[-window:]
    return sum(recent) / len(recent)


def _loss_figure(losses, rnn, batch, seq_len):
    """The loss curve as a matplotlib Figure; without matplotlib, say so in one line, None."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        _info("matplotlib is not installed: no loss curve (pip install matplotlib)")
        return None
    steps = np.arange(1, len(losses) + 1)
    window = min(50, len(losses))
    running = np.convolve(losses, np.ones(window) / window, mode="valid")  # means of `window` steps
    fig = Figure(figsize=(7, 4), dpi=100)
    FigureCanvasAgg(fig)  # render without pyplot, so no global backend is touched
    ax = fig.add_subplot()
    ax.plot(steps, losses, color="tab:blue", alpha=0.3, linewidth=0.8, label="per step")
    ax.plot(steps[window - 1:], running, color="tab:blue", linewidth=1.8,
            label=f"mean of {window} steps")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (nats per character)")
    ax.set_title(f"elman char-RNN: {rnn.num_layers} x {rnn.hidden_size} hidden, "
                 f"{batch} x {seq_len} characters per step", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


class Progress:
    """A progress bar on stderr: step, smoothed loss, characters per second, time left.

    On a terminal it redraws one line with carriage returns (at most 10 times a second);
    otherwise (a log file, a pipe) it writes a plain line at every tenth of the run.
    """

    def __init__(self, total, stream=None, width=24):
        self.total = total
        self.stream = sys.stderr if stream is None else stream
        self.width = width
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.started = time.perf_counter()
        self._last_draw = 0.0
        self._drawn = 0  # length of the line on screen
        self._line = ""

    def update(self, step, loss, chars_per_second):
        now = time.perf_counter()
        filled = self.width * step // self.total
        bar = "#" * filled + "." * (self.width - filled)
        left = (now - self.started) * (self.total - step) / step
        self._line = (f"step {step:>{len(str(self.total))}}/{self.total} [{bar}] loss {loss:.3f}  "
                      f"{chars_per_second:,.0f} chars/s  {_minutes(left)} left")
        if self.tty:
            if now - self._last_draw >= 0.1 or step == self.total:
                self._draw(self._line)
                self._last_draw = now
        elif step == self.total or step % max(1, self.total // 10) == 0:
            self.stream.write(self._line + "\n")
            self.stream.flush()

    def _draw(self, line):
        padding = " " * max(0, self._drawn - len(line))  # erase the rest of a longer last line
        self.stream.write("\r" + line + padding)
        self.stream.flush()
        self._drawn = len(line)

    def clear(self):
        """Erase the bar before something else is printed (it comes back at the next update)."""
        if self.tty and self._drawn:
            self.stream.write("\r" + " " * self._drawn + "\r")
            self.stream.flush()
            self._drawn = 0

    def close(self):
        if self.tty and self._line:
            self._draw(self._line)
            self.stream.write("\n")
            self.stream.flush()


def _minutes(seconds):
    seconds = int(round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


def _info(message):
    print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- #
# sample
# --------------------------------------------------------------------------- #

def run_sample(args, _extra):
    from .generate import iter_sample

    rnn, vocab = load_char_model(args.model)
    if args.prime is not None:
        if not args.prime:
            raise CommandError("--prime is empty: give at least one character")
        try:
            start = vocab.encode(args.prime)
        except ValueError as error:
            raise CommandError(f"--prime: {error} of {args.model!r}") from None
    else:
        start = vocab.encode("\n") if "\n" in vocab.index else np.array([0])
    try:
        tokens = iter_sample(rnn, start, args.length, temperature=args.temperature,
                             seed=args.seed)
    except ValueError as error:  # e.g. a model whose weights are NaN
        raise CommandError(f"cannot sample from {args.model!r}: {error}") from None
    return _stream_text(args.prime or "", tokens, vocab)


def _stream_text(prime, tokens, vocab):
    """Print prime, then each generated character as soon as it is drawn; Ctrl-C ends the text
    there, quietly (exit code 130)."""
    out = sys.stdout
    status = 0
    try:
        out.write(prime)
        out.flush()
        for token in tokens:
            out.write(vocab.chars[token])
            out.flush()  # a character at a time, so a terminal or a pipe sees it at once
    except KeyboardInterrupt:
        status = EXIT_INTERRUPTED
    out.write("\n")
    out.flush()
    return status


def load_char_model(path):
    """(rnn, vocabulary) written by ``train``, or a CommandError that says what is wrong."""
    from .corpus import Vocabulary
    from .model import RNN

    if not os.path.isfile(path):
        what = "is a directory" if os.path.isdir(path) else "does not exist"
        raise CommandError(f"cannot read {path!r}: it {what}")
    try:
        rnn = RNN.load(path)
    except OSError as error:
        raise CommandError(f"cannot read {path!r}: {error.strerror or error}") from None
    except ValueError as error:
        raise CommandError(f"{path!r} is not an elman model: {error}") from None
    vocab_file = vocabulary_path(path)
    try:
        with open(vocab_file, encoding="utf-8") as f:
            vocab = Vocabulary.from_json(f.read())
    except OSError as error:
        raise CommandError(f"cannot read the vocabulary of {path!r}, {vocab_file!r} (written next "
                           f"to the model by 'train'): {error.strerror or error}") from None
    except ValueError as error:
        raise CommandError(f"{vocab_file!r} is not a vocabulary: {error}") from None
    if rnn.input_size != len(vocab) or rnn.output_size != len(vocab) or rnn.bidirectional:
        raise CommandError(f"{path!r} is not a character model for its vocabulary of {len(vocab)} "
                           f"characters: {rnn!r}")
    return rnn, vocab


# --------------------------------------------------------------------------- #
# bench
# --------------------------------------------------------------------------- #

def run_bench(_args, extra):
    try:
        from . import bench_cli
    except ModuleNotFoundError as error:  # a peer library the harness imports at the top
        raise CommandError(f"the benchmark suite needs the module {error.name!r}: "
                           f"pip install {error.name.split('.')[0]}") from None
    return bench_cli.main(list(extra))
