"""elman.optim: PyTorch's update formulas step for step, in place, with state allocated once."""

import tracemalloc

import numpy as np
import pytest

from elman import optim

SHAPES = {"W_xh": (5, 3), "W_hh": (5, 5), "b_h": (5,)}
N_STEPS = 25

# (elman class, torch class name, keyword arguments shared by both)
CONFIGS = [
    (optim.SGD, "SGD", {"lr": 0.1}),
    (optim.SGD, "SGD", {"lr": 0.05, "momentum": 0.9}),
    (optim.SGD, "SGD", {"lr": 0.05, "momentum": 0.9, "dampening": 0.3, "weight_decay": 0.01}),
    (optim.SGD, "SGD", {"lr": 0.05, "momentum": 0.8, "nesterov": True, "weight_decay": 0.1}),
    (optim.Adagrad, "Adagrad", {}),
    (optim.Adagrad, "Adagrad", {"lr": 0.1, "lr_decay": 0.01, "weight_decay": 0.1,
                                "initial_accumulator_value": 0.2, "eps": 1e-6}),
    (optim.RMSprop, "RMSprop", {}),
    (optim.RMSprop, "RMSprop", {"lr": 0.01, "alpha": 0.9, "centered": True}),
    (optim.RMSprop, "RMSprop", {"lr": 0.01, "momentum": 0.9, "weight_decay": 0.05}),
    (optim.RMSprop, "RMSprop", {"lr": 0.005, "momentum": 0.5, "centered": True, "eps": 1e-4}),
    (optim.Adam, "Adam", {}),
    (optim.Adam, "Adam", {"lr": 0.01, "betas": (0.8, 0.99), "weight_decay": 0.1}),
    (optim.Adam, "Adam", {"lr": 0.01, "amsgrad": True, "eps": 1e-6}),
    (optim.Adam, "Adam", {"lr": 0.01, "betas": (0.6, 0.9), "decoupled_weight_decay": True, "weight_decay": 0.1}),
    (optim.AdamW, "AdamW", {}),
    (optim.AdamW, "AdamW", {"lr": 0.02, "weight_decay": 0.3, "amsgrad": True}),
]
CONFIG_IDS = [f"{cls.__name__}-{i}" for i, (cls, _, _) in enumerate(CONFIGS)]


def random_params(rng, dtype):
    return {name: rng.standard_normal(shape).astype(dtype) for name, shape in SHAPES.items()}


def random_grad_sequence(rng, dtype, n=N_STEPS):
    """n gradient dicts whose scale changes from step to step, so every moment estimate matters."""
    return [
        {name: (rng.standard_normal(shape) * 10.0 ** rng.uniform(-2, 1)).astype(dtype)
         for name, shape in SHAPES.items()}
        for _ in range(n)
    ]


def run_torch(torch_name, kwargs, params, grad_sequence):
    torch = pytest.importorskip("torch")
    tensors = {name: torch.tensor(p.copy(), requires_grad=True) for name, p in params.items()}
    opt = getattr(torch.optim, torch_name)(list(tensors.values()), **kwargs)
    for grads in grad_sequence:
        for name, t in tensors.items():
            t.grad = torch.tensor(grads[name])
        opt.step()
    return {name: t.detach().numpy() for name, t in tensors.items()}


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-12), (np.float32, 1e-6)], ids=["float64", "float32"])
@pytest.mark.parametrize("cls, torch_name, kwargs", CONFIGS, ids=CONFIG_IDS)
def test_matches_torch_step_by_step(cls, torch_name, kwargs, dtype, tol, rng):
    pytest.importorskip("torch")
    params = random_params(rng, dtype)
    grad_sequence = random_grad_sequence(rng, dtype)
    expected = run_torch(torch_name, kwargs, params, grad_sequence)
    opt = cls(params, **kwargs)
    for grads in grad_sequence:
        opt.step(grads)
    for name in SHAPES:
        assert params[name].dtype == dtype
        np.testing.assert_allclose(params[name], expected[name], rtol=tol, atol=tol, err_msg=name)


def test_sgd_plain_step_is_p_minus_lr_g(rng):
    params = random_params(rng, np.float64)
    before = {k: v.copy() for k, v in params.items()}
    grads = random_grad_sequence(rng, np.float64, 1)[0]
    optim.SGD(params, lr=0.5).step(grads)
    for name in SHAPES:
        np.testing.assert_array_equal(params[name], before[name] - 0.5 * grads[name])


