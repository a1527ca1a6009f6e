"""The input contract of the functional core: what is converted, what is rejected, and how."""

import os
import re

import numpy as np
import pytest

import elman
from elman import reference as ref
from conftest import make_rnn_inputs

T, B, D, H = 4, 3, 5, 6
README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")


@pytest.fixture
def p(rng):
    return make_rnn_inputs(rng, T, B, D, H, np.float64)


def forward_args(p):
    return [p["x"], p["h0"], p["W_xh"], p["W_hh"], p["b_h"]]


def backward_args(p, rng):
    hs = ref.rnn_forward(**p)
    return [rng.standard_normal(hs.shape), p["x"], p["h0"], hs, p["W_xh"], p["W_hh"]]


# ----------------------------------------------------------------------------- shapes

@pytest.mark.parametrize("index,name,bad_shape,expected", [
    (0, "x", (T, B), "must have 3 dimensions (T, B, D), got shape (4, 3)"),
    (1, "h0", (B, H + 1), "has shape (3, 7), expected (B, H) = (3, 6)"),
    (1, "h0", (B + 1, H), "has shape (4, 6), expected (B, H) = (3, 6)"),
    (2, "W_xh", (H, D + 1), "has shape (6, 6), expected (H, D) = (6, 5)"),
    (3, "W_hh", (H, H + 1), "has shape (6, 7), expected (H, H) = (6, 6)"),
    (4, "b_h", (H + 1,), "has shape (7,), expected (H,) = (6,)"),
    (4, "b_h", (1, H), "has shape (1, 6), expected (H,) = (6,)"),
])
def test_forward_shape_errors_name_argument_and_shapes(p, index, name, bad_shape, expected):
    args = forward_args(p)
    args[index] = np.zeros(bad_shape)
    with pytest.raises(ValueError, match=re.escape(f"{name} {expected}")):
        elman.rnn_forward(*args)


@pytest.mark.parametrize("index,name", [(0, "dhs"), (2, "h0"), (3, "hs"), (4, "W_xh"), (5, "W_hh")])
def test_backward_shape_errors(p, rng, index, name):
    args = backward_args(p, rng)
    args[index] = np.zeros(args[index].shape[:-1] + (args[index].shape[-1] + 1,))
    with pytest.raises(ValueError, match=rf"^{name} (has shape|must have)"):
        elman.rnn_backward(*args)


def test_cell_shape_errors_use_cell_names(p):
    with pytest.raises(ValueError, match=re.escape("h_prev has shape (3, 5), expected (B, H) = (3, 6)")):
        elman.cell_forward(p["x"][0], np.zeros((B, H - 1)), p["W_xh"], p["W_hh"], p["b_h"])
    with pytest.raises(ValueError, match="x_t must have 2 dimensions"):
        elman.cell_forward(p["x"], p["h0"], p["W_xh"], p["W_hh"], p["b_h"])


def test_output_and_loss_shape_errors(rng):
    hs = rng.standard_normal((T, B, H))
    W, b = rng.standard_normal((2, H)), np.zeros(2)
    with pytest.raises(ValueError, match=re.escape("W_hy has shape (2, 5), expected (O, H) = (2, 6)")):
        elman.output_forward(hs, W[:, :-1], b)
    with pytest.raises(ValueError, match=re.escape("b_y has shape (3,), expected (O,) = (2,)")):
        elman.output_forward(hs, W, np.zeros(3))
    ys = elman.output_forward(hs, W, b)
    with pytest.raises(ValueError, match=re.escape("dys has shape (4, 3, 3), expected hs.shape[:-1] + (O,)")):
        elman.output_backward(np.zeros((T, B, 3)), hs, ys, W)
    with pytest.raises(ValueError, match=re.escape("targets has shape (4, 2), expected logits.shape[:-1] = (4, 3)")):
        elman.softmax_cross_entropy(ys, np.zeros((T, 2), int))
    with pytest.raises(ValueError, match="mask has shape"):
        elman.softmax_cross_entropy(ys, np.zeros((T, B), int), mask=np.ones(T))


