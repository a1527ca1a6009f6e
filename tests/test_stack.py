"""elman.stack (layers x directions x lengths) against a plain loop over sequences, in float64.

The loop below is the spec of the stack's semantics, written the obvious way: every sequence on
its own, cut to its length, each layer and direction a call of elman.reference's rnn_forward /
rnn_backward (themselves checked against finite differences in test_reference.py), the reverse
direction on the sequence flipped in time. The stack must give the same out, h_n, dx, dh0 and
weight gradients for every combination of layers, directions, activations and lengths.
"""

import numpy as np
import pytest

from elman import reference as ref
from elman.stack import stack_backward, stack_forward

from conftest import rel_error

ACTIVATIONS = list(ref.HIDDEN_ACTIVATIONS)
T, B, D, H = 6, 4, 3, 5
LENGTHS = {
    "none": None,
    "mixed": [6, 3, 1, 5],  # one full, others ending early
    "with_empty": [2, 0, 6, 4],  # an empty sequence: its h_n is its h0
}
TOL = 1e-12
# The same computation through the same kernels: equal up to the last bit, because a GEMM may
# round differently when its output lands at another address.
SAME = 1e-14


# --------------------------------------------------------------------------- #
# the spec: one sequence at a time
# --------------------------------------------------------------------------- #

def make_weights(rng, num_layers, dirs, dtype=np.float64):
    """List over k = layer * dirs + direction of (W_xh, W_hh, b_h), scaled to avoid saturation."""
    weights = []
    for layer in range(num_layers):
        D_in = D if layer == 0 else dirs * H
        for _ in range(dirs):
            weights.append((
                (rng.standard_normal((H, D_in)) / np.sqrt(D_in)).astype(dtype),
                (rng.standard_normal((H, H)) / np.sqrt(H)).astype(dtype),
                (0.1 * rng.standard_normal(H)).astype(dtype),
            ))
    return weights


def loop_stack(x, h0, weights, num_layers, dirs, activation, lengths, d_out, d_h_n):
    """Forward and backward of the stack, sequence by sequence: (out, h_n, dx, dh0, dweights)."""
    T_, B_, _ = x.shape
    out = np.zeros((T_, B_, dirs * H))
    h_n = np.zeros((num_layers * dirs, B_, H))
    dx = np.zeros_like(x)
    dh0 = np.zeros_like(h0)
    dweights = [[np.zeros_like(w) for w in triple[:2]] + [np.zeros(H)] for triple in weights]
    lengths = [T_] * B_ if lengths is None else lengths
    for b, n in enumerate(lengths):
        # forward: the layer inputs and, per (layer, direction), its input and states in its own time
        inputs = [x[:n, b:b + 1]]  # [n, 1, D_in]
        runs = {}
        for layer in range(num_layers):
            outs = []
            for d in range(dirs):
                k = layer * dirs + d
                seq = inputs[-1] if d == 0 else inputs[-1][::-1]  # reverse: flipped in time
                hs = ref.rnn_forward(seq, h0[k, b:b + 1], *weights[k], activation)  # [n, 1, H]
                runs[k] = (seq, hs)
                h_n[k, b] = hs[-1, 0] if n > 0 else h0[k, b]
                outs.append(hs if d == 0 else hs[::-1])
            inputs.append(np.concatenate(outs, axis=-1))
        out[:n, b] = inputs[-1][:, 0]
        # backward, top layer first
        grad = d_out[:n, b:b + 1]  # dL/d(layer output) [n, 1, dirs*H]
        for layer in reversed(range(num_layers)):
            d_input = np.zeros_like(inputs[layer])
            for d in range(dirs):
                k = layer * dirs + d
                seq, hs = runs[k]
                g = grad[..., d * H:(d + 1) * H]
                dhs = np.array(g if d == 0 else g[::-1])
                if n == 0:
                    dh0[k, b] += d_h_n[k, b]  # the final state is the initial state
                    continue
                dhs[-1, 0] += d_h_n[k, b]
                dseq, dh0_k, dW_xh, dW_hh, db_h = ref.rnn_backward(
                    dhs, seq, h0[k, b:b + 1], hs, weights[k][0], weights[k][1], activation)
                d_input += dseq if d == 0 else dseq[::-1]
                dh0[k, b] += dh0_k[0]
                for acc, g_k in zip(dweights[k], (dW_xh, dW_hh, db_h)):
                    acc += g_k
            grad = d_input
        dx[:n, b] = grad[:, 0]
    return out, h_n, dx, dh0, dweights


