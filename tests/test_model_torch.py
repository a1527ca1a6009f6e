"""elman.RNN against torch.nn.RNN: the same out, h_n, dx, dh0 and every parameter gradient.

from_torch copies a module's parameters (its two biases summed), then both run the same inputs
and backpropagate the same random upstream gradients of out and h_n. Variable lengths go through
torch's packed sequences (pack_padded_sequence(enforce_sorted=False) / pad_packed_sequence).
"""

import numpy as np
import pytest

from elman.interop_torch import from_torch, to_torch
from elman.model import RNN

from conftest import rel_error

torch = pytest.importorskip("torch")
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence  # noqa: E402

T, B, D, H = 7, 4, 3, 5
LENGTHS = [7, 2, 5, 1]  # unsorted, one full
TOL = {"float64": 1e-12, "float32": 1e-5}
TORCH_DTYPE = {"float64": torch.float64, "float32": torch.float32}


def torch_run(module, x, h0, lengths, g_out, g_h_n):
    """out, h_n, dx, dh0 and {parameter name: gradient} of torch, as NumPy arrays."""
    xt = torch.tensor(x, requires_grad=True)
    h0t = torch.tensor(h0, requires_grad=True)
    module.zero_grad()
    if lengths is None:
        out, h_n = module(xt, h0t)
    else:
        packed = pack_padded_sequence(xt, torch.tensor(lengths), batch_first=module.batch_first,
                                      enforce_sorted=False)
        out_packed, h_n = module(packed, h0t)
        out, _ = pad_packed_sequence(out_packed, batch_first=module.batch_first,
                                     total_length=x.shape[1 if module.batch_first else 0])
    loss = (out * torch.tensor(g_out)).sum() + (h_n * torch.tensor(g_h_n)).sum()
    loss.backward()
    grads = {name: p.grad.numpy() for name, p in module.named_parameters()}
    return out.detach().numpy(), h_n.detach().numpy(), xt.grad.numpy(), h0t.grad.numpy(), grads


def assert_close(got, want, tol, what):
    assert got.shape == want.shape, what
    assert got.dtype == want.dtype, what
    err = rel_error(got, want)
    assert err < tol, f"{what}: relative error {err:.3g}"


@pytest.mark.parametrize("lengths", [None, LENGTHS], ids=["full", "lengths"])
@pytest.mark.parametrize("batch_first", [False, True], ids=["time_major", "batch_first"])
@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("num_layers", [1, 2, 3])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_parity_with_torch(rng, dtype, num_layers, bidirectional, nonlinearity, batch_first, lengths):
    torch.manual_seed(0)
    module = torch.nn.RNN(D, H, num_layers=num_layers, nonlinearity=nonlinearity,
                          bidirectional=bidirectional, batch_first=batch_first,
                          dtype=TORCH_DTYPE[dtype])
    rnn = from_torch(module)
    assert rnn.dtype == np.dtype(dtype) and rnn.batch_first == batch_first
    dirs = 2 if bidirectional else 1
    x = rng.standard_normal((B, T, D) if batch_first else (T, B, D)).astype(dtype)
    h0 = (0.5 * rng.standard_normal((num_layers * dirs, B, H))).astype(dtype)
    g_out = rng.standard_normal(x.shape[:2] + (dirs * H,)).astype(dtype)
    g_h_n = rng.standard_normal(h0.shape).astype(dtype)

    out_t, h_n_t, dx_t, dh0_t, grads_t = torch_run(module, x, h0, lengths, g_out, g_h_n)
    out, h_n = rnn(x, h0, lengths)
    dx = rnn.backward(g_out, g_h_n)

    tol = TOL[dtype]
    assert_close(out, out_t, tol, "out")
    assert_close(h_n, h_n_t, tol, "h_n")
    assert_close(dx, dx_t, tol, "dx")
    assert_close(rnn.dh0, dh0_t, tol, "dh0")
    for name, grad in grads_t.items():
        kind, suffix = name.split("_", 1)[0], name.split("_", 1)[1]  # e.g. weight, ih_l0_reverse
        part, rest = suffix.split("_", 1)  # ih / hh, l0_reverse
        if kind == "weight":
            ours = rnn.grads[("W_xh_" if part == "ih" else "W_hh_") + rest]
        else:
            ours = rnn.grads["b_h_" + rest]  # dL/db_h = dL/dbias_ih = dL/dbias_hh
        assert_close(ours, grad, tol, name)


