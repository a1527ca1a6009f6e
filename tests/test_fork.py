"""A forked child can use elman: its first call works (a fresh team) and gives the parent's bits.

Every check runs in a subprocess with a time-out, so that a child that hangs (as one did in
libgomp before elman had its own team) fails the test instead of blocking the suite.
"""

import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="no os.fork on this platform")

# A shape whose forward shares its steps (B*H*H >= 131072) and whose backward shares its steps
# and products, so the parent has run multi-threaded jobs before it forks.
SETUP = textwrap.dedent("""
    import os, sys, threading
    import numpy as np, elman
    elman.set_num_threads(2)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 16, 64)).astype(np.float32)
    h0 = np.zeros((16, 256), np.float32)
    W_xh = (rng.standard_normal((256, 64)) / 8).astype(np.float32)
    W_hh = (rng.standard_normal((256, 256)) / 16).astype(np.float32)
    b_h = np.zeros(256, np.float32)
    def job(seed=0):
        hs = elman.rnn_forward(x + seed, h0, W_xh, W_hh, b_h)
        grads = elman.rnn_backward(np.ones_like(hs), x + seed, h0, hs, W_xh, W_hh)
        return b"".join(a.tobytes() for a in (hs, *grads))
    want = job()
""")


def run(code, timeout=120):
    result = subprocess.run([sys.executable, "-c", SETUP + textwrap.dedent(code)],
                            capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_os_fork_child_runs_the_kernels():
    out = run("""
        pid = os.fork()
        if pid == 0:
            same = job() == want and job() == want
            os._exit(0 if same else 3)
        _, status = os.waitpid(pid, 0)
        print(os.waitstatus_to_exitcode(status))
        assert job() == want  # the parent's team still works
    """)
    assert out.split() == ["0"]


def test_multiprocessing_pool_with_fork():
    out = run("""
        import multiprocessing as mp
        with mp.get_context("fork").Pool(2) as pool:
            results = pool.map(job, range(4), chunksize=1)
        print(all(r == job(i) for i, r in enumerate(results)))
    """)
    assert out.split() == ["True"]


def test_fork_while_another_thread_is_inside_a_kernel():
    """The child inherits a job in flight in a thread that it does not have: it must not wait for it."""
    out = run("""
        stop = threading.Event()
        def busy():
            while not stop.is_set():
                job()
        runner = threading.Thread(target=busy)
        runner.start()
        try:
            for _ in range(5):
                pid = os.fork()
                if pid == 0:
                    os._exit(0 if job() == want else 3)
                _, status = os.waitpid(pid, 0)
                print(os.waitstatus_to_exitcode(status))
        finally:
            stop.set()
            runner.join()
    """)
    assert out.split() == ["0"] * 5


def test_grandchild_of_a_fork_runs_the_kernels():
    out = run("""
        pid = os.fork()
        if pid == 0:
            job()
            grandchild = os.fork()
            if grandchild == 0:
                os._exit(0 if job() == want else 3)
            _, status = os.waitpid(grandchild, 0)
            os._exit(os.waitstatus_to_exitcode(status))
        _, status = os.waitpid(pid, 0)
        print(os.waitstatus_to_exitcode(status))
    """)
    assert out.split() == ["0"]
