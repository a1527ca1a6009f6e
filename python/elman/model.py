"""``elman.RNN``: a stack of Elman layers with torch.nn.RNN's semantics, NumPy in and out.

The whole stack runs in the fused C++ kernels (see :mod:`elman.stack`): Python loops over layers
and directions, never over time steps.
"""

from __future__ import annotations

import json
import os

import numpy as np

from . import _core
from ._checks import flag, positive_int
from ._files import write_atomically
from ._npz import NpzReader
from ._seeds import random_generator
from .functional import output_backward, output_forward
from .stack import backward_from_top, expect_shape, real_array, stack_forward

__all__ = ["RNN", "RNNStream", "FORMAT_VERSION"]

HIDDEN_ACTIVATIONS = ("tanh", "sigmoid", "relu", "identity")
OUTPUT_ACTIVATIONS = ("identity", "softmax", "sigmoid")
RECURRENT_INITS = ("uniform", "orthogonal")
DTYPES = ("float32", "float64")

FORMAT_VERSION = 1  # of the .npz files written by RNN.save
# The architecture stored in a saved file: exactly the constructor arguments that shape the model.
CONFIG_KEYS = ("input_size", "hidden_size", "num_layers", "activation", "bidirectional",
               "batch_first", "output_size", "output_activation", "learn_h0", "dtype")


# --------------------------------------------------------------------------- #
# Configuration checks
# --------------------------------------------------------------------------- #

def _choice(value, name, choices):
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def _dtype_name(value):
    """'float32' or 'float64' from a name, a NumPy scalar type or a dtype; else ValueError."""
    try:
        dtype = np.dtype(value)
    except TypeError:
        dtype = None
    if value is None or dtype is None or dtype.name not in DTYPES:
        raise ValueError(f"dtype must be 'float32' or 'float64' (or the NumPy dtype), "
                         f"got {value!r}")
    return dtype.name


def checked_config(input_size, hidden_size, num_layers=1, activation="tanh", bidirectional=False,
                   batch_first=False, output_size=None, output_activation="identity",
                   learn_h0=False, dtype="float32"):
    """The constructor's architecture arguments, validated and normalised to plain Python values
    (the dict a saved file stores as JSON)."""
    config = {
        "input_size": positive_int(input_size, "input_size"),
        "hidden_size": positive_int(hidden_size, "hidden_size"),
        "num_layers": positive_int(num_layers, "num_layers"),
        "activation": _choice(activation, "activation", HIDDEN_ACTIVATIONS),
        "bidirectional": flag(bidirectional, "bidirectional"),
        "batch_first": flag(batch_first, "batch_first"),
        "output_size": None if output_size is None else positive_int(output_size, "output_size"),
        "output_activation": _choice(output_activation, "output_activation", OUTPUT_ACTIVATIONS),
        "learn_h0": flag(learn_h0, "learn_h0"),
        "dtype": _dtype_name(dtype),
    }
    if config["output_size"] is None and config["output_activation"] != "identity":
        raise ValueError(f"output_activation={output_activation!r} needs an output layer: "
                         "give output_size too")
    return config


def parameter_shapes(config):
    """{name: shape} of every parameter of a model with this config, in the order of rnn.params."""
    H, dirs = config["hidden_size"], 2 if config["bidirectional"] else 1
    shapes = {}
    for layer in range(config["num_layers"]):
        D_in = config["input_size"] if layer == 0 else dirs * H
        for suffix in ("", "_reverse")[:dirs]:
            shapes[f"W_xh_l{layer}{suffix}"] = (H, D_in)
            shapes[f"W_hh_l{layer}{suffix}"] = (H, H)
            shapes[f"b_h_l{layer}{suffix}"] = (H,)
    if config["output_size"] is not None:
        shapes["W_hy"] = (config["output_size"], dirs * H)
        shapes["b_y"] = (config["output_size"],)
    if config["learn_h0"]:
        shapes["h0"] = (config["num_layers"] * dirs, H)
    return shapes


