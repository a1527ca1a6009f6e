"""One-off measurements of elman alone: peak memory of forward+backward, and per-call overhead.

Both run inside a worker process (see :mod:`.workers`): the memory probe in a fresh one that
has done nothing else, so that earlier allocations cannot hide or inflate its peak.
"""

from __future__ import annotations

import gc
import os
import resource
import sys
import timeit
import tracemalloc

from .configs import RecurrenceConfig
from .inputs import recurrence_arrays

__all__ = ["memory_probe", "overhead_probe"]

# A small problem that still takes elman's multithreaded path, run before the memory baseline
# so that one-time set-up (thread stacks, lazily built tables) is not counted as the pass's memory.
_WARMUP = RecurrenceConfig("warm-up", 4, 8, 64, 64)
_OVERHEAD = RecurrenceConfig("overhead", 1, 1, 8, 8)


def _status_bytes(field):
    """A memory field of /proc/self/status (VmRSS, VmHWM) in bytes, or None off Linux."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _reset_peak_rss():
    """Reset the kernel's record of peak RSS (VmHWM) to the current RSS; False if impossible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _max_rss_bytes():
    """Peak RSS of this process since it started, from getrusage (KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def _forward_backward(elman, a):
    hs = elman.rnn_forward(a["x"], a["h0"], a["W_xh"], a["W_hh"], a["b_h"])
    grads = elman.rnn_backward(a["dhs"], a["x"], a["h0"], hs, a["W_xh"], a["W_hh"])
    return (hs, *grads)


def memory_probe(config):
    """Peak memory of one elman forward+backward on config, against what the math must hold.

    The inputs (x, h0, weights, dhs) are built first and are part of the baseline; the extra
    memory of the pass is then measured two ways: tracemalloc's peak (every NumPy array, hence
    every array elman returns) and the growth of peak RSS (VmHWM after resetting it; this also
    sees the C++ side's workspaces, taken from elman's cache of blocks). The extra is the larger
    of the two.
    ``ratio`` = (inputs + extra) / (inputs + outputs), where outputs are hs, dx, dh0, dW_xh,
    dW_hh, db_h: 1.0 would mean no memory beyond the arrays the math must hold.
    """
    import elman

    _forward_backward(elman, recurrence_arrays(_WARMUP))
    a = recurrence_arrays(config)
    gc.collect()
    rss_before = _status_bytes("VmRSS")
    rss_reset = _reset_peak_rss()
    maxrss_before = _max_rss_bytes()
    tracemalloc.start()
    outputs = _forward_backward(elman, a)
    traced_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    if rss_reset and rss_before is not None:
        rss_growth, rss_method = _status_bytes("VmHWM") - rss_before, "VmHWM after clear_refs"
    else:  # the lifetime peak: only a lower bound of the growth when the process peaked earlier
        rss_growth, rss_method = max(0, _max_rss_bytes() - maxrss_before), "getrusage ru_maxrss"
    input_bytes = sum(v.nbytes for v in a.values())
    output_bytes = sum(v.nbytes for v in outputs)
    extra = max(traced_peak, rss_growth)
    return {
        "config": config,
        "input_bytes": input_bytes,
        "output_bytes": output_bytes,
        "traced_peak_bytes": traced_peak,
        "rss_growth_bytes": rss_growth,
        "rss_method": rss_method,
        "extra_bytes": extra,
        "ratio": (input_bytes + extra) / (input_bytes + output_bytes),
        "pid": os.getpid(),
    }


def overhead_probe(calls, repeats):
    """Microseconds per call of elman.rnn_forward with T=1, B=1, D=8, H=8 (best of `repeats`
    timings of `calls` calls): at this size the arithmetic is ~0.1 us, so this is the cost of the
    Python wrapper, the argument checks and the binding. The bare binding, elman._core's
    rnn_forward, is timed the same way to show how the time splits."""
    import elman
    from elman import _core

    a = recurrence_arrays(_OVERHEAD)
    names = {"x": a["x"], "h0": a["h0"], "W_xh": a["W_xh"], "W_hh": a["W_hh"], "b_h": a["b_h"]}
    result = {"shape": _OVERHEAD.shape_text(), "calls": calls, "repeats": repeats}
    calls_to_time = (("elman.rnn_forward", elman.rnn_forward), ("_core.rnn_forward", _core.rnn_forward))
    timers = {label: timeit.Timer("f(x, h0, W_xh, W_hh, b_h)", globals={"f": function, **names})
              for label, function in calls_to_time}
    for timer in timers.values():
        timer.timeit(max(1, calls // 10))  # warm-up
    # The two take turns, so that a slow moment of the machine does not fall on one alone (timed
    # one after the other, the bare binding once showed 1.58 us against 1.02 for the wrapper
    # that calls it).
    best = {label: float("inf") for label in timers}
    for _ in range(repeats):
        for label, timer in timers.items():
            best[label] = min(best[label], timer.timeit(calls) / calls)
    result.update({label: seconds * 1e6 for label, seconds in best.items()})
    return result
