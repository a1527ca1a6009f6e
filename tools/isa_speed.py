"""Speed of each kernel build (ELMAN_ISA) on the benchmark's recurrence sizes; a markdown table.

    python tools/isa_speed.py [--threads 2] [--repeats 7]

Every (size, build) pair runs in a process of its own with ELMAN_ISA set (the build is chosen
at import), float32, tanh, the given kernel threads: after a warm-up call, the median of
`repeats` timed calls of rnn_forward, and of rnn_forward + rnn_backward. The builds of one size
are timed one after the other, so they see similar machine load; the load average is printed
with the table, since on a shared machine it decides how much the numbers mean.
"""

import argparse
import json
import os
import subprocess
import sys

import elman

SIZES = {  # name: (T, B, D, H), the recurrence problems of `python -m elman bench`
    "stream": (1000, 1, 32, 64),
    "charlm": (25, 1, 65, 100),
    "medium": (100, 32, 128, 256),
    "large": (50, 128, 512, 1024),
}

# Runs in the child process: argv = T B D H threads repeats; prints {"forward": ms, ...}.
WORKER = """
import json, statistics, sys, time
import numpy as np
import elman

T, B, D, H, threads, repeats = map(int, sys.argv[1:])
elman.set_num_threads(threads)
rng = np.random.default_rng(0)
k = H ** -0.5
x = rng.standard_normal((T, B, D), dtype=np.float32)
h0 = np.zeros((B, H), np.float32)
W_xh = rng.uniform(-k, k, (H, D)).astype(np.float32)
W_hh = rng.uniform(-k, k, (H, H)).astype(np.float32)
b_h = rng.uniform(-k, k, H).astype(np.float32)
dhs = rng.standard_normal((T, B, H), dtype=np.float32)

def forward():
    return elman.rnn_forward(x, h0, W_xh, W_hh, b_h)

def forward_backward():
    hs = forward()
    return elman.rnn_backward(dhs, x, h0, hs, W_xh, W_hh)

def median_ms(fn):
    fn()  # warm-up: first-touch of the outputs, OpenMP team start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)

print(json.dumps({"isa": elman.show_config(print_out=False)["isa"],
                  "forward": median_ms(forward), "forward+backward": median_ms(forward_backward)}))
"""


def measure(isa, size, threads, repeats):
    env = dict(os.environ, ELMAN_ISA=isa)
    argv = [sys.executable, "-c", WORKER, *map(str, size), str(threads), str(repeats)]
    out = subprocess.run(argv, env=env, capture_output=True, text=True, check=True)
    result = json.loads(out.stdout)
    assert result["isa"] == isa, result
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    isas = elman.show_config(print_out=False)["isas"]
    load_before = os.getloadavg()
    rows = []
    for name, size in SIZES.items():
        for isa in isas:
            r = measure(isa, size, args.threads, args.repeats)
            rows.append((name, size, isa, r["forward"], r["forward+backward"]))
            print(f"{name} {isa}: forward {r['forward']:.3f} ms, "
                  f"forward+backward {r['forward+backward']:.3f} ms", file=sys.stderr)
    load_after = os.getloadavg()
    print(f"float32, tanh, {args.threads} threads, median of {args.repeats} calls; load average "
          f"(1 min) {load_before[0]:.2f} before, {load_after[0]:.2f} after, on {os.cpu_count()} "
          f"CPUs\n")
    print("| size | T, B, D, H | ISA | forward ms | forward+backward ms |")
    print("| --- | --- | --- | ---: | ---: |")
    for name, size, isa, fwd, fwd_bwd in rows:
        print(f"| {name} | {', '.join(map(str, size))} | {isa} | {fwd:.3f} | {fwd_bwd:.3f} |")


if __name__ == "__main__":
    main()
