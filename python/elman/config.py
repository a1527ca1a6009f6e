"""Which kernel build runs, with how many threads: ``show_config``, ``get/set_num_threads``; the
memory kept for output arrays: ``cached_memory``, ``free_cached_memory``."""

from __future__ import annotations

from . import _core

__all__ = ["show_config", "get_num_threads", "set_num_threads", "cached_memory", "free_cached_memory"]

MAX_THREADS = 1024


def show_config(print_out=True):
    """Print and return the build in use.

    Keys: version, isa (the kernel build in use: "baseline", "avx2" or "avx512"), isas (the builds
    this CPU can run), built_isas (the builds in this package), num_threads, num_threads_source
    (where that number comes from), eigen, simd, flags (of the build in use), openmp (False for a
    single-threaded build without OpenMP), openmp_version (None without), compiler ("g++ 12.2.0",
    "clang 14.0.6", ...). ``ELMAN_ISA=baseline|avx2|avx512`` forces a build.
    """
    config = _core.config()
    if print_out:
        width = max(map(len, config))
        for key, value in config.items():
            if isinstance(value, list):
                value = ", ".join(value)
            print(f"{key:<{width}}  {value}")
    return config


def get_num_threads():
    """Threads of the kernels' parallel regions: set_num_threads's value, else OpenMP's default
    (OMP_NUM_THREADS, or what threadpoolctl set for the calling thread), else the CPUs this process
    may use. Always 1 in a build without OpenMP (show_config()["openmp"] False)."""
    return _core.get_num_threads()


def set_num_threads(n):
    """Use n >= 1 threads in the kernels, for every Python thread. Results are bit-identical for
    any n: only the speed changes. Small problems run on one thread whatever n is, and a build
    without OpenMP runs every problem on one thread (n is accepted there, and changes nothing)."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"set_num_threads needs an int, got {type(n).__name__}")
    if n < 1:
        raise ValueError(f"set_num_threads needs n >= 1, got {n}")
    if n > MAX_THREADS:  # OpenMP crashes on teams of this size instead of refusing them
        raise ValueError(f"set_num_threads needs n <= {MAX_THREADS}, got {n}")
    _core.set_num_threads(n)


def cached_memory():
    """Bytes of memory that elman keeps from freed output arrays and kernel workspaces, to reuse.

    Arrays elman returns of 256 KiB or more live on blocks that go back to elman, not to the
    system, when the array is freed, and are handed out again for an array of the same size (the
    kernels' workspaces likewise): a training loop then writes into pages already mapped instead
    of faulting fresh ones in at every step (~2,800 page faults, ~10% of a medium training step on
    a 2-core VM). At most 256 MiB and 64 blocks are kept; the oldest blocks are freed first.
    Such an array's ``base`` is the capsule that gives its block back.
    """
    return _core.cached_bytes()


def free_cached_memory():
    """Give the memory kept by ``cached_memory`` back to the system; returns how many bytes.
    Arrays still in use are not affected."""
    return _core.free_cached_memory()
