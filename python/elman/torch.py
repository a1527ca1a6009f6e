"""``elman.torch.RNN``: ``torch.nn.RNN`` with elman's fused CPU kernels inside, a drop-in swap.

    import elman.torch
    rnn = elman.torch.RNN(input_size, hidden_size, num_layers=2, batch_first=True)  # was torch.nn.RNN
    output, h_n = rnn(x, h0)                                   # same shapes, values and gradients

The class *is* a ``torch.nn.RNN`` (a subclass): constructor, parameter names and shapes
(``weight_ih_l{k}``, ``weight_hh_l{k}``, ``bias_ih_l{k}``, ``bias_hh_l{k}``, ``_reverse``),
default initialisation (so the same seed gives the same weights), ``state_dict`` keys,
``extra_repr``, ``train``/``eval``, optimizers, gradient clipping and DistributedDataParallel
are torch's own. Only ``forward`` differs: it runs :func:`elman.stack.stack_forward` and
:func:`elman.stack.stack_backward` inside a ``torch.autograd.Function``, on NumPy views that share
memory with the tensors (``tensor.numpy()``, no copy when a tensor is contiguous) and returns the
kernels' arrays wrapped by ``torch.from_numpy`` (no copy either).

Semantics, the same as torch.nn.RNN's:

* input ``[T, B, D]`` (``[B, T, D]`` with ``batch_first``), unbatched ``[T, D]``, or a
  ``PackedSequence`` (output packed alike, with the same ``batch_sizes``, ``sorted_indices`` and
  ``unsorted_indices``; ``hx`` and ``h_n`` in the caller's batch order); ``hx[L*dirs, B, H]``
  (``[L*dirs, H]`` unbatched) or None for zeros;
* torch's two biases only ever add, so elman's kernels get ``b_h = bias_ih + bias_hh`` and both
  receive the same gradient ``db_h``; ``bias=False`` has no bias parameters and runs with zeros;
* ``dropout > 0`` with ``num_layers > 1`` in training mode applies ``torch.nn.functional.dropout``
  to each layer's output but the last, exactly where and how torch does (on the packed data for
  packed input), so with the same seed the masks are the same; each layer is then its own call;
* gradients with respect to the input, ``hx`` and every parameter; ``torch.autograd.gradcheck``
  passes in float64.

Differences, each an explicit error rather than a silent change:

* CPU tensors only (a CUDA or other device tensor raises ``ValueError``: use torch.nn.RNN there);
* float32 and float64 only (float16 and bfloat16 raise ``TypeError``; so does autocast's mixing
  of dtypes: the input must have the parameters' dtype);
* double backward (``create_graph=True``: gradient penalties, Hessian-vector products,
  ``gradgradcheck``) is supported as torch.nn.RNN supports it, but not by the kernels: that
  backward recomputes the forward in torch operations (one per step, :mod:`elman._torch_stack`)
  and differentiates it, so its gradient has a graph; it is as slow as a Python loop over time;
* TorchScript is not supported (``torch.jit.script`` and ``torch.jit.trace`` raise
  ``RuntimeError``): the kernels run on NumPy arrays, which TorchScript cannot record. Use
  ``torch.compile``, which runs the module as it is, or torch.nn.RNN, which loads this module's
  state_dict;
* no ``proj_size`` (torch.nn.RNN has none either: it is an LSTM option);
* the output of a unidirectional module is the last layer's states themselves, which backward
  reads, so changing it in place before backward (e.g. ``nn.Dropout(inplace=True)``) raises
  torch's "modified by an inplace operation" error, where torch.nn.RNN has its own copy; use an
  out-of-place operation there;
* a sequence length of 0 (``T = 0``) is allowed and gives empty outputs and ``h_n = hx``, where
  torch raises.

What backward needs (the states of every layer, NumPy arrays) is handed to autograd through
``save_for_backward``: it is freed right after backward unless ``retain_graph=True``, and
non-reentrant activation checkpointing (``torch.utils.checkpoint(..., use_reentrant=False)``)
drops and recomputes it like any saved tensor. The tensors it shares memory with (input, ``hx``,
weights, a unidirectional output) are registered too, so changing one in place before backward
raises torch's "modified by an inplace operation" error instead of giving wrong gradients. Under
``torch.no_grad()`` nothing is kept.

torch stays optional for elman: ``import elman`` never imports this module (``import elman.torch``
does, and with it torch).
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn.utils.rnn import PackedSequence

from elman import _torch_stack
from elman.stack import stack_backward, stack_forward

__all__ = ["RNN", "from_torch_module"]

SUPPORTED_DTYPES = (torch.float32, torch.float64)

TORCHSCRIPT_UNSUPPORTED = (
    "{call} does not support elman.torch.RNN: TorchScript cannot record its kernels, which run on "
    "NumPy arrays. Use torch.compile(model) instead (it runs elman.torch.RNN as it is), or, for "
    "TorchScript, a torch.nn.RNN with this module's state_dict (torch.nn.RNN(...)."
    "load_state_dict(rnn.state_dict())).")


# --------------------------------------------------------------------------- #
# Tensors <-> NumPy, without copies
# --------------------------------------------------------------------------- #

def numpy_view(tensor):
    """A NumPy array sharing memory (and strides) with a strided CPU tensor. elman reads a
    C-contiguous array in place and copies any other layout once, as its input rule says."""
    return tensor.detach().numpy()


def elman_weights(flat_weights, bias):
    """torch's flat parameter list (per layer and direction: weight_ih, weight_hh[, bias_ih,
    bias_hh]) as elman's triples (W_xh[H, D_in], W_hh[H, H], b_h[H]), b_h = bias_ih + bias_hh."""
    per_direction = 4 if bias else 2
    triples = []
    for start in range(0, len(flat_weights), per_direction):
        W_xh = numpy_view(flat_weights[start])
        W_hh = numpy_view(flat_weights[start + 1])
        if bias:
            b_h = numpy_view(flat_weights[start + 2]) + numpy_view(flat_weights[start + 3])
        else:
            b_h = np.zeros(W_hh.shape[0], dtype=W_hh.dtype)
        triples.append((W_xh, W_hh, b_h))
    return triples


