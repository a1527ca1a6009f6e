"""Time per training step of a real torch model with torch.nn.RNN against elman.torch.RNN.

The model: nn.Embedding(V, D) -> RNN(D, H) -> nn.Linear(H, V) -> cross_entropy over every step,
torch.optim.Adam; float32, tanh, one layer, time-major tokens[T, B]. Configurations (T, B, D, H)
are the performance issue's, with D the embedding size and V = D (the one-hot width the
configuration stands for):

    stream (1000, 1, 32, 64)   charlm (25, 1, 65, 100)   medium (100, 32, 128, 256)
    large (50, 128, 512, 1024)

How it is measured, so that the two variants never share a process (each library's idle threads
would otherwise steal cores from the other) and noise hits both alike:

* parity first: one untimed process per variant builds every configuration's model from the same
  seed (elman.torch.RNN draws its initial weights exactly as torch.nn.RNN does) and reports the
  loss of its first step on the same batch; the two must agree before anything is timed (and
  again in every timed round);
* each round starts one process per variant, in alternating order (torch first in even rounds,
  elman first in odd ones); a process runs every configuration: warm-up steps, then steps until
  at least --min-time seconds have passed (at least 3), and reports the median step time;
* the table holds, per configuration and variant, the median over rounds.

Usage:
    python bench/torch_module.py            # 5 rounds
    python bench/torch_module.py --quick    # 2 rounds, shorter timing, for a smoke test
    python bench/torch_module.py --threads 1 --configs charlm,medium
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

CONFIGS = {  # name: (T, B, D, H)
    "stream": (1000, 1, 32, 64),
    "charlm": (25, 1, 65, 100),
    "medium": (100, 32, 128, 256),
    "large": (50, 128, 512, 1024),
}
VARIANTS = ("torch", "elman")
WARMUP_STEPS = 2
MIN_STEPS = 3
PARITY_RTOL = 1e-5  # float32 losses of the same model on the same batch
WORKER_TIMEOUT = 1800  # seconds; a stuck worker fails the benchmark instead of hanging it


# --------------------------------------------------------------------------- #
# Worker: one variant, every configuration, in this process only
# --------------------------------------------------------------------------- #

def build(variant, T, B, D, H):
    """step() -> loss: one Adam training step of the configuration's model on a fixed batch."""
    import torch

    import elman.torch

    rnn_class = torch.nn.RNN if variant == "torch" else elman.torch.RNN
    V = D
    torch.manual_seed(0)  # the same initial model for both variants
    embed = torch.nn.Embedding(V, D)
    rnn = rnn_class(D, H)
    head = torch.nn.Linear(H, V)
    params = [*embed.parameters(), *rnn.parameters(), *head.parameters()]
    optimizer = torch.optim.Adam(params, lr=1e-3)
    generator = torch.Generator().manual_seed(1)
    tokens = torch.randint(0, V, (T, B), generator=generator)
    targets = torch.randint(0, V, (T, B), generator=generator)

    def step():
        states, _ = rnn(embed(tokens))
        loss = torch.nn.functional.cross_entropy(head(states).reshape(T * B, V),
                                                 targets.reshape(T * B))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss.item()

    return step


def time_config(variant, T, B, D, H, min_time):
    """{"first_loss", "median_ms", "steps"} of one configuration; min_time None: first_loss only."""
    step = build(variant, T, B, D, H)
    first_loss = step()
    if min_time is None:
        return {"first_loss": first_loss}
    for _ in range(WARMUP_STEPS - 1):
        step()
    times = []
    started = time.perf_counter()
    while len(times) < MIN_STEPS or time.perf_counter() - started < min_time:
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return {"first_loss": first_loss, "median_ms": 1e3 * statistics.median(times),
            "steps": len(times)}


def worker(variant, names, min_time, threads):
    """Print one JSON line: {config name: time_config(...)} plus the threads in use."""
    import torch

    import elman

    if threads:
        torch.set_num_threads(threads)
        elman.set_num_threads(threads)
    results = {name: time_config(variant, *CONFIGS[name], min_time) for name in names}
    print(json.dumps({"results": results, "torch_version": torch.__version__,
                      "torch_threads": torch.get_num_threads(),
                      "elman_threads": elman.get_num_threads()}))


# --------------------------------------------------------------------------- #
# Driver: rounds of worker processes, parity, the table
# --------------------------------------------------------------------------- #

