"""metrictap show: charts that read without colour (ticks, markers, legend,
the terminal's width), --x AXIS, a running run's real runtime, --compare of
runs side by side aligned on the trainer's step, and --follow."""
import json
import re
import subprocess
import time
from pathlib import Path

import pytest

from conftest import CLI, EXAMPLES, clean_env

BRAILLE = re.compile("[\u2800-\u28ff]")


def cli(store, *args, env=None, check=True, timeout=120):
    e = clean_env({"METRICTAP_DIR": str(store), **(env or {})})
    p = subprocess.run([str(CLI), *args], env=e, capture_output=True, text=True,
                       timeout=timeout, stdin=subprocess.DEVNULL)
    if check and p.returncode != 0:
        raise AssertionError(f"metrictap {' '.join(args)} exited {p.returncode}: {p.stderr}")
    return p


def write_run(store, rid, *, config, summary, history, metrics=None, axes=None, name=None,
              start=1.7e9):
    d = Path(store) / "runs" / "sweep" / rid
    d.mkdir(parents=True)
    run = {"id": rid, "project": "sweep", "name": name or f"run-{rid}", "group": None,
           "tags": [], "state": "finished", "start_time": start, "end_time": start + 60,
           "runtime": 60.0, "exit_code": 0, "signal": None, "config": config,
           "metrics": metrics or {}, "axes": axes or []}
    (d / "run.json").write_text(json.dumps(run))
    (d / "summary.json").write_text(json.dumps(summary))
    (d / "history.jsonl").write_text("".join(json.dumps(r) + "\n" for r in history))
    return d


def chart_of(out, metric):
    """The lines of one chart: its title to the blank line after it."""
    lines = out.splitlines()
    start = next(i for i, l in enumerate(lines) if l.startswith(metric + "  (vs "))
    end = next((i for i in range(start, len(lines)) if not lines[i].strip()), len(lines))
    return lines[start:end]


def rows_of(chart):
    """(label, plot) of each plot row: the text before and after the axis."""
    out = []
    for l in chart[1:]:
        m = re.match(r"^ *(\S*) ([\u2524\u2502])(.*)$", l)
        if m:
            out.append((m.group(1), m.group(3)))
    return out


@pytest.fixture
def store(tmp_path):
    s = tmp_path / "store"
    s.mkdir()
    # Two runs logging eval at different rates: a's every 100 steps, b's
    # every 50; both name `step` their axis.
    hist_a = [{"_step": i, "step": 100 * (i + 1), "eval_loss": 2.0 / (i + 1)} for i in range(8)]
    hist_b = [{"_step": i, "step": 50 * (i + 1), "eval_loss": 2.5 / (i + 1) ** 0.5}
              for i in range(16)]
    for h in hist_b[:3]:
        h["lr_warm"] = 0.01  # metric with a value in a few rows
    hist_b.append({"_step": 16, "test_acc": 0.91})  # one value: a marker
    metrics = {"eval_loss": {"step_metric": "step"}, "test_acc": {"step_metric": "step"}}
    write_run(s, "cmpa0001", config={"lr": 0.1, "optimizer": "adam", "epochs": 8},
              summary={"eval_loss": 0.25, "test_acc": 0.88}, history=hist_a, metrics=metrics,
              axes=["step"], name="adam-lr0.1")
    write_run(s, "cmpb0002", config={"lr": 0.01, "optimizer": "adam", "epochs": 8, "wd": 1e-4},
              summary={"eval_loss": 0.625, "test_acc": 0.91}, history=hist_b, metrics=metrics,
              axes=["step"], name="adam-lr0.01", start=1.7e9 + 100)
    return s


def test_chart_has_ticks_markers_and_the_terminals_width(store):
    for cols in (60, 120):
        out = cli(store, "show", "cmpb", env={"COLUMNS": str(cols)}).stdout
        chart = chart_of(out, "eval_loss")
        assert chart[0] == "eval_loss  (vs step)"
        plot = [l for l in chart if "\u2502" in l or "\u2524" in l]
        assert len(plot) == 10
        # As wide as the terminal: the longest plot line is the width.
        assert max(len(l) for l in plot) == cols
        labels = [lab for lab, _ in rows_of(chart) if lab]
        # A few labelled y ticks, evenly spaced nice numbers, top and bottom included.
        assert len(labels) >= 4, chart
        vals = [float(v) for v in labels]
        steps = {round(a - b, 9) for a, b in zip(vals, vals[1:])}
        assert len(steps) == 1 and steps.pop() > 0, labels
        assert vals[0] >= 2.5 and vals[-1] <= 2.5 / 16 ** 0.5
        # x ticks: tick marks on the axis and whole-number labels in order.
        axis = next(i for i, l in enumerate(chart) if "\u2514" in l)
        assert chart[axis].count("\u252c") >= 3
        xt = [int(v) for v in chart[axis + 1].split()]
        assert xt == sorted(xt) and xt[0] >= 50 and xt[-1] <= 800 and len(xt) >= 3
        assert chart[axis + 1].rstrip().endswith("step") or chart[axis + 2].strip() == "step"
    # Not a terminal and no COLUMNS: 80.
    out = cli(store, "show", "cmpb", env={"COLUMNS": ""}).stdout
    assert max(len(l) for l in chart_of(out, "eval_loss")) == 80


