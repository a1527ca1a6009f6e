"""elman.keras: SimpleRNN weights to and from elman, against Keras' documented math in NumPy.

Keras SimpleRNN: h_t = activation(x_t @ kernel + h_{t-1} @ recurrent_kernel + bias), h_0 = 0,
get_weights() == [kernel[D, H], recurrent_kernel[H, H], bias[H]]. TensorFlow is not needed.
"""

import numpy as np
import pytest

import elman
from elman import reference as ref
from elman.keras import from_keras_weights, to_keras_weights
from elman.model import RNN

KERAS_ACTIVATIONS = {"tanh": np.tanh, "relu": lambda z: np.maximum(z, 0), "sigmoid": ref.sigmoid,
                     "linear": lambda z: z}


def keras_simple_rnn(x, kernel, recurrent_kernel, bias, activation="tanh"):
    """SimpleRNN(return_sequences=True) on batch-major x[B, T, D], in NumPy: states[B, T, H]."""
    f = KERAS_ACTIVATIONS[activation]
    h = np.zeros((x.shape[0], kernel.shape[1]))
    states = []
    for t in range(x.shape[1]):
        h = f(x[:, t] @ kernel + h @ recurrent_kernel + bias)
        states.append(h)
    return np.stack(states, axis=1)


def keras_weights(rng, D=3, H=5, dtype=np.float32):
    return [(0.5 * rng.standard_normal(s)).astype(dtype) for s in [(D, H), (H, H), (H,)]]


def test_from_keras_weights_computes_what_keras_computes():
    rng = np.random.default_rng(0)
    kernel, recurrent_kernel, bias = keras_weights(rng, dtype=np.float64)
    x = rng.standard_normal((4, 7, 3))  # Keras is batch-major: [B, T, D]
    weights = from_keras_weights(kernel, recurrent_kernel, bias)
    assert weights["W_xh"].shape == (5, 3) and weights["W_hh"].shape == (5, 5)
    hs = elman.rnn_forward(x.transpose(1, 0, 2), np.zeros((4, 5)), **weights)
    np.testing.assert_allclose(hs.transpose(1, 0, 2), keras_simple_rnn(x, kernel, recurrent_kernel, bias),
                               rtol=1e-13, atol=1e-14)


def test_layouts_are_transposes_and_copies():
    rng = np.random.default_rng(1)
    kernel, recurrent_kernel, bias = keras_weights(rng)
    weights = from_keras_weights(kernel, recurrent_kernel, bias)
    np.testing.assert_array_equal(weights["W_xh"], kernel.T)
    np.testing.assert_array_equal(weights["W_hh"], recurrent_kernel.T)
    np.testing.assert_array_equal(weights["b_h"], bias)
    for array in weights.values():
        assert array.dtype == np.float32 and array.flags.c_contiguous
        assert not any(np.shares_memory(array, a) for a in (kernel, recurrent_kernel, bias))


def test_round_trip_gives_back_the_keras_list():
    rng = np.random.default_rng(2)
    original = keras_weights(rng)
    saved = [a.copy() for a in original]
    back = to_keras_weights(**from_keras_weights(*original))
    assert isinstance(back, list) and len(back) == 3
    for got, want in zip(back, original):
        np.testing.assert_array_equal(got, want)
        assert got.dtype == want.dtype and not np.shares_memory(got, want)
    for a, b in zip(original, saved):
        np.testing.assert_array_equal(a, b)  # nothing passed in was modified


def test_use_bias_false_layers():
    rng = np.random.default_rng(3)
    kernel, recurrent_kernel, _ = keras_weights(rng)
    weights = from_keras_weights(kernel, recurrent_kernel)  # get_weights() of use_bias=False
    assert weights["b_h"].shape == (5,) and not weights["b_h"].any()
    assert weights["b_h"].dtype == np.float32
    np.testing.assert_array_equal(to_keras_weights(weights["W_xh"], weights["W_hh"])[2], np.zeros(5))


@pytest.mark.parametrize("arrays,message", [
    ([np.zeros(5), np.zeros((5, 5)), np.zeros(5)], r"kernel has shape \(5,\); expected \(input_dim, units\)"),
    ([np.zeros((3, 5)), np.zeros((4, 4)), np.zeros(5)],
     r"recurrent_kernel has shape \(4, 4\); expected \(units, units\) = \(5, 5\) to match kernel \(3, 5\)"),
    ([np.zeros((3, 5)), np.zeros((5, 5)), np.zeros(4)],
     r"bias has shape \(4,\); expected \(units,\) = \(5,\)"),
    ([np.zeros((3, 5)), np.zeros((5, 5)), np.zeros((1, 5))], r"bias has shape \(1, 5\)"),
])
def test_from_keras_weights_names_the_wrong_shape(arrays, message):
    with pytest.raises(ValueError, match=message):
        from_keras_weights(*arrays)


