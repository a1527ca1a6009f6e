"""elman.torch.RNN against torch.nn.RNN: a drop-in swap that changes nothing but speed.

Both modules hold the same state_dict, run the same inputs and backpropagate the same random
upstream gradients of output and h_n; outputs, h_n and the gradients of the input, hx and every
parameter must agree (float64 to ~1e-12, float32 to ~1e-5). Then: gradcheck, training steps with
optimizers and gradient clipping, state_dict both ways, dropout with the same random masks, and
the errors for what the kernels cannot do.
"""

import gc
import subprocess
import sys
import warnings
import weakref

import numpy as np
import pytest

torch = pytest.importorskip("torch")
elman_torch = pytest.importorskip("elman.torch")
from torch.nn.utils.rnn import pack_padded_sequence  # noqa: E402

T, B, D, H = 6, 3, 4, 5
LENGTHS = [4, 6, 1]  # unsorted, one full, one of a single step
TOL = {torch.float64: 1e-12, torch.float32: 1e-5}
DTYPES = [torch.float64, torch.float32]
DTYPE_IDS = ["float64", "float32"]


def make_pair(dtype=torch.float64, **config):
    """(torch.nn.RNN, elman.torch.RNN) with the same configuration and parameters."""
    torch.manual_seed(0)
    reference = torch.nn.RNN(D, H, dtype=dtype, **config)
    module = elman_torch.RNN(D, H, dtype=dtype, **config)
    module.load_state_dict(reference.state_dict())
    return reference, module


def outputs_and_gradients(module, make_input, x, hx, upstream, dropout_seed):
    """(output, h_n, d_input, d_hx, {parameter name: gradient}) of one forward and backward.

    make_input(x) turns the leaf x into what the module takes (e.g. a PackedSequence); the loss
    is sum(output * g_output) + sum(h_n * g_h_n) with upstream = (g_output, g_h_n). A dropout_seed
    seeds torch's generator just before forward, so that dropout draws the same masks.
    """
    x, hx = (None if t is None else t.detach().clone().requires_grad_() for t in (x, hx))
    if dropout_seed is not None:
        torch.manual_seed(dropout_seed)
    output, h_n = module(make_input(x), hx)
    data = output.data if isinstance(output, torch.nn.utils.rnn.PackedSequence) else output
    g_output, g_h_n = upstream
    loss = (data * g_output).sum() + (h_n * g_h_n).sum()
    module.zero_grad()
    loss.backward()
    grads = {name: p.grad for name, p in module.named_parameters()}
    return data, h_n, x.grad, None if hx is None else hx.grad, grads


def assert_close(got, want, dtype, what):
    assert got.shape == want.shape and got.dtype == want.dtype, what
    tol = TOL[dtype]
    torch.testing.assert_close(got, want, rtol=tol, atol=tol, msg=lambda m: f"{what}: {m}")


def assert_same_results(reference, module, make_input, x, hx, output_shape, h_n_shape,
                        dropout_seed=None):
    """Both modules give the same output, h_n and gradients for random upstream gradients of
    output (of output_shape; the packed data's for packed input) and h_n."""
    generator = torch.Generator().manual_seed(1)
    upstream = (torch.randn(output_shape, generator=generator, dtype=x.dtype),
                torch.randn(h_n_shape, generator=generator, dtype=x.dtype))
    want = outputs_and_gradients(reference, make_input, x, hx, upstream, dropout_seed)
    got = outputs_and_gradients(module, make_input, x, hx, upstream, dropout_seed)
    for name, g, w in zip(("output", "h_n", "d_input", "d_hx"), got, want):
        if w is None:
            assert g is None, name
        else:
            assert_close(g, w, x.dtype, name)
    assert got[4].keys() == want[4].keys()
    for name in want[4]:
        assert_close(got[4][name], want[4][name], x.dtype, f"d_{name}")


def random(shape, dtype, seed=2):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


# --------------------------------------------------------------------------- #
# Parity with torch.nn.RNN
# --------------------------------------------------------------------------- #

