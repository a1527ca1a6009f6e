"""Turn the harness's results into a markdown report, a PNG plot and a JSON dump.

Everything here reads the results dict only (the same data the JSON dump holds), so a report can
be redrawn from a saved JSON file: ``markdown(json.load(f))``.

Definitions used in every table:

* ms: the median over the rounds of a library's mean time per call;
* "vs peer": peer ms / elman ms, so above 1 means elman is faster;
* GFLOP/s: the FLOP count of :mod:`.configs` divided by the median time;
* roofline: elman's GFLOP/s as a share of the best float32 GEMM measured in the same run.
"""

from __future__ import annotations

import json
import math
import os

from .._files import write_atomically
from .configs import (
    LIBRARIES,
    MEMORY_TARGET,
    OVERHEAD_TARGET,
    PASSES,
    RecurrenceConfig,
    TrainConfig,
    recurrence_targets,
    train_targets,
)

__all__ = ["markdown", "write_markdown", "write_json", "write_plot", "target_rows"]

PEERS = tuple(name for name in LIBRARIES if name != "elman")
MIB = 2**20
# Warn when the 1-minute load average at the start, or the CPUs used by other processes during
# the run, exceed this share of the CPUs: a quarter of a core is already enough to stall steps.
BUSY_LOAD_SHARE = 0.25


# --------------------------------------------------------------------------- #
# Derived quantities
# --------------------------------------------------------------------------- #

def _median(entry, library, label):
    """Median seconds of library on the spec labelled `label` (a pass, or "train"), or None."""
    timing = entry["libraries"].get(library, {}).get(label)
    return None if timing is None else timing["median_s"]


def _speedup(entry, peer, label):
    elman, other = _median(entry, "elman", label), _median(entry, peer, label)
    return None if elman is None or other is None else other / elman


def _gflops(flops, seconds):
    return None if seconds is None else flops / seconds / 1e9


def _share(gflops, roofline):
    return None if gflops is None or not roofline else gflops / roofline


def _measured_for(target, entry, label, flops, roofline):
    if target.kind == "speedup":
        return _speedup(entry, target.peer, label)
    return _share(_gflops(flops, _median(entry, "elman", label)), roofline)


def _spread(entry, library, label):
    """(max - min) / median of a library's samples: how noisy its timing was."""
    timing = entry["libraries"].get(library, {}).get(label)
    if timing is None or len(timing["samples_s"]) < 2:
        return None
    samples = timing["samples_s"]
    return (max(samples) - min(samples)) / timing["median_s"]


def target_rows(results):
    """Every target of the issue with what was measured: a list of dicts with keys
    what, target, measured (a number or None) and met (True, False or None)."""
    roofline = results["roofline"]["best_gflops"]
    rows = []
    for entry in results["recurrence"]:
        config = RecurrenceConfig(**entry["config"])
        for pass_ in PASSES:
            for target in recurrence_targets(config, pass_):
                measured = _measured_for(target, entry, pass_, entry["flops"][pass_], roofline)
                rows.append({"what": f"{config.name} {pass_}", "target": target.describe(),
                             "measured": measured, "met": target.met(measured)})
    for entry in results["train"]:
        config = TrainConfig(**entry["config"])
        for target in train_targets(config):
            measured = _measured_for(target, entry, "train", entry["flops"], roofline)
            rows.append({"what": f"training step {config.name}", "target": target.describe(),
                         "measured": measured, "met": target.met(measured)})
    for probe in results["memory"]:
        rows.append({"what": f"memory {probe['config']['name']}", "target": MEMORY_TARGET.describe(),
                     "measured": probe["ratio"], "met": MEMORY_TARGET.met(probe["ratio"])})
    overhead = results.get("overhead")
    if overhead:
        value = overhead["elman.rnn_forward"]
        rows.append({"what": "overhead", "target": OVERHEAD_TARGET.describe(), "measured": value,
                     "met": OVERHEAD_TARGET.met(value)})
    return rows


# --------------------------------------------------------------------------- #
# Formatting
# --------------------------------------------------------------------------- #

def _ms(seconds):
    return "—" if seconds is None else _significant(seconds * 1e3)


def _significant(value, digits=3):
    if value is None:
        return "—"
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    decimals = max(0, digits - 1 - int(math.floor(math.log10(abs(value)))))
    return f"{value:.{decimals}f}"


def _times(ratio):
    return "—" if ratio is None else f"{_significant(ratio)}x"


def _percent(share):
    return "—" if share is None else f"{share:.0%}"


