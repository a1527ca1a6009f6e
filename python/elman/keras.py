"""Weights of Keras' ``SimpleRNN`` layer to and from elman, without TensorFlow.

Keras computes ``h_t = activation(x_t @ kernel + h_{t-1} @ recurrent_kernel + bias)`` with
``kernel[D, H]``, ``recurrent_kernel[H, H]``, ``bias[H]``; ``layer.get_weights()`` returns
``[kernel, recurrent_kernel, bias]`` and ``layer.set_weights`` takes the same list. elman's layout
is the transpose (PyTorch's): ``W_xh[H, D] = kernel.T``, ``W_hh[H, H] = recurrent_kernel.T``,
``b_h = bias``. The conversions below only transpose and check shapes; they return new arrays,
never views of their arguments.

    from elman.keras import from_keras_weights, to_keras_weights
    weights = from_keras_weights(*keras_layer.get_weights())      # dict W_xh, W_hh, b_h
    rnn = from_keras_weights(*keras_layer.get_weights(), as_model=True)   # an elman.RNN, x[B, T, D]
    keras_layer.set_weights(to_keras_weights(rnn))
"""

from __future__ import annotations

import numpy as np

from ._checks import float_array

__all__ = ["from_keras_weights", "to_keras_weights"]

# Keras activation names -> elman's (Keras calls the identity "linear").
KERAS_ACTIVATIONS = {"tanh": "tanh", "sigmoid": "sigmoid", "relu": "relu",
                     "linear": "identity", "identity": "identity"}


def _common_dtype(*arrays):
    """One compute dtype for all arrays, as NumPy promotes them (float32 with float64: float64)."""
    return np.result_type(*arrays)


def _check_weights(kernel, recurrent_kernel, bias):
    """Keras arrays kernel[D, H], recurrent_kernel[H, H], bias[H] (or None), shapes checked."""
    kernel = float_array(kernel, "kernel")
    recurrent_kernel = float_array(recurrent_kernel, "recurrent_kernel")
    if kernel.ndim != 2:
        raise ValueError(f"kernel has shape {kernel.shape}; expected (input_dim, units), "
                         f"the first array of SimpleRNN.get_weights()")
    D, H = kernel.shape
    if recurrent_kernel.shape != (H, H):
        raise ValueError(f"recurrent_kernel has shape {recurrent_kernel.shape}; expected "
                         f"(units, units) = ({H}, {H}) to match kernel {kernel.shape}")
    if bias is None:  # a layer built with use_bias=False has no bias array
        bias = np.zeros(H, dtype=_common_dtype(kernel, recurrent_kernel))
    bias = float_array(bias, "bias")
    if bias.shape != (H,):
        raise ValueError(f"bias has shape {bias.shape}; expected (units,) = ({H},) "
                         f"to match kernel {kernel.shape}")
    return kernel, recurrent_kernel, bias


def from_keras_weights(kernel, recurrent_kernel, bias=None, *, as_model=False,
                       activation="tanh"):
    """Keras SimpleRNN weights in elman's layout.

    Arguments:
        kernel[D, H], recurrent_kernel[H, H], bias[H]   SimpleRNN.get_weights(), in that order;
                                                        bias None for a layer with use_bias=False
        as_model     False: return the arrays; True: return a one-layer elman.RNN holding them,
                     in the Keras layer's layout: batch_first=True, so it takes Keras' x[B, T, D]
                     and returns out[B, T, H] (SimpleRNN's return_sequences=True) and h_n[1, B, H]
        activation   with as_model, the Keras layer's activation: "tanh" (Keras' default),
                     "relu", "sigmoid" or "linear"; the weights do not record it
    Returns:
        {"W_xh": kernel.T [H, D], "W_hh": recurrent_kernel.T [H, H], "b_h": bias [H]} as new
        C-contiguous arrays of one dtype (float32 stays float32), or an
        elman.RNN(D, H, batch_first=True).
    """
    kernel, recurrent_kernel, bias = _check_weights(kernel, recurrent_kernel, bias)
    dtype = _common_dtype(kernel, recurrent_kernel, bias)
    weights = {
        "W_xh": np.ascontiguousarray(kernel.T, dtype=dtype),
        "W_hh": np.ascontiguousarray(recurrent_kernel.T, dtype=dtype),
        "b_h": np.array(bias, dtype=dtype),  # a copy, even when the dtype already matches
    }
    if not as_model:
        return weights
    if activation not in KERAS_ACTIVATIONS:
        raise ValueError(f"activation must be one of {', '.join(map(repr, KERAS_ACTIVATIONS))}, "
                         f"got {activation!r}")
    from .model import RNN

    H, D = weights["W_xh"].shape
    # batch_first: Keras sequences are x[B, T, D]; a time-major model would read them as T
    # sequences of B steps without any error when the sizes allow it.
    rnn = RNN(D, H, activation=KERAS_ACTIVATIONS[activation], dtype=dtype.name, batch_first=True)
    for name, value in weights.items():
        rnn.params[f"{name}_l0"][...] = value  # the live arrays: assign in place
    return rnn