def run_worker(variant, names, min_time, threads):
    """The JSON a worker process prints; min_time None: a parity-only run, nothing timed."""
    command = [sys.executable, os.path.abspath(__file__), "--worker", variant,
               "--configs", ",".join(names)]
    if min_time is not None:
        command += ["--min-time", str(min_time)]
    if threads:
        command += ["--threads", str(threads)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=WORKER_TIMEOUT)
    if done.returncode != 0:
        raise RuntimeError(f"the {variant} worker failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def check_parity(per_variant, names):
    """RuntimeError unless both variants' first-step losses agree in every configuration."""
    for name in names:
        losses = {v: per_variant[v]["results"][name]["first_loss"] for v in VARIANTS}
        want, got = losses["torch"], losses["elman"]
        if abs(got - want) > PARITY_RTOL * max(1.0, abs(want)):
            raise RuntimeError(f"parity failed at {name}: first-step loss {got!r} with "
                               f"elman.torch.RNN, {want!r} with torch.nn.RNN")


def load_average():
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def table(medians, first_rounds, names):
    """The markdown table: per configuration the median ms/step of each variant and the ratio."""
    lines = ["| config | T | B | D | H | V | torch.nn.RNN ms/step | elman.torch.RNN ms/step | "
             "speedup | first-step loss (torch / elman) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for name in names:
        T, B, D, H = CONFIGS[name]
        t, e = medians["torch"][name], medians["elman"][name]
        losses = " / ".join(f"{first_rounds[v]['results'][name]['first_loss']:.6f}"
                            for v in VARIANTS)
        lines.append(f"| {name} | {T} | {B} | {D} | {H} | {D} | {t:.3f} | {e:.3f} | "
                     f"{t / e:.2f}x | {losses} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 rounds, 0.3 s of timing each")
    parser.add_argument("--rounds", type=int, help="rounds of one process per variant (default 5)")
    parser.add_argument("--min-time", type=float, help="seconds of timed steps per configuration "
                        "and process (default 1.0)")
    parser.add_argument("--configs", default=",".join(CONFIGS),
                        help=f"comma-separated, from {', '.join(CONFIGS)}")
    parser.add_argument("--threads", type=int, help="threads for torch and elman alike (default: "
                        "each library's own default)")
    parser.add_argument("--worker", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    names = [n for n in args.configs.split(",") if n]
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        parser.error(f"unknown configuration(s) {', '.join(unknown)}; choose from {', '.join(CONFIGS)}")
    rounds = args.rounds or (2 if args.quick else 5)
    min_time = args.min_time or (0.3 if args.quick else 1.0)
    if args.worker:
        worker(args.worker, names, args.min_time, args.threads)  # no --min-time: parity only
        return

    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads must be at least 1, got {args.threads}")
    print(f"python {' '.join(sys.argv)}")
    print(f"before: {load_average()} ({os.cpu_count()} cores)", flush=True)
    check_parity({v: run_worker(v, names, None, args.threads) for v in VARIANTS}, names)
    print("parity: the first-step losses agree", flush=True)
    samples = {v: {n: [] for n in names} for v in VARIANTS}
    first_rounds = None
    for r in range(rounds):
        order = VARIANTS if r % 2 == 0 else VARIANTS[::-1]
        per_variant = {v: run_worker(v, names, min_time, args.threads) for v in order}
        check_parity(per_variant, names)
        first_rounds = first_rounds or per_variant
        for v in VARIANTS:
            for n in names:
                samples[v][n].append(per_variant[v]["results"][n]["median_ms"])
        print(f"round {r + 1}/{rounds}: " + ", ".join(
            f"{n} {samples['torch'][n][-1]:.2f}/{samples['elman'][n][-1]:.2f} ms" for n in names),
            flush=True)
    medians = {v: {n: statistics.median(samples[v][n]) for n in names} for v in VARIANTS}
    info = first_rounds["elman"]
    print(f"after: {load_average()}")
    print(f"\ntorch {info['torch_version']}, {info['torch_threads']} torch threads, "
          f"{info['elman_threads']} elman threads; median over {rounds} rounds of the median "
          f"step time in each process; parity (first-step loss within {PARITY_RTOL:g}) checked in "
          f"every round\n")
    print(table(medians, first_rounds, names))


if __name__ == "__main__":
    main()
