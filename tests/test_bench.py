"""The benchmark harness: it runs end to end, refuses to time a peer that disagrees, and reports
the issue's targets. No timing is asserted: these check the instrument, not the machine."""

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from elman import reference
from elman.benchmarks import configs, harness, report
from elman.benchmarks.configs import FORWARD, FORWARD_BACKWARD, RecurrenceConfig, TrainConfig
from elman.benchmarks.inputs import recurrence_arrays, train_arrays
from elman.benchmarks.parity import ParityError, check_parity, relative_error
from elman.benchmarks.workers import Worker, WorkerError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INSTALLED_PEERS = [name for name, module in (("torch", "torch"), ("onnxruntime", "onnxruntime"),
                                             ("openvino", "openvino"), ("jax", "jax"), ("tf-xla", "tensorflow"))
                   if importlib.util.find_spec(module) is not None]


# --------------------------------------------------------------------------- #
# End to end: `python -m elman bench --smoke`, through elman.cli as users call it
# --------------------------------------------------------------------------- #

@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """One smoke run (tiny sizes, one round) of the whole suite; its report, plot and JSON."""
    from elman.cli import main

    out = tmp_path_factory.mktemp("bench") / "report.md"
    code = main(["bench", "--smoke", "--out", str(out), "--json"])
    with open(out.with_suffix(".json")) as f:
        results = json.load(f)
    return code, out, results


def test_smoke_run_writes_report_plot_and_json(smoke_run):
    code, out, results = smoke_run
    assert code == 0
    text = out.read_text()
    assert text.startswith("# elman benchmark (smoke run)")
    assert "`python -m elman bench --smoke" in text  # the command line in the header
    assert "load average" in text
    assert "| config | shape | pass | elman ms |" in text
    assert "| B | H | pass | elman ms |" in text
    assert "## Full model: one training step" in text
    assert "## Memory" in text and "## Per-call overhead" in text
    if importlib.util.find_spec("matplotlib") is not None:
        png = out.with_suffix(".png").read_bytes()
        assert png.startswith(b"\x89PNG")


def test_smoke_run_times_every_config_and_library(smoke_run):
    _, _, results = smoke_run
    suite = configs.suite("smoke")
    assert [e["config"]["name"] for e in results["recurrence"]] == [c.name for c in suite.recurrence]
    for entry in results["recurrence"]:
        libraries = entry["libraries"]
        assert set(libraries) == {"elman", "reference", *INSTALLED_PEERS}
        for name, passes in libraries.items():
            expected = {FORWARD} if name in configs.FORWARD_ONLY else {FORWARD, FORWARD_BACKWARD}
            assert set(passes) == expected
            for timing in passes.values():
                assert len(timing["samples_s"]) == suite.rounds
                assert timing["median_s"] > 0
        # every peer was checked against elman before it was timed
        assert set(entry["parity"]) == {"reference", *INSTALLED_PEERS}
        for errors in entry["parity"]["reference"].values():
            assert max(errors.values()) < 1e-5
    roofline = results["roofline"]
    # every library with a matrix product is a candidate, elman's own among them (a BLAS slower
    # than elman's product would otherwise put the kernels above 100% of the roofline)
    assert {"elman", "numpy"} <= set(roofline["gflops"])
    assert roofline["best_gflops"] == max(roofline["gflops"].values()) > 0
    assert results["overhead"]["elman.rnn_forward"] > 0
    memory = results["memory"][0]
    assert memory["output_bytes"] > 0 and memory["ratio"] >= 1.0 - 1e-9


def test_smoke_run_compares_training_steps_with_torch(smoke_run):
    _, _, results = smoke_run
    (entry,) = results["train"]
    assert entry["libraries"]["elman"]["train"]["median_s"] > 0
    if "torch" in INSTALLED_PEERS:
        names = set(entry["parity"]["torch"]["train"])
        assert {"loss", "W_xh_l0", "W_hh_l1", "b_h_l1", "W_hy", "b_y"} <= names


# --------------------------------------------------------------------------- #
# Parity: a disagreeing peer stops the run
# --------------------------------------------------------------------------- #

