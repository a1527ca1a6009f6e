"""The NumPy reference (elman.reference) against central finite differences, in float64.

The reference is the spec the C++ kernels are tested against, so it is itself
checked here from first principles: every gradient it returns is compared with
a numerical one, for every activation.
"""

import subprocess
import sys
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from elman import reference as ref

from conftest import make_rnn_inputs, numerical_gradient, rel_error

HIDDEN = list(ref.HIDDEN_ACTIVATIONS)
OUTPUT = list(ref.OUTPUT_ACTIVATIONS)
TOL = 1e-7  # relative error allowed between analytic and numerical gradients (float64)
MARGIN = 1e-3  # smallest |pre-activation| allowed, so relu's kink is never crossed by eps


# --------------------------------------------------------------------------- #
# helpers
# --------------------------------------------------------------------------- #

def pre_activations(inp, activation):
    """All hidden pre-activations z[T, B, H] of rnn_forward on inp."""
    f = ref.HIDDEN_ACTIVATIONS[activation]
    h, zs = inp["h0"], []
    for x_t in inp["x"]:
        z = x_t @ inp["W_xh"].T + h @ inp["W_hh"].T + inp["b_h"]
        zs.append(z)
        h = f(z)
    return np.array(zs)


def rnn_inputs(rng, T, B, D, H, activation, dtype=np.float64):
    """make_rnn_inputs, redrawn until no pre-activation is within MARGIN of 0 (relu's kink)."""
    for _ in range(100):
        inp = make_rnn_inputs(rng, T, B, D, H, dtype)
        z = pre_activations(inp, activation)
        if z.size == 0 or np.abs(z).min() > MARGIN:
            return inp
    raise AssertionError("could not draw inputs away from the kink")


def check_gradients(forward, args, dout, analytic, tol=TOL):
    """Compare analytic[name] with the numerical gradient of sum(forward(**args) * dout) wrt args[name]."""
    for name, grad in analytic.items():
        def f(v, name=name):
            return forward(**{**args, name: v})

        num = numerical_gradient(f, args[name], dout)
        assert grad.shape == args[name].shape, name
        err = rel_error(grad, num)
        assert err < tol, f"d{name}: relative error {err:.3g}"


def close(a, b, rtol=1e-13):
    return a.shape == b.shape and np.allclose(a, b, rtol=rtol, atol=1e-14)


# --------------------------------------------------------------------------- #
# activations
# --------------------------------------------------------------------------- #

@pytest.mark.parametrize("activation", HIDDEN)
def test_hidden_derivative_from_output(activation):
    z = np.array([-2.0, -0.7, -0.1, 0.3, 1.1, 2.5])
    f = ref.HIDDEN_ACTIVATIONS[activation]
    df = ref.HIDDEN_DERIVATIVES[activation]
    num = numerical_gradient(f, z)  # f is elementwise, so d sum(f(z)) / dz_i = f'(z_i)
    assert rel_error(df(f(z)), num) < TOL


def test_activation_tables_agree():
    assert set(ref.HIDDEN_ACTIVATIONS) == set(ref.HIDDEN_DERIVATIVES)
    assert set(ref.OUTPUT_ACTIVATIONS) == set(ref.OUTPUT_GRADIENTS)
    assert {"tanh", "sigmoid", "relu", "identity"} <= set(HIDDEN)
    assert {"identity", "softmax", "sigmoid"} <= set(OUTPUT)