def random_orthogonal(rng, n):
    """An n x n orthogonal matrix drawn uniformly (Haar): Q of the QR of a Gaussian matrix, each
    column's sign fixed by R's diagonal so the distribution does not depend on QR's conventions."""
    q, r = np.linalg.qr(rng.standard_normal((n, n)))
    return q * np.where(np.diag(r) < 0, -1.0, 1.0)


# --------------------------------------------------------------------------- #
# The model
# --------------------------------------------------------------------------- #

class RNN:
    """A multi-layer Elman RNN with torch.nn.RNN's semantics, computed by elman's C++ kernels.

    ``h_t = f(W_xh x_t + W_hh h_{t-1} + b_h)`` in every layer and direction; layer l > 0 reads
    layer l-1's output ([forward, reverse] concatenated when bidirectional). An optional output
    layer ``y_t = g(W_hy h_t + b_y)`` reads the last layer's output.

    Arguments:
        input_size          D, features per step
        hidden_size         H, units per layer and direction
        num_layers          L, stacked layers (default 1)
        activation          hidden f: "tanh" (default), "relu", "sigmoid", "identity"
        bidirectional       a second, time-reversed direction in every layer (dirs = 2)
        batch_first         x and out are [B, T, ...] instead of [T, B, ...] (h0/h_n never are)
        output_size         O: add the output layer (default None: no output layer)
        output_activation   g: "identity" (default), "softmax" (last axis), "sigmoid"
        learn_h0            a learnable initial state, used when forward gets no h0
        dtype               "float32" (default) or "float64" (NumPy dtypes accepted)
        seed                for the initial weights (anything numpy.random.default_rng takes)
        recurrent_init      "uniform" (default): every parameter U(-1/sqrt(H), 1/sqrt(H)) as in
                            torch (the output layer uses its fan-in dirs*H, as torch.nn.Linear);
                            "orthogonal": each W_hh a random orthogonal matrix instead

    Parameters, ``rnn.params`` (name -> ndarray of the model's dtype; ``{l}`` is the layer index
    and the suffix ``_reverse`` marks the reverse direction, as in torch):
        W_xh_l{l}[_reverse]   [H, D] for l = 0, [H, dirs*H] above
        W_hh_l{l}[_reverse]   [H, H]
        b_h_l{l}[_reverse]    [H]   (torch's bias_ih + bias_hh)
        W_hy, b_y             [O, dirs*H], [O]      with output_size
        h0                    [L*dirs, H]           with learn_h0 (initialised to 0)
    The arrays are live: updating one in place changes the model (optimizers do this).
    ``rnn.grads`` has the same keys; ``backward`` overwrites its arrays in place.

    Shapes of forward (time-major; with batch_first swap T and B in x and out):
        x[T, B, D]          or x[T, D] for one unbatched sequence (then h0, h_n, dh0 lose B too)
        h0[L*dirs, B, H]    default: the learned h0 broadcast over the batch, else zeros
        lengths[B]          optional ints in 0..T: sequence b ends after lengths[b] steps
        out[T, B, dirs*H]   the last layer's states, or ys[T, B, O] with the output layer;
                            0 past each sequence's end
        h_n[L*dirs, B, H]   every layer/direction's state at each sequence's own last step

    ``out`` is read-only: backward reads those very arrays (copy it to modify it). Do not change
    x or h0 in place between forward and backward, for the same reason. Inputs are converted to
    the model's dtype.
    """

    def __init__(self, input_size, hidden_size, *, num_layers=1, activation="tanh",
                 bidirectional=False, batch_first=False, output_size=None,
                 output_activation="identity", learn_h0=False, dtype="float32", seed=None,
                 recurrent_init="uniform"):
        config = checked_config(input_size, hidden_size, num_layers, activation, bidirectional,
                                batch_first, output_size, output_activation, learn_h0, dtype)
        _choice(recurrent_init, "recurrent_init", RECURRENT_INITS)
        self.input_size = config["input_size"]
        self.hidden_size = config["hidden_size"]
        self.num_layers = config["num_layers"]
        self.activation = config["activation"]
        self.bidirectional = config["bidirectional"]
        self.batch_first = config["batch_first"]
        self.output_size = config["output_size"]
        self.output_activation = config["output_activation"]
        self.learn_h0 = config["learn_h0"]
        self.dtype = np.dtype(config["dtype"])
        self._shapes = parameter_shapes(config)
        self.params = self._initial_params(random_generator(seed), recurrent_init)
        self.grads = {name: np.zeros(shape, dtype=self.dtype)
                      for name, shape in self._shapes.items()}
        self.dh0 = None  # dL/d(initial state used by the last forward), set by backward
        self._cache = None  # what backward needs from the last forward

    @property
    def num_directions(self):
        return 2 if self.bidirectional else 1

    def config(self):
        """The architecture as a dict of plain values: what save stores, and
        RNN(**rnn.config()) builds a model of the same shape."""
        return {key: (self.dtype.name if key == "dtype" else getattr(self, key))
                for key in CONFIG_KEYS}

    def _initial_params(self, rng, recurrent_init):
        """torch's default: U(-k, k) with k = 1/sqrt(fan-in of the layer's hidden units), i.e.
        1/sqrt(H) for every recurrent parameter and 1/sqrt(dirs*H) for the output layer."""
        params = {}
        for name, shape in self._shapes.items():
            output_layer = name in ("W_hy", "b_y")
            bound = 1 / np.sqrt(self.hidden_size * (self.num_directions if output_layer else 1))
            if name == "h0":
                value = np.zeros(shape)
            elif name.startswith("W_hh") and recurrent_init == "orthogonal":
                value = random_orthogonal(rng, self.hidden_size)
            else:
                value = rng.uniform(-bound, bound, shape)
            params[name] = value.astype(self.dtype)  # drawn in float64: same seed, same model
        return params

    # ------------------------------------------------------------------ forward and backward

    def __call__(self, x, h0=None, lengths=None):
        """Same as forward."""
        return self.forward(x, h0, lengths)

    def forward(self, x, h0=None, lengths=None):
        """Run the model over x; returns (out, h_n) and keeps what backward needs.

        x[T, B, D] ([B, T, D] with batch_first, [T, D] unbatched), optional h0[L*dirs, B, H] and
        lengths[B]; see the class docstring for every shape.
        """
        x = real_array(x, "x")
        unbatched = x.ndim == 2
        if x.ndim not in (2, 3):
            layout = "(B, T, D)" if self.batch_first else "(T, B, D)"
            raise ValueError(f"x must have 3 dimensions {layout}, or 2 (T, D) for one sequence, "
                             f"got shape {x.shape}")
        if x.shape[-1] != self.input_size:
            raise ValueError(f"x has shape {x.shape}: {x.shape[-1]} features on its last axis, "
                             f"expected input_size = {self.input_size}")
        x = x.astype(self.dtype, copy=False)
        if unbatched:
            if lengths is not None:
                raise ValueError("lengths needs a batch x[T, B, D]; for one sequence x[T, D], "
                                 "pass x[:length] instead")
            x = x[:, None, :]
        elif self.batch_first:
            x = x.transpose(1, 0, 2)
        T, B, _ = x.shape
        h0, h0_learned = self._initial_state(h0, B, unbatched)
        weights = self._layer_weights()
        top, h_n, stack = stack_forward(x, h0, weights, num_layers=self.num_layers,
                                        bidirectional=self.bidirectional,
                                        activation=self.activation, lengths=lengths)
        ys, W_hy = None, None
        if self.output_size is not None:
            W_hy = self._checked_param("W_hy")
            ys = output_forward(top, W_hy, self._checked_param("b_y"), self.output_activation)
            stack.timing.zero_past_end(ys)
        out = top if ys is None else ys
        out.flags.writeable = False  # backward reads it: writing into it would corrupt gradients
        self._cache = _ForwardCache(stack, top, ys, W_hy, h0_learned, unbatched, self.batch_first)
        return self._cache.to_user(out), (h_n[:, 0] if unbatched else h_n)

    def backward(self, d_out, d_h_n=None, input_grad=True):
        """Backpropagate through the last forward: returns dx and fills rnn.grads and rnn.dh0.

        d_out: dL/dout, the shape of that forward's out (None: zero; entries past a sequence's
        end are ignored); d_h_n: dL/dh_n, the shape of its h_n (None: zero). dx has x's shape;
        ``rnn.dh0`` (h0's shape, [L*dirs, B, H]) is the gradient with respect to the initial state
        that forward used, whether passed, learned or zero, so two RNNs can be chained.
        ``input_grad=False`` (x is data, nothing upstream to train): dx is not computed and None
        is returned; that skips the first layer's T*B*D*H product (like torch, when x does not
        require grad). rnn.grads and rnn.dh0 are the same bits either way.
        """
        cache = self._cache
        if cache is None:
            raise RuntimeError("backward() needs a forward() first: there is no forward pass to "
                               "backpropagate through")
        self._check_grads()  # before any work: backward writes into these arrays
        timing, LD, H = cache.stack.timing, self.num_layers * self.num_directions, self.hidden_size
        d_top, owned, d_output_layer = self._top_gradient(cache, d_out)
        if d_h_n is not None:
            d_h_n = real_array(d_h_n, "d_h_n").astype(self.dtype, copy=False)
            want = (LD, H) if cache.unbatched else (LD, timing.B, H)
            expect_shape(d_h_n, "d_h_n", "h_n's shape (num_layers*dirs, B, H)", want)
            d_h_n = d_h_n[:, None] if cache.unbatched else d_h_n
        dx, dh0, dweights = backward_from_top(cache.stack, d_top, d_h_n, owned,
                                              input_grad=bool(input_grad))
        self._store_grads(dweights, d_output_layer, dh0 if cache.h0_learned else None)
        self.dh0 = dh0[:, 0] if cache.unbatched else dh0
        return None if dx is None else cache.to_user(dx)

    def _top_gradient(self, cache, d_out):
        """(d_top, owned, (dW_hy, db_y) or None): dL/d(last layer's output) [T, B, dirs*H], 0 past
        every end, whether this code may overwrite it, and the output layer's gradients."""
        timing = cache.stack.timing
        top_shape = (timing.T, timing.B, self.num_directions * self.hidden_size)
        if d_out is None:
            zero_output = None
            if self.output_size is not None:
                zero_output = (np.zeros_like(self.grads["W_hy"]), np.zeros_like(self.grads["b_y"]))
            return np.zeros(top_shape, dtype=self.dtype), True, zero_output
        d_out = real_array(d_out, "d_out").astype(self.dtype, copy=False)
        expect_shape(d_out, "d_out", "out's shape", cache.user_shape(cache.out.shape))
        d_out = cache.to_time_major(d_out)
        masked = not timing.full
        if masked:
            d_out = timing.masked(d_out)  # gradients past an end reach nothing
        if self.output_size is None:
            return d_out, masked, None
        d_top, dW_hy, db_y = output_backward(d_out, cache.top, cache.ys, cache.W_hy,
                                             self.output_activation)
        return d_top, True, (dW_hy, db_y)

    def _check_grads(self):
        """A ValueError unless every rnn.grads entry is still a writable array of its parameter's
        shape and the model's dtype (a user may have replaced one; backward fills them in place)."""
        for name, shape in self._shapes.items():
            value = self.grads.get(name)
            if (isinstance(value, np.ndarray) and value.shape == shape
                    and value.dtype == self.dtype and value.flags.writeable):
                continue
            got = (f"a {'read-only ' if not value.flags.writeable else ''}{value.dtype} array of "
                   f"shape {value.shape}" if isinstance(value, np.ndarray)
                   else "nothing" if value is None else type(value).__name__)
            raise ValueError(f"rnn.grads[{name!r}] must be a writable {self.dtype} array of shape "
                             f"{shape} (backward writes the gradient into it), got {got}")

    def _store_grads(self, dweights, d_output_layer, dh0_learned):
        """Overwrite rnn.grads in place from the stack's gradients (list over k), the output
        layer's (dW_hy, db_y) and, when the learned h0 was used, dL/dh0[L*dirs, B, H]."""
        for k, (dW_xh, dW_hh, db_h) in enumerate(dweights):
            suffix = self._suffix(k)
            np.copyto(self.grads[f"W_xh{suffix}"], dW_xh)
            np.copyto(self.grads[f"W_hh{suffix}"], dW_hh)
            np.copyto(self.grads[f"b_h{suffix}"], db_h)
        if d_output_layer is not None:
            np.copyto(self.grads["W_hy"], d_output_layer[0])
            np.copyto(self.grads["b_y"], d_output_layer[1])
        if self.learn_h0:
            if dh0_learned is None:
                self.grads["h0"].fill(0)  # forward was given h0: the learned one played no part
            else:
                np.sum(dh0_learned, axis=1, out=self.grads["h0"])  # it was broadcast over B

    def _suffix(self, k):
        """'_l{layer}' or '_l{layer}_reverse' for k = layer * dirs + direction."""
        layer, direction = divmod(k, self.num_directions)
        return f"_l{layer}" + ("_reverse" if direction else "")

    def _initial_state(self, h0, B, unbatched):
        """(h0[L*dirs, B, H], whether it is the learned h0) for forward."""
        LD, H = self.num_layers * self.num_directions, self.hidden_size
        if h0 is None:
            if self.learn_h0:
                return np.broadcast_to(self._checked_param("h0")[:, None, :], (LD, B, H)), True
            return np.zeros((LD, B, H), dtype=self.dtype), False
        h0 = real_array(h0, "h0").astype(self.dtype, copy=False)
        if unbatched:
            expect_shape(h0, "h0", "(num_layers*dirs, H) for unbatched x", (LD, H))
            return h0[:, None, :], False
        expect_shape(h0, "h0", "(num_layers*dirs, B, H)", (LD, B, H))
        return h0, False

    def _checked_param(self, name):
        """params[name], checked to still be an array of the model's dtype and shape."""
        value = self.params.get(name)
        shape = self._shapes[name]
        if not isinstance(value, np.ndarray) or value.shape != shape or value.dtype != self.dtype:
            got = (f"{value.dtype} array of shape {value.shape}" if isinstance(value, np.ndarray)
                   else type(value).__name__)
            raise ValueError(f"rnn.params[{name!r}] must be a {self.dtype} array of shape {shape}, "
                             f"got a {got}")
        return value

    def _layer_weights(self):
        """[(W_xh, W_hh, b_h)] over k = layer * dirs + direction, read live from params."""
        kinds = ("W_xh", "W_hh", "b_h")
        return [tuple(self._checked_param(kind + self._suffix(k)) for kind in kinds)
                for k in range(self.num_layers * self.num_directions)]

    # ------------------------------------------------------------------ streaming

    def stream(self, batch_size=1, h0=None):
        """An RNNStream for online inference: one step per call, state kept, nothing allocated
        per step. Unidirectional models only. h0: [L, B, H], or [L, H] for every sequence
        (default: the learned h0, else zeros)."""
        return RNNStream(self, batch_size, h0)

    # ------------------------------------------------------------------ files

    def save(self, path):
        """Write the model to path as an .npz: ``format_version``, ``config`` (JSON text) and
        every parameter by name. path may also be a writable binary file object.

        A path is written atomically (a temporary file next to it, renamed over it once complete,
        so an error or a crash never leaves half a file): a symlink is followed, a replaced file
        keeps its permissions, and anything but a regular file (a directory, a FIFO, a device)
        is refused with an OSError and left untouched. Exactly that path is written (no ``.npz``
        is appended)."""
        arrays = {"format_version": np.array(FORMAT_VERSION, dtype=np.int64),
                  "config": np.array(json.dumps(self.config())),
                  **{name: self._checked_param(name) for name in self._shapes}}
        if hasattr(path, "write"):
            np.savez(path, **arrays)
            return
        write_atomically(path, lambda f: np.savez(f, **arrays))

    @classmethod
    def load(cls, path):
        """The model saved at path (or in a binary file object) by RNN.save.

        Nothing in the file is executed (no pickle), and no array is read before its header
        (shape and dtype) has been checked against the file's config, so a small file cannot
        make load decompress more than the model it describes. Raises ValueError, naming the file
        and what is wrong, for anything but a complete file of a supported format_version:
        unreadable or truncated data, a wrong or missing config, a missing, misshapen, wrongly
        typed or unexpected array. A missing or unreadable file raises open()'s OSError.
        """
        where = os.fspath(path) if isinstance(path, (str, os.PathLike)) else "the file"
        if hasattr(path, "read"):
            return cls._from_npz(path, where)
        with open(path, "rb") as f:
            return cls._from_npz(f, where)

    @classmethod
    def _from_npz(cls, f, where):
        with NpzReader(f, where) as npz:
            config = _saved_config(npz, where)
            shapes = parameter_shapes(config)
            unexpected = sorted(set(npz.names) - set(shapes) - {"format_version", "config"})
            if unexpected:
                raise ValueError(f"{where}: unexpected arrays {unexpected} for this config")
            missing = [name for name in shapes if name not in npz.names]
            if missing:
                raise ValueError(f"{where}: the parameter {missing[0]!r} is missing")
            for name, shape in shapes.items():  # every header first: no data read for nothing
                declared_shape, declared_dtype = npz.header(name)
                if declared_shape != shape or declared_dtype != np.dtype(config["dtype"]):
                    raise ValueError(f"{where}: parameter {name!r} is a {declared_dtype} array of "
                                     f"shape {declared_shape}, expected {config['dtype']} of shape "
                                     f"{shape}")
            model = cls(**config, seed=0)
            for name, shape in shapes.items():
                np.copyto(model.params[name], npz.read(name, shape, config["dtype"]))
        return model

    def to_onnx(self, path, *, opset=None, dtype=None, h0_input=False, lengths_input=False):
        """Write the model as a standard ONNX graph (one RNN operator per layer, the output layer
        after it) that onnxruntime runs with forward's outputs; returns the onnx.ModelProto.
        Needs the onnx package (pip install elman[onnx]); options: elman.onnx_io.to_onnx."""
        from .onnx_io import to_onnx

        return to_onnx(self, path, opset=opset, dtype=dtype, h0_input=h0_input,
                       lengths_input=lengths_input)

    def __repr__(self):
        defaults = {"num_layers": 1, "activation": "tanh", "bidirectional": False,
                    "batch_first": False, "output_size": None, "output_activation": "identity",
                    "learn_h0": False}
        config = self.config()
        options = [f"{key}={config[key]!r}" for key in defaults if config[key] != defaults[key]]
        args = [str(self.input_size), str(self.hidden_size), *options, f"dtype={self.dtype.name!r}"]
        return f"elman.RNN({', '.join(args)})"


