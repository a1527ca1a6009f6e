"""TensorFlow-style RNN cells (``tf.nn.rnn_cell``) on elman's kernels, forward only.

Two classes, as TensorFlow 1.x users know them:

    cell = BasicRNNCell(num_units)                    output = new_state = tanh(W x + U state + B)
    output, new_state = cell(inputs[B, D], state[B, num_units])

    cell = OutputProjectionWrapper(BasicRNNCell(num_units), output_size)
    output[B, output_size], new_state[B, num_units] = cell(inputs, state)

BasicRNNCell outputs its new hidden state; it has no output weights. OutputProjectionWrapper adds
the projection ``output = new_state @ kernel + bias`` on top, so the output size may differ from
the state size. Both compute with elman's kernels (``cell_forward`` and ``output_forward``).

Weights follow TensorFlow: they are created on the first call, from the size of the inputs, with
TensorFlow's default initialisers (Glorot-uniform kernel, zero bias); ``cell.kernel`` and
``cell.bias`` have TensorFlow's layout, ``kernel[D + num_units, num_units]`` applied to
``concat([inputs, state], 1)``, so weights exported from TensorFlow can be assigned directly.
``cell.W_xh``, ``cell.W_hh`` and ``cell.b_h`` are views of the same memory in elman's layout.

Only the forward pass is provided: these classes serve code written against the TensorFlow cell
API (running a trained cell step by step). To train, use elman's functional core or model.
"""

from __future__ import annotations

import numpy as np

from ._checks import positive_int
from . import functional as F
from ._seeds import random_generator

__all__ = ["BasicRNNCell", "OutputProjectionWrapper"]

HIDDEN_ACTIVATIONS = ("tanh", "sigmoid", "relu", "identity")
OUTPUT_ACTIVATIONS = ("identity", "softmax", "sigmoid")


def _activation_name(activation, choices, what):
    """An elman activation name from a name, None (TensorFlow's default) or np.tanh."""
    if activation is None:
        return choices[0]
    if activation is np.tanh:
        activation = "tanh"
    if not isinstance(activation, str) or activation not in choices:
        names = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{what} activation must be one of {names}, None or np.tanh, "
                         f"got {activation!r}; the kernels compute only these, so other "
                         f"callables are not accepted")
    return activation


def _float_dtype(dtype):
    """float32 or float64, the dtypes the kernels compute in."""
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64, got {dtype}")
    return dtype


def _glorot_uniform(rng, shape, dtype):
    """TensorFlow's default kernel initialiser: U(-limit, limit), limit = sqrt(6 / (fan_in + fan_out))."""
    limit = np.sqrt(6.0 / (shape[0] + shape[1]))
    return rng.uniform(-limit, limit, size=shape).astype(dtype)


def _as_batch(name, value, columns):
    """value as a 2-D array [B, columns], or a ValueError naming it."""
    value = np.asarray(value)
    if value.ndim != 2 or (columns is not None and value.shape[1] != columns):
        expected = f"(batch, {columns})" if columns is not None else "(batch, features)"
        raise ValueError(f"{name} has shape {value.shape}; expected {expected}")
    return value


class _Weights:
    """A TensorFlow-layout kernel[rows, cols] and bias[cols], created lazily, assignable."""

    def __init__(self, owner, columns, dtype, seed):
        self._owner = owner  # for error messages
        self._columns = columns
        self._dtype = None if dtype is None else _float_dtype(dtype)
        self._rng = random_generator(seed)
        self.kernel = None
        self.bias = None

    def build(self, rows, dtype):
        dtype = self._dtype or (np.dtype(np.float64) if dtype == np.float64 else np.dtype(np.float32))
        self.kernel = _glorot_uniform(self._rng, (rows, self._columns), dtype)
        self.bias = np.zeros(self._columns, dtype=dtype)

    def assign_kernel(self, value, rows=None):
        value = np.asarray(value)
        if value.ndim != 2 or value.shape[1] != self._columns or (
                rows is not None and value.shape[0] != rows):
            expected = f"({'rows' if rows is None else rows}, {self._columns})"
            raise ValueError(f"{self._owner}.kernel has shape {value.shape}; expected {expected}")
        dtype = self._dtype or (self.kernel.dtype if self.kernel is not None else
                                (np.float64 if value.dtype == np.float64 else np.float32))
        if self.kernel is not None and self.kernel.shape == value.shape:
            self.kernel[...] = value  # in place: views such as W_xh stay valid
        else:
            self.kernel = np.array(value, dtype=dtype)
            if self.bias is None:
                self.bias = np.zeros(self._columns, dtype=dtype)

    def assign_bias(self, value):
        value = np.asarray(value)
        if value.shape != (self._columns,):
            raise ValueError(f"{self._owner}.bias has shape {value.shape}; "
                             f"expected ({self._columns},)")
        if self.bias is None:
            raise ValueError(f"{self._owner} has no weights yet; call it once or assign "
                             f"its kernel before its bias")
        self.bias[...] = value