def test_a_single_value_is_a_marker_and_x_chooses_the_axis(store):
    out = cli(store, "show", "cmpb", "--metric", "test_acc", "--metric", "eval_loss").stdout
    chart = chart_of(out, "test_acc")
    plot = "".join(p for _, p in rows_of(chart))
    assert plot.count("o") == 1 and not BRAILLE.sub("", plot).replace("o", "").strip()
    # --x _step: every metric against the row counter.
    out = cli(store, "show", "cmpb", "--x", "_step").stdout
    assert "eval_loss  (vs _step)" in out
    chart = chart_of(out, "eval_loss")
    axis = next(i for i, l in enumerate(chart) if "\u2514" in l)
    xt = [int(v) for v in chart[axis + 1].split() if v.isdigit()]
    assert xt[0] == 0 and 10 <= xt[-1] <= 15, chart
    # An axis no run has: an error naming the axes there are.
    p = cli(store, "show", "cmpb", "--x", "epoch", check=False)
    assert p.returncode == 1
    assert 'no run shown has the axis "epoch"' in p.stderr and "step" in p.stderr


def test_compare_side_by_side_and_aligned_on_the_step(store):
    p = cli(store, "show", "cmpa0001", "--compare", "cmpb0002", env={"COLUMNS": "100"})
    out = p.stdout
    head = out.split("eval_loss  (vs")[0]
    assert re.search(r"run\s+cmpa0001\s+cmpb0002", head)
    assert re.search(r"name\s+adam-lr0.1\s+adam-lr0.01", head)
    config = head.split("config (")[1].split("summary (")[0].splitlines()
    assert config[0] == "2 of 4 differ):"
    # Differing keys first, marked; equal ones after, unmarked; "-" for missing.
    marked = [l.split()[1] for l in config[1:] if l.startswith("* ")]
    plain = [l.split()[0] for l in config[1:] if l.startswith("  ")]
    assert marked == ["lr", "wd"] or sorted(marked) == ["lr", "wd"]
    assert plain == ["optimizer", "epochs"] or sorted(plain) == ["epochs", "optimizer"]
    assert config.index(next(l for l in config if "wd" in l)) < \
        config.index(next(l for l in config if "optimizer" in l))
    wd = next(l for l in config if "wd" in l).split()
    assert wd[2:] == ["-", "0.0001"]
    lr = next(l for l in config if " lr " in l + " ").split()
    assert lr[2:] == ["0.1", "0.01"]
    summary = head.split("summary (")[1].splitlines()
    assert summary[0].startswith("2 of 2 differ")
    # Charts: both runs, aligned on `step` (a's 100..800, b's 50..800), one
    # legend entry each with a distinct marker and dash sample.
    chart = chart_of(out, "eval_loss")
    assert chart[0] == "eval_loss  (vs step)"
    legend = " ".join(chart[-2:])
    ma = re.search(r"(\S)\S\S cmpa0001 adam-lr0.1", legend)
    mb = re.search(r"(\S)\S\S cmpb0002 adam-lr0.01", legend)
    assert ma and mb and ma.group(1) != mb.group(1)
    plot = [p for _, p in rows_of(chart)]
    # a's first point is at step 100, b's at 50: b's marker is left of a's.
    def first_col(mark):
        return min(p.index(mark) for p in plot if mark in p)
    assert first_col(mb.group(1)) < first_col(ma.group(1))
    # a lone test_acc value in b and none in a: a marker of b's on the chart.
    assert "test_acc  (vs step)" in out
    # Up to 10 runs.
    p = cli(store, "show", "cmpa", "--compare", *["cmpb"] * 10, check=False)
    assert p.returncode == 2 and "at most 10" in p.stderr


def wait_for(cond, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError("timed out")


def test_running_runtime_and_follow_until_the_end(tmp_path):
    work = tmp_path / "w"
    work.mkdir()
    store = work / "metrictap"
    env = clean_env({"METRICTAP_DIR": str(store)})
    trainer = subprocess.Popen([str(CLI), "run", "--", str(EXAMPLES / "train_ok"), "--epochs", "8",
                                "--delay-ms", "400"], cwd=work, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def two_rows():
            runs = list((store / "runs").glob("*/*/history.jsonl"))
            return runs and runs[0].read_text().count("\n") >= 2 and runs[0].parent
        d = wait_for(two_rows)
        rid = d.name
        out = cli(store, "show", rid).stdout
        assert "state    running" in out
        rt = re.search(r"runtime  (\S+) so far", out)
        assert rt and rt.group(1) != "0.0s", out
        follow = subprocess.run([str(CLI), "show", rid, "--follow", "--metric", "loss"],
                                env=env, capture_output=True, text=True, timeout=120)
        assert follow.returncode == 0, follow.stderr
        frames = follow.stdout.split("\f\n")
        assert len(frames) >= 2, follow.stdout
        epochs = [int(m.group(1)) for f in frames
                  for m in [re.search(r"^  epoch\s+(\d+)", f, re.M)] if m]
        assert epochs == sorted(epochs) and epochs[-1] == 8 and epochs[0] < 8, epochs
        assert "following " + rid in frames[0]
        last = frames[-1]
        assert "state    finished" in last and "following" not in last
        assert "loss  (vs epoch)" in last
    finally:
        trainer.wait(timeout=120)