def run_stack(x, hx, flat_weights, lengths, num_layers, bidirectional, nonlinearity, bias):
    """stack_forward on tensors: (output[T, B, dirs*H], h_n[L*dirs, B, H], cache), the two
    tensors wrapping the kernels' arrays."""
    out, h_n, cache = stack_forward(
        numpy_view(x), None if hx is None else numpy_view(hx), elman_weights(flat_weights, bias),
        num_layers=num_layers, bidirectional=bidirectional, activation=nonlinearity,
        lengths=lengths)
    return torch.from_numpy(out), torch.from_numpy(h_n), cache


# --------------------------------------------------------------------------- #
# The autograd Function
# --------------------------------------------------------------------------- #

class ElmanStackFunction(torch.autograd.Function):
    """A stack of Elman layers as one autograd node: forward ``stack_forward``, backward
    ``stack_backward``.

    apply(num_layers, bidirectional, nonlinearity, bias, lengths, x, hx, *flat_weights)
        x[T, B, D]          time-major input (any strides; copied once unless C-contiguous)
        hx[L*dirs, B, H]    initial states, or None for zeros
        lengths[B]          NumPy integers, or None (see elman.stack)
        flat_weights        torch's order: per layer and direction weight_ih, weight_hh and,
                            with bias, bias_ih, bias_hh
    -> (output[T, B, dirs*H], h_n[L*dirs, B, H])

    Backward runs the kernels; when autograd wants the gradient's own graph (create_graph=True)
    it recomputes the forward in torch operations and differentiates that instead.
    """

    FIRST_TENSOR = 5  # apply's arguments before x are configuration, not differentiable

    @staticmethod
    def forward(ctx, num_layers, bidirectional, nonlinearity, bias, lengths, x, hx, *flat_weights):
        output, h_n, cache = run_stack(x, hx, flat_weights, lengths, num_layers, bidirectional,
                                       nonlinearity, bias)
        ctx.bias = bias
        ctx.has_hx = hx is not None
        # Everything goes through save_for_backward, so that autograd owns it as it owns
        # torch.nn.RNN's saved tensors: freed right after backward (unless retain_graph), and
        # seen by saved-tensor hooks (non-reentrant checkpointing then drops and recomputes it).
        # The kernels' cache (NumPy states) rides on an empty tensor as an attribute. The other
        # tensors are the ones the cache shares memory with: an in-place change of any of them
        # then raises torch's version-counter error instead of giving a wrong gradient. A
        # unidirectional stack's output is its last layer's states, which backward reads; a
        # bidirectional one's is a new array, free to change, as torch.nn.RNN's output is.
        carrier = torch.empty(0)
        carrier.stack_cache = cache
        shared_output = () if bidirectional else (output,)
        ctx.save_for_backward(carrier, x, hx, *flat_weights, *shared_output)
        ctx.output_shape = tuple(output.shape)
        ctx.config = (lengths, num_layers, bidirectional, nonlinearity, bias, len(flat_weights))
        ctx.set_materialize_grads(False)  # None for an unused output: d_h_n then costs nothing
        return output, h_n

    @staticmethod
    def backward(ctx, d_output, d_h_n):
        if torch.is_grad_enabled():  # create_graph=True: the gradient must have a graph too
            return ElmanStackFunction.differentiable_backward(ctx, d_output, d_h_n)
        carrier = ctx.saved_tensors[0]  # raises if a saved tensor was changed in place
        cache = getattr(carrier, "stack_cache", None)
        if cache is None:
            raise RuntimeError("elman.torch.RNN: the state saved for backward was lost by a "
                               "saved-tensor hook that copies tensors (e.g. save_on_cpu with "
                               "pin_memory=True); run the RNN outside that hook")
        if d_output is None:
            d_out = np.zeros(ctx.output_shape, dtype=cache.dtype)
        else:
            d_out = numpy_view(d_output)
        needs = ctx.needs_input_grad[ElmanStackFunction.FIRST_TENSOR:]  # input, hx, weights...
        dx, dh0, dweights = stack_backward(cache, d_out,
                                           None if d_h_n is None else numpy_view(d_h_n),
                                           input_grad=needs[0])  # no dx product for data
        grads = [None if dx is None else torch.from_numpy(dx),
                 torch.from_numpy(dh0) if ctx.has_hx else None]
        for dW_xh, dW_hh, db_h in dweights:
            grads += [torch.from_numpy(dW_xh), torch.from_numpy(dW_hh)]
            if ctx.bias:
                # One gradient for both biases, as two tensors: a gradient tensor may become a
                # parameter's .grad and be scaled in place (clip_grad_norm_), so none is shared.
                grads += [torch.from_numpy(db_h), torch.from_numpy(db_h.copy())]
        config_grads = [None] * ElmanStackFunction.FIRST_TENSOR
        return (*config_grads, *(g if need else None for g, need in zip(grads, needs)))

    @staticmethod
    def differentiable_backward(ctx, d_output, d_h_n):
        """backward as torch operations (a recomputed forward, differentiated with
        create_graph=True), so that the gradient can itself be differentiated.

        The saved inputs come back with their autograd history, so the recomputed graph hangs
        on the same parameters and inputs as the forward did; the kernels' arrays are not used.
        """
        lengths, num_layers, bidirectional, nonlinearity, bias, n_weights = ctx.config
        _, x, hx, *rest = ctx.saved_tensors
        inputs = [x, hx, *rest[:n_weights]]
        needs = ctx.needs_input_grad[ElmanStackFunction.FIRST_TENSOR:]
        wanted = [i for i, (t, need) in enumerate(zip(inputs, needs)) if need and t is not None]
        pairs = [(out, grad) for out, grad in zip(ElmanStackFunction.recompute(ctx, inputs),
                                                  (d_output, d_h_n)) if grad is not None]
        grads = [None] * len(inputs)
        if pairs and wanted:
            found = torch.autograd.grad([out for out, _ in pairs], [inputs[i] for i in wanted],
                                        [grad for _, grad in pairs], create_graph=True,
                                        allow_unused=True)
            for i, grad in zip(wanted, found):
                grads[i] = grad
        return (*[None] * ElmanStackFunction.FIRST_TENSOR, *grads)

    @staticmethod
    def recompute(ctx, inputs):
        """(output, h_n) of the forward again, recorded by autograd, from [x, hx, *weights]."""
        lengths, num_layers, bidirectional, nonlinearity, bias, n_weights = ctx.config
        x, hx, *flat_weights = inputs
        with torch.enable_grad():
            return _torch_stack.stack_forward(x, hx, flat_weights, lengths, num_layers,
                                              bidirectional, nonlinearity, bias)


