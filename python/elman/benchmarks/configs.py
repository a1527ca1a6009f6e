"""What the benchmark measures: problem sizes, FLOP counts, the issue's targets, and the suites.

Shape legend (as in ``csrc/elman.h``): T steps, B batch, D input features, H hidden units,
O outputs. Every problem here is tanh, float32, time-major ``x[T, B, D]``.

FLOP counts (one multiply-add = 2 FLOPs; pointwise work is not counted):

* forward: the input product ``W_xh x`` and the recurrent product ``W_hh h`` at every step,
  ``2*T*B*H*(D + H)``;
* forward+backward: every product, counted one by one: the forward (``D + H``), dx (``D``),
  dW_xh (``D``), dW_hh (``H``) and the dh recurrence through W_hh (``H``):
  ``2*T*B*H*(3D + 3H)``;
* a training step of the full model (L layers, output layer, softmax cross-entropy, Adam),
  counted product by product: every layer's forward ``2TBH(D_l + H)``, dW_xh, dW_hh and dh
  ``2TBH(D_l + 2H)``, and dx ``2TBH D_l`` except for layer 0 (its input is data), plus the
  output layer's forward, dW_hy and dhs, ``6*T*B*O*H``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "PASSES",
    "RecurrenceConfig",
    "TrainConfig",
    "Target",
    "Suite",
    "suite",
    "SUITES",
    "LIBRARIES",
    "recurrence_targets",
    "train_targets",
    "MEMORY_TARGET",
    "OVERHEAD_TARGET",
]

FORWARD, FORWARD_BACKWARD = "forward", "forward+backward"
PASSES = (FORWARD, FORWARD_BACKWARD)

# Every library the harness knows, in the order of the report's columns. "reference" is the
# NumPy spec, elman.reference; onnxruntime and openvino run the ONNX RNN operator and have no
# backward; jax is a jitted lax.scan, tf-xla Keras' SimpleRNN compiled by XLA (jit_compile=True).
# The last three are optional peers (pip install elman[peers]); a library that is not installed
# is left out of a run.
LIBRARIES = ("elman", "reference", "torch", "onnxruntime", "openvino", "jax", "tf-xla")
FORWARD_ONLY = ("onnxruntime", "openvino")


@dataclass(frozen=True)
class RecurrenceConfig:
    """One recurrence problem: ``hs = rnn_forward(x[T, B, D], h0[B, H], ...)``, no output layer.

    group is "fixed" for the issue's named sizes and "sweep" for the H sweep.
    """

    name: str
    T: int
    B: int
    D: int
    H: int
    group: str = "fixed"

    def flops(self, pass_):
        """FLOPs of one forward or forward+backward pass (see the module docstring)."""
        T, B, D, H = self.T, self.B, self.D, self.H
        if pass_ == FORWARD:
            return 2 * T * B * H * (D + H)
        if pass_ == FORWARD_BACKWARD:
            return self.forward_backward_operations()
        raise ValueError(f"pass must be one of {PASSES}, got {pass_!r}")

    def forward_backward_operations(self):
        """FLOPs of every product of forward+backward, counted one by one: 2TBH(3D + 3H)."""
        T, B, D, H = self.T, self.B, self.D, self.H
        return 2 * T * B * H * (3 * D + 3 * H)

    def shape_text(self):
        return f"T={self.T} B={self.B} D={self.D} H={self.H}"


@dataclass(frozen=True)
class TrainConfig:
    """One training step of the full model: ``num_layers`` tanh layers of H units reading
    ``x[T, B, D]``, an output layer of O logits, softmax cross-entropy (mean) and Adam."""

    name: str
    T: int
    B: int
    D: int
    H: int
    O: int
    num_layers: int = 2

    def flops(self):
        """FLOPs of one step: every layer's forward and backward (no dx for layer 0), and the
        output layer's forward, weight gradient and input gradient."""
        T, B, H, O = self.T, self.B, self.H, self.O
        total = 6 * T * B * O * H
        for layer in range(self.num_layers):
            D_in = self.D if layer == 0 else H
            forward = 2 * T * B * H * (D_in + H)
            weights_and_recurrence = 2 * T * B * H * (D_in + 2 * H)  # dW_xh, dW_hh, dh
            dx = 0 if layer == 0 else 2 * T * B * H * D_in
            total += forward + weights_and_recurrence + dx
        return total

    def shape_text(self):
        return f"T={self.T} B={self.B} D={self.D} H={self.H} O={self.O} L={self.num_layers}"


