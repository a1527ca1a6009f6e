"""Loss functions for training: each returns ``(loss, gradient with respect to its input)``.

The gradient is what a model's ``backward`` takes: ``dx = rnn.backward(d_out)``. Every loss here
follows the same rules:

* ``reduction`` is ``"mean"`` (the default, as in PyTorch) or ``"sum"``.
* ``mask`` (optional, bool or float weights) switches positions off, or weighs them. Its shape is
  the input's shape or a leading part of it, e.g. ``mask[T, B]`` for ``outputs[T, B, O]``: the
  weight then applies to all O entries of that position. ``"sum"`` adds ``mask * loss``;
  ``"mean"`` divides that by the number of entries the mask keeps (the sum of the broadcast
  mask), so a mask of ones gives PyTorch's mean. A position with mask 0 contributes exactly 0 to
  the loss and the gradient, even where the prediction is NaN; nothing counting gives loss 0.
* Inputs are never modified. The loss is a Python float computed in the predictions' dtype
  (float32 or float64; float16 computes in float32, integers in float64, long double is rounded
  to float64); the gradient has that dtype and the predictions' shape.

Softmax cross-entropy is fused with the output layer: build the model with
``output_activation="identity"`` so its outputs are logits, and let :func:`cross_entropy` apply
the softmax. Its gradient ``softmax(logits) - onehot(targets)`` is then exact and cheap, with no
division by a probability near zero.
"""

from __future__ import annotations

import numpy as np

from ._checks import float_array
from .functional import softmax_cross_entropy

__all__ = [
    "cross_entropy",
    "mse",
    "binary_cross_entropy_with_logits",
    "binary_cross_entropy",
]

REDUCTIONS = ("mean", "sum")


def cross_entropy(logits, targets, mask=None, reduction="mean"):
    """Softmax cross-entropy of ``logits[..., C]`` against integer class ``targets[...]``.

    logits[T, B, C]  unnormalised scores, e.g. the outputs of an RNN with ``output_size=C`` and
                     ``output_activation="identity"`` (any leading shape works)
    targets[T, B]    integer classes in [0, C); not read where the mask is 0 (padding may be -1)
    mask[T, B]       optional weights, 0 ignores a position; as for every loss here, a leading
                     part of targets' shape works too (mask[T] weighs whole steps)
    Returns ``(loss, dlogits[T, B, C])``; the same as PyTorch's ``cross_entropy`` on the logits
    moved to ``[N, C]``. Computed in one pass by the C++ kernel
    (:func:`elman.softmax_cross_entropy`).
    """
    _check_reduction(reduction)
    if mask is not None:
        mask = _positions_mask(mask, np.shape(targets))
    return softmax_cross_entropy(logits, targets, mask, reduction)


def _positions_mask(mask, positions):
    """A mask of targets' shape (positions), from one of that shape or a leading part of it
    (broadcast over the axes it lacks, as the other losses broadcast theirs)."""
    m = np.asarray(mask)
    if m.dtype.kind not in "biuf":
        raise TypeError(f"mask must be bool or numbers, got dtype {m.dtype}")
    if m.shape == tuple(positions):
        return mask
    if m.ndim > len(positions) or m.shape != tuple(positions[:m.ndim]):
        raise ValueError(f"mask has shape {m.shape}, expected targets' shape {tuple(positions)} "
                         f"or a leading part of it")
    return np.broadcast_to(m.reshape(m.shape + (1,) * (len(positions) - m.ndim)), positions)


def mse(predictions, targets, mask=None, reduction="mean"):
    """Mean squared error ``(predictions - targets)**2``, and its gradient.

    predictions[...]  any shape, e.g. the outputs ``[T, B, O]`` of a regression RNN
    targets[...]      the same shape
    mask              optional weights of the predictions' shape or a leading part of it
    Returns ``(loss, dpredictions)``; ``"mean"`` is PyTorch's ``mse_loss``.
    """
    pred, target, weights, divisor = _prepare("predictions", predictions, targets, mask, reduction)
    if divisor == 0:
        return 0.0, np.zeros_like(pred)
    diff = pred - target  # [...] residuals
    elementwise = diff * diff  # [...] squared errors
    grad = 2 * diff  # [...] d(diff^2)/dpred
    return _reduce(elementwise, grad, weights, divisor)


def binary_cross_entropy_with_logits(logits, targets, mask=None, reduction="mean"):
    """Binary cross-entropy of ``sigmoid(logits)`` against ``targets`` in [0, 1], and its gradient.

    logits[...]   unnormalised scores, e.g. RNN outputs with ``output_activation="identity"``
    targets[...]  the same shape, probabilities (usually 0 or 1)
    mask          optional weights of the logits' shape or a leading part of it
    Returns ``(loss, dlogits)``; PyTorch's ``binary_cross_entropy_with_logits``. Stable for any
    logit: ``loss = max(z, 0) - z*y + log1p(exp(-|z|))`` never overflows, and the gradient
    ``sigmoid(z) - y`` is computed without forming ``exp(+|z|)``.
    """
    z, y, weights, divisor = _prepare("logits", logits, targets, mask, reduction)
    _check_probabilities("targets", y)
    if divisor == 0:
        return 0.0, np.zeros_like(z)
    e = np.exp(-np.abs(z))  # [...] in (0, 1], never overflows
    elementwise = np.maximum(z, 0) - z * y + np.log1p(e)  # [...] -y log s - (1-y) log(1-s)
    sigmoid = np.where(z >= 0, 1 / (1 + e), e / (1 + e))  # [...] s = sigmoid(z), both halves stable
    grad = sigmoid - y  # [...] dloss/dz
    return _reduce(elementwise, grad, weights, divisor)


