"""metrictap report: one self-contained HTML file, opened in headless Debian
chromium: the screenshot shows the charts (not blank, the series' colours are
drawn) and the DOM holds the runs, their values and a line per run per
metric."""
import json
import os
import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from conftest import CLI, clean_env

CHROMIUM = shutil.which("chromium")
# The first series colours of cli/report.c's palette.
COLOURS = [(0x1f, 0x77, 0xb4), (0xff, 0x7f, 0x0e), (0x2c, 0xa0, 0x2c)]


def write_run(store, rid, start, lr, acc_end, with_nan=False):
    d = Path(store) / "runs" / "vision" / rid
    d.mkdir(parents=True)
    hist = []
    for s in range(60):
        row = {"_step": s, "_runtime": s * 2.0, "_timestamp": start + s * 2,
               "loss": round(2.0 * (1 - s / 70) / (1 + lr * s), 4),
               "acc": round(acc_end * s / 59, 4)}
        if s % 10 == 9:
            row.update({"epoch": s // 10 + 1, "val_acc": round(acc_end * (s + 1) / 62, 4)})
        hist.append(row)
    if with_nan:
        hist[30]["loss"] = "NaN"
    (d / "history.jsonl").write_text("".join(json.dumps(r) + "\n" for r in hist))
    (d / "summary.json").write_text(json.dumps(
        {"loss": hist[-1]["loss"], "acc": acc_end, "val_acc": hist[-1]["val_acc"],
         "_step": 59}))
    (d / "run.json").write_text(json.dumps({
        "id": rid, "project": "vision", "name": f"resnet-lr{lr}", "group": None,
        "tags": ["sweep"], "state": "finished", "start_time": start, "end_time": start + 120,
        "runtime": 120.0, "exit_code": 0, "signal": None, "config": {"lr": lr},
        "metrics": {"val_acc": {"step_metric": "epoch"}}}))


def png_pixels(path):
    """(width, height, rows of RGB tuples) of an 8-bit RGB/RGBA PNG."""
    data = Path(path).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            width, height, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and ctype in (2, 6) and interlace == 0
            bpp = 3 if ctype == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw = zlib.decompress(idat)
    stride = width * bpp
    prev = bytearray(stride)
    rows = []
    for y in range(height):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        if f == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 255
        elif f == 2:
            for i in range(stride):
                line[i] = (line[i] + prev[i]) & 255
        elif f == 3:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 255
        elif f == 4:
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b, c = prev[i], prev[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append([tuple(line[i:i + 3]) for i in range(0, stride, bpp)])
        prev = line
    return width, height, rows


def chromium(args, tmp_path):
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         "--host-resolver-rules=MAP * ~NOTFOUND", f"--user-data-dir={tmp_path / 'profile'}",
         *args], capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(not CHROMIUM, reason="chromium is not installed (scripts/deps.sh test)")
def test_report_renders_runs_and_charts_offline(tmp_path):
    store = tmp_path / "store"
    runs = [("rrrr0001", 0.001, 0.91, False), ("rrrr0002", 0.01, 0.84, True),
            ("rrrr0003", 0.1, 0.62, False)]
    for i, (rid, lr, acc, nan) in enumerate(runs):
        write_run(store, rid, 1.7e9 + i * 1000, lr, acc, nan)
    out = tmp_path / "report.html"
    p = subprocess.run([str(CLI), "report", "--project", "vision", "--filter", "config.lr < 1",
                        "--columns", "config.lr,summary.acc", "-o", str(out)],
                       env=clean_env({"METRICTAP_DIR": str(store)}), capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert "3 runs, 3 charts" in p.stderr
    html = out.read_text()
    # Self-contained: nothing to fetch.
    assert not re.search(r"""\b(src|href)\s*=""", html, re.I)
    assert not re.search(r"url\(|@import|<script[^>]+src|<link", html, re.I)
    # The only address is SVG's namespace: in each chart and in the script.
    assert [u for u in re.findall(r"https?://[^\"' )]+", html)] == \
        ["http://www.w3.org/2000/svg"] * 4

    dom = chromium(["--dump-dom", out.as_uri()], tmp_path)
    assert dom.returncode == 0, dom.stderr[-2000:]
    dom = dom.stdout
    for rid, lr, acc, _ in runs:
        row = re.search(rf'<tr data-run="{rid}">(.*?)</tr>', dom, re.S)
        assert row, rid
        assert f'data-col="config.lr">{lr:g}<' in row.group(1)
        assert f'data-col="summary.acc">{acc:g}<' in row.group(1)
    for metric, axis in (("loss", "_step"), ("acc", "_step"), ("val_acc", "epoch")):
        fig = re.search(rf'<figure class="chart" data-metric="{metric}"[^>]*>(.*?)</figure>', dom,
                        re.S)
        assert fig, metric
        assert f"vs {axis}" in fig.group(1)
        paths = re.findall(r'<path data-run="(\w+)" stroke="[^"]+" d="([^"]+)"', fig.group(1))
        assert [r for r, _ in paths] == [r[0] for r in reversed(runs)]  # newest first
        for rid, d in paths:
            assert d.startswith("M") and d.count("L") >= 4, (metric, rid)
    # The NaN in rrrr0002's loss breaks its line in two and is said so.
    loss = re.search(r'data-metric="loss"[^>]*>(.*?)</figure>', dom, re.S).group(1)
    assert "1 non-finite values not drawn" in loss
    d2 = re.search(r'<path data-run="rrrr0002" stroke="[^"]+" d="([^"]+)"', loss).group(1)
    assert d2.count("M") == 2

    shot = tmp_path / "shot.png"
    s = chromium([f"--screenshot={shot}", "--window-size=1100,900", out.as_uri()], tmp_path)
    assert s.returncode == 0 and shot.exists(), s.stderr[-2000:]
    width, height, rows = png_pixels(shot)
    assert (width, height) == (1100, 900)
    pixels = [px for row in rows for px in row]
    white = sum(1 for px in pixels if px == (255, 255, 255))
    assert white < 0.97 * len(pixels), "the page is blank"
    # Each run's line colour is drawn somewhere (anti-aliasing blurs edges,
    # the stroke's middle keeps the colour).
    for colour in COLOURS:
        near = sum(1 for px in pixels if all(abs(a - b) <= 12 for a, b in zip(px, colour)))
        assert near > 200, f"no line drawn in {colour}"


ROOT = Path(__file__).resolve().parents[2]


def report(store, *args, check=True):
    p = subprocess.run([str(CLI), "report", *args], env=clean_env({"METRICTAP_DIR": str(store)}),
                       capture_output=True, text=True, timeout=120)
    if check:
        assert p.returncode == 0, p.stderr
    return p


def figures(dom):
    """{metric: (attributes, body)} of each chart figure."""
    return {m.group(2): (m.group(1), m.group(3)) for m in re.finditer(
        r'<figure class="chart([^"]*)" data-metric="([^"]+)"[^>]*>(.*?)</figure>', dom, re.S)}


def hex_rgb(h):
    return tuple(int(h[i:i + 2], 16) for i in (1, 3, 5))


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    """The 30-run grid (5 lr x 2 batch x 3 optimizers) made by scripts/grid_sweep.sh."""
    work = tmp_path_factory.mktemp("grid")
    p = subprocess.run(["sh", str(ROOT / "scripts" / "grid_sweep.sh")], cwd=work,
                       env=clean_env({"EPOCHS": "4", "METRICTAP": str(CLI)}),
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    return work / "metrictap"


@pytest.mark.skipif(not CHROMIUM, reason="chromium is not installed (scripts/deps.sh test)")
def test_grid_report_in_chromium_every_chart_has_its_legend_and_every_run_its_colour(
        grid, tmp_path):
    out = tmp_path / "grid.html"
    p = report(grid, "--project", "grid", "--parallel", "summary.eval_accuracy", "-o", str(out))
    assert re.search(r"30 runs, \d+ charts, parallel coordinates", p.stderr), p.stderr
    dom = chromium(["--dump-dom", out.as_uri()], tmp_path)
    assert dom.returncode == 0, dom.stderr[-2000:]
    dom = dom.stdout
    ids = re.findall(r'<tr data-run="(\w+)"', dom)
    assert len(ids) == 30 and len(set(ids)) == 30
    swatch = dict(re.findall(r'<tr data-run="(\w+)"><td><span class="sw" style="background:'
                             r'(#[0-9a-f]{6})', dom))
    assert len(swatch) == 30
    figs = figures(dom)
    main = {"train_loss", "train_accuracy", "eval_loss", "eval_accuracy"}
    assert main <= set(figs) and all(m.startswith("system.") for m in set(figs) - main)
    assert dom.count('<figure class="chart parallel" data-metric="eval_accuracy">') == 1
    style = {}
    for metric, (cls, body) in figs.items():
        if "parallel" in cls:
            continue
        paths = re.findall(r'<path data-run="(\w+)" stroke="(#[0-9a-f]{6})" d="[^"]+"'
                           r'(?: stroke-dasharray="([^"]+)")?', body)
        legend = re.search(r'<ul class="legend">(.*?)</ul>', body, re.S)
        assert legend, f"{metric} has no legend"
        items = re.findall(r'<li data-run="(\w+)"><svg[^>]*><line [^>]*stroke="(#[0-9a-f]{6})"'
                           r' stroke-width="3"(?: stroke-dasharray="([^"]+)")?', legend.group(1))
        # Every run drawn is in the legend, with the line's colour and dash.
        assert sorted(paths) == sorted(items) and paths, metric
        assert len(paths) == 30 or metric.startswith("system."), metric
        for rid, colour, dash in paths:
            assert swatch[rid] == colour  # the table's swatch is the same colour
            assert style.setdefault(rid, (colour, dash)) == (colour, dash)  # same in every chart
    # 30 runs, 30 styles that stay apart: two runs with the same dash are
    # far apart in colour.
    assert len(set(style.values())) == 30
    runs = list(style.values())
    for i, (c1, d1) in enumerate(runs):
        for c2, d2 in runs[i + 1:]:
            if d1 == d2:
                dist = sum((a - b) ** 2 for a, b in zip(hex_rgb(c1), hex_rgb(c2))) ** 0.5
                assert dist > 40, (c1, c2, d1)
    # Families: train_* and eval_* sections, in that order, each with its charts.
    sections = re.findall(r'<section class="family" data-family="(\w*)"><h2>([^<]*)</h2>(.*?)'
                          r'</section>', dom, re.S)
    fam = {f: body for f, _, body in sections}
    assert [f for f, _, _ in sections][:3] == ["parallel", "train", "eval"]
    assert [f for f, _, _ in sections][3:] in ([], ["system"])  # system.jsonl's samples last
    assert 'data-metric="train_loss"' in fam["train"] and 'data-metric="eval_loss"' in fam["eval"]
    assert "vs step" in figs["train_loss"][1] and "vs epoch" in figs["eval_loss"][1]
    # The table: config keys that vary, no empty columns (tags, group).
    head = re.search(r"<thead>(.*?)</thead>", dom, re.S).group(1)
    for col in ("config.lr", "config.batch", "config.optimizer", "summary.eval_accuracy"):
        assert f"<th>{col}</th>" in head
    assert "<th>tags</th>" not in head and "<th>group</th>" not in head
    assert "Columns without values left out: tags, group" in dom
    # Parallel coordinates: the varying keys as axes, lr on a log scale, a
    # line per run, the best drawn last and brightest.
    par = re.search(r'<figure class="chart parallel".*?</figure>', dom, re.S).group(0)
    names = re.findall(r'class="pcname">([^<]+)<', par)
    assert names == ["lr (log)", "epochs", "batch", "optimizer", "eval_accuracy"] or \
        names == ["lr (log)", "batch", "optimizer", "eval_accuracy"], names
    lines = re.findall(r'<path class="pcline" data-run="(\w+)" stroke="(#[0-9a-f]{6})"', par)
    assert len(lines) == 30
    best = subprocess.run([str(CLI), "ls", "--project", "grid", "--sort", "-summary.eval_accuracy",
                           "--limit", "1", "--json"], env=clean_env({"METRICTAP_DIR": str(grid)}),
                          capture_output=True, text=True, timeout=60)
    assert lines[-1][0] == json.loads(best.stdout)[0]["id"]
    assert lines[-1][1] == "#fde725"

    # The screenshot: the page is drawn and every run's colour is on it.
    shot = tmp_path / "grid.png"
    s = chromium([f"--screenshot={shot}", "--window-size=1300,1600", out.as_uri()], tmp_path)
    assert s.returncode == 0 and shot.exists(), s.stderr[-2000:]
    width, height, rows = png_pixels(shot)
    counts = {}
    for row in rows:
        for px in row:
            counts[px] = counts.get(px, 0) + 1
    for rid, colour in swatch.items():
        rgb = hex_rgb(colour)
        near = sum(n for px, n in counts.items() if all(abs(a - b) <= 6 for a, b in zip(px, rgb)))
        assert near >= 100, f"run {rid}'s colour {colour} is not on the page"

    # The switches: log y and smoothing redraw the lines (the view in the address).
    plain = figures(dom)["train_loss"][1]
    logged = chromium(["--dump-dom", out.as_uri() + "#logy"], tmp_path).stdout
    smoothed = chromium(["--dump-dom", out.as_uri() + "#smooth=0.9"], tmp_path).stdout
    def first_path(body):
        return re.search(r'<path data-run="\w+" stroke="#[0-9a-f]{6}" d="([^"]+)"', body).group(1)
    def yticks(body):
        return re.findall(r'class="yt">([^<]+)<', body)
    lg, sm = figures(logged)["train_loss"][1], figures(smoothed)["train_loss"][1]
    assert first_path(lg) != first_path(plain) and first_path(sm) != first_path(plain)
    assert yticks(lg) != yticks(plain) and "checked" not in plain
    # Smoothing flattens train_loss's wiggle: less bending for its range.
    def rough(d):
        ys = [float(v) for v in re.findall(r"[ML][\d.]+ ([\d.]+)", d)]
        bend = sum(abs(c - 2 * b + a) for a, b, c in zip(ys, ys[1:], ys[2:]))
        return bend / (max(ys) - min(ys))
    assert rough(first_path(sm)) < 0.7 * rough(first_path(plain))
    # Log y ticks are values of the data's decades (1, 2, 5 or nice values).
    assert all(float(t) > 0 for t in yticks(lg)) and len(yticks(lg)) >= 3
    # A run brought forward (what hovering does): it is lit everywhere, the rest dimmed.
    best_id = lines[-1][0]
    lit = chromium(["--dump-dom", out.as_uri() + "#run=" + best_id], tmp_path).stdout
    assert re.search(r'<body class="dim"', lit)
    tags = [(re.search(r'data-run="(\w+)"', a).group(1), re.search(r'class="([^"]*)"', a))
            for a in re.findall(r"<\w+ ([^>]*data-run=[^>]*)>", lit)]
    hl = [rid for rid, cls in tags if cls and "hl" in cls.group(1).split()]
    assert set(hl) == {best_id}
    # its table row, and its line and legend entry in every chart
    assert len(hl) >= 1 + 2 * (len(figs) - 1), len(hl)


def write_small(store, rid, history, metrics=None, summary=None, project="small", start=1.7e9):
    d = Path(store) / "runs" / project / rid
    d.mkdir(parents=True)
    (d / "history.jsonl").write_text("".join(json.dumps(r) + "\n" for r in history))
    (d / "summary.json").write_text(json.dumps(summary or {}))
    (d / "run.json").write_text(json.dumps({
        "id": rid, "project": project, "name": rid, "tags": [], "state": "finished",
        "start_time": start, "end_time": start + 10, "runtime": 10.0, "exit_code": 0,
        "config": {}, "metrics": metrics or {}, "axes": ["epoch"]}))


def test_markers_constant_series_integer_ticks_and_x(tmp_path):
    store = tmp_path / "store"
    hist = [{"_step": i, "epoch": i + 1, "const": 0.5, "count": i % 4, "wave": (i % 3) / 7}
            for i in range(4)]
    hist[-1]["final"] = 0.875
    metrics = {k: {"step_metric": "epoch"} for k in ("const", "count", "wave", "final")}
    write_small(store, "smal0001", hist, metrics, {"final": 0.875})
    out = tmp_path / "r.html"
    report(store, "-o", str(out))
    html = out.read_text()
    figs = figures(html)
    # A constant: ticks around it, not around 0 with the line at the edge.
    ys = [float(t) for t in re.findall(r'class="yt">([^<]+)<', figs["const"][1])]
    assert min(ys) >= 0.4 and max(ys) <= 0.6 and min(ys) < 0.5 < max(ys), ys
    # An integer metric on an integer axis: whole-number ticks only.
    for m in ("count",):
        yt = re.findall(r'class="yt">([^<]+)<', figs[m][1])
        assert yt and all(re.fullmatch(r"-?\d+", t) for t in yt), yt
    xt = re.findall(r'class="xt">([^<]+)<', figs["wave"][1])
    assert xt == ["1", "2", "3", "4"], xt
    # A single value is a marker (a larger dot), sparse series show their points.
    marks = re.findall(r'<g class="marks" data-run="smal0001" fill="#[0-9a-f]{6}">(.*?)</g>',
                       figs["final"][1])
    assert marks and marks[0].count("<circle") == 1 and 'r="4.5"' in marks[0]
    assert figs["wave"][1].count("<circle") == 4
    # Every chart has its legend.
    assert all('<ul class="legend"><li data-run="smal0001">' in body for _, body in figs.values())
    # --x _step: every metric against the row counter.
    report(store, "--x", "_step", "-o", str(out))
    assert "vs _step" in figures(out.read_text())["wave"][1]
    assert re.findall(r'class="xt">([^<]+)<', figures(out.read_text())["wave"][1]) == \
        ["0", "1", "2", "3"]


def test_selecting_nothing_or_an_unknown_metric_is_an_error_naming_what_exists(tmp_path):
    store = tmp_path / "store"
    write_small(store, "errs0001", [{"_step": 0, "epoch": 1, "loss": 1.0},
                                    {"_step": 1, "epoch": 2, "loss": 0.5}],
                project="vision")
    out = tmp_path / "r.html"
    p = report(store, "--project", "visoin", "-o", str(out), check=False)
    assert p.returncode == 1 and 'no project "visoin"' in p.stderr and "projects: vision" in p.stderr
    assert not out.exists()
    p = report(store, "--project", "vision", "--filter", "config.lr > 1", "-o", str(out),
               check=False)
    assert p.returncode == 1 and "no run matches" in p.stderr and not out.exists()
    p = report(store, "--metric", "acc", "-o", str(out), check=False)
    assert p.returncode == 1 and 'no selected run has the metric "acc"' in p.stderr
    assert "metrics: loss" in p.stderr and not out.exists()
    p = report(store, "--x", "step", "-o", str(out), check=False)
    assert p.returncode == 1 and 'axis "step"' in p.stderr and "epoch" in p.stderr
    p = report(store, "--parallel", "summary.acc", "-o", str(out), check=False)
    assert p.returncode == 1 and "--parallel" in p.stderr