@dataclass(frozen=True)
class Target:
    """One of the issue's targets.

    kind "speedup": elman at least ``value`` times faster than ``peer`` (peer ms / elman ms);
    "roofline": elman's GFLOP/s at least ``value`` of the machine's GEMM; "memory": peak memory
    at most ``value`` times what the math must hold; "overhead": at most ``value`` microseconds.
    """

    kind: str
    value: float
    peer: str | None = None

    def describe(self):
        if self.kind == "speedup":
            return f">= {self.value:g}x {self.peer}"
        if self.kind == "roofline":
            return f">= {self.value:.0%} roofline"
        if self.kind == "memory":
            return f"<= {self.value:g}x"
        if self.kind == "overhead":
            return f"< {self.value:g} us"
        raise ValueError(f"unknown target kind {self.kind!r}")

    def met(self, measured):
        """Whether ``measured`` (the quantity named by kind) meets the target; None when it was
        not measured (e.g. the peer is not installed)."""
        if measured is None:
            return None
        if self.kind in ("speedup", "roofline"):
            return measured >= self.value
        if self.kind == "memory":
            return measured <= self.value
        return measured < self.value


# The targets, keyed by (config name, pass).
_RECURRENCE_TARGETS = {
    ("stream", FORWARD): (Target("speedup", 5, "onnxruntime"),),
    ("stream", FORWARD_BACKWARD): (Target("speedup", 25, "torch"),),
    ("charlm", FORWARD): (Target("speedup", 3, "onnxruntime"),),
    ("charlm", FORWARD_BACKWARD): (Target("speedup", 15, "torch"),),
    ("medium", FORWARD): (Target("speedup", 1.5, "torch"), Target("roofline", 0.60)),
    ("medium", FORWARD_BACKWARD): (Target("speedup", 2, "torch"), Target("roofline", 0.65)),
    ("large", FORWARD): (Target("roofline", 0.80),),
    ("large", FORWARD_BACKWARD): (Target("roofline", 0.75), Target("speedup", 1.2, "torch")),
}
_TRAIN_TARGETS = {
    "medium": (Target("speedup", 1.8, "torch"),),
    "charlm": (Target("speedup", 10, "torch"),),
}
# The second round of targets (issue 16), against the strongest peers: the optional ones count
# only where installed (not measured otherwise). A library that has no such pass (onnxruntime's
# and OpenVINO's backward) is not a target.
_EVERY_PEER = ("torch", "onnxruntime", "openvino", "jax", "tf-xla")


def _ahead_of_every_peer(pass_, factor=1.1):
    return tuple(Target("speedup", factor, peer) for peer in _EVERY_PEER
                 if pass_ == FORWARD or peer not in FORWARD_ONLY)


_PEER_TARGETS = {
    ("stream", FORWARD): (Target("speedup", 8, "onnxruntime"), Target("speedup", 4, "openvino"),
                          Target("speedup", 4, "jax")),
    ("stream", FORWARD_BACKWARD): (Target("speedup", 5, "jax"), Target("speedup", 30, "torch")),
    ("charlm", FORWARD): (Target("speedup", 5, "onnxruntime"), Target("speedup", 5, "openvino"),
                          Target("speedup", 5, "jax")),
    ("charlm", FORWARD_BACKWARD): (Target("speedup", 5, "jax"), Target("speedup", 30, "torch")),
    ("medium", FORWARD): _ahead_of_every_peer(FORWARD),
    ("medium", FORWARD_BACKWARD): _ahead_of_every_peer(FORWARD_BACKWARD),
    ("large", FORWARD): (*_ahead_of_every_peer(FORWARD), Target("roofline", 0.85)),
    ("large", FORWARD_BACKWARD): (*_ahead_of_every_peer(FORWARD_BACKWARD), Target("roofline", 0.85)),
}
MEMORY_TARGET = Target("memory", 1.2)
OVERHEAD_TARGET = Target("overhead", 3.0)