# PyTorch clamps log(p) at -100 so that p = 0 or 1 gives a large finite loss, not infinity, and
# keeps the gradient's denominator p (1 - p) away from 0 with an epsilon of 1e-12 held in a C++
# float, i.e. rounded to float32; the same rounding here gives the same gradient there.
_LOG_FLOOR = -100.0
_BCE_EPSILON = float(np.float32(1e-12))


def binary_cross_entropy(probabilities, targets, mask=None, reduction="mean"):
    """Binary cross-entropy of ``probabilities`` in [0, 1] against ``targets``, and its gradient.

    For a model whose output layer already applies the sigmoid (``output_activation="sigmoid"``).
    ``loss = -(y log p + (1 - y) log(1 - p))`` with each log clamped at -100, and
    ``dp = (p - y) / max(p (1 - p), 1e-12)``, exactly PyTorch's ``binary_cross_entropy``. Prefer
    :func:`binary_cross_entropy_with_logits` (an identity output layer): it is exact for saturated
    outputs, where this one must clamp.
    """
    p, y, weights, divisor = _prepare("probabilities", probabilities, targets, mask, reduction)
    _check_probabilities("probabilities", p)
    _check_probabilities("targets", y)
    if divisor == 0:
        return 0.0, np.zeros_like(p)
    with np.errstate(divide="ignore"):  # log(0) = -inf is clamped just below
        log_p = np.maximum(np.log(p), _LOG_FLOOR)  # [...]
        log_1mp = np.maximum(np.log1p(-p), _LOG_FLOOR)  # [...] log(1 - p)
    elementwise = -(y * log_p + (1 - y) * log_1mp)  # [...]
    grad = (p - y) / np.maximum(p * (1 - p), _BCE_EPSILON)  # [...] dloss/dp
    return _reduce(elementwise, grad, weights, divisor)


# --------------------------------------------------------------------------- #
# shared checks and reduction
# --------------------------------------------------------------------------- #

def _check_reduction(reduction):
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")


def _prepare(name, predictions, targets, mask, reduction):
    """Checked ``(predictions, targets, weights, divisor)`` for an elementwise loss.

    targets are cast to the predictions' dtype; weights is None (all ones) or the mask in that
    dtype reshaped to broadcast over the predictions; divisor is what the weighted sum is
    divided by (1 for "sum").
    """
    _check_reduction(reduction)
    pred = float_array(predictions, name)
    target = float_array(targets, "targets")
    if target.shape != pred.shape:
        raise ValueError(f"targets has shape {target.shape}, expected {pred.shape} "
                         f"(the shape of {name})")
    target = target.astype(pred.dtype, copy=False)
    if mask is None:
        weights = None
        kept = pred.size
    else:
        weights = _mask_weights(mask, pred.shape, pred.dtype, name)
        kept = float(np.broadcast_to(weights, pred.shape).sum())
    divisor = kept if reduction == "mean" else 1
    return pred, target, weights, divisor


def _mask_weights(mask, shape, dtype, name):
    """The mask as weights of ``dtype`` shaped to broadcast over an array of ``shape``."""
    m = np.asarray(mask)
    if m.dtype.kind not in "biuf":
        raise TypeError(f"mask must be bool or numbers, got dtype {m.dtype}")
    if m.shape != shape[: m.ndim]:
        raise ValueError(
            f"mask has shape {m.shape}, expected {name}'s shape {shape} or a leading part of it"
        )
    trailing = (1,) * (len(shape) - m.ndim)  # broadcast over the axes the mask does not have
    return m.astype(dtype).reshape(m.shape + trailing)


def _check_probabilities(name, values):
    # NaN compares False both ways, so it passes here and propagates like any other input.
    if values.size and (np.any(values < 0) or np.any(values > 1)):
        raise ValueError(f"{name} must lie in [0, 1], got values in "
                         f"[{values.min()}, {values.max()}]")


def _reduce(elementwise, grad, weights, divisor):
    """``(sum(weights * elementwise) / divisor, weights * grad / divisor)``, exactly 0 where a
    weight is 0."""
    if weights is not None:
        keep = weights != 0
        # where(), not a product: a masked-out NaN must give 0, not NaN * 0.
        elementwise = np.where(keep, elementwise * weights, 0)
        grad = np.where(keep, grad * weights, 0)
    loss = float(elementwise.sum(dtype=elementwise.dtype)) / divisor
    grad = (grad / divisor).astype(elementwise.dtype, copy=False)
    return loss, grad