def test_adam_first_step_moves_each_entry_by_lr(rng):
    # After one step m_hat = g and v_hat = g^2, so the update is lr * g / (|g| + eps), ~ lr * sign(g).
    params = random_params(rng, np.float64)
    before = {k: v.copy() for k, v in params.items()}
    grads = random_grad_sequence(rng, np.float64, 1)[0]
    optim.Adam(params, lr=0.01).step(grads)
    for name in SHAPES:
        g = grads[name]
        np.testing.assert_allclose(before[name] - params[name], 0.01 * g / (np.abs(g) + 1e-8), rtol=1e-10)


@pytest.mark.parametrize("cls, torch_name, kwargs", CONFIGS, ids=CONFIG_IDS)
def test_updates_in_place_and_keeps_its_state_arrays(cls, torch_name, kwargs, rng):
    params = random_params(rng, np.float64)
    arrays = {name: params[name] for name in SHAPES}
    grad_sequence = random_grad_sequence(rng, np.float64, 3)
    grads_before = [{k: v.copy() for k, v in g.items()} for g in grad_sequence]
    opt = cls(params, **kwargs)
    state_ids = {name: {k: id(v) for k, v in s.items()} for name, s in opt.state.items()}
    for grads in grad_sequence:
        opt.step(grads)
    assert opt.step_count == 3
    for name in SHAPES:
        assert params[name] is arrays[name]
        assert {k: id(v) for k, v in opt.state[name].items()} == state_ids[name]
    for grads, before in zip(grad_sequence, grads_before):
        for name in SHAPES:
            np.testing.assert_array_equal(grads[name], before[name])  # gradients are only read


@pytest.mark.parametrize("cls, torch_name, kwargs", CONFIGS, ids=CONFIG_IDS)
def test_a_step_allocates_no_parameter_sized_memory(cls, torch_name, kwargs, rng):
    n = 200_000  # 1.6 MB per array in float64
    params = {"w": rng.standard_normal(n), "b": rng.standard_normal(n // 2)}
    grads = {"w": rng.standard_normal(n), "b": rng.standard_normal(n // 2)}
    opt = cls(params, **kwargs)
    opt.step(grads)  # first step outside the measurement (e.g. momentum buffers are filled then)
    tracemalloc.start()
    try:
        opt.step(grads)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 0.1 * params["b"].nbytes, f"a step allocated {peak} bytes"


def test_lr_can_change_between_steps(rng):
    params = {"w": np.zeros(3)}
    opt = optim.SGD(params, lr=1.0)
    opt.step({"w": np.ones(3)})
    opt.lr = 0.25
    opt.step({"w": np.ones(3)})
    np.testing.assert_array_equal(params["w"], [-1.25, -1.25, -1.25])


def test_float32_gradients_for_float64_parameters_are_converted(rng):
    params = {"w": np.ones(4)}
    optim.SGD(params, lr=0.5).step({"w": np.full(4, 2, dtype=np.float32)})
    assert params["w"].dtype == np.float64
    np.testing.assert_array_equal(params["w"], np.zeros(4))


def test_repr_lists_settings():
    assert repr(optim.Adam({"w": np.zeros(2)}, lr=0.1)).startswith("Adam(lr=0.1, betas=(0.9, 0.999)")


@pytest.mark.parametrize("make, message", [
    (lambda p: optim.SGD(p, lr=-1), "lr must be a finite number >= 0"),
    (lambda p: optim.SGD(p, lr=float("nan")), "lr must be"),
    (lambda p: optim.SGD(p, nesterov=True), "nesterov=True requires momentum"),
    (lambda p: optim.Adam(p, betas=(0.9, 1.0)), r"betas\[1\] must be in \[0, 1\)"),
    (lambda p: optim.Adam(p, betas=0.9), "betas must be a pair"),
    (lambda p: optim.RMSprop(p, alpha=-0.1), "alpha must be"),
    (lambda p: optim.Adagrad(p, eps=-1e-3), "eps must be"),
    (lambda p: optim.SGD({}, lr=0.1), "params is empty"),
])
def test_bad_hyperparameters_raise_value_error(make, message):
    with pytest.raises(ValueError, match=message):
        make({"w": np.zeros(3)})


def test_bad_params_raise():
    with pytest.raises(TypeError, match="params must be a dict"):
        optim.SGD([np.zeros(3)])
    with pytest.raises(TypeError, match=r"params\['w'\] must be a NumPy array"):
        optim.SGD({"w": [0.0, 1.0]})
    with pytest.raises(TypeError, match=r"params\['w'\] has dtype int64"):
        optim.SGD({"w": np.zeros(3, dtype=np.int64)})
    frozen = np.zeros(3)
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match=r"params\['w'\] is read-only"):
        optim.SGD({"w": frozen})
    with pytest.raises(TypeError, match="lr must be a number"):
        optim.SGD({"w": np.zeros(3)}, lr="0.1")


def test_bad_grads_raise_and_leave_params_alone():
    params = {"w": np.zeros(3), "b": np.zeros(2)}
    opt = optim.Adam(params)
    with pytest.raises(ValueError, match=r"missing \['b'\], unexpected \['c'\]"):
        opt.step({"w": np.ones(3), "c": np.ones(2)})
    with pytest.raises(ValueError, match=r"grads\['b'\] has shape \(3,\), expected \(2,\)"):
        opt.step({"w": np.ones(3), "b": np.ones(3)})
    with pytest.raises(TypeError, match="grads must be a dict"):
        opt.step([np.ones(3), np.ones(2)])
    assert opt.step_count == 0
    np.testing.assert_array_equal(params["w"], 0)


# --------------------------------------------------------------------------- #
# clipping
# --------------------------------------------------------------------------- #

def test_clip_grad_value_clamps_in_place(rng):
    grads = {"w": np.array([-3.0, -0.5, 0.0, 0.7, 9.0]), "b": np.array([[2.0, -2.0]])}
    w = grads["w"]
    optim.clip_grad_value(grads, 1.0)
    assert grads["w"] is w
    np.testing.assert_array_equal(grads["w"], [-1.0, -0.5, 0.0, 0.7, 1.0])
    np.testing.assert_array_equal(grads["b"], [[1.0, -1.0]])


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, float("inf")])
@pytest.mark.parametrize("max_norm", [0.5, 1e3])
def test_clip_grad_norm_matches_torch(norm_type, max_norm, rng):
    torch = pytest.importorskip("torch")
    grads = {name: rng.standard_normal(shape) for name, shape in SHAPES.items()}
    tensors = [torch.zeros(shape, dtype=torch.float64, requires_grad=True) for shape in SHAPES.values()]
    for t, g in zip(tensors, grads.values()):
        t.grad = torch.tensor(g.copy())
    expected_norm = torch.nn.utils.clip_grad_norm_(tensors, max_norm, norm_type=norm_type)
    total = optim.clip_grad_norm(grads, max_norm, norm_type=norm_type)
    assert isinstance(total, float)
    assert total == pytest.approx(float(expected_norm), rel=1e-12)
    for t, g in zip(tensors, grads.values()):
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-12, atol=0)