def test_sigmoid_and_softmax_do_not_overflow():
    z = np.array([[-1000.0, 0.0, 1000.0], [1e4, 1e4, 1e4]], dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = ref.sigmoid(z)
        p = ref.softmax(z)
    assert s.dtype == np.float32 and p.dtype == np.float32
    assert s[0].tolist() == [0.0, 0.5, 1.0]
    assert np.allclose(p[0], [0, 0, 1]) and np.allclose(p[1], 1 / 3)


# --------------------------------------------------------------------------- #
# cell
# --------------------------------------------------------------------------- #

@pytest.mark.parametrize("activation", HIDDEN)
def test_cell_backward_matches_finite_differences(rng, activation):
    B, D, H = 3, 4, 5
    inp = rnn_inputs(rng, 1, B, D, H, activation)
    args = dict(x_t=inp["x"][0], h_prev=inp["h0"], W_xh=inp["W_xh"], W_hh=inp["W_hh"], b_h=inp["b_h"])
    h_next = ref.cell_forward(**args, activation=activation)
    dh_next = rng.standard_normal((B, H))
    dx_t, dh_prev, dW_xh, dW_hh, db_h = ref.cell_backward(
        dh_next, args["x_t"], args["h_prev"], h_next, args["W_xh"], args["W_hh"], activation=activation
    )

    def forward(**a):
        return ref.cell_forward(**a, activation=activation)

    analytic = dict(x_t=dx_t, h_prev=dh_prev, W_xh=dW_xh, W_hh=dW_hh, b_h=db_h)
    check_gradients(forward, args, dh_next, analytic)


def test_cell_forward_formula(rng):
    inp = make_rnn_inputs(rng, 1, 2, 3, 4)
    x_t, h = inp["x"][0], inp["h0"]
    # column-vector textbook form, one sequence at a time: h_t = tanh(W_xh x_t + W_hh h_{t-1} + b_h)
    expected = np.stack([np.tanh(inp["W_xh"] @ x_t[b] + inp["W_hh"] @ h[b] + inp["b_h"]) for b in range(2)])
    got = ref.cell_forward(x_t, h, inp["W_xh"], inp["W_hh"], inp["b_h"])
    assert close(got, expected)


# --------------------------------------------------------------------------- #
# sequence
# --------------------------------------------------------------------------- #

@pytest.mark.parametrize("activation", HIDDEN)
def test_rnn_backward_matches_finite_differences(rng, activation):
    T, B, D, H = 4, 2, 3, 4
    inp = rnn_inputs(rng, T, B, D, H, activation)
    hs = ref.rnn_forward(**inp, activation=activation)
    dhs = rng.standard_normal((T, B, H))
    dx, dh0, dW_xh, dW_hh, db_h = ref.rnn_backward(
        dhs, inp["x"], inp["h0"], hs, inp["W_xh"], inp["W_hh"], activation=activation
    )

    def forward(**a):
        return ref.rnn_forward(**a, activation=activation)

    analytic = dict(x=dx, h0=dh0, W_xh=dW_xh, W_hh=dW_hh, b_h=db_h)
    check_gradients(forward, inp, dhs, analytic)


@pytest.mark.parametrize("activation", HIDDEN)
def test_rnn_backward_final_state_gradient_only(rng, activation):
    # a loss on the final state alone: dhs is zero except dhs[-1]
    T, B, D, H = 3, 2, 3, 3  # short: through sigmoid the gradient shrinks ~4x per step
    inp = rnn_inputs(rng, T, B, D, H, activation)
    hs = ref.rnn_forward(**inp, activation=activation)
    dhs = np.zeros((T, B, H))
    dhs[-1] = rng.standard_normal((B, H))
    grads = ref.rnn_backward(dhs, inp["x"], inp["h0"], hs, inp["W_xh"], inp["W_hh"], activation=activation)

    def forward(**a):
        return ref.rnn_forward(**a, activation=activation)

    check_gradients(forward, inp, dhs, dict(zip(["x", "h0", "W_xh", "W_hh", "b_h"], grads)))


@pytest.mark.parametrize("activation", HIDDEN)
def test_rnn_forward_is_repeated_cell_forward(rng, activation):
    inp = make_rnn_inputs(rng, 6, 3, 4, 5)
    hs = ref.rnn_forward(**inp, activation=activation)
    h = inp["h0"]
    for t in range(6):
        h = ref.cell_forward(inp["x"][t], h, inp["W_xh"], inp["W_hh"], inp["b_h"], activation=activation)
        assert close(hs[t], h)


@pytest.mark.parametrize("activation", HIDDEN)
def test_rnn_backward_is_chained_cell_backward(rng, activation):
    T, B, D, H = 5, 3, 2, 4
    inp = make_rnn_inputs(rng, T, B, D, H)
    hs = ref.rnn_forward(**inp, activation=activation)
    dhs = rng.standard_normal((T, B, H))
    dx, dh0, dW_xh, dW_hh, db_h = ref.rnn_backward(
        dhs, inp["x"], inp["h0"], hs, inp["W_xh"], inp["W_hh"], activation=activation
    )
    carry = np.zeros((B, H))
    sums = [np.zeros((H, D)), np.zeros((H, H)), np.zeros(H)]
    for t in reversed(range(T)):
        h_prev = hs[t - 1] if t else inp["h0"]
        g = ref.cell_backward(dhs[t] + carry, inp["x"][t], h_prev, hs[t], inp["W_xh"], inp["W_hh"], activation)
        assert close(dx[t], g[0])
        carry = g[1]
        sums = [s + gi for s, gi in zip(sums, g[2:])]
    assert close(dh0, carry)
    for got, want in zip((dW_xh, dW_hh, db_h), sums):
        assert close(got, want)


@pytest.mark.parametrize("activation", HIDDEN)
def test_rnn_backward_t1_equals_cell_backward(rng, activation):
    inp = make_rnn_inputs(rng, 1, 3, 4, 5)
    hs = ref.rnn_forward(**inp, activation=activation)
    dhs = rng.standard_normal(hs.shape)
    seq = ref.rnn_backward(dhs, inp["x"], inp["h0"], hs, inp["W_xh"], inp["W_hh"], activation)
    cell = ref.cell_backward(dhs[0], inp["x"][0], inp["h0"], hs[0], inp["W_xh"], inp["W_hh"], activation)
    assert close(seq[0][0], cell[0])
    for a, b in zip(seq[1:], cell[1:]):
        assert close(a, b)


def test_inputs_are_not_modified(rng):
    inp = make_rnn_inputs(rng, 3, 2, 3, 4)
    saved = {k: v.copy() for k, v in inp.items()}
    hs = ref.rnn_forward(**inp)
    dhs = rng.standard_normal(hs.shape)
    hs_saved, dhs_saved = hs.copy(), dhs.copy()
    ref.rnn_backward(dhs, inp["x"], inp["h0"], hs, inp["W_xh"], inp["W_hh"])
    assert all(np.array_equal(inp[k], saved[k]) for k in inp)
    assert np.array_equal(hs, hs_saved) and np.array_equal(dhs, dhs_saved)


@settings(max_examples=25, deadline=None, database=None, derandomize=True)
@given(
    T=st.integers(0, 4),
    B=st.integers(0, 3),
    D=st.integers(1, 3),
    H=st.integers(1, 3),
    activation=st.sampled_from(HIDDEN),
    seed=st.integers(0, 2**32 - 1),
)
def test_rnn_backward_any_shape(T, B, D, H, activation, seed):
    rng = np.random.default_rng(seed)
    inp = rnn_inputs(rng, T, B, D, H, activation)
    hs = ref.rnn_forward(**inp, activation=activation)
    assert hs.shape == (T, B, H)
    dhs = rng.standard_normal((T, B, H))
    grads = ref.rnn_backward(dhs, inp["x"], inp["h0"], hs, inp["W_xh"], inp["W_hh"], activation)

    def forward(**a):
        return ref.rnn_forward(**a, activation=activation)

    check_gradients(forward, inp, dhs, dict(zip(["x", "h0", "W_xh", "W_hh", "b_h"], grads)))


# --------------------------------------------------------------------------- #
# output layer
# --------------------------------------------------------------------------- #

@pytest.mark.parametrize("activation", OUTPUT)
@pytest.mark.parametrize("lead", [(3, 2), (4,), (2, 2, 2)], ids=["TB", "rows", "3lead"])
def test_output_backward_matches_finite_differences(rng, activation, lead):
    H, O = 4, 3
    args = dict(
        hs=rng.standard_normal((*lead, H)),
        W_hy=rng.standard_normal((O, H)) / 2,
        b_y=rng.standard_normal(O) / 2,
    )
    ys = ref.output_forward(**args, activation=activation)
    assert ys.shape == (*lead, O)
    dys = rng.standard_normal(ys.shape)
    dhs, dW_hy, db_y = ref.output_backward(dys, args["hs"], ys, args["W_hy"], activation=activation)

    def forward(**a):
        return ref.output_forward(**a, activation=activation)

    check_gradients(forward, args, dys, dict(hs=dhs, W_hy=dW_hy, b_y=db_y))


def test_output_forward_formula(rng):
    hs = rng.standard_normal((2, 3, 4))
    W_hy, b_y = rng.standard_normal((5, 4)), rng.standard_normal(5)
    z = np.einsum("oh,tbh->tbo", W_hy, hs) + b_y
    assert close(ref.output_forward(hs, W_hy, b_y), z)
    assert close(ref.output_forward(hs, W_hy, b_y, "sigmoid"), 1 / (1 + np.exp(-z)))
    p = ref.output_forward(hs, W_hy, b_y, "softmax")
    assert close(p, np.exp(z) / np.exp(z).sum(-1, keepdims=True))
    assert np.allclose(p.sum(-1), 1)


# --------------------------------------------------------------------------- #
# loss
# --------------------------------------------------------------------------- #

def loss_inputs(rng, mask_kind, T=3, B=4, C=5):
    logits = 2 * rng.standard_normal((T, B, C))
    targets = rng.integers(0, C, size=(T, B))
    if mask_kind is None:
        return logits, targets, None
    keep = rng.random((T, B)) < 0.6
    keep[0, 0], keep[-1, -1] = True, False  # at least one kept and one ignored
    targets = np.where(keep, targets, -1)  # ignored positions carry an invalid target
    if mask_kind == "bool":
        return logits, targets, keep
    return logits, targets, keep * rng.uniform(0.5, 2.0, size=(T, B))  # float weights, zeros ignored


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("mask_kind", [None, "bool", "float"])
def test_softmax_cross_entropy_matches_finite_differences(rng, mask_kind, reduction):
    logits, targets, mask = loss_inputs(rng, mask_kind)
    loss, dlogits = ref.softmax_cross_entropy(logits, targets, mask, reduction)
    assert type(loss) is float
    assert dlogits.shape == logits.shape and dlogits.dtype == logits.dtype
    num = numerical_gradient(lambda v: ref.softmax_cross_entropy(v, targets, mask, reduction)[0], logits)
    assert rel_error(dlogits, num) < TOL


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("mask_kind", [None, "bool", "float"])
def test_softmax_cross_entropy_value(rng, mask_kind, reduction):
    logits, targets, mask = loss_inputs(rng, mask_kind)
    w = np.ones(targets.shape) if mask is None else np.asarray(mask, dtype=np.float64)
    T, B, C = logits.shape
    total = 0.0
    for t in range(T):
        for b in range(B):
            if w[t, b]:
                p = np.exp(logits[t, b]) / np.exp(logits[t, b]).sum()
                total += -w[t, b] * np.log(p[targets[t, b]])
    expected = total / w.sum() if reduction == "mean" else total
    loss, _ = ref.softmax_cross_entropy(logits, targets, mask, reduction)
    assert np.isclose(loss, expected, rtol=1e-13)


def test_softmax_cross_entropy_uniform_logits():
    loss, dlogits = ref.softmax_cross_entropy(np.zeros((2, 3, 4)), np.zeros((2, 3), dtype=int))
    assert np.isclose(loss, np.log(4))
    assert np.allclose(dlogits[..., 0], (0.25 - 1) / 6) and np.allclose(dlogits[..., 1:], 0.25 / 6)


def test_softmax_cross_entropy_large_logits_are_stable():
    logits = np.array([[[1000.0, 0.0, -1000.0]]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss, dlogits = ref.softmax_cross_entropy(logits, np.array([[1]]))
    assert np.isclose(loss, 1000.0) and np.isfinite(dlogits).all()


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("mask", [np.zeros((2, 3), dtype=bool), np.zeros((2, 3))], ids=["bool", "float"])
def test_softmax_cross_entropy_all_masked(rng, mask, reduction):
    logits = rng.standard_normal((2, 3, 4))
    loss, dlogits = ref.softmax_cross_entropy(logits, np.full((2, 3), -1), mask, reduction)
    assert loss == 0.0 and type(loss) is float
    assert dlogits.shape == logits.shape and not dlogits.any()


def test_end_to_end_gradient(rng):
    """rnn -> output layer -> cross-entropy, checked as one function of every parameter."""
    T, B, D, H, C = 3, 2, 3, 4, 5
    inp = rnn_inputs(rng, T, B, D, H, "tanh")
    params = dict(inp, W_hy=rng.standard_normal((C, H)) / 2, b_y=rng.standard_normal(C) / 2)
    targets = rng.integers(0, C, size=(T, B))

    def loss_fn(x, h0, W_xh, W_hh, b_h, W_hy, b_y):
        hs = ref.rnn_forward(x, h0, W_xh, W_hh, b_h)
        logits = ref.output_forward(hs, W_hy, b_y)
        return ref.softmax_cross_entropy(logits, targets)[0]

    hs = ref.rnn_forward(**inp)
    logits = ref.output_forward(hs, params["W_hy"], params["b_y"])
    _, dlogits = ref.softmax_cross_entropy(logits, targets)
    dhs, dW_hy, db_y = ref.output_backward(dlogits, hs, logits, params["W_hy"])
    dx, dh0, dW_xh, dW_hh, db_h = ref.rnn_backward(dhs, inp["x"], inp["h0"], hs, inp["W_xh"], inp["W_hh"])
    analytic = dict(x=dx, h0=dh0, W_xh=dW_xh, W_hh=dW_hh, b_h=db_h, W_hy=dW_hy, b_y=db_y)
    check_gradients(loss_fn, params, 1.0, analytic)


# --------------------------------------------------------------------------- #
# empty shapes, dtypes, errors
# --------------------------------------------------------------------------- #

@pytest.mark.parametrize("activation", HIDDEN)
def test_zero_steps(rng, activation):
    B, D, H, O = 3, 2, 4, 5
    inp = make_rnn_inputs(rng, 0, B, D, H)
    hs = ref.rnn_forward(**inp, activation=activation)
    assert hs.shape == (0, B, H) and hs.dtype == np.float64
    dx, dh0, dW_xh, dW_hh, db_h = ref.rnn_backward(
        np.zeros((0, B, H)), inp["x"], inp["h0"], hs, inp["W_xh"], inp["W_hh"], activation
    )
    assert dx.shape == (0, B, D)
    for g, shape in [(dh0, (B, H)), (dW_xh, (H, D)), (dW_hh, (H, H)), (db_h, (H,))]:
        assert g.shape == shape and not g.any()
    W_hy, b_y = rng.standard_normal((O, H)), rng.standard_normal(O)
    for out_act in OUTPUT:
        ys = ref.output_forward(hs, W_hy, b_y, out_act)
        assert ys.shape == (0, B, O)
        dhs, dW_hy, db_y = ref.output_backward(np.zeros_like(ys), hs, ys, W_hy, out_act)
        assert dhs.shape == (0, B, H)
        assert dW_hy.shape == (O, H) and not dW_hy.any() and db_y.shape == (O,) and not db_y.any()
    for reduction in ("mean", "sum"):
        loss, dlogits = ref.softmax_cross_entropy(np.zeros((0, B, O)), np.zeros((0, B), dtype=int), None, reduction)
        assert loss == 0.0 and dlogits.shape == (0, B, O)


@pytest.mark.parametrize("activation", HIDDEN)
def test_zero_batch(rng, activation):
    T, D, H, O = 3, 2, 4, 5
    inp = make_rnn_inputs(rng, T, 0, D, H)
    h = ref.cell_forward(inp["x"][0], inp["h0"], inp["W_xh"], inp["W_hh"], inp["b_h"], activation)
    assert h.shape == (0, H)
    dx_t, dh_prev, dW_xh, dW_hh, db_h = ref.cell_backward(
        np.zeros((0, H)), inp["x"][0], inp["h0"], h, inp["W_xh"], inp["W_hh"], activation
    )
    assert dx_t.shape == (0, D) and dh_prev.shape == (0, H)
    assert dW_xh.shape == (H, D) and dW_hh.shape == (H, H) and db_h.shape == (H,)
    assert not (dW_xh.any() or dW_hh.any() or db_h.any())
    hs = ref.rnn_forward(**inp, activation=activation)
    assert hs.shape == (T, 0, H)
    dx, dh0, dW_xh, dW_hh, db_h = ref.rnn_backward(
        np.zeros((T, 0, H)), inp["x"], inp["h0"], hs, inp["W_xh"], inp["W_hh"], activation
    )
    assert dx.shape == (T, 0, D) and dh0.shape == (0, H)
    assert dW_xh.shape == (H, D) and not (dW_xh.any() or dW_hh.any() or db_h.any())
    ys = ref.output_forward(hs, rng.standard_normal((O, H)), np.zeros(O), "softmax")
    assert ys.shape == (T, 0, O)
    loss, dlogits = ref.softmax_cross_entropy(ys, np.zeros((T, 0), dtype=int))
    assert loss == 0.0 and dlogits.shape == (T, 0, O)


@pytest.mark.parametrize("activation", HIDDEN)
@pytest.mark.parametrize("out_act", OUTPUT)
def test_float32_in_float32_out(rng, activation, out_act):
    f32 = np.float32
    T, B, D, H, O = 3, 2, 3, 4, 5
    inp = make_rnn_inputs(rng, T, B, D, H, f32)
    h = ref.cell_forward(inp["x"][0], inp["h0"], inp["W_xh"], inp["W_hh"], inp["b_h"], activation)
    cell_grads = ref.cell_backward(
        np.ones((B, H), f32), inp["x"][0], inp["h0"], h, inp["W_xh"], inp["W_hh"], activation
    )
    hs = ref.rnn_forward(**inp, activation=activation)
    rnn_grads = ref.rnn_backward(np.ones((T, B, H), f32), inp["x"], inp["h0"], hs, inp["W_xh"], inp["W_hh"], activation)
    W_hy, b_y = rng.standard_normal((O, H)).astype(f32), np.zeros(O, f32)
    ys = ref.output_forward(hs, W_hy, b_y, out_act)
    out_grads = ref.output_backward(np.ones_like(ys), hs, ys, W_hy, out_act)
    mask = np.ones((T, B))  # a float64 mask must not upcast float32 logits
    loss, dlogits = ref.softmax_cross_entropy(ys, np.zeros((T, B), dtype=int), mask)
    assert type(loss) is float
    for a in (h, *cell_grads, hs, *rnn_grads, ys, *out_grads, dlogits):
        assert a.dtype == f32


def test_float32_close_to_float64(rng):
    inp = make_rnn_inputs(rng, 4, 3, 3, 4)
    hs64 = ref.rnn_forward(**inp)
    hs32 = ref.rnn_forward(**{k: v.astype(np.float32) for k, v in inp.items()})
    assert np.allclose(hs32, hs64, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "call",
    [
        lambda i: ref.cell_forward(i["x"][0], i["h0"], i["W_xh"], i["W_hh"], i["b_h"], "softplus"),
        lambda i: ref.cell_backward(i["h0"], i["x"][0], i["h0"], i["h0"], i["W_xh"], i["W_hh"], "Tanh"),
        lambda i: ref.rnn_forward(**i, activation="gelu"),
        lambda i: ref.rnn_backward(i["x"], i["x"], i["h0"], i["x"], i["W_xh"], i["W_hh"], "elu"),
    ],
    ids=["cell_forward", "cell_backward", "rnn_forward", "rnn_backward"],
)
def test_unknown_hidden_activation(rng, call):
    inp = make_rnn_inputs(rng, 2, 2, 2, 2)
    with pytest.raises(ValueError, match="tanh.*sigmoid.*relu.*identity"):
        call(inp)


def test_unknown_output_activation(rng):
    hs, W_hy, b_y = rng.standard_normal((2, 2, 3)), rng.standard_normal((4, 3)), np.zeros(4)
    with pytest.raises(ValueError, match="identity.*softmax.*sigmoid"):
        ref.output_forward(hs, W_hy, b_y, "tanh")
    with pytest.raises(ValueError, match="identity.*softmax.*sigmoid"):
        ref.output_backward(np.ones((2, 2, 4)), hs, np.ones((2, 2, 4)), W_hy, "log_softmax")


def test_unknown_reduction(rng):
    with pytest.raises(ValueError, match="sum.*mean"):
        ref.softmax_cross_entropy(np.zeros((1, 1, 2)), np.zeros((1, 1), dtype=int), reduction="none")


def test_reference_is_reachable_after_import_elman():
    """The README presents elman.reference beside elman: a bare `import elman` must reach it (in
    a fresh interpreter: in this one another test may have imported the submodule already)."""
    code = ("import numpy as np, elman\n"
            "x = np.ones((2, 1, 3)); h0 = np.zeros((1, 4)); W_xh = np.ones((4, 3)) / 3\n"
            "W_hh = np.eye(4) / 2; b_h = np.zeros(4)\n"
            "ref = elman.reference.rnn_forward(x, h0, W_xh, W_hh, b_h)\n"
            "assert np.allclose(ref, elman.rnn_forward(x, h0, W_xh, W_hh, b_h))\n"
            "assert 'reference' in elman.__all__\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
