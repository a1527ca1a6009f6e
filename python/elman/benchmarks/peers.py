"""The libraries being compared, each behind the same small interface.

One object of these classes lives in each worker process (see :mod:`.workers`); nothing here is
imported by the parent process, so the parent never loads torch or onnxruntime.

A library builds *tasks*: a :class:`Task` holds ``run``, the zero-argument call that is timed,
and ``collect``, which turns what ``run`` returned into a dict of NumPy arrays for the parity
check. Every task is built from the arrays of :mod:`.inputs`, so all libraries compute on the
same weights and data. Names of the collected arrays:

* recurrence forward: ``hs[T, B, H]``;
* recurrence forward+backward: ``hs``, ``dx[T, B, D]``, ``dh0[B, H]``, ``dW_xh[H, D]``,
  ``dW_hh[H, H]``, ``db_h[H]`` (elman's ``rnn_backward`` outputs, fed ``dhs`` from the inputs);
* training step: ``loss`` (0-d) and the gradient of every parameter under elman.RNN's name
  (``W_xh_l0``, ..., ``W_hy``, ``b_y``), taken after the first step from the initial weights.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from .configs import FORWARD, FORWARD_BACKWARD
from .inputs import recurrence_arrays, train_arrays
from .._files import write_atomically

__all__ = ["Task", "make_library", "LIBRARY_CLASSES"]

ADAM_LR = 1e-3


@dataclass
class Task:
    """run(): the timed call; collect(result): {name: ndarray} for the parity check; flops."""

    run: Callable[[], Any]
    collect: Callable[[Any], dict]
    flops: int


def _identity(outputs):
    return outputs


def _gemm_operands(n):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    return a, b


class Library:
    """The interface: a name, what it can run, and the tasks it builds.

    ``supports(kind, pass_)`` tells which tasks exist; building another one raises ValueError.
    """

    name = ""
    passes = (FORWARD, FORWARD_BACKWARD)
    trains = False
    has_gemm = False

    def info(self):
        """Versions and settings to print in the report's header."""
        return {}

    def supports(self, kind, pass_=None):
        if kind == "recurrence":
            return pass_ in self.passes
        if kind == "train":
            return self.trains
        if kind == "gemm":
            return self.has_gemm
        return False

    def task(self, spec):
        """The Task for spec: ("recurrence", config, pass), ("train", config) or ("gemm", n)."""
        kind = spec[0]
        pass_ = spec[2] if kind == "recurrence" else None
        if not self.supports(kind, pass_):
            raise ValueError(f"{self.name} cannot run {spec!r}")
        if kind == "recurrence":
            _, config, pass_ = spec
            return self.recurrence(recurrence_arrays(config), pass_, config.flops(pass_))
        if kind == "train":
            return self.train_step(spec[1])
        n = spec[1]
        return Task(self.gemm(n), _identity, 2 * n**3)


# --------------------------------------------------------------------------- #
# elman and its NumPy reference: the same functional API
# --------------------------------------------------------------------------- #

class _FunctionalLibrary(Library):
    """A module with elman's functional API: rnn_forward and rnn_backward."""

    module = None  # set by subclasses

    def recurrence(self, a, pass_, flops):
        forward, backward = self.module.rnn_forward, self.module.rnn_backward
        x, h0, W_xh, W_hh, b_h, dhs = a["x"], a["h0"], a["W_xh"], a["W_hh"], a["b_h"], a["dhs"]
        if pass_ == FORWARD:
            return Task(lambda: forward(x, h0, W_xh, W_hh, b_h), lambda hs: {"hs": hs}, flops)

        def forward_backward():
            hs = forward(x, h0, W_xh, W_hh, b_h)
            return (hs, *backward(dhs, x, h0, hs, W_xh, W_hh))

        names = ("hs", "dx", "dh0", "dW_xh", "dW_hh", "db_h")
        return Task(forward_backward, lambda out: dict(zip(names, out)), flops)


