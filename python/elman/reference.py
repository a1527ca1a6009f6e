"""Plain NumPy reference of elman's functional core: the spec the C++ kernels must equal.

Every function here has the same name, signature, defaults and results as the
compiled one in ``elman`` (see API.md, "Functional core"). The code is written
to be read, one equation per line; it is not fast.

Shape legend (row-major, time-major):

    T   time steps           x[T, B, D], hs[T, B, H], ys[T, B, O]
    B   batch (sequences)    x_t[B, D], h_prev[B, H], h_next[B, H]
    D   input features       W_xh[H, D]
    H   hidden units         W_hh[H, H], b_h[H]
    O   output units         W_hy[O, H], b_y[O]
    C   classes              logits[T, B, C], targets[T, B], mask[T, B]

Weights use PyTorch's layout, so with batch rows the textbook formulas

    h_t = f(W_xh x_t + W_hh h_{t-1} + b_h)        y_t = g(W_hy h_t + b_y)

become ``h_t = f(x_t @ W_xh.T + h_prev @ W_hh.T + b_h)`` and
``y_t = g(h_t @ W_hy.T + b_y)``.

Arithmetic happens in the dtype NumPy gives for the inputs: float32 in gives
float32 out, float64 in gives float64 out. Backward passes compute the
activation derivative from the stored outputs (h or y), not from the
pre-activations.
"""

import math

import numpy as np

__all__ = [
    "HIDDEN_ACTIVATIONS",
    "HIDDEN_DERIVATIVES",
    "OUTPUT_ACTIVATIONS",
    "OUTPUT_GRADIENTS",
    "sigmoid",
    "softmax",
    "cell_forward",
    "cell_backward",
    "rnn_forward",
    "rnn_backward",
    "output_forward",
    "output_backward",
    "softmax_cross_entropy",
]


# --------------------------------------------------------------------------- #
# Activations
# --------------------------------------------------------------------------- #

def sigmoid(z):
    """Logistic function 1 / (1 + exp(-z)), elementwise, same shape and dtype as z."""
    with np.errstate(over="ignore"):  # exp(-z) = inf for z << 0 gives exactly 0
        return 1 / (1 + np.exp(-z))


def softmax(z):
    """Softmax over the last axis of z[..., K], numerically stable; same shape and dtype."""
    e = np.exp(z - z.max(axis=-1, keepdims=True))  # [..., K], largest entry is exp(0) = 1
    return e / e.sum(axis=-1, keepdims=True)  # [..., K], rows sum to 1


# Hidden activations f(z), and f' written in terms of the output h = f(z).
HIDDEN_ACTIVATIONS = {
    "tanh": np.tanh,
    "sigmoid": sigmoid,
    "relu": lambda z: np.maximum(z, 0),
    "identity": lambda z: z,
}
HIDDEN_DERIVATIVES = {
    "tanh": lambda h: 1 - h * h,  # d tanh = 1 - tanh^2
    "sigmoid": lambda h: h * (1 - h),  # d sigmoid = s (1 - s)
    "relu": lambda h: (h > 0).astype(h.dtype),  # 1 where active, else 0
    "identity": lambda h: np.ones_like(h),
}

# Output activations g(z), and the backward step dz = dL/dz from (dys, ys = g(z)).
OUTPUT_ACTIVATIONS = {
    "identity": lambda z: z,
    "softmax": softmax,
    "sigmoid": sigmoid,
}
OUTPUT_GRADIENTS = {
    "identity": lambda dys, ys: dys,
    "softmax": lambda dys, ys: ys * (dys - (dys * ys).sum(axis=-1, keepdims=True)),
    "sigmoid": lambda dys, ys: dys * ys * (1 - ys),
}


def _lookup(table, name, kind):
    """table[name], or a ValueError that lists the valid names."""
    if name not in table:
        choices = ", ".join(repr(k) for k in table)
        raise ValueError(f"unknown {kind} activation {name!r}; choose one of {choices}")
    return table[name]


# --------------------------------------------------------------------------- #
# One step
# --------------------------------------------------------------------------- #

def cell_forward(x_t, h_prev, W_xh, W_hh, b_h, activation="tanh"):
    """One RNN step.

    Inputs:
        x_t[B, D]      input at this step
        h_prev[B, H]   previous hidden state
        W_xh[H, D]     input-to-hidden weights
        W_hh[H, H]     hidden-to-hidden weights
        b_h[H]         hidden bias
        activation     hidden activation f, a key of HIDDEN_ACTIVATIONS
    Returns:
        h_next[B, H] = f(x_t @ W_xh.T + h_prev @ W_hh.T + b_h)
    """
    f = _lookup(HIDDEN_ACTIVATIONS, activation, "hidden")
    z = x_t @ W_xh.T + h_prev @ W_hh.T + b_h  # [B, H] pre-activation
    return f(z)  # [B, H]