def _yes_no(met):
    return {True: "yes", False: "**no**", None: "n/a"}[met]


def _table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return lines


def _targets_cells(targets, measured):
    """The 'target' and 'met?' cells of a row with several targets (joined by '; ')."""
    if not targets:
        return "", ""
    return ("; ".join(t.describe() for t in targets),
            "; ".join(_yes_no(t.met(m)) for t, m in zip(targets, measured)))


def _peers_in(results):
    present = set()
    for entry in results["recurrence"]:
        present.update(entry["libraries"])
    return [peer for peer in PEERS if peer in present]


# --------------------------------------------------------------------------- #
# Sections
# --------------------------------------------------------------------------- #

def _header(results):
    meta = results["meta"]
    roofline = results["roofline"]
    libraries = meta.get("libraries", {})
    lines = [f"# elman benchmark ({meta['suite']} run)", ""]
    lines.append(f"- command: `{meta.get('command') or 'python -m elman bench'}`")
    lines.append(f"- started {meta['started']}, took {meta.get('seconds', 0):.0f} s")
    lines.append(f"- load average (1, 5, 15 min, as `uptime` shows): {_load(meta.get('load_average_start'))} "
                 f"at the start, {_load(meta.get('load_average_end'))} at the end")
    others = meta.get("other_processes_cpus")
    if others is not None:
        lines.append(f"- other processes kept {others:.2f} CPUs busy on average during the run "
                     "(from /proc/stat, less this run's own CPU time)")
    machine = meta["machine"]
    lines.append(f"- machine: {machine['cpu']}, {machine['logical_cpus']} logical CPUs; "
                 f"{machine['platform']}; Python {machine['python']}")
    lines.append(f"- every library on {meta['threads']} threads, each in its own process; rounds "
                 f"(libraries alternating): {meta['rounds']}, median shown; each sample times calls "
                 f"for at least {meta['min_sample_seconds']:g} s, after {meta['warmup_seconds']:g} s "
                 "of warm-up")
    for name, info in libraries.items():
        details = ", ".join(f"{k} {_plain(v)}" for k, v in info.items())
        lines.append(f"- {name}: {details}")
    for name, reason in meta.get("skipped", {}).items():
        lines.append(f"- {name}: **not measured** ({reason})")
    gemm = ", ".join(f"{name} {value:.1f}" for name, value in roofline["gflops"].items())
    best = roofline["best_gflops"]
    lines.append(f"- roofline: float32 GEMM of {roofline['n']}x{roofline['n']} matrices, best sample "
                 f"at the start and at the end of the run, GFLOP/s: {gemm}; best **{best:.1f} GFLOP/s**"
                 if best else "- roofline: not measured")
    lines += [f"- note: {note}" for note in meta.get("notes", [])]
    lines += _busy_warning(meta)
    return lines


def _busy_warning(meta):
    """A warning when other processes were using the CPUs during the run.

    The CPU time other processes used during the run (from /proc/stat) decides when it was
    measured; the load average at the start only when it was not: the 1-minute load average still
    counts, for a minute, whatever ran just before (a build, the previous benchmark), so on its own
    it flags quiet runs as busy."""
    load, cpus = meta.get("load_average_start"), meta["machine"].get("logical_cpus")
    others = meta.get("other_processes_cpus")
    if others is not None:
        busy = bool(cpus and others > BUSY_LOAD_SHARE * cpus)
    else:
        busy = bool(load and cpus and load[0] > BUSY_LOAD_SHARE * cpus)
    if not busy:
        return []
    evidence = [] if not load else [f"load average {load[0]:.2f} on {cpus} CPUs at the start"]
    if others is not None:
        evidence.append(f"other processes used {others:.2f} CPUs during the run")
    return [f"- **warning: the machine was busy** ({'; '.join(evidence)}): every library's "
            "threads competed with other processes, so the timings are slow and noisy (see the "
            "spread column); only the ratios of a run on a quiet machine count (`--contention` "
            "measures a busy machine on purpose)"]


def _plain(value):
    return "/".join(map(str, value)) if isinstance(value, (list, tuple)) else value


def _load(values):
    return "unknown" if values is None else ", ".join(f"{v:.2f}" for v in values)


