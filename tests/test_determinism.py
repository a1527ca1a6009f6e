"""Results are bit-identical for any number of threads, any interleaving of them (other processes
competing for the cores), and wherever the arrays sit in memory."""

import hashlib
import os
import subprocess
import sys

import numpy as np
import pytest

import elman
from conftest import make_rnn_inputs

# Large enough that every kernel runs its parallel path (several blocks of rows and hidden units).
T, B, D, H, O = 9, 70, 33, 200, 130
# Shapes whose shared steps are split by rows too (B >= 16, H >= 256), one with a last block of
# rows that ends in a single row (37 = 10 + 10 + 10 + 7).
ROW_SPLIT_SHAPES = [(5, 37, 19, 260), (4, 16, 8, 256)]
# More threads than this machine's cores on purpose: members are descheduled in mid-task.
THREAD_COUNTS = (1, 2, 3, 5, 8, 16)


@pytest.fixture
def busy_processes():
    """One busy Python process per CPU, competing with the kernels' threads."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
             for _ in range(os.cpu_count() or 2)]
    yield
    for p in procs:
        p.kill()
    for p in procs:
        p.wait()


def digest_of_all_kernels(dtype, shape=(T, B, D, H)):
    """SHA-256 of the bytes of every output of every kernel, for fixed random inputs."""
    T, B, D, H = shape
    rng = np.random.default_rng(7)
    p = make_rnn_inputs(rng, T, B, D, H, dtype)
    hs = elman.rnn_forward(**p)
    outs = [hs, *elman.rnn_backward(rng.standard_normal(hs.shape).astype(dtype), p["x"], p["h0"], hs,
                                     p["W_xh"], p["W_hh"])]
    W, b = rng.standard_normal((O, H)).astype(dtype), rng.standard_normal(O).astype(dtype)
    for g in ["identity", "softmax", "sigmoid"]:
        ys = elman.output_forward(hs, W, b, g)
        outs += [ys, *elman.output_backward(rng.standard_normal(ys.shape).astype(dtype), hs, ys, W, g)]
    loss, d = elman.softmax_cross_entropy(ys, rng.integers(0, O, (T, B)))
    outs += [np.array(loss), d]
    h = hashlib.sha256()
    for a in outs:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def digests_for_thread_counts(dtype, shape, counts=THREAD_COUNTS, repeats=1):
    before = elman.get_num_threads()
    try:
        digests = set()
        for n in counts:
            elman.set_num_threads(n)
            assert elman.get_num_threads() == n
            for _ in range(repeats):
                digests.add(digest_of_all_kernels(dtype, shape))
        return digests
    finally:
        elman.set_num_threads(before)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(T, B, D, H), *ROW_SPLIT_SHAPES])
@pytest.mark.needs_threads
def test_set_num_threads_does_not_change_a_bit(dtype, shape):
    assert len(digests_for_thread_counts(dtype, shape)) == 1


@pytest.mark.parametrize("shape", [(T, B, D, H), ROW_SPLIT_SHAPES[0]])
@pytest.mark.needs_threads
def test_competing_processes_do_not_change_a_bit(busy_processes, shape):
    """With every core taken by another process, members are descheduled while they hold tasks,
    and others compute those tasks again: the bits must not move."""
    quiet = digests_for_thread_counts(np.float32, shape, counts=(1,))
    loaded = digests_for_thread_counts(np.float32, shape, repeats=3)
    assert loaded == quiet


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("T,B,D,H", [(400, 1, 40, 70), (120, 3, 50, 60), (25, 1, 65, 100), (20, 4, 16, 130)])
def test_small_steps_do_not_change_a_bit_with_threads(T, B, D, H, dtype):
    """Steps too small to share run on one thread while another projects the inputs of the steps
    ahead (with 2+ threads and at least 2^20 multiply-adds of projection, as the first two
    shapes have), and in the backward while the team waits to share the gradient products (the
    first two shapes again); the last shape's backward shares its steps (B*H*H = 67,600: from
    half of the forward's threshold up) while its forward does not. The results must be those
    of the one-thread path."""
    rng = np.random.default_rng(11)
    p = make_rnn_inputs(rng, T, B, D, H, dtype)
    dhs = rng.standard_normal((T, B, H)).astype(dtype)
    before = elman.get_num_threads()
    try:
        results = set()
        for n in (1, 2, 3, 1, 2, 5, 16):
            elman.set_num_threads(n)
            hs = elman.rnn_forward(**p)
            grads = elman.rnn_backward(dhs, p["x"], p["h0"], hs, p["W_xh"], p["W_hh"])
            results.add(b"".join(a.tobytes() for a in (hs, *grads)))
        assert len(results) == 1
    finally:
        elman.set_num_threads(before)


@pytest.mark.needs_threads
def test_omp_num_threads_env_does_not_change_a_bit():
    code = ("import numpy as np, elman, sys; sys.path.insert(0, %r); import test_determinism as t; "
            "print(elman.get_num_threads(), t.digest_of_all_kernels(np.float32))" % os.path.dirname(__file__))
    seen = {}
    for n in ("1", "2"):
        env = dict(os.environ, OMP_NUM_THREADS=n)
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        threads, digest = out.stdout.split()
        assert threads == n  # the environment variable is honoured
        seen[n] = digest
    assert seen["1"] == seen["2"]


def test_set_num_threads_rejects_zero():
    with pytest.raises(ValueError, match="n >= 1"):
        elman.set_num_threads(0)


def at_offset(a, offset):
    """A copy of `a` whose data starts `offset` elements into a fresh buffer (any alignment)."""
    buf = np.empty(a.size + 8, a.dtype)
    view = buf[offset:offset + a.size].reshape(a.shape)
    view[...] = a
    return view


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_alignment_of_the_data_does_not_change_a_bit(dtype):
    """Vector code must not split rows by address: every offset gives the same bits."""
    rng = np.random.default_rng(3)
    p = make_rnn_inputs(rng, 3, 5, 7, 37, dtype)
    W, b = rng.standard_normal((11, 37)).astype(dtype), rng.standard_normal(11).astype(dtype)
    results = set()
    for offset in range(8):
        q = {k: at_offset(v, offset) for k, v in p.items()}
        hs = elman.rnn_forward(**q)
        h1 = elman._core.cell_forward(q["x"][0], q["h0"], q["W_xh"], q["W_hh"], q["b_h"],
                                      out=at_offset(np.zeros((5, 37), dtype), offset))
        outs = [hs, h1]
        for g in ["softmax", "sigmoid"]:
            ys = elman._core.output_forward(at_offset(hs, offset), W, b, g,
                                            out=at_offset(np.zeros((3, 5, 11), dtype), offset))
            outs += [ys, *elman.output_backward(at_offset(np.ones_like(ys), offset), hs, ys, W, g)]
        outs.append(elman.softmax_cross_entropy(at_offset(ys, offset), np.zeros((3, 5), int))[1])
        results.add(b"".join(np.ascontiguousarray(a).tobytes() for a in outs))
    assert len(results) == 1


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("T,B,D,H", [(1, 1, 4, 37), (2, 1, 3, 70), (1, 3, 2, 9), (5, 1, 4, 6), (7, 2, 5, 100)])
def test_alignment_does_not_change_a_bit_of_short_sequences(T, B, D, H, dtype):
    """Sequences too short to pack W_hh take another path (Eigen in place): it too must not
    depend on where the arrays sit."""
    rng = np.random.default_rng(5)
    p = make_rnn_inputs(rng, T, B, D, H, dtype)
    dhs = rng.standard_normal((T, B, H)).astype(dtype)
    results = set()
    for offset in range(8):
        q = {k: at_offset(v, offset) for k, v in p.items()}
        hs = elman.rnn_forward(**q)
        grads = elman.rnn_backward(at_offset(dhs, offset), q["x"], q["h0"], at_offset(hs, offset),
                                   q["W_xh"], q["W_hh"])
        results.add(b"".join(np.ascontiguousarray(a).tobytes() for a in (hs, *grads)))
    assert len(results) == 1


@pytest.mark.parametrize("shape", [(T, B, D, H), ROW_SPLIT_SHAPES[0], (400, 1, 40, 70)])
@pytest.mark.needs_threads
def test_tasks_computed_twice_do_not_change_a_bit(shape):
    """ELMAN_TEAM_STRESS=1 makes every member that runs out of tasks compute again every task
    still held by another (what happens to the tasks of a descheduled member): the first result
    published must be the one kept, and the same bits as one thread's. The last shape's forward
    projects ahead on a second member, whose tasks the recurrence computes again."""
    code = ("import sys, numpy as np, elman; sys.path.insert(0, %r); import test_determinism as t; "
            "digests = t.digests_for_thread_counts(np.float32, %r, counts=(2, 3, 5), repeats=2); "
            "print(len(digests), digests.pop(), elman._core.team_stats()['rescued'])"
            % (os.path.dirname(__file__), shape))
    env = dict(os.environ, ELMAN_TEAM_STRESS="1")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    count, digest, rescued = out.stdout.split()
    assert count == "1"
    assert digest == digest_of_all_kernels(np.float32, shape)
    assert int(rescued) > 0, "no task was computed twice: the stress mode did not run"
