"""Threads: the kernels' thread count (set_num_threads, OMP_NUM_THREADS, threadpoolctl), many
Python threads calling elman at once, and the GIL released while a kernel runs."""

import concurrent.futures
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import elman
from conftest import make_rnn_inputs

# Large enough that every kernel takes its parallel path (as in test_determinism.py).
T, B, D, H, O = 9, 70, 33, 200, 130
PYTHON_THREADS = 8


@pytest.fixture
def restore_num_threads():
    """Put the thread count back after a test that changes it."""
    before = elman.get_num_threads()
    yield
    elman.set_num_threads(before)


def run_python(code, **env):
    """stdout of `python -c code` with the given environment variables added."""
    result = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, **env),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout


# --------------------------------------------------------------------------- #
# The thread count
# --------------------------------------------------------------------------- #

def test_get_num_threads_is_a_positive_int():
    n = elman.get_num_threads()
    assert type(n) is int and n >= 1
    assert elman.show_config(print_out=False)["num_threads"] == n


@pytest.mark.parametrize("n", [1, 2, 3, 7])
@pytest.mark.needs_threads
def test_set_num_threads_round_trips(n, restore_num_threads):
    elman.set_num_threads(n)
    assert elman.get_num_threads() == n
    assert elman.show_config(print_out=False)["num_threads"] == n


@pytest.mark.parametrize("bad", [1.0, 2.5, "2", None, True, [2], np.float64(2)])
def test_set_num_threads_rejects_non_integers(bad, restore_num_threads):
    before = elman.get_num_threads()
    with pytest.raises(TypeError, match="set_num_threads needs an int, got"):
        elman.set_num_threads(bad)
    assert elman.get_num_threads() == before


@pytest.mark.parametrize("bad", [0, -1])
def test_set_num_threads_rejects_counts_below_one(bad, restore_num_threads):
    before = elman.get_num_threads()
    with pytest.raises(ValueError, match=f"set_num_threads needs n >= 1, got {bad}"):
        elman.set_num_threads(bad)
    assert elman.get_num_threads() == before


@pytest.mark.parametrize("bad", [10**6, 2**31, -(2**40)])
def test_set_num_threads_rejects_counts_no_machine_can_run(bad, restore_num_threads):
    """A count OpenMP cannot start must be refused when it is set, not crash the next call."""
    before = elman.get_num_threads()
    with pytest.raises(ValueError, match="set_num_threads needs"):
        elman.set_num_threads(bad)
    assert elman.get_num_threads() == before


@pytest.mark.needs_threads
def test_omp_num_threads_is_the_default_and_set_num_threads_overrides_it():
    code = ("import elman; print(elman.get_num_threads(), "
            "elman.show_config(print_out=False)['num_threads']); "
            "elman.set_num_threads(2); print(elman.get_num_threads())")
    for env_value in ("1", "3"):
        default, shown, overridden = run_python(code, OMP_NUM_THREADS=env_value).split()
        assert default == shown == env_value
        assert overridden == "2"


# --------------------------------------------------------------------------- #
# threadpoolctl
# --------------------------------------------------------------------------- #

@pytest.mark.needs_threads
def test_threadpoolctl_sees_and_limits_the_kernels_openmp():
    """In a fresh process (set_num_threads never called), threadpool_limits governs the kernels:
    threadpoolctl finds elman's OpenMP runtime, and a limit of 1 is what the kernels use."""
    pytest.importorskip("threadpoolctl")
    code = """
import elman, threadpoolctl
apis = {info["user_api"] for info in threadpoolctl.threadpool_info()}
assert "openmp" in apis, apis
with threadpoolctl.threadpool_limits(limits=1, user_api="openmp"):
    inside = elman.get_num_threads()
print(inside, elman.get_num_threads())
"""
    inside, after = run_python(code, OMP_NUM_THREADS="2").split()
    assert (inside, after) == ("1", "2")


