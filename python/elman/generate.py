"""Generation from a trained sequence model: sample one token at a time and feed it back.

    indices = sample(rnn, start=vocab.encode("The "), length=200, temperature=0.8, seed=0)
    text = vocab.decode(indices)

The model is a token-level one (min-char-rnn): inputs are one-hot vectors over V tokens and the
output layer gives V scores, either logits (``output_activation="identity"``, the usual choice
when training with :func:`elman.losses.cross_entropy`) or probabilities (``"softmax"``).
"""

from __future__ import annotations

import math

import numpy as np

from ._seeds import random_generator

__all__ = ["sample", "iter_sample", "next_token_distribution"]


def sample(rnn, start, length, temperature=1.0, h0=None, seed=None):
    """Generate ``length`` token indices, each sampled and fed back as the next input.

    rnn          an elman.RNN with ``output_size == input_size == V`` (unidirectional) and
                 finite weights (NaN or infinity in rnn.params raises ValueError)
    start        what the model reads before the first sample: a token index (int), a
                 sequence of indices, or input vectors ``[D]`` / ``[T0, D]`` (e.g. one-hot rows)
    length       number of tokens to generate (>= 0); the start is not included in the result
    temperature  the logits are divided by it before the softmax: 1 samples the model's
                 distribution, below 1 is more conservative, above 1 more varied; 0 is greedy
                 (always the most likely token, ties to the lowest index); negative, NaN or
                 infinite raises ValueError
    h0           the state before ``start``: [L, H] or [L, 1, H] (default: the model's, i.e.
                 the learned h0 or zeros)
    seed         seed of the random generator (anything numpy.random.default_rng takes, or a
                 Generator): the same seed gives the same tokens
    Returns int64[length]. :func:`iter_sample` gives the same tokens one at a time.

    Every step, of the start and of the generation, is one step of ``rnn.stream`` (the model's
    step allocates nothing; its forward cache is left alone, so sampling between a forward and
    its backward is safe). Python works per step here, which generation cannot avoid: each
    step's input is the previous step's choice. An output that is not finite (NaN, infinity)
    raises ValueError rather than giving tokens drawn from nothing.
    """
    length = _non_negative_int(length, "length")
    if length > MAX_SAMPLE_LENGTH:  # NumPy would raise OverflowError (or try to allocate it)
        raise ValueError(f"length must be at most {MAX_SAMPLE_LENGTH} (an int64 array's most "
                         f"elements), got {length}; iter_sample yields tokens without a limit")
    tokens = iter_sample(rnn, start, length, temperature=temperature, h0=h0, seed=seed)
    return np.fromiter(tokens, dtype=np.int64, count=length)


def iter_sample(rnn, start, length, temperature=1.0, h0=None, seed=None):
    """:func:`sample` as an iterator: yields each token index (an int) as soon as it is drawn,
    e.g. to print text as it is generated or to stop early. The arguments are checked when this
    is called, before the first token; the same arguments give the same tokens as sample."""
    V = _check_generator_model(rnn)
    length = _non_negative_int(length, "length")
    temperature = _checked_temperature(temperature)
    rng = random_generator(seed)
    prime = _start_inputs(start, V, rnn.dtype)  # [T0, V]
    stream = rnn.stream(1, h0=h0)  # checks h0's shape
    return _tokens(rnn, stream, prime, V, length, temperature, rng)


def _tokens(rnn, stream, prime, V, length, temperature, rng):
    """The generator behind iter_sample, once its arguments are checked."""
    if length == 0:
        return
    for x_t in prime:
        scores = stream.step(x_t)  # [V], valid until the next step
    x_t = np.zeros(V, dtype=rnn.dtype)  # the one-hot input, rewritten each step
    for i in range(length):
        _check_finite_scores(scores, rnn.output_activation, i)
        token = _draw(next_token_distribution(scores, rnn.output_activation, temperature), rng)
        yield token
        if i + 1 < length:
            x_t[token] = 1
            scores = stream.step(x_t)
            x_t[token] = 0


