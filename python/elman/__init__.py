"""elman: the vanilla (Elman) recurrent network on a CPU, fused C++ kernels, NumPy in and out.

    h_t = f(W_xh x_t + W_hh h_{t-1} + b_h)        y_t = g(W_hy h_t + b_y)

The functional core here is computed by the kernels in ``elman._core``; ``elman.reference`` holds
the same functions in plain NumPy, the spec the kernels are tested against. ``elman.RNN`` is the
model (layers, directions, lengths, an output layer); the submodules ``coursera``, ``cells``,
``slu``, ``stateful`` and ``keras`` speak the seed tutorials' own terms. Nothing here imports
torch or onnx: ``elman.torch``, ``from_torch``/``to_torch`` and ``from_onnx`` load them on use.
"""

# reference (plain NumPy, the spec) is imported too, so that elman.reference.rnn_forward works
# after a bare `import elman`, as the README presents it; it only needs NumPy and costs ~1 ms.
from . import cells, coursera, keras, losses, optim, reference, slu, stateful
from ._core import __version__
from .config import cached_memory, free_cached_memory, get_num_threads, set_num_threads, show_config
from .functional import (
    cell_backward,
    cell_forward,
    output_backward,
    output_forward,
    rnn_backward,
    rnn_forward,
    softmax_cross_entropy,
)
from .corpus import Vocabulary, default_corpus
from .generate import sample
from .interop_torch import from_torch, to_torch
from .keras import from_keras_weights, to_keras_weights
from .model import RNN
from .onnx_io import from_onnx
from .optim import SGD, Adagrad, Adam, AdamW, RMSprop, clip_grad_norm, clip_grad_value
from .train import Trainer, train_tbptt

__all__ = [
    "__version__",
    "cell_forward",
    "cell_backward",
    "rnn_forward",
    "rnn_backward",
    "output_forward",
    "output_backward",
    "softmax_cross_entropy",
    "RNN",
    "from_torch",
    "to_torch",
    "from_onnx",
    "from_keras_weights",
    "to_keras_weights",
    "SGD",
    "Adagrad",
    "RMSprop",
    "Adam",
    "AdamW",
    "clip_grad_norm",
    "clip_grad_value",
    "Trainer",
    "train_tbptt",
    "sample",
    "default_corpus",
    "Vocabulary",
    "get_num_threads",
    "set_num_threads",
    "show_config",
    "cached_memory",
    "free_cached_memory",
    "cells",
    "coursera",
    "keras",
    "losses",
    "optim",
    "reference",
    "slu",
    "stateful",
]
