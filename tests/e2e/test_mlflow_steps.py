"""The trainer's step is MLflow's step, and params are the numbers as printed
(issue 14): a rule's `step` group logging at 50, 100, ..., and xgboost, direct
and under `bash -c '... | tee log'`, against a real MLflow server."""
import json
import random
import shutil
import subprocess

import pytest

from conftest import METRICTAP, metrictap_env, run_dirs, wait_equal


def mlflow_run(server, run_dir):
    run = json.loads((run_dir / "run.json").read_text())
    (r,) = server.runs_of(run["id"])
    return r


def params(r):
    return {p["key"]: p["value"] for p in r["data"].get("params", [])}


def steps(server, r, key):
    return sorted(int(m["step"]) for m in server.history(r["info"]["run_id"], key))


def test_a_rules_step_group_is_mlflows_step(server, store, tmp_path):
    (tmp_path / "rules.yaml").write_text(
        "rules:\n  - pattern: '^\\[it (?<step>\\d+)\\] loss=(?<loss>\\S+) acc=(?<acc>\\S+)'\n")
    train = tmp_path / "train.sh"
    train.write_text("#!/bin/sh\n" + "".join(
        f"echo '[it {s:06d}] loss={1 / s:.6f} acc={s / 1000:.3f}'\n" for s in (50, 100, 150, 200)))
    train.chmod(0o755)
    env = metrictap_env(store, server.url)
    p = subprocess.run([str(METRICTAP), "run", "-c", str(tmp_path / "rules.yaml"), "--project",
                        "steps", "--", str(train), "--lr", "1e-3", "--epochs", "100", "--wd", "0.1"],
                       env=env, cwd=tmp_path, capture_output=True, timeout=120)
    assert p.returncode == 0, p.stderr
    (run_dir,) = run_dirs(store)
    wait_equal(server, run_dir, timeout=60)
    r = mlflow_run(server, run_dir)
    assert steps(server, r, "loss") == [50, 100, 150, 200]  # one point per printed value
    assert steps(server, r, "acc") == [50, 100, 150, 200]
    assert "step" not in {m["key"] for m in r["data"]["metrics"]}  # the axis is the x
    assert params(r) == {"lr": "1e-3", "epochs": "100", "wd": "0.1"}


def write_libsvm(path, n, seed):
    rnd = random.Random(seed)
    with open(path, "w") as f:
        for _ in range(n):
            x = [rnd.random() for _ in range(4)]
            f.write(f"{1 if x[0] + x[1] > 1 else 0} " +
                    " ".join(f"{j + 1}:{v:.3f}" for j, v in enumerate(x)) + "\n")


def xgboost_run(server, store, tmp_path, wrap):
    if not shutil.which("xgboost"):
        pytest.skip("xgboost is not installed (scripts/deps.sh test)")
    write_libsvm(tmp_path / "train.svm", 200, 1)
    (tmp_path / "xgb.conf").write_text(
        "booster = gbtree\nobjective = binary:logistic\nmax_depth = 2\n"
        "data = \"train.svm?format=libsvm\"\neval[train] = \"train.svm?format=libsvm\"\n")
    cmd = ["xgboost", "xgb.conf", "num_round=30", "eta=0.3"]
    if wrap:
        cmd = ["bash", "-c", " ".join(cmd) + " 2>&1 | tee x.log"]
    env = metrictap_env(store, server.url)
    p = subprocess.run([str(METRICTAP), "run", "--project", "xgb", "--", *cmd], env=env,
                       cwd=tmp_path, capture_output=True, timeout=180)
    assert p.returncode == 0, p.stderr
    (run_dir,) = run_dirs(store)
    wait_equal(server, run_dir, timeout=90)
    r = mlflow_run(server, run_dir)
    assert steps(server, r, "train-logloss") == list(range(30)), "xgboost's round is the step"
    assert params(r).get("num_round") == "30" and params(r).get("eta") == "0.3", params(r)
    assert "iteration" not in {m["key"] for m in r["data"]["metrics"]}


def test_xgboost_rounds_are_mlflows_steps(server, store, tmp_path):
    xgboost_run(server, store, tmp_path, wrap=False)


def test_xgboost_under_bash_and_tee_too(server, store, tmp_path):
    xgboost_run(server, store, tmp_path, wrap=True)
