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
