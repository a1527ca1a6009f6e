"""A first look at elman: a forward and backward pass, checked against the NumPy reference and timed."""

import time

import numpy as np

import elman
from elman import reference

T, B, D, H = 100, 32, 128, 256
rng = np.random.default_rng(0)
x = rng.standard_normal((T, B, D), dtype=np.float32)
h0 = np.zeros((B, H), np.float32)
W_xh = rng.uniform(-H**-0.5, H**-0.5, (H, D)).astype(np.float32)
W_hh = rng.uniform(-H**-0.5, H**-0.5, (H, H)).astype(np.float32)
b_h = np.zeros(H, np.float32)
dhs = rng.standard_normal((T, B, H), dtype=np.float32)


def fwd_bwd(lib):
    hs = lib.rnn_forward(x, h0, W_xh, W_hh, b_h)
    return hs, lib.rnn_backward(dhs, x, h0, hs, W_xh, W_hh)


def best_of(fn, repeats=5):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


hs, grads = fwd_bwd(elman)
hs_ref, grads_ref = fwd_bwd(reference)
print(f"T={T} B={B} D={D} H={H}, float32, {elman.get_num_threads()} threads")
print(f"max |hs - reference| = {np.abs(hs - hs_ref).max():.2e}")
for name, g, r in zip(["dx", "dh0", "dW_xh", "dW_hh", "db_h"], grads, grads_ref):
    print(f"max |{name} - reference| = {np.abs(g - r).max():.2e}")
t_elman, t_ref = best_of(lambda: fwd_bwd(elman)), best_of(lambda: fwd_bwd(reference))
print(f"forward+backward: elman {t_elman * 1e3:.2f} ms, NumPy reference {t_ref * 1e3:.2f} ms "
      f"({t_ref / t_elman:.1f}x)")