class BasicRNNCell:
    """The most basic RNN cell: ``output = new_state = activation(W input + U state + B)``.

    Arguments:
        num_units    H, the size of the state (and of the output)
        activation   "tanh" (default; also None or np.tanh, as in TensorFlow), "sigmoid",
                     "relu" or "identity". Other callables are rejected: the kernels compute
                     these four activations only.
        dtype        float32 or float64 for the weights; default: float64 if the first inputs
                     are float64, else float32 (TensorFlow's default)
        seed         seed of the Glorot-uniform kernel initialiser (None: fresh entropy)

    Calling ``cell(inputs[B, D], state[B, H])`` returns ``(output, new_state)``; both are the
    SAME ndarray object (as TensorFlow returns one tensor twice), so do not modify one in place
    if you keep the other. The first call creates the weights from D. Forward only.

    Weights (after the first call, or after assigning ``kernel``):
        kernel[D + H, H]   TensorFlow's layout, applied to concat([inputs, state], axis=1)
        bias[H]
        W_xh[H, D], W_hh[H, H], b_h[H]   elman's layout: writable views of kernel and bias
    """

    def __init__(self, num_units, activation=None, *, dtype=None, seed=None):
        self._num_units = positive_int(num_units, "num_units")
        self._activation = _activation_name(activation, HIDDEN_ACTIVATIONS, "hidden")
        self._weights = _Weights("BasicRNNCell", self._num_units, dtype, seed)

    # -- sizes, as in TensorFlow -------------------------------------------------------------

    @property
    def state_size(self):
        """H = num_units."""
        return self._num_units

    @property
    def output_size(self):
        """H = num_units: the output is the new state."""
        return self._num_units

    @property
    def activation(self):
        """The activation's elman name ("tanh", ...)."""
        return self._activation

    @property
    def built(self):
        """Whether the weights exist (after the first call or an assignment to kernel)."""
        return self._weights.kernel is not None

    @property
    def input_size(self):
        """D, known once the weights exist; None before."""
        return None if not self.built else self._weights.kernel.shape[0] - self._num_units

    def zero_state(self, batch_size, dtype=np.float32):
        """An all-zero state[batch_size, num_units] of the given dtype."""
        return np.zeros((positive_int(batch_size, "batch_size"), self._num_units),
                        dtype=_float_dtype(dtype))

    def build(self, input_size, dtype=np.float32):
        """Create the weights for inputs of input_size features (the first call does this)."""
        self._weights.build(positive_int(input_size, "input_size") + self._num_units,
                            np.dtype(dtype))

    # -- weights -----------------------------------------------------------------------------

    @property
    def kernel(self):
        """kernel[D + H, H] in TensorFlow's layout (the stored array; in-place changes count)."""
        return self._weights.kernel

    @kernel.setter
    def kernel(self, value):
        rows = None if not self.built else self._weights.kernel.shape[0]
        value = np.asarray(value)
        if rows is None and value.ndim == 2 and value.shape[0] <= self._num_units:
            raise ValueError(f"BasicRNNCell.kernel has shape {value.shape}; expected "
                             f"(D + {self._num_units}, {self._num_units}) with D >= 1")
        self._weights.assign_kernel(value, rows)

    @property
    def bias(self):
        """bias[H] (the stored array)."""
        return self._weights.bias

    @bias.setter
    def bias(self, value):
        self._weights.assign_bias(value)

    @property
    def W_xh(self):
        """W_xh[H, D]: the input rows of kernel, transposed (a writable view)."""
        self._require_weights()
        return self._weights.kernel[: self.input_size].T

    @property
    def W_hh(self):
        """W_hh[H, H]: the state rows of kernel, transposed (a writable view)."""
        self._require_weights()
        return self._weights.kernel[self.input_size:].T

    @property
    def b_h(self):
        """b_h[H]: the bias (the same array)."""
        self._require_weights()
        return self._weights.bias

    def _require_weights(self):
        if not self.built:
            raise ValueError("BasicRNNCell has no weights yet: they are created by the first "
                             "call, from the inputs' size (or assign cell.kernel)")

    # -- the step ----------------------------------------------------------------------------

    def __call__(self, inputs, state):
        """One step: inputs[B, D], state[B, H] -> (output, new_state), the same [B, H] array."""
        inputs = _as_batch("inputs", inputs, self.input_size)
        state = _as_batch("state", state, self._num_units)
        if inputs.shape[0] != state.shape[0]:
            raise ValueError(f"inputs has {inputs.shape[0]} rows but state has "
                             f"{state.shape[0]}; both are [batch, ...]")
        if not self.built:
            self._weights.build(inputs.shape[1] + self._num_units, inputs.dtype)
        new_state = F.cell_forward(inputs, state, self.W_xh, self.W_hh, self.b_h,
                                   self._activation)
        return new_state, new_state

    def __repr__(self):
        return f"BasicRNNCell(num_units={self._num_units}, activation={self._activation!r})"