def test_threadpool_limits_gives_the_same_results():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    rng = np.random.default_rng(5)
    p = make_rnn_inputs(rng, T, B, D, H, np.float32)
    want = elman.rnn_forward(**p)
    dhs = rng.standard_normal(want.shape).astype(np.float32)
    want_grads = elman.rnn_backward(dhs, p["x"], p["h0"], want, p["W_xh"], p["W_hh"])
    for limit in (1, 2):
        with threadpoolctl.threadpool_limits(limits=limit):
            np.testing.assert_array_equal(elman.rnn_forward(**p), want)
            grads = elman.rnn_backward(dhs, p["x"], p["h0"], want, p["W_xh"], p["W_hh"])
            for g, w in zip(grads, want_grads):
                np.testing.assert_array_equal(g, w)


# --------------------------------------------------------------------------- #
# Many Python threads at once
# --------------------------------------------------------------------------- #

def job_inputs(job):
    """The inputs of job number `job`: different for every job, float32 or float64."""
    dtype = np.float32 if job % 2 else np.float64
    rng = np.random.default_rng(1000 + job)
    p = make_rnn_inputs(rng, T, B, D, H, dtype)
    p["dhs"] = rng.standard_normal((T, B, H)).astype(dtype)
    p["W_hy"] = (rng.standard_normal((O, H)) / np.sqrt(H)).astype(dtype)
    p["b_y"] = rng.standard_normal(O).astype(dtype)
    p["targets"] = rng.integers(0, O, (T, B))
    return p


def functional_job(p):
    """Every kernel of the functional core on one job's inputs; all their results, in order."""
    hs = elman.rnn_forward(p["x"], p["h0"], p["W_xh"], p["W_hh"], p["b_h"])
    grads = elman.rnn_backward(p["dhs"], p["x"], p["h0"], hs, p["W_xh"], p["W_hh"])
    h1 = elman.cell_forward(p["x"][0], p["h0"], p["W_xh"], p["W_hh"], p["b_h"], "relu")
    cell_grads = elman.cell_backward(p["dhs"][0], p["x"][0], p["h0"], h1, p["W_xh"], p["W_hh"],
                                     "relu")
    ys = elman.output_forward(hs, p["W_hy"], p["b_y"], "softmax")
    out_grads = elman.output_backward(ys, hs, ys, p["W_hy"], "softmax")
    loss, dlogits = elman.softmax_cross_entropy(ys, p["targets"])
    return [hs, *grads, h1, *cell_grads, ys, *out_grads, np.array(loss), dlogits]


def model_job(p):
    """A model of its own per job: forward and backward, and the gradients."""
    rnn = elman.RNN(D, H, num_layers=2, bidirectional=True, dtype=p["x"].dtype, seed=7)
    out, h_n = rnn.forward(p["x"])
    dx = rnn.backward(np.ones_like(out))
    return [np.array(out), h_n, dx, *rnn.grads.values()]


def shared_model_forward_job(rnn, p):
    """Forward of one model shared by every thread (forward only reads the parameters)."""
    out, h_n = rnn.forward(p["x"])
    return [np.array(out), h_n]


def assert_same_as_serial(job_fn, jobs):
    """job_fn over `jobs` on PYTHON_THREADS threads at once gives exactly the serial results."""
    serial = [job_fn(job) for job in jobs]
    barrier = threading.Barrier(PYTHON_THREADS)

    def together(job):
        if job < PYTHON_THREADS:
            barrier.wait(timeout=60)  # the first call of every thread starts at the same time
        return job_fn(job)

    with concurrent.futures.ThreadPoolExecutor(PYTHON_THREADS) as pool:
        concurrent_results = list(pool.map(together, jobs))
    for job, got, want in zip(jobs, concurrent_results, serial):
        assert len(got) == len(want)
        for i, (g, w) in enumerate(zip(got, want)):
            assert g.dtype == w.dtype and g.shape == w.shape
            np.testing.assert_array_equal(g, w, err_msg=f"job {job}, result {i}")


@pytest.mark.parametrize("kernel_threads", [1, 2])
def test_concurrent_functional_calls_equal_serial_calls(kernel_threads, restore_num_threads):
    elman.set_num_threads(kernel_threads)
    inputs = [job_inputs(job) for job in range(2 * PYTHON_THREADS)]
    assert_same_as_serial(lambda job: functional_job(inputs[job]), range(len(inputs)))


def test_concurrent_models_equal_serial_models():
    inputs = [job_inputs(job) for job in range(PYTHON_THREADS)]
    assert_same_as_serial(lambda job: model_job(inputs[job]), range(len(inputs)))