LAYOUTS = {"time_major": (T, B, D), "batch_first": (B, T, D), "unbatched": (T, D),
           "unbatched_batch_first": (T, D)}


def assert_dense_results_match(dtype, layout, given_hx, **config):
    """assert_same_results for a tensor input of the given layout (a key of LAYOUTS), with a
    random hx or None."""
    reference, module = make_pair(dtype, batch_first=layout.endswith("batch_first"), **config)
    dirs = 2 if module.bidirectional else 1
    shape = LAYOUTS[layout]
    x = random(shape, dtype)
    layers = module.num_layers * dirs
    hx_shape = (layers, B, H) if len(shape) == 3 else (layers, H)
    hx = random(hx_shape, dtype, seed=3) if given_hx else None
    assert_same_results(reference, module, lambda t: t, x, hx, (*shape[:-1], dirs * H), hx_shape)


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("num_layers", [1, 2, 3])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_every_stack_configuration_matches_torch(dtype, num_layers, bidirectional, nonlinearity,
                                                 bias):
    assert_dense_results_match(dtype, "time_major", True, num_layers=num_layers,
                               bidirectional=bidirectional, nonlinearity=nonlinearity, bias=bias)


@pytest.mark.parametrize("given_hx", [False, True], ids=["hx_none", "hx"])
@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_every_input_layout_matches_torch(dtype, bidirectional, layout, given_hx):
    assert_dense_results_match(dtype, layout, given_hx, num_layers=2, bidirectional=bidirectional)


