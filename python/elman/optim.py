"""Optimizers and gradient clipping, with PyTorch's update formulas and defaults.

An optimizer holds a dict of parameter arrays (``rnn.params``) and updates those arrays IN PLACE
from a dict of gradients with the same keys (``rnn.grads``)::

    opt = elman.optim.Adam(rnn.params, lr=1e-3)
    for x, targets in batches:
        out, _ = rnn(x)
        loss, d_out = elman.losses.cross_entropy(out, targets)
        rnn.backward(d_out)
        elman.optim.clip_grad_norm(rnn.grads, max_norm=5.0)
        opt.step(rnn.grads)

Each update is the one ``torch.optim`` computes on CPU (the single-tensor path), operation for
operation, so that parameters agree with PyTorch's to rounding after any number of steps. All
state (moments, momentum buffers, scratch space) is allocated once, when the optimizer is built,
in each parameter's dtype; a step then updates every parameter array and its state in one call
to compiled code, a single pass over each array, and allocates nothing (unless a gradient comes
in another dtype and must be converted). That pass gives exactly the bits of the NumPy formulas
it replaced, which still run for parameters that are not C-contiguous and aligned, and for
gradients that are not or that share memory with what the step writes. Gradients are read, never
written, by ``step``; the clipping functions, by design, scale gradients in place.

The optimizer keeps references to the arrays it was given: if a model's parameter arrays are
replaced (rather than changed in place), build a new optimizer. ``opt.lr`` may be changed between
steps (a learning-rate schedule); like every hyperparameter it is checked and kept as a float.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from . import _core

__all__ = [
    "Optimizer",
    "SGD",
    "Adagrad",
    "RMSprop",
    "Adam",
    "AdamW",
    "clip_grad_value",
    "clip_grad_norm",
]


class Optimizer:
    """Base class: checks parameters and gradients, counts steps, holds per-parameter state.

    Subclasses define ``_new_state(param) -> dict`` (arrays allocated once),
    ``_update(param, grad, state)`` (one in-place step of one parameter array, in NumPy) and
    ``_fused_step(params, grads) -> bool``: the same step of all parameter arrays (lists in the
    order of ``self.params``) in one call to ``elman._core``, whose single pass per array gives
    ``_update``'s bits. It returns False, having written nothing, when the pass would read other
    values than ``_update`` does (a gradient sharing memory with what the step writes) or cannot
    read a gradient in place (not C-contiguous and aligned); ``step`` then runs ``_update``.
    """

    def __init__(self, params, lr):
        self.params = _checked_params(params)
        self.lr = lr
        self.step_count = 0  # steps taken; PyTorch's state["step"]
        self.state = {name: self._new_state(p) for name, p in self.params.items()}
        # The compiled step writes parameters as flat arrays; any other layout takes the NumPy
        # path (for good: state arrays are made like their parameter), and so does a subclass
        # that redefines _update but not _fused_step. Tests set this to False to compare the
        # two paths.
        fused_by = next(c for c in type(self).__mro__ if "_fused_step" in vars(c))
        flat = all(p.flags.c_contiguous and p.flags.aligned for p in self.params.values())
        self._fused = flat and fused_by._update is type(self)._update

    @property
    def lr(self):
        """The learning rate, a float; may be changed between steps."""
        return self._lr

    @lr.setter
    def lr(self, value):
        # A float, like the other hyperparameters: a NumPy float64 or float32 would make NumPy
        # compute the float32 updates in another precision than the Python float does.
        self._lr = _hyperparameter("lr", value)

    def step(self, grads):
        """Update every parameter in place from ``grads`` (a dict with the parameters' keys)."""
        checked = _checked_grads(grads, self.params)
        self.step_count += 1
        if self._fused and self._fused_step(list(self.params.values()), list(checked.values())):
            return
        # An infinite gradient makes the adaptive methods divide inf by inf: the parameter becomes
        # NaN, silently, as in PyTorch (callers check the loss or use clip_grad_norm's
        # error_if_nonfinite), not a NumPy warning per step. Likewise a division by zero (eps=0
        # with a gradient too small to square), and as in the compiled step, which never warns.
        with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
            for name, param in self.params.items():
                self._update(param, checked[name], self.state[name])

    def _new_state(self, param):
        raise NotImplementedError

    def _update(self, param, grad, state):
        raise NotImplementedError

    def _fused_step(self, params, grads):
        return False

    def _states(self, key):
        """The state arrays named key, in the order of self.params."""
        return [state[key] for state in self.state.values()]

    def __repr__(self):
        settings = ", ".join(f"{k}={v!r}" for k, v in self._settings().items())
        return f"{type(self).__name__}({settings})"

    def _settings(self):
        return {"lr": self.lr}


def _with_weight_decay(param, grad, weight_decay, work):
    """``grad + weight_decay * param`` (PyTorch's L2 penalty), in the scratch array ``work``.

    Returns grad itself when there is no decay, so the caller's array is never written.
    """
    if weight_decay == 0:
        return grad
    np.multiply(param, weight_decay, out=work)
    work += grad
    return work


def _lerp(start, end, weight, tmp):
    """``start += weight * (end - start)`` in place, rounded as PyTorch's CPU ``lerp_``.

    PyTorch switches formulas at weight 0.5 so the result is exact at both ends.
    """
    from_end, w = _lerp_factor(weight)
    np.subtract(end, start, out=tmp)
    tmp *= w
    if from_end:
        np.subtract(end, tmp, out=start)
    else:
        start += tmp


def _lerp_factor(weight):
    """(from_end, w): _lerp computes ``start + w * (end - start)`` below weight 0.5, else
    ``end - w * (end - start)`` with ``w = 1 - weight``."""
    return (False, weight) if weight < 0.5 else (True, 1 - weight)


class SGD(Optimizer):
    """Stochastic gradient descent, optionally with (Nesterov) momentum: ``torch.optim.SGD``.

    With ``g = grad + weight_decay * p``::

        buf = g                                            (first step)
        buf = momentum * buf + (1 - dampening) * g         (later steps)
        d = g + momentum * buf if nesterov else buf        (d = g without momentum)
        p -= lr * d
    """

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0,
                 nesterov=False):
        self.momentum = _hyperparameter("momentum", momentum)
        self.dampening = _hyperparameter("dampening", dampening, allow_negative=True)
        self.weight_decay = _hyperparameter("weight_decay", weight_decay)
        self.nesterov = bool(nesterov)
        if self.nesterov and (self.momentum == 0 or self.dampening != 0):
            raise ValueError("nesterov=True requires momentum > 0 and dampening = 0")
        super().__init__(params, lr)

    def _new_state(self, param):
        state = {"work": np.empty_like(param), "tmp": np.empty_like(param)}
        if self.momentum != 0:
            state["momentum_buffer"] = np.zeros_like(param)
        return state

    def _update(self, param, grad, state):
        work, tmp = state["work"], state["tmp"]
        g = _with_weight_decay(param, grad, self.weight_decay, work)
        if self.momentum != 0:
            buf = state["momentum_buffer"]
            if self.step_count == 1:
                buf[...] = g
            else:
                buf *= self.momentum
                np.multiply(g, 1 - self.dampening, out=tmp)
                buf += tmp
            if self.nesterov:
                np.multiply(buf, self.momentum, out=tmp)
                tmp += g
                g = tmp
            else:
                g = buf
        np.multiply(g, self.lr, out=work)  # safe when g is work: elementwise
        param -= work

    def _fused_step(self, params, grads):
        buffers = self._states("momentum_buffer") if self.momentum != 0 else None
        return _core.sgd_step(params, grads, buffers, self.weight_decay, self.step_count == 1,
                              self.momentum, 1 - self.dampening, self.nesterov, self.lr)

    def _settings(self):
        return {"lr": self.lr, "momentum": self.momentum, "dampening": self.dampening,
                "weight_decay": self.weight_decay, "nesterov": self.nesterov}


