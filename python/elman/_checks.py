"""The argument checks every module of elman shares: one rule each, one message each.

A wrong type is a TypeError, a wrong value a ValueError, and each message names the argument
and what it got. The dtype rule is the kernels' (csrc/bindings.cpp, stack.compute_dtype): a call
computes in float32 when its floats are at most 32 bits wide (float16 is raised), else in
float64 (integers, booleans, float64, and wider floats, which are rounded to float64).
"""

from __future__ import annotations

import numbers

import numpy as np

__all__ = ["positive_int", "flag", "float_array"]


def positive_int(value, name):
    """value as an int >= 1: any integral number but a bool (numpy integers included)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be a positive integer (at least 1), got {value}")
    return int(value)


def flag(value, name):
    """value as a bool: True or False only (numpy's bools included), not 0, 1 or None."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def float_array(value, name):
    """value as a float32 or float64 array by the kernels' rule; no copy when it already is one."""
    array = np.asarray(value)
    if array.dtype.kind in "biu":
        return array.astype(np.float64)
    if array.dtype.kind != "f":
        raise TypeError(f"{name} must hold real numbers, got dtype {array.dtype}")
    if array.dtype.itemsize < 4:
        return array.astype(np.float32)
    if array.dtype.itemsize > 8:
        return array.astype(np.float64)
    return array
