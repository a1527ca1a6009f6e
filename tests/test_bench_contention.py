"""`python -m elman bench --contention`: quiet and loaded rounds, and trainers side by side."""

import json
import os
import time

import pytest

from elman.benchmarks import contention
from elman.cli import main


def test_smoke_contention_run_measures_every_config_quiet_and_loaded(tmp_path):
    out = tmp_path / "contention.md"
    code = main(["bench", "--contention", "--smoke", "--libraries", "elman", "--out", str(out),
                 "--json"])
    assert code == 0
    text = out.read_text()
    assert text.startswith("## A busy machine: quiet and loaded")
    results = json.loads((tmp_path / "contention.json").read_text())
    rows = {(r["config"], r["pass"]): r for r in results["recurrence"]}
    assert set(rows) == {(c.name, p) for c in contention.CONFIGS for p in ("forward", "forward+backward")}
    for row in rows.values():
        e = row["libraries"]["elman"]
        assert len(e["samples"]["quiet"]) == len(e["samples"]["loaded"]) == 1
        assert e["slowdown"] == pytest.approx(e["loaded_s"] / e["quiet_s"])
        assert f"| {row['config']} | {row['pass']} |" in text


def test_busy_cpus_start_and_stop_one_process_per_cpu():
    before = time.process_time()
    with contention.busy_cpus(count=2, settle=0.05) as n:
        assert n == 2
    assert time.process_time() - before < 1  # the loops are other processes, now gone


def fake_samples(elman_q, elman_l, torch_q, torch_l):
    return {("medium", "forward"): {"elman": {"quiet": [elman_q], "loaded": [elman_l]},
                                    "torch": {"quiet": [torch_q], "loaded": [torch_l]}}}


def test_targets_are_judged_from_slowdowns_and_ratios():
    # elman 1 -> 3 ms (3x), torch 3 -> 6 ms (2x): 3 <= 1.5 * 2, ratio 3x -> 2x >= 1.5x
    row, = contention._summary(fake_samples(1e-3, 3e-3, 3e-3, 6e-3))
    assert row["slowdown_met"] and row["ratio_met"]
    assert row["ratio_quiet"] == pytest.approx(3) and row["ratio_loaded"] == pytest.approx(2)
    # elman 1 -> 5 ms (5x) against torch's 2x, ratio 3x -> 1.2x: both targets missed
    row, = contention._summary(fake_samples(1e-3, 5e-3, 3e-3, 6e-3))
    assert not row["slowdown_met"] and not row["ratio_met"]
    assert "no (slowdown, ratio)" in contention.contention_markdown(
        {"meta": {"started": "", "threads": 2, "rounds": 1, "busy_processes": 2, "machine": {"logical_cpus": 2}}, "recurrence": [row],
         "training": []})


def test_trainer_reports_steps_per_second(capsys):
    contention.train_loop("elman", "charlm", time.time(), 0.05)
    rate = json.loads(capsys.readouterr().out)["steps_per_s"]
    assert rate > 0
