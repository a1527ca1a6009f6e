"""The Deep Learning Specialization's RNN notebooks, computed by elman's kernels.

Course 5, week 1: "Building your Recurrent Neural Network - Step by Step" and the "Dinosaur
Island" character-level language model. Same function names, arguments, return values, caches
and gradient dictionaries as the notebooks, so notebook code runs unchanged on top of this module:

    rnn_cell_forward(xt, a_prev, parameters) -> (a_next, yt_pred, cache)
    rnn_forward(x, a0, parameters)            -> (a, y_pred, caches)
    rnn_cell_backward(da_next, cache)         -> {"dxt", "da_prev", "dWax", "dWaa", "dba"}
    rnn_backward(da, caches)                  -> {"dx", "da0", "dWax", "dWaa", "dba"}
    clip(gradients, maxValue)                 -> gradients (clipped in place)
    sample(parameters, char_to_ix, seed)      -> list of sampled character indices

The notebooks use column vectors: a batch of m examples is a matrix whose columns are examples,

    a<t>      = tanh(Wax x<t> + Waa a<t-1> + ba)        x<t>[n_x, m], a<t>[n_a, m]
    y_pred<t> = softmax(Wya a<t> + by)                   softmax over axis 0, y_pred<t>[n_y, m]

with ``x[n_x, m, T_x]``, ``a[n_a, m, T_x]``, ``Wax[n_a, n_x]``, ``Waa[n_a, n_a]``,
``Wya[n_y, n_a]``, ``ba[n_a, 1]``, ``by[n_y, 1]``. elman's kernels use row batches, time-major:
``x[T, B, D]``, ``h[B, H]``, ``W_xh[H, D]``. The notebook's weight matrices already have elman's
layout (Wax is W_xh, Waa is W_hh, Wya is W_hy), so only the data is transposed:
``x.transpose(2, 1, 0)`` is the time-major ``x[T_x, m, n_x]`` and ``a_prev.T`` the row batch.
Nothing here re-implements the arithmetic; every product, tanh and softmax is a kernel call.

Returned arrays are transposed views of the kernels' row-major results (values are what the
notebook's code gives; only the memory order differs, which NumPy code does not notice).

Parameters dictionaries: the step-by-step notebook calls the hidden bias ``"ba"`` and the
Dinosaur Island notebook calls it ``"b"``; every function here accepts either name (not both).
"""

from __future__ import annotations

import numbers

import numpy as np

from . import functional as F

__all__ = [
    "rnn_cell_forward",
    "rnn_forward",
    "rnn_cell_backward",
    "rnn_backward",
    "clip",
    "sample",
]


# --------------------------------------------------------------------------- #
# Reading the notebook's parameters and checking shapes
# --------------------------------------------------------------------------- #

def _matrix(parameters, key):
    """parameters[key] as a 2-D array, or an error naming the missing or misshapen key."""
    if key not in parameters:
        raise KeyError(f"parameters has no {key!r}; expected the notebook's keys "
                       f"'Wax', 'Waa', 'Wya', 'ba' (or 'b') and 'by'")
    value = np.asarray(parameters[key])
    if value.ndim != 2:
        raise ValueError(f"parameters[{key!r}] has shape {value.shape}; expected a 2-D matrix")
    return value


def _bias_key(parameters):
    """The hidden bias's key: "ba" (step-by-step notebook) or "b" (Dinosaur Island)."""
    has_ba, has_b = "ba" in parameters, "b" in parameters
    if has_ba and has_b:
        raise ValueError("parameters has both 'ba' and 'b'; give the hidden bias under one name")
    if not (has_ba or has_b):
        raise KeyError("parameters has no hidden bias; expected 'ba' (or 'b', as in the "
                       "Dinosaur Island notebook) of shape (n_a, 1)")
    return "ba" if has_ba else "b"


def _column(parameters, key, n):
    """parameters[key], a column (n, 1) as in the notebook (or a flat (n,)), as a flat (n,) view."""
    value = np.asarray(parameters[key])
    if value.shape not in ((n, 1), (n,)):
        raise ValueError(f"parameters[{key!r}] has shape {value.shape}; expected ({n}, 1)")
    return value.reshape(n)


