"""What a build says about itself is true, and every build gives the same bits.

elman builds with or without OpenMP (``-C cmake.define.ELMAN_OPENMP=OFF``, or automatically when
the compiler has none: a serial team then runs every job on the caller), with g++ or clang, and
picks its kernel build from CPUID. These tests hold each build to what ``show_config()`` reports,
and compare the results of this build with other installed builds, bit for bit: name their
interpreters in ``ELMAN_COMPARE_WITH`` (``os.pathsep``-separated), e.g. the venvs of a no-OpenMP
and a clang build (docs/install.md, "Other builds").
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import elman

CONFIG = elman.show_config(print_out=False)
SERIAL = not CONFIG["openmp"]


def test_show_config_says_whether_openmp_is_in():
    assert isinstance(CONFIG["openmp"], bool)
    if CONFIG["openmp"]:
        assert isinstance(CONFIG["openmp_version"], int) and CONFIG["openmp_version"] >= 200505
    else:
        assert CONFIG["openmp_version"] is None


def test_compiler_is_named_by_vendor():
    assert CONFIG["compiler"].split(" ", 1)[0] in {"g++", "clang", "MSVC"}, CONFIG["compiler"]


@pytest.mark.skipif(not SERIAL, reason="a build with OpenMP runs a thread team")
def test_a_serial_build_is_single_threaded_whatever_it_is_told():
    before = elman.get_num_threads()
    try:
        elman.set_num_threads(4)  # accepted, so that portable code keeps working: changes nothing
        assert elman.get_num_threads() == 1
        config = elman.show_config(print_out=False)
        assert config["num_threads"] == 1
        assert config["num_threads_source"] == "serial build (no OpenMP)"
        rng = np.random.default_rng(0)
        x = rng.standard_normal((20, 64, 32))
        W_hh = rng.standard_normal((256, 256)) / 16
        elman.rnn_forward(x, np.zeros((64, 256)), rng.standard_normal((256, 32)), W_hh, np.zeros(256))
        assert elman._core.team_stats()["jobs"] == 0  # no job ever woke a pool
    finally:
        elman.set_num_threads(max(1, before))


def cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return None


@pytest.mark.skipif(cpu_flags() is None or not {"avx2", "avx512"} & set(CONFIG["built_isas"]),
                    reason="needs Linux on x86-64 with the AVX2 or AVX-512 build")
def test_isa_detection_agrees_with_the_kernel():
    """elman reads CPUID and XGETBV itself (no compiler builtin): it must find exactly the
    x86-64-v3 and -v4 feature sets that Linux reports (which it lists only when the OS saves
    their registers)."""
    flags = cpu_flags()
    v3 = {"avx", "avx2", "fma", "bmi1", "bmi2", "f16c", "movbe", "abm", "sse4_2", "popcnt", "cx16",
          "lahf_lm"} <= flags
    v4 = v3 and {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"} <= flags
    isas = CONFIG["isas"]
    if "avx2" in CONFIG["built_isas"]:
        assert ("avx2" in isas) == v3, (isas, sorted(flags))
    if "avx512" in CONFIG["built_isas"]:
        assert ("avx512" in isas) == v4, (isas, sorted(flags))


# Every kernel, both dtypes, sizes that take the threaded paths (many row blocks, several tasks per
# step) and sizes that are not multiples of any vector width. Prints a digest per result.
DIGESTS = r"""
import hashlib, json, sys
import numpy as np
import elman
threads = int(sys.argv[1])
if threads:
    elman.set_num_threads(threads)
out = {}
def put(name, *arrays):
    h = hashlib.sha256()
    for a in arrays:
        a = np.asarray(a)
        h.update(str(a.dtype).encode() + str(a.shape).encode() + np.ascontiguousarray(a).tobytes())
    out[name] = h.hexdigest()
for dtype in (np.float32, np.float64):
    for T, B, D, H, O in ((30, 64, 48, 256, 40), (9, 3, 7, 131, 5), (200, 1, 32, 64, 10)):
        rng = np.random.default_rng(T * 1000 + H)
        x = rng.standard_normal((T, B, D)).astype(dtype)
        h0 = rng.standard_normal((B, H)).astype(dtype)
        W_xh = (rng.standard_normal((H, D)) / np.sqrt(D)).astype(dtype)
        W_hh = (rng.standard_normal((H, H)) / np.sqrt(H)).astype(dtype)
        b_h = rng.standard_normal(H).astype(dtype)
        W_hy = (rng.standard_normal((O, H)) / np.sqrt(H)).astype(dtype)
        b_y = rng.standard_normal(O).astype(dtype)
        key = f"{np.dtype(dtype).name} {T},{B},{D},{H},{O}"
        for act in ("tanh", "sigmoid", "relu"):
            hs = elman.rnn_forward(x, h0, W_xh, W_hh, b_h, act)
            dhs = rng.standard_normal(hs.shape).astype(dtype)
            put(f"rnn_forward {act} {key}", hs)
            put(f"rnn_backward {act} {key}", *elman.rnn_backward(dhs, x, h0, hs, W_xh, W_hh, act))
        ys = elman.output_forward(hs, W_hy, b_y, "softmax")
        put(f"output_forward {key}", ys)
        put(f"output_backward {key}", *elman.output_backward(rng.standard_normal(ys.shape).astype(dtype), hs, ys, W_hy, "softmax"))
        loss, dlogits = elman.softmax_cross_entropy(ys, rng.integers(0, O, (T, B)))
        put(f"softmax_cross_entropy {key}", np.float64(loss), dlogits)
print(json.dumps({"isa": elman.show_config(print_out=False)["isa"], "digests": out}))
"""


def digests(python, isa, threads=0):
    env = dict(os.environ, ELMAN_ISA=isa)
    run = subprocess.run([python, "-c", DIGESTS, str(threads)], env=env, capture_output=True,
                         text=True, timeout=600, cwd=os.path.dirname(os.path.abspath(__file__)))
    assert run.returncode == 0, f"{python}: {run.stderr}"
    return json.loads(run.stdout)


def test_one_and_many_threads_give_the_same_digests():
    """The digest check itself: within this build, one thread and two give the same bits (for a
    serial build, trivially), so a difference between builds below is the builds'."""
    one, two = digests(sys.executable, CONFIG["isa"], 1), digests(sys.executable, CONFIG["isa"], 2)
    assert len(one["digests"]) == 2 * 3 * (3 * 2 + 3)
    assert one == two


OTHERS = [p for p in os.environ.get("ELMAN_COMPARE_WITH", "").split(os.pathsep) if p]


@pytest.mark.skipif(not OTHERS, reason="ELMAN_COMPARE_WITH names no other build's interpreter")
@pytest.mark.parametrize("other", OTHERS)
def test_other_builds_give_the_same_bits(other):
    """Another build (no OpenMP; or clang, whose code for the same ISA must round the same way)
    gives the same bits as this one, on the kernel build both run."""
    mine = digests(sys.executable, CONFIG["isa"])
    theirs = digests(other, CONFIG["isa"])
    differ = sorted(k for k in mine["digests"] if mine["digests"][k] != theirs["digests"].get(k))
    assert not differ, f"{other} differs from {sys.executable} on {len(differ)} results: {differ[:5]}"