class _ForwardCache:
    """What backward needs from one forward, and the user's layout of that call."""

    __slots__ = ("stack", "top", "ys", "W_hy", "h0_learned", "unbatched", "batch_first")

    def __init__(self, stack, top, ys, W_hy, h0_learned, unbatched, batch_first):
        self.stack = stack  # the StackCache
        self.top = top  # last layer's output [T, B, dirs*H]
        self.ys = ys  # output layer's ys[T, B, O] (0 past ends), or None
        self.W_hy = W_hy
        self.h0_learned = h0_learned  # forward used the learned h0
        self.unbatched = unbatched
        self.batch_first = batch_first

    @property
    def out(self):
        return self.top if self.ys is None else self.ys

    def to_user(self, a):
        """A time-major a[T, B, ...] in the layout of the forward call (a view)."""
        if self.unbatched:
            return a[:, 0]
        return a.transpose(1, 0, 2) if self.batch_first else a

    def user_shape(self, shape):
        T, B, last = shape
        if self.unbatched:
            return (T, last)
        return (B, T, last) if self.batch_first else (T, B, last)

    def to_time_major(self, a):
        """The inverse of to_user: a user-layout array as a [T, B, ...] view."""
        if self.unbatched:
            return a[:, None]
        return a.transpose(1, 0, 2) if self.batch_first else a


