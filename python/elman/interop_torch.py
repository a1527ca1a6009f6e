"""Conversion between ``torch.nn.RNN`` and ``elman.RNN``: identical outputs and gradients.

torch is optional: it is imported inside these functions only, so ``import elman`` never imports
it. Parameters are copied, never shared, in both directions.

Name mapping (k is the layer, ``_reverse`` the reverse direction, as in torch):

    torch                                   elman
    weight_ih_l{k}[_reverse]    [H, D_in]   W_xh_l{k}[_reverse]
    weight_hh_l{k}[_reverse]    [H, H]      W_hh_l{k}[_reverse]
    bias_ih_l{k} + bias_hh_l{k} [H]         b_h_l{k}[_reverse]   (one bias: the two only ever add)
"""

from __future__ import annotations

import numpy as np

from .model import RNN

__all__ = ["from_torch", "to_torch"]

_TORCH_ACTIVATIONS = ("tanh", "relu")


def _import_torch():
    try:
        import torch
    except ImportError as e:
        raise ImportError("this needs PyTorch: pip install torch==2.13.0 (or elman[torch])") from e
    return torch


def _dtype_names(torch):
    return {torch.float32: "float32", torch.float64: "float64"}


def from_torch(module):
    """An elman.RNN with the configuration and (copied) parameters of a torch.nn.RNN.

    The result computes what the module computes in eval mode (elman has no dropout) and in the
    module's dtype (float32 or float64). ``bias=False`` gives zero biases. Raises ValueError for
    what elman.RNN cannot represent: a ``proj_size`` or a dtype other than float32/float64.
    """
    torch = _import_torch()
    if not isinstance(module, torch.nn.RNN):
        raise TypeError(f"from_torch needs a torch.nn.RNN, got {type(module).__name__}")
    if getattr(module, "proj_size", 0) != 0:
        raise ValueError(f"elman.RNN has no projection: proj_size must be 0, "
                         f"got {module.proj_size}")
    dtype = _dtype_names(torch).get(module.weight_ih_l0.dtype)
    if dtype is None:
        raise ValueError(f"elman computes in float32 or float64, the module holds "
                         f"{module.weight_ih_l0.dtype}; convert it with module.float() or "
                         ".double()")
    rnn = RNN(module.input_size, module.hidden_size, num_layers=module.num_layers,
              activation=module.nonlinearity, bidirectional=module.bidirectional,
              batch_first=module.batch_first, dtype=dtype, seed=0)
    state = {name: p.detach().cpu().numpy() for name, p in module.named_parameters()}
    for suffix in _suffixes(rnn):
        rnn.params[f"W_xh{suffix}"][...] = state[f"weight_ih{suffix}"]
        rnn.params[f"W_hh{suffix}"][...] = state[f"weight_hh{suffix}"]
        b_h = rnn.params[f"b_h{suffix}"]
        if module.bias:
            np.add(state[f"bias_ih{suffix}"], state[f"bias_hh{suffix}"], out=b_h)
        else:
            b_h[...] = 0
    return rnn


def to_torch(rnn):
    """A torch.nn.RNN (bias=True, in the model's dtype) with copies of an elman.RNN's parameters:
    ``bias_ih = b_h`` and ``bias_hh = 0``.

    Raises ValueError for what torch.nn.RNN cannot represent: a hidden activation other than
    "tanh" or "relu", an output layer, or a learned initial state (pass ``rnn.params["h0"]`` to
    the module as its h0 yourself instead).
    """
    torch = _import_torch()
    if not isinstance(rnn, RNN):
        raise TypeError(f"to_torch needs an elman.RNN, got {type(rnn).__name__}")
    if rnn.activation not in _TORCH_ACTIVATIONS:
        raise ValueError(f"torch.nn.RNN supports the activations 'tanh' and 'relu', this model "
                         f"uses {rnn.activation!r}")
    if rnn.output_size is not None:
        raise ValueError("torch.nn.RNN has no output layer: convert a model without output_size "
                         "(W_hy, b_y map to a separate torch.nn.Linear)")
    if rnn.learn_h0:
        raise ValueError("torch.nn.RNN has no learned initial state: use a model with "
                         "learn_h0=False and pass rnn.params['h0'] to the module as h0")
    dtype = {"float32": torch.float32, "float64": torch.float64}[rnn.dtype.name]
    module = torch.nn.RNN(rnn.input_size, rnn.hidden_size, num_layers=rnn.num_layers,
                          nonlinearity=rnn.activation, bias=True, batch_first=rnn.batch_first,
                          bidirectional=rnn.bidirectional, dtype=dtype)
    parameters = dict(module.named_parameters())
    with torch.no_grad():
        for suffix in _suffixes(rnn):
            parameters[f"weight_ih{suffix}"].copy_(torch.from_numpy(rnn.params[f"W_xh{suffix}"]))
            parameters[f"weight_hh{suffix}"].copy_(torch.from_numpy(rnn.params[f"W_hh{suffix}"]))
            parameters[f"bias_ih{suffix}"].copy_(torch.from_numpy(rnn.params[f"b_h{suffix}"]))
            parameters[f"bias_hh{suffix}"].zero_()
    return module


def _suffixes(rnn):
    """'_l0', '_l0_reverse', '_l1', ...: every layer and direction, named alike in torch and
    elman (only the prefixes differ)."""
    directions = ("", "_reverse")[:rnn.num_directions]
    return [f"_l{layer}{d}" for layer in range(rnn.num_layers) for d in directions]