# ----------------------------------------------------------------------------- kinds

@pytest.mark.parametrize("bad", [None, "abc", {"a": 1}, object(), [[1, 2], [3]],
                                 np.zeros((T, B, D), complex), np.array([[["a"]]])])
def test_wrong_kind_of_object_is_type_error(p, bad):
    args = forward_args(p)
    args[0] = bad
    with pytest.raises(TypeError, match="^x "):
        elman.rnn_forward(*args)


def test_bad_activation_and_reduction(p, rng):
    with pytest.raises(ValueError, match="activation must be one of 'tanh', 'sigmoid', 'relu', 'identity', got 'elu'"):
        elman.rnn_forward(*forward_args(p), activation="elu")
    with pytest.raises(TypeError, match="activation must be a str"):
        elman.rnn_forward(*forward_args(p), activation=None)
    with pytest.raises(ValueError, match="activation must be one of 'identity', 'softmax', 'sigmoid'"):
        elman.output_forward(p["h0"], p["W_hh"], p["b_h"], activation="tanh")
    logits = rng.standard_normal((T, B, 3))
    with pytest.raises(ValueError, match="reduction must be 'mean' or 'sum', got 'max'"):
        elman.softmax_cross_entropy(logits, np.zeros((T, B), int), reduction="max")


def test_targets_must_be_integers_in_range(rng):
    logits = rng.standard_normal((T, B, 3))
    with pytest.raises(TypeError, match="targets must be an array of integer class indices"):
        elman.softmax_cross_entropy(logits, np.zeros((T, B)))
    bad = np.zeros((T, B), int)
    bad[2, 1] = 3
    with pytest.raises(ValueError, match=r"targets holds 3 at flat position 7, outside the classes \[0, C\) with C = 3"):
        elman.softmax_cross_entropy(logits, bad)
    bad[2, 1] = -1
    with pytest.raises(ValueError, match="targets holds -1"):
        elman.softmax_cross_entropy(logits, bad)
    mask = np.ones((T, B), bool)
    mask[2, 1] = False  # an ignored position may hold any target
    loss, _ = elman.softmax_cross_entropy(logits, bad, mask)
    assert loss == pytest.approx(ref.softmax_cross_entropy(logits, bad, mask)[0], rel=1e-12)


def test_a_uint64_target_is_reported_as_given(rng):
    """2**63 does not fit int64: it must not be shown as -9223372036854775808."""
    logits = rng.standard_normal((2, 3))
    targets = np.array([0, 2**63], np.uint64)
    with pytest.raises(ValueError, match=r"targets holds 9223372036854775808 at flat position 1"):
        elman.softmax_cross_entropy(logits, targets)
    with pytest.raises(ValueError, match=r"targets holds 18446744073709551615 at flat position 1"):
        elman.softmax_cross_entropy(logits, np.array([0, 2**64 - 1], np.uint64))
    loss, _ = elman.softmax_cross_entropy(logits, targets, mask=np.array([1, 0]))  # not read
    assert loss == pytest.approx(ref.softmax_cross_entropy(logits, [0, 0], np.array([1, 0]))[0])


def unaligned(shape, dtype):
    """An array of shape whose data starts one byte past an aligned address."""
    raw = np.zeros(int(np.prod(shape)) * np.dtype(dtype).itemsize + 1, np.uint8)
    return raw[1:].view(dtype).reshape(shape)


def read_only(shape, dtype):
    a = np.zeros(shape, dtype)
    a.flags.writeable = False
    return a