def elman_stack(x, hx, flat_weights, lengths, num_layers, bidirectional, nonlinearity, bias):
    """(output, h_n) of the stack, recorded for autograd when gradients are enabled; under
    no_grad the kernels run without keeping anything for backward."""
    if torch.is_grad_enabled():
        return ElmanStackFunction.apply(num_layers, bidirectional, nonlinearity, bias, lengths,
                                        x, hx, *flat_weights)
    output, h_n, _ = run_stack(x, hx, flat_weights, lengths, num_layers, bidirectional,
                               nonlinearity, bias)
    return output, h_n


# --------------------------------------------------------------------------- #
# Packed sequences
# --------------------------------------------------------------------------- #

class Padding:
    """Where a PackedSequence's rows sit in a padded time-major batch, and the moves both ways.

    A PackedSequence stores step t of the (sorted) batch's sequences b < batch_sizes[t] one after
    the other, t ascending: its rows are exactly the valid (t, b) pairs in row-major order. So
    ``rows[N]`` = those pairs' flat indices into [T * B], and padding/packing are one
    index_copy/index_select each (differentiable, no per-step work).
    """

    def __init__(self, batch_sizes):
        sizes = batch_sizes.numpy()  # [T], non-increasing, a CPU int64 tensor in torch
        self.T, self.B = len(sizes), int(sizes[0])
        valid = np.arange(self.B)[None, :] < sizes[:, None]  # [T, B]
        self.lengths = valid.sum(axis=0)  # [B] steps of each sequence, in sorted order
        self.rows = torch.from_numpy(np.flatnonzero(valid))  # [N]

    def pad(self, data):
        """data[N, F] -> [T, B, F], zeros past each sequence's end."""
        padded = data.new_zeros((self.T * self.B, data.shape[-1]))
        return padded.index_copy(0, self.rows, data).view(self.T, self.B, -1)

    def pack(self, padded):
        """padded[T, B, F] -> data[N, F]."""
        return padded.reshape(self.T * self.B, -1).index_select(0, self.rows)


