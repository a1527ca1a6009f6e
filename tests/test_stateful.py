"""elman.stateful: seed 004's stateful network, its printed outputs, and training by BPTT."""

import copy
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest

from elman.stateful import VanillaRecurrentNetwork

from conftest import numerical_gradient, rel_error

EXAMPLE = pathlib.Path(__file__).resolve().parents[1] / "examples" / "stateful_bptt.py"

# What seed 004 printed for three forward_prop(np.ones((3, 3))) calls after np.random.seed(0).
SEED_PRINTED = [
    [[-1.73665315, -2.40366542, -2.72344361],
     [1.61591482, 1.45557046, 1.13262256],
     [1.68977504, 1.54059305, 1.21757531]],
    [[-2.15023381, -2.41205828, -2.71701457],
     [1.71962883, 1.45767515, 1.13101034],
     [1.80488553, 1.542929, 1.21578594]],
    [[-2.15024751, -2.41207375, -2.720968],
     [1.71963227, 1.45767903, 1.13200175],
     [1.80488935, 1.54293331, 1.21688628]],
]


class SeedCode:
    """Seed 004's class, verbatim apart from the name (its own NumPy code)."""

    def __init__(self):
        self.hidden_state = np.zeros((3, 3))
        self.W_hh = np.random.randn(3, 3)
        self.W_xh = np.random.randn(3, 3)
        self.W_hy = np.random.randn(3, 3)
        self.Bh = np.random.randn(3,)
        self.By = np.random.rand(3,)
        self.hidden_state_activation_function = lambda x: np.tanh(x)
        self.y_activation_function = lambda x: x

    def forward_prop(self, x):
        self.hidden_state = self.hidden_state_activation_function(
            np.dot(self.hidden_state, self.W_hh) + np.dot(x, self.W_xh) + self.Bh
        )
        return self.y_activation_function(self.W_hy.dot(self.hidden_state) + self.By)


def test_the_seeds_code_reproduces_its_own_printout():
    np.random.seed(0)
    network = SeedCode()
    input_vector = np.ones((3, 3))
    for printed in SEED_PRINTED:
        np.testing.assert_allclose(network.forward_prop(input_vector), printed, rtol=0, atol=5.01e-9)


def test_forward_prop_prints_what_the_seed_prints():
    np.random.seed(0)
    silly_network = VanillaRecurrentNetwork()
    np.random.seed(0)
    seed_network = SeedCode()
    input_vector = np.ones((3, 3))
    for printed in SEED_PRINTED:  # same input, a different output at every time step
        output = silly_network.forward_prop(input_vector)
        np.testing.assert_allclose(output, printed, rtol=0, atol=5.01e-9)
        np.testing.assert_allclose(output, seed_network.forward_prop(input_vector), rtol=1e-14, atol=1e-14)
        np.testing.assert_allclose(silly_network.hidden_state, seed_network.hidden_state, rtol=1e-14)


def test_seed_argument_draws_like_numpy_random_seed_without_touching_it():
    np.random.seed(0)
    global_draws = VanillaRecurrentNetwork()
    np.random.seed(123)
    state = np.random.get_state()[1].copy()
    seeded = VanillaRecurrentNetwork(seed=0)
    np.testing.assert_array_equal(np.random.get_state()[1], state)
    for name in ("W_hh", "W_xh", "W_hy", "Bh", "By"):
        np.testing.assert_array_equal(getattr(seeded, name), getattr(global_draws, name))
    assert np.all((seeded.By >= 0) & (seeded.By < 1))  # the seed draws By with rand, not randn