@pytest.mark.parametrize("make, message", [
    (read_only, r"out is read-only \(its writeable flag is False\)"),
    (unaligned, r"out is not aligned: its data does not start at a multiple of 8 bytes"),
    (lambda s, d: np.zeros(s, np.float32), r"out must have dtype float64 \(the dtype this call computes in\), got float32"),
    (lambda s, d: np.zeros(s[::-1], d).T, r"out must be C-contiguous, got an array with strides"),
    (lambda s, d: np.zeros(s, ">f8"), r"out must be float64 in native byte order, got the byte-swapped dtype >f8"),
], ids=["read_only", "unaligned", "dtype", "fortran", "byte_swapped"])
def test_out_errors_say_which_condition_failed(p, make, message):
    """elman._core's out= (the streaming path): each way out can be unusable has its own message
    (all of them said "must be a writeable, C-contiguous float64 array, got dtype float64")."""
    from elman import _core

    x_t, h_prev = p["x"][0], p["h0"]
    with pytest.raises(ValueError, match=message):
        _core.cell_forward(x_t, h_prev, p["W_xh"], p["W_hh"], p["b_h"], out=make((B, H), np.float64))
    hs = p["h0"]
    with pytest.raises(ValueError, match=message.replace("8 bytes", "8 bytes")):
        _core.output_forward(hs, p["W_hh"], p["b_h"], out=make((B, H), np.float64))


def test_long_double_computes_in_float64_as_documented(p):
    """The input rules say wider floats compute in float64 (their extra precision is not used):
    the result is float64 and equals the float64 computation."""
    if np.dtype(np.longdouble).itemsize <= 8:
        pytest.skip("long double is float64 on this platform")
    wide = [a.astype(np.longdouble) for a in forward_args(p)]
    out = elman.rnn_forward(*wide)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, elman.rnn_forward(*forward_args(p)))
    with open(README, encoding="utf-8") as f:
        readme = f.read()
    for doc in (elman.functional.__doc__, readme, elman.losses.__doc__):
        assert "long double" in doc, doc


# ----------------------------------------------------------------------------- conversions

def layouts(a):
    """The same values in layouts that must all be read correctly."""
    fortran = np.asfortranarray(a)
    strided = np.repeat(a, 2, axis=-1)[..., ::2]
    readonly = a.copy()
    readonly.flags.writeable = False
    swapped = a.astype(a.dtype.newbyteorder(">"))
    return {"fortran": fortran, "strided": strided, "readonly": readonly, "byteswapped": swapped,
            "list": a.tolist()}


@pytest.mark.parametrize("layout", ["fortran", "strided", "readonly", "byteswapped", "list"])
@pytest.mark.parametrize("index", range(5))
def test_any_layout_gives_the_same_result(p, index, layout):
    want = elman.rnn_forward(*forward_args(p))
    args = forward_args(p)
    args[index] = layouts(args[index])[layout]
    got = elman.rnn_forward(*args)
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, want)


def test_dtype_rules(p):
    f32 = [a.astype(np.float32) for a in forward_args(p)]
    assert elman.rnn_forward(*f32).dtype == np.float32
    mixed = list(f32)
    mixed[2] = forward_args(p)[2]  # one float64 argument: computed in float64, as NumPy would
    assert elman.rnn_forward(*mixed).dtype == np.float64
    half = [a.astype(np.float16) for a in forward_args(p)]
    out = elman.rnn_forward(*half)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, ref.rnn_forward(*[a.astype(np.float32) for a in half]), rtol=1e-5, atol=1e-6)
    ints = [np.round(a * 3).astype(np.int32) for a in forward_args(p)]
    out = elman.rnn_forward(*ints)
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, ref.rnn_forward(*[a.astype(np.float64) for a in ints]), rtol=1e-12, atol=1e-12)
    boolean = [a > 0 for a in forward_args(p)]
    assert elman.rnn_forward(*boolean).dtype == np.float64
    # the logits alone decide the loss's dtype
    logits = np.zeros((T, B, 3), np.float32)
    _, d = elman.softmax_cross_entropy(logits, np.zeros((T, B), np.int8), mask=np.ones((T, B)))
    assert d.dtype == np.float32