# --------------------------------------------------------------------------- #
# Streaming
# --------------------------------------------------------------------------- #

class RNNStream:
    """Step-by-step inference with a unidirectional RNN, for online use (made by rnn.stream).

    ``step(x_t)`` advances every layer one step and returns the output at that step: the last
    layer's state h_t[B, H], or y_t[B, O] with an output layer (x_t[D] gives out_t[H] or [O]
    when batch_size is 1). The returned array is a read-only view of the stream's buffer, valid
    until the next step: copy it to keep it. ``state`` is the current h[L, B, H] (a view that
    may be written to set the state); ``reset()`` goes back to the initial state.

    The buffers are allocated once: each layer keeps two state buffers that the kernels write
    into in turn (out=), so a step allocates nothing when x_t is a C-contiguous array of the
    model's dtype. Parameters are read live from rnn.params at every step.
    """

    def __init__(self, rnn, batch_size=1, h0=None):
        if rnn.bidirectional:
            raise ValueError("stream() needs a unidirectional RNN: a bidirectional one reads the "
                             "whole sequence before its first output")
        self.rnn = rnn
        self.batch_size = positive_int(batch_size, "batch_size")
        L, B, H = rnn.num_layers, self.batch_size, rnn.hidden_size
        self._initial = None  # the h0 given, as [L, B, H]; None: the learned h0 or zeros
        if h0 is not None:
            h0 = real_array(h0, "h0").astype(rnn.dtype, copy=False)
            if h0.shape not in ((L, B, H), (L, H)):
                raise ValueError(f"h0 has shape {h0.shape}, expected (L, B, H) = {(L, B, H)} or "
                                 f"(L, H) = {(L, H)}")
            self._initial = np.array(np.broadcast_to(h0.reshape(L, -1, H), (L, B, H)))
        self._h = np.empty((2, L, B, H), dtype=rnn.dtype)  # two state buffers, swapped each step
        self._current = 0  # self._h[self._current] holds the state
        self._layer_views = [[self._h[i, layer] for layer in range(L)] for i in range(2)]
        self._y = None  # the output layer's y_t[B, O]
        if rnn.output_size is not None:
            self._y = np.empty((B, rnn.output_size), dtype=rnn.dtype)
        top = [self._h[i, L - 1] if self._y is None else self._y for i in range(2)]
        self._results = [_read_only(t) for t in top]  # what step returns, per buffer
        self._results_1d = [r[0] for r in self._results]
        self.reset()

    @property
    def state(self):
        return self._h[self._current]

    def reset(self):
        """Back to the initial state (rereads the learned h0, which training may have changed)."""
        if self._initial is not None:
            self._h[self._current] = self._initial
        elif self.rnn.learn_h0:
            self._h[self._current] = self.rnn._checked_param("h0")[:, None, :]
        else:
            self._h[self._current] = 0

    def step(self, x_t):
        """One step: x_t[B, D] (or [D] when batch_size is 1) -> out_t[B, H or O] (or [H or O])."""
        rnn = self.rnn
        x = real_array(x_t, "x_t").astype(rnn.dtype, copy=False)
        one = x.ndim == 1 and self.batch_size == 1
        expected = (self.batch_size, rnn.input_size)
        if x.shape != expected and not (one and x.shape == (rnn.input_size,)):
            raise ValueError(f"x_t has shape {x.shape}, expected (B, D) = {expected}"
                             + (f" or (D,) = ({rnn.input_size},)" if self.batch_size == 1 else ""))
        if one:
            x = x[None]
        old, new = self._layer_views[self._current], self._layer_views[1 - self._current]
        inp = x
        for layer in range(rnn.num_layers):
            W_xh = rnn._checked_param(f"W_xh_l{layer}")
            W_hh = rnn._checked_param(f"W_hh_l{layer}")
            b_h = rnn._checked_param(f"b_h_l{layer}")
            _core.cell_forward(inp, old[layer], W_xh, W_hh, b_h, rnn.activation, out=new[layer])
            inp = new[layer]
        self._current = 1 - self._current
        if self._y is not None:
            _core.output_forward(inp, rnn._checked_param("W_hy"), rnn._checked_param("b_y"),
                                 rnn.output_activation, out=self._y)
        return self._results_1d[self._current] if one else self._results[self._current]


