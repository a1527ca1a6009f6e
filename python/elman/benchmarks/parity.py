"""Parity before timing: every peer must compute what elman computes, on the same inputs.

A benchmark that times a peer computing something else (a wrong weight layout, a missing bias,
gradients of another loss) measures nothing. So before a configuration is timed, every peer's
outputs are compared with elman's, array by array, and the run stops at the first disagreement.

The error of one array is ``max|peer - elman| / max|elman|``: relative to the array's largest
entry, so gradients that sum over T*B terms (dW_hh) and states bounded by 1 (hs) are judged
alike. float32 rounds at 6e-8; sums of a few thousand products over up to a thousand steps stay
far below the tolerance of 1e-4, while any real mistake (a transposed weight, a dropped bias or
step) gives errors of order 1.
"""

from __future__ import annotations

import numpy as np

__all__ = ["ParityError", "TOLERANCE", "relative_error", "check_parity"]

TOLERANCE = 1e-4


class ParityError(RuntimeError):
    """A peer's outputs disagree with elman's: the benchmark must not go on."""


def relative_error(actual, expected):
    """max|actual - expected| / max|expected| (absolute when expected is all zero); inf when
    either holds NaN or infinity where the other does not agree."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    if actual.size == 0:
        return 0.0
    difference = np.max(np.abs(actual - expected))
    if not np.isfinite(difference):
        return float("inf")
    scale = np.max(np.abs(expected))
    return float(difference / scale) if scale > 0 else float(difference)


def check_parity(where, peer, expected, actual, tolerance=TOLERANCE):
    """Compare a peer's outputs with elman's; return {array name: relative error}.

    where: what was run (e.g. "medium forward+backward"), for the message; expected: elman's
    outputs {name: ndarray}; actual: the peer's. Raises ParityError, naming every array that
    is missing, misshapen or off by more than `tolerance`, when anything disagrees.
    """
    errors, problems = {}, []
    for name, reference in expected.items():
        if name not in actual:
            problems.append(f"{name}: missing from {peer}'s outputs")
            continue
        value = np.asarray(actual[name])
        if value.shape != np.shape(reference):
            problems.append(f"{name}: {peer} gives shape {value.shape}, elman {np.shape(reference)}")
            continue
        errors[name] = relative_error(value, reference)
        if not errors[name] <= tolerance:
            problems.append(f"{name}: max|{peer} - elman| / max|elman| = {errors[name]:.3g} "
                            f"> {tolerance:g}")
    if problems:
        raise ParityError(f"parity check failed for {where}: {peer} disagrees with elman on the "
                          f"same inputs, so timing them would compare different computations:\n  "
                          + "\n  ".join(problems))
    return errors
