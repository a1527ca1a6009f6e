"""``python -m elman bench --contention``: how each library slows down when the cores are busy.

Users' machines run other work: a build, a second experiment, other training processes. This
part of the suite measures elman, torch and onnxruntime (each in its own worker process, the
same threads, parity checked first) in rounds that alternate between a quiet machine and one
with a busy Python loop on every CPU the process may use, and reports each library's slowdown
(loaded time / quiet time) and elman's speed-up over torch quiet and loaded.

It also runs training processes side by side with *default* thread settings (no
OMP_NUM_THREADS), as users start them: one process alone, then two at once, for elman and for
torch, and reports the steps per second of each.

The issue's targets (docs/performance.md, "A busy machine"):

* elman's slowdown is at most 1.5x torch's for every config and pass;
* loaded, elman's speed-up over torch is at least half its quiet speed-up.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager

from .configs import CHARLM, FORWARD, FORWARD_ONLY, MEDIUM, PASSES, STREAM, TrainConfig
from .harness import Pool, _cpu_model, _cpu_snapshot, _cpus_used_by_others, machine_description
from .parity import check_parity
from .workers import THREAD_VARIABLES, WorkerError

__all__ = ["run_contention", "contention_markdown", "busy_cpus", "CONFIGS", "TRAIN_CONFIGS",
           "SLOWDOWN_FACTOR", "RATIO_SHARE"]

CONFIGS = (STREAM, CHARLM, MEDIUM)
TRAIN_CONFIGS = (TrainConfig("charlm", 25, 1, 65, 100, 65), TrainConfig("medium", 100, 32, 128, 256, 128))
LIBRARIES = ("elman", "torch", "onnxruntime")
TRAINERS = ("elman", "torch")
SLOWDOWN_FACTOR = 1.5  # elman's slowdown at most this times torch's
RATIO_SHARE = 0.5      # loaded speed-up over torch at least this share of the quiet one

_BUSY_LOOP = "while True: pass"


def _log(message):
    print(message, file=sys.stderr, flush=True)


def _cpus():
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


@contextmanager
def busy_cpus(count=None, settle=0.2):
    """One pure-Python busy loop per CPU this process may use (or `count`), for the duration."""
    procs = [subprocess.Popen([sys.executable, "-c", _BUSY_LOOP]) for _ in range(count or _cpus())]
    try:
        time.sleep(settle)  # let them start spinning before anything is timed
        yield len(procs)
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()


def _specs(pool):
    out = []
    for config in CONFIGS:
        for pass_ in PASSES:
            libraries = [name for name in LIBRARIES if pool.has(name)
                         and (pass_ == FORWARD or name not in FORWARD_ONLY)]
            out.append((config, pass_, libraries))
    return out


def _recurrence_rounds(pool, rounds, warmup_seconds, min_sample_seconds, log):
    """{(config, pass): {library: {"quiet": [s...], "loaded": [s...]}}} and the parity errors."""
    specs = _specs(pool)
    samples, parity = {}, {}
    for config, pass_, libraries in specs:
        spec = ("recurrence", config, pass_)
        expected = None
        for library in libraries:  # elman first (LIBRARIES' order)
            reply = pool.ask(library, "prepare", spec, warmup_seconds, min_sample_seconds, True)
            if library == "elman":
                expected = reply["outputs"]
            else:
                parity[f"{config.name} {pass_} {library}"] = check_parity(
                    f"{config.name} {pass_}", library, expected, reply["outputs"])
        samples[config.name, pass_] = {name: {"quiet": [], "loaded": []} for name in libraries}
    try:
        for r in range(rounds):
            order = ("quiet", "loaded") if r % 2 == 0 else ("loaded", "quiet")
            for condition in order:
                log(f"contention round {r + 1}/{rounds}: {condition}")
                with (busy_cpus() if condition == "loaded" else _nothing()):
                    for config, pass_, libraries in specs:
                        shift = r % len(libraries)
                        for library in libraries[shift:] + libraries[:shift]:
                            seconds = pool.ask(library, "sample", ("recurrence", config, pass_))
                            samples[config.name, pass_][library][condition].append(seconds)
    finally:
        for config, pass_, libraries in specs:
            for library in libraries:
                try:
                    pool.ask(library, "release", ("recurrence", config, pass_))
                except WorkerError:
                    pass
    return samples, parity


@contextmanager
def _nothing():
    yield 0


def _summary(samples):
    rows = []
    for (name, pass_), by_library in samples.items():
        row = {"config": name, "pass": pass_, "libraries": {}}
        for library, cond in by_library.items():
            quiet, loaded = statistics.median(cond["quiet"]), statistics.median(cond["loaded"])
            row["libraries"][library] = {"quiet_s": quiet, "loaded_s": loaded, "slowdown": loaded / quiet,
                                         "samples": cond}
        e, t = row["libraries"]["elman"], row["libraries"].get("torch")
        if t:
            row["ratio_quiet"] = t["quiet_s"] / e["quiet_s"]
            row["ratio_loaded"] = t["loaded_s"] / e["loaded_s"]
            row["slowdown_met"] = e["slowdown"] <= SLOWDOWN_FACTOR * t["slowdown"]
            row["ratio_met"] = row["ratio_loaded"] >= RATIO_SHARE * row["ratio_quiet"]
        rows.append(row)
    return rows


# --------------------------------------------------------------------------- #
# Training processes side by side
# --------------------------------------------------------------------------- #

_TRAINER = ("import sys; from elman.benchmarks.contention import train_loop; "
            "train_loop(sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4]))")


def train_loop(library, config_name, start_at, seconds):
    """A trainer process: build the training step with the library's default threads, warm up,
    wait until the wall-clock time `start_at`, train for `seconds`; print steps per second."""
    from .peers import make_library

    config = {c.name: c for c in TRAIN_CONFIGS}[config_name]
    task = make_library(library, None).train_step(config)
    warm_until = time.time() + 0.3
    while time.time() < warm_until:
        task.run()
    time.sleep(max(0.0, start_at - time.time()))
    steps, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        task.run()
        steps += 1
    print(json.dumps({"steps_per_s": steps / (time.perf_counter() - started)}))


def _trainers(library, config, count, seconds):
    """Steps per second of each of `count` trainer processes started together."""
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARIABLES}  # defaults, as users run
    start_at = time.time() + 8.0  # after every process has imported and warmed up
    procs = [subprocess.Popen([sys.executable, "-c", _TRAINER, library, config.name, str(start_at),
                               str(seconds)], stdout=subprocess.PIPE, text=True, env=env)
             for _ in range(count)]
    rates = []
    for p in procs:
        out, _ = p.communicate(timeout=120 + seconds)
        if p.returncode != 0:
            raise WorkerError(f"a {library} trainer failed (exit code {p.returncode})")
        rates.append(json.loads(out.strip().splitlines()[-1])["steps_per_s"])
    return rates


def _training(trainers, seconds, rounds, log):
    rows = []
    for config in TRAIN_CONFIGS:
        row = {"config": config.name, "shape": config.shape_text(), "libraries": {}}
        for library in trainers:
            alone, together = [], []
            for r in range(rounds):
                log(f"trainers: {library} {config.name}, round {r + 1}/{rounds}")
                alone += _trainers(library, config, 1, seconds)
                together += _trainers(library, config, 2, seconds)
            a, t = statistics.median(alone), statistics.median(together)
            row["libraries"][library] = {"alone": a, "each_of_two": t, "slowdown": a / t,
                                         "samples": {"alone": alone, "each_of_two": together}}
        if "torch" in row["libraries"]:
            e, t = row["libraries"]["elman"], row["libraries"]["torch"]
            row["ratio_alone"] = e["alone"] / t["alone"]
            row["ratio_two"] = e["each_of_two"] / t["each_of_two"]
        rows.append(row)
    return rows


def _installed(library):
    try:
        __import__(library)
        return True
    except ImportError:
        return False


def run_contention(threads=2, rounds=5, warmup_seconds=0.3, min_sample_seconds=0.2,
                   train_seconds=3.0, train_rounds=2, libraries=LIBRARIES, log=_log):
    """The whole contention run; a JSON-ready dict (see contention_markdown)."""
    started, cpu_at_start = time.time(), _cpu_snapshot()
    meta = {"threads": threads, "rounds": rounds, "min_sample_seconds": min_sample_seconds,
            "started": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": machine_description(),
            "busy_processes": _cpus(), "train_seconds": train_seconds, "train_rounds": train_rounds}
    with Pool(libraries, threads, log) as pool:
        meta["libraries"] = pool.info()
        meta["skipped"] = dict(pool.skipped)
        samples, parity = _recurrence_rounds(pool, rounds, warmup_seconds, min_sample_seconds, log)
    trainers = [name for name in TRAINERS if name in libraries and _installed(name)]
    results = {"meta": meta, "recurrence": _summary(samples), "parity": parity,
               "training": _training(trainers, train_seconds, train_rounds, log) if train_rounds else []}
    meta["seconds"] = time.time() - started
    # The busy loops are this run's own children: what this counts is everything else.
    meta["other_processes_cpus"] = _cpus_used_by_others(cpu_at_start, _cpu_snapshot(), meta["seconds"])
    return results


# --------------------------------------------------------------------------- #
# Report
# --------------------------------------------------------------------------- #

def _x(v):
    return "–" if v is None else (f"{v:.3g}x" if v < 100 else f"{v:.0f}x")


def _ms(v):
    return "–" if v is None else f"{v * 1e3:.3g}"


def _others_line(meta):
    others = meta.get("other_processes_cpus")
    if others is None:
        return []
    line = f"Other processes (not this run's busy loops) used {others:.2f} CPUs on average during it"
    if others > 0.25 * (meta["machine"].get("logical_cpus") or 1):
        line += ": **the quiet rounds were not quiet**, and the slowdowns understate the load's effect"
    return ["", line + "."]


def contention_markdown(results):
    meta = results["meta"]
    lines = ["## A busy machine: quiet and loaded", "",
             f"{meta['started']}, {_cpu_model()}, {meta['threads']} threads per library, "
             f"{meta['rounds']} rounds alternating quiet and loaded (one busy Python process per CPU: "
             f"{meta['busy_processes']}); medians; slowdown = loaded / quiet; speed-up = torch / elman.",
             *_others_line(meta),
             "", "| config | pass | elman quiet ms | elman loaded ms | elman slowdown | torch slowdown "
             "| onnxruntime slowdown | vs torch quiet → loaded | targets met |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in results["recurrence"]:
        libs = row["libraries"]
        e, t, o = libs["elman"], libs.get("torch"), libs.get("onnxruntime")
        ratio = (f"{_x(row['ratio_quiet'])} → {_x(row['ratio_loaded'])}" if t else "–")
        met = ("–" if not t else
               ("yes" if row["slowdown_met"] and row["ratio_met"] else
                "no (" + ", ".join(n for n, ok in (("slowdown", row["slowdown_met"]),
                                                   ("ratio", row["ratio_met"])) if not ok) + ")"))
        lines.append(f"| {row['config']} | {row['pass']} | {_ms(e['quiet_s'])} | {_ms(e['loaded_s'])} | "
                     f"{_x(e['slowdown'])} | {_x(t and t['slowdown'])} | {_x(o and o['slowdown'])} | "
                     f"{ratio} | {met} |")
    lines += ["", f"Targets: elman's slowdown <= {SLOWDOWN_FACTOR:g}x torch's; loaded speed-up over torch "
              f">= {RATIO_SHARE:.0%} of the quiet one."]
    if results["training"]:
        lines += ["", "### Training processes side by side (default threads)", "",
                  f"Steps per second of one trainer alone and of each of two started together "
                  f"({meta['train_seconds']:g} s each, median of {meta['train_rounds']} rounds).", "",
                  "| model | library | alone | each of two | slowdown | elman / torch alone → two |",
                  "|---|---|---|---|---|---|"]
        for row in results["training"]:
            for library, v in row["libraries"].items():
                ratio = (f"{_x(row['ratio_alone'])} → {_x(row['ratio_two'])}"
                         if library == "elman" and "ratio_alone" in row else "")
                lines.append(f"| {row['config']} ({row['shape']}) | {library} | {v['alone']:.4g} | "
                             f"{v['each_of_two']:.4g} | {_x(v['slowdown'])} | {ratio} |")
    return "\n".join(lines) + "\n"