@pytest.mark.parametrize("layout,sizes", [("seed", (2, 4, 4, 4)), ("rows", (2, 5, 3, 4))])
def test_forward_sequence_equals_repeated_forward_prop(layout, sizes):
    D, H, O, B = sizes
    rng = np.random.default_rng(0)
    stepwise = VanillaRecurrentNetwork(D, H, O, B, output_layout=layout, seed=1)
    stepwise.W_hh /= 2
    at_once = copy.deepcopy(stepwise)
    inputs = rng.standard_normal((6, B, D))
    outputs = at_once.forward_sequence(inputs)
    for t, x in enumerate(inputs):
        np.testing.assert_allclose(outputs[t], stepwise.forward_prop(x), rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(at_once.hidden_state, stepwise.hidden_state, rtol=1e-13, atol=1e-14)


def test_rows_layout_is_the_row_convention_throughout():
    rng = np.random.default_rng(1)
    net = VanillaRecurrentNetwork(3, 4, 2, 5, output_layout="rows", seed=2)
    h0 = rng.standard_normal((5, 4))
    net.hidden_state = h0.copy()
    x = rng.standard_normal((5, 3))
    y = net.forward_prop(x)
    h = np.tanh(h0 @ net.W_hh + x @ net.W_xh + net.Bh)
    np.testing.assert_allclose(net.hidden_state, h, rtol=1e-13)
    np.testing.assert_allclose(y, h @ net.W_hy + net.By, rtol=1e-13)
    assert y.shape == (5, 2) and net.W_hy.shape == (4, 2)


# --------------------------------------------------------------------------- #
# training
# --------------------------------------------------------------------------- #

def rows_network(seed=3):
    net = VanillaRecurrentNetwork(2, 4, 3, 2, output_layout="rows", seed=seed)
    for name in ("W_hh", "W_xh", "W_hy"):
        getattr(net, name)[...] /= 2  # keep tanh away from saturation
    return net


def test_train_bptt_gradients_against_finite_differences():
    rng = np.random.default_rng(4)
    inputs, targets = rng.standard_normal((5, 2, 2)), rng.standard_normal((5, 2, 3))
    net = rows_network()
    net.hidden_state = rng.standard_normal((2, 4)) / 2
    lr = 1e-3
    trained = copy.deepcopy(net)
    trained.train_bptt(inputs, targets, learning_rate=lr, clip_value=None)

    def loss(name, value):
        probe = copy.deepcopy(net)
        setattr(probe, name, value)
        return np.mean((probe.forward_sequence(inputs) - targets) ** 2)

    for name in ("W_hh", "W_xh", "W_hy", "Bh", "By"):
        analytic = (getattr(net, name) - getattr(trained, name)) / lr  # the SGD step taken
        numerical = numerical_gradient(lambda v, name=name: loss(name, v), getattr(net, name))
        assert rel_error(analytic, numerical) < 1e-7, name


def test_train_bptt_clips_gradients_by_value_and_carries_the_state():
    rng = np.random.default_rng(5)
    inputs, targets = rng.standard_normal((4, 2, 2)), 10 * rng.standard_normal((4, 2, 3))
    net = rows_network()
    reference = copy.deepcopy(net)
    expected_loss = np.mean((reference.forward_sequence(inputs) - targets) ** 2)
    before = {name: getattr(net, name).copy() for name in ("W_hh", "W_xh", "W_hy", "Bh", "By")}
    loss = net.train_bptt(inputs, targets, learning_rate=0.5, clip_value=0.01)
    assert loss == pytest.approx(expected_loss, rel=1e-13)
    for name, value in before.items():
        step = np.abs(getattr(net, name) - value)
        assert step.max() <= 0.5 * 0.01 * (1 + 1e-12), name  # every entry clipped to 0.01
    # the state moved to the chunk's end, computed with the weights before the update
    np.testing.assert_allclose(net.hidden_state, reference.hidden_state, rtol=1e-13)


def test_training_reduces_the_loss():
    rng = np.random.default_rng(6)
    t = np.arange(41)[:, None, None]
    wave = np.sin(0.3 * t + rng.uniform(0, 6, (1, 2, 1)))  # [41, 2, 1]
    net = VanillaRecurrentNetwork(1, 8, 1, 2, output_layout="rows", seed=0)
    net.W_hh /= np.sqrt(8)
    net.W_hy /= np.sqrt(8)
    losses = []
    for _ in range(150):
        net.reset_state()
        losses.append(net.train_bptt(wave[:-1], wave[1:], learning_rate=0.1, clip_value=1.0))
    assert losses[-1] < losses[0] / 10


def test_errors_are_named():
    with pytest.raises(ValueError, match="needs batch_size == hidden_size == output_size"):
        VanillaRecurrentNetwork(3, 4, 3, 3)
    with pytest.raises(ValueError, match="output_layout must be 'seed' or 'rows'"):
        VanillaRecurrentNetwork(output_layout="columns")
    with pytest.raises(ValueError, match="hidden_activation must be one of"):
        VanillaRecurrentNetwork(hidden_activation="softplus")
    net = VanillaRecurrentNetwork(seed=0)
    with pytest.raises(ValueError, match="train_bptt needs output_layout='rows'"):
        net.train_bptt(np.zeros((2, 3, 3)), np.zeros((2, 3, 3)))
    with pytest.raises(ValueError, match=r"x has shape \(2, 3\); expected \(3, 3\)"):
        net.forward_prop(np.ones((2, 3)))
    rows = rows_network()
    with pytest.raises(ValueError, match=r"targets has shape \(3, 2, 2\); expected \(3, 2, 3\)"):
        rows.train_bptt(np.zeros((3, 2, 2)), np.zeros((3, 2, 2)))
    with pytest.raises(ValueError, match=r"inputs has shape \(3, 2\); expected \(T, 2, 2\)"):
        rows.forward_sequence(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="clip_value must be positive"):
        rows.train_bptt(np.zeros((3, 2, 2)), np.zeros((3, 2, 3)), clip_value=0)


def test_inputs_are_not_modified():
    rng = np.random.default_rng(7)
    inputs, targets = rng.standard_normal((3, 2, 2)), rng.standard_normal((3, 2, 3))
    saved = inputs.copy(), targets.copy()
    rows_network().train_bptt(inputs, targets, 0.1, 1.0)
    np.testing.assert_array_equal(inputs, saved[0])
    np.testing.assert_array_equal(targets, saved[1])


# --------------------------------------------------------------------------- #
# the example
# --------------------------------------------------------------------------- #

def test_stateful_bptt_example_loss_falls():
    result = subprocess.run([sys.executable, str(EXAMPLE), "--chunks", "150", "--hidden", "16",
                             "--batch", "8", "--print-every", "30"],
                            capture_output=True, text=True, timeout=120, check=True)
    errors = [float(e) for e in re.findall(r"mean squared error ([0-9.]+)", result.stdout)]
    assert len(errors) == 5 and errors[-1] < errors[0] / 3, result.stdout
    network, naive = re.search(r"network error ([0-9.]+), 'next = current' error ([0-9.]+)",
                               result.stdout).groups()
    assert float(network) < float(naive), result.stdout