# --------------------------------------------------------------------------- #
# The module
# --------------------------------------------------------------------------- #

class RNN(torch.nn.RNN):
    """torch.nn.RNN whose forward and backward run elman's fused CPU kernels.

    Same constructor (positional order included), parameters, initialisation, state_dict, forward
    signature and results as ``torch.nn.RNN``; see the module docstring for the few differences.

    Args:
        input_size: D, features of each input step
        hidden_size: H, features of the hidden state
        num_layers: L, stacked layers (default 1)
        nonlinearity: "tanh" (default) or "relu"
        bias: False drops bias_ih and bias_hh (default True)
        batch_first: input and output as [B, T, *] instead of [T, B, *] (hx and h_n unchanged)
        dropout: probability of dropout on each layer's output but the last, in training mode
        bidirectional: dirs = 2 when True
        device, dtype: where and in which dtype the parameters are made (CPU; float32 or float64
            to run forward)

    forward(input, hx=None) -> (output, h_n)
        input[T, B, D] ([B, T, D] with batch_first), [T, D] unbatched, or a PackedSequence
        hx[L*dirs, B, H] ([L*dirs, H] unbatched), None for zeros
        output[T, B, dirs*H] (the last layer's states; a PackedSequence for packed input)
        h_n[L*dirs, B, H] (every layer and direction's final state)
    """

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True,
                 batch_first=False, dropout=0.0, bidirectional=False, device=None, dtype=None,
                 *, proj_size=0):
        if proj_size != 0:
            raise ValueError(f"RNN has no projection: proj_size must be 0, got {proj_size} "
                             f"(torch.nn.RNN has none either: proj_size is a torch.nn.LSTM option)")
        # Keywords from num_layers on: torch's RNN forwards extra positional arguments to a base
        # class whose order differs (proj_size before device).
        super().__init__(input_size, hidden_size, num_layers, nonlinearity=nonlinearity, bias=bias,
                         batch_first=batch_first, dropout=dropout, bidirectional=bidirectional,
                         device=device, dtype=dtype)

    def flatten_parameters(self):
        """A no-op, kept for compatibility: elman reads each parameter in place."""

    def __prepare_scriptable__(self):
        """torch.jit.script calls this first (on every submodule too): say why it cannot work."""
        raise RuntimeError(TORCHSCRIPT_UNSUPPORTED.format(call="torch.jit.script"))

    # ----------------------------------------------------------------------- #

    def forward(self, input, hx=None):
        if torch.jit.is_tracing():  # torch.jit.trace, and exporters built on it
            raise RuntimeError(TORCHSCRIPT_UNSUPPORTED.format(call="torch.jit.trace"))
        if isinstance(input, PackedSequence):
            return self._forward_packed(input, hx)
        if not isinstance(input, torch.Tensor):
            raise TypeError(f"input must be a torch.Tensor or a PackedSequence, got "
                            f"{type(input).__name__}")
        check_hx_type(hx)
        if input.dim() not in (2, 3):
            raise ValueError(f"RNN: Expected input to be 2D or 3D, got {input.dim()}D tensor instead")
        batched = input.dim() == 3
        batch_dim = 0 if self.batch_first else 1
        if not batched:
            input = input.unsqueeze(batch_dim)
            if hx is not None:
                if hx.dim() != 2:
                    raise RuntimeError(f"For unbatched 2-D input, hx should also be 2-D but got "
                                       f"{hx.dim()}-D tensor")
                hx = hx.unsqueeze(1)
        elif hx is not None and hx.dim() != 3:
            raise RuntimeError(f"For batched 3-D input, hx should also be 3-D but got "
                               f"{hx.dim()}-D tensor")
        flat_weights = self._checked_weights()
        self._check_input(input, hx, None, flat_weights)

        x = input.transpose(0, 1) if self.batch_first else input  # time-major
        output, h_n = self._run(x, hx, flat_weights, padding=None)
        if self.batch_first:
            output = output.transpose(0, 1)  # a view, as torch returns
        if not batched:
            output, h_n = output.squeeze(batch_dim), h_n.squeeze(1)
        return output, h_n

    def _forward_packed(self, packed, hx):
        """forward for a PackedSequence: run on its padded (sorted) batch with its lengths."""
        data, batch_sizes, sorted_indices, unsorted_indices = packed
        check_hx_type(hx)
        flat_weights = self._checked_weights()
        self._check_input(data, hx, batch_sizes, flat_weights)
        # The packed batch is sorted by length; hx comes in the caller's order, h_n goes back to it.
        hx = self.permute_hidden(hx, sorted_indices) if hx is not None else None
        padding = Padding(batch_sizes)
        output, h_n = self._run(padding.pad(data), hx, flat_weights, padding)
        packed_output = PackedSequence(padding.pack(output), batch_sizes, sorted_indices,
                                       unsorted_indices)
        return packed_output, self.permute_hidden(h_n, unsorted_indices)

    def _run(self, x, hx, flat_weights, padding):
        """(output[T, B, dirs*H], h_n[L*dirs, B, H]) of the whole stack on time-major x; one
        kernel-backed call, or one per layer when dropout acts between layers."""
        lengths = None if padding is None else padding.lengths
        activation = self.nonlinearity
        if not (self.training and self.dropout > 0 and self.num_layers > 1):
            return elman_stack(x, hx, flat_weights, lengths, self.num_layers, self.bidirectional,
                               activation, self.bias)
        dirs = 2 if self.bidirectional else 1
        per_layer = len(flat_weights) // self.num_layers
        final_states = []
        for layer in range(self.num_layers):
            h0 = None if hx is None else hx[layer * dirs:(layer + 1) * dirs]
            weights = flat_weights[layer * per_layer:(layer + 1) * per_layer]
            x, h_n = elman_stack(x, h0, weights, lengths, 1, self.bidirectional, activation,
                                 self.bias)
            final_states.append(h_n)
            if layer < self.num_layers - 1:
                x = self._dropout_between_layers(x, padding)
        return x, torch.cat(final_states)

    def _dropout_between_layers(self, output, padding):
        """torch's dropout on a layer's output: on the tensor torch itself holds there (the packed
        data for packed input), so the same random numbers fall on the same elements."""
        if padding is None:
            return torch.nn.functional.dropout(output, self.dropout, training=True)
        dropped = torch.nn.functional.dropout(padding.pack(output), self.dropout, training=True)
        return padding.pad(dropped)

    # ----------------------------------------------------------------------- #
    # Checks: what the kernels cannot take gets a clear error before any work
    # ----------------------------------------------------------------------- #

    def _parameter_names(self):
        """torch's order: per layer, per direction, weight_ih, weight_hh[, bias_ih, bias_hh]."""
        kinds = ("weight_ih", "weight_hh") + (("bias_ih", "bias_hh") if self.bias else ())
        directions = ("", "_reverse") if self.bidirectional else ("",)
        return [f"{kind}_l{layer}{direction}" for layer in range(self.num_layers)
                for direction in directions for kind in kinds]

    def _checked_weights(self):
        """The current parameters in torch's flat order, checked to be strided CPU tensors of one
        dtype, float32 or float64.

        Read by name at every call, so that torch.func.functional_call (which swaps entries of
        ``_parameters``), reassigned parameters and parametrizations (properties) are honoured.
        """
        names = self._parameter_names()
        registered = self._parameters
        flat_weights = [registered.get(name) for name in names]
        if any(w is None for w in flat_weights):  # e.g. a parametrization: ask the attribute
            flat_weights = [getattr(self, name) for name in names]
        dtype = flat_weights[0].dtype
        if not all(w.is_cpu and w.layout is torch.strided and w.dtype is dtype
                   for w in flat_weights):
            for name, weight in zip(names, flat_weights):  # find the culprit, say what is wrong
                check_cpu_tensor(weight, name)
                if weight.dtype != dtype:
                    raise TypeError(f"the parameters must share one dtype: {names[0]} is {dtype}, "
                                    f"{name} is {weight.dtype}")
        if dtype not in SUPPORTED_DTYPES:
            raise TypeError(f"elman.torch.RNN computes in float32 or float64, the parameters are "
                            f"{dtype} (float16 and bfloat16 are not supported): convert the module "
                            f"with .float() or .double()")
        return flat_weights

    def _check_input(self, input, hx, batch_sizes, flat_weights):
        """input and hx: CPU tensors of the parameters' dtype and of the shapes torch expects."""
        dtype = flat_weights[0].dtype
        check_cpu_tensor(input, "input")
        check_dtype(input, "input", dtype)
        self.check_input(input, batch_sizes)  # torch's own checks of input.dim() and input_size
        if hx is not None:
            check_cpu_tensor(hx, "hx")
            check_dtype(hx, "hx", dtype)
            self.check_hidden_size(hx, self.get_expected_hidden_size(input, batch_sizes))


