"""Training loops: one optimisation step, truncated backpropagation through time, a char-LM.

    trainer = Trainer(rnn, elman.optim.Adam(rnn.params, lr=2e-3), clip_norm=5.0)
    loss, h_n = trainer.step(x, targets)                        # one batch
    losses, h_n = train_tbptt(trainer, x_long, targets_long, seq_len=64)   # one long sequence

Truncated BPTT cuts a long sequence into chunks of ``seq_len`` steps and takes one optimizer step
per chunk. The state is carried: the final state ``h_n`` of one chunk is the initial state ``h0``
of the next, so the forward pass over the chunks computes exactly what one forward pass over the
whole sequence computes (with the parameters of each moment). The gradient is cut at the
boundary: each backward pass stops at its chunk's ``h0``.
"""

from __future__ import annotations

import math

import numpy as np

from ._checks import positive_int
from .losses import cross_entropy
from .optim import _hyperparameter, clip_grad_norm, clip_grad_value

__all__ = ["Trainer", "train_tbptt", "one_hot", "CharBatches", "train_char_lm"]


class Trainer:
    """One optimisation step: forward, loss, backward, gradient clipping, optimizer update.

    rnn         an elman.RNN
    optimizer   built on ``rnn.params`` (e.g. ``elman.optim.Adam(rnn.params)``)
    loss        ``loss(out, targets[, mask=mask]) -> (float, d_out)``, default
                :func:`elman.losses.cross_entropy` (softmax fused with an identity output layer)
    clip_value  clamp every gradient entry to [-clip_value, clip_value] (None: no clamping)
    clip_norm   then scale all gradients so their global L2 norm is at most clip_norm (None: no)

    After a step, ``grad_norm`` holds the global gradient norm before clipping (when clip_norm
    is set; None otherwise).
    """

    def __init__(self, rnn, optimizer, loss=cross_entropy, *, clip_value=None, clip_norm=None):
        params = getattr(optimizer, "params", None)
        if not isinstance(params, dict) or set(params) != set(rnn.params) or any(
                params[k] is not rnn.params[k] for k in params):
            raise ValueError("optimizer must be built on this model's parameters: "
                             "e.g. elman.optim.Adam(rnn.params)")
        if not callable(loss):
            raise TypeError("loss must be callable as loss(out, targets) -> (loss, d_out), "
                            f"got {loss!r}")
        self.rnn = rnn
        self.optimizer = optimizer
        self.loss = loss
        # checked now, not at the first step
        self.clip_value = None if clip_value is None else _hyperparameter("clip_value", clip_value)
        self.clip_norm = None if clip_norm is None else _hyperparameter("clip_norm", clip_norm)
        self.grad_norm = None

    def step(self, x, targets, *, h0=None, mask=None, lengths=None):
        """Train on one batch; returns ``(loss, h_n)``.

        x, h0, lengths: as ``rnn.forward``; targets (and mask) as the loss takes them for the
        model's ``out``. A non-finite loss raises FloatingPointError before anything is updated,
        so the model keeps its last good parameters.
        """
        out, h_n = self.rnn.forward(x, h0, lengths)
        if mask is None:
            loss, d_out = self.loss(out, targets)
        else:
            loss, d_out = self.loss(out, targets, mask=mask)
        if not math.isfinite(loss):
            raise FloatingPointError(f"the loss is {loss}: training diverged (try a smaller "
                                     "learning rate or gradient clipping)")
        self.rnn.backward(d_out, input_grad=False)  # x is data: no dx product
        grads = self.rnn.grads
        if self.clip_value is not None:
            clip_grad_value(grads, self.clip_value)
        if self.clip_norm is not None:
            self.grad_norm = clip_grad_norm(grads, self.clip_norm)
        self.optimizer.step(grads)
        return loss, h_n


def train_tbptt(trainer, x, targets, seq_len, *, h0=None, mask=None):
    """Truncated BPTT over long sequences: one optimizer step per chunk of seq_len time steps.

    x[N, B, D] (``[B, N, D]`` for a batch_first model), targets and mask with the same leading
    (time and batch) axes; h0[L, B, H] the state before step 0 (None: the model's default). The
    last chunk may be shorter. Chunk k starts from the final state of chunk k-1; its gradient
    stops there. Returns ``(losses, h_n)``: the loss of each chunk and the state after the last
    step, ready to continue with the next part of the sequences.
    """
    rnn = trainer.rnn
    _check_unidirectional(rnn)
    seq_len = positive_int(seq_len, "seq_len")
    time_axis = 1 if getattr(rnn, "batch_first", False) else 0
    x = np.asarray(x)
    targets = np.asarray(targets)
    if x.ndim != 3:
        raise ValueError(f"x must have 3 dimensions, got shape {x.shape}")
    n_steps = x.shape[time_axis]
    for name, a in (("targets", targets), ("mask", mask)):
        if a is not None and (np.ndim(a) <= time_axis or np.shape(a)[time_axis] != n_steps):
            raise ValueError(f"{name} has shape {np.shape(a)}; its axis {time_axis} must have "
                             f"x's {n_steps} time steps")
    losses = []
    h = h0
    for start in range(0, n_steps, seq_len):
        chunk = _time_slice(start, start + seq_len, time_axis)
        chunk_mask = None if mask is None else np.asarray(mask)[chunk]
        loss, h = trainer.step(x[chunk], targets[chunk], h0=h, mask=chunk_mask)
        losses.append(loss)
    return losses, h