@pytest.mark.parametrize("given_hx", [False, True], ids=["hx_none", "hx"])
@pytest.mark.parametrize("enforce_sorted", [True, False], ids=["sorted", "unsorted"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("num_layers", [1, 2, 3])
@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_packed_input_matches_torch(dtype, num_layers, bidirectional, enforce_sorted, given_hx):
    # packed from a batch-first tensor when unsorted: a module's batch_first plays no role for
    # a PackedSequence, only the packing does
    batch_first = not enforce_sorted
    reference, module = make_pair(dtype, num_layers=num_layers, bidirectional=bidirectional,
                                  batch_first=batch_first)
    lengths = sorted(LENGTHS, reverse=True) if enforce_sorted else LENGTHS
    x = random((B, T, D) if batch_first else (T, B, D), dtype)
    dirs = 2 if bidirectional else 1
    hx = random((num_layers * dirs, B, H), dtype, seed=3) if given_hx else None

    def pack(t):
        return pack_padded_sequence(t, torch.tensor(lengths), batch_first=batch_first,
                                    enforce_sorted=enforce_sorted)

    assert_same_results(reference, module, pack, x, hx, (sum(lengths), dirs * H),
                        (num_layers * dirs, B, H))


def test_packed_output_keeps_the_input_packing():
    _, module = make_pair()
    packed = pack_padded_sequence(random((T, B, D), torch.float64), torch.tensor(LENGTHS),
                                  enforce_sorted=False)
    output, _ = module(packed)
    assert isinstance(output, torch.nn.utils.rnn.PackedSequence)
    assert torch.equal(output.batch_sizes, packed.batch_sizes)
    assert torch.equal(output.sorted_indices, packed.sorted_indices)
    assert torch.equal(output.unsorted_indices, packed.unsorted_indices)


@pytest.mark.parametrize("packed", [False, True], ids=["padded", "packed"])
def test_dropout_between_layers_matches_torch_with_the_same_seed(packed):
    reference, module = make_pair(num_layers=3, bidirectional=True, dropout=0.4)
    x = random((T, B, D), torch.float64)

    def make_input(t):
        return pack_padded_sequence(t, torch.tensor(LENGTHS), enforce_sorted=False) if packed else t

    output_shape = (sum(LENGTHS), 2 * H) if packed else (T, B, 2 * H)
    assert_same_results(reference, module, make_input, x, None, output_shape, (6, B, H),
                        dropout_seed=7)
    # and the masks act: the same seed in eval mode (no dropout) gives another h_n
    torch.manual_seed(7)
    trained_h_n = module(make_input(x))[1]
    torch.manual_seed(7)
    assert not torch.allclose(module.eval()(make_input(x))[1], trained_h_n)


def test_dropout_is_off_in_eval_mode():
    reference, module = make_pair(num_layers=2, dropout=0.5)
    reference.eval()
    module.eval()
    x = random((T, B, D), torch.float64)
    assert_close(module(x)[0], reference(x)[0], torch.float64, "output")


def test_zero_length_sequence_returns_hx():
    _, module = make_pair()
    hx = random((1, B, H), torch.float64)
    output, h_n = module(torch.zeros(0, B, D, dtype=torch.float64), hx)
    assert output.shape == (0, B, H)
    assert torch.equal(h_n, hx)


# --------------------------------------------------------------------------- #
# Autograd
# --------------------------------------------------------------------------- #

@pytest.mark.parametrize("config", [dict(num_layers=2, bidirectional=True),
                                    dict(num_layers=1, nonlinearity="relu", bias=False)],
                         ids=["2_layers_bi", "relu_no_bias"])
def test_gradcheck_in_float64(config):
    _, module = make_pair(**config)
    names = [name for name, _ in module.named_parameters()]
    dirs = 2 if module.bidirectional else 1
    x = random((4, 2, D), torch.float64).requires_grad_()
    hx = random((module.num_layers * dirs, 2, H), torch.float64, seed=3).requires_grad_()
    weights = [p.detach().clone().requires_grad_() for p in module.parameters()]

    def run(x, hx, *weights):
        parameters = dict(zip(names, weights))
        return torch.func.functional_call(module, parameters, (x, hx))

    assert torch.autograd.gradcheck(run, (x, hx, *weights))


def test_gradcheck_with_packed_sequences():
    _, module = make_pair(bidirectional=True)

    def run(x, hx):
        packed = pack_padded_sequence(x, torch.tensor(LENGTHS), enforce_sorted=False)
        output, h_n = module(packed, hx)
        return output.data, h_n

    x = random((T, B, D), torch.float64).requires_grad_()
    hx = random((2, B, H), torch.float64, seed=3).requires_grad_()
    assert torch.autograd.gradcheck(run, (x, hx))


def gradient_penalty_gradients(module, packed, bias_grads=True):
    """{name: .grad} after backward of loss = sum(output) + sum(d sum(output**2)/dx ** 2) + the
    same of h_n: a gradient penalty, whose gradient needs double backward (create_graph=True)."""
    x = random((T, B, D), torch.float64, seed=1).requires_grad_()
    hx = random((module.num_layers * (2 if module.bidirectional else 1), B, H), torch.float64,
                seed=4).requires_grad_()
    inp = pack_padded_sequence(x, torch.tensor(LENGTHS), enforce_sorted=False) if packed else x
    output, h_n = module(inp, hx)
    output = output.data if packed else output
    first = output.square().sum() + h_n.sum()
    dx, dhx = torch.autograd.grad(first, (x, hx), create_graph=True)
    ((dx ** 2).sum() + (dhx ** 3).sum() + output.sum()).backward()
    grads = {name: p.grad for name, p in module.named_parameters()}
    return {"x": x.grad, "hx": hx.grad, **grads}


@pytest.mark.parametrize("config", [
    dict(), dict(num_layers=2, bidirectional=True), dict(nonlinearity="relu", bias=False),
    dict(num_layers=2, packed=True), dict(bidirectional=True, packed=True),
], ids=["plain", "2_layers_bidirectional", "relu_no_bias", "packed", "packed_bidirectional"])
def test_double_backward_matches_torch(config):
    """The issue's gradient penalty: the second-order terms reach the parameters as in
    torch.nn.RNN (it gave the first-order gradient alone, off by 8-16 on weight_hh_l0)."""
    packed = config.pop("packed", False)
    reference, module = make_pair(**config)
    expected = gradient_penalty_gradients(reference, packed)
    actual = gradient_penalty_gradients(module, packed)
    assert expected.keys() == actual.keys()
    for name in expected:
        assert_close(actual[name], expected[name], torch.float64, name)


def test_the_issues_reproduction():
    a = torch.nn.RNN(4, 6, dtype=torch.float64)
    b = elman_torch.RNN(4, 6, dtype=torch.float64)
    b.load_state_dict(a.state_dict())
    for m in (a, b):
        x = torch.randn(5, 3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1),
                        requires_grad=True)
        o, _ = m(x)
        g, = torch.autograd.grad(o.sum(), x, create_graph=True)
        (o.sum() + (g ** 2).sum()).backward()
    assert (a.weight_hh_l0.grad - b.weight_hh_l0.grad).abs().max() < 1e-12


def test_gradgradcheck():
    _, module = make_pair(num_layers=2, bidirectional=True)
    weights = list(module.parameters())

    def run(x, hx, *params):
        output, h_n = torch.func.functional_call(
            module, dict(zip([n for n, _ in module.named_parameters()], params)), (x, hx))
        return output, h_n

    x = random((3, 2, D), torch.float64).requires_grad_()
    hx = random((4, 2, H), torch.float64, seed=3).requires_grad_()
    assert torch.autograd.gradgradcheck(run, (x, hx, *weights))


def test_first_order_gradients_still_come_from_the_kernels():
    """Without create_graph the backward is the kernels' (no per-step torch graph is built)."""
    _, module = make_pair()
    calls = []
    real = elman_torch._torch_stack.stack_forward
    elman_torch._torch_stack.stack_forward = lambda *a: calls.append(1) or real(*a)
    try:
        x = random((T, B, D), torch.float64).requires_grad_()
        module(x)[0].sum().backward()
    finally:
        elman_torch._torch_stack.stack_forward = real
    assert calls == [] and x.grad is not None


def test_gradients_only_for_what_requires_them():
    _, module = make_pair(num_layers=2)
    module.weight_ih_l0.requires_grad_(False)
    module.bias_hh_l1.requires_grad_(False)
    x = random((T, B, D), torch.float64)  # no gradient wanted
    hx = random((2, B, H), torch.float64).requires_grad_()
    output, h_n = module(x, hx)
    output.sum().backward()
    assert hx.grad is not None and x.grad is None
    assert module.weight_ih_l0.grad is None and module.bias_hh_l1.grad is None
    assert module.weight_hh_l0.grad is not None and module.bias_ih_l1.grad is not None


@pytest.mark.parametrize("used", ["output", "h_n"])
def test_backward_from_one_output_only(used):
    reference, module = make_pair(num_layers=2, bidirectional=True)
    x = random((T, B, D), torch.float64)
    grads = []
    for m in (reference, module):
        output, h_n = m(x)
        (output if used == "output" else h_n).square().sum().backward()
        grads.append([p.grad for p in m.parameters()])
    for g, w in zip(*reversed(grads)):
        assert_close(g, w, torch.float64, "parameter gradient")


def test_parametrized_weight_matches_torch():
    # weight_norm turns weight_hh_l0 into a property computed from two new parameters
    reference, module = make_pair(bidirectional=True)
    for m in (reference, module):
        torch.nn.utils.parametrizations.weight_norm(m, "weight_hh_l0")
    x = random((T, B, D), torch.float64)
    assert_same_results(reference, module, lambda t: t, x, None, (T, B, 2 * H), (2, B, H))


def test_in_place_change_of_the_output_before_backward_raises():
    # a unidirectional output is the cached last-layer states: changing it would corrupt backward
    _, module = make_pair()
    output, _ = module(random((T, B, D), torch.float64).requires_grad_())
    loss = output.square().sum()
    with torch.no_grad():
        output.add_(1.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


def test_in_place_change_of_a_bidirectional_output_is_allowed_as_in_torch():
    reference, module = make_pair(bidirectional=True)
    x = random((T, B, D), torch.float64)
    grads = []
    for m in (reference, module):
        output, _ = m(x)
        output.mul_(2.0)  # in place, under autograd
        output.square().sum().backward()
        grads.append([p.grad for p in m.parameters()])
    for g, w in zip(grads[1], grads[0]):
        assert_close(g, w, torch.float64, "parameter gradient")


def test_saved_state_is_freed_by_backward_and_kept_by_retain_graph():
    _, module = make_pair(num_layers=2)
    x = random((T, B, D), torch.float64).requires_grad_()
    output, _ = module(x)
    cache = weakref.ref(output.grad_fn.saved_tensors[0].stack_cache)  # the kernels' states
    output.sum().backward(retain_graph=True)
    assert cache() is not None
    first = x.grad.clone()
    output.sum().backward()  # a second backward through the retained graph
    torch.testing.assert_close(x.grad, 2 * first, rtol=1e-14, atol=0)
    gc.collect()
    assert cache() is None, "the states outlive backward while the output is still referenced"


def test_non_reentrant_checkpointing_gives_the_same_gradients():
    _, module = make_pair(bidirectional=True)
    x = random((T, B, D), torch.float64)
    grads = []
    for checkpointed in (False, True):
        module.zero_grad()
        run = module if not checkpointed else (
            lambda t: torch.utils.checkpoint.checkpoint(module, t, use_reentrant=False))
        output, h_n = run(x)
        (output.square().sum() + h_n.sum()).backward()
        grads.append([p.grad.clone() for p in module.parameters()])
    for g, w in zip(*grads):
        torch.testing.assert_close(g, w, rtol=1e-14, atol=0)


def test_no_grad_gives_the_same_output_and_no_graph():
    _, module = make_pair(num_layers=2)
    x = random((T, B, D), torch.float64)
    with_graph, _ = module(x)
    with torch.no_grad():
        without, h_n = module(x)
    assert without.grad_fn is None and h_n.grad_fn is None
    assert torch.equal(without, with_graph.detach())


def test_inference_mode_gives_the_same_output():
    reference, module = make_pair(bidirectional=True)
    x = random((T, B, D), torch.float64)
    with torch.inference_mode():
        got, want = module(x), reference(x)
    for g, w, name in zip(got, want, ("output", "h_n")):
        assert_close(g, w, torch.float64, name)


def test_inputs_are_not_modified():
    _, module = make_pair(batch_first=True, bidirectional=True)
    x = random((B, T, D), torch.float64).requires_grad_()
    hx = random((2, B, H), torch.float64).requires_grad_()
    saved = (x.detach().clone(), hx.detach().clone(), [p.detach().clone() for p in module.parameters()])
    output, h_n = module(x, hx)
    (output.sum() + h_n.sum()).backward()
    assert torch.equal(x, saved[0]) and torch.equal(hx, saved[1])
    assert all(torch.equal(p, q) for p, q in zip(module.parameters(), saved[2]))


# --------------------------------------------------------------------------- #
# Training, state_dict, construction
# --------------------------------------------------------------------------- #

@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_training_steps_with_clipping_match_torch(optimizer):
    trained = []
    for cls in (torch.nn.RNN, elman_torch.RNN):
        torch.manual_seed(0)
        rnn = cls(D, H, 2, bidirectional=True, dtype=torch.float64)
        head = torch.nn.Linear(2 * H, 3, dtype=torch.float64)
        params = list(rnn.parameters()) + list(head.parameters())
        opt = (torch.optim.SGD(params, lr=0.5, momentum=0.9) if optimizer == "sgd"
               else torch.optim.Adam(params, lr=0.05))
        generator = torch.Generator().manual_seed(5)
        for _ in range(4):
            x = torch.randn(T, B, D, generator=generator, dtype=torch.float64)
            target = torch.randint(0, 3, (T * B,), generator=generator)
            output, _ = rnn(x)
            loss = torch.nn.functional.cross_entropy(head(output).reshape(T * B, 3), target)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, max_norm=0.1)  # small: clipping acts
            opt.step()
        trained.append(rnn.state_dict())
    for name in trained[0]:
        assert_close(trained[1][name], trained[0][name], torch.float64, name)


def test_same_seed_gives_the_same_parameters_as_torch():
    torch.manual_seed(3)
    reference = torch.nn.RNN(D, H, 2, bidirectional=True)
    torch.manual_seed(3)
    module = elman_torch.RNN(D, H, 2, bidirectional=True)
    assert [n for n, _ in module.named_parameters()] == [n for n, _ in reference.named_parameters()]
    for (name, p), q in zip(reference.named_parameters(), module.parameters()):
        assert torch.equal(p, q), name


def test_positional_arguments_in_torch_order():
    module = elman_torch.RNN(D, H, 2, "relu", False, True, 0.0, True)
    reference = torch.nn.RNN(D, H, 2, "relu", False, True, 0.0, True)
    assert repr(module) == repr(reference)
    assert (module.num_layers, module.nonlinearity, module.bias, module.batch_first,
            module.bidirectional) == (2, "relu", False, True, True)


def test_state_dict_loads_both_ways():
    reference, module = make_pair(num_layers=2, bidirectional=True)
    assert module.state_dict().keys() == reference.state_dict().keys()
    torch.manual_seed(9)
    other = torch.nn.RNN(D, H, 2, bidirectional=True, dtype=torch.float64)
    other.load_state_dict(module.state_dict())  # elman -> torch, strict
    for name, p in module.state_dict().items():
        assert torch.equal(other.state_dict()[name], p)
    x = random((T, B, D), torch.float64)
    assert_close(module(x)[0], other(x)[0], torch.float64, "output after elman -> torch")


def test_from_torch_module_copies_without_touching_the_random_state():
    torch.manual_seed(0)
    reference = torch.nn.RNN(D, H, 2, batch_first=True, dtype=torch.float64).eval()
    before = torch.get_rng_state()
    module = elman_torch.from_torch_module(reference)
    assert torch.equal(torch.get_rng_state(), before)
    assert isinstance(module, elman_torch.RNN) and not module.training and module.batch_first
    for (name, p), q in zip(reference.named_parameters(), module.parameters()):
        assert torch.equal(p, q) and p.data_ptr() != q.data_ptr(), name
    with pytest.raises(TypeError, match="needs a torch.nn.RNN"):
        elman_torch.from_torch_module(torch.nn.GRU(D, H))


def test_flatten_parameters_is_a_no_op():
    reference, module = make_pair()
    module.flatten_parameters()
    x = random((T, B, D), torch.float64)
    assert_close(module(x)[0], reference(x)[0], torch.float64, "output")


def test_import_elman_does_not_import_torch():
    code = "import sys, elman; assert 'torch' not in sys.modules, 'import elman imported torch'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# --------------------------------------------------------------------------- #
# Errors
# --------------------------------------------------------------------------- #

@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["float16", "bfloat16"])
def test_half_precision_module_is_rejected(dtype):
    module = elman_torch.RNN(D, H, dtype=dtype)
    with pytest.raises(TypeError, match="float32 or float64.*float16 and bfloat16 are not supported"):
        module(torch.zeros(T, B, D, dtype=dtype))