def test_to_keras_weights_names_the_wrong_shape():
    with pytest.raises(ValueError, match=r"W_hh has shape \(3, 3\); expected \(H, H\) = \(5, 5\)"):
        to_keras_weights(np.zeros((5, 2)), np.zeros((3, 3)), np.zeros(5))
    with pytest.raises(ValueError, match=r"b_h has shape \(4,\); expected \(H,\) = \(5,\)"):
        to_keras_weights(np.zeros((5, 2)), np.zeros((5, 5)), np.zeros(4))
    with pytest.raises(TypeError, match="needs W_xh and W_hh"):
        to_keras_weights(np.zeros((5, 2)))
    with pytest.raises(TypeError, match="must hold real numbers"):
        from_keras_weights(np.zeros((2, 2), dtype=complex), np.zeros((2, 2)), np.zeros(2))


def test_dtypes_follow_numpy_promotion():
    rng = np.random.default_rng(4)
    kernel, recurrent_kernel, bias = keras_weights(rng)
    mixed = from_keras_weights(kernel, recurrent_kernel.astype(np.float64), bias)
    assert all(a.dtype == np.float64 for a in mixed.values())
    half = from_keras_weights(kernel.astype(np.float16), recurrent_kernel.astype(np.float16),
                              bias.astype(np.float16))
    assert all(a.dtype == np.float32 for a in half.values())


# --------------------------------------------------------------------------- #
# elman.RNN models
# --------------------------------------------------------------------------- #

@pytest.mark.parametrize("activation", ["tanh", "relu", "sigmoid", "linear"])
def test_as_model_runs_like_keras(activation):
    rng = np.random.default_rng(5)
    kernel, recurrent_kernel, bias = keras_weights(rng, dtype=np.float64)
    rnn = from_keras_weights(kernel, recurrent_kernel, bias, as_model=True, activation=activation)
    assert isinstance(rnn, RNN)
    config = rnn.config()
    assert (config["input_size"], config["hidden_size"], config["dtype"]) == (3, 5, "float64")
    assert config["batch_first"]  # the Keras layer's own layout
    x = rng.standard_normal((2, 6, 3))  # Keras' x[B, T, D], fed as it is
    out, h_n = rnn(x)
    expected = keras_simple_rnn(x, kernel, recurrent_kernel, bias, activation)
    assert out.shape == (2, 6, 5)
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(h_n[0], expected[:, -1], rtol=1e-12, atol=1e-14)


def test_to_keras_weights_of_a_model():
    rnn = RNN(4, 6, seed=0)
    kernel, recurrent_kernel, bias = to_keras_weights(rnn)
    np.testing.assert_array_equal(kernel, rnn.params["W_xh_l0"].T)
    np.testing.assert_array_equal(recurrent_kernel, rnn.params["W_hh_l0"].T)
    np.testing.assert_array_equal(bias, rnn.params["b_h_l0"])
    assert kernel.dtype == np.float32 and not np.shares_memory(kernel, rnn.params["W_xh_l0"])
    x = np.random.default_rng(6).standard_normal((3, 5, 4)).astype(np.float32)
    out, _ = rnn(x.transpose(1, 0, 2))
    np.testing.assert_allclose(out.transpose(1, 0, 2), keras_simple_rnn(x, kernel, recurrent_kernel, bias),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kwargs", [{"num_layers": 2}, {"bidirectional": True}])
def test_to_keras_weights_needs_one_unidirectional_layer(kwargs):
    with pytest.raises(ValueError, match="a Keras SimpleRNN is one unidirectional layer"):
        to_keras_weights(RNN(3, 4, **kwargs))
    with pytest.raises(TypeError, match="takes the model alone"):
        to_keras_weights(RNN(3, 4), np.zeros((4, 4)))


def test_as_model_rejects_unknown_activations():
    rng = np.random.default_rng(7)
    with pytest.raises(ValueError, match="activation must be one of"):
        from_keras_weights(*keras_weights(rng), as_model=True, activation="softplus")
