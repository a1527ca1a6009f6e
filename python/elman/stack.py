"""A stack of Elman layers and directions as two pure functions: the engine under ``elman.RNN``.

    out, h_n, cache = stack_forward(x, h0, weights, num_layers=L, bidirectional=..., activation=...)
    dx, dh0, dweights = stack_backward(cache, d_out, d_h_n)

Shapes (time-major; ``dirs`` is 2 when bidirectional, else 1; k = layer * dirs + direction):

    x[T, B, D]            inputs of layer 0
    h0[L*dirs, B, H]      initial state of every layer and direction (None: zeros)
    weights[k]            (W_xh[H, D_in], W_hh[H, H], b_h[H]) in torch's order: layer 0 forward,
                          layer 0 reverse, layer 1 forward, ...; D_in = D for layer 0, dirs*H above
    out[T, B, dirs*H]     the last layer's states, [forward, reverse] concatenated on the last axis
    h_n[L*dirs, B, H]     every layer and direction's final state

Layer l > 0 reads layer l-1's ``out``. Each (layer, direction) is one call of the fused kernels
``rnn_forward`` / ``rnn_backward``; Python only loops over layers and directions, never over time.
The reverse direction runs the kernel on a time-reversed copy of its input ("kernel time"), so its
state at kernel step t belongs to original step T-1-t.

Variable lengths, ``lengths[B]`` (integers in 0..T; the semantics of torch's packed sequences):

* sequence b occupies steps 0..lengths[b]-1; what x holds after that is never used (any values,
  even NaN, give the same results);
* outputs past a sequence's end are 0, and ``h_n`` holds each sequence's state at its own last
  step;
* the reverse direction starts at each sequence's own end: time is reversed within each length
  (one vectorised gather, an involution, so the same gather maps back);
* in backward, gradients arriving past a sequence's end are ignored and ``d_h_n`` enters at each
  sequence's own last step.

Unlike torch, a length of 0 is allowed: the sequence has no outputs (all 0) and its final state is
its initial state, so ``d_h_n`` flows straight into ``dh0``. T = 0 behaves the same way.

How lengths are computed without per-step work: the kernels run all T steps for every sequence.
The steps past an end run on zeroed inputs and never influence earlier steps (the recurrence only
looks back), and their states are zeroed afterwards; in backward their incoming gradients are 0,
so their pre-activation gradients are exactly 0 and so are their contributions to dx and the
weight gradients.

Dtype: the stack computes in the dtype of ``elman.functional``'s rule applied to x, h0 and the
weights (float32, or float64 when any of them is wider or an integer), and returns that dtype.
Inputs are never modified. ``out`` may share memory with the cache (when the stack is
unidirectional it is the last layer's states, which backward reads): do not write into it before
``stack_backward``, and do not change x either.
"""

from __future__ import annotations

import numpy as np

from . import _core
from ._checks import positive_int
from .functional import rnn_forward

__all__ = ["stack_forward", "stack_backward", "StackCache", "Timing"]


# --------------------------------------------------------------------------- #
# Input checks
# --------------------------------------------------------------------------- #

def real_array(a, name):
    """numpy.asarray(a), or a TypeError unless it holds real numbers (float, int or bool)."""
    if a is None:
        raise TypeError(f"{name} must be an array of real numbers, got None")
    try:
        arr = np.asarray(a)
    except ValueError as error:  # a ragged nested list
        raise ValueError(f"{name} must be an array of real numbers: {error}") from None
    if arr.dtype.kind == "O" and not isinstance(a, np.ndarray):
        # asarray of something that is not numbers (a dict, a ragged list): say what it was
        raise TypeError(f"{name} must be an array of real numbers, got {type(a).__name__} "
                        f"(which NumPy reads as an object array)")
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    return arr


def compute_dtype(arrays):
    """The dtype a call computes in: float32 when NumPy's result type is a float of at most 32 bits
    (float16 is raised to float32), float64 otherwise (integers, booleans, float64 and wider)."""
    r = np.result_type(*arrays)
    return np.dtype(np.float32) if r.kind == "f" and r.itemsize <= 4 else np.dtype(np.float64)


def expect_shape(a, name, dims, expected):
    """A ValueError unless a.shape == expected; dims names the axes, e.g. "(T, B, D)"."""
    if a.shape != tuple(expected):
        raise ValueError(f"{name} has shape {a.shape}, expected {dims} = {tuple(expected)}")