def _time_slice(start, stop, time_axis):
    return (slice(None),) * time_axis + (slice(start, stop),)


def _check_unidirectional(rnn):
    if getattr(rnn, "bidirectional", False):
        raise ValueError("truncated BPTT needs a unidirectional RNN: a bidirectional one reads "
                         "each chunk backwards from its end, so no state can carry across chunks")


def one_hot(indices, num_classes, dtype=np.float32, out=None):
    """The one-hot encoding ``[..., num_classes]`` of integer indices in [0, num_classes).

    out: an optional array of that shape and dtype to fill (no allocation in a training loop).
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)):
        raise TypeError(f"num_classes must be an int, got {type(num_classes).__name__}")
    indices = np.asarray(indices)
    if indices.dtype.kind not in "iu":
        raise TypeError(f"indices must be integers, got dtype {indices.dtype}")
    if indices.size and (indices.min() < 0 or indices.max() >= num_classes):
        raise ValueError(f"indices must lie in [0, {num_classes}), got values in "
                         f"[{indices.min()}, {indices.max()}]")
    shape = indices.shape + (num_classes,)
    if out is None:
        out = np.zeros(shape, dtype=dtype)
    elif out.shape != shape:
        raise ValueError(f"out has shape {out.shape}, expected {shape}")
    else:
        out.fill(0)
    np.put_along_axis(out, indices[..., None], 1, axis=-1)
    return out


class CharBatches:
    """Batches for training a language model on one long sequence of token indices.

    The sequence is cut into ``batch_size`` equal streams read side by side, as in PyTorch's
    word-language-model example: stream b holds tokens ``[b*n, (b+1)*n]``. Each call of ``next``
    returns the next ``seq_len`` tokens of every stream, ``inputs[T, B]``, with ``targets[T, B]``,
    the tokens one step later, and ``restart``: True for the first batch of each pass over the
    data, where a carried state must be reset. The tail that does not fill a whole batch is left
    out of that pass; each new pass starts one token further on (cycling through seq_len
    offsets), so every chunk boundary moves and no token is always skipped.
    """

    def __init__(self, tokens, batch_size, seq_len):
        tokens = np.asarray(tokens)
        if tokens.ndim != 1 or tokens.dtype.kind not in "iu":
            raise ValueError(f"tokens must be a 1-d integer array, got {tokens.dtype} "
                             f"of shape {tokens.shape}")
        batch_size = positive_int(batch_size, "batch_size")
        seq_len = positive_int(seq_len, "seq_len")
        needed = batch_size * seq_len + seq_len  # room for one batch at every offset, + targets
        if len(tokens) < needed:
            raise ValueError(f"{len(tokens)} tokens are too few for batch_size={batch_size} and "
                             f"seq_len={seq_len}: at least {needed} are needed")
        self.tokens = tokens
        self.batch_size = batch_size
        self.seq_len = seq_len
        self.passes = 0  # completed passes over the data
        self._start_pass()

    def _start_pass(self):
        offset = self.passes % self.seq_len
        usable = len(self.tokens) - 1 - offset  # the last token is only ever a target
        n = usable // self.batch_size  # tokens per stream
        n -= n % self.seq_len  # whole chunks only
        inputs = self.tokens[offset:offset + n * self.batch_size]
        targets = self.tokens[offset + 1:offset + 1 + n * self.batch_size]
        self._inputs = inputs.reshape(self.batch_size, n).T  # [n, B]: column b is stream b
        self._targets = targets.reshape(self.batch_size, n).T
        self._position = 0

    def __iter__(self):
        return self

    def __next__(self):
        if self._position == len(self._inputs):
            self.passes += 1
            self._start_pass()
        restart = self._position == 0
        chunk = slice(self._position, self._position + self.seq_len)
        self._position += self.seq_len
        return self._inputs[chunk], self._targets[chunk], restart


def train_char_lm(trainer, tokens, vocab_size, *, steps, seq_len, batch_size):
    """Train a character-level language model with truncated BPTT; yields each step's loss.

    trainer: a :class:`Trainer` of an RNN with ``input_size == output_size == vocab_size`` and the
    cross-entropy loss. tokens: the text as indices. Each step reads the next seq_len characters
    of batch_size streams (:class:`CharBatches`), one-hot encoded into a buffer allocated once,
    and continues from the state the previous step ended in (reset at each pass over the data).
    A generator, so the caller can report progress, sample, or stop at any step.
    """
    rnn = trainer.rnn
    _check_unidirectional(rnn)
    if rnn.input_size != vocab_size or rnn.output_size != vocab_size:
        raise ValueError("a character model needs input_size = output_size = vocab_size = "
                         f"{vocab_size}, got {rnn.input_size} and {rnn.output_size}")
    if getattr(rnn, "batch_first", False):
        raise ValueError("train_char_lm feeds time-major batches: "
                         "build the RNN with batch_first=False")
    batches = CharBatches(tokens, batch_size, seq_len)
    x = np.zeros((seq_len, batch_size, vocab_size), dtype=rnn.dtype)  # reused every step
    h = None
    for _ in range(steps):
        inputs, targets, restart = next(batches)
        if restart:
            h = None  # the model's initial state (zeros, or the learned h0)
        one_hot(inputs, vocab_size, out=x)
        loss, h = trainer.step(x, targets, h0=h)
        yield loss
