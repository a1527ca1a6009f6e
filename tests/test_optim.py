"""elman.optim: PyTorch's update formulas step for step, in place, with state allocated once; the
compiled step gives the bits of the NumPy formulas."""

import tracemalloc

import numpy as np
import pytest

from elman import _core, optim

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


@pytest.mark.parametrize("cls", [optim.SGD, optim.Adagrad, optim.RMSprop, optim.Adam, optim.AdamW])
def test_a_parameter_given_twice_or_overlapping_is_refused(cls):
    """torch refuses a parameter given twice; an array updated twice per step (once under each
    name) is never what was meant, and neither are overlapping views."""
    w = np.zeros((4, 4))
    with pytest.raises(ValueError, match=r"params\['a'\] and params\['b'\] are the same array"):
        cls({"a": w, "b": w})
    with pytest.raises(ValueError, match=r"params\['a'\] and params\['b'\] are views of overlapping"):
        cls({"a": w[:3], "b": w[2:]})
    with pytest.raises(ValueError, match=r"params\['w'\] and params\['row'\] are views"):
        cls({"w": w, "row": w[1]})
    cls({"even": w[:, ::2], "odd": w[:, 1::2]})  # interleaved, not overlapping: fine
    cls({"a": np.zeros(3), "b": np.zeros(3), "empty": w[:0]})


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


# --------------------------------------------------------------------------- #
# the compiled step: the same bits as the NumPy formulas (each optimizer's _update)
# --------------------------------------------------------------------------- #

# Every option of every optimizer, both lerp formulas (weight 1 - beta1 or 1 - alpha below and
# above 0.5), both kinds of weight decay.
BIT_CONFIGS = CONFIGS + [
    (optim.SGD, "SGD", {"lr": 0.05, "momentum": 0.7, "dampening": -0.2}),
    (optim.SGD, "SGD", {"lr": 0.05, "weight_decay": 0.2}),
    (optim.Adagrad, "Adagrad", {"lr": 0.1, "lr_decay": 0.5}),
    (optim.RMSprop, "RMSprop", {"lr": 0.01, "alpha": 0.3, "centered": True, "weight_decay": 0.1}),
    (optim.RMSprop, "RMSprop", {"lr": 0.01, "alpha": 0.5, "centered": True, "momentum": 0.3}),
    (optim.Adam, "Adam", {"lr": 0.01, "betas": (0.3, 0.5), "weight_decay": 0.2, "amsgrad": True}),
    (optim.Adam, "Adam", {"lr": 0.01, "betas": (0.5, 0.999), "eps": 0.0}),
    (optim.AdamW, "AdamW", {"lr": 0.02, "betas": (0.2, 0.9), "weight_decay": 0.0}),
    (optim.AdamW, "AdamW", {"lr": 0.5, "betas": (0.0, 0.0), "weight_decay": 1.0, "amsgrad": True}),
]
BIT_IDS = [f"{cls.__name__}-{i}" for i, (cls, _, _) in enumerate(BIT_CONFIGS)]
# Odd sizes: one element, a few (fewer than a vector, and a vector plus a tail), none, a 0-d
# array, 2-D, and enough for the vector loop's main body.
ODD_SHAPES = {"one": (1,), "seven": (7,), "empty": (0,), "scalar": (), "matrix": (3, 5),
              "empty_rows": (0, 4), "long": (133,)}


def numpy_path(opt):
    """opt, made to step with its NumPy formulas (the reference)."""
    opt._fused = False
    return opt


def compiled_path(opt):
    """opt, made to fail if a step falls back to its NumPy formulas."""
    def fail(*args):
        raise AssertionError("the step took the NumPy path")
    opt._update = fail
    return opt


def assert_same_bits(got, expected, what):
    """Equal bit for bit (so -0.0 is not 0.0), with NaN in the same places (any NaN payload)."""
    assert got.dtype == expected.dtype and got.shape == expected.shape, what
    nan = np.isnan(expected)
    np.testing.assert_array_equal(np.isnan(got), nan, err_msg=f"{what}: NaN positions")
    bits = f"u{got.dtype.itemsize}"
    np.testing.assert_array_equal(np.where(nan, 0, got).view(bits),
                                  np.where(nan, 0, expected).view(bits), err_msg=what)


def assert_same_state(got_opt, expected_opt, got_params, expected_params):
    for name in expected_params:
        assert_same_bits(got_params[name], expected_params[name], name)
        for key, value in expected_opt.state[name].items():
            if key not in ("work", "tmp"):  # scratch space of the NumPy path
                assert_same_bits(got_opt.state[name][key], value, f"state[{name!r}][{key!r}]")