def cell_backward(dh_next, x_t, h_prev, h_next, W_xh, W_hh, activation="tanh"):
    """Backward of cell_forward.

    Inputs:
        dh_next[B, H]  dL/dh_next
        x_t[B, D]      input of the forward step
        h_prev[B, H]   previous state of the forward step
        h_next[B, H]   output of the forward step (f' is computed from it)
        W_xh[H, D]     input-to-hidden weights
        W_hh[H, H]     hidden-to-hidden weights
        activation     hidden activation f, a key of HIDDEN_ACTIVATIONS
    Returns:
        dx_t[B, D], dh_prev[B, H], dW_xh[H, D], dW_hh[H, H], db_h[H]
    """
    df = _lookup(HIDDEN_DERIVATIVES, activation, "hidden")
    dz = dh_next * df(h_next)  # [B, H] dL/d(pre-activation)
    dx_t = dz @ W_xh  # [B, D]
    dh_prev = dz @ W_hh  # [B, H]
    dW_xh = dz.T @ x_t  # [H, D]
    dW_hh = dz.T @ h_prev  # [H, H]
    db_h = dz.sum(axis=0)  # [H]
    return dx_t, dh_prev, dW_xh, dW_hh, db_h


# --------------------------------------------------------------------------- #
# A whole sequence
# --------------------------------------------------------------------------- #

def rnn_forward(x, h0, W_xh, W_hh, b_h, activation="tanh"):
    """Run the RNN over a sequence.

    Inputs:
        x[T, B, D]     inputs, time-major
        h0[B, H]       initial hidden state
        W_xh[H, D]     input-to-hidden weights
        W_hh[H, H]     hidden-to-hidden weights
        b_h[H]         hidden bias
        activation     hidden activation f, a key of HIDDEN_ACTIVATIONS
    Returns:
        hs[T, B, H]    hs[t] is the state after step t; hs[-1] is the final state
    """
    f = _lookup(HIDDEN_ACTIVATIONS, activation, "hidden")
    T, B, _ = x.shape
    H = W_hh.shape[0]
    hs = np.empty((T, B, H), dtype=np.result_type(x, h0, W_xh, W_hh, b_h))  # [T, B, H]
    h = h0  # [B, H] state carried along time
    for t in range(T):
        h = f(x[t] @ W_xh.T + h @ W_hh.T + b_h)  # [B, H] same step as cell_forward
        hs[t] = h
    return hs


def rnn_backward(dhs, x, h0, hs, W_xh, W_hh, activation="tanh"):
    """Backpropagation through time for rnn_forward.

    Inputs:
        dhs[T, B, H]   dL/dhs[t] from everything that reads hs[t] (outputs; the
                       gradient w.r.t. the final state is part of dhs[-1])
        x[T, B, D]     inputs of the forward pass
        h0[B, H]       initial state of the forward pass
        hs[T, B, H]    states returned by rnn_forward (f' is computed from them)
        W_xh[H, D]     input-to-hidden weights
        W_hh[H, H]     hidden-to-hidden weights
        activation     hidden activation f, a key of HIDDEN_ACTIVATIONS
    Returns:
        dx[T, B, D], dh0[B, H], dW_xh[H, D], dW_hh[H, H], db_h[H]
    """
    df = _lookup(HIDDEN_DERIVATIVES, activation, "hidden")
    T, B, D = x.shape
    H = W_hh.shape[0]
    dtype = np.result_type(dhs, x, h0, hs, W_xh, W_hh)
    dx = np.zeros((T, B, D), dtype=dtype)  # [T, B, D]
    dW_xh = np.zeros((H, D), dtype=dtype)  # [H, D]
    dW_hh = np.zeros((H, H), dtype=dtype)  # [H, H]
    db_h = np.zeros(H, dtype=dtype)  # [H]
    dh = np.zeros((B, H), dtype=dtype)  # [B, H] dL/dhs[t] coming back from step t+1
    for t in reversed(range(T)):
        h_prev = hs[t - 1] if t > 0 else h0  # [B, H] input state of step t
        dz = (dhs[t] + dh) * df(hs[t])  # [B, H] dL/d(pre-activation of step t)
        dx[t] = dz @ W_xh  # [B, D]
        dW_xh += dz.T @ x[t]  # [H, D]
        dW_hh += dz.T @ h_prev  # [H, H]
        db_h += dz.sum(axis=0)  # [H]
        dh = dz @ W_hh  # [B, H] carried to step t-1
    dh0 = dh  # [B, H]
    return dx, dh0, dW_xh, dW_hh, db_h