class Adagrad(Optimizer):
    """Adagrad: ``torch.optim.Adagrad``.

    With ``g = grad + weight_decay * p`` and step count t::

        sum += g * g                                       (starts at initial_accumulator_value)
        p -= lr / (1 + (t - 1) * lr_decay) * g / (sqrt(sum) + eps)
    """

    def __init__(self, params, lr=1e-2, lr_decay=0.0, weight_decay=0.0,
                 initial_accumulator_value=0.0, eps=1e-10):
        self.lr_decay = _hyperparameter("lr_decay", lr_decay)
        self.weight_decay = _hyperparameter("weight_decay", weight_decay)
        self.initial_accumulator_value = _hyperparameter("initial_accumulator_value",
                                                         initial_accumulator_value)
        self.eps = _hyperparameter("eps", eps)
        super().__init__(params, lr)

    def _new_state(self, param):
        return {
            "sum": np.full_like(param, self.initial_accumulator_value),
            "work": np.empty_like(param),
            "tmp": np.empty_like(param),
        }

    def _update(self, param, grad, state):
        work, tmp, total = state["work"], state["tmp"], state["sum"]
        g = _with_weight_decay(param, grad, self.weight_decay, work)
        np.multiply(g, g, out=tmp)
        total += tmp
        np.sqrt(total, out=tmp)
        tmp += self.eps  # std
        np.multiply(g, -self._clr(), out=work)
        work /= tmp
        param += work

    def _fused_step(self, params, grads):
        return _core.adagrad_step(params, grads, self._states("sum"), self.weight_decay,
                                  -self._clr(), self.eps)

    def _clr(self):
        """This step's learning rate."""
        return self.lr / (1 + (self.step_count - 1) * self.lr_decay)

    def _settings(self):
        return {"lr": self.lr, "lr_decay": self.lr_decay, "weight_decay": self.weight_decay,
                "initial_accumulator_value": self.initial_accumulator_value, "eps": self.eps}