def random_case(rng, num_layers, dirs, T_=T):
    x = rng.standard_normal((T_, B, D))
    h0 = 0.5 * rng.standard_normal((num_layers * dirs, B, H))
    d_out = rng.standard_normal((T_, B, dirs * H))
    d_h_n = rng.standard_normal((num_layers * dirs, B, H))
    return x, h0, make_weights(rng, num_layers, dirs), d_out, d_h_n


def run_stack(x, h0, weights, num_layers, dirs, activation, lengths, d_out, d_h_n):
    out, h_n, cache = stack_forward(x, h0, weights, num_layers=num_layers,
                                    bidirectional=dirs == 2, activation=activation, lengths=lengths)
    dx, dh0, dweights = stack_backward(cache, d_out, d_h_n)
    return out, h_n, dx, dh0, dweights


def assert_same(got, want, tol=TOL):
    names = ("out", "h_n", "dx", "dh0")
    for name, g, w in zip(names, got[:4], want[:4]):
        assert g.shape == w.shape, name
        assert rel_error(g, w) <= tol, f"{name}: relative error {rel_error(g, w):.3g}"
    for k, (g_triple, w_triple) in enumerate(zip(got[4], want[4])):
        for name, g, w in zip(("dW_xh", "dW_hh", "db_h"), g_triple, w_triple):
            assert g.shape == w.shape, f"{name}[{k}]"
            assert rel_error(g, w) <= tol, f"{name}[{k}]: relative error {rel_error(g, w):.3g}"


# --------------------------------------------------------------------------- #
# every combination against the loop
# --------------------------------------------------------------------------- #

@pytest.mark.parametrize("lengths", list(LENGTHS), ids=list(LENGTHS))
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("num_layers", [1, 2, 3])
def test_stack_matches_loop(rng, num_layers, bidirectional, activation, lengths):
    dirs = 2 if bidirectional else 1
    x, h0, weights, d_out, d_h_n = random_case(rng, num_layers, dirs)
    args = (x, h0, weights, num_layers, dirs, activation, LENGTHS[lengths], d_out, d_h_n)
    assert_same(run_stack(*args), loop_stack(*args))


@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
def test_outputs_past_end_are_zero_and_dx_too(rng, bidirectional):
    dirs = 2 if bidirectional else 1
    x, h0, weights, d_out, d_h_n = random_case(rng, 2, dirs)
    lengths = np.array(LENGTHS["with_empty"])
    out, h_n, dx, dh0, _ = run_stack(x, h0, weights, 2, dirs, "tanh", lengths, d_out, d_h_n)
    past_end = np.arange(T)[:, None] >= lengths  # [T, B]
    assert np.all(out[past_end] == 0) and np.all(dx[past_end] == 0)
    assert np.all(out[~past_end] != 0)
    np.testing.assert_array_equal(h_n[:, 1], h0[:, 1])  # the empty sequence keeps its h0


def test_full_lengths_equal_no_lengths(rng):
    x, h0, weights, d_out, d_h_n = random_case(rng, 2, 2)
    without = run_stack(x, h0, weights, 2, 2, "tanh", None, d_out, d_h_n)
    full = run_stack(x, h0, weights, 2, 2, "tanh", np.full(B, T), d_out, d_h_n)
    assert_same(full, without, tol=SAME)