def test_check_parity_names_the_disagreeing_array(rng):
    hs = rng.standard_normal((4, 2, 3)).astype(np.float32)
    dW = rng.standard_normal((3, 3)).astype(np.float32)
    wrong = dW.T.copy()  # a transposed gradient: the classic layout mistake
    with pytest.raises(ParityError, match=r"medium forward\+backward: torch disagrees[\s\S]*dW_hh: max"):
        check_parity("medium forward+backward", "torch", {"hs": hs, "dW_hh": dW},
                     {"hs": hs, "dW_hh": wrong})


def test_check_parity_rejects_missing_misshapen_and_nan_arrays(rng):
    hs = rng.standard_normal((4, 2, 3)).astype(np.float32)
    with pytest.raises(ParityError, match="dx: missing"):
        check_parity("x", "peer", {"hs": hs, "dx": hs}, {"hs": hs})
    with pytest.raises(ParityError, match=r"shape \(4, 3\)"):
        check_parity("x", "peer", {"hs": hs}, {"hs": hs[:, 0]})
    broken = hs.copy()
    broken[0, 0, 0] = np.nan
    assert relative_error(broken, hs) == float("inf")
    with pytest.raises(ParityError, match="hs"):
        check_parity("x", "peer", {"hs": hs}, {"hs": broken})


def test_check_parity_accepts_float32_rounding(rng):
    hs = rng.standard_normal((50, 3, 7))
    errors = check_parity("x", "peer", {"hs": hs.astype(np.float32)}, {"hs": hs})
    assert 0 < errors["hs"] < 1e-6


class _FakePool:
    """Stands in for harness.Pool: elman answers with `outputs`, the peer with `peer_outputs`."""

    def __init__(self, outputs, peer_outputs):
        self.replies = {"elman": outputs, "peer": peer_outputs}
        self.released, self.sampled = [], []

    def ask(self, library, command, *args):
        if command == "prepare":
            return {"outputs": self.replies[library], "calls_per_sample": 1, "flops": 1}
        if command == "sample":
            self.sampled.append(library)
            return 1e-3
        if command == "release":
            self.released.append(library)
            return None
        raise AssertionError(command)

    def has(self, library):
        return True


def test_measure_stops_before_timing_when_a_peer_disagrees(rng):
    config = RecurrenceConfig("small", 3, 2, 4, 5)
    spec = ("recurrence", config, FORWARD)
    hs = rng.standard_normal((3, 2, 5)).astype(np.float32)
    pool = _FakePool({"hs": hs}, {"hs": hs + 0.01})
    with pytest.raises(ParityError, match="small forward: peer disagrees"):
        harness.measure(pool, {"elman": [spec], "peer": [spec]}, configs.suite("smoke"), "small")
    assert pool.sampled == []  # nothing was timed
    assert sorted(pool.released) == ["elman", "peer"]  # and the workers freed their arrays


def test_measure_times_agreeing_peers_in_alternating_rounds(rng):
    config = RecurrenceConfig("small", 3, 2, 4, 5)
    spec = ("recurrence", config, FORWARD)
    hs = rng.standard_normal((3, 2, 5)).astype(np.float32)
    pool = _FakePool({"hs": hs}, {"hs": hs.copy()})
    result = harness.measure(pool, {"elman": [spec], "peer": [spec]}, configs.suite("smoke"), "small",
                             rounds=3)
    assert pool.sampled == ["elman", "peer", "peer", "elman", "elman", "peer"]
    assert result["parity"]["peer"][FORWARD] == {"hs": 0.0}
    assert result["libraries"]["elman"][FORWARD]["samples_s"] == [1e-3] * 3


# --------------------------------------------------------------------------- #
# The peers compute the same function (in process, on tiny sizes)
# --------------------------------------------------------------------------- #

def _reference_forward_backward(a):
    hs = reference.rnn_forward(a["x"], a["h0"], a["W_xh"], a["W_hh"], a["b_h"])
    dx, dh0, dW_xh, dW_hh, db_h = reference.rnn_backward(a["dhs"], a["x"], a["h0"], hs, a["W_xh"], a["W_hh"])
    return {"hs": hs, "dx": dx, "dh0": dh0, "dW_xh": dW_xh, "dW_hh": dW_hh, "db_h": db_h}