def _weights(parameters):
    """(Wax[n_a, n_x], Waa[n_a, n_a], Wya[n_y, n_a], ba[n_a], by[n_y]), shapes checked together."""
    Wax = _matrix(parameters, "Wax")
    Waa = _matrix(parameters, "Waa")
    Wya = _matrix(parameters, "Wya")
    n_a = Waa.shape[0]
    if Waa.shape != (n_a, n_a):
        raise ValueError(f"parameters['Waa'] has shape {Waa.shape}; expected a square (n_a, n_a)")
    if Wax.shape[0] != n_a:
        raise ValueError(f"parameters['Wax'] has shape {Wax.shape}; expected ({n_a}, n_x) "
                         f"to match Waa {Waa.shape}")
    if Wya.shape[1] != n_a:
        raise ValueError(f"parameters['Wya'] has shape {Wya.shape}; expected (n_y, {n_a}) "
                         f"to match Waa {Waa.shape}")
    ba = _column(parameters, _bias_key(parameters), n_a)
    by = _column(parameters, "by", Wya.shape[0])
    return Wax, Waa, Wya, ba, by


def _check_shape(name, array, expected):
    """Raise ValueError unless array.shape matches expected (None entries match any size)."""
    ok = array.ndim == len(expected) and all(
        e is None or s == e for s, e in zip(array.shape, expected))
    if not ok:
        shown = "(" + ", ".join("?" if e is None else str(e) for e in expected) + ")"
        raise ValueError(f"{name} has shape {array.shape}; expected {shown}")


# --------------------------------------------------------------------------- #
# Forward
# --------------------------------------------------------------------------- #

def rnn_cell_forward(xt, a_prev, parameters):
    """One step of the notebook's RNN cell (Figure 2), hidden state and prediction.

    Arguments:
        xt[n_x, m]       input at step t, one column per example
        a_prev[n_a, m]   hidden state at step t-1
        parameters       dict with Wax[n_a, n_x], Waa[n_a, n_a], Wya[n_y, n_a], ba[n_a, 1]
                         (or "b"), by[n_y, 1]
    Returns:
        a_next[n_a, m]   tanh(Wax xt + Waa a_prev + ba)
        yt_pred[n_y, m]  softmax(Wya a_next + by), softmax over axis 0 (each column sums to 1)
        cache            (a_next, a_prev, xt, parameters), as the notebook stores it
    """
    Wax, Waa, Wya, ba, by = _weights(parameters)
    xt, a_prev = np.asarray(xt), np.asarray(a_prev)
    _check_shape("xt", xt, (Wax.shape[1], None))
    _check_shape("a_prev", a_prev, (Waa.shape[0], xt.shape[1]))
    h_next = F.cell_forward(xt.T, a_prev.T, Wax, Waa, ba, "tanh")  # [m, n_a] rows
    y_rows = F.output_forward(h_next, Wya, by, "softmax")  # [m, n_y], softmax per example
    a_next, yt_pred = h_next.T, y_rows.T  # back to columns
    cache = (a_next, a_prev, xt, parameters)
    return a_next, yt_pred, cache


def rnn_forward(x, a0, parameters):
    """The notebook's forward pass over T_x steps (Figure 3), one kernel call for all steps.

    Arguments:
        x[n_x, m, T_x]   inputs for every step
        a0[n_a, m]       initial hidden state
        parameters       as in rnn_cell_forward
    Returns:
        a[n_a, m, T_x]       hidden states, a[:, :, t] = a<t+1> in the notebook's 1-based text
        y_pred[n_y, m, T_x]  predictions, softmax over axis 0
        caches               (list of T_x caches, x); caches[0][t] = (a<t>, a<t-1>, x<t>, parameters)
    """
    Wax, Waa, Wya, ba, by = _weights(parameters)
    x, a0 = np.asarray(x), np.asarray(a0)
    _check_shape("x", x, (Wax.shape[1], None, None))
    _check_shape("a0", a0, (Waa.shape[0], x.shape[1]))
    hs = F.rnn_forward(x.transpose(2, 1, 0), a0.T, Wax, Waa, ba, "tanh")  # [T_x, m, n_a]
    ys = F.output_forward(hs, Wya, by, "softmax")  # [T_x, m, n_y]
    a, y_pred = hs.transpose(2, 1, 0), ys.transpose(2, 1, 0)  # [n_a, m, T_x], [n_y, m, T_x]
    # The notebook's backward pass reads one cache per step; they hold views, not copies.
    T_x = x.shape[2]
    states_before = [a0] + [a[:, :, t] for t in range(T_x - 1)]
    caches = [(a[:, :, t], states_before[t], x[:, :, t], parameters) for t in range(T_x)]
    return a, y_pred, (caches, x)