def hard_gradients(rng, shapes, dtype, step):
    """Gradients of a random scale, with tiny (subnormal), huge, zero and negative-zero entries,
    and inf and NaN entries from step 30 on."""
    info = np.finfo(dtype)
    grads = {}
    for name, shape in shapes.items():
        g = np.array(rng.standard_normal(shape) * 10.0 ** rng.uniform(-3, 2))
        flat = g.reshape(-1)  # a view: writes reach g
        specials = [info.smallest_subnormal * 3, -info.tiny, info.max / 1e3, 0.0, -0.0]
        if step >= 30:
            specials += [np.inf, -np.inf, np.nan]
        for i in range(flat.size):
            if rng.uniform() < 0.15:
                flat[i] = specials[rng.integers(len(specials))]
        grads[name] = g.astype(dtype)
    return grads


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("cls, torch_name, kwargs", BIT_CONFIGS, ids=BIT_IDS)
def test_compiled_step_gives_the_numpy_formulas_bits(cls, torch_name, kwargs, dtype, rng):
    start = {name: np.asarray(rng.standard_normal(shape) * 3, dtype)
             for name, shape in ODD_SHAPES.items()}
    got_params = {name: p.copy() for name, p in start.items()}
    expected_params = {name: p.copy() for name, p in start.items()}
    got = compiled_path(cls(got_params, **kwargs))
    expected = numpy_path(cls(expected_params, **kwargs))
    for step in range(40):
        grads = hard_gradients(rng, ODD_SHAPES, dtype, step)
        if step % 7 == 3:  # a learning-rate schedule
            got.lr = expected.lr = got.lr * rng.uniform(0.3, 1.5)
        got.step(grads)
        expected.step(grads)
        assert_same_state(got, expected, got_params, expected_params)
    assert got.step_count == expected.step_count == 40


def test_compiled_step_with_mixed_dtypes_and_converted_gradients(rng):
    start = {"w": rng.standard_normal((4, 6)).astype(np.float32), "b": rng.standard_normal(9)}
    got_params = {k: v.copy() for k, v in start.items()}
    expected_params = {k: v.copy() for k, v in start.items()}
    got = compiled_path(optim.AdamW(got_params, lr=0.01, amsgrad=True))
    expected = numpy_path(optim.AdamW(expected_params, lr=0.01, amsgrad=True))
    for _ in range(10):
        # float64 gradients for float32 parameters and the reverse: converted before the step
        grads = {"w": rng.standard_normal((4, 6)), "b": rng.standard_normal(9).astype(np.float32)}
        got.step(grads)
        expected.step(grads)
    assert_same_state(got, expected, got_params, expected_params)


@pytest.mark.parametrize("cls, torch_name, kwargs", BIT_CONFIGS, ids=BIT_IDS)
def test_parameters_the_compiled_step_cannot_write_take_the_numpy_path(cls, torch_name, kwargs,
                                                                       rng):
    # A transposed and a strided view: updated in place where they are, with the same values as
    # the compiled step gives contiguous copies.
    base = rng.standard_normal((6, 10)).astype(np.float32)
    views = {"t": base[:, :5].T, "s": base[::2, 5:]}
    copies = {k: np.ascontiguousarray(v) for k, v in views.items()}
    opt = cls(views, **kwargs)
    assert not opt._fused
    reference = compiled_path(cls(copies, **kwargs))
    for _ in range(5):
        grads = {k: rng.standard_normal(v.shape).astype(np.float32) for k, v in views.items()}
        opt.step(grads)
        reference.step(grads)
    for k in views:
        assert views[k].base is base
        assert_same_bits(np.ascontiguousarray(views[k]), copies[k], k)


@pytest.mark.parametrize("cls, torch_name, kwargs", BIT_CONFIGS, ids=BIT_IDS)
def test_gradients_the_compiled_step_cannot_read_take_the_numpy_path(cls, torch_name, kwargs, rng):
    # Gradients that are strided views, and gradients that ARE the parameters (the NumPy path's
    # later passes then read what its earlier ones wrote): the same bits as the NumPy path.
    start = {"w": rng.standard_normal((5, 3)), "b": rng.standard_normal(4)}
    for make_grads in (lambda p: {k: np.repeat(v, 2, axis=-1)[..., ::2] for k, v in p.items()},
                       lambda p: dict(p)):
        got_params = {k: v.copy() for k, v in start.items()}
        expected_params = {k: v.copy() for k, v in start.items()}
        got = cls(got_params, **kwargs)
        expected = numpy_path(cls(expected_params, **kwargs))
        for _ in range(4):
            got.step(make_grads(got_params))
            expected.step(make_grads(expected_params))
        assert_same_state(got, expected, got_params, expected_params)


def test_compiled_step_with_infinite_gradients_warns_nothing_later():
    # The compiled step leaves the CPU's invalid-operation flag set; NumPy must not report it
    # (the suite turns warnings into errors).
    params = {"w": np.ones(8, np.float32)}
    opt = compiled_path(optim.Adam(params))
    opt.step({"w": np.full(8, np.inf, np.float32)})
    assert np.isnan(params["w"]).all()
    np.add(np.ones(3), 1.0)
    np.sqrt(np.ones(3))