def test_onnx_graph_maps_elman_weights_to_the_rnn_operator():
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from elman.benchmarks.peers import OnnxRuntime

    config = RecurrenceConfig("small", 6, 3, 4, 5)
    task = OnnxRuntime(threads=1).task(("recurrence", config, FORWARD))
    outputs = task.collect(task.run())
    expected = _reference_forward_backward(recurrence_arrays(config))
    check_parity("small forward", "onnxruntime", {"hs": expected["hs"]}, outputs)


def test_torch_peer_matches_the_reference_with_gradients():
    pytest.importorskip("torch")
    from elman.benchmarks.peers import Torch

    config = RecurrenceConfig("small", 6, 3, 4, 5)
    task = Torch(threads=1).task(("recurrence", config, FORWARD_BACKWARD))
    outputs = task.collect(task.run())
    check_parity("small forward+backward", "torch", _reference_forward_backward(recurrence_arrays(config)),
                 outputs)


# The optional peers (pip install elman[peers]): each agrees with the reference on every pass it
# has; skipped where the peer is not installed.
@pytest.mark.parametrize("name, module", [("openvino", "openvino"), ("jax", "jax"), ("tf-xla", "tensorflow")])
def test_optional_peer_matches_the_reference(name, module):
    pytest.importorskip(module)
    if name == "openvino":
        pytest.importorskip("onnx")
    config = RecurrenceConfig("small", 6, 3, 4, 5)
    expected = _reference_forward_backward(recurrence_arrays(config))
    # In a worker process, as the harness runs it: XLA's thread settings must precede its import.
    with Worker(name, 1) as worker:
        assert worker.available, worker.reason
        for pass_ in (FORWARD, FORWARD_BACKWARD):
            if pass_ == FORWARD_BACKWARD and name in configs.FORWARD_ONLY:
                continue
            outputs = worker.request("prepare", ("recurrence", config, pass_), 0.0, 0.0, True)["outputs"]
            check_parity(f"small {pass_}", name, {k: expected[k] for k in outputs}, outputs)
            assert set(outputs) == ({"hs"} if pass_ == FORWARD else set(expected))


def test_forward_only_lists_the_peers_without_a_backward():
    from elman.benchmarks.peers import LIBRARY_CLASSES

    assert set(LIBRARY_CLASSES) == set(configs.LIBRARIES)
    assert {name for name, cls in LIBRARY_CLASSES.items() if FORWARD_BACKWARD not in cls.passes} == set(
        configs.FORWARD_ONLY)


def test_onnxruntime_has_no_backward():
    pytest.importorskip("onnxruntime")
    from elman.benchmarks.peers import OnnxRuntime

    with pytest.raises(ValueError, match="cannot run"):
        OnnxRuntime(threads=1).task(("recurrence", RecurrenceConfig("s", 2, 1, 2, 2), FORWARD_BACKWARD))


# --------------------------------------------------------------------------- #
# Configurations, FLOP counts, inputs
# --------------------------------------------------------------------------- #

def test_flop_counts_are_the_products_counted_one_by_one():
    medium = RecurrenceConfig("medium", 100, 32, 128, 256)
    assert medium.flops(FORWARD) == 2 * 100 * 32 * 256 * (128 + 256)
    # forward (D + H), dx (D), dW_xh (D), dW_hh (H), dh (H)
    assert medium.flops(FORWARD_BACKWARD) == 2 * 100 * 32 * 256 * (3 * 128 + 3 * 256)
    with pytest.raises(ValueError, match="pass must be one of"):
        medium.flops("backward")
    # A training step: both layers forward and backward, no dx for layer 0 (the input is data),
    # and the output layer's forward, dW_hy and dhs.
    step = TrainConfig("medium", 100, 32, 128, 256, 128)
    TBH = 100 * 32 * 256
    layer0 = 2 * TBH * (128 + 256) + 2 * TBH * (128 + 2 * 256)  # forward; dW_xh, dW_hh, dh
    layer1 = 2 * TBH * (256 + 256) + 2 * TBH * (2 * 256 + 2 * 256)  # forward; dx, dW_xh, dW_hh, dh
    output_layer = 3 * 2 * 100 * 32 * 128 * 256
    assert step.flops() == layer0 + layer1 + output_layer