class Elman(_FunctionalLibrary):
    name = "elman"
    trains = True
    has_gemm = True

    def __init__(self, threads):
        import elman
        from elman import _core

        if threads is not None:  # None: elman's own default (the contention benchmark's trainers)
            elman.set_num_threads(threads)
        self.module = elman
        self._core = _core

    def info(self):
        return {"version": self.module.__version__, "threads": self.module.get_num_threads(),
                **{f"build {k}": v for k, v in self._core.config().items() if k != "version"}}

    def gemm(self, n):
        """elman's own register-tiled product (the output layer's, a @ b^T + 0): on machines
        whose BLAS lags the CPU (a Zen 5 where NumPy's matmul reached 226 GFLOP/s and this 403),
        a roofline from NumPy and torch alone would put elman's kernels above 100% of it."""
        a, b = _gemm_operands(n)
        a, zero = a.reshape(n, 1, n), np.zeros(n, np.float32)
        c = np.empty_like(a)
        return lambda: self._core.output_forward(a, b, zero, out=c)

    def train_step(self, config):
        from elman.losses import cross_entropy
        from elman.model import RNN
        from elman.optim import Adam

        x, targets, params = train_arrays(config)
        rnn = RNN(config.D, config.H, num_layers=config.num_layers, output_size=config.O,
                  dtype="float32", seed=0)
        for name, value in params.items():
            np.copyto(rnn.params[name], value)
        optimizer = Adam(rnn.params, lr=ADAM_LR)

        def step():
            out, _ = rnn(x)
            loss, d_out = cross_entropy(out, targets)
            rnn.backward(d_out, input_grad=False)  # as torch: x does not require grad
            optimizer.step(rnn.grads)
            return loss

        def collect(loss):
            return {"loss": np.array(loss, dtype=np.float64),
                    **{name: rnn.grads[name].copy() for name in params}}

        return Task(step, collect, config.flops())


class Reference(_FunctionalLibrary):
    """elman.reference, the NumPy spec; its matrix products run on NumPy's BLAS."""

    name = "reference"
    has_gemm = True

    def __init__(self, threads):
        from elman import reference

        self.module = reference
        self._threads = threads

    def info(self):
        info = {"numpy": np.__version__, "blas threads": self._threads}
        try:  # NumPy >= 1.26 describes its build; older ones do not, and that is fine
            blas = np.__config__.CONFIG["Build Dependencies"]["blas"]
            info["blas"] = f"{blas['name']} {blas['version']}"
        except (AttributeError, KeyError, TypeError):
            pass
        return info

    def gemm(self, n):
        a, b = _gemm_operands(n)
        c = np.empty_like(a)
        return lambda: np.matmul(a, b, out=c)


# --------------------------------------------------------------------------- #
# torch
# --------------------------------------------------------------------------- #

