"""One process per library: the worker loop (child side) and its handle (parent side).

Why processes: OpenMP, OpenBLAS and onnxruntime keep their worker threads alive and spinning
for a while after each call. If two libraries shared a process (or ran at once), one library's
idle-but-spinning threads would steal the cores from the other's timed call. So each library
lives in its own worker process, the parent asks one worker at a time, and before it turns to
another worker it waits until the last one's threads have gone quiet (:meth:`Worker.wait_until_idle`,
which watches the process's CPU time).

Protocol: the parent writes pickled requests ``(command, *arguments)`` to the worker's stdin and
reads pickled replies ``{"ok": True, "value": ...}`` or ``{"ok": False, "error": traceback}``
from its stdout. The worker's own stdout is pointed at stderr first, so a library that prints
cannot corrupt the channel. The first reply is a greeting: ``{"ok": True, "info": {...}}`` or
``{"ok": False, "reason": ...}`` when the library cannot be imported.

A worker runs :func:`serve`, started by :class:`Worker` only.
"""

from __future__ import annotations

import gc
import glob
import math
import os
import pickle
import subprocess
import sys
import time
import traceback

__all__ = ["Worker", "WorkerError", "worker_environment"]

# Environment variables that fix the thread count of the runtimes a library may use; they must
# be set before the library is imported, hence in the worker's environment.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


# The worker's command line. "-c" and not "-m": runpy would warn when the package has already
# imported this module, and warnings are errors under the test suite.
_WORKER_MAIN = "import sys; from elman.benchmarks.workers import serve; serve(sys.argv[1], int(sys.argv[2]))"


class WorkerError(RuntimeError):
    """A worker failed: it raised (the message holds its traceback) or it died."""


def worker_environment(threads, base=None):
    """The environment of a worker: `base` (default os.environ) with every thread variable = threads."""
    env = dict(os.environ if base is None else base)
    env.update({name: str(threads) for name in THREAD_VARIABLES})
    return env


# --------------------------------------------------------------------------- #
# parent side
# --------------------------------------------------------------------------- #

