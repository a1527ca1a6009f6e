"""The benchmark's arrays, made from a seed so that every worker process builds the same ones.

Each library runs in its own process; instead of shipping arrays between them, each process
draws them from ``numpy.random.default_rng(seed)`` in the same order, which gives bit-identical
float32 arrays everywhere. Arrays are drawn directly in float32 and scaled in place, so building
them allocates nothing beyond the arrays themselves (the memory probe relies on this).

Weights follow torch's default initialisation, U(-1/sqrt(H), 1/sqrt(H)), so tanh does not
saturate and the recurrence is stable over T = 1000 steps.
"""

from __future__ import annotations

import numpy as np

__all__ = ["recurrence_arrays", "train_arrays", "SEED"]

SEED = 20240401
DTYPE = np.float32


def _uniform(rng, shape, bound):
    """U(-bound, bound) float32 array of the given shape, drawn without a float64 temporary."""
    a = rng.random(shape, dtype=DTYPE)
    a *= DTYPE(2 * bound)
    a -= DTYPE(bound)
    return a


def _normal(rng, shape, scale=1.0):
    a = rng.standard_normal(shape, dtype=DTYPE)
    if scale != 1.0:
        a *= DTYPE(scale)
    return a


def recurrence_arrays(config, seed=SEED):
    """The arrays of one recurrence problem, as a dict of C-contiguous float32 arrays.

    x[T, B, D] and h0[B, H] ~ N(0, 1) and N(0, 0.25); W_xh[H, D], W_hh[H, H], b_h[H] ~
    U(-1/sqrt(H), 1/sqrt(H)); dhs[T, B, H] ~ N(0, 1), the gradient fed to backward.
    """
    T, B, D, H = config.T, config.B, config.D, config.H
    rng = np.random.default_rng(seed)
    bound = 1 / np.sqrt(H)
    return {
        "x": _normal(rng, (T, B, D)),
        "h0": _normal(rng, (B, H), 0.5),
        "W_xh": _uniform(rng, (H, D), bound),
        "W_hh": _uniform(rng, (H, H), bound),
        "b_h": _uniform(rng, (H,), bound),
        "dhs": _normal(rng, (T, B, H)),
    }


def train_arrays(config, seed=SEED):
    """The data and initial parameters of one full-model training step.

    Returns ``(x[T, B, D], targets[T, B] int64 in [0, O), params)`` where params uses the names
    of ``elman.RNN(...).params``: ``W_xh_l{l}``, ``W_hh_l{l}``, ``b_h_l{l}`` for each layer l,
    then ``W_hy[O, H]`` and ``b_y[O]``; every parameter ~ U(-1/sqrt(H), 1/sqrt(H)).
    """
    T, B, D, H, O = config.T, config.B, config.D, config.H, config.O
    rng = np.random.default_rng(seed)
    bound = 1 / np.sqrt(H)
    x = _normal(rng, (T, B, D))
    targets = rng.integers(0, O, size=(T, B), dtype=np.int64)
    params = {}
    for layer in range(config.num_layers):
        D_in = D if layer == 0 else H
        params[f"W_xh_l{layer}"] = _uniform(rng, (H, D_in), bound)
        params[f"W_hh_l{layer}"] = _uniform(rng, (H, H), bound)
        params[f"b_h_l{layer}"] = _uniform(rng, (H,), bound)
    params["W_hy"] = _uniform(rng, (O, H), bound)
    params["b_y"] = _uniform(rng, (O,), bound)
    return x, targets, params