def test_padding_and_gradients_past_end_never_leak(rng):
    """NaN in x's padding and in d_out past each end change nothing."""
    x, h0, weights, d_out, d_h_n = random_case(rng, 2, 2)
    lengths = np.array(LENGTHS["mixed"])
    clean = run_stack(x, h0, weights, 2, 2, "sigmoid", lengths, d_out, d_h_n)
    past_end = np.arange(T)[:, None] >= lengths
    x_nan, d_out_nan = x.copy(), d_out.copy()
    x_nan[past_end] = np.nan
    d_out_nan[past_end] = np.inf
    dirty = run_stack(x_nan, h0, weights, 2, 2, "sigmoid", lengths, d_out_nan, d_h_n)
    assert_same(dirty, clean, tol=SAME)


def test_exploding_padding_steps_stay_harmless(rng):
    """relu with W_hh = 10 I: the kernels' steps past a short sequence's end overflow to inf, yet
    every result stays finite and equal to the loop, which never runs those steps."""
    T_ = 400
    x, h0, weights, d_out, d_h_n = random_case(rng, 1, 1, T_=T_)
    W_xh, _, b_h = weights[0]
    weights = [(W_xh, 10 * np.eye(H), np.abs(b_h) + 0.1)]
    h0 = np.abs(h0)
    lengths = [2, 3, 1, 2]  # the valid steps stay finite: 10^3 is nothing
    args = (x, h0, weights, 1, 1, "relu", lengths, d_out, d_h_n)
    got = run_stack(*args)
    for a in got[:4] + tuple(got[4][0]):
        assert np.all(np.isfinite(a))
    assert_same(got, loop_stack(*args))


def test_without_d_h_n_and_without_h0(rng):
    x, _, weights, d_out, _ = random_case(rng, 2, 2)
    zeros_h0 = np.zeros((4, B, H))
    zeros_dhn = np.zeros((4, B, H))
    lengths = LENGTHS["with_empty"]
    out, h_n, cache = stack_forward(x, None, weights, num_layers=2, bidirectional=True,
                                    lengths=lengths)
    dx, dh0, dweights = stack_backward(cache, d_out)
    want = loop_stack(x, zeros_h0, weights, 2, 2, "tanh", lengths, d_out, zeros_dhn)
    assert_same((out, h_n, dx, dh0, dweights), want)


def test_zero_steps(rng):
    x, h0, weights, _, d_h_n = random_case(rng, 2, 2, T_=0)
    out, h_n, cache = stack_forward(x, h0, weights, num_layers=2, bidirectional=True)
    assert out.shape == (0, B, 2 * H)
    np.testing.assert_array_equal(h_n, h0)
    dx, dh0, dweights = stack_backward(cache, np.zeros((0, B, 2 * H)), d_h_n)
    assert dx.shape == (0, B, D)
    np.testing.assert_array_equal(dh0, d_h_n)
    assert all(np.all(g == 0) for triple in dweights for g in triple)


def test_backward_twice_and_inputs_untouched(rng):
    x, h0, weights, d_out, d_h_n = random_case(rng, 2, 2)
    lengths = np.array(LENGTHS["mixed"])
    originals = [a.copy() for a in (x, h0, d_out, d_h_n, lengths)]
    weight_copies = [[w.copy() for w in triple] for triple in weights]
    _, _, cache = stack_forward(x, h0, weights, num_layers=2, bidirectional=True, lengths=lengths)
    first = stack_backward(cache, d_out, d_h_n)
    second = stack_backward(cache, d_out, d_h_n)
    for a, b in zip(first[:2], second[:2]):
        assert rel_error(a, b) <= SAME
    for a, b in zip((x, h0, d_out, d_h_n, lengths), originals):
        np.testing.assert_array_equal(a, b)
    for triple, copies in zip(weights, weight_copies):
        for w, c in zip(triple, copies):
            np.testing.assert_array_equal(w, c)