class RMSprop(Optimizer):
    """RMSprop: ``torch.optim.RMSprop`` (eps added outside the square root, as PyTorch does).

    With ``g = grad + weight_decay * p``::

        sq = alpha * sq + (1 - alpha) * g * g
        avg = sqrt(sq - mean_g**2) + eps, mean_g = lerp(mean_g, g, 1 - alpha)   (centered)
        avg = sqrt(sq) + eps                                                  (otherwise)
        buf = momentum * buf + g / avg;  p -= lr * buf                        (momentum > 0)
        p -= lr * g / avg                                                     (otherwise)
    """

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                 centered=False):
        self.alpha = _hyperparameter("alpha", alpha)
        self.eps = _hyperparameter("eps", eps)
        self.weight_decay = _hyperparameter("weight_decay", weight_decay)
        self.momentum = _hyperparameter("momentum", momentum)
        self.centered = bool(centered)
        super().__init__(params, lr)

    def _new_state(self, param):
        state = {"square_avg": np.zeros_like(param), "work": np.empty_like(param),
                 "tmp": np.empty_like(param)}
        if self.momentum > 0:
            state["momentum_buffer"] = np.zeros_like(param)
        if self.centered:
            state["grad_avg"] = np.zeros_like(param)
        return state

    def _update(self, param, grad, state):
        work, tmp, square_avg = state["work"], state["tmp"], state["square_avg"]
        g = _with_weight_decay(param, grad, self.weight_decay, work)
        square_avg *= self.alpha
        np.multiply(g, 1 - self.alpha, out=tmp)
        tmp *= g
        square_avg += tmp
        if self.centered:
            grad_avg = state["grad_avg"]
            _lerp(grad_avg, g, 1 - self.alpha, tmp)
            np.multiply(grad_avg, grad_avg, out=tmp)
            np.subtract(square_avg, tmp, out=tmp)
            np.sqrt(tmp, out=tmp)
        else:
            np.sqrt(square_avg, out=tmp)
        tmp += self.eps  # avg
        if self.momentum > 0:
            buf = state["momentum_buffer"]
            buf *= self.momentum
            np.divide(g, tmp, out=tmp)
            buf += tmp
            np.multiply(buf, self.lr, out=work)
            param -= work
        else:
            np.multiply(g, -self.lr, out=work)
            work /= tmp
            param += work

    def _fused_step(self, params, grads):
        from_end, w = _lerp_factor(1 - self.alpha)
        return _core.rmsprop_step(
            params, grads, self._states("square_avg"),
            self._states("momentum_buffer") if self.momentum > 0 else None,
            self._states("grad_avg") if self.centered else None,
            self.weight_decay, self.alpha, 1 - self.alpha, from_end, w, self.eps, self.momentum,
            self.lr)

    def _settings(self):
        return {"lr": self.lr, "alpha": self.alpha, "eps": self.eps,
                "weight_decay": self.weight_decay, "momentum": self.momentum,
                "centered": self.centered}