class Torch(Library):
    """torch.nn.RNN (forward under no_grad; forward+backward with autograd.grad) and the full
    model nn.RNN + nn.Linear + F.cross_entropy + torch.optim.Adam."""

    name = "torch"
    trains = True
    has_gemm = True

    def __init__(self, threads):
        import torch

        if threads is not None:  # None: torch's own default
            torch.set_num_threads(threads)
        self.torch = torch

    def info(self):
        torch = self.torch
        return {"version": torch.__version__, "threads": torch.get_num_threads(),
                "mkldnn": torch.backends.mkldnn.is_available()}

    def _rnn(self, D, H, num_layers):
        return self.torch.nn.RNN(D, H, num_layers=num_layers, nonlinearity="tanh")

    def _load_layer(self, rnn, layer, W_xh, W_hh, b_h):
        """elman's weights into torch's layer: b_h becomes bias_ih and bias_hh is zero."""
        torch = self.torch
        with torch.no_grad():
            getattr(rnn, f"weight_ih_l{layer}").copy_(torch.from_numpy(W_xh))
            getattr(rnn, f"weight_hh_l{layer}").copy_(torch.from_numpy(W_hh))
            getattr(rnn, f"bias_ih_l{layer}").copy_(torch.from_numpy(b_h))
            getattr(rnn, f"bias_hh_l{layer}").zero_()

    def recurrence(self, a, pass_, flops):
        torch = self.torch
        T, B, D = a["x"].shape
        H = a["W_hh"].shape[0]
        rnn = self._rnn(D, H, 1)
        self._load_layer(rnn, 0, a["W_xh"], a["W_hh"], a["b_h"])
        x = torch.from_numpy(a["x"])
        h0 = torch.from_numpy(a["h0"])[None]  # [1, B, H]
        if pass_ == FORWARD:
            def forward():
                with torch.no_grad():
                    return rnn(x, h0)[0]
            return Task(forward, lambda hs: {"hs": hs.numpy()}, flops)

        x_grad = x.clone().requires_grad_(True)
        h0_grad = h0.clone().requires_grad_(True)
        dhs = torch.from_numpy(a["dhs"])
        wrt = [x_grad, h0_grad, rnn.weight_ih_l0, rnn.weight_hh_l0, rnn.bias_ih_l0]

        def forward_backward():
            hs = rnn(x_grad, h0_grad)[0]
            # autograd.grad returns fresh gradients (nothing accumulates across calls);
            # bias_hh's gradient equals bias_ih's and is computed all the same.
            return (hs, *torch.autograd.grad(hs, wrt, dhs))

        def collect(out):
            hs, dx, dh0, dW_xh, dW_hh, db_h = (t.detach().numpy() for t in out)
            return {"hs": hs, "dx": dx, "dh0": dh0[0], "dW_xh": dW_xh, "dW_hh": dW_hh, "db_h": db_h}

        return Task(forward_backward, collect, flops)

    def train_step(self, config):
        torch = self.torch
        F = torch.nn.functional
        x, targets, params = train_arrays(config)
        rnn = self._rnn(config.D, config.H, config.num_layers)
        for layer in range(config.num_layers):
            self._load_layer(rnn, layer, params[f"W_xh_l{layer}"], params[f"W_hh_l{layer}"],
                             params[f"b_h_l{layer}"])
        linear = torch.nn.Linear(config.H, config.O)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(params["W_hy"]))
            linear.bias.copy_(torch.from_numpy(params["b_y"]))
        optimizer = torch.optim.Adam([*rnn.parameters(), *linear.parameters()], lr=ADAM_LR)
        x = torch.from_numpy(x)
        flat_targets = torch.from_numpy(targets).reshape(-1)
        O = config.O

        def step():
            optimizer.zero_grad()
            logits = linear(rnn(x)[0])
            loss = F.cross_entropy(logits.reshape(-1, O), flat_targets)
            loss.backward()
            optimizer.step()
            return loss

        def collect(loss):
            grads = {"loss": np.array(loss.item(), dtype=np.float64),
                     "W_hy": linear.weight.grad.numpy().copy(), "b_y": linear.bias.grad.numpy().copy()}
            for layer in range(config.num_layers):
                grads[f"W_xh_l{layer}"] = getattr(rnn, f"weight_ih_l{layer}").grad.numpy().copy()
                grads[f"W_hh_l{layer}"] = getattr(rnn, f"weight_hh_l{layer}").grad.numpy().copy()
                grads[f"b_h_l{layer}"] = getattr(rnn, f"bias_ih_l{layer}").grad.numpy().copy()
            return grads

        return Task(step, collect, config.flops())

    def gemm(self, n):
        torch = self.torch
        a, b = (torch.from_numpy(m) for m in _gemm_operands(n))
        c = torch.empty_like(a)
        return lambda: torch.mm(a, b, out=c)


# --------------------------------------------------------------------------- #
# onnxruntime: the ONNX RNN operator, forward only
# --------------------------------------------------------------------------- #

ONNX_OPSET = 14