@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
def test_dtypes(rng, bidirectional):
    dirs = 2 if bidirectional else 1
    x, h0, weights, d_out, d_h_n = random_case(rng, 2, dirs)
    w32 = [tuple(w.astype(np.float32) for w in triple) for triple in weights]
    out, h_n, cache = stack_forward(x.astype(np.float32), h0.astype(np.float32), w32,
                                    num_layers=2, bidirectional=bidirectional, lengths=[6, 2, 0, 4])
    dx, dh0, dweights = stack_backward(cache, d_out, d_h_n)  # float64 gradients are cast to float32
    assert {a.dtype for a in (out, h_n, dx, dh0)} == {np.dtype(np.float32)}
    assert {g.dtype for triple in dweights for g in triple} == {np.dtype(np.float32)}
    want = run_stack(x, h0, weights, 2, dirs, "tanh", [6, 2, 0, 4], d_out, d_h_n)
    assert_same((out, h_n, dx, dh0, dweights), want, tol=1e-5)
    out64, _, _ = stack_forward(x, h0.astype(np.float32), w32, num_layers=2,
                                bidirectional=bidirectional)
    assert out64.dtype == np.float64  # one float64 input makes the whole call float64


# --------------------------------------------------------------------------- #
# bad input
# --------------------------------------------------------------------------- #

def forward_with(rng, **changes):
    x, h0, weights, _, _ = random_case(rng, 2, 2)
    args = dict(x=x, h0=h0, weights=weights, num_layers=2, bidirectional=True, lengths=None)
    args.update(changes)
    return stack_forward(args.pop("x"), args.pop("h0"), args.pop("weights"), **args)


@pytest.mark.parametrize("changes, error, match", [
    (dict(x=np.zeros((T, D))), ValueError, r"x must have 3 dimensions \(T, B, D\)"),
    (dict(x=np.zeros((T, B, D), dtype=complex)), TypeError, "x must hold real numbers"),
    (dict(h0=np.zeros((4, B + 1, H))), ValueError, r"h0 has shape \(4, 5, 5\), expected"),
    (dict(num_layers=3), ValueError, "weights has 4 entries, expected num_layers"),
    (dict(num_layers=0), ValueError, "num_layers must be a positive integer \\(at least 1\\)"),
    (dict(lengths=[1, 2, 3]), ValueError, r"lengths has shape \(3,\), expected \(B,\)"),
    (dict(lengths=[1, 2, 7, 3]), ValueError, r"0\.\.6, got lengths\[2\] = 7"),
    (dict(lengths=[1, -2, 3, 3]), ValueError, r"got lengths\[1\] = -2"),
    (dict(lengths=[1.0, 2.0, 3.0, 3.0]), TypeError, "lengths must hold integers"),
])
def test_bad_forward_input(rng, changes, error, match):
    with pytest.raises(error, match=match):
        forward_with(rng, **changes)


def test_bad_weights(rng):
    x, h0, weights, _, _ = random_case(rng, 2, 2)
    wrong = list(weights)
    wrong[2] = (weights[2][0][:, :H], weights[2][1], weights[2][2])  # layer 1 reads 2H inputs
    with pytest.raises(ValueError, match=r"weights\[2\]\[0\] \(W_xh\) has shape \(5, 5\), expected"):
        stack_forward(x, h0, wrong, num_layers=2, bidirectional=True)
    wrong[2] = weights[2][:2]
    with pytest.raises(ValueError, match=r"weights\[2\] must be a triple"):
        stack_forward(x, h0, wrong, num_layers=2, bidirectional=True)


def test_bad_backward_input(rng):
    _, _, cache = forward_with(rng)
    with pytest.raises(ValueError, match=r"d_out has shape \(6, 4, 5\), expected \(T, B, dirs\*H\)"):
        stack_backward(cache, np.zeros((T, B, H)))
    with pytest.raises(ValueError, match=r"d_h_n has shape \(2, 4, 5\), expected \(L\*dirs, B, H\)"):
        stack_backward(cache, np.zeros((T, B, 2 * H)), np.zeros((2, B, H)))
    with pytest.raises(TypeError, match="cache must be the StackCache"):
        stack_backward({}, np.zeros((T, B, 2 * H)))
