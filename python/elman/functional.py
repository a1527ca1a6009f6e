"""The functional core, computed by elman's fused C++ kernels.

Same names, signatures, defaults and results as :mod:`elman.reference` (the NumPy spec).
Shape legend: T steps, B batch, D input, H hidden, O outputs, C classes; time-major ``x[T, B, D]``;
weights in the column-vector (PyTorch) layout ``W_xh[H, D]``, ``W_hh[H, H]``, ``b_h[H]``,
``W_hy[O, H]``, ``b_y[O]``.

Input rules, shared by every function here:

* A call computes in one dtype, float32 or float64, and returns that dtype: NumPy's result type of
  the array arguments, with float16 computed in float32 and integers, booleans and wider floats
  computed in float64 (so float32 with float64 gives float64, as in NumPy). Wider floats are
  NumPy's long double (``np.longdouble``, 80 or 128 bits on most Linux machines): it is rounded
  to float64, the result is float64 and its extra precision is not used; there is no warning.
* Lists and other array-likes are converted with ``numpy.asarray``; complex, string and object
  data raise ``TypeError``.
* C-contiguous, aligned, native-endian arrays of the compute dtype are read in place (zero copy);
  any other layout (strided views, Fortran order, byte-swapped) is copied once. Read-only arrays
  are fine: inputs are never written.
* Shapes are checked against each other; a mismatch raises ``ValueError`` naming the argument,
  its shape and the shape expected. Zero-sized dimensions (T=0, B=0, ...) give empty results and
  zero gradients. NaN and infinity propagate as they would in the reference.
"""

from __future__ import annotations

from . import _core

__all__ = [
    "cell_forward",
    "cell_backward",
    "rnn_forward",
    "rnn_backward",
    "output_forward",
    "output_backward",
    "softmax_cross_entropy",
]


def cell_forward(x_t, h_prev, W_xh, W_hh, b_h, activation="tanh"):
    """One step: ``h_next[B, H] = f(x_t @ W_xh.T + h_prev @ W_hh.T + b_h)``.

    x_t[B, D], h_prev[B, H], W_xh[H, D], W_hh[H, H], b_h[H]; activation f is one of
    "tanh", "sigmoid", "relu", "identity".
    """
    return _core.cell_forward(x_t, h_prev, W_xh, W_hh, b_h, activation)


def cell_backward(dh_next, x_t, h_prev, h_next, W_xh, W_hh, activation="tanh"):
    """Gradients of one step from ``dh_next[B, H]`` = dL/dh_next.

    Returns ``(dx_t[B, D], dh_prev[B, H], dW_xh[H, D], dW_hh[H, H], db_h[H])``. The activation's
    derivative is computed from the stored output ``h_next``.
    """
    return _core.cell_backward(dh_next, x_t, h_prev, h_next, W_xh, W_hh, activation)


def rnn_forward(x, h0, W_xh, W_hh, b_h, activation="tanh"):
    """The whole sequence: ``hs[T, B, H]``, ``hs[t] = f(x[t] @ W_xh.T + hs[t-1] @ W_hh.T + b_h)``.

    x[T, B, D], h0[B, H] (the state before step 0), W_xh[H, D], W_hh[H, H], b_h[H].
    """
    return _core.rnn_forward(x, h0, W_xh, W_hh, b_h, activation)


def rnn_backward(dhs, x, h0, hs, W_xh, W_hh, activation="tanh"):
    """Backpropagation through time from ``dhs[T, B, H]`` = dL/dhs.

    ``dhs[t]`` is the gradient reaching ``hs[t]`` from outside the recurrence (outputs); the
    gradient with respect to the final state is part of ``dhs[-1]``. Returns
    ``(dx[T, B, D], dh0[B, H], dW_xh[H, D], dW_hh[H, H], db_h[H])``.
    """
    return _core.rnn_backward(dhs, x, h0, hs, W_xh, W_hh, activation)


def output_forward(hs, W_hy, b_y, activation="identity"):
    """The output layer: ``ys[..., O] = g(hs[..., H] @ W_hy.T + b_y)``.

    activation g is one of "identity", "softmax" (over the last axis), "sigmoid".
    """
    return _core.output_forward(hs, W_hy, b_y, activation)


def output_backward(dys, hs, ys, W_hy, activation="identity"):
    """Gradients of the output layer from ``dys[..., O]`` = dL/dys.

    Returns ``(dhs[..., H], dW_hy[O, H], db_y[O])``; g's derivative comes from the stored ``ys``.
    """
    return _core.output_backward(dys, hs, ys, W_hy, activation)


def softmax_cross_entropy(logits, targets, mask=None, reduction="mean"):
    """Softmax cross-entropy over the last axis of ``logits[T, B, C]`` (any leading shape).

    targets: integer class indices of ``logits.shape[:-1]``; mask: optional weights of the same
    shape (bool or float), where 0 ignores a position (its target is then not read). reduction
    "sum" adds ``mask * nll``; "mean" divides that by ``mask.sum()`` (by the number of positions
    without a mask; 0 when nothing counts). Returns ``(loss: float, dlogits)`` with
    ``dlogits = (softmax(logits) - onehot(targets)) * mask / divisor``, computed in one pass.
    """
    return _core.softmax_cross_entropy(logits, targets, mask, reduction)
