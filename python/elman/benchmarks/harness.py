"""The benchmark run: start one worker per library, check parity, time, and gather the results.

Method (see bench/README.md for the why):

1. one worker process per library (:mod:`.workers`), each on the same number of threads;
2. per configuration, every library builds its task and runs it once; each peer's outputs are
   compared with elman's (:mod:`.parity`) and the run stops on a disagreement;
3. each task is warmed up, then timed in ``rounds`` rounds; within a round the libraries take
   turns (the order rotating from round to round), one at a time, the parent waiting for the
   last one's threads to go idle before turning to the next; a sample is the mean time of
   enough back-to-back calls to last ``min_sample_seconds``; the report shows the median sample;
4. peak memory is measured in a fresh process per configuration, and the per-call overhead in
   elman's worker.

The results are plain dicts and lists (JSON-ready); :mod:`.report` turns them into tables.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import resource
import statistics
import sys
import time
from collections import defaultdict

from .configs import FORWARD, FORWARD_ONLY, LIBRARIES, PASSES
from .parity import check_parity
from .workers import Worker, WorkerError

__all__ = ["run_benchmark", "Pool", "measure", "machine_description"]


def _log(message):
    print(message, file=sys.stderr, flush=True)


class Pool:
    """The worker processes, one per available library, asked one at a time.

    ``ask(library, command, ...)`` first waits until the previously asked worker (if another one)
    is idle, so that its spinning threads cannot slow down this one.
    """

    def __init__(self, libraries, threads, log=_log):
        self.workers, self.skipped = {}, {}
        self.log = log
        self._last = None
        started = [Worker(name, threads, greet=False) for name in libraries]  # imports overlap
        for worker in started:
            worker.greet()
            if worker.available:
                self.workers[worker.library] = worker
            else:
                self.skipped[worker.library] = worker.reason
                log(f"{worker.library}: not available, skipped ({worker.reason})")
        if "elman" not in self.workers:
            self.close()
            raise WorkerError(f"elman itself cannot be loaded in a worker: {self.skipped.get('elman')}")

    def ask(self, library, command, *args):
        worker = self.workers[library]
        if self._last is not None and self._last is not worker:
            self._last.wait_until_idle()
        self._last = worker
        return worker.request(command, *args)

    def has(self, library):
        return library in self.workers

    def info(self):
        return {name: worker.info for name, worker in self.workers.items()}

    def idle_waits(self):
        """Per library: how long the parent waited for its threads to go idle (seconds)."""
        return {name: {"count": len(w.idle_waits), "mean_s": statistics.fmean(w.idle_waits),
                       "max_s": max(w.idle_waits)}
                for name, w in self.workers.items() if w.idle_waits}

    def close(self):
        for worker in self.workers.values():
            worker.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def measure(pool, specs, suite, where, check=True, rounds=None):
    """Time specs[library] (a list of task specs per library) in alternating rounds.

    Every library prepares its tasks (elman's first); when `check`, each peer's outputs are
    compared with elman's for the same spec (a ParityError stops everything). Returns
    ``{"libraries": {library: {spec_label: {"samples_s", "median_s", "calls_per_sample"}}},
    "parity": {library: {spec_label: {array: error}}}}``; a spec's label is its pass for
    recurrence tasks and its kind otherwise.
    """
    rounds = suite.rounds if rounds is None else rounds
    libraries = [name for name in specs if specs[name]]
    expected, parity, calls = {}, defaultdict(dict), {}
    try:
        for library in sorted(libraries, key=lambda name: name != "elman"):  # elman first
            for spec in specs[library]:
                reply = pool.ask(library, "prepare", spec, suite.warmup_seconds,
                                 suite.min_sample_seconds, check)
                calls[library, spec] = reply["calls_per_sample"]
                if check and library == "elman":
                    expected[spec] = reply["outputs"]
                elif check and spec in expected:
                    parity[library][_label(spec)] = check_parity(
                        f"{where} {_label(spec)}", library, expected[spec], reply["outputs"])
        expected.clear()  # free elman's outputs before timing

        samples = defaultdict(list)
        for round_index in range(rounds):
            shift = round_index % len(libraries)
            for library in libraries[shift:] + libraries[:shift]:
                for spec in specs[library]:
                    samples[library, spec].append(pool.ask(library, "sample", spec))
    finally:  # free the workers' arrays; best effort, so the first error is the one reported
        for library in libraries:
            for spec in specs[library]:
                try:
                    pool.ask(library, "release", spec)
                except WorkerError:
                    pass

    timings = defaultdict(dict)
    for (library, spec), values in samples.items():
        timings[library][_label(spec)] = {"samples_s": values, "median_s": statistics.median(values),
                                          "calls_per_sample": calls[library, spec]}
    return {"libraries": dict(timings), "parity": dict(parity)}


def _label(spec):
    return spec[2] if spec[0] == "recurrence" else spec[0]


# --------------------------------------------------------------------------- #
# The run
# --------------------------------------------------------------------------- #

def run_benchmark(suite, threads=2, libraries=LIBRARIES, command=None, log=_log):
    """Run `suite` (a configs.Suite) on `threads` threads with the given libraries; return the
    results as a JSON-ready dict (see report.py for what each part holds)."""
    started = time.time()
    cpu_at_start = _cpu_snapshot()
    meta = {"command": command, "suite": suite.name, "notes": list(suite.notes), "threads": threads,
            "rounds": suite.rounds, "min_sample_seconds": suite.min_sample_seconds,
            "warmup_seconds": suite.warmup_seconds, "started": time.strftime("%Y-%m-%d %H:%M:%S"),
            "load_average_start": _load_average(), "machine": machine_description()}
    results = {"meta": meta, "recurrence": [], "train": [], "memory": []}
    with Pool(libraries, threads, log) as pool:
        meta["libraries"] = pool.info()
        meta["skipped"] = dict(pool.skipped)
        gemm_at_start = _gemm_samples(pool, suite)
        _log_roofline(_roofline(suite, gemm_at_start), log, "start")
        for i, config in enumerate(suite.recurrence, 1):
            results["recurrence"].append(_recurrence(pool, suite, config, log,
                                                     f"[{i}/{len(suite.recurrence)}]"))
        for config in suite.train:
            results["train"].append(_train(pool, suite, config, log))
        results["roofline"] = _roofline(suite, gemm_at_start, _gemm_samples(pool, suite))
        _log_roofline(results["roofline"], log, "best of start and end")
        results["overhead"] = pool.ask("elman", "overhead", suite.overhead_calls, suite.overhead_repeats)
        log(f"overhead: {results['overhead']['elman.rnn_forward']:.2f} us per elman.rnn_forward call")
        meta["idle_waits"] = pool.idle_waits()
    for config in suite.memory_configs:
        results["memory"].append(_memory(config, threads, log))
    meta["seconds"] = time.time() - started
    meta["load_average_end"] = _load_average()
    meta["other_processes_cpus"] = _cpus_used_by_others(cpu_at_start, _cpu_snapshot(), meta["seconds"])
    return results


def _gemm_samples(pool, suite):
    """Seconds per float32 GEMM (n x n times n x n) of every sample, per library: NumPy's BLAS
    (the reference's worker, labelled "numpy"), torch and elman's own product."""
    specs = {name: [("gemm", suite.gemm_n)] for name in ("reference", "torch", "elman") if pool.has(name)}
    if not specs:
        return {}
    measured = measure(pool, specs, suite, "gemm", check=False)
    return {("numpy" if name == "reference" else name): t["gemm"]["samples_s"]
            for name, t in measured["libraries"].items()}


def _roofline(suite, *sample_sets):
    """The roofline from GEMM samples taken at several moments of the run: per library the
    best sample in GFLOP/s, and the best of those. A peak, so the best sample is the estimate
    least hurt by other processes; each share of the roofline is then a conservative one."""
    flops = 2 * suite.gemm_n**3
    samples = {}
    for sample_set in sample_sets:
        for name, values in sample_set.items():
            samples.setdefault(name, []).extend(values)
    gflops = {name: flops / min(values) / 1e9 for name, values in samples.items()}
    return {"n": suite.gemm_n, "gflops": gflops, "samples_s": samples,
            "best_gflops": max(gflops.values()) if gflops else None}


def _log_roofline(roofline, log, when):
    if roofline["best_gflops"] is None:
        log("roofline: neither NumPy's BLAS nor torch is available")
        return
    log(f"roofline ({when}): {roofline['best_gflops']:.1f} GFLOP/s (float32 GEMM n={roofline['n']}: "
        + ", ".join(f"{k} {v:.1f}" for k, v in roofline["gflops"].items()) + ")")


def _recurrence(pool, suite, config, log, counter):
    specs = {}
    for name in pool.workers:
        specs[name] = [("recurrence", config, p) for p in PASSES
                       if p == FORWARD or name not in FORWARD_ONLY]
    measured = measure(pool, specs, suite, config.name)
    entry = {"config": dataclasses.asdict(config), "flops": {p: config.flops(p) for p in PASSES},
             "flops_all_products": config.forward_backward_operations(), **measured}
    summary = "; ".join(
        f"{p}: " + ", ".join(f"{name} {t[p]['median_s'] * 1e3:.3g} ms"
                             for name, t in measured["libraries"].items() if p in t)
        for p in PASSES)
    log(f"{counter} {config.name} ({config.shape_text()}): {summary}")
    return entry


def _train(pool, suite, config, log):
    spec = ("train", config)
    specs = {name: [spec] for name in ("elman", "torch") if pool.has(name)}
    measured = measure(pool, specs, suite, f"training step ({config.name})")
    entry = {"config": dataclasses.asdict(config), "flops": config.flops(), **measured}
    log(f"training step {config.name} ({config.shape_text()}): " + ", ".join(
        f"{name} {t['train']['median_s'] * 1e3:.3g} ms" for name, t in measured["libraries"].items()))
    return entry


def _memory(config, threads, log):
    with Worker("elman", threads) as worker:
        probe = worker.request("memory", config)
    probe["config"] = dataclasses.asdict(config)
    log(f"memory {config.name}: peak {probe['ratio']:.2f}x the arrays the math must hold")
    return probe


# --------------------------------------------------------------------------- #
# The machine
# --------------------------------------------------------------------------- #

def _load_average():
    try:
        return list(os.getloadavg())
    except OSError:
        return None


def _cpu_snapshot():
    """(CPU seconds the whole system has been busy, CPU seconds of this process and its
    waited-for children, i.e. the finished workers), or None off Linux."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    system_busy = (sum(fields) - idle) / os.sysconf("SC_CLK_TCK")
    own = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        own += usage.ru_utime + usage.ru_stime
    return system_busy, own


def _cpus_used_by_others(start, end, seconds):
    """How many CPUs other processes kept busy on average during the run (every worker has been
    closed and waited for by then, so the benchmark's own CPU time is all in RUSAGE_CHILDREN)."""
    if start is None or end is None or seconds <= 0:
        return None
    others = (end[0] - start[0]) - (end[1] - start[1])
    return max(0.0, others / seconds)


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_description():
    return {"cpu": _cpu_model(), "logical_cpus": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version()}
