"""No memory growth: 10**4 calls of each main function, successful or refused, leave the process's
resident memory where a warm-up left it.

Every call here allocates results of at least a few kilobytes, so a leak of one result per call
would grow the process by tens of megabytes; the slack allowed is 2 MiB (the allocator's own
fluctuation). RSS is read from /proc/self/status (Linux).
"""

import gc
import os

import numpy as np
import pytest

import elman
from conftest import make_rnn_inputs

CALLS = 10**4
WARM_UP = 1000
SLACK_KIB = 2048
T, B, D, H, O = 4, 8, 16, 32, 10

pytestmark = [
    pytest.mark.skipif(not os.path.exists("/proc/self/status"),
                       reason="reads the resident set size from /proc/self/status"),
    # AddressSanitizer keeps freed memory in quarantine (256 MiB) to catch use after free, so
    # RSS grows by design under tools/sanitize.sh; ASan itself reports real misuse there.
    pytest.mark.skipif("libasan" in os.environ.get("LD_PRELOAD", ""),
                       reason="AddressSanitizer's quarantine grows RSS by design"),
]


def resident_kib():
    """The process's resident set size in KiB (VmRSS)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS line in /proc/self/status")


def growth_kib(call):
    """RSS growth over CALLS calls of call(), after WARM_UP calls fill the allocator's pools."""
    for _ in range(WARM_UP):
        call()
    gc.collect()
    before = resident_kib()
    for _ in range(CALLS):
        call()
    gc.collect()
    return resident_kib() - before, before


def refused(fn, *args):
    """A call that must raise ValueError (its error path must not leak either)."""
    def call():
        try:
            fn(*args)
        except ValueError:
            return
        raise AssertionError(f"{fn.__name__} accepted bad arguments")
    return call


def calls():
    """{name: a function of no arguments that makes one call}."""
    rng = np.random.default_rng(0)
    p = make_rnn_inputs(rng, T, B, D, H, np.float32)
    hs = elman.rnn_forward(**p)
    dhs = np.ones_like(hs)
    W_hy, b_y = rng.standard_normal((O, H)).astype(np.float32), np.zeros(O, np.float32)
    ys = elman.output_forward(hs, W_hy, b_y, "softmax")
    targets = rng.integers(0, O, (T, B))
    x64 = p["x"].astype(np.float64)  # converted on every call
    rnn = elman.RNN(D, H, num_layers=2, output_size=O, seed=0)
    stream = elman.RNN(D, H, output_size=O, seed=0).stream(B)
    bad_h0 = np.zeros((B, H + 1), np.float32)

    def model_step():
        out, _ = rnn.forward(p["x"])
        rnn.backward(np.ones_like(out))

    return {
        "rnn_forward": lambda: elman.rnn_forward(**p),
        "rnn_forward (float64 input, converted)": lambda: elman.rnn_forward(
            x64, p["h0"], p["W_xh"], p["W_hh"], p["b_h"]),
        "rnn_backward": lambda: elman.rnn_backward(dhs, p["x"], p["h0"], hs, p["W_xh"], p["W_hh"]),
        "cell_forward": lambda: elman.cell_forward(p["x"][0], p["h0"], p["W_xh"], p["W_hh"],
                                                   p["b_h"]),
        "cell_backward": lambda: elman.cell_backward(dhs[0], p["x"][0], p["h0"], hs[0], p["W_xh"],
                                                     p["W_hh"]),
        "output_forward": lambda: elman.output_forward(hs, W_hy, b_y, "softmax"),
        "output_backward": lambda: elman.output_backward(ys, hs, ys, W_hy, "softmax"),
        "softmax_cross_entropy": lambda: elman.softmax_cross_entropy(ys, targets),
        "RNN.forward + backward": model_step,
        "RNNStream.step": lambda: stream.step(p["x"][0]),
        "rnn_forward refused (ValueError)": refused(
            elman.rnn_forward, p["x"], bad_h0, p["W_xh"], p["W_hh"], p["b_h"]),
        "softmax_cross_entropy refused (ValueError)": refused(
            elman.softmax_cross_entropy, ys, np.full((T, B), O)),
    }


CALLS_BY_NAME = calls()


@pytest.mark.parametrize("name", list(CALLS_BY_NAME))
def test_no_memory_growth(name):
    grown, before = growth_kib(CALLS_BY_NAME[name])
    assert grown <= SLACK_KIB, (f"{name}: RSS grew by {grown} KiB over {CALLS} calls "
                                f"(from {before} KiB)")