def test_clip_grad_value_matches_torch(rng):
    torch = pytest.importorskip("torch")
    grads = [rng.standard_normal(shape).astype(np.float32) * 3 for shape in SHAPES.values()]
    tensors = [torch.zeros(g.shape, requires_grad=True) for g in grads]
    for t, g in zip(tensors, grads):
        t.grad = torch.tensor(g.copy())
    torch.nn.utils.clip_grad_value_(tensors, 1.5)
    optim.clip_grad_value(grads, 1.5)  # a list works as well as a dict
    for t, g in zip(tensors, grads):
        np.testing.assert_array_equal(g, t.grad.numpy())


def test_clip_grad_norm_scales_to_max_norm_and_leaves_small_gradients():
    grads = {"a": np.array([3.0, 0.0]), "b": np.array([[4.0]])}  # global L2 norm 5
    assert optim.clip_grad_norm(grads, 1.0) == 5.0
    np.testing.assert_allclose(grads["a"], [0.6, 0.0], rtol=1e-6)
    np.testing.assert_allclose(grads["b"], [[0.8]], rtol=1e-6)
    small = {"a": np.array([0.3, 0.4])}
    assert optim.clip_grad_norm(small, 1.0) == pytest.approx(0.5)
    np.testing.assert_array_equal(small["a"], [0.3, 0.4])


def test_clip_grad_norm_non_finite():
    grads = {"a": np.array([np.inf, 1.0])}
    with pytest.raises(FloatingPointError, match="total gradient norm is inf"):
        optim.clip_grad_norm(grads, 1.0, error_if_nonfinite=True)
    np.testing.assert_array_equal(grads["a"], [np.inf, 1.0])  # nothing scaled before the error
    assert optim.clip_grad_norm(grads, 1.0) == np.inf  # torch's behaviour: scaled by 0 and NaN
    assert np.isnan(grads["a"][0]) and grads["a"][1] == 0


def test_clip_bad_arguments():
    with pytest.raises(ValueError, match="clip_value must be a finite number >= 0"):
        optim.clip_grad_value({"a": np.zeros(2)}, -1.0)
    with pytest.raises(ValueError, match="norm_type must be positive"):
        optim.clip_grad_norm({"a": np.zeros(2)}, 1.0, norm_type=0)
    with pytest.raises(TypeError, match=r"grads\['a'\] must be a float NumPy array"):
        optim.clip_grad_norm({"a": [1.0, 2.0]}, 1.0)
    with pytest.raises(TypeError, match="grads must be a dict"):
        optim.clip_grad_norm(np.zeros(3), 1.0)
