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
import signal
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CLI = ROOT / "build" / "metrictap"


def need(prog):
    if not shutil.which(prog):
        pytest.skip(f"{prog} is not installed (scripts/deps.sh test)")


def run_tracked(tmp, argv, timeout=120):
    """Runs argv under metrictap run in tmp; returns (stdout+stderr text, run dir).
    On a timeout the trainer goes too (its own process group)."""
    env = dict(os.environ)
    for k in list(env):
        if k.startswith(("METRICTAP_", "WANDB_")):
            del env[k]
    env["HOME"] = str(tmp)  # no ~/.config/metrictap/config.yaml
    env["METRICTAP_DIR"] = str(tmp / "store")
    p = subprocess.Popen([str(CLI), "run", "--"] + argv, cwd=tmp, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         start_new_session=True)
    try:
        raw, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired as e:
        os.killpg(p.pid, signal.SIGKILL)
        e.output = p.communicate()[0]
        raise
    out = raw.decode("utf-8", "replace")
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


def parse_log(tmp, text, program):
    """`metrictap parse --program PROGRAM` over captured output: (rows, summary)."""
    log = tmp / f"{program}.log"
    log.write_text(text)
    p = subprocess.run([str(CLI), "parse", "--program", program, "--json", str(log)],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    assert p.returncode == 0, p.stderr
    lines = [json.loads(l) for l in p.stdout.decode().splitlines() if l]
    rows = [l["row"] for l in lines if "row" in l]
    return rows, next(l["summary"] for l in lines if "summary" in l)


def fold_of_each(out, starts):
    """The fold of each printed line matching `starts` (a training's first
    line): 1 for the first, then one more each time it is printed again."""
    return [i + 1 for i, _ in enumerate(re.finditer(starts, out, re.M))]


def test_svm_train_cross_validation(tmp_path):
    need("svm-train")
    write_libsvm(tmp_path / "train.svm", 300, 4)
    out, run = run_tracked(tmp_path, ["svm-train", "-v", "4", "-c", "2", "train.svm"])
    printed = svm_blocks(out)
    assert len(printed) == 4, out
    for i, block in enumerate(printed):  # a two-class fold: one training
        block["fold"] = i + 1
    acc = float(re.search(r"Cross Validation Accuracy = ([\d.]+)%", out).group(1))
    printed[-1]["cv_accuracy"] = acc
    rows = history(run)
    check_rows(rows, printed)
    s = summary(run)
    check_summary(s, printed[-1])
    meta = json.loads((run / "run.json").read_text())
    assert meta["metrics"]["cv_accuracy"]["unit"] == "%"
    assert meta["metrics"]["cv_accuracy"]["summary_only"] is True
    assert meta["metrics"]["iterations"]["step_metric"] == "fold"
    assert meta["axes"] == ["fold"]
    assert meta["config"] == {"v": 4, "c": 2}
    # the same output read back: the same rows
    parsed, psum = parse_log(tmp_path, out, "svm-train")
    check_rows(parsed, printed)
    check_summary(psum, printed[-1])


def test_svm_train_folds_of_a_regression_and_of_three_classes(tmp_path):
    need("svm-train")
    write_libsvm(tmp_path / "reg.svm", 200, 6, classify=False)
    out, run = run_tracked(tmp_path, ["svm-train", "-s", "3", "-v", "3", "reg.svm"])
    printed = svm_blocks(out)
    assert len(printed) == 3, out  # epsilon-SVR: one training per fold
    assert [r["fold"] for r in history(run)] == [1, 2, 3]
    mse = float(re.search(r"Cross Validation Mean squared error = (\S+)", out).group(1))
    scc = float(re.search(r"Cross Validation Squared correlation coefficient = (\S+)",
                          out).group(1))
    check_summary(summary(run), {"cv_mse": mse, "cv_scc": scc, "fold": 3})

    rnd = random.Random(9)
    with open(tmp_path / "three.svm", "w") as f:
        for _ in range(240):
            x = [rnd.random() for _ in range(4)]
            f.write(f"{int(x[0] * 3)} " + " ".join(f"{j + 1}:{v:.3f}" for j, v in enumerate(x))
                    + "\n")
    out, run = run_tracked(tmp_path, ["svm-train", "-v", "2", "three.svm"])
    # one-against-one: three trainings per fold, "Total nSV" after each fold
    folds, fold = [], 1
    for line in out.splitlines():
        if line.startswith("optimization finished"):
            folds.append(fold)
        elif line.startswith("Total nSV"):
            fold += 1
    assert folds == [1, 1, 1, 2, 2, 2], out
    assert [r["fold"] for r in history(run)] == folds
    parsed, _ = parse_log(tmp_path, out, "svm-train")
    assert [r["fold"] for r in parsed] == folds

    # no -v: no folds
    out, run = run_tracked(tmp_path, ["svm-train", "three.svm", "three.model"])
    assert all("fold" not in r for r in history(run)), history(run)


def test_liblinear_train_newton_iterations(tmp_path):
    need("liblinear-train")
    write_libsvm(tmp_path / "train.svm", 300, 5)
    out, run = run_tracked(tmp_path, ["liblinear-train", "-s", "0", "-v", "3", "train.svm"])
    printed, fold = [], 0
    for m in re.finditer(r"^iter\s+(\d+)\s+act\s+(\S+)\s+pre\s+(\S+)\s+delta\s+(\S+)\s+f\s+(\S+)"
                         r"\s+\|g\|\s+(\S+)\s+CG\s+(\d+)", out, re.M):
        if int(m.group(1)) == 1:  # each fold's training counts from 1
            fold += 1
        printed.append({"iter": int(m.group(1)), "act": float(m.group(2)),
                        "pre": float(m.group(3)), "delta": float(m.group(4)),
                        "f": float(m.group(5)), "g_norm": float(m.group(6)),
                        "cg": int(m.group(7)), "fold": fold})
    assert len(printed) >= 3 and fold == 3, out
    acc = float(re.search(r"Cross Validation Accuracy = ([\d.]+)%", out).group(1))
    rows = history(run)
    check_rows(rows, printed)
    s = summary(run)
    check_summary(s, printed[-1])
    assert s["cv_accuracy"] == pytest.approx(acc)
    assert rows[-1]["cv_accuracy"] == pytest.approx(acc)
    meta = json.loads((run / "run.json").read_text())
    assert meta["axes"] == ["iter", "fold"]  # iter within a fold: no sawtooth
    assert meta["metrics"]["f"]["step_metric"] == "iter"
    parsed, _ = parse_log(tmp_path, out, "liblinear-train")
    check_rows(parsed, printed)
    # the report draws f against iter as one stroke per fold
    env = dict(os.environ, HOME=str(tmp_path), METRICTAP_DIR=str(tmp_path / "store"))
    subprocess.run([str(CLI), "report", "--metric", "f", "-o", "r.html"], cwd=tmp_path,
                   env=env, check=True, timeout=60, stderr=subprocess.DEVNULL)
    html = (tmp_path / "r.html").read_text()
    path = re.search(r'<path data-run="[^"]*" stroke="[^"]*" d="([^"]*)"', html).group(1)
    assert path.count("M") == 3 and path.count("L") == len(printed) - 3, path


def test_liblinear_train_dual_solver_folds(tmp_path):
    need("liblinear-train")
    write_libsvm(tmp_path / "train.svm", 300, 5)
    out, run = run_tracked(tmp_path, ["liblinear-train", "-s", "1", "-v", "4", "train.svm"])
    printed = []
    for m in re.finditer(r"optimization finished, #iter = (\d+)\nObjective value = (\S+)\n"
                         r"nSV = (\d+)", out):
        printed.append({"fold": len(printed) + 1, "iterations": int(m.group(1)),
                        "objective": float(m.group(2)), "nSV": int(m.group(3))})
    assert len(printed) == 4, out
    check_rows(history(run), printed)
    # without -v the same solver has no fold axis
    out, run = run_tracked(tmp_path, ["liblinear-train", "-s", "1", "train.svm", "m"])
    assert all("fold" not in r for r in history(run)), history(run)
    assert history(run)[0]["iterations"] > 0


def test_liblinear_parameter_search_best_c_is_summary(tmp_path):
    need("liblinear-train")
    write_libsvm(tmp_path / "train.svm", 300, 5)
    out, run = run_tracked(tmp_path, ["liblinear-train", "-s", "0", "-C", "train.svm"])
    tried = [{"log2c": float(a), "cv_accuracy": float(b)}
             for a, b in re.findall(r"^log2c=\s*(\S+)\s+rate=(\S+)$", out, re.M)]
    best = re.search(r"^Best C = (\S+)\s+CV accuracy = ([\d.]+)%", out, re.M)
    assert len(tried) >= 5 and best, out
    rows = history(run)
    check_rows(rows, tried)  # one row per C tried, at its log2c
    assert all("best_c" not in r for r in rows)
    s = summary(run)
    assert s["best_c"] == pytest.approx(float(best.group(1)))
    assert s["cv_accuracy"] == pytest.approx(float(best.group(2)))  # the best C's, not the last
    meta = json.loads((run / "run.json").read_text())
    assert meta["config"] == {"s": 0, "C": True}  # -C takes no value
    assert meta["metrics"]["cv_accuracy"]["step_metric"] == "log2c"
    assert meta["metrics"]["best_c"]["summary_only"] is True
    parsed, psum = parse_log(tmp_path, out, "liblinear-train")
    check_rows(parsed, tried)
    assert psum["best_c"] == s["best_c"] and psum["cv_accuracy"] == s["cv_accuracy"]


def predicted(out):
    """What svm-predict and liblinear-predict printed, by the README's names."""
    got = {}
    for pat, key in ((r"^Accuracy = ([\d.]+)%", "accuracy"),
                     (r"^Mean squared error = (\S+)", "mse"),
                     (r"^Squared correlation coefficient = (\S+)", "scc")):
        m = re.search(pat, out, re.M)
        if m:
            got[key] = float(m.group(1))
    return got


@pytest.mark.parametrize("train,predict,regress", [
    ("svm-train", "svm-predict", ["-s", "3"]),
    ("liblinear-train", "liblinear-predict", ["-s", "11"]),
])
def test_predict_records_accuracy_mse_and_scc(tmp_path, train, predict, regress):
    need(train), need(predict)
    write_libsvm(tmp_path / "train.svm", 300, 4)
    write_libsvm(tmp_path / "test.svm", 100, 5)
    write_libsvm(tmp_path / "rtrain.svm", 300, 6, classify=False)
    write_libsvm(tmp_path / "rtest.svm", 100, 7, classify=False)
    for args in (["train.svm", "c.model"], regress + ["rtrain.svm", "r.model"]):
        subprocess.run([train] + args, cwd=tmp_path, check=True, stdout=subprocess.DEVNULL)
    for data, model, keys in (("test.svm", "c.model", {"accuracy"}),
                              ("rtest.svm", "r.model", {"mse", "scc"})):
        out, run = run_tracked(tmp_path, [predict, data, model, "out.txt"])
        want = predicted(out)
        assert set(want) == keys, out
        rows = history(run)
        check_rows(rows, [want])
        check_summary(summary(run), want)
        assert not {"error", "coefficient", "Accuracy"} & set(rows[0]), rows
        metrics = json.loads((run / "run.json").read_text())["metrics"]
        assert set(metrics) == keys
        if "accuracy" in keys:
            assert metrics["accuracy"]["unit"] == "%"
        parsed, psum = parse_log(tmp_path, out, predict)
        check_rows(parsed, [want])


def test_fasttext_autotune_trials_and_best_score(tmp_path):
    need("fasttext")
    rnd = random.Random(5)
    words = {"pos": ["good", "great", "fine", "nice", "happy"],
             "neg": ["bad", "awful", "poor", "sad", "ugly"]}
    for name, n in (("train.txt", 3000), ("valid.txt", 500)):
        with open(tmp_path / name, "w") as f:
            for _ in range(n):
                lab = rnd.choice(["pos", "neg"])
                f.write(f"__label__{lab} " + " ".join(rnd.choice(words[lab] + ["the", "a"])
                                                      for _ in range(8)) + "\n")
    argv = ["fasttext", "supervised", "-input", "train.txt", "-output", "model",
            "-autotune-validation", "valid.txt", "-autotune-duration", "4",
            # fixed, so that no trial draws a model of gigabytes (bucket up to 1e7 by
            # dim up to 1000); one thread: its training threads add races of their own
            "-dim", "10", "-bucket", "10000", "-epoch", "5", "-thread", "1"]
    for attempt in range(3):
        try:
            out, run = run_tracked(tmp_path, argv, timeout=60)  # 5 s when it works
            break
        except subprocess.TimeoutExpired as e:
            # fastText 0.9.2's Autotune::startTimer starts its timer thread before
            # it sets continueTraining_: a timer that runs first ends at once, no
            # "Progress:" is ever printed and the search never ends.  That race,
            # and only that one, is tried again.
            if b"Progress:" in (e.output or b""):
                raise
    else:
        pytest.fail("fastText's autotune never started its timer, three times")
    printed = []
    for part in re.split(r"[\r\n]", out):
        m = re.match(r"Progress:\s*([-\d.]+)%\s+Trials:\s*(\d+)\s+Best score:\s*(\S+)", part)
        if m:
            row = {"autotune_progress": float(m.group(1)), "trials": int(m.group(2))}
            if m.group(3) != "unknown":  # no score before the first trial ends
                row["best_score"] = float(m.group(3))
            printed.append(row)
    assert len(printed) >= 2 and "best_score" in printed[-1], out
    rows = history(run)
    check_rows(rows[:len(printed)], printed)
    assert all("best_score" not in r for r, p in zip(rows, printed) if "best_score" not in p)
    s = summary(run)
    check_summary(s, printed[-1])
    assert s["trials"] >= 1
    assert "avg.loss" in s  # the training with the best arguments follows
    parsed, _ = parse_log(tmp_path, out, "fasttext")
    check_rows(parsed[:len(printed)], printed)