# --------------------------------------------------------------------------- #
# Output layer
# --------------------------------------------------------------------------- #

def output_forward(hs, W_hy, b_y, activation="identity"):
    """Output layer applied at every step.

    Inputs:
        hs[T, B, H]    hidden states (any leading dims [..., H] work)
        W_hy[O, H]     hidden-to-output weights
        b_y[O]         output bias
        activation     output activation g, a key of OUTPUT_ACTIVATIONS
                       ("softmax" is over the last axis)
    Returns:
        ys[T, B, O] = g(hs @ W_hy.T + b_y)
    """
    g = _lookup(OUTPUT_ACTIVATIONS, activation, "output")
    z = hs @ W_hy.T + b_y  # [T, B, O] pre-activation
    return g(z)  # [T, B, O]


def output_backward(dys, hs, ys, W_hy, activation="identity"):
    """Backward of output_forward.

    Inputs:
        dys[T, B, O]   dL/dys
        hs[T, B, H]    hidden states of the forward pass (any leading dims [..., H])
        ys[T, B, O]    outputs of the forward pass (g' is computed from them)
        W_hy[O, H]     hidden-to-output weights
        activation     output activation g, a key of OUTPUT_ACTIVATIONS
    Returns:
        dhs[T, B, H], dW_hy[O, H], db_y[O]
    """
    dg = _lookup(OUTPUT_GRADIENTS, activation, "output")
    O, H = W_hy.shape
    N = math.prod(hs.shape[:-1])  # number of rows, T*B
    dz = dg(dys, ys)  # [T, B, O] dL/d(pre-activation)
    dhs = dz @ W_hy  # [T, B, H]
    dW_hy = dz.reshape(N, O).T @ hs.reshape(N, H)  # [O, H] summed over T and B
    db_y = dz.reshape(N, O).sum(axis=0)  # [O] summed over T and B
    return dhs, dW_hy, db_y


# --------------------------------------------------------------------------- #
# Loss
# --------------------------------------------------------------------------- #

def softmax_cross_entropy(logits, targets, mask=None, reduction="mean"):
    """Cross-entropy of softmax(logits) against integer class targets, and its gradient.

    Inputs:
        logits[T, B, C]   unnormalised scores
        targets[T, B]     integer class in [0, C); ignored where mask == 0 (may be e.g. -1)
        mask[T, B]        optional, bool or float weights; None means all ones
        reduction         "sum": sum(mask * nll)
                          "mean": sum(mask * nll) / sum(mask) (/ T*B when mask is None);
                          a zero divisor gives loss 0.0 and zero dlogits
    Returns:
        loss              Python float
        dlogits[T, B, C]  dL/dlogits, logits' dtype
    """
    if reduction not in ("sum", "mean"):
        raise ValueError(f"unknown reduction {reduction!r}; choose one of 'sum', 'mean'")
    targets = np.asarray(targets)
    if mask is None:
        w = np.ones(targets.shape, dtype=logits.dtype)  # [T, B] every position counts
    else:
        w = np.asarray(mask).astype(logits.dtype)  # [T, B] weights in logits' dtype
    divisor = w.sum() if reduction == "mean" else 1  # scalar
    if divisor == 0:
        return 0.0, np.zeros_like(logits)
    safe = np.where(w != 0, targets, 0)  # [T, B] ignored targets replaced by class 0
    m = logits.max(axis=-1, keepdims=True)  # [T, B, 1] for stability
    lse = m[..., 0] + np.log(np.exp(logits - m).sum(axis=-1))  # [T, B] logsumexp
    picked = np.take_along_axis(logits, safe[..., None], axis=-1)[..., 0]  # [T, B] logits[target]
    nll = np.where(w != 0, lse - picked, 0)  # [T, B] -log softmax(logits)[target]; ignored: 0, even if NaN
    loss = (w * nll).sum() / divisor  # scalar
    onehot = np.zeros_like(logits)  # [T, B, C]
    np.put_along_axis(onehot, safe[..., None], 1, axis=-1)  # 1 at each target class
    dlogits = (softmax(logits) - onehot) * w[..., None] / divisor  # [T, B, C]
    dlogits = np.where(w[..., None] != 0, dlogits, 0).astype(logits.dtype)  # ignored rows: exactly 0
    return float(loss), dlogits