class Adam(Optimizer):
    """Adam: ``torch.optim.Adam`` (and AdamW with ``decoupled_weight_decay=True``).

    With step count t and ``g = grad + weight_decay * p`` (or, decoupled,
    ``p *= 1 - lr * weight_decay`` and ``g = grad``)::

        m = lerp(m, g, 1 - beta1)                          first moment
        v = beta2 * v + (1 - beta2) * g * g                second moment
        v_max = max(v_max, v); use v_max for v             (amsgrad)
        p -= lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 amsgrad=False, decoupled_weight_decay=False):
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        beta1 = _hyperparameter("betas[0]", betas[0])
        beta2 = _hyperparameter("betas[1]", betas[1])
        for name, beta in (("betas[0]", beta1), ("betas[1]", beta2)):
            if not beta < 1:
                raise ValueError(f"{name} must be in [0, 1), got {beta}")
        self.betas = (beta1, beta2)
        self.eps = _hyperparameter("eps", eps)
        self.weight_decay = _hyperparameter("weight_decay", weight_decay)
        self.amsgrad = bool(amsgrad)
        self.decoupled_weight_decay = bool(decoupled_weight_decay)
        super().__init__(params, lr)

    def _new_state(self, param):
        state = {"exp_avg": np.zeros_like(param), "exp_avg_sq": np.zeros_like(param),
                 "work": np.empty_like(param), "tmp": np.empty_like(param)}
        if self.amsgrad:
            state["max_exp_avg_sq"] = np.zeros_like(param)
        return state

    def _update(self, param, grad, state):
        beta1, beta2 = self.betas
        work, tmp = state["work"], state["tmp"]
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        if self.decoupled_weight_decay:
            if self.weight_decay != 0:
                param *= 1 - self.lr * self.weight_decay
            g = grad
        else:
            g = _with_weight_decay(param, grad, self.weight_decay, work)
        _lerp(exp_avg, g, 1 - beta1, tmp)
        exp_avg_sq *= beta2
        np.multiply(g, 1 - beta2, out=tmp)
        tmp *= g
        exp_avg_sq += tmp
        step_size, bias_correction2_sqrt = self._bias_corrections()
        second = exp_avg_sq
        if self.amsgrad:
            second = state["max_exp_avg_sq"]
            np.maximum(second, exp_avg_sq, out=second)
        np.sqrt(second, out=tmp)
        tmp /= bias_correction2_sqrt
        tmp += self.eps  # denominator
        np.multiply(exp_avg, -step_size, out=work)  # g is no longer needed, work is free
        work /= tmp
        param += work

    def _fused_step(self, params, grads):
        beta1, beta2 = self.betas
        decoupled = self.decoupled_weight_decay
        from_end, w = _lerp_factor(1 - beta1)
        step_size, bias_correction2_sqrt = self._bias_corrections()
        return _core.adam_step(
            params, grads, self._states("exp_avg"), self._states("exp_avg_sq"),
            self._states("max_exp_avg_sq") if self.amsgrad else None,
            1 - self.lr * self.weight_decay if decoupled and self.weight_decay != 0 else None,
            0.0 if decoupled else self.weight_decay, from_end, w, beta2, 1 - beta2, -step_size,
            bias_correction2_sqrt, self.eps)

    def _bias_corrections(self):
        """(lr / (1 - beta1**t), sqrt(1 - beta2**t)) at step t."""
        beta1, beta2 = self.betas
        t = self.step_count
        return self.lr / (1 - beta1**t), (1 - beta2**t) ** 0.5

    def _settings(self):
        return {"lr": self.lr, "betas": self.betas, "eps": self.eps,
                "weight_decay": self.weight_decay, "amsgrad": self.amsgrad,
                "decoupled_weight_decay": self.decoupled_weight_decay}


class AdamW(Adam):
    """Adam with decoupled weight decay (default 0.01): ``torch.optim.AdamW``."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad, decoupled_weight_decay=True)