def _read_only(a):
    view = a.view()
    view.flags.writeable = False
    return view


# --------------------------------------------------------------------------- #
# Reading saved files
# --------------------------------------------------------------------------- #

MAX_CONFIG_CHARACTERS = 1 << 16  # a config is about 300; its header is checked before reading


# The most digits an integer of a saved config may have. Python 3.11+ refuses longer ones itself
# (int_max_str_digits, 4300); older Pythons would spend quadratic time converting them.
MAX_CONFIG_INT_DIGITS = 100


def _config_int(text):
    """json's parse_int for a saved config: a bounded number of digits, on every Python."""
    if len(text.lstrip("-")) > MAX_CONFIG_INT_DIGITS:
        raise ValueError(f"an integer of {len(text.lstrip('-'))} digits (at most "
                         f"{MAX_CONFIG_INT_DIGITS} digits are read)")
    return int(text)


def _saved_config(npz, where):
    """The validated config of a saved file, from its 'format_version' and 'config' members."""
    if "format_version" not in npz.names or "config" not in npz.names:
        raise ValueError(f"{where} is not an elman.RNN file: it lacks 'format_version' or 'config'")
    shape, dtype = npz.header("format_version")
    if shape != () or dtype.kind not in "iu" or dtype.itemsize > 8:
        raise ValueError(f"{where}: format_version must be an integer, got {dtype} "
                         f"of shape {shape}")
    version = int(npz.read("format_version", shape, dtype))
    if version != FORMAT_VERSION:
        raise ValueError(f"{where} has format_version {version}; this elman reads "
                         f"format_version {FORMAT_VERSION}")
    shape, dtype = npz.header("config")
    if shape != () or dtype.kind != "U" or dtype.itemsize > 4 * MAX_CONFIG_CHARACTERS:
        raise ValueError(f"{where}: config must be a JSON string of at most "
                         f"{MAX_CONFIG_CHARACTERS} characters, got {dtype} of shape {shape}")
    text = str(npz.read("config", shape, dtype))
    try:
        config = json.loads(text, parse_int=_config_int)
    except RecursionError:
        raise ValueError(f"{where}: config is not an elman config: its JSON is nested too "
                         f"deeply to read") from None
    except ValueError as e:  # JSONDecodeError, or an integer of more digits than we read
        raise ValueError(f"{where}: config is not valid JSON ({e})") from e
    if not isinstance(config, dict) or set(config) != set(CONFIG_KEYS):
        keys = sorted(config) if isinstance(config, dict) else type(config).__name__
        raise ValueError(f"{where}: config must have exactly the keys {list(CONFIG_KEYS)}, "
                         f"got {keys}")
    try:
        return checked_config(**config)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{where}: invalid config ({e})") from e