# --------------------------------------------------------------------------- #
# Backward
# --------------------------------------------------------------------------- #

def rnn_cell_backward(da_next, cache):
    """Gradients of one RNN cell's hidden state (Figure 6); the output layer is not included.

    Arguments:
        da_next[n_a, m]  dJ/da_next, the gradient reaching a_next
        cache            (a_next, a_prev, xt, parameters) from rnn_cell_forward
    Returns a dict:
        "dxt"[n_x, m], "da_prev"[n_a, m], "dWax"[n_a, n_x], "dWaa"[n_a, n_a], "dba"[n_a, 1]
    """
    a_next, a_prev, xt, parameters = cache
    Wax, Waa, _, _, _ = _weights(parameters)
    da_next = np.asarray(da_next)
    a_next, a_prev, xt = np.asarray(a_next), np.asarray(a_prev), np.asarray(xt)
    _check_shape("da_next", da_next, a_next.shape)
    dx_t, dh_prev, dW_xh, dW_hh, db_h = F.cell_backward(
        da_next.T, xt.T, a_prev.T, a_next.T, Wax, Waa, "tanh")
    return {
        "dxt": dx_t.T,  # [n_x, m]
        "da_prev": dh_prev.T,  # [n_a, m]
        "dWax": dW_xh,  # [n_a, n_x], already the notebook's layout
        "dWaa": dW_hh,  # [n_a, n_a]
        "dba": db_h.reshape(-1, 1),  # [n_a, 1], summed over the m examples
    }


def rnn_backward(da, caches):
    """Backpropagation through time over the whole sequence, one kernel call.

    Arguments:
        da[n_a, m, T_x]  upstream gradient of every hidden state: da[:, :, t] is dJ/da<t> coming
                         from outside the recurrence (the output layer). As in the notebook, the
                         gradient flowing back from step t+1 is added to it here; it maps one to
                         one onto the kernel's dhs[t] (dhs = da.transpose(2, 1, 0)).
        caches           (list of caches, x) from rnn_forward
    Returns a dict:
        "dx"[n_x, m, T_x], "da0"[n_a, m], "dWax"[n_a, n_x], "dWaa"[n_a, n_a], "dba"[n_a, 1]
    """
    step_caches, x = caches
    if len(step_caches) == 0:
        raise ValueError("caches holds no time step; rnn_backward needs at least one")
    parameters = step_caches[0][3]
    Wax, Waa, _, _, _ = _weights(parameters)
    x, da = np.asarray(x), np.asarray(da)
    a0 = np.asarray(step_caches[0][1])
    _check_shape("da", da, (Waa.shape[0], x.shape[1], x.shape[2]))
    # hs[t] = a<t> as rows; the caches hold the states, and np.stack gathers them in C.
    hs = np.stack([np.asarray(cache[0]).T for cache in step_caches])  # [T_x, m, n_a]
    _check_shape("the states in caches", hs, (x.shape[2], x.shape[1], Waa.shape[0]))
    dx, dh0, dW_xh, dW_hh, db_h = F.rnn_backward(
        da.transpose(2, 1, 0), x.transpose(2, 1, 0), a0.T, hs, Wax, Waa, "tanh")
    return {
        "dx": dx.transpose(2, 1, 0),  # [n_x, m, T_x]
        "da0": dh0.T,  # [n_a, m]
        "dWax": dW_xh,  # [n_a, n_x]
        "dWaa": dW_hh,  # [n_a, n_a]
        "dba": db_h.reshape(-1, 1),  # [n_a, 1]
    }


# --------------------------------------------------------------------------- #
# Dinosaur Island: gradient clipping and sampling
# --------------------------------------------------------------------------- #