# --------------------------------------------------------------------------- #
# gradient clipping
# --------------------------------------------------------------------------- #

def clip_grad_value(grads, clip_value):
    """Clamp every gradient entry to ``[-clip_value, clip_value]``, in place.

    grads: a dict name -> ndarray (e.g. ``rnn.grads``) or a list of arrays. The seeds' ``clip``
    and ``torch.nn.utils.clip_grad_value_``. NaN entries stay NaN.
    """
    clip_value = _hyperparameter("clip_value", clip_value)
    for array in _writable_grads(grads):
        np.clip(array, -clip_value, clip_value, out=array)


def clip_grad_norm(grads, max_norm, norm_type=2.0, error_if_nonfinite=False):
    """Scale all gradients together so their global norm is at most ``max_norm``, in place.

    The norm is taken over all entries of all arrays as one vector (order ``norm_type``: 2 by
    default, any p > 0, or ``inf``). As ``torch.nn.utils.clip_grad_norm_``: gradients are
    multiplied by ``min(1, max_norm / (total_norm + 1e-6))``, so a non-finite norm spreads NaN
    unless ``error_if_nonfinite=True``, which raises ``FloatingPointError`` instead.
    Returns the total norm before clipping, a Python float.
    """
    max_norm = _hyperparameter("max_norm", max_norm)
    norm_type = float(norm_type)
    if not norm_type > 0:
        raise ValueError(f"norm_type must be positive (or inf), got {norm_type}")
    arrays = _writable_grads(grads)
    total = _total_norm(arrays, norm_type)
    if error_if_nonfinite and not math.isfinite(total):
        raise FloatingPointError(f"the total gradient norm is {total}; "
                                 "cannot clip non-finite gradients")
    coef = min(max_norm / (total + 1e-6), 1.0)  # min(NaN, 1.0) is NaN, as torch.clamp gives
    if coef != 1.0:
        with np.errstate(invalid="ignore"):  # inf * 0 = NaN is the documented result
            for array in arrays:
                array *= coef
    return total


def _total_norm(arrays, norm_type):
    """The norm of the norms of the arrays, i.e. the norm of all their entries together."""
    if math.isinf(norm_type):
        norms = [float(np.max(np.abs(a))) if a.size else 0.0 for a in arrays]
        return max(norms, default=0.0)
    norms = [float(np.linalg.norm(a.reshape(-1), ord=norm_type)) if a.size else 0.0 for a in arrays]
    return math.fsum(n**norm_type for n in norms) ** (1 / norm_type)


# --------------------------------------------------------------------------- #
# argument checks
# --------------------------------------------------------------------------- #