def to_keras_weights(W_xh, W_hh=None, b_h=None):
    """The list Keras' ``SimpleRNN.set_weights`` takes: ``[kernel, recurrent_kernel, bias]``.

    Either elman's arrays ``to_keras_weights(W_xh[H, D], W_hh[H, H], b_h[H])`` (b_h None gives
    zeros), or a one-layer, unidirectional ``elman.RNN``: ``to_keras_weights(rnn)``. The Keras
    layer needs the same ``activation`` (elman's "identity" is Keras' "linear"). What SimpleRNN
    does not hold stays out: an output layer maps to a Keras Dense layer with weights
    ``[rnn.params["W_hy"].T, rnn.params["b_y"]]``, and a learned h0 must be given to Keras as
    ``initial_state``.

    Returns new arrays kernel[D, H], recurrent_kernel[H, H], bias[H] (C-contiguous, one dtype).
    """
    if _is_model(W_xh):
        if W_hh is not None or b_h is not None:
            raise TypeError("to_keras_weights(rnn) takes the model alone, "
                            "or the arrays W_xh, W_hh, b_h")
        W_xh, W_hh, b_h = _single_layer_weights(W_xh)
    elif W_hh is None:
        raise TypeError("to_keras_weights needs W_xh and W_hh (and optionally b_h), "
                        "or an elman.RNN")
    W_xh = float_array(W_xh, "W_xh")
    W_hh = float_array(W_hh, "W_hh")
    if W_xh.ndim != 2:
        raise ValueError(f"W_xh has shape {W_xh.shape}; expected (H, D)")
    H = W_xh.shape[0]
    if W_hh.shape != (H, H):
        raise ValueError(f"W_hh has shape {W_hh.shape}; expected (H, H) = ({H}, {H}) "
                         f"to match W_xh {W_xh.shape}")
    b_h = np.zeros(H, dtype=_common_dtype(W_xh, W_hh)) if b_h is None else float_array(b_h, "b_h")
    if b_h.shape != (H,):
        raise ValueError(f"b_h has shape {b_h.shape}; expected (H,) = ({H},) "
                         f"to match W_xh {W_xh.shape}")
    dtype = _common_dtype(W_xh, W_hh, b_h)
    return [np.ascontiguousarray(W_xh.T, dtype=dtype),
            np.ascontiguousarray(W_hh.T, dtype=dtype),
            np.array(b_h, dtype=dtype)]


def _is_model(value):
    """Whether value is an elman.RNN (imported late: the model layer is optional here)."""
    try:
        from .model import RNN
    except ImportError:  # pragma: no cover - only when the model module is absent
        return False
    return isinstance(value, RNN)


def _single_layer_weights(rnn):
    """(W_xh, W_hh, b_h) of a one-layer unidirectional elman.RNN, or a ValueError."""
    config = rnn.config()
    if config["num_layers"] != 1 or config["bidirectional"]:
        raise ValueError(f"a Keras SimpleRNN is one unidirectional layer; this RNN has "
                         f"num_layers={config['num_layers']}, "
                         f"bidirectional={config['bidirectional']}. Export each layer's "
                         f"arrays with to_keras_weights(W_xh, W_hh, b_h)")
    return rnn.params["W_xh_l0"], rnn.params["W_hh_l0"], rnn.params["b_h_l0"]
