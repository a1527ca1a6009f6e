"""elman.cells: TensorFlow's BasicRNNCell and OutputProjectionWrapper, against TF's documented math.

TensorFlow is not a dependency, so its formulas are written out in NumPy here:
BasicRNNCell: output = new_state = act(concat([inputs, state], 1) @ kernel + bias);
OutputProjectionWrapper: output = cell_output @ kernel + bias.
"""

import numpy as np
import pytest

import elman
from elman import reference as ref
from elman.cells import BasicRNNCell, OutputProjectionWrapper

TF_ACTIVATIONS = {"tanh": np.tanh, "sigmoid": ref.sigmoid, "relu": lambda z: np.maximum(z, 0),
                  "identity": lambda z: z}


def tf_basic_rnn_cell(kernel, bias, inputs, state, activation="tanh"):
    """TensorFlow 1.x BasicRNNCell.call, in NumPy."""
    return TF_ACTIVATIONS[activation](np.concatenate([inputs, state], axis=1) @ kernel + bias)


def test_seed_001_demo_output_is_the_new_state():
    # Seed 001: num_units=2, batch 1, input size 4, inputs all ones, state all 0.1;
    # "g_result == out_m_result, the two are the same". Its numbers came from TF's random init.
    num_units, batch_size, input_size = 2, 1, 4
    cell = BasicRNNCell(num_units, seed=0)
    x = 1 * np.ones([batch_size, input_size])
    m = 0.1 * np.ones([batch_size, cell.state_size])
    g, out_m = cell(x, m)
    assert g is out_m  # one array returned twice, as TF returns one tensor twice
    assert g.shape == (batch_size, num_units)
    assert cell.kernel.shape == (input_size + num_units, num_units) and cell.bias.shape == (num_units,)
    np.testing.assert_allclose(g, tf_basic_rnn_cell(cell.kernel, cell.bias, x, m), rtol=1e-6)
    assert np.all(np.abs(g) < 1)


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "relu", "identity"])
@pytest.mark.parametrize("dtype,rtol", [(np.float32, 1e-5), (np.float64, 1e-13)])
def test_basic_rnn_cell_matches_tensorflow_math(activation, dtype, rtol):
    rng = np.random.default_rng(0)
    cell = BasicRNNCell(5, activation=activation, seed=1)
    inputs = rng.standard_normal((3, 4)).astype(dtype)
    state = rng.standard_normal((3, 5)).astype(dtype)
    cell.build(4, dtype)
    cell.bias = rng.standard_normal(5)
    output, new_state = cell(inputs, state)
    assert output.dtype == dtype
    np.testing.assert_allclose(output, tf_basic_rnn_cell(cell.kernel, cell.bias, inputs, state, activation),
                               rtol=rtol, atol=rtol)


def test_weights_are_created_lazily_with_tensorflow_initialisers():
    cell = BasicRNNCell(6, seed=3)
    assert not cell.built and cell.kernel is None and cell.input_size is None
    with pytest.raises(ValueError, match="no weights yet"):
        cell.W_xh
    cell(np.zeros((2, 4), np.float32), cell.zero_state(2, np.float32))
    assert cell.built and cell.input_size == 4 and cell.kernel.dtype == np.float32
    limit = np.sqrt(6 / (4 + 6 + 6))  # Glorot uniform on kernel[D + H, H]
    assert np.all(np.abs(cell.kernel) <= limit) and cell.kernel.std() > limit / 4
    np.testing.assert_array_equal(cell.bias, 0)
    other = BasicRNNCell(6, seed=3)
    other.build(4)
    np.testing.assert_array_equal(other.kernel, cell.kernel)  # the seed decides the weights


def test_elman_views_share_the_tensorflow_kernel():
    cell = BasicRNNCell(3, seed=0, dtype=np.float64)
    cell.build(2)
    np.testing.assert_array_equal(cell.W_xh, cell.kernel[:2].T)
    np.testing.assert_array_equal(cell.W_hh, cell.kernel[2:].T)
    assert cell.b_h is cell.bias
    cell.W_hh[0, 1] = 7.0  # a view: writing it writes the kernel
    assert cell.kernel[2 + 1, 0] == 7.0


def test_a_sequence_of_cell_steps_equals_elman_rnn_forward():
    rng = np.random.default_rng(1)
    cell = BasicRNNCell(4, dtype=np.float64, seed=2)
    x = rng.standard_normal((6, 2, 3))
    state = cell.zero_state(2, np.float64)
    states = []
    for x_t in x:
        _, state = cell(x_t, state)
        states.append(state)
    hs = elman.rnn_forward(x, np.zeros((2, 4)), cell.W_xh, cell.W_hh, cell.b_h)
    np.testing.assert_allclose(np.array(states), hs, rtol=1e-13, atol=1e-15)