def test_suites_cover_the_issue():
    full = configs.suite("full")
    fixed = {c.name: (c.T, c.B, c.D, c.H) for c in full.recurrence if c.group == "fixed"}
    assert fixed == {"stream": (1000, 1, 32, 64), "charlm": (25, 1, 65, 100),
                     "medium": (100, 32, 128, 256), "large": (50, 128, 512, 1024)}
    sweep = [(c.B, c.H) for c in full.recurrence if c.group == "sweep"]
    assert sweep == [(B, 2**k) for B in (1, 64) for k in range(5, 12)]
    assert {(c.name, c.O, c.num_layers) for c in full.train} == {("medium", 128, 2), ("charlm", 65, 2)}
    assert "large" not in {c.name for c in configs.suite("quick").recurrence}
    with pytest.raises(ValueError, match="suite must be one of"):
        configs.suite("huge")


def test_inputs_are_reproducible_float32():
    config = RecurrenceConfig("small", 5, 2, 3, 4)
    first, second = recurrence_arrays(config), recurrence_arrays(config)
    for name, value in first.items():
        assert value.dtype == np.float32 and value.flags.c_contiguous
        np.testing.assert_array_equal(value, second[name])
    x, targets, params = train_arrays(TrainConfig("small", 5, 2, 3, 4, 6))
    assert x.shape == (5, 2, 3) and targets.shape == (5, 2) and targets.max() < 6
    assert params["W_xh_l1"].shape == (4, 4) and params["W_hy"].shape == (6, 4)


# --------------------------------------------------------------------------- #
# Targets and the report
# --------------------------------------------------------------------------- #

def _timing(seconds):
    return {"samples_s": [seconds], "median_s": seconds, "calls_per_sample": 1}


def _synthetic_results():
    medium = RecurrenceConfig("medium", 100, 32, 128, 256)
    flops = {p: medium.flops(p) for p in configs.PASSES}
    roofline = 200.0
    elman_forward = flops[FORWARD] / (0.7 * roofline * 1e9)  # seconds at 70% of the roofline
    elman_both = flops[FORWARD_BACKWARD] / (0.5 * roofline * 1e9)  # and at 50%
    return {
        "meta": {"suite": "full", "command": "python -m elman bench", "started": "now", "seconds": 1,
                 "threads": 2, "rounds": 1, "min_sample_seconds": 0.1, "warmup_seconds": 0.1,
                 "load_average_start": [1.0, 1.0, 1.0], "load_average_end": [1.0, 1.0, 1.0],
                 "machine": {"cpu": "cpu", "logical_cpus": 2, "platform": "p", "python": "3"},
                 "libraries": {}, "skipped": {"onnxruntime": "ImportError: none"}},
        "roofline": {"n": 2048, "gflops": {"numpy": roofline}, "best_gflops": roofline},
        "recurrence": [{
            "config": {"name": "medium", "T": 100, "B": 32, "D": 128, "H": 256, "group": "fixed"},
            "flops": flops,
            # forward: 2x torch and 70% of the roofline; forward+backward: 1.5x torch, 50%
            "libraries": {"elman": {FORWARD: _timing(elman_forward), FORWARD_BACKWARD: _timing(elman_both)},
                          "torch": {FORWARD: _timing(2 * elman_forward),
                                    FORWARD_BACKWARD: _timing(1.5 * elman_both)}},
            "parity": {"torch": {FORWARD: {"hs": 1e-7}}},
        }],
        "train": [], "memory": [],
        "overhead": {"shape": "T=1", "calls": 1, "repeats": 1, "elman.rnn_forward": 2.5,
                     "_core.rnn_forward": 2.0},
    }


