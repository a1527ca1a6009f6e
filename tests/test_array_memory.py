"""The memory of large output arrays and workspaces is reused across calls (csrc/array_memory.h).

Results of 256 KiB or more live on blocks that return to elman's cache when the array is freed;
these tests hold the cache to what users may rely on: every output is a fresh array that shares
memory with nothing alive, freed memory is reused and can be given back, tracemalloc still sees the
arrays, and a training loop stops faulting pages in once it is warm.
"""

import gc
import resource
import sys
import tracemalloc

import numpy as np
import pytest

import elman
from conftest import make_rnn_inputs

T, B, D, H = 40, 16, 24, 128  # hs: 40 * 16 * 128 float64 = 640 KiB, above the cache's 256 KiB


@pytest.fixture
def p(rng):
    return make_rnn_inputs(rng, T, B, D, H, np.float64)


def forward(p):
    return elman.rnn_forward(p["x"], p["h0"], p["W_xh"], p["W_hh"], p["b_h"])


def test_large_outputs_are_fresh_and_independent(p):
    first = forward(p)
    second = forward(p)
    assert first.nbytes >= 256 * 1024
    for hs in (first, second):
        assert hs.flags.c_contiguous and hs.flags.writeable and hs.flags.aligned
        assert not any(np.shares_memory(hs, v) for v in p.values())
    assert not np.shares_memory(first, second)
    np.testing.assert_array_equal(first, second)
    second[...] = 0  # writing into one output changes no other array
    assert first.any()


def test_freed_output_memory_is_reused_and_can_be_given_back(p):
    elman.free_cached_memory()
    assert elman.cached_memory() == 0
    hs = forward(p)
    address, nbytes, expected = hs.ctypes.data, hs.nbytes, hs.copy()
    del hs
    gc.collect()
    assert elman.cached_memory() >= nbytes  # kept, not returned to the system
    again = forward(p)
    assert again.ctypes.data == address  # the same block, already mapped
    np.testing.assert_array_equal(again, expected)  # and fully overwritten
    del again
    kept = elman.cached_memory()
    assert elman.free_cached_memory() == kept
    assert elman.cached_memory() == 0


def test_giving_memory_back_leaves_live_arrays_alone(p):
    hs = forward(p)
    expected = hs.copy()
    elman.free_cached_memory()
    np.testing.assert_array_equal(hs, expected)
    hs += 1.0  # still writeable memory of its own


def test_the_cache_is_bounded():
    elman.free_cached_memory()
    rng = np.random.default_rng(0)
    sizes = [256 * 1024 // 8 + 512 * i for i in range(100)]  # 100 distinct sizes, > 256 KiB each
    for n in sizes:  # each output freed at once: the cache keeps at most 64 blocks
        logits = rng.standard_normal((n // 4, 4))
        elman.softmax_cross_entropy(logits, np.zeros(n // 4, dtype=np.int64))
    assert 0 < elman.cached_memory() <= sum(sorted(s * 8 for s in sizes)[-64:]) + 64 * 4096
    elman.free_cached_memory()


def test_tracemalloc_sees_cached_arrays(p):
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        hs = forward(p)
        assert tracemalloc.get_traced_memory()[0] - before >= hs.nbytes
        del hs
        gc.collect()
        assert tracemalloc.get_traced_memory()[0] - before < 64 * 1024
    finally:
        tracemalloc.stop()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="minor page faults from getrusage")
def test_a_warm_training_loop_does_not_fault_pages_in():
    """Before the cache, a step of this loop faulted ~2,800 pages in: glibc returned the freed
    outputs and workspaces to the system and the next step touched fresh pages."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((100, 32, 128)).astype(np.float32)
    targets = rng.integers(0, 128, (100, 32))
    rnn = elman.RNN(128, 256, num_layers=2, output_size=128, dtype="float32", seed=0)
    opt = elman.Adam(rnn.params, lr=1e-3)

    def step():
        out, _ = rnn(x)
        loss, d = elman.losses.cross_entropy(out, targets)
        rnn.backward(d)
        opt.step(rnn.grads)

    for _ in range(3):
        step()
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(5):
        step()
    per_step = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / 5
    assert per_step < 100