def test_inputs_are_never_modified(p, rng):
    fwd = forward_args(p)
    bwd = backward_args(p, rng)
    copies = [a.copy() for a in fwd + bwd]
    for a in fwd + bwd:
        a.flags.writeable = False  # any write from the kernels would raise or crash here
    elman.rnn_forward(*fwd)
    elman.rnn_backward(*bwd)
    elman.cell_backward(bwd[0][0], bwd[1][0], bwd[2], bwd[3][0], bwd[4], bwd[5])
    ys = elman.output_forward(bwd[3], p["W_hh"], p["b_h"], "softmax")
    elman.output_backward(bwd[0], bwd[3], ys, p["W_hh"], "softmax")
    for a, c in zip(fwd + bwd, copies):
        np.testing.assert_array_equal(a, c)


def test_outputs_are_fresh_writeable_arrays(p):
    hs = elman.rnn_forward(*forward_args(p))
    assert hs.flags.c_contiguous and hs.flags.writeable and hs.flags.owndata
    assert not np.shares_memory(hs, p["x"])


# ----------------------------------------------------------------------------- edge values

@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "relu", "identity"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nan_propagates(p, activation, dtype):
    args = [a.astype(dtype) for a in forward_args(p)]
    args[0][1, 2, 0] = np.nan
    hs = elman.rnn_forward(*args, activation=activation)
    assert np.isnan(hs[1, 2]).all()  # every unit of the poisoned sequence at that step
    assert np.isnan(hs[1:, 2]).all() and not np.isnan(hs[:, :2]).any() and not np.isnan(hs[0]).any()
    _, d = elman.softmax_cross_entropy(np.array([[[0.0, np.nan]]], dtype), np.zeros((1, 1), int))
    assert np.isnan(d).all()


def test_infinity_saturates_like_the_reference(p):
    args = forward_args(p)
    args[0][0, 0, 0] = np.inf
    args[2] = np.abs(args[2]) + 0.1  # every unit sees +inf
    np.testing.assert_array_equal(elman.rnn_forward(*args)[0, 0], np.ones(H))


@pytest.mark.parametrize("shape", [(0, B, D), (T, 0, D), (0, 0, D)])
def test_empty_sequences(p, shape, rng):
    x = np.zeros(shape)
    Bn = shape[1]
    h0 = np.zeros((Bn, H))
    hs = elman.rnn_forward(x, h0, p["W_xh"], p["W_hh"], p["b_h"])
    assert hs.shape == (shape[0], Bn, H)
    dx, dh0, dW_xh, dW_hh, db = elman.rnn_backward(np.zeros_like(hs), x, h0, hs, p["W_xh"], p["W_hh"])
    assert dx.shape == shape and dh0.shape == (Bn, H)
    for g, s in [(dW_xh, (H, D)), (dW_hh, (H, H)), (db, (H,))]:
        assert g.shape == s and not g.any()


def test_too_large_to_allocate_is_memory_error(p):
    x = np.zeros((10**7, 10**7, 0))  # no data, but hs would need 10**14 * H floats
    with pytest.raises(MemoryError):
        elman.rnn_forward(x, np.zeros((10**7, 1)), np.zeros((1, 0)), np.zeros((1, 1)), np.zeros(1))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("column", [0, 7, 15, 16, 31, 32, 36])  # whole packets and the tail
def test_nan_in_one_row_of_a_softmax_stays_in_that_row(dtype, column, rng):
    logits = rng.standard_normal((3, 37)).astype(dtype)
    logits[1, column] = np.nan
    targets = np.array([0, 5, 36])
    _, d = elman.softmax_cross_entropy(logits, targets)
    ys = elman.output_forward(logits, np.eye(37, dtype=dtype), np.zeros(37, dtype), "softmax")
    _, d_ref = ref.softmax_cross_entropy(logits, targets)
    ys_ref = ref.output_forward(logits, np.eye(37, dtype=dtype), np.zeros(37, dtype), "softmax")
    for got, want in [(d, d_ref), (ys, ys_ref)]:
        assert np.isnan(got[1]).all()
        np.testing.assert_allclose(got[[0, 2]], want[[0, 2]], rtol=1e-5, atol=1e-7)