def recurrence_targets(config, pass_):
    """The issue's targets for one recurrence config and pass (an empty tuple for the sweep)."""
    if config.group != "fixed":
        return ()
    key = (config.name, pass_)
    return _strongest(_RECURRENCE_TARGETS.get(key, ()) + _PEER_TARGETS.get(key, ()))


def _strongest(targets):
    """One target per (kind, peer), the strongest of the rounds (1.5x torch, not also 1.1x)."""
    best = {}
    for target in targets:
        key = (target.kind, target.peer)
        if key not in best or target.value > best[key].value:
            best[key] = target
    return tuple(best.values())


def train_targets(config):
    return _TRAIN_TARGETS.get(config.name, ())


# --------------------------------------------------------------------------- #
# The suites
# --------------------------------------------------------------------------- #

STREAM = RecurrenceConfig("stream", 1000, 1, 32, 64)
CHARLM = RecurrenceConfig("charlm", 25, 1, 65, 100)
MEDIUM = RecurrenceConfig("medium", 100, 32, 128, 256)
LARGE = RecurrenceConfig("large", 50, 128, 512, 1024)

SWEEP_T = 100  # the sweep's sequence length; its input size is D = H


def sweep(hidden_sizes, batches=(1, 64), T=SWEEP_T):
    """The H sweep: T steps, D = H, at each batch size."""
    return tuple(RecurrenceConfig(f"sweep B={B} H={H}", T, B, H, H, group="sweep")
                 for B in batches for H in hidden_sizes)


@dataclass(frozen=True)
class Suite:
    """Everything one run measures, and how hard it tries.

    rounds: timed samples per (library, config, pass), the libraries alternating; the report
    shows their median. min_sample_seconds: each sample times enough calls to last at least
    this long. warmup_seconds: calls run (untimed) before the first sample. gemm_n: the side of
    the square float32 matrices of the roofline GEMM. memory_configs: measured each in a fresh
    process. overhead_calls: calls per timing of the T=1, H=8 call, best of overhead_repeats.
    """

    name: str
    recurrence: tuple
    train: tuple
    memory_configs: tuple
    rounds: int
    min_sample_seconds: float
    warmup_seconds: float
    gemm_n: int
    overhead_calls: int
    overhead_repeats: int
    notes: tuple = field(default=())


SUITES = {
    "full": Suite(
        name="full",
        recurrence=(STREAM, CHARLM, MEDIUM, LARGE) + sweep((32, 64, 128, 256, 512, 1024, 2048)),
        train=(TrainConfig("medium", 100, 32, 128, 256, 128), TrainConfig("charlm", 25, 1, 65, 100, 65)),
        memory_configs=(MEDIUM, LARGE),
        rounds=5, min_sample_seconds=0.2, warmup_seconds=0.3, gemm_n=2048,
        overhead_calls=20000, overhead_repeats=7,
    ),
    "quick": Suite(
        name="quick",
        recurrence=(STREAM, CHARLM, MEDIUM) + sweep((32, 128, 512)),
        train=(TrainConfig("medium", 100, 32, 128, 256, 128), TrainConfig("charlm", 25, 1, 65, 100, 65)),
        memory_configs=(MEDIUM,),
        rounds=3, min_sample_seconds=0.05, warmup_seconds=0.05, gemm_n=1024,
        overhead_calls=5000, overhead_repeats=3,
        notes=("quick run: 3 rounds, no 'large' config, the sweep shortened to H = 32, 128, 512",),
    ),
    # Tiny sizes, one round: checks that the whole pipeline works (used by the tests), not speed.
    "smoke": Suite(
        name="smoke",
        recurrence=(RecurrenceConfig("tiny", 7, 2, 3, 5),) + sweep((4, 8), batches=(1, 3), T=6),
        train=(TrainConfig("tiny", 6, 2, 3, 5, 4),),
        memory_configs=(RecurrenceConfig("tiny", 7, 2, 3, 5),),
        rounds=1, min_sample_seconds=0.0, warmup_seconds=0.0, gemm_n=64,
        overhead_calls=100, overhead_repeats=1,
        notes=("smoke run: tiny sizes and one round, to check the pipeline; the timings mean nothing",),
    ),
}


def suite(name):
    """The suite called name: "full", "quick" or "smoke"."""
    try:
        return SUITES[name]
    except KeyError:
        raise ValueError(f"suite must be one of {sorted(SUITES)}, got {name!r}") from None
