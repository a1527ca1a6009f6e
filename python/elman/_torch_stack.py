"""elman.stack's forward written in torch operations, for the backward of ``elman.torch.RNN`` when
autograd is asked for a differentiable gradient (``create_graph=True``: gradient penalties,
Hessian-vector products, ``torch.autograd.gradgradcheck``).

The kernels' backward returns plain arrays, constants to autograd. So under create_graph the
backward recomputes the forward from the saved inputs with these operations and differentiates
that, which records the graph of the gradient itself; the values are the kernels' up to rounding.
One torch operation per step: slow next to the kernels, which is why it only runs when a graph
of the gradient is asked for.

Semantics are elman.stack's (the same as torch.nn.RNN's): torch's two biases add, layer l > 0
reads layer l-1's output ([forward, reverse] concatenated), and with ``lengths`` a sequence stops
at its own end (outputs 0 past it, ``h_n`` its state at its last step, the reverse direction
starting from its end).
"""

from __future__ import annotations

import torch

__all__ = ["stack_forward"]

ACTIVATIONS = {"tanh": torch.tanh, "relu": torch.relu}


def stack_forward(x, hx, flat_weights, lengths, num_layers, bidirectional, nonlinearity, bias):
    """(output[T, B, dirs*H], h_n[L*dirs, B, H]) of a stack on time-major x[T, B, D], as torch
    operations; hx[L*dirs, B, H] or None (zeros); flat_weights in torch's order (per layer and
    direction weight_ih, weight_hh[, bias_ih, bias_hh]); lengths[B] integers or None."""
    T, B = x.shape[0], x.shape[1]
    dirs = 2 if bidirectional else 1
    per_direction = 4 if bias else 2
    H = flat_weights[1].shape[0]
    f = ACTIVATIONS[nonlinearity]
    valid = None  # [T, B, 1] steps before each sequence's end
    if lengths is not None:
        valid = (torch.arange(T)[:, None] < torch.as_tensor(lengths)[None, :])[..., None]
    layer_input = x
    final_states = []
    for layer in range(num_layers):
        outputs = []
        for direction in range(dirs):
            k = layer * dirs + direction
            weights = flat_weights[k * per_direction:(k + 1) * per_direction]
            h = x.new_zeros((B, H)) if hx is None else hx[k]
            states = [None] * T
            # The reverse direction walks back from T-1: with lengths, its state stays the
            # initial one until each sequence's own last step, i.e. time reversed within each.
            for t in (range(T) if direction == 0 else reversed(range(T))):
                pre = layer_input[t] @ weights[0].T + h @ weights[1].T
                if bias:
                    pre = pre + weights[2] + weights[3]
                new = f(pre)
                if valid is None:
                    h = states[t] = new
                else:
                    h = torch.where(valid[t], new, h)
                    states[t] = torch.where(valid[t], new, torch.zeros_like(new))
            final_states.append(h)
            outputs.append(torch.stack(states) if T else x.new_zeros((0, B, H)))
        layer_input = outputs[0] if dirs == 1 else torch.cat(outputs, dim=-1)
    return layer_input, torch.stack(final_states)