def check_hx_type(hx):
    """A TypeError unless hx is a tensor or None."""
    if hx is not None and not isinstance(hx, torch.Tensor):
        raise TypeError(f"hx must be a torch.Tensor or None, got {type(hx).__name__}")


def check_dtype(tensor, name, dtype):
    """A ValueError unless tensor has the parameters' dtype, saying which conversion helps: the
    model may follow a float32/float64 tensor, never an integer, boolean, complex or half one."""
    if tensor.dtype == dtype:
        return
    mismatch = f"RNN {name} dtype ({tensor.dtype}) does not match weight dtype ({dtype})"
    if tensor.dtype not in SUPPORTED_DTYPES:
        kind = ("booleans" if tensor.dtype == torch.bool
                else "complex numbers" if tensor.dtype.is_complex
                else "half precision" if tensor.dtype.is_floating_point else "integers")
        raise ValueError(f"{mismatch}, and elman computes in float32 or float64 only (not in "
                         f"{kind}): convert it with {name}.to({dtype})")
    model = f" or the model with model.to({tensor.dtype})" if name == "input" else ""
    raise ValueError(f"{mismatch}: convert it with {name}.to({dtype}){model} (elman computes in "
                     f"float32 or float64, also under autocast)")


def check_cpu_tensor(tensor, name):
    """A ValueError unless tensor is a strided (dense) tensor on the CPU."""
    if not tensor.is_cpu:
        raise ValueError(f"elman.torch.RNN runs on the CPU, {name} is on {tensor.device}: keep "
                         f"the module and its inputs on the CPU (on a GPU, use torch.nn.RNN)")
    if tensor.layout != torch.strided:
        raise ValueError(f"elman.torch.RNN needs dense tensors, {name} has layout {tensor.layout}")


def from_torch_module(module):
    """An elman.torch.RNN with a torch.nn.RNN's configuration, training mode and (copied)
    parameters, on its device and in its dtype. torch's random number generator is not touched:
    the new module's parameters are never initialised, only loaded."""
    if not isinstance(module, torch.nn.RNN):
        raise TypeError(f"from_torch_module needs a torch.nn.RNN, got {type(module).__name__}")
    if getattr(module, "proj_size", 0) != 0:
        raise ValueError(f"RNN has no projection: proj_size must be 0, got {module.proj_size}")
    weight = module.weight_ih_l0
    rnn = torch.nn.utils.skip_init(
        RNN, module.input_size, module.hidden_size, module.num_layers,
        nonlinearity=module.nonlinearity, bias=module.bias, batch_first=module.batch_first,
        dropout=module.dropout, bidirectional=module.bidirectional, device=weight.device,
        dtype=weight.dtype)
    rnn.load_state_dict(module.state_dict())
    return rnn.train(module.training)
