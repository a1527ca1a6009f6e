"""elman._checks: the one home of the argument checks that the modules share. Each rule once:
a wrong type is a TypeError, a wrong value a ValueError, and the dtype rule is the kernels'."""

import numpy as np
import pytest

from elman import _checks, keras, losses
from elman.stack import compute_dtype


@pytest.mark.parametrize("value", [1, 7, np.int64(3), np.uint8(2)])
def test_positive_int_takes_integers(value):
    assert _checks.positive_int(value, "n") == int(value)
    assert type(_checks.positive_int(value, "n")) is int


@pytest.mark.parametrize("value, error, match", [
    (0, ValueError, r"n must be a positive integer \(at least 1\), got 0"),
    (-3, ValueError, "got -3"),
    (True, TypeError, "n must be an int, got bool"),
    (np.bool_(True), TypeError, "got bool"),
    (2.0, TypeError, "got float"),
    ("2", TypeError, "got str"),
    (None, TypeError, "got NoneType"),
])
def test_positive_int_refuses(value, error, match):
    with pytest.raises(error, match=match):
        _checks.positive_int(value, "n")


def test_flag_takes_only_bools():
    assert _checks.flag(np.bool_(False), "f") is False
    for bad in (0, 1, None, "yes"):
        with pytest.raises(TypeError, match="f must be True or False"):
            _checks.flag(bad, "f")


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, np.longdouble, np.int32,
                                   np.uint8, np.bool_])
def test_float_array_follows_the_kernels_dtype_rule(dtype):
    a = np.ones(3, dtype)
    assert _checks.float_array(a, "a").dtype == compute_dtype([a])


def test_float_array_does_not_copy_what_is_already_float():
    a = np.ones(3, np.float32)
    assert _checks.float_array(a, "a") is a


def test_keras_and_losses_follow_the_same_rule_for_long_double():
    """The copies had drifted: keras kept long double (float128) where the kernels compute in
    float64."""
    rng = np.random.default_rng(0)
    W = [rng.standard_normal(s).astype(np.longdouble) for s in ((3, 4), (4, 4), (4,))]
    for array in keras.from_keras_weights(*W).values():
        assert array.dtype == np.float64
    loss, grad = losses.mse(np.ones(3, np.longdouble), np.zeros(3))
    assert np.asarray(grad).dtype == np.float64
