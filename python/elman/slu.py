"""The Elman network for spoken language understanding (slot filling), on elman's kernels.

This is the model of the Theano tutorial "Recurrent Neural Networks with Word Embeddings"
(deeplearning.net/tutorial/rnnslu.html, class ``RNNSLU``; Mesnil et al., 2013): every word of a
sentence gets a label (e.g. BIO slot tags) from an Elman network that reads, at each position,
the concatenated embeddings of a window of ``cs`` words centred on it:

    x_t = concat(emb[w_{t - cs//2}], ..., emb[w_{t + cs//2}])   window padded with index -1
    h_t = sigmoid(x_t wx + h_{t-1} wh + bh)                      h_{-1} = h0, learnt
    s_t = softmax(h_t w + b)                                     one distribution per word

Parameters have the tutorial's names, layouts and initialisation: ``emb[ne + 1, de]`` (the last
row is the padding word, index -1), ``wx[de * cs, nh]``, ``wh[nh, nh]``, ``w[nh, nc]`` drawn
from ``0.2 * uniform(-1, 1)`` and ``bh[nh]``, ``b[nc]``, ``h0[nh]`` zeros. Weights multiply row
vectors on the right; elman's kernels take the transposes (``W_xh = wx.T`` and so on), so the
recurrence runs as ``elman.rnn_forward(..., activation="sigmoid")`` and training as
``softmax_cross_entropy``, ``output_backward`` and ``rnn_backward``, one call each per sentence.
"""

from __future__ import annotations

import numbers

import numpy as np

from ._checks import positive_int
from . import functional as F

__all__ = ["contextwin", "ElmanSLU"]


def contextwin(l, win):  # noqa: E741 (the tutorial's argument name)
    """The tutorial's context windows: for each word of l, the win words centred on it.

    Arguments:
        l     list (or 1-D array) of word indices of one sentence
        win   odd window size >= 1
    Returns:
        a list of len(l) lists of win indices; positions outside the sentence are -1
        (the padding word, the last row of the embeddings)

    Example: contextwin([0, 1, 2, 3], 3) == [[-1, 0, 1], [0, 1, 2], [1, 2, 3], [2, 3, -1]]
    """
    if isinstance(win, bool) or not isinstance(win, numbers.Integral) or win < 1 or win % 2 != 1:
        raise ValueError(f"win must be an odd integer >= 1, got {win!r}")
    l = list(l)  # noqa: E741
    half = win // 2
    lpadded = half * [-1] + l + half * [-1]
    return [lpadded[i:(i + win)] for i in range(len(l))]


