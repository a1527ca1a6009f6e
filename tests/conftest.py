"""Shared pytest helpers: a seeded rng, random RNN inputs, finite differences."""

import numpy as np
import pytest


@pytest.fixture
def rng():
    """A freshly seeded generator, so every test is reproducible on its own."""
    return np.random.default_rng(12345)


def make_rnn_inputs(rng, T, B, D, H, dtype=np.float64):
    """Random x[T,B,D], h0[B,H], W_xh[H,D], W_hh[H,H], b_h[H] as a dict.

    Weights are scaled by 1/sqrt(fan-in) so tanh and sigmoid do not saturate.
    """
    return {
        "x": rng.standard_normal((T, B, D)).astype(dtype),
        "h0": rng.standard_normal((B, H)).astype(dtype),
        "W_xh": (rng.standard_normal((H, D)) / np.sqrt(max(D, 1))).astype(dtype),
        "W_hh": (rng.standard_normal((H, H)) / np.sqrt(max(H, 1))).astype(dtype),
        "b_h": (0.1 * rng.standard_normal(H)).astype(dtype),
    }


def numerical_gradient(f, x, df=1.0, eps=1e-5):
    """Central-difference gradient of sum(f(x) * df) with respect to the array x.

    f is called on a copy of x whose entries are nudged one at a time; x itself
    is never modified.
    """
    x = np.array(x, copy=True)
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + eps
        plus = np.array(f(x))  # a copy: f may return x itself
        x[i] = old - eps
        minus = np.array(f(x))
        x[i] = old
        # difference before the sum: entries eps does not reach cancel exactly
        grad[i] = np.sum((plus - minus) * df) / (2 * eps)
    return grad


def rel_error(a, b):
    """Norm-wise relative error |a - b| / (|a| + |b|); 0 when both are zero or empty."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    num = np.linalg.norm(a - b)
    den = np.linalg.norm(a) + np.linalg.norm(b)
    return 0.0 if den == 0 else float(num / den)


def _serial_build():
    import elman

    return not elman.show_config(print_out=False)["openmp"]


def pytest_configure(config):
    import platform

    if platform.machine().lower() in ("aarch64", "arm64"):
        # NumPy's float32 matmul on aarch64 (seen under qemu, in the reference's 3x3 products of
        # finite values) raises floating-point flags it did not earn: "divide by zero", "invalid value" and
        # "overflow" with finite results. The parity tests compare the values themselves, so a
        # real overflow still fails them; only the warning is not an error there.
        config.addinivalue_line(
            "filterwarnings",
            r"ignore:(divide by zero|overflow|invalid value) encountered in matmul:RuntimeWarning")
    config.addinivalue_line(
        "markers",
        "needs_threads: needs a threaded build (skipped on a build without OpenMP, whose kernels "
        "run on one thread by design: docs/install.md)")


def pytest_collection_modifyitems(config, items):
    if not any(item.get_closest_marker("needs_threads") for item in items) or not _serial_build():
        return
    skip = pytest.mark.skip(reason="a build without OpenMP is single-threaded (show_config()['openmp'] False)")
    for item in items:
        if item.get_closest_marker("needs_threads"):
            item.add_marker(skip)
