"""Real trainers from Debian packages under `metrictap run` with no config at
all: the preset is chosen from the program's name.  Each test generates
small data, runs the trainer, reads what it printed (independently of
metrictap, with Python's re) and checks that every printed metric value is
in history.jsonl with the right step, and that summary.json holds the final
values.  Needs xgboost, fasttext, libsvm-tools and liblinear-tools
(scripts/deps.sh test installs them)."""
import json
import os
import random
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CLI = ROOT / "build" / "metrictap"


def need(prog):
    if not shutil.which(prog):
        pytest.skip(f"{prog} is not installed (scripts/deps.sh test)")


def run_tracked(tmp, argv):
    """Runs argv under metrictap run in tmp; returns (stdout+stderr text, run dir)."""
    env = dict(os.environ)
    for k in list(env):
        if k.startswith(("METRICTAP_", "WANDB_")):
            del env[k]
    env["HOME"] = str(tmp)  # no ~/.config/metrictap/config.yaml
    env["METRICTAP_DIR"] = str(tmp / "store")
    p = subprocess.run([str(CLI), "run", "--"] + argv, cwd=tmp, env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
    out = p.stdout.decode("utf-8", "replace")
    assert p.returncode == 0, out
    run = (tmp / "store" / "latest-run").resolve()
    assert (run / "run.json").exists(), out
    return out, run


def history(run):
    return [json.loads(l) for l in (run / "history.jsonl").read_text().splitlines() if l]


def summary(run):
    return json.loads((run / "summary.json").read_text())


def write_libsvm(path, n, seed, classify=True):
    rnd = random.Random(seed)
    with open(path, "w") as f:
        for _ in range(n):
            x = [rnd.random() for _ in range(5)]
            if classify:
                y = 1 if x[0] + x[1] > 1 else 0
            else:
                y = round(2 * x[0] + x[1], 4)
            f.write(f"{y} " + " ".join(f"{j + 1}:{v:.3f}" for j, v in enumerate(x)) + "\n")


def check_rows(rows, expected, axis=None):
    """expected: list of dicts of printed values, one per step, in order.
    Each must be in the row with the same _step (or, with axis, the same axis
    value), value for value."""
    assert len(rows) == len(expected), (rows, expected)
    for i, (row, want) in enumerate(zip(rows, expected)):
        assert row["_step"] == i
        for k, v in want.items():
            assert k in row, (k, row)
            got = row[k]
            assert isinstance(got, (int, float)), (k, got)
            assert got == pytest.approx(v, rel=1e-12, abs=0), (i, k, got, v)


def check_summary(s, expected_last):
    for k, v in expected_last.items():
        assert s[k] == pytest.approx(v, rel=1e-12, abs=0), (k, s[k], v)


def test_xgboost_with_config_file(tmp_path):
    need("xgboost")
    write_libsvm(tmp_path / "train.svm", 300, 1)
    write_libsvm(tmp_path / "test.svm", 100, 2)
    (tmp_path / "xgb.conf").write_text(
        "booster = gbtree\nobjective = binary:logistic\neta = 0.3\nmax_depth = 3\n"
        "num_round = 8\ndata = \"train.svm?format=libsvm\"\n"
        "eval[test] = \"test.svm?format=libsvm\"\neval[train] = \"train.svm?format=libsvm\"\n")
    out, run = run_tracked(tmp_path, ["xgboost", "xgb.conf", "eta=0.5", "max_depth=2"])
    printed = []
    for m in re.finditer(r"\[(\d+)\]\t(.*)", out):
        vals = {"iteration": int(m.group(1))}
        for k, v in re.findall(r"([^\s:]+):(\S+)", m.group(2)):
            vals[k] = float(v)
        printed.append(vals)
    assert len(printed) == 8, out
    rows = history(run)
    check_rows(rows, printed)
    check_summary(summary(run), printed[-1])
    cfg = json.loads((run / "run.json").read_text())["config"]
    assert cfg == {"eta": 0.5, "max_depth": 2}


def test_fasttext_supervised_progress_updates(tmp_path):
    need("fasttext")
    rnd = random.Random(3)
    words = {"pos": ["good", "great", "fine", "nice", "happy"],
             "neg": ["bad", "awful", "poor", "sad", "ugly"]}
    with open(tmp_path / "train.txt", "w") as f:
        for _ in range(60000):
            lab = rnd.choice(["pos", "neg"])
            f.write(f"__label__{lab} " + " ".join(rnd.choice(words[lab]) for _ in range(12)) + "\n")
    out, run = run_tracked(tmp_path, ["fasttext", "supervised", "-input", "train.txt",
                                      "-output", "model", "-epoch", "25", "-lr", "0.5",
                                      "-thread", "2"])  # with one thread fastText prints no updates
    printed = []
    for part in re.split(r"[\r\n]", out):
        m = re.match(r"Progress:\s*([-\d.]+)%\s+words/sec/thread:\s*(\d+)\s+lr:\s*(\S+)\s+"
                     r"avg\.loss:\s*(\S+)", part)
        if m:
            printed.append({"progress": float(m.group(1)), "words/sec/thread": float(m.group(2)),
                            "lr": float(m.group(3)), "avg.loss": float(m.group(4))})
    assert len(printed) >= 5, out
    rows = history(run)
    # words and labels are printed once before the first update: in row 0
    m = re.search(r"Number of words:\s+(\d+)", out)
    assert rows[0]["words"] == int(m.group(1))
    check_rows(rows, printed)
    check_summary(summary(run), printed[-1])
    cfg = json.loads((run / "run.json").read_text())["config"]
    assert cfg["epoch"] == 25 and cfg["lr"] == 0.5 and cfg["input"] == "train.txt"
    meta = json.loads((run / "run.json").read_text())["metrics"]
    assert meta["progress"]["unit"] == "%"


def svm_blocks(out):
    printed, cur = [], None
    for line in out.splitlines():
        m = re.match(r"optimization finished, #iter = (\d+)", line)
        if m:
            cur = {"iterations": int(m.group(1))}
            printed.append(cur)
            continue
        for k, v in re.findall(r"(nu|obj|rho|nSV|nBSV|Total nSV|Objective value) = ([^,\s]+)", line):
            key = {"Total nSV": "total_nSV", "Objective value": "objective"}.get(k, k)
            cur[key] = float(v)
    return printed


def test_svm_train_cross_validation(tmp_path):
    need("svm-train")
    write_libsvm(tmp_path / "train.svm", 300, 4)
    out, run = run_tracked(tmp_path, ["svm-train", "-v", "4", "-c", "2", "train.svm"])
    printed = svm_blocks(out)
    assert len(printed) == 4, out
    acc = float(re.search(r"Cross Validation Accuracy = ([\d.]+)%", out).group(1))
    printed[-1]["cv_accuracy"] = acc
    rows = history(run)
    check_rows(rows, printed)
    s = summary(run)
    check_summary(s, printed[-1])
    meta = json.loads((run / "run.json").read_text())
    assert meta["metrics"]["cv_accuracy"]["unit"] == "%"
    assert meta["metrics"]["cv_accuracy"]["summary_only"] is True
    assert meta["config"] == {"v": 4, "c": 2}


def test_liblinear_train_newton_iterations(tmp_path):
    need("liblinear-train")
    write_libsvm(tmp_path / "train.svm", 300, 5)
    out, run = run_tracked(tmp_path, ["liblinear-train", "-s", "0", "-v", "3", "train.svm"])
    printed = []
    for m in re.finditer(r"^iter\s+(\d+)\s+act\s+(\S+)\s+pre\s+(\S+)\s+delta\s+(\S+)\s+f\s+(\S+)"
                         r"\s+\|g\|\s+(\S+)\s+CG\s+(\d+)", out, re.M):
        printed.append({"iter": int(m.group(1)), "act": float(m.group(2)),
                        "pre": float(m.group(3)), "delta": float(m.group(4)),
                        "f": float(m.group(5)), "g_norm": float(m.group(6)),
                        "cg": int(m.group(7))})
    assert len(printed) >= 3, out
    acc = float(re.search(r"Cross Validation Accuracy = ([\d.]+)%", out).group(1))
    rows = history(run)
    check_rows(rows, printed)
    s = summary(run)
    check_summary(s, printed[-1])
    assert s["cv_accuracy"] == pytest.approx(acc)
    assert rows[-1]["cv_accuracy"] == pytest.approx(acc)