def test_from_torch_sums_the_biases_and_copies():
    module = torch.nn.RNN(D, H, num_layers=2, bidirectional=True, dtype=torch.float64)
    rnn = from_torch(module)
    want = (module.bias_ih_l1_reverse + module.bias_hh_l1_reverse).detach().numpy()
    np.testing.assert_array_equal(rnn.params["b_h_l1_reverse"], want)
    np.testing.assert_array_equal(rnn.params["W_xh_l1"], module.weight_ih_l1.detach().numpy())
    rnn.params["W_hh_l0"][...] = 0  # a copy: the module is untouched
    assert torch.all(module.weight_hh_l0 != 0)


def test_without_bias_and_with_dropout_in_eval_mode(rng):
    """bias=False gives zero biases; dropout (between layers, training only) matches eval mode."""
    module = torch.nn.RNN(D, H, num_layers=2, bias=False, dropout=0.5, dtype=torch.float64)
    module.eval()
    rnn = from_torch(module)
    assert all(np.all(rnn.params[f"b_h_l{layer}"] == 0) for layer in range(2))
    x = rng.standard_normal((T, B, D))
    out_t, h_n_t = module(torch.tensor(x))
    out, h_n = rnn(x)
    assert_close(out, out_t.detach().numpy(), 1e-12, "out")
    assert_close(h_n, h_n_t.detach().numpy(), 1e-12, "h_n")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_to_torch_round_trip(rng, dtype):
    rnn = RNN(D, H, num_layers=2, bidirectional=True, batch_first=True, activation="relu",
              dtype=dtype, seed=3)
    module = to_torch(rnn)
    assert isinstance(module, torch.nn.RNN)
    assert (module.nonlinearity, module.batch_first, module.bidirectional, module.num_layers) == (
        "relu", True, True, 2)
    assert module.weight_ih_l0.dtype == TORCH_DTYPE[dtype]
    assert torch.all(module.bias_hh_l1_reverse == 0)
    back = from_torch(module)
    assert back.config() == rnn.config()
    for name, value in rnn.params.items():
        np.testing.assert_array_equal(back.params[name], value)  # b_h + 0 is exactly b_h
    x = rng.standard_normal((B, T, D)).astype(dtype)
    out_t, h_n_t = module(torch.tensor(x))
    out, h_n = rnn(x)
    assert_close(out, out_t.detach().numpy(), TOL[dtype], "out")
    assert_close(h_n, h_n_t.detach().numpy(), TOL[dtype], "h_n")


@pytest.mark.parametrize("kwargs, match", [
    (dict(activation="sigmoid"), "supports the activations 'tanh' and 'relu'"),
    (dict(activation="identity"), "supports the activations 'tanh' and 'relu'"),
    (dict(output_size=2), "has no output layer"),
    (dict(learn_h0=True), "has no learned initial state"),
])
def test_to_torch_rejects_what_torch_cannot_hold(kwargs, match):
    with pytest.raises(ValueError, match=match):
        to_torch(RNN(D, H, **kwargs))


def test_from_torch_rejects_what_elman_cannot_hold():
    with pytest.raises(ValueError, match="float32 or float64"):
        from_torch(torch.nn.RNN(D, H, dtype=torch.float16))
    projected = torch.nn.RNN(D, H)
    projected.proj_size = 2  # torch.nn.RNN refuses proj_size itself; a subclass might not
    with pytest.raises(ValueError, match="proj_size must be 0, got 2"):
        from_torch(projected)
    with pytest.raises(TypeError, match="needs a torch.nn.RNN, got LSTM"):
        from_torch(torch.nn.LSTM(D, H))
    with pytest.raises(TypeError, match="needs an elman.RNN, got RNN"):
        to_torch(torch.nn.RNN(D, H))
