"""The C++ kernels against the NumPy reference: every function, activation and dtype, many shapes."""

import inspect

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import elman
from elman import reference as ref
from conftest import make_rnn_inputs

HIDDEN = ["tanh", "sigmoid", "relu", "identity"]
OUTPUT = ["identity", "softmax", "sigmoid"]
DTYPES = [np.float32, np.float64]
FUNCTIONS = ["cell_forward", "cell_backward", "rnn_forward", "rnn_backward",
             "output_forward", "output_backward", "softmax_cross_entropy"]
# Edge sizes: T=1, B=1, D=1, H not a multiple of 8 or of the kernels' block of 64, empty. The
# backward consumes dz in chunks of 256 rows (whole steps): (70, 8, ...) has chunks of 32, 32 and 6
# steps on the multithreaded path, (3, 300, ...) one step per chunk, (600, 1, ...) 256, 256, 88.
SHAPES = [(1, 1, 1, 1), (1, 3, 4, 5), (5, 1, 3, 7), (4, 2, 1, 13), (3, 4, 6, 64), (6, 3, 5, 65),
          (2, 5, 3, 130), (0, 3, 4, 5), (3, 0, 4, 5), (3, 2, 0, 5), (3, 2, 4, 0), (20, 8, 16, 200),
          (70, 8, 5, 130), (3, 300, 4, 9), (600, 1, 3, 20),
          # one thread, 64 < H <= 128: W_hh^T in one panel, read backward at odd steps (float32
          # on AVX-512), for one row, the 6- and 2-row tiles and a single leftover row
          (9, 1, 7, 100), (8, 9, 3, 128), (5, 1, 2, 113)]


def tol(dtype):
    return dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)


def assert_same(got, want, dtype, scale=1.0):
    """Kernel result equals the reference to the dtype's tolerance (relative to `scale`)."""
    assert got.dtype == dtype
    assert got.shape == want.shape
    t = tol(dtype)
    np.testing.assert_allclose(got, want, rtol=t["rtol"], atol=t["atol"] * max(scale, 1.0))


def magnitude(*arrays):
    return max([float(np.abs(a).max()) for a in arrays if a.size] + [1.0])


@pytest.mark.parametrize("name", FUNCTIONS)
def test_same_signature_as_reference(name):
    assert inspect.signature(getattr(elman, name)) == inspect.signature(getattr(ref, name))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", HIDDEN)
@pytest.mark.parametrize("T,B,D,H", SHAPES)
def test_rnn_forward_backward(T, B, D, H, activation, dtype, rng):
    p = make_rnn_inputs(rng, T, B, D, H, dtype)
    hs = elman.rnn_forward(**p, activation=activation)
    want = ref.rnn_forward(**p, activation=activation)
    assert_same(hs, want, dtype, magnitude(want))
    dhs = rng.standard_normal((T, B, H)).astype(dtype)
    args = (dhs, p["x"], p["h0"], want, p["W_xh"], p["W_hh"])
    grads = elman.rnn_backward(*args, activation=activation)
    wants = ref.rnn_backward(*args, activation=activation)
    for g, w in zip(grads, wants):
        assert_same(g, w, dtype, magnitude(w))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("T,B,D,H", [(2100, 1, 520, 5), (40, 9, 3, 530)])
def test_gradient_products_in_blocks(T, B, D, H, dtype, rng):
    """The gradient products sum over k in blocks that fit L2 and over columns in blocks of 512:
    (2100, 1, 520, 5) has dW_xh in two column blocks over chunks of 263 rows (float32 k-blocks of
    at most 256 rows, float64 of 128), (40, 9, 3, 530) dW_hh in two column blocks (two k-blocks
    in float64), and the output layer's dW_hy sums N = 360 rows in two k-blocks over 530 columns."""
    p = make_rnn_inputs(rng, T, B, D, H, dtype)
    hs = ref.rnn_forward(**p)
    dhs = rng.standard_normal((T, B, H)).astype(dtype)
    args = (dhs, p["x"], p["h0"], hs, p["W_xh"], p["W_hh"])
    for g, w in zip(elman.rnn_backward(*args), ref.rnn_backward(*args)):
        assert_same(g, w, dtype, magnitude(w))
    W = rng.standard_normal((7, H)).astype(dtype)
    ys = ref.output_forward(hs, W, np.zeros(7, dtype), "softmax")
    dys = rng.standard_normal(ys.shape).astype(dtype)
    got = elman.output_backward(dys, hs, ys, W, "softmax")
    for g, w in zip(got, ref.output_backward(dys, hs, ys, W, "softmax")):
        assert_same(g, w, dtype, magnitude(w))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", HIDDEN)
