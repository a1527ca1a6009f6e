"""The stateful vanilla RNN of seed 004 ("Introduction to Recurrent Neural Networks", lamassu),
on elman's kernels, with training by truncated backpropagation through time.

The seed's class keeps its hidden state between calls, so each ``forward_prop(x)`` advances the
network by one time step:

    hidden_state = tanh(hidden_state . W_hh + x . W_xh + Bh)     row batches times the weights
    output       = W_hy . hidden_state + By                       (the seed's code, see below)

Attribute names and layouts are the seed's: ``x[B, D]`` and ``hidden_state[B, H]`` are row
batches multiplied on the right by ``W_xh[D, H]`` and ``W_hh[H, H]`` (the transposes of elman's
``W_xh[H, D]``, ``W_hh[H, H]``, which the kernels receive as views). Built with no arguments
after ``np.random.seed(0)``, the network draws the seed's weights in the seed's order and
reproduces its printed outputs (the seed's own NumPy code does too; checked in the tests).

The seed's output line multiplies ``W_hy`` on the LEFT of ``hidden_state[B, H]``, which mixes
the examples of a batch and only fits when batch, hidden and output sizes are equal (3 in the
seed). ``output_layout="seed"`` (the default) keeps that formula, to reproduce the seed;
``output_layout="rows"`` uses ``output = hidden_state . W_hy + By`` with ``W_hy[H, O]``, the
same row convention as the hidden update, and is what training uses.

Training follows the seed's "Training" section: the loss is summed over the time steps of a
sequence, gradients come from backpropagation through time (``elman.rnn_backward``), and they
are clipped by value ("capping the maximum value for the gradient") before an SGD step. Each
call of ``train_bptt`` continues from the stored state and leaves the state at the end of its
chunk, so consecutive chunks of a long sequence are trained by truncated BPTT.
"""

from __future__ import annotations


import numpy as np

from ._checks import positive_int
from . import functional as F

__all__ = ["VanillaRecurrentNetwork"]

HIDDEN_ACTIVATIONS = ("tanh", "sigmoid", "relu", "identity")
OUTPUT_LAYOUTS = ("seed", "rows")