def _recurrence_section(results, group):
    roofline = results["roofline"]["best_gflops"]
    peers = _peers_in(results)
    entries = [e for e in results["recurrence"] if e["config"]["group"] == group]
    if not entries:
        return []
    if group == "fixed":
        lead = ["config", "shape"]
    else:
        lead = ["B", "H"]
    header = (lead + ["pass", "elman ms"] + [f"{p} ms" for p in peers] + [f"vs {p}" for p in peers]
              + ["elman GFLOP/s", "roofline", "spread"])
    if group == "fixed":
        header += ["target", "met?"]
    rows = []
    for entry in entries:
        config = RecurrenceConfig(**entry["config"])
        for pass_ in PASSES:
            flops = entry["flops"][pass_]
            elman_seconds = _median(entry, "elman", pass_)
            gflops = _gflops(flops, elman_seconds)
            lead_cells = ([config.name, config.shape_text()] if group == "fixed"
                          else [config.B, config.H])
            row = (lead_cells + [pass_, _ms(elman_seconds)]
                   + [_ms(_median(entry, p, pass_)) for p in peers]
                   + [_times(_speedup(entry, p, pass_)) for p in peers]
                   + [_significant(gflops), _percent(_share(gflops, roofline)),
                      _percent(_spread(entry, "elman", pass_))])
            if group == "fixed":
                # the targets against peers this run did not measure are left out of the row
                # (the targets table lists them as n/a)
                judged = [(t, m) for t in recurrence_targets(config, pass_)
                          if (m := _measured_for(t, entry, pass_, flops, roofline)) is not None
                          or t.kind != "speedup"]
                row += list(_targets_cells([t for t, _ in judged], [m for _, m in judged]))
            rows.append(row)
    if group == "fixed":
        title = ["## Recurrence: tanh, float32, no output layer", ""]
    else:
        first = entries[0]["config"]
        title = [f"## H sweep: T={first['T']}, D=H, tanh, float32", "",
                 "GFLOP/s of every library against H: see the plot."]
        title.append("")
    return title + _table(header, rows) + [""]


def _train_section(results):
    entries = results["train"]
    if not entries:
        return []
    roofline = results["roofline"]["best_gflops"]
    header = ["config", "shape", "elman ms", "torch ms", "vs torch", "roofline ms", "elman GFLOP/s",
              "roofline", "spread", "target", "met?"]
    rows = []
    for entry in entries:
        config = TrainConfig(**entry["config"])
        seconds = _median(entry, "elman", "train")
        gflops = _gflops(entry["flops"], seconds)
        targets = train_targets(config)
        measured = [_measured_for(t, entry, "train", entry["flops"], roofline) for t in targets]
        roofline_ms = None if not roofline else entry["flops"] / (roofline * 1e9)
        rows.append([config.name, config.shape_text(), _ms(seconds), _ms(_median(entry, "torch", "train")),
                     _times(_speedup(entry, "torch", "train")), _ms(roofline_ms), _significant(gflops),
                     _percent(_share(gflops, roofline)), _percent(_spread(entry, "elman", "train")),
                     *_targets_cells(targets, measured)])
    return (["## Full model: one training step", "",
             "elman: `elman.RNN(D, H, num_layers=L, output_size=O)` + `elman.losses.cross_entropy` + "
             "`elman.optim.Adam`; torch: `nn.RNN(D, H, num_layers=L)` + `nn.Linear(H, O)` + "
             "`F.cross_entropy` + `torch.optim.Adam` (lr 1e-3). Same initial weights; loss and every "
             "gradient checked. Roofline ms: the step's FLOPs at the roofline's speed.", ""]
            + _table(header, rows) + [""])


def _memory_section(results):
    probes = results["memory"]
    if not probes:
        return []
    header = ["config", "must hold MiB", "extra (traced) MiB", "extra (RSS) MiB", "peak / must hold",
              "target", "met?"]
    rows = []
    for p in probes:
        must_hold = p["input_bytes"] + p["output_bytes"]
        rows.append([p["config"]["name"], f"{must_hold / MIB:.2f}", f"{p['traced_peak_bytes'] / MIB:.2f}",
                     f"{p['rss_growth_bytes'] / MIB:.2f}", f"{p['ratio']:.2f}x", MEMORY_TARGET.describe(),
                     _yes_no(MEMORY_TARGET.met(p["ratio"]))])
    return (["## Memory: elman forward+backward, each in a fresh process", "",
             "Must hold: the inputs (x, h0, weights, dhs) and the outputs (hs, dx, dh0, dW_xh, dW_hh, db_h). "
             "Extra: what the pass allocated at its peak, by tracemalloc (NumPy arrays) and by the growth "
             f"of peak RSS ({probes[0]['rss_method']}; this also sees the C++ workspace). "
             "Peak / must hold = (inputs + larger extra) / (inputs + outputs).", ""]
            + _table(header, rows) + [""])