def test_targets_are_judged_from_the_measurements():
    rows = {(r["what"], r["target"]): r for r in report.target_rows(_synthetic_results())}
    assert rows["medium forward", ">= 1.5x torch"]["met"] is True
    assert rows["medium forward", ">= 1.5x torch"]["measured"] == pytest.approx(2.0)
    assert rows["medium forward", ">= 60% roofline"]["met"] is True
    assert rows["medium forward+backward", ">= 2x torch"]["met"] is False
    assert rows["medium forward+backward", ">= 65% roofline"]["measured"] == pytest.approx(0.5)
    assert rows["overhead", "< 3 us"]["met"] is True
    # the peers' round (issue 16): against every peer, not judged where a peer was not measured
    assert ("medium forward", ">= 1.1x torch") not in rows  # 1.5x torch is the stronger one
    assert rows["medium forward", ">= 1.1x jax"]["met"] is None
    assert ("medium forward+backward", ">= 1.1x openvino") not in rows  # it has no backward


def test_markdown_has_target_and_met_columns():
    text = report.markdown(_synthetic_results())
    header = next(line for line in text.splitlines() if line.startswith("| config | shape | pass"))
    assert header.endswith("| target | met? |")
    row = next(line for line in text.splitlines()
               if line.startswith("| medium | T=100") and "| forward |" in line)
    assert row.endswith("| >= 1.5x torch; >= 60% roofline | yes; yes |")
    assert "onnxruntime: **not measured** (ImportError: none)" in text
    assert "warning: the machine was busy** (load average 1.00 on 2 CPUs at the start)" in text


def test_no_busy_warning_on_a_quiet_machine():
    results = _synthetic_results()
    results["meta"].update(load_average_start=[0.1, 0.1, 0.1], other_processes_cpus=0.05)
    assert "the machine was busy" not in report.markdown(results)
    results["meta"]["other_processes_cpus"] = 1.3
    assert "other processes used 1.30 CPUs during the run" in report.markdown(results)


def test_busy_warning_trusts_the_cpu_time_measured_during_the_run():
    """A high load average left over from what ran just before is not a busy run when the other
    processes' CPU time during it was measured and small; without that measurement it is."""
    results = _synthetic_results()
    results["meta"].update(load_average_start=[1.5, 1.5, 1.5], other_processes_cpus=0.01)
    assert "the machine was busy" not in report.markdown(results)
    results["meta"]["other_processes_cpus"] = None
    assert "load average 1.50 on 2 CPUs at the start" in report.markdown(results)


# --------------------------------------------------------------------------- #
# Workers and the command line
# --------------------------------------------------------------------------- #

def test_worker_reports_an_unknown_library_and_errors_with_their_traceback():
    worker = Worker("no-such-library", threads=1)
    assert not worker.available and "no-such-library" in worker.reason
    with Worker("reference", threads=1) as worker:
        assert worker.available
        with pytest.raises(WorkerError, match=r"failed on 'launch'[\s\S]*unknown command 'launch'"):
            worker.request("launch")
        assert worker.request("release", ("gemm", 8)) is None  # still serving after an error


@pytest.mark.parametrize("argv, message", [
    (["--threads", "0"], "expected an integer >= 1"),
    (["--libraries", "elman,tensorflow"], "unknown 'tensorflow'"),
    (["--out", "/no/such/folder/r.md"], "does not exist"),
    (["--quick", "--smoke"], "not allowed with argument"),
])
def test_bad_arguments_exit_with_code_2(argv, message, capsys):
    from elman.bench_cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_bench_script_is_the_same_command_line():
    result = subprocess.run([sys.executable, os.path.join(REPO, "bench", "run.py"), "--help"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert result.stdout.startswith("usage: python -m elman bench")


def test_elman_gemm_task_computes_a_product():
    """The roofline's elman sample times a real product, not an empty call: a @ b^T."""
    from elman.benchmarks.peers import Elman, _gemm_operands

    run = Elman(threads=1).task(("gemm", 24)).run
    a, b = _gemm_operands(24)
    np.testing.assert_allclose(run().reshape(24, 24), a @ b.T, rtol=1e-5, atol=1e-5)
