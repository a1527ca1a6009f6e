"""elman: the vanilla (Elman) recurrent network on a CPU, fused C++ kernels, NumPy in and out.

    h_t = f(W_xh x_t + W_hh h_{t-1} + b_h)        y_t = g(W_hy h_t + b_y)

The functional core here is computed by the kernels in ``elman._core``; ``elman.reference`` holds
the same functions in plain NumPy, the spec the kernels are tested against.
"""

from ._core import __version__, get_num_threads, set_num_threads
from .functional import (
    cell_backward,
    cell_forward,
    output_backward,
    output_forward,
    rnn_backward,
    rnn_forward,
    softmax_cross_entropy,
)

__all__ = [
    "__version__",
    "cell_forward",
    "cell_backward",
    "rnn_forward",
    "rnn_backward",
    "output_forward",
    "output_backward",
    "softmax_cross_entropy",
    "get_num_threads",
    "set_num_threads",
]