def _overhead_section(results):
    overhead = results.get("overhead")
    if not overhead:
        return []
    value = overhead["elman.rnn_forward"]
    rows = [["`elman.rnn_forward`", f"{value:.2f}", OVERHEAD_TARGET.describe(),
             _yes_no(OVERHEAD_TARGET.met(value))],
            ["`elman._core.rnn_forward` (the binding alone)", f"{overhead['_core.rnn_forward']:.2f}", "", ""]]
    return ([f"## Per-call overhead: {overhead['shape']}", "",
             f"Best of {overhead['repeats']} timings of {overhead['calls']} calls; the arithmetic is a "
             "fraction of this, so it is the cost of the Python layer, the checks and the binding.", ""]
            + _table(["call", "us per call", "target", "met?"], rows) + [""])


def _targets_section(results):
    rows = [[r["what"], r["target"], _measured_text(r), _yes_no(r["met"])] for r in target_rows(results)]
    if not rows:
        return []
    return ["## The issue's targets", ""] + _table(["what", "target", "measured", "met?"], rows) + [""]


def _measured_text(row):
    value = row["measured"]
    if value is None:
        return "—"
    target = row["target"]
    if "roofline" in target:
        return _percent(value)
    if target.endswith("us"):
        return f"{value:.2f} us"
    return _times(value)


def _parity_section(results):
    peers = _peers_in(results)
    rows = []
    labelled = ([(entry, PASSES) for entry in results["recurrence"]]
                + [(entry, ("train",)) for entry in results["train"]])
    for entry, labels in labelled:
        for label in labels:
            cells = []
            for peer in peers:
                errors = entry["parity"].get(peer, {}).get(label)
                cells.append("—" if not errors else f"{max(errors.values()):.1e}")
            if any(cell != "—" for cell in cells):
                rows.append([entry["config"]["name"], "training step" if label == "train" else label, *cells])
    if not rows:
        return []
    return (["## Parity checked before timing", "",
             "Largest max|peer − elman| / max|elman| over the arrays compared (outputs; and, with "
             "backward, every gradient; for the training step, the loss and every gradient). "
             "The run stops above 1e-4.", ""]
            + _table(["config", "pass", *peers], rows) + [""])


def _method_section(results):
    waits = results["meta"].get("idle_waits", {})
    lines = ["## Method", "",
             "Each library runs in its own worker process, so one library's idle OpenMP/BLAS threads "
             "cannot steal cores from another's; the parent asks one worker at a time and, before "
             "turning to another, waits until the last one's threads have stopped using CPU.",
             "vs peer = peer ms / elman ms (above 1: elman is faster). GFLOP/s counts 2TBH(D+H) for "
             "forward and 2TBH(3D+3H) for forward+backward (forward, dx, dW_xh, dW_hh and dh, "
             "product by product). The training step "
             "is counted product by product. Spread = (max − min) / median of elman's samples."]
    if waits:
        lines.append("Time spent waiting for each worker's threads to go idle (mean / max ms): "
                     + ", ".join(f"{name} {w['mean_s'] * 1e3:.1f} / {w['max_s'] * 1e3:.1f}"
                                 for name, w in waits.items()) + ".")
    return lines + [""]


def markdown(results):
    """The whole report as markdown text."""
    lines = _header(results) + [""]
    lines += _targets_section(results)
    lines += _recurrence_section(results, "fixed")
    lines += _train_section(results)
    lines += _recurrence_section(results, "sweep")
    lines += _memory_section(results)
    lines += _overhead_section(results)
    lines += _parity_section(results)
    lines += _method_section(results)
    return "\n".join(lines).rstrip() + "\n"


def write_markdown(results, path):
    """The report to path (atomically, as every elman writer: elman._files); returns its text."""
    text = markdown(results)
    write_atomically(path, lambda f: f.write(text), "w", encoding="utf-8")
    return text


def write_json(results, path):
    text = json.dumps(results, indent=1) + "\n"
    write_atomically(path, lambda f: f.write(text), "w", encoding="utf-8")


# --------------------------------------------------------------------------- #
# The plot
# --------------------------------------------------------------------------- #

COLORS = {"elman": "tab:blue", "reference": "tab:gray", "torch": "tab:orange", "onnxruntime": "tab:green",
          "openvino": "tab:purple", "jax": "tab:red", "tf-xla": "tab:brown"}