@pytest.mark.parametrize("B,D,H", [(1, 1, 1), (3, 4, 5), (2, 7, 70), (0, 3, 4), (4, 0, 3)])
def test_cell_forward_backward(B, D, H, activation, dtype, rng):
    p = make_rnn_inputs(rng, 1, B, D, H, dtype)
    x_t, h_prev = p["x"][0], p["h0"]
    h = elman.cell_forward(x_t, h_prev, p["W_xh"], p["W_hh"], p["b_h"], activation)
    want = ref.cell_forward(x_t, h_prev, p["W_xh"], p["W_hh"], p["b_h"], activation)
    assert_same(h, want, dtype, magnitude(want))
    dh = rng.standard_normal((B, H)).astype(dtype)
    args = (dh, x_t, h_prev, want, p["W_xh"], p["W_hh"], activation)
    for g, w in zip(elman.cell_backward(*args), ref.cell_backward(*args)):
        assert_same(g, w, dtype, magnitude(w))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", OUTPUT)
@pytest.mark.parametrize("lead,H,O", [((3, 2), 5, 4), ((1, 1), 1, 1), ((7,), 9, 70), ((2, 3, 4), 6, 3),
                                      ((0, 2), 4, 3), ((300,), 17, 5)])
def test_output_forward_backward(lead, H, O, activation, dtype, rng):
    hs = rng.standard_normal(lead + (H,)).astype(dtype)
    W = rng.standard_normal((O, H)).astype(dtype)
    b = rng.standard_normal(O).astype(dtype)
    ys = elman.output_forward(hs, W, b, activation)
    want = ref.output_forward(hs, W, b, activation)
    assert_same(ys, want, dtype, magnitude(want))
    dys = rng.standard_normal(want.shape).astype(dtype)
    got = elman.output_backward(dys, hs, want, W, activation)
    for g, w in zip(got, ref.output_backward(dys, hs, want, W, activation)):
        assert_same(g, w, dtype, magnitude(w))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("mask_kind", [None, "bool", "float", "all-zero"])
@pytest.mark.parametrize("T,B,C", [(3, 2, 5), (1, 1, 1), (10, 4, 70), (0, 2, 3), (300, 2, 9)])
def test_softmax_cross_entropy(T, B, C, mask_kind, reduction, dtype, rng):
    logits = (3 * rng.standard_normal((T, B, C))).astype(dtype)
    targets = rng.integers(0, C, (T, B))
    mask = {None: None, "bool": rng.random((T, B)) > 0.3, "float": rng.random((T, B)).astype(dtype),
            "all-zero": np.zeros((T, B), bool)}[mask_kind]
    if mask is not None and mask.dtype == bool:
        targets = np.where(mask, targets, -1)  # ignored positions may hold anything
    loss, d = elman.softmax_cross_entropy(logits, targets, mask, reduction)
    want_loss, want_d = ref.softmax_cross_entropy(logits, targets, mask, reduction)
    assert isinstance(loss, float)
    assert loss == pytest.approx(want_loss, rel=1e-5 if dtype == np.float32 else 1e-12, abs=1e-6)
    assert_same(d, want_d, dtype)


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(T=st.integers(0, 6), B=st.integers(0, 5), D=st.integers(0, 9), H=st.integers(0, 150),
       activation=st.sampled_from(HIDDEN), dtype=st.sampled_from(DTYPES), seed=st.integers(0, 2**16))
def test_random_shapes(T, B, D, H, activation, dtype, seed):
    rng = np.random.default_rng(seed)
    p = make_rnn_inputs(rng, T, B, D, H, dtype)
    want = ref.rnn_forward(**p, activation=activation)
    assert_same(elman.rnn_forward(**p, activation=activation), want, dtype, magnitude(want))
    dhs = rng.standard_normal((T, B, H)).astype(dtype)
    args = (dhs, p["x"], p["h0"], want, p["W_xh"], p["W_hh"], activation)
    for g, w in zip(elman.rnn_backward(*args), ref.rnn_backward(*args)):
        assert_same(g, w, dtype, magnitude(w))


def test_long_sequence_matches(rng):
    """Errors must not grow along a long recurrence (T=500, float32 and float64)."""
    for dtype in DTYPES:
        p = make_rnn_inputs(rng, 500, 2, 3, 33, dtype)
        want = ref.rnn_forward(**p)
        assert_same(elman.rnn_forward(**p), want, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("T,B,D,H", [(5, 3, 4, 6), (1, 1, 1, 1), (300, 2, 9, 70), (40, 9, 3, 130),
                                     (0, 2, 3, 4), (3, 0, 2, 5)])
def test_backward_without_input_grad_skips_only_dx(T, B, D, H, dtype, rng):
    """_core.rnn_backward(input_grad=False), a model's first layer when x needs no gradient:
    dx is None and every other result is the same bits as with dx."""
    from elman import _core

    p = make_rnn_inputs(rng, T, B, D, H, dtype)
    hs = elman.rnn_forward(**p)
    dhs = rng.standard_normal(hs.shape).astype(dtype)
    args = (dhs, p["x"], p["h0"], hs, p["W_xh"], p["W_hh"], "tanh")
    full = _core.rnn_backward(*args)
    without = _core.rnn_backward(*args, input_grad=False)
    assert without[0] is None and full[0].shape == (T, B, D)
    for a, b in zip(full[1:], without[1:]):
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes()