class ElmanSLU:
    """The tutorial's Elman slot-filling network (``RNNSLU``).

    Arguments:
        nh     dimension of the hidden layer
        nc     number of classes (labels)
        ne     number of word embeddings in the vocabulary (word indices are 0 .. ne-1)
        de     dimension of the word embeddings
        cs     word window context size (odd)
        seed   None: draw the initial parameters from NumPy's global generator, as the tutorial
               does; an integer s: draw them as the tutorial would after ``numpy.random.seed(s)``
        dtype  float64 (default) or float32, the tutorial's theano.config.floatX

    Attributes: ``emb``, ``wx``, ``wh``, ``w``, ``bh``, ``b``, ``h0`` (ndarrays, updated in place
    by ``train``) and ``params``, the tutorial's list of them in its order.
    """

    def __init__(self, nh, nc, ne, de, cs, seed=None, dtype=np.float64):
        self.nh, self.nc, self.ne, self.de = (positive_int(v, n) for n, v in
                                              (("nh", nh), ("nc", nc), ("ne", ne), ("de", de)))
        contextwin([], cs)  # validates cs
        self.cs = int(cs)
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise ValueError(f"dtype must be float32 or float64, got {dtype}")
        # RandomState(s) gives the stream of numpy.random.seed(s); None uses the global one.
        random = np.random if seed is None else np.random.RandomState(seed)

        def uniform(*shape):
            return (0.2 * random.uniform(-1.0, 1.0, shape)).astype(dtype)

        # The tutorial's draws, in its order.
        self.emb = uniform(self.ne + 1, self.de)  # the extra last row pads windows (index -1)
        self.wx = uniform(self.de * self.cs, self.nh)
        self.wh = uniform(self.nh, self.nh)
        self.w = uniform(self.nh, self.nc)
        self.bh = np.zeros(self.nh, dtype=dtype)
        self.b = np.zeros(self.nc, dtype=dtype)
        self.h0 = np.zeros(self.nh, dtype=dtype)

    @property
    def params(self):
        """[emb, wx, wh, w, bh, b, h0], the tutorial's bundle (the live arrays)."""
        return [self.emb, self.wx, self.wh, self.w, self.bh, self.b, self.h0]

    # -- inputs ------------------------------------------------------------------------------

    def _windows(self, sentence):
        """Context windows idxs[n, cs] of a sentence (1-D word indices) or of windows given as-is."""
        words = np.asarray(sentence)
        if words.dtype.kind not in "iu" and words.size:
            raise TypeError(f"sentence must hold integer word indices, got dtype {words.dtype}")
        if words.ndim == 1:
            self._check_words(words, "sentence")
            return np.array(contextwin(words.tolist(), self.cs), dtype=np.int64).reshape(-1, self.cs)
        if words.ndim == 2 and words.shape[1] == self.cs:
            self._check_words(words[words != -1], "context window")
            return words.astype(np.int64)
        raise ValueError(f"sentence has shape {words.shape}; expected word indices (n,) or "
                         f"context windows (n, {self.cs}) as contextwin gives")

    def _check_words(self, words, what):
        if words.size and (words.min() < 0 or words.max() >= self.ne):
            bad = words[(words < 0) | (words >= self.ne)][0]
            raise ValueError(f"{what} has word index {bad}; expected 0 <= index < ne = {self.ne}")

    # -- forward -----------------------------------------------------------------------------

    def _forward(self, idxs):
        """x[n, 1, de*cs], hidden states hs[n, 1, nh] and logits[n, 1, nc] for windows idxs[n, cs]."""
        n = idxs.shape[0]
        x = self.emb[idxs].reshape(n, 1, self.de * self.cs)  # one sentence = a batch of one
        hs = F.rnn_forward(x, self.h0[None, :], self.wx.T, self.wh.T, self.bh, "sigmoid")
        logits = F.output_forward(hs, self.w.T, self.b, "identity")
        return x, hs, logits

    def predict_proba(self, sentence):
        """p_y_given_x_sentence[n, nc]: the softmax for every word of the sentence."""
        idxs = self._windows(sentence)
        _, hs, _ = self._forward(idxs)
        return F.output_forward(hs, self.w.T, self.b, "softmax")[:, 0, :]

    def classify(self, sentence):
        """The most likely label of every word: int64 array [n].

        sentence: word indices (n,), or the context windows (n, cs) that the tutorial passes
        (``numpy.asarray(contextwin(sentence, cs))``).
        """
        idxs = self._windows(sentence)
        _, _, logits = self._forward(idxs)
        return logits[:, 0, :].argmax(axis=1)  # argmax of the softmax = argmax of the logits

    # -- training ----------------------------------------------------------------------------

    def gradients(self, sentence, labels):
        """The sentence's mean negative log-likelihood and its gradient for every parameter.

        sentence: word indices (n,) (or context windows (n, cs)); labels: classes (n,) in [0, nc).
        Returns ``(loss, grads)``: a float and a dict with the parameters' names ("emb", "wx",
        "wh", "w", "bh", "b", "h0") and shapes. Nothing is updated.
        """
        idxs = self._windows(sentence)
        targets = self._labels(labels, idxs.shape[0])
        n = idxs.shape[0]
        x, hs, logits = self._forward(idxs)
        loss, dlogits = F.softmax_cross_entropy(logits, targets[:, None], reduction="mean")
        dhs, dW_hy, db = F.output_backward(dlogits, hs, logits, self.w.T, "identity")
        dx, dh0, dW_xh, dW_hh, dbh = F.rnn_backward(dhs, x, self.h0[None, :], hs,
                                                    self.wx.T, self.wh.T, "sigmoid")
        demb = np.zeros_like(self.emb)
        np.add.at(demb, idxs, dx.reshape(n, self.cs, self.de))  # index -1 is the padding row
        return loss, {"emb": demb, "wx": dW_xh.T, "wh": dW_hh.T, "w": dW_hy.T,
                      "bh": dbh, "b": db, "h0": dh0[0]}

    def train(self, sentence, labels, learning_rate):
        """One SGD step on the sentence's mean negative log-likelihood, then normalize().

        As the tutorial's ``sentence_train`` followed by ``normalize``: every parameter,
        embeddings and h0 included, moves by ``-learning_rate * gradient``, then every embedding
        row is divided by its Euclidean norm. Returns the loss before the step (a float).

        sentence: word indices (n,) (or context windows (n, cs)); labels: classes (n,) in [0, nc).
        """
        loss, grads = self.gradients(sentence, labels)
        for name, grad in grads.items():
            param = getattr(self, name)
            param -= learning_rate * grad  # in place: the arrays in params stay the same objects
        self.normalize()
        return loss

    def _labels(self, labels, n):
        """labels as an integer array [n] in [0, nc), or a ValueError saying what is wrong."""
        if n == 0:
            raise ValueError("sentence is empty; training needs at least one word")
        targets = np.asarray(labels)
        if targets.shape != (n,) or targets.dtype.kind not in "iu":
            raise ValueError(f"labels has shape {targets.shape} and dtype {targets.dtype}; "
                             f"expected {n} integer labels, one per word")
        if targets.min() < 0 or targets.max() >= self.nc:
            raise ValueError(f"labels must lie in [0, nc) = [0, {self.nc}), "
                             f"got values from {targets.min()} to {targets.max()}")
        return targets

    def normalize(self):
        """Divide every embedding row by its Euclidean norm, in place (the tutorial's normalize)."""
        self.emb /= np.sqrt((self.emb ** 2).sum(axis=1))[:, None]

    def __repr__(self):
        return (f"ElmanSLU(nh={self.nh}, nc={self.nc}, ne={self.ne}, de={self.de}, "
                f"cs={self.cs})")