def _hyperparameter(name, value, allow_negative=False):
    """value as a float, or a ValueError naming the hyperparameter."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    value = float(value)
    if math.isnan(value) or (value < 0 and not allow_negative) or math.isinf(value):
        expected = "a finite number" if allow_negative else "a finite number >= 0"
        raise ValueError(f"{name} must be {expected}, got {value}")
    return value


def _checked_params(params):
    """params as a dict of writable float32/float64 arrays (the caller's arrays, not copies)."""
    if not isinstance(params, Mapping):
        hint = " (pass rnn.params)" if hasattr(params, "params") else ""
        raise TypeError(f"params must be a dict name -> ndarray, got {type(params).__name__}{hint}")
    if not params:
        raise ValueError("params is empty: nothing to optimize")
    for name, p in params.items():
        if not isinstance(p, np.ndarray):
            raise TypeError(f"params[{name!r}] must be a NumPy array (updated in place), "
                            f"got {type(p).__name__}")
        if p.dtype not in (np.float32, np.float64):
            raise TypeError(f"params[{name!r}] has dtype {p.dtype}; expected float32 or float64")
        if not p.flags.writeable:
            raise ValueError(f"params[{name!r}] is read-only; the optimizer updates it in place")
    _check_no_shared_memory(params)
    return dict(params)


def _check_no_shared_memory(params):
    """A ValueError when two parameters are the same array or overlapping views: a step would
    update the shared entries twice, with two states (torch refuses a parameter given twice)."""
    items = list(params.items())
    for i, (name, p) in enumerate(items):
        for other, q in items[:i]:
            # may_share_memory compares bounds (cheap); shares_memory then decides exactly, so
            # interleaved views such as a[::2] and a[1::2] are allowed.
            if p.size and q.size and np.may_share_memory(p, q) and np.shares_memory(p, q):
                what = "the same array" if p is q else "views of overlapping memory"
                raise ValueError(f"params[{other!r}] and params[{name!r}] are {what}: each "
                                 f"parameter must have memory of its own, or a step would update "
                                 f"the shared entries twice")


def _checked_grads(grads, params):
    """grads as a dict of arrays in the parameters' dtypes, checked against the params' keys
    and shapes."""
    if not isinstance(grads, Mapping):
        raise TypeError("grads must be a dict name -> ndarray with the params' keys, "
                        f"got {type(grads).__name__}")
    if grads.keys() != params.keys():
        missing = [k for k in params if k not in grads]
        extra = [k for k in grads if k not in params]
        raise ValueError(f"grads must have the params' keys: missing {missing}, unexpected {extra}")
    checked = {}
    for name, p in params.items():
        g = grads[name]
        # Arrays already in the parameter's dtype (rnn.grads) skip the conversion: a step of a
        # small model is a few microseconds, and these checks were a good part of them.
        converted = type(g) is not np.ndarray or g.dtype != p.dtype
        if converted:
            g = np.asarray(g)
            if g.dtype.kind not in "biuf":
                raise TypeError(f"grads[{name!r}] has dtype {g.dtype}; expected real numbers")
        if g.shape != p.shape:
            raise ValueError(f"grads[{name!r}] has shape {g.shape}, expected {p.shape} "
                             "(the parameter's shape)")
        checked[name] = g.astype(p.dtype, copy=False) if converted else g
    return checked


def _writable_grads(grads):
    """The gradient arrays of a dict or a sequence, checked to be writable float arrays."""
    if isinstance(grads, Mapping):
        items = list(grads.items())
    elif isinstance(grads, (list, tuple)):
        items = list(enumerate(grads))
    else:
        raise TypeError("grads must be a dict name -> ndarray or a list of arrays, "
                        f"got {type(grads).__name__}")
    arrays = []
    for key, g in items:
        if not isinstance(g, np.ndarray) or g.dtype.kind != "f":
            raise TypeError(f"grads[{key!r}] must be a float NumPy array (clipped in place)")
        if not g.flags.writeable:
            raise ValueError(f"grads[{key!r}] is read-only; clipping works in place")
        arrays.append(g)
    return arrays