class Worker:
    """A worker process running one library on `threads` threads.

    After the greeting, ``available`` is False (and ``reason`` says why) when the library cannot
    be imported; ``info`` holds its versions and settings. ``request(command, *args)`` returns the reply's
    value or raises WorkerError. Use as a context manager, or call ``close()``.
    """

    def __init__(self, library, threads, greet=True):
        self.library = library
        self.threads = threads
        self.process = subprocess.Popen(
            [sys.executable, "-c", _WORKER_MAIN, library, str(threads)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=worker_environment(threads))
        self.available, self.reason, self.info = None, None, {}
        self.idle_waits = []  # seconds spent in wait_until_idle, for the report
        if greet:
            self.greet()

    def greet(self):
        """Wait for the worker's greeting (its library imported, or why not); with greet=False
        several workers can start at once and be greeted afterwards."""
        try:
            greeting = self._receive("start")
        except WorkerError as error:  # it crashed while importing its library
            greeting = {"ok": False, "reason": str(error)}
        self.available = greeting["ok"]
        self.reason = greeting.get("reason")
        self.info = greeting.get("info", {})
        if not self.available:
            self.close()

    @property
    def pid(self):
        return self.process.pid

    def request(self, command, *args):
        """Send one request and return its value; WorkerError if the worker raised or died."""
        try:
            pickle.dump((command, *args), self.process.stdin, protocol=pickle.HIGHEST_PROTOCOL)
            self.process.stdin.flush()
        except BrokenPipeError:
            raise self._died(command) from None
        reply = self._receive(command)
        if not reply["ok"]:
            raise WorkerError(f"the {self.library} worker failed on {command!r}:\n{reply['error']}")
        return reply["value"]

    def _receive(self, command):
        try:
            return pickle.load(self.process.stdout)
        except (EOFError, pickle.UnpicklingError):
            raise self._died(command) from None

    def _died(self, command):
        code = self.process.wait()
        return WorkerError(f"the {self.library} worker died during {command!r} (exit code {code}); "
                           "its stderr is above")

    def cpu_seconds(self):
        """CPU time used so far by all the worker's threads (ns resolution), or None if this
        system has no /proc/<pid>/task/*/schedstat."""
        total = 0
        paths = glob.glob(f"/proc/{self.pid}/task/*/schedstat")
        if not paths:
            return None
        for path in paths:
            try:
                with open(path) as f:
                    total += int(f.read().split()[0])
            except (OSError, ValueError, IndexError):
                continue  # the thread ended between glob and open
        return total * 1e-9

    def wait_until_idle(self, interval=0.005, busy_share=0.05, timeout=1.0):
        """Block until the worker's threads use less than `busy_share` of one core over an
        `interval`, or `timeout` seconds; without schedstat, sleep a fixed 0.2 s instead."""
        started = time.perf_counter()
        last = self.cpu_seconds()
        if last is None:
            time.sleep(0.2)
        else:
            while time.perf_counter() - started < timeout:
                time.sleep(interval)
                now = self.cpu_seconds()
                if now - last < busy_share * interval:
                    break
                last = now
        self.idle_waits.append(time.perf_counter() - started)

    def close(self):
        if self.process.poll() is None:
            try:
                pickle.dump(None, self.process.stdin)
                self.process.stdin.close()
            except (BrokenPipeError, OSError):
                pass
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None and not stream.closed:
                stream.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# --------------------------------------------------------------------------- #
# child side
# --------------------------------------------------------------------------- #

def calibrate(run, warmup_seconds, min_sample_seconds):
    """Run `run` (untimed) for at least `warmup_seconds` (at least once); return how many calls
    one sample needs to last at least `min_sample_seconds` (at least 1)."""
    calls = 0
    started = time.perf_counter()
    while True:
        run()
        calls += 1
        elapsed = time.perf_counter() - started
        if elapsed >= warmup_seconds:
            break
    per_call = elapsed / calls
    return max(1, math.ceil(min_sample_seconds / per_call)) if per_call > 0 else 1


def time_per_call(run, calls):
    """Mean seconds per call of `calls` back-to-back calls, with the garbage collector off
    (as timeit does) so a collection triggered by one library's objects is not billed to it."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        started = time.perf_counter()
        for _ in range(calls):
            run()
        return (time.perf_counter() - started) / calls
    finally:
        if was_enabled:
            gc.enable()


class _Server:
    """Handles the requests of one worker: prepare, sample, release, overhead, memory."""

    def __init__(self, library):
        self.library = library
        self.tasks = {}  # spec -> (Task, calls per sample)

    def handle(self, command, *args):
        handler = getattr(self, f"do_{command}", None)
        if handler is None:
            raise ValueError(f"unknown command {command!r}")
        return handler(*args)

    def do_prepare(self, spec, warmup_seconds, min_sample_seconds, want_outputs):
        """Build the task, run it once (its outputs for the parity check), warm it up and
        choose its calls per sample."""
        task = self.library.task(spec)
        first = task.run()
        outputs = task.collect(first) if want_outputs else None
        del first
        calls = calibrate(task.run, warmup_seconds, min_sample_seconds)
        self.tasks[spec] = (task, calls)
        return {"outputs": outputs, "calls_per_sample": calls, "flops": task.flops}

    def do_sample(self, spec):
        task, calls = self.tasks[spec]
        return time_per_call(task.run, calls)

    def do_release(self, spec):
        self.tasks.pop(spec, None)
        gc.collect()

    def do_overhead(self, calls, repeats):
        from .probes import overhead_probe
        return overhead_probe(calls, repeats)

    def do_memory(self, config):
        from .probes import memory_probe
        return memory_probe(config)


def serve(library_name, threads):
    """The worker's main loop: greet, then answer requests until None or end of input."""
    channel = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # prints from libraries go to stderr

    def send(reply):
        pickle.dump(reply, channel, protocol=pickle.HIGHEST_PROTOCOL)
        channel.flush()

    from .peers import make_library
    try:
        library = make_library(library_name, threads)
        info = library.info()
    except Exception as error:  # not installed, or broken: the harness goes on without it
        send({"ok": False, "reason": f"{type(error).__name__}: {error}"})
        return
    send({"ok": True, "info": info})
    server = _Server(library)
    requests = sys.stdin.buffer
    while True:
        try:
            message = pickle.load(requests)
        except EOFError:
            return
        if message is None:
            return
        try:
            reply = {"ok": True, "value": server.handle(*message)}
        except Exception:
            reply = {"ok": False, "error": traceback.format_exc()}
        send(reply)