def next_token_distribution(scores, output_activation, temperature):
    """Probabilities float64[V] of the next token from one output ``scores[V]``.

    scores are logits ("identity") or probabilities ("softmax"); temperature > 0 gives
    ``softmax(log p / temperature)``; temperature 0 gives all mass on the (first) argmax.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if output_activation not in ("identity", "softmax"):
        raise ValueError(f"sampling needs an 'identity' (logits) or 'softmax' output layer, "
                         f"got {output_activation!r}")
    if not (temperature >= 0 and np.isfinite(temperature)):
        raise ValueError(f"temperature must be finite and >= 0, got {temperature!r}")
    if output_activation == "softmax" and not (scores >= 0).all():
        raise ValueError("softmax outputs must be probabilities >= 0")
    if output_activation == "softmax":
        with np.errstate(divide="ignore"):  # a probability of 0 is a logit of -inf: never drawn
            logits = np.log(scores)
    else:
        logits = scores
    if temperature == 0:
        probs = np.zeros_like(logits)
        probs[np.argmax(logits)] = 1
        return probs
    z = logits / temperature
    z = np.exp(z - z.max())  # the largest is exp(0) = 1, so the sum is at least 1
    return z / z.sum()


def _draw(probs, rng):
    """One index drawn from probs by inverse transform sampling (one uniform number per draw)."""
    cumulative = np.cumsum(probs)
    index = int(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right"))
    return min(index, len(probs) - 1)  # rounding can put u * total at the very end


def _check_generator_model(rnn):
    """V, the token count, after checking the model can feed its outputs back as inputs and
    that its weights are finite (NaN weights give NaN scores: no distribution to draw from)."""
    if getattr(rnn, "bidirectional", False):
        raise ValueError("sample needs a unidirectional RNN: a bidirectional one reads the whole "
                         "sequence before its first output")
    V = rnn.input_size
    if rnn.output_size != V:
        raise ValueError(f"sample needs an output layer over the input tokens: output_size "
                         f"{rnn.output_size}, expected input_size = {V}")
    if rnn.output_activation not in ("identity", "softmax"):
        raise ValueError(f"sample needs logits or probabilities: output_activation must be "
                         f"'identity' or 'softmax', got {rnn.output_activation!r}")
    for name, value in rnn.params.items():
        if not np.all(np.isfinite(value)):
            raise ValueError(f"rnn.params[{name!r}] holds NaN or infinity: a model with "
                             f"non-finite weights has no distribution to sample from")
    return V


def _check_finite_scores(scores, output_activation, step):
    """A ValueError unless the model's output at this step can be a distribution (finite logits;
    probabilities may be 0, whose log is -inf, but not NaN)."""
    bad = np.isnan(scores) if output_activation == "softmax" else ~np.isfinite(scores)
    if bad.any():
        raise ValueError(f"the model's output before generated token {step} holds "
                         f"{scores[np.argmax(bad)]} at index {int(np.argmax(bad))}: "
                         f"nothing to sample from (did the weights overflow?)")


MAX_SAMPLE_LENGTH = np.iinfo(np.intp).max // np.dtype(np.int64).itemsize


def _non_negative_int(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{name} must be an int >= 0, got {value!r}")
    return int(value)


def _checked_temperature(temperature):
    number = (int, float, np.integer, np.floating)
    if isinstance(temperature, bool) or not isinstance(temperature, number):
        raise TypeError(f"temperature must be a number, got {type(temperature).__name__}")
    temperature = float(temperature)
    if not (math.isfinite(temperature) and temperature >= 0):
        raise ValueError(f"temperature must be a finite number >= 0 (0: greedy), got {temperature}")
    return temperature


def _start_inputs(start, V, dtype):
    """The start as input rows [T0, V] of the model's dtype, T0 >= 1."""
    if isinstance(start, (int, np.integer)) and not isinstance(start, bool):
        start = [start]
    a = np.asarray(start)
    if a.size == 0:
        raise ValueError("start is empty: give at least one token index or input vector")
    if a.dtype.kind in "iu":
        if a.ndim != 1:
            raise ValueError("start must be a token index or a 1-d sequence of indices, "
                             f"got shape {a.shape}")
        if a.min() < 0 or a.max() >= V:
            raise ValueError(f"start indices must lie in [0, {V}), got values in "
                             f"[{a.min()}, {a.max()}]")
        rows = np.zeros((a.size, V), dtype=dtype)
        rows[np.arange(a.size), a] = 1
        return rows
    if a.dtype.kind != "f":
        raise TypeError("start must be token indices (integers) or input vectors (floats), "
                        f"got dtype {a.dtype}")
    if a.ndim == 1:
        a = a[None]
    if a.ndim != 2 or a.shape[1] != V:
        raise ValueError(f"start vectors must have shape (D,) or (T0, D) with D = {V}, "
                         f"got {np.shape(start)}")
    return a.astype(dtype)