def checked_lengths(lengths, T, B):
    """lengths[B] as an np.intp array of values in 0..T, or a clear error."""
    arr = np.asarray(lengths)
    if arr.dtype.kind not in "iu" and arr.size > 0:  # an empty list reads as float64: fine
        raise TypeError(f"lengths must hold integers, got dtype {arr.dtype}")
    expect_shape(arr, "lengths", "(B,)", (B,))
    bad = np.flatnonzero((arr < 0) | (arr > T))
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"lengths must lie in 0..T = 0..{T}, got lengths[{i}] = {int(arr[i])}")
    return arr.astype(np.intp)


def real_weights(weights, num_layers, dirs):
    """The weights as a list over k of triples of real arrays, its length checked."""
    weights = list(weights)
    if len(weights) != num_layers * dirs:
        raise ValueError(f"weights has {len(weights)} entries, expected num_layers * dirs = "
                         f"{num_layers} * {dirs} = {num_layers * dirs}")
    triples = []
    for k, triple in enumerate(weights):
        if len(triple) != 3:
            raise ValueError(f"weights[{k}] must be a triple (W_xh, W_hh, b_h), "
                             f"got {len(triple)} items")
        triples.append(tuple(real_array(w, f"weights[{k}]") for w in triple))
    return triples


def checked_weights(weights, D, dirs, dtype):
    """The weight triples converted to dtype, every shape checked; returns (weights, H).
    H comes from weights[0]'s W_hh; layer 0 reads D inputs, the layers above dirs*H."""
    W_hh0 = weights[0][1]
    if W_hh0.ndim != 2:
        raise ValueError(f"weights[0][1] (W_hh) must have 2 dimensions (H, H), "
                         f"got shape {W_hh0.shape}")
    H = W_hh0.shape[0]
    checked = []
    for k, triple in enumerate(weights):
        W_xh, W_hh, b_h = (w.astype(dtype, copy=False) for w in triple)
        D_in = D if k < dirs else dirs * H
        expect_shape(W_xh, f"weights[{k}][0] (W_xh)", "(H, D_in)", (H, D_in))
        expect_shape(W_hh, f"weights[{k}][1] (W_hh)", "(H, H)", (H, H))
        expect_shape(b_h, f"weights[{k}][2] (b_h)", "(H,)", (H,))
        checked.append((W_xh, W_hh, b_h))
    return checked, H


# --------------------------------------------------------------------------- #
# Where sequences end
# --------------------------------------------------------------------------- #

class Timing:
    """Where each sequence of a batch ends, and how to reverse time within each one.

    Built from lengths[B] (None: every sequence spans all T steps). ``full`` is True when every
    sequence spans all T steps; then nothing is masked and reversal is a plain flip ``a[::-1]``.
    Otherwise ``valid[T, B]`` is True at steps before each end, and ``reverse_index[T, B]`` maps
    step t of sequence b to ``lengths[b] - 1 - t`` inside it and to t itself past its end.
    """

    def __init__(self, lengths, T, B):
        self.T, self.B = T, B
        self.lengths = lengths  # [B], or None: all T (the common case, decided without NumPy)
        self.full = lengths is None or bool(np.all(lengths == T))
        if not self.full:
            self.started = lengths > 0  # [B] sequences with at least one step
            self.last = np.maximum(lengths - 1, 0)  # [B] index of each sequence's last step
            self.batch = np.arange(B)  # [B]
            t = np.arange(T)[:, None]  # [T, 1]
            self.valid = t < self.lengths  # [T, B]
            self.reverse_index = np.where(self.valid, self.lengths - 1 - t, t)  # [T, B]

    def empty_sequences(self):
        """[B] mask of the sequences with no step (their final state is their initial state),
        or None when every sequence has at least one."""
        if self.T == 0:
            return np.ones(self.B, dtype=bool)
        if self.full or self.started.all():
            return None
        return ~self.started

    def masked(self, a):
        """A new copy of a[T, B, ...] with every step past its sequence's end set to 0
        (``np.where``, so even NaN there becomes 0)."""
        return np.where(self.valid[..., None], a, a.dtype.type(0))

    def zero_past_end(self, a):
        """Set a[t, b] = 0 in place wherever step t is past sequence b's end."""
        if not self.full:
            a[~self.valid] = 0

    def reversed(self, a):
        """A new C-contiguous copy of a[T, B, ...] with each sequence reversed within its length."""
        if self.full:
            return np.ascontiguousarray(a[::-1])
        return a[self.reverse_index, self.batch]

    def write_reversed(self, dst, src):
        """dst[...] = reversed(src), without a temporary when lengths are full."""
        dst[...] = src[::-1] if self.full else src[self.reverse_index, self.batch]

    def add_reversed(self, dst, src):
        """dst += reversed(src), without a temporary when lengths are full."""
        dst += src[::-1] if self.full else src[self.reverse_index, self.batch]

    def final_states(self, hs, h0):
        """[B, H] each sequence's state at its own last step: hs[lengths-1, b], or h0[b] when
        the sequence is empty. hs[T, B, H] is in kernel time (reverse directions included)."""
        if self.T == 0:
            return h0
        if self.full:
            return hs[-1]
        return np.where(self.started[:, None], hs[self.last, self.batch], h0)

    def add_final_gradient(self, dhs, d_final):
        """Let d_final[B, H] (dL/d final states) enter at each sequence's own last step: added in
        place to dhs[lengths-1, b] (kernel time). Empty sequences are skipped: their final state
        is their initial state, so the caller adds their d_final to dh0."""
        if self.T == 0:
            return
        if self.full:
            dhs[-1] += d_final
        else:
            b = self.batch[self.started]
            dhs[self.last[b], b] += d_final[b]  # each (t, b) pair once, so += is exact