def write_plot(results, path):
    """The H sweep (GFLOP/s against H, one panel per batch size) and bars of elman's speed-up
    against each peer. Returns False when matplotlib is not installed."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return False
    sweep = [e for e in results["recurrence"] if e["config"]["group"] == "sweep"]
    batches = sorted({e["config"]["B"] for e in sweep})
    fig = Figure(figsize=(13, 9), dpi=100)
    FigureCanvasAgg(fig)  # render without pyplot: no global backend is touched
    grid = fig.add_gridspec(2, max(1, len(batches)))
    for column, B in enumerate(batches):
        _plot_sweep(fig.add_subplot(grid[0, column]), [e for e in sweep if e["config"]["B"] == B],
                    B, results["roofline"]["best_gflops"])
    _plot_speedups(fig.add_subplot(grid[1, :]), results)
    meta = results["meta"]
    fig.suptitle(f"elman benchmark ({meta['suite']}): {meta['threads']} threads, "
                 f"{meta['machine']['cpu']}", fontsize=11)
    fig.tight_layout()
    # To a file object, so the format comes from the path's extension as savefig(path) would take it.
    image_format = os.path.splitext(os.fspath(path))[1][1:].lower() or "png"
    write_atomically(path, lambda f: fig.savefig(f, format=image_format))
    return True


def _plot_sweep(ax, entries, B, roofline):
    entries = sorted(entries, key=lambda e: e["config"]["H"])
    hidden = [e["config"]["H"] for e in entries]
    for library in LIBRARIES:
        for pass_, style in zip(PASSES, ("-", "--")):
            points = [(e["config"]["H"], _gflops(e["flops"][pass_], _median(e, library, pass_)))
                      for e in entries]
            points = [(h, g) for h, g in points if g is not None]
            if points:
                ax.plot(*zip(*points), style, marker="o", markersize=3, color=COLORS[library],
                        label=f"{library} {pass_}")
    if roofline:
        ax.axhline(roofline, color="black", linewidth=0.8, linestyle=":", label="roofline (GEMM)")
    ax.set_xscale("log", base=2)
    ax.set_xticks(hidden, [str(h) for h in hidden])
    ax.set_yscale("log")
    ax.set_xlabel("H (D = H)")
    ax.set_ylabel("GFLOP/s")
    T = entries[0]["config"]["T"] if entries else "?"
    ax.set_title(f"H sweep, B={B}, T={T}", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)


def _plot_speedups(ax, results):
    """Bars: elman's speed-up against each peer, per fixed config and pass and training step;
    a black tick over a bar marks the issue's target for that peer."""
    groups = []  # (label, {peer: ratio}, {peer: target ratio})
    for entry in results["recurrence"]:
        config = RecurrenceConfig(**entry["config"])
        if config.group != "fixed":
            continue
        for pass_ in PASSES:
            groups.append((f"{config.name}\n{pass_}", {p: _speedup(entry, p, pass_) for p in PEERS},
                           _speedup_targets(recurrence_targets(config, pass_))))
    for entry in results["train"]:
        config = TrainConfig(**entry["config"])
        groups.append((f"{config.name}\ntraining step", {p: _speedup(entry, p, "train") for p in PEERS},
                       _speedup_targets(train_targets(config))))
    peers = [p for p in PEERS if any(ratios.get(p) for _, ratios, _ in groups)]
    width = 0.8 / max(1, len(peers))
    target_label = "issue's target"  # in the legend once
    for k, peer in enumerate(peers):
        xs = [i + (k - (len(peers) - 1) / 2) * width for i in range(len(groups))]
        heights = [ratios.get(peer) or 0 for _, ratios, _ in groups]
        ax.bar(xs, heights, width, color=COLORS[peer], label=f"vs {peer}")
        marks = [(x, targets[peer]) for x, (_, _, targets) in zip(xs, groups) if peer in targets]
        if marks:
            ax.scatter(*zip(*marks), marker="_", s=400, color="black", linewidths=2, zorder=3,
                       label=target_label)
            target_label = None
    ax.axhline(1, color="black", linewidth=0.8)
    ax.set_xticks(range(len(groups)), [label for label, _, _ in groups], fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("peer time / elman time")
    ax.set_title("elman's speed-up (above 1: elman is faster)", fontsize=10)
    ax.grid(alpha=0.3, axis="y", which="both")
    if peers:
        ax.legend(fontsize=8)


def _speedup_targets(targets):
    """{peer: ratio} of the speed-up targets among targets."""
    return {t.peer: t.value for t in targets if t.kind == "speedup"}
