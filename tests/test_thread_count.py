"""The default thread count stays within what the process may use: its CPU affinity mask and its
cgroup's CPU quota; show_config() says where the number came from."""

import os
import subprocess
import sys

import pytest

# How a threaded build sizes its team: a build without OpenMP has none (always 1 thread).
pytestmark = pytest.mark.needs_threads

REPORT = ("import elman; c = elman.show_config(print_out=False); "
          "print(elman.get_num_threads(), c['num_threads'], c['num_threads_source'], sep='|')")


def threads_in_child(code=REPORT, **env):
    """(threads, shown, source) in a fresh process, OMP_NUM_THREADS unset unless given."""
    base = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "ELMAN_CGROUP_ROOT")}
    result = subprocess.run([sys.executable, "-c", code], env=dict(base, **env),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    threads, shown, source = result.stdout.strip().splitlines()[-1].split("|")
    assert threads == shown
    return int(threads), source


def cpus():
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def test_default_is_the_cpus_the_process_may_use():
    threads, source = threads_in_child()
    assert threads == cpus()
    assert source in ("CPUs", "affinity mask")


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no CPU affinity on this platform")
@pytest.mark.skipif(cpus() < 2, reason="needs two CPUs to restrict to one")
def test_affinity_mask_limits_the_default():
    one = min(os.sched_getaffinity(0))
    code = f"import os; os.sched_setaffinity(0, {{{one}}}); " + REPORT
    assert threads_in_child(code) == (1, "affinity mask")


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no CPU affinity on this platform")
@pytest.mark.skipif(cpus() < 2, reason="needs two CPUs to restrict to one")
def test_affinity_changed_after_import_is_followed():
    one = min(os.sched_getaffinity(0))
    code = ("import os, elman; before = elman.get_num_threads(); "
            f"os.sched_setaffinity(0, {{{one}}}); " + REPORT.replace("import elman; ", ""))
    assert threads_in_child(code) == (1, "affinity mask")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="cgroups are Linux's")
@pytest.mark.parametrize("files, want", [
    ({"cpu.max": "100000 100000\n"}, 1),                       # cgroup v2: one CPU's worth
    ({"cpu.max": "150000 100000\n"}, 2),                       # 1.5 CPUs round up
    ({"cpu.cfs_quota_us": "50000\n", "cpu.cfs_period_us": "100000\n"}, 1),  # cgroup v1
])
def test_cgroup_quota_limits_the_default(tmp_path, files, want):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    threads, source = threads_in_child(ELMAN_CGROUP_ROOT=str(tmp_path))
    assert threads == min(want, cpus())
    if want < cpus():
        assert source == "cgroup cpu.max"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="cgroups are Linux's")
@pytest.mark.parametrize("text", ["max 100000\n", "-1\n", "garbage\n", ""])
def test_no_cgroup_quota_leaves_the_default(tmp_path, text):
    (tmp_path / "cpu.max").write_text(text)
    (tmp_path / "cpu.cfs_quota_us").write_text("-1\n")
    (tmp_path / "cpu.cfs_period_us").write_text("100000\n")
    assert threads_in_child(ELMAN_CGROUP_ROOT=str(tmp_path))[0] == cpus()


def test_omp_num_threads_is_taken_as_asked_even_beyond_the_cpus():
    assert threads_in_child(OMP_NUM_THREADS=str(cpus() + 3)) == (cpus() + 3, "OMP_NUM_THREADS")


def test_set_num_threads_is_reported_as_the_source():
    code = "import elman; elman.set_num_threads(5); " + REPORT.replace("import elman; ", "")
    assert threads_in_child(code) == (5, "set_num_threads")