def clip(gradients, maxValue):  # noqa: N803 (the notebook's argument name)
    """Clip every gradient array to [-maxValue, maxValue], IN PLACE, as the notebook does.

    The notebook's ``clip`` calls ``np.clip(gradient, -maxValue, maxValue, out=gradient)`` on
    each array and returns a dict holding those same arrays; so does this one. This is the one
    function in elman that modifies its argument, because the notebook documents it that way and
    its ``optimize`` relies on it. Unlike the notebook, which clips exactly "dWaa", "dWax",
    "dWya", "db", "dby" and returns only those, every entry of ``gradients`` is clipped and
    returned (so it also works on the "dba" dictionaries of rnn_backward).

    Arguments:
        gradients   dict name -> writable float ndarray
        maxValue    positive number; values above it become maxValue, below -maxValue become
                    -maxValue, NaN stays NaN
    Returns:
        a new dict with the same keys and the same (now clipped) arrays
    """
    if not isinstance(maxValue, numbers.Real) or not maxValue > 0:
        raise ValueError(f"maxValue must be a positive number, got {maxValue!r}")
    for name, gradient in gradients.items():
        if not isinstance(gradient, np.ndarray) or gradient.dtype.kind != "f":
            raise TypeError(f"gradients[{name!r}] must be a float NumPy array to clip in place, "
                            f"got {type(gradient).__name__}"
                            + (f" of dtype {gradient.dtype}" if isinstance(gradient, np.ndarray)
                               else ""))
        if not gradient.flags.writeable:
            raise ValueError(f"gradients[{name!r}] is read-only; clip works in place")
    for gradient in gradients.values():
        np.clip(gradient, -maxValue, maxValue, out=gradient)
    return dict(gradients)


def _probabilities(y):
    """A softmax row y[1, K] as the float64 vector np.random.choice's p= accepts.

    float64 rows are passed as they are, as in the notebook; float32 rows are widened and
    renormalised, since their rounding can miss choice's sum-to-one tolerance (about 1e-8).
    """
    p = y.ravel()
    if p.dtype != np.float64:
        p = p.astype(np.float64)
        p /= p.sum()
    return p


def sample(parameters, char_to_ix, seed):
    """Sample a sequence of character indices from the model, the notebook's algorithm.

    Starts from x<1> = 0 and a<0> = 0. At each step: one RNN step and softmax (elman kernels),
    then ``np.random.seed(counter + seed)`` and ``np.random.choice(vocab_size, p=y)``; the
    sampled index becomes the next one-hot input. ``seed`` is incremented at every step, as in
    the notebook (so step k is drawn with NumPy seed ``seed + 2k``). Stops after sampling the
    newline character or after 50 characters; in the latter case a newline index is appended.

    Like the notebook, this reseeds NumPy's global random generator (``np.random.seed``).

    Arguments:
        parameters   dict with Wax[n_a, vocab_size], Waa[n_a, n_a], Wya[vocab_size, n_a],
                     b[n_a, 1] (or "ba") and by[vocab_size, 1]
        char_to_ix   dict character -> index; must contain "\\n"
        seed         integer
    Returns:
        indices      list of Python ints (the sampled characters' indices)
    """
    Wax, Waa, Wya, b, by = _weights(parameters)
    vocab_size, n_a = by.shape[0], Waa.shape[1]
    if Wax.shape[1] != vocab_size:
        raise ValueError(f"parameters['Wax'] has shape {Wax.shape}; sampling feeds one-hot "
                         f"characters back as input, so expected ({n_a}, {vocab_size})")
    if "\n" not in char_to_ix:
        raise KeyError("char_to_ix has no newline character '\\n', which ends a sample")
    newline = char_to_ix["\n"]
    dtype = np.result_type(Wax, Waa, Wya, b, by, np.float32)

    x = np.zeros((1, vocab_size), dtype=dtype)  # one-hot input as a row, x<1> = 0
    a_prev = np.zeros((1, n_a), dtype=dtype)  # a<0> = 0
    indices = []
    idx = -1
    counter = 0
    while idx != newline and counter != 50:
        a = F.cell_forward(x, a_prev, Wax, Waa, b, "tanh")  # [1, n_a]
        y = F.output_forward(a, Wya, by, "softmax")  # [1, vocab_size]
        np.random.seed(counter + seed)  # the notebook's seeding, for its expected output
        idx = int(np.random.choice(vocab_size, p=_probabilities(y)))
        indices.append(idx)
        x = np.zeros((1, vocab_size), dtype=dtype)
        x[0, idx] = 1
        a_prev = a
        seed += 1
        counter += 1
    if counter == 50:
        indices.append(newline)
    return indices