def test_one_model_shared_by_threads_for_forward():
    rnn = elman.RNN(D, H, num_layers=2, output_size=O, output_activation="softmax", seed=3)
    inputs = [job_inputs(job) for job in range(PYTHON_THREADS)]
    assert_same_as_serial(lambda job: shared_model_forward_job(rnn, inputs[job]),
                          range(len(inputs)))


# --------------------------------------------------------------------------- #
# The GIL is released inside the kernels
# --------------------------------------------------------------------------- #

def long_recurrence(seconds=0.2):
    """Arguments of an rnn_forward that runs for about `seconds` on this machine: a long
    sequence of one small batch is a chain of dependent steps, so the call lasts long whatever
    the thread count. Its length is measured, not assumed: a fixed T = 4000 was long enough on a
    Zen 4 and took 0.047 s on a Zen 5, under the 0.05 s the check needs."""
    rng = np.random.default_rng(0)
    probe = make_rnn_inputs(rng, 1000, 2, 16, 256, np.float64)
    elman.rnn_forward(**probe)  # warm: the first call pays for page faults
    start = time.perf_counter()
    elman.rnn_forward(**probe)
    per_step = (time.perf_counter() - start) / 1000
    T = int(min(max(seconds / max(per_step, 1e-9), 1000), 200_000))
    return make_rnn_inputs(rng, T, 2, 16, 256, np.float64)


def python_progress_during(call):
    """Run call() in a thread while another Python thread takes a timestamp every millisecond;
    the fraction of the call's middle half in which that thread took timestamps.

    A kernel that held the GIL would leave the timestamp thread waiting from the call's start to
    its end, so at most the edges of the call (one switch interval, 5 ms) would hold timestamps;
    a kernel that releases the GIL lets it run throughout.
    """
    stamps, done = [], threading.Event()

    def tick():
        while not done.is_set():
            stamps.append(time.perf_counter())
            time.sleep(0.001)  # sleeping releases the GIL; waking up needs it back

    span = []

    def timed_call():
        start = time.perf_counter()
        call()
        span.append((start, time.perf_counter()))

    ticker = threading.Thread(target=tick)
    ticker.start()
    worker = threading.Thread(target=timed_call)
    worker.start()
    worker.join()
    done.set()
    ticker.join()
    (start, end), = span
    duration = end - start
    lo, hi = start + duration / 4, end - duration / 4
    inside = np.array([s for s in stamps if lo <= s <= hi])
    # Cover the middle half with 20 bins: in how many of them did the Python thread run?
    bins = np.unique(np.floor((inside - lo) / ((hi - lo) / 20)).astype(int))
    return duration, len(bins[(bins >= 0) & (bins < 20)]) / 20


@pytest.mark.parametrize("function", ["rnn_forward", "rnn_backward"])
def test_gil_is_released_while_a_kernel_runs(function, restore_num_threads):
    # One kernel thread: the ticking Python thread has the other core, and the call's length
    # does not depend on how the machine's load delays a second OpenMP thread at each step.
    elman.set_num_threads(1)
    p = long_recurrence()
    hs = elman.rnn_forward(**p)
    dhs = np.ones_like(hs)
    call = {"rnn_forward": lambda: elman.rnn_forward(**p),
            "rnn_backward": lambda: elman.rnn_backward(dhs, p["x"], p["h0"], hs, p["W_xh"],
                                                       p["W_hh"])}[function]
    duration, share = python_progress_during(call)
    assert duration > 0.05, "the call is too short to tell; make long_recurrence longer"
    # With the GIL held the share would be 0 (duration/2 >> 5 ms switch interval); released, the
    # Python thread runs in nearly every bin (a loaded machine may pause it now and then).
    assert share >= 0.5, f"Python ran in {share:.0%} of the middle of a {duration:.3f} s call"


def test_gil_check_detects_a_call_that_holds_the_gil():
    """The instrument itself: the builtin sum over a long range is one C call that keeps the GIL
    until it returns (it never checks for a waiting thread), and must score near 0."""
    duration, share = python_progress_during(lambda: sum(range(20_000_000)))
    assert duration > 0.05
    assert share <= 0.1, f"Python ran in {share:.0%} of a call that holds the GIL"