class VanillaRecurrentNetwork:
    """Seed 004's stateful RNN: ``forward_prop(x)`` advances the hidden state one step per call.

    Arguments (defaults: the seed's network):
        input_size, hidden_size, output_size, batch_size   D, H, O, B (all 3 in the seed)
        output_layout       "seed": output = W_hy . hidden_state + By, the seed's formula (needs
                            B == H == O); "rows": output = hidden_state . W_hy + By, W_hy[H, O]
        hidden_activation   "tanh" (the seed's), "sigmoid", "relu" or "identity"
        seed                None: draw from NumPy's global generator, like the seed's code after
                            its np.random.seed(0); an integer s: the same draws as after
                            np.random.seed(s), without touching the global generator
        dtype               float64 (default, as the seed) or float32

    Attributes, as in the seed: hidden_state[B, H], W_hh[H, H], W_xh[D, H], W_hy (see
    output_layout), Bh[H], By[O]; drawn in the seed's order: W_hh, W_xh, W_hy, Bh from
    randn and By from rand (uniform in [0, 1)).
    """

    def __init__(self, input_size=3, hidden_size=3, output_size=3, batch_size=3, *,
                 output_layout="seed", hidden_activation="tanh", seed=None, dtype=np.float64):
        D, H, O, B = (positive_int(value, name) for name, value in (
            ("input_size", input_size), ("hidden_size", hidden_size),
            ("output_size", output_size), ("batch_size", batch_size)))
        if output_layout not in OUTPUT_LAYOUTS:
            raise ValueError(f"output_layout must be 'seed' or 'rows', got {output_layout!r}")
        if output_layout == "seed" and not B == H == O:
            raise ValueError(f"output_layout='seed' computes W_hy . hidden_state[B, H] + By, "
                             f"which needs batch_size == hidden_size == output_size; got "
                             f"B={B}, H={H}, O={O}. Use output_layout='rows'")
        if hidden_activation not in HIDDEN_ACTIVATIONS:
            raise ValueError(f"hidden_activation must be one of {HIDDEN_ACTIVATIONS}, "
                             f"got {hidden_activation!r}")
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise ValueError(f"dtype must be float32 or float64, got {dtype}")
        self.output_layout = output_layout
        self.hidden_activation = hidden_activation
        random = np.random if seed is None else np.random.RandomState(seed)

        # The seed's draws, in its order.
        self.hidden_state = np.zeros((B, H), dtype=dtype)
        self.W_hh = random.randn(H, H).astype(dtype)
        self.W_xh = random.randn(D, H).astype(dtype)
        self.W_hy = random.randn(H, O).astype(dtype)  # (3, 3) either way in the seed
        self.Bh = random.randn(H).astype(dtype)
        self.By = random.rand(O).astype(dtype)

    # -- sizes and state ---------------------------------------------------------------------

    @property
    def input_size(self):
        return self.W_xh.shape[0]

    @property
    def hidden_size(self):
        return self.W_hh.shape[0]

    @property
    def output_size(self):
        return self.By.shape[0]

    def reset_state(self, batch_size=None):
        """Zero the hidden state (optionally for a new batch size; the seed layout fixes it)."""
        B = self.hidden_state.shape[0] if batch_size is None else positive_int(batch_size,
                                                                                "batch_size")
        if self.output_layout == "seed" and B != self.hidden_size:
            raise ValueError(f"output_layout='seed' needs batch_size == hidden_size = "
                             f"{self.hidden_size}, got {B}")
        self.hidden_state = np.zeros((B, self.hidden_size), dtype=self.hidden_state.dtype)

    # -- forward -----------------------------------------------------------------------------

    def _check_inputs(self, name, x, time_axis):
        x = np.asarray(x)
        B, D = self.hidden_state.shape[0], self.input_size
        expected = ((None,) if time_axis else ()) + (B, D)
        if x.ndim != len(expected) or x.shape[-2:] != (B, D):
            shown = ("(T, " if time_axis else "(") + f"{B}, {D})"
            raise ValueError(f"{name} has shape {x.shape}; expected {shown}: the hidden state "
                             f"holds {B} sequences of input size {D}")
        return x

    def _outputs(self, hs):
        """Outputs of hidden states hs[..., B, H] with the network's output formula."""
        if self.output_layout == "rows":
            return F.output_forward(hs, self.W_hy.T, self.By, "identity")  # [..., B, O]
        # The seed's W_hy . h: with h's rows as columns this is an output layer applied to h.T,
        # whose bias would fall on the wrong axis; By is added along the last axis as the seed.
        no_bias = np.zeros(self.W_hy.shape[0], dtype=self.By.dtype)
        left_product = F.output_forward(np.swapaxes(hs, -1, -2), self.W_hy, no_bias, "identity")
        return np.swapaxes(left_product, -1, -2) + self.By

    def forward_prop(self, x):
        """One time step: update hidden_state from x[B, D] and return the output.

        Returns the seed's ``W_hy . hidden_state + By`` ([3, 3] in the seed) with
        output_layout="seed", or ``hidden_state . W_hy + By`` ([B, O]) with "rows".
        """
        x = self._check_inputs("x", x, time_axis=False)
        self.hidden_state = F.cell_forward(x, self.hidden_state, self.W_xh.T, self.W_hh.T,
                                           self.Bh, self.hidden_activation)
        return self._outputs(self.hidden_state)

    def forward_sequence(self, inputs):
        """T steps at once (one kernel call): inputs[T, B, D] -> outputs[T, ...].

        Same results and same final hidden_state as T calls of forward_prop.
        """
        inputs = self._check_inputs("inputs", inputs, time_axis=True)
        hs = F.rnn_forward(inputs, self.hidden_state, self.W_xh.T, self.W_hh.T, self.Bh,
                           self.hidden_activation)
        if len(hs):
            self.hidden_state = hs[-1].copy()
        return self._outputs(hs)

    # -- training ----------------------------------------------------------------------------

    def train_bptt(self, inputs, targets, learning_rate=0.01, clip_value=5.0):
        """One SGD step of truncated BPTT on a chunk of sequences, from the current state.

        Arguments:
            inputs[T, B, D], targets[T, B, O]   a chunk of B parallel sequences
            learning_rate                       SGD step size
            clip_value                          every gradient entry is clipped to
                                                [-clip_value, clip_value] (None: no clipping)
        The loss is the mean squared error over all T*B*O outputs. Its gradients flow back
        through the T steps of the chunk (not into the state the chunk started from); W_hh,
        W_xh, W_hy, Bh and By are updated in place, and hidden_state moves to the chunk's end.
        Returns the loss before the update (a float). Needs output_layout="rows".
        """
        if self.output_layout != "rows":
            raise ValueError("train_bptt needs output_layout='rows': the seed's output "
                             "W_hy . hidden_state mixes the sequences of a batch")
        if clip_value is not None and not clip_value > 0:
            raise ValueError(f"clip_value must be positive or None, got {clip_value!r}")
        inputs = self._check_inputs("inputs", inputs, time_axis=True)
        targets = np.asarray(targets)
        expected = inputs.shape[:2] + (self.output_size,)
        if targets.shape != expected:
            raise ValueError(f"targets has shape {targets.shape}; expected {expected}")
        if inputs.shape[0] == 0:
            raise ValueError("inputs has no time step; train_bptt needs T >= 1")

        loss, grads, h_last = self._loss_and_gradients(inputs, targets)
        for name, grad in grads.items():
            if clip_value is not None:
                np.clip(grad, -clip_value, clip_value, out=grad)  # clipping by value
            param = getattr(self, name)
            param -= learning_rate * grad
        self.hidden_state = h_last
        return loss

    def _loss_and_gradients(self, inputs, targets):
        """Mean squared error, its gradients (seed names and layouts) and the final state."""
        h0 = self.hidden_state
        f = self.hidden_activation
        hs = F.rnn_forward(inputs, h0, self.W_xh.T, self.W_hh.T, self.Bh, f)  # [T, B, H]
        ys = F.output_forward(hs, self.W_hy.T, self.By, "identity")  # [T, B, O]
        error = ys - targets
        loss = float(np.mean(error ** 2))
        dys = (2 / error.size) * error  # d mean(error^2) / d ys
        dhs, dW_hy, dBy = F.output_backward(dys, hs, ys, self.W_hy.T, "identity")
        _, _, dW_xh, dW_hh, dBh = F.rnn_backward(dhs, inputs, h0, hs, self.W_xh.T,
                                                  self.W_hh.T, f)
        grads = {"W_hh": dW_hh.T, "W_xh": dW_xh.T, "W_hy": dW_hy.T, "Bh": dBh, "By": dBy}
        return loss, grads, hs[-1].copy()

    def __repr__(self):
        return (f"VanillaRecurrentNetwork(input_size={self.input_size}, hidden_size="
                f"{self.hidden_size}, output_size={self.output_size}, batch_size="
                f"{self.hidden_state.shape[0]}, output_layout={self.output_layout!r})")