def test_assigning_tensorflow_weights():
    rng = np.random.default_rng(2)
    kernel, bias = rng.standard_normal((3 + 2, 2)), rng.standard_normal(2)
    cell = BasicRNNCell(2)
    cell.kernel = kernel  # before any call: builds the cell for 3 input features
    cell.bias = bias
    assert cell.input_size == 3
    inputs, state = rng.standard_normal((4, 3)), rng.standard_normal((4, 2))
    np.testing.assert_allclose(cell(inputs, state)[0], tf_basic_rnn_cell(kernel, bias, inputs, state),
                               rtol=1e-13)
    kernel[0, 0] = 99.0
    assert cell.kernel[0, 0] != 99.0  # assignment copies; the caller's array is not aliased
    with pytest.raises(ValueError, match=r"BasicRNNCell.kernel has shape \(4, 2\); expected \(5, 2\)"):
        cell.kernel = np.zeros((4, 2))
    with pytest.raises(ValueError, match=r"BasicRNNCell.bias has shape \(3,\); expected \(2,\)"):
        cell.bias = np.zeros(3)
    with pytest.raises(ValueError, match="with D >= 1"):
        BasicRNNCell(2).kernel = np.zeros((2, 2))


def test_activation_names_and_np_tanh():
    assert BasicRNNCell(2).activation == "tanh"
    assert BasicRNNCell(2, activation=np.tanh).activation == "tanh"
    assert BasicRNNCell(2, activation="relu").activation == "relu"
    with pytest.raises(ValueError, match="other callables are not accepted"):
        BasicRNNCell(2, activation=lambda z: z)
    with pytest.raises(ValueError, match="num_units must be a positive integer"):
        BasicRNNCell(0)


def test_zero_state_and_sizes():
    cell = BasicRNNCell(5)
    assert cell.state_size == cell.output_size == 5
    zero = cell.zero_state(3, np.float64)
    assert zero.shape == (3, 5) and zero.dtype == np.float64 and not zero.any()
    with pytest.raises(ValueError, match="dtype must be float32 or float64"):
        cell.zero_state(3, np.int32)


@pytest.mark.parametrize("inputs_shape,state_shape,message", [
    ((2, 3, 1), (2, 4), r"inputs has shape \(2, 3, 1\); expected \(batch, features\)"),
    ((2, 3), (2, 5), r"state has shape \(2, 5\); expected \(batch, 4\)"),
    ((2, 3), (3, 4), "inputs has 2 rows but state has 3"),
])
def test_bad_shapes_are_named(inputs_shape, state_shape, message):
    cell = BasicRNNCell(4)
    with pytest.raises(ValueError, match=message):
        cell(np.zeros(inputs_shape), np.zeros(state_shape))


def test_input_size_is_fixed_by_the_first_call():
    cell = BasicRNNCell(4)
    cell(np.zeros((1, 3)), np.zeros((1, 4)))
    with pytest.raises(ValueError, match=r"inputs has shape \(1, 5\); expected \(batch, 3\)"):
        cell(np.zeros((1, 5)), np.zeros((1, 4)))


def test_inputs_are_not_modified():
    rng = np.random.default_rng(3)
    inputs, state = rng.standard_normal((2, 3)), rng.standard_normal((2, 4))
    inputs_before, state_before = inputs.copy(), state.copy()
    OutputProjectionWrapper(BasicRNNCell(4), 2)(inputs, state)
    np.testing.assert_array_equal(inputs, inputs_before)
    np.testing.assert_array_equal(state, state_before)


# --------------------------------------------------------------------------- #
# OutputProjectionWrapper
# --------------------------------------------------------------------------- #

def test_output_projection_wrapper_seed_000():
    # Seed 000: OutputProjectionWrapper(BasicRNNCell(...), num_output_units) gives the output
    # projection, with different sizes for the hidden state and the output.
    rng = np.random.default_rng(4)
    cell = OutputProjectionWrapper(BasicRNNCell(6, seed=0), 3, seed=1)
    assert cell.state_size == 6 and cell.output_size == 3
    inputs = rng.standard_normal((5, 2)).astype(np.float32)
    state = cell.zero_state(5)
    output, new_state = cell(inputs, state)
    assert output.shape == (5, 3) and new_state.shape == (5, 6)
    inner = cell.cell
    expected_state = tf_basic_rnn_cell(inner.kernel, inner.bias, inputs, state)
    np.testing.assert_allclose(new_state, expected_state, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(output, expected_state @ cell.kernel + cell.bias, rtol=1e-5, atol=1e-6)
    assert cell.kernel.shape == (6, 3) and cell.bias.shape == (3,)
    np.testing.assert_array_equal(cell.W_hy, cell.kernel.T)
    assert cell.b_y is cell.bias


def test_output_projection_softmax_and_assigned_weights():
    rng = np.random.default_rng(5)
    cell = OutputProjectionWrapper(BasicRNNCell(4, dtype=np.float64), 3, activation="softmax")
    cell.kernel = rng.standard_normal((4, 3))
    cell.bias = rng.standard_normal(3)
    output, new_state = cell(rng.standard_normal((2, 5)), np.zeros((2, 4)))
    logits = new_state @ cell.kernel + cell.bias
    np.testing.assert_allclose(output, ref.softmax(logits), rtol=1e-13)
    with pytest.raises(ValueError,
                       match=r"OutputProjectionWrapper.kernel has shape \(5, 3\); expected \(4, 3\)"):
        cell.kernel = np.zeros((5, 3))
    with pytest.raises(ValueError, match="output activation must be one of"):
        OutputProjectionWrapper(BasicRNNCell(4), 3, activation="tanh")
    with pytest.raises(TypeError, match="cell must be an RNN cell"):
        OutputProjectionWrapper(object(), 3)
