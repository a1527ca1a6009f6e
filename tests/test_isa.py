"""Every kernel build this CPU can run (baseline, AVX2, AVX-512) passes the parity tests and gives
the same numbers as the others; ELMAN_ISA picks the build, and a wrong one is a clear ImportError.

The build is chosen once, when ``elman._core`` is imported, so each build runs in a subprocess of
its own with ``ELMAN_ISA`` set: one process per build does everything below that needs it (a
Python start and an elman import cost seconds on a loaded machine).
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import elman
from elman import reference as ref

TESTS = os.path.dirname(os.path.abspath(__file__))
CONFIG = elman.show_config(print_out=False)
RUNNABLE = CONFIG["isas"]  # the builds of this package that this CPU can run
BUILT = CONFIG["built_isas"]
SIMD = {"baseline": "SSE2", "avx2": "AVX2", "avx512": "AVX-512"}  # what each build must report

# A subset of test_parity.py that still covers every kernel (forward and backward of the
# recurrence, the one-step cell, the output layer, the loss), both dtypes and every edge shape.
PARITY_SUBSET = "tanh or softmax-float or long_sequence or None-mean"

# Sizes for the cross-build comparison: large enough for every vectorised and parallel path, and
# not multiples of any vector width.
T, B, D, H, O = 7, 33, 29, 131, 67


def run_python(code, isa, *args):
    """Run `python -c code *args` with ELMAN_ISA=isa; the finished process (never raises)."""
    env = dict(os.environ, ELMAN_ISA=isa)
    return subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True,
                          text=True, timeout=600)


def inputs(dtype):
    """Fixed random inputs of every kernel, the same in every process."""
    rng = np.random.default_rng(2024)
    return {
        "x": rng.standard_normal((T, B, D)).astype(dtype),
        "h0": rng.standard_normal((B, H)).astype(dtype),
        "W_xh": (rng.standard_normal((H, D)) / np.sqrt(D)).astype(dtype),
        "W_hh": (rng.standard_normal((H, H)) / np.sqrt(H)).astype(dtype),
        "b_h": rng.standard_normal(H).astype(dtype),
        "W_hy": (rng.standard_normal((O, H)) / np.sqrt(H)).astype(dtype),
        "b_y": rng.standard_normal(O).astype(dtype),
        "dhs": rng.standard_normal((T, B, H)).astype(dtype),
        "dys": rng.standard_normal((T, B, O)).astype(dtype),
        "targets": rng.integers(0, O, (T, B)),
    }


def results_of_every_kernel(elman_module):
    """{name: array} of every kernel of elman_module (elman or elman.reference) on inputs()."""
    results = {}
    for dtype in (np.float32, np.float64):
        p, name = inputs(dtype), np.dtype(dtype).name
        for f in ("tanh", "sigmoid", "relu", "identity"):
            hs = elman_module.rnn_forward(p["x"], p["h0"], p["W_xh"], p["W_hh"], p["b_h"], f)
            grads = elman_module.rnn_backward(p["dhs"], p["x"], p["h0"], hs, p["W_xh"],
                                              p["W_hh"], f)
            results[f"{name}/rnn_forward/{f}"] = hs
            for g_name, g in zip(("dx", "dh0", "dW_xh", "dW_hh", "db_h"), grads):
                results[f"{name}/rnn_backward/{f}/{g_name}"] = g
            results[f"{name}/cell_forward/{f}"] = elman_module.cell_forward(
                p["x"][0], p["h0"], p["W_xh"], p["W_hh"], p["b_h"], f)
        for g in ("identity", "softmax", "sigmoid"):
            ys = elman_module.output_forward(hs, p["W_hy"], p["b_y"], g)
            results[f"{name}/output_forward/{g}"] = ys
            grads = elman_module.output_backward(p["dys"], hs, ys, p["W_hy"], g)
            for g_name, grad in zip(("dhs", "dW_hy", "db_y"), grads):
                results[f"{name}/output_backward/{g}/{g_name}"] = grad
        loss, dlogits = elman_module.softmax_cross_entropy(3 * ys, p["targets"])
        results[f"{name}/softmax_cross_entropy/loss"] = np.array(loss)
        results[f"{name}/softmax_cross_entropy/dlogits"] = dlogits
    return results


# What each build's process runs: report the build in use, run the parity subset, and save
# results_of_every_kernel to the .npz named by argv[1]. Its last line of output is a JSON summary.
ONE_BUILD = """
import json, sys
import numpy as np
import pytest
import elman
sys.path.insert(0, {tests!r})
import test_isa