# --------------------------------------------------------------------------- #
# Forward
# --------------------------------------------------------------------------- #

class _Direction:
    """What backward needs from one (layer, direction): its kernel-time input x_k[T, B, D_in],
    initial state h0[B, H], states hs[T, B, H] (zero past each end) and weights."""

    __slots__ = ("x", "h0", "hs", "W_xh", "W_hh")

    def __init__(self, x, h0, hs, W_xh, W_hh):
        self.x, self.h0, self.hs, self.W_xh, self.W_hh = x, h0, hs, W_xh, W_hh


class StackCache:
    """Everything ``stack_backward`` needs from one ``stack_forward`` call; treat as opaque.

    Public attributes: ``timing`` (a :class:`Timing`), ``dtype``, ``num_layers``, ``dirs``,
    ``hidden_size``, ``input_size``, ``activation``. Backward never modifies the cache, so it may
    be called more than once.
    """

    def __init__(self, timing, dtype, num_layers, dirs, hidden_size, input_size, activation,
                 directions):
        self.timing = timing
        self.dtype = dtype
        self.num_layers = num_layers
        self.dirs = dirs
        self.hidden_size = hidden_size
        self.input_size = input_size
        self.activation = activation
        self.directions = directions  # [L*dirs] of _Direction, index k = layer * dirs + direction


def stack_forward(x, h0, weights, *, num_layers, bidirectional, activation="tanh", lengths=None):
    """Run a stack of RNN layers (each one or two directions) over x.

    Inputs:
        x[T, B, D]          inputs, time-major
        h0[L*dirs, B, H]    initial states, k = layer * dirs + direction (None: zeros)
        weights             list over k of (W_xh[H, D_in], W_hh[H, H], b_h[H])
        num_layers          L >= 1
        bidirectional       dirs = 2 when True
        activation          hidden activation, "tanh", "sigmoid", "relu" or "identity"
        lengths[B]          optional sequence lengths in 0..T (see the module docstring)
    Returns:
        out[T, B, dirs*H]   last layer's states, [forward, reverse] on the last axis; 0 past ends
        h_n[L*dirs, B, H]   each layer/direction's state at each sequence's own last step
        cache               a StackCache for stack_backward
    """
    num_layers = positive_int(num_layers, "num_layers")
    dirs = 2 if bidirectional else 1
    x = real_array(x, "x")
    if x.ndim != 3:
        raise ValueError(f"x must have 3 dimensions (T, B, D), got shape {x.shape}")
    T, B, D = x.shape
    weights = real_weights(weights, num_layers, dirs)
    h0 = None if h0 is None else real_array(h0, "h0")
    arrays = [x] + [w for triple in weights for w in triple] + ([] if h0 is None else [h0])
    dtype = compute_dtype(arrays)
    weights, H = checked_weights(weights, D, dirs, dtype)
    if h0 is None:
        h0 = np.zeros((num_layers * dirs, B, H), dtype=dtype)
    else:
        expect_shape(h0, "h0", "(L*dirs, B, H)", (num_layers * dirs, B, H))
        h0 = np.ascontiguousarray(h0, dtype=dtype)  # so each h0[k] is read in place
    timing = Timing(None if lengths is None else checked_lengths(lengths, T, B), T, B)

    # Layer 0 reads x itself (zero copy) unless some sequence ends early: then its padding is
    # zeroed once, so that no value there (NaN, inf) can reach a weight gradient.
    if timing.full:
        layer_input = np.ascontiguousarray(x, dtype=dtype)
    else:
        layer_input = timing.masked(x.astype(dtype, copy=False))
    h_n = np.empty((num_layers * dirs, B, H), dtype=dtype)
    directions = []
    for layer in range(num_layers):
        out = None if dirs == 1 else np.empty((T, B, dirs * H), dtype=dtype)
        for d in range(dirs):
            k = layer * dirs + d
            W_xh, W_hh, b_h = weights[k]
            x_k = layer_input if d == 0 else timing.reversed(layer_input)  # kernel time
            hs = rnn_forward(x_k, h0[k], W_xh, W_hh, b_h, activation)  # [T, B, H]
            timing.zero_past_end(hs)
            h_n[k] = timing.final_states(hs, h0[k])
            directions.append(_Direction(x_k, h0[k], hs, W_xh, W_hh))
            if dirs == 1:
                out = hs  # no copy: the layer's output is its states
            elif d == 0:
                out[..., :H] = hs
            else:
                timing.write_reversed(out[..., H:], hs)  # back to original time
        layer_input = out
    cache = StackCache(timing, dtype, num_layers, dirs, H, D, activation, directions)
    return layer_input, h_n, cache