class OutputProjectionWrapper:
    """Adds an output projection to a cell: ``output = cell_output @ kernel + bias``.

    Arguments:
        cell          a BasicRNNCell (or another wrapper)
        output_size   O, the size of the projected output; it may differ from the state size
        activation    applied to the projection: None or "identity" (TensorFlow's default),
                      "softmax" (over the last axis) or "sigmoid"
        dtype, seed   as for BasicRNNCell

    Calling ``wrapper(inputs, state)`` returns ``(output[B, O], new_state[B, H])``: the wrapped
    cell's new state, and its output projected. The projection's weights are created on the
    first call. Forward only.

    Weights: kernel[cell.output_size, O] and bias[O] in TensorFlow's layout; W_hy[O, H] (a
    writable view of kernel, transposed) and b_y[O] in elman's.
    """

    def __init__(self, cell, output_size, activation=None, *, dtype=None, seed=None):
        for attribute in ("output_size", "state_size", "zero_state"):
            if not hasattr(cell, attribute):
                raise TypeError(f"cell must be an RNN cell with {attribute}, "
                                f"got {type(cell).__name__}")
        self._cell = cell
        self._output_size = positive_int(output_size, "output_size")
        self._activation = _activation_name(activation, OUTPUT_ACTIVATIONS, "output")
        self._weights = _Weights("OutputProjectionWrapper", self._output_size, dtype, seed)

    @property
    def cell(self):
        """The wrapped cell."""
        return self._cell

    @property
    def state_size(self):
        """The wrapped cell's state size."""
        return self._cell.state_size

    @property
    def output_size(self):
        """O, the projection's size."""
        return self._output_size

    @property
    def built(self):
        return self._weights.kernel is not None

    def zero_state(self, batch_size, dtype=np.float32):
        """The wrapped cell's zero state."""
        return self._cell.zero_state(batch_size, dtype)

    @property
    def kernel(self):
        """kernel[cell.output_size, O] in TensorFlow's layout (the stored array)."""
        return self._weights.kernel

    @kernel.setter
    def kernel(self, value):
        self._weights.assign_kernel(value, self._cell.output_size)

    @property
    def bias(self):
        """bias[O] (the stored array)."""
        return self._weights.bias

    @bias.setter
    def bias(self, value):
        self._weights.assign_bias(value)

    @property
    def W_hy(self):
        """W_hy[O, H]: kernel transposed (a writable view)."""
        self._require_weights()
        return self._weights.kernel.T

    @property
    def b_y(self):
        """b_y[O]: the bias (the same array)."""
        self._require_weights()
        return self._weights.bias

    def _require_weights(self):
        if not self.built:
            raise ValueError("OutputProjectionWrapper has no weights yet: they are created by "
                             "the first call (or assign wrapper.kernel)")

    def __call__(self, inputs, state):
        """One step: (output[B, O], new_state[B, H]) = projection of the wrapped cell's step."""
        output, new_state = self._cell(inputs, state)
        if not self.built:
            self._weights.build(self._cell.output_size, output.dtype)
        projected = F.output_forward(output, self.W_hy, self.b_y, self._activation)
        return projected, new_state

    def __repr__(self):
        return (f"OutputProjectionWrapper({self._cell!r}, output_size={self._output_size}, "
                f"activation={self._activation!r})")