config = elman.show_config(print_out=False)
parity_exit = int(pytest.main([{parity!r}, "-q", "-p", "no:cacheprovider", "-k", {subset!r}]))
np.savez(sys.argv[1], **test_isa.results_of_every_kernel(elman))
print(json.dumps({{"isa": config["isa"], "simd": config["simd"], "parity_exit": parity_exit}}))
"""


@pytest.fixture(scope="module")
def builds(tmp_path_factory):
    """{isa: (summary dict, parity output, {name: array})} for every build this CPU runs."""
    folder = tmp_path_factory.mktemp("isa")
    code = ONE_BUILD.format(tests=TESTS, parity=os.path.join(TESTS, "test_parity.py"),
                            subset=PARITY_SUBSET)
    out = {}
    for isa in RUNNABLE:
        path = folder / f"{isa}.npz"
        run = run_python(code, isa, str(path))
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        *parity_output, summary = run.stdout.strip().splitlines()
        with np.load(path) as data:
            results = {name: data[name] for name in data.files}
        out[isa] = (json.loads(summary), "\n".join(parity_output), results)
    return out


# --------------------------------------------------------------------------- #
# Choosing the build
# --------------------------------------------------------------------------- #

@pytest.mark.parametrize("isa", RUNNABLE)
def test_elman_isa_chooses_the_build(builds, isa):
    summary, _, _ = builds[isa]
    assert summary["isa"] == isa
    assert SIMD[isa] in summary["simd"]


def test_default_build_is_the_first_runnable_one():
    result = run_python("import elman; print(elman.show_config(print_out=False)['isa'])", "")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == RUNNABLE[0]
    assert RUNNABLE == [isa for isa in BUILT if isa in RUNNABLE]  # the package's preference


def test_unknown_elman_isa_is_an_import_error_that_lists_the_builds():
    code = ("try:\n    import elman\nexcept ImportError as e:\n    print(e)\n"
            "else:\n    print('imported')")
    result = run_python(code, "avx1024")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (f"ELMAN_ISA=avx1024 is not a build in this package "
                                     f"({', '.join(BUILT)})")


@pytest.mark.skipif(RUNNABLE == BUILT, reason="this CPU runs every build in the package")
def test_build_this_cpu_cannot_run_is_an_import_error():
    isa = next(isa for isa in BUILT if isa not in RUNNABLE)
    result = run_python("import elman", isa)
    assert result.returncode != 0
    assert f"ELMAN_ISA={isa}: this CPU cannot run that build" in result.stderr


# --------------------------------------------------------------------------- #
# Every build is correct, and they agree
# --------------------------------------------------------------------------- #

@pytest.mark.parametrize("isa", RUNNABLE)
def test_parity_tests_pass_under_each_build(builds, isa):
    summary, output, _ = builds[isa]
    assert summary["parity_exit"] == 0, output[-3000:]
    assert " passed" in output and " failed" not in output


def tolerance(name):
    """float32 results agree to float32 rounding; float64 ones much tighter. The builds differ
    in vector width and FMA, so sums are rounded in different orders: not bit-identical."""
    if name.startswith("float32"):
        return dict(rtol=2e-5, atol=2e-5)
    return dict(rtol=1e-12, atol=1e-12)


def assert_close(got, want, what):
    assert got.keys() == want.keys()
    for name in want:
        assert got[name].dtype == want[name].dtype and got[name].shape == want[name].shape, name
        scale = max(1.0, float(np.abs(want[name]).max()))
        t = tolerance(name)
        np.testing.assert_allclose(got[name], want[name], rtol=t["rtol"], atol=t["atol"] * scale,
                                   err_msg=f"{name}: {what}")


@pytest.mark.skipif(len(RUNNABLE) < 2, reason="this CPU runs only one build")
def test_every_build_gives_the_same_results(builds):
    first, *others = RUNNABLE
    for isa in others:
        assert_close(builds[isa][2], builds[first][2], f"{isa} differs from {first}")


@pytest.fixture(scope="module")
def reference_results():
    return results_of_every_kernel(ref)


@pytest.mark.parametrize("isa", RUNNABLE)
def test_every_build_gives_the_reference_results(builds, reference_results, isa):
    """Agreement among builds is not enough: each must also equal the NumPy spec."""
    assert_close(builds[isa][2], reference_results, f"{isa} differs from elman.reference")