# --------------------------------------------------------------------------- #
# Backward
# --------------------------------------------------------------------------- #

def stack_backward(cache, d_out, d_h_n=None, input_grad=True):
    """Backpropagation through the whole stack of one stack_forward call.

    Inputs:
        cache                 the StackCache returned by stack_forward
        d_out[T, B, dirs*H]   dL/dout (entries past a sequence's end are ignored)
        d_h_n[L*dirs, B, H]   dL/dh_n, or None for zero
        input_grad            False: dx is not computed (None); the other results are unchanged
    Returns:
        dx[T, B, D]           dL/dx (0 past each sequence's end), or None
        dh0[L*dirs, B, H]     dL/dh0
        dweights              list over k of (dW_xh[H, D_in], dW_hh[H, H], db_h[H])
    """
    if not isinstance(cache, StackCache):
        raise TypeError(f"cache must be the StackCache returned by stack_forward, "
                        f"got {type(cache).__name__}")
    timing, dtype = cache.timing, cache.dtype
    d_out = real_array(d_out, "d_out").astype(dtype, copy=False)
    expect_shape(d_out, "d_out", "(T, B, dirs*H)",
                 (timing.T, timing.B, cache.dirs * cache.hidden_size))
    if timing.full:
        return backward_from_top(cache, d_out, d_h_n, owned=False, input_grad=input_grad)
    return backward_from_top(cache, timing.masked(d_out), d_h_n, owned=True, input_grad=input_grad)


def backward_from_top(cache, d_top, d_h_n, owned, input_grad=True):
    """stack_backward for a d_top[T, B, dirs*H] of the cache's dtype that is already 0 past every
    sequence's end. ``owned`` says d_top is a scratch array this function may overwrite; without
    ``input_grad`` the first layer skips its dx product and None is returned for dx."""
    timing, dtype = cache.timing, cache.dtype
    L, dirs, H = cache.num_layers, cache.dirs, cache.hidden_size
    if d_h_n is not None:
        d_h_n = real_array(d_h_n, "d_h_n").astype(dtype, copy=False)
        expect_shape(d_h_n, "d_h_n", "(L*dirs, B, H)", (L * dirs, timing.B, H))
    dh0 = np.empty((L * dirs, timing.B, H), dtype=dtype)
    dweights = [None] * (L * dirs)
    grad = d_top  # dL/d(this layer's output) [T, B, dirs*H]
    for layer in reversed(range(L)):
        d_input = None  # dL/d(this layer's input), summed over directions
        for d in range(dirs):
            k = layer * dirs + d
            cached = cache.directions[k]
            if d == 1:
                dhs = timing.reversed(grad[..., H:])  # kernel time, a new array
            elif dirs == 1 and (owned or d_h_n is None):
                dhs = grad  # read in place, or written in place when we own it
            else:
                dhs = np.array(grad[..., :H])  # a copy we may add d_h_n into
            if d_h_n is not None:
                timing.add_final_gradient(dhs, d_h_n[k])
            # functional.rnn_backward, with the kernel's option to skip dx (the stack's input).
            dx_k, dh0_k, dW_xh, dW_hh, db_h = _core.rnn_backward(
                dhs, cached.x, cached.h0, cached.hs, cached.W_xh, cached.W_hh, cache.activation,
                input_grad=input_grad or layer > 0)
            empty = timing.empty_sequences()
            if d_h_n is not None and empty is not None:
                dh0_k[empty] += d_h_n[k][empty]
            dh0[k] = dh0_k
            dweights[k] = (dW_xh, dW_hh, db_h)
            if dx_k is None:
                continue
            if d == 0:
                d_input = dx_k  # a new array from the kernel, safe to add into
            else:
                timing.add_reversed(d_input, dx_k)
        grad, owned = d_input, True
    return grad, dh0, dweights