def rnn_onnx_model(W_xh, W_hh, b_h, T, B):
    """An ONNX model of one RNN node (tanh, forward direction) with elman's weights.

    ONNX layout: W[1, H, D] = W_xh, R[1, H, H] = W_hh, B[1, 2H] = [Wb, Rb] = [b_h, 0];
    sequence_lens is omitted (every sequence spans T steps). Inputs X[T, B, D] and
    initial_h[1, B, H]; output Y[T, 1, B, H].
    """
    from onnx import TensorProto, helper, numpy_helper

    H, D = W_xh.shape
    initializers = [
        numpy_helper.from_array(W_xh[None], "W"),
        numpy_helper.from_array(W_hh[None], "R"),
        numpy_helper.from_array(np.concatenate([b_h, np.zeros_like(b_h)])[None], "B"),
    ]
    node = helper.make_node("RNN", ["X", "W", "R", "B", "", "initial_h"], ["Y"],
                            hidden_size=H, activations=["Tanh"], direction="forward")
    graph = helper.make_graph(
        [node], "elman_rnn",
        inputs=[helper.make_tensor_value_info("X", TensorProto.FLOAT, [T, B, D]),
                helper.make_tensor_value_info("initial_h", TensorProto.FLOAT, [1, B, H])],
        outputs=[helper.make_tensor_value_info("Y", TensorProto.FLOAT, [T, 1, B, H])],
        initializer=initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", ONNX_OPSET)])


class OnnxRuntime(Library):
    name = "onnxruntime"
    passes = (FORWARD,)

    def __init__(self, threads):
        import onnx  # noqa: F401  (the graph builder; fail here, not at the first task)
        import onnxruntime

        self.ort = onnxruntime
        self.threads = threads

    def info(self):
        import onnx

        return {"version": self.ort.__version__, "onnx": onnx.__version__,
                "intra_op_num_threads": self.threads}

    def recurrence(self, a, pass_, flops):
        ort = self.ort
        T, B, _ = a["x"].shape
        model = rnn_onnx_model(a["W_xh"], a["W_hh"], a["b_h"], T, B)
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        session = ort.InferenceSession(model.SerializeToString(), options,
                                       providers=["CPUExecutionProvider"])
        feeds = {"X": a["x"], "initial_h": a["h0"][None]}
        return Task(lambda: session.run(None, feeds)[0], lambda y: {"hs": y[:, 0]}, flops)


# --------------------------------------------------------------------------- #
# OpenVINO: the same ONNX RNN node, compiled by its CPU plugin (one oneDNN RNN primitive)
# --------------------------------------------------------------------------- #

class OpenVino(Library):
    name = "openvino"
    passes = (FORWARD,)

    def __init__(self, threads):
        import onnx  # noqa: F401  (the graph builder)
        import openvino

        self.ov = openvino
        self.core = openvino.Core()
        self.threads = threads

    def _properties(self):
        # f32 inference (on CPUs with bf16 support the plugin would otherwise lower the
        # precision), one stream, latency: one request at a time on `threads` threads.
        properties = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": "1"}
        if self.threads is not None:
            properties["INFERENCE_NUM_THREADS"] = str(self.threads)
        return properties

    def info(self):
        return {"version": self.ov.__version__, **self._properties()}

    def recurrence(self, a, pass_, flops):
        T, B, _ = a["x"].shape
        model = rnn_onnx_model(a["W_xh"], a["W_hh"], a["b_h"], T, B)
        with tempfile.TemporaryDirectory() as folder:  # the plugin reads ONNX from a file
            path = os.path.join(folder, "rnn.onnx")
            write_atomically(path, lambda f: f.write(model.SerializeToString()))
            compiled = self.core.compile_model(self.core.read_model(path), "CPU", self._properties())
        request = compiled.create_infer_request()
        feeds = {"X": a["x"], "initial_h": a["h0"][None]}

        def forward():
            request.infer(feeds)
            return request.get_output_tensor(0).data

        return Task(forward, lambda y: {"hs": np.array(y[:, 0])}, flops)


# --------------------------------------------------------------------------- #
# JAX and TensorFlow under XLA
# --------------------------------------------------------------------------- #

def _xla_on_threads(threads):
    """XLA's CPU runtime sizes its thread pools from the CPUs the process may use and has no
    setting that covers them all: keep the worker on `threads` of its CPUs (when that is fewer),
    and turn Eigen's multi-threading off for one thread. Must run before jax/tensorflow load."""
    if threads is None:
        return
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if 0 < threads < len(cpus):
        os.sched_setaffinity(0, cpus[:threads])
    if threads == 1:
        flags = os.environ.get("XLA_FLAGS", "")
        os.environ["XLA_FLAGS"] = (flags + " --xla_cpu_multi_thread_eigen=false"
                                   " intra_op_parallelism_threads=1").strip()


_RECURRENCE_GRADIENTS = ("dx", "dh0", "dW_xh", "dW_hh", "db_h")


class Jax(Library):
    """A jitted lax.scan (the input projection hoisted out of it, as in elman); forward+backward
    is jax.vjp of the same function, fed dhs."""

    name = "jax"

    def __init__(self, threads):
        _xla_on_threads(threads)
        os.environ.setdefault("JAX_PLATFORMS", "cpu")
        import jax

        self.jax = jax
        self.threads = threads

    def info(self):
        return {"version": self.jax.__version__, "threads": self.threads,
                "devices": ", ".join(str(d) for d in self.jax.devices())}

    def recurrence(self, a, pass_, flops):
        jax = self.jax
        jnp = jax.numpy

        def rnn(x, h0, W_xh, W_hh, b_h):
            pre = jnp.einsum("tbd,hd->tbh", x, W_xh) + b_h  # [T, B, H]

            def step(h, pre_t):
                h = jnp.tanh(pre_t + h @ W_hh.T)  # [B, H]
                return h, h

            return jax.lax.scan(step, h0, pre)[1]  # hs[T, B, H]

        args = tuple(jax.device_put(a[k]) for k in ("x", "h0", "W_xh", "W_hh", "b_h"))
        if pass_ == FORWARD:
            forward = jax.jit(rnn)
            return Task(lambda: forward(*args).block_until_ready(), lambda hs: {"hs": np.asarray(hs)}, flops)

        def forward_backward(dhs, *args):
            hs, vjp = jax.vjp(rnn, *args)
            return (hs, *vjp(dhs))

        compiled = jax.jit(forward_backward)
        dhs = jax.device_put(a["dhs"])

        def collect(out):
            return dict(zip(("hs", *_RECURRENCE_GRADIENTS), (np.asarray(t) for t in out)))

        return Task(lambda: jax.block_until_ready(compiled(dhs, *args)), collect, flops)


class TensorFlowXla(Library):
    """Keras' SimpleRNN layer (TensorFlow backend) in a tf.function compiled by XLA
    (jit_compile=True); forward+backward is a GradientTape in the same compiled function."""

    name = "tf-xla"

    def __init__(self, threads):
        _xla_on_threads(threads)
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        os.environ.setdefault("KERAS_BACKEND", "tensorflow")
        import tensorflow as tf

        if threads is not None:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        self.tf = tf
        self.threads = threads

    def info(self):
        import keras

        return {"version": self.tf.__version__, "keras": keras.__version__, "threads": self.threads}

    def recurrence(self, a, pass_, flops):
        import keras

        tf = self.tf
        T, B, D = a["x"].shape
        H = a["W_hh"].shape[0]
        layer = keras.layers.SimpleRNN(H, activation="tanh", return_sequences=True)
        layer.build((B, T, D))
        # Keras' row-vector layout: kernel[D, H] = W_xh^T, recurrent_kernel[H, H] = W_hh^T.
        layer.set_weights([a["W_xh"].T, a["W_hh"].T, a["b_h"]])
        x = tf.constant(np.ascontiguousarray(a["x"].transpose(1, 0, 2)))  # [B, T, D]
        h0 = tf.constant(a["h0"])
        if pass_ == FORWARD:
            forward = tf.function(lambda x, h0: layer(x, initial_state=[h0]), jit_compile=True)
            return Task(lambda: forward(x, h0).numpy(),
                        lambda hs: {"hs": hs.transpose(1, 0, 2)}, flops)

        cell = layer.cell
        weights = [cell.kernel, cell.recurrent_kernel, cell.bias]

        def forward_backward(x, h0, dhs):
            with tf.GradientTape() as tape:
                tape.watch([x, h0])
                hs = layer(x, initial_state=[h0])
            return (hs, *tape.gradient(hs, [x, h0, *weights], output_gradients=dhs))

        compiled = tf.function(forward_backward, jit_compile=True)
        dhs = tf.constant(np.ascontiguousarray(a["dhs"].transpose(1, 0, 2)))

        def run():
            return tuple(t.numpy() for t in compiled(x, h0, dhs))

        def collect(out):
            hs, dx, dh0, dkernel, drecurrent, db = out
            return {"hs": hs.transpose(1, 0, 2), "dx": dx.transpose(1, 0, 2), "dh0": dh0,
                    "dW_xh": dkernel.T, "dW_hh": drecurrent.T, "db_h": db}

        return Task(run, collect, flops)


LIBRARY_CLASSES = {cls.name: cls for cls in (Elman, Reference, Torch, OnnxRuntime, OpenVino, Jax, TensorFlowXla)}


def make_library(name, threads):
    """The library called name, set to run on `threads` threads (ImportError if not installed);
    threads=None leaves elman's and torch's own defaults."""
    try:
        cls = LIBRARY_CLASSES[name]
    except KeyError:
        raise ValueError(f"library must be one of {sorted(LIBRARY_CLASSES)}, got {name!r}") from None
    return cls(threads)