def test_lr_is_checked_and_kept_as_a_float():
    opt = optim.Adam({"w": np.zeros(2, np.float32)})
    for value in (np.float32(0.1), np.float64(0.25), 1):
        opt.lr = value
        assert type(opt.lr) is float and opt.lr == float(value)
    with pytest.raises(ValueError, match="lr must be a finite number >= 0"):
        opt.lr = -0.1
    with pytest.raises(TypeError, match="lr must be a number"):
        opt.lr = "0.1"
    assert opt.lr == 1.0


# The binding itself: strict about what it writes, and False (nothing written) for gradients
# it cannot read in one pass.

def adam_args(params, grads, exp_avgs, exp_avg_sqs):
    return (params, grads, exp_avgs, exp_avg_sqs, None, None, 0.0, False, 0.1, 0.999, 0.001,
            -1e-3, 0.5, 1e-8)


def frozen(n):
    a = np.zeros(n, np.float32)
    a.flags.writeable = False
    return a


# (argument, replacement for its second array, error, message)
BAD_CORE_ARRAYS = [
    (0, np.zeros(6, np.float32)[::2], ValueError, r"params\[1\] must be a writeable, C-contiguous"),
    (0, frozen(3), ValueError, r"params\[1\] must be a writeable"),
    (0, np.zeros(3, np.int32), TypeError, r"params\[1\] has dtype int32"),
    (2, np.zeros(3), TypeError, r"exp_avgs\[1\] has dtype float64, expected float32"),
    (3, np.zeros(4, np.float32), ValueError,
     r"exp_avg_sqs\[1\] has shape \(4,\), expected \(3,\) \(params\[1\]'s\)"),
    (3, frozen(3), ValueError, r"exp_avg_sqs\[1\] must be a writeable"),
    (1, np.zeros(3), TypeError, r"grads\[1\] has dtype float64"),
    (1, np.zeros((3, 1), np.float32), ValueError, r"grads\[1\] has shape \(3, 1\)"),
    (2, [0.0, 0.0, 0.0], TypeError, r"exp_avgs\[1\] must be a numpy.ndarray, got list"),
]


@pytest.mark.parametrize("argument, array, error, message", BAD_CORE_ARRAYS)
def test_core_adam_step_checks_every_array_before_writing_any(argument, array, error, message):
    lists = [[np.ones(3, np.float32), np.ones(3, np.float32)] for _ in range(4)]
    lists[argument][1] = array  # lists: params, grads, exp_avgs, exp_avg_sqs
    with pytest.raises(error, match=message):
        _core.adam_step(*adam_args(*lists))
    np.testing.assert_array_equal(lists[0][0], 1)  # the first parameter's update did not run
    lists[argument][1] = np.ones(3, np.float32)
    assert _core.adam_step(*adam_args(*lists)) is True
    assert (lists[0][0] != 1).all()


def test_core_adam_step_wants_one_array_per_parameter():
    lists = [[np.zeros(3, np.float32)] for _ in range(4)]
    lists[2] = lists[2] * 2
    with pytest.raises(ValueError, match=r"exp_avgs has 2 arrays, expected 1 \(one per"):
        _core.adam_step(*adam_args(*lists))
    with pytest.raises(TypeError, match="grads must be a list of arrays, got dict"):
        _core.adam_step(*adam_args(lists[0], {}, lists[3], lists[3]))


def test_core_adam_step_refuses_gradients_it_cannot_read_and_writes_nothing():
    p, m, memory = np.ones(3), np.ones(3), np.ones(4)
    v = memory[:3]
    for grads in ([np.ones(6)[::2]], [p], [m], [memory[1:]]):  # strided; p, m; part of v
        assert _core.adam_step(*adam_args([p], grads, [m], [v])) is False
        np.testing.assert_array_equal(p, 1)
        np.testing.assert_array_equal(m, 1)
        np.testing.assert_array_equal(v, 1)
    assert _core.adam_step(*adam_args([p], [np.ones(3)], [m], [p])) is False  # state overlaps p


def test_a_subclass_that_redefines_update_steps_with_it(rng):
    class SignAdam(optim.Adam):
        def _update(self, param, grad, state):
            param -= self.lr * np.sign(grad)

    params = {"w": np.zeros(3)}
    SignAdam(params, lr=0.5).step({"w": np.array([2.0, -3.0, 0.0])})
    np.testing.assert_array_equal(params["w"], [-0.5, 0.5, 0.0])
    assert compiled_path(optim.AdamW({"w": np.zeros(3)}))._fused  # AdamW: Adam's compiled step