@pytest.mark.parametrize("dtype, kind", [(torch.int64, "integers"), (torch.complex64, "complex numbers"),
                                         (torch.bool, "booleans")])
def test_input_that_cannot_be_computed_in_suggests_converting_it_not_the_model(dtype, kind):
    module = elman_torch.RNN(D, H)
    for args, name in [((torch.zeros(T, B, D, dtype=dtype),), "input"),
                       ((torch.zeros(T, B, D), torch.zeros(1, B, H, dtype=dtype)), "hx")]:
        with pytest.raises(ValueError, match=f"float32 or float64 only \\(not in {kind}\\): convert "
                                             f"it with {name}.to\\(torch.float32\\)") as caught:
            module(*args)
        assert "model.to" not in str(caught.value)


@pytest.mark.parametrize("call", ["script", "trace", "script_of_a_parent"])
def test_torchscript_is_refused_with_a_pointer_to_torch_compile(call):
    module = elman_torch.RNN(D, H)
    run = {"script": lambda: torch.jit.script(module),
           "trace": lambda: torch.jit.trace(module, torch.zeros(T, B, D)),
           "script_of_a_parent": lambda: torch.jit.script(torch.nn.Sequential(module))}[call]
    name = "torch.jit.trace" if call == "trace" else "torch.jit.script"
    with warnings.catch_warnings(), pytest.raises(
            RuntimeError, match=f"{name} does not support elman.torch.RNN.*torch.compile"):
        warnings.simplefilter("ignore", DeprecationWarning)  # torch 2.13 deprecates TorchScript
        run()


def test_torch_compile_runs_it():
    """What the TorchScript error points to works (the eager backend: no C++ compiler needed)."""
    reference, module = make_pair()
    compiled = torch.compile(module, backend="eager")
    x = random((T, B, D), torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # dynamo's note that it cannot trace into the kernels
        output, h_n = compiled(x)
    assert_close(output, reference(x)[0], torch.float64, "output")


def test_input_of_another_dtype_is_rejected():
    module = elman_torch.RNN(D, H)
    with pytest.raises(ValueError, match=r"input dtype \(torch.float64\) does not match"):
        module(torch.zeros(T, B, D, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"hx dtype \(torch.float64\) does not match"):
        module(torch.zeros(T, B, D), torch.zeros(1, B, H, dtype=torch.float64))


def test_tensor_on_another_device_is_rejected():
    # A meta tensor stands for any non-CPU device (CUDA included) on a machine without a GPU.
    module = elman_torch.RNN(D, H)
    with pytest.raises(ValueError, match="runs on the CPU, input is on meta"):
        module(torch.zeros(T, B, D, device="meta"))
    with pytest.raises(ValueError, match="runs on the CPU, weight_ih_l0 is on meta"):
        elman_torch.RNN(D, H, device="meta")(torch.zeros(T, B, D))


def test_proj_size_is_rejected():
    with pytest.raises(ValueError, match="proj_size must be 0, got 2"):
        elman_torch.RNN(D, H, proj_size=2)


@pytest.mark.parametrize("x_shape, hx_shape, error, match", [
    ((T, B, D, 1), None, ValueError, "Expected input to be 2D or 3D, got 4D"),
    ((T, B, D + 1), None, RuntimeError, "input.size\\(-1\\) must be equal to input_size"),
    ((T, B, D), (1, B + 1, H), RuntimeError, "Expected hidden size"),
    ((T, B, D), (B, H), RuntimeError, "hx should also be 3-D"),
    ((T, D), (1, 1, H), RuntimeError, "hx should also be 2-D"),
], ids=["4d_input", "input_size", "hx_batch", "hx_2d", "unbatched_hx_3d"])
def test_bad_shapes_get_torchs_errors(x_shape, hx_shape, error, match):
    module = elman_torch.RNN(D, H)
    hx = None if hx_shape is None else torch.zeros(hx_shape)
    with pytest.raises(error, match=match):
        module(torch.zeros(x_shape), hx)


def test_non_tensor_arguments_are_rejected():
    module = elman_torch.RNN(D, H)
    with pytest.raises(TypeError, match="input must be a torch.Tensor or a PackedSequence"):
        module(np.zeros((T, B, D), dtype=np.float32))
    with pytest.raises(TypeError, match="hx must be a torch.Tensor or None"):
        module(torch.zeros(T, B, D), np.zeros((1, B, H), dtype=np.float32))


def test_input_without_grad_gives_the_same_parameter_gradients():
    """x that does not require grad skips the first layer's dx product; nothing else changes."""
    _, module = make_pair(num_layers=2, bidirectional=True)
    x = random((T, B, D), torch.float64)
    grads = []
    for wants_dx in (True, False):
        module.zero_grad()
        x_in = x.clone().requires_grad_(wants_dx)
        output, _ = module(x_in)
        output.square().sum().backward()
        assert (x_in.grad is not None) == wants_dx
        grads.append([p.grad.clone() for p in module.parameters()])
    for with_dx, without in zip(*grads):
        assert torch.equal(with_dx, without)
