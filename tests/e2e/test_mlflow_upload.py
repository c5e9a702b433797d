"""metrictap against a real MLflow tracking server: every point exactly once
with its step and value, params, tags, status, artifacts; and the same when
the server is down, killed, answers 500/429 or the connection breaks after a
request was applied.  Offline runs reach the server through `metrictap sync`."""
import json
import math
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import (BUILD, METRICTAP, agent_done, compare, expected_points, metrictap_env,
                      run_dirs, wait_equal, wait_until)

TRAIN_OK = BUILD / "examples" / "train_ok"


def run_train(store, url, *args, env_extra=None, epochs=12, delay_ms=20):
    env = metrictap_env(store, url, **(env_extra or {}))
    cmd = [str(METRICTAP), "run", "--project", "e2e", "--", str(TRAIN_OK), "--epochs", str(epochs),
           "--delay-ms", str(delay_ms), *args]
    p = subprocess.run(cmd, env=env, capture_output=True, timeout=120)
    direct = subprocess.run([str(TRAIN_OK), "--epochs", str(epochs), "--delay-ms", str(delay_ms), *args],
                            capture_output=True, timeout=120)
    # the trainer's output and exit status are unchanged
    assert p.returncode == direct.returncode
    assert p.stdout == direct.stdout
    dirs = run_dirs(store)
    assert len(dirs) == 1, dirs
    return dirs[0]


def sync(store, url, *runs, timeout=120, extra=None):
    env = metrictap_env(store, url, **(extra or {}))
    return subprocess.run([str(METRICTAP), "sync", *(runs or ["--all"])], env=env,
                          capture_output=True, text=True, timeout=timeout)


def finish_or_sync(store, url, run_dir, timeout=60):
    """Waits for the agent's bounded flush; whatever is left goes by sync."""
    assert wait_until(lambda: agent_done(run_dir), timeout), "agent still uploading"
    r = sync(store, url)
    assert r.returncode == 0, r.stderr


@pytest.fixture(autouse=True)
def _need_build(built):
    assert TRAIN_OK.exists(), "build/examples/train_ok is missing: run make"


def test_run_uploads_every_point_once_with_params_tags_status_artifacts(server, store, proxy):
    run_dir = run_train(store, f"http://127.0.0.1:{proxy.port}", "--lr", "0.05")
    wait_equal(server, run_dir, timeout=60)
    problems, r = compare(server, run_dir)
    assert not problems
    exp = expected_points(run_dir)
    assert sum(sum(c.values()) for c in exp.values()) >= 12  # the trainer's lines became points
    local = json.loads((run_dir / "run.json").read_text())
    assert r["info"]["status"] == "FINISHED"
    assert r["info"]["end_time"] == int(math.floor(local["end_time"] * 1000 + 0.5))
    tags = {t["key"]: t["value"] for t in r["data"]["tags"]}
    assert tags["metrictap.run_id"] == local["id"]
    assert tags["mlflow.source.type"] == "LOCAL"
    assert tags["mlflow.source.name"] == local["program"]
    assert tags["mlflow.runName"] == local["name"]
    params = {p["key"]: p["value"] for p in r["data"].get("params", [])}
    for k, v in (local.get("config") or {}).items():
        assert k in params
    # artifacts are readable
    assert server.artifact(r, "output.log") == (run_dir / "output.log").read_bytes()
    assert json.loads(server.artifact(r, "run.json"))["id"] == local["id"]
    # no request was needed twice
    assert proxy.count("runs/create") == 1


def write_run(run_dir, rid, rows=3000, state="finished"):
    """A run written by hand in the store format, with what the example
    trainer does not print: step axes, NaN/Inf, system metrics, a torn line,
    a long param, ignored files."""
    run_dir.mkdir(parents=True)
    run = {"id": rid, "project": "e2e-hand", "name": f"hand-{rid}", "group": "g", "job_type": "train",
           "notes": "n", "tags": ["baseline", "sweep"], "state": state, "start_time": 1700000000.25,
           "end_time": 1700000900.5 if state != "running" else None, "runtime": 900.25,
           "exit_code": 0, "signal": None, "command": ["./train"], "program": "train", "cwd": "/",
           "host": "h", "user": "u", "config": {"lr": 0.1, "opt": "adam", "flag": True, "note": "x" * 7000},
           "metadata": {"git": {"remote": "https://example.invalid/r.git", "commit": "abc123",
                                "branch": "main", "dirty": False},
                        "code": {"ignore_globs": ["*.patch"]}},
           "metrics": {"val_acc": {"step_metric": "epoch"}}}
    (run_dir / "run.json").write_text(json.dumps(run))
    with open(run_dir / "history.jsonl", "w") as f:
        for i in range(rows):
            row = {"_step": i, "_runtime": i * 0.3, "_timestamp": 1700000000.25 + i * 0.3,
                   "loss": 1.0 / (i + 1), "lr": 0.1}
            if i % 100 == 99:
                row["epoch"] = i // 100
                row["val_acc"] = 0.5 + i / 1e5
            if i == 5:
                row["loss"] = "NaN"
            if i == 6:
                row["loss"] = "Infinity"
            if i == 7:
                row["loss"] = "-Infinity"
            f.write(json.dumps(row) + "\n")
        f.write('{"_step": 999999, "loss": 0.5')  # torn: never sent
    with open(run_dir / "system.jsonl", "w") as f:
        for i in range(20):
            f.write(json.dumps({"_timestamp": 1700000000 + 15 * i, "_runtime": 15 * i,
                                "system.cpu_percent": 10 + i, "system.memory_used_mb": 1000 + i,
                                "system.network.sent_bytes": 1e6 * i,
                                "system.gpu.0.utilization_percent": 50 + i,
                                "system.proc.threads": 4}) + "\n")
    (run_dir / "output.log").write_text("line\n")
    (run_dir / "diff.patch").write_text("--- a\n+++ b\n")
    return run_dir


def test_offline_run_then_sync_twice_sends_each_point_once(server, store, proxy):
    url = f"http://127.0.0.1:{proxy.port}"
    run_dir = run_train(store, url, env_extra={"METRICTAP_MODE": "offline"})
    hand = write_run(Path(store) / "runs" / "e2e-hand" / "hand0001", "hand0001", rows=1000)
    time.sleep(0.5)
    assert proxy.count("") == 0, "offline mode talked to the server"
    r = sync(store, url)
    assert r.returncode == 0, r.stderr
    wait_equal(server, run_dir, timeout=10)
    wait_equal(server, hand, timeout=10)
    batches = proxy.count("log-batch")
    r = sync(store, url)
    assert r.returncode == 0, r.stderr
    assert proxy.count("log-batch") == batches, "the second sync sent something again"
    assert proxy.count("runs/create") == 2
    wait_equal(server, run_dir, timeout=10)
    problems, mr = compare(server, hand)
    assert not problems
    data = mr["data"]
    keys = {m["key"] for m in data["metrics"]}
    assert {"system/cpu_utilization_percentage", "system/system_memory_usage_megabytes",
            "system/network_transmit_megabytes", "system/gpu_0_utilization_percentage",
            "system/proc.threads"} <= keys
    params = {p["key"]: p["value"] for p in data["params"]}
    assert params["lr"] == "0.1" and params["flag"] == "true" and len(params["note"]) == 6000
    tags = {t["key"]: t["value"] for t in data["tags"]}
    assert tags["mlflow.source.git.commit"] == "abc123"
    assert tags["metrictap.group"] == "g" and tags["metrictap.job_type"] == "train"
    assert tags["baseline"] == "true"
    events = (hand / "events.jsonl").read_text()
    assert "upload_truncated" in events and '"note"' in events
    assert server.artifact(mr, "output.log") == b"line\n"
    with pytest.raises(Exception):
        server.artifact(mr, "diff.patch")  # ignored by metadata.code.ignore_globs


@pytest.mark.parametrize("fail", ["search", "delete"])
def test_an_orphan_of_a_doubled_create_is_deleted_even_when_that_fails_once(server, store, proxy,
                                                                             fail):
    """Two MLflow runs carrying our tag (a create whose answer was lost landed
    beside a second one: CI's 16-run fault test once kept such an orphan when
    the search at the end failed); the end of the run deletes the other one, and
    a failed search or delete there is retried rather than leaving it for good."""
    rid = "orph" + fail[:4]
    project = f"e2e-orphan-{fail}"
    exp = server.api("POST", "experiments/create", {"name": project})["experiment_id"]
    made = [server.api("POST", "runs/create", {
        "experiment_id": exp, "start_time": 1700000000250,
        "tags": [{"key": "metrictap.run_id", "value": rid}]})["run"]["info"]["run_id"]
        for _ in range(2)]
    hand = write_run(Path(store) / "runs" / project / rid, rid, rows=200)
    run = json.loads((hand / "run.json").read_text())
    run["project"] = project
    (hand / "run.json").write_text(json.dumps(run))
    if fail == "search":
        proxy.inject("500", "runs/search", 1, body='"ACTIVE_ONLY"')
    else:
        proxy.inject("500", "runs/delete", 1)
    r = sync(store, f"http://127.0.0.1:{proxy.port}", extra={"METRICTAP_UPLOAD_BACKOFF_MAX": "1s"})
    assert r.returncode == 0, r.stderr
    assert proxy.count("runs/search" if fail == "search" else "runs/delete", "500") == 1
    runs = [x for x in server.runs_of(rid) if x["info"]["lifecycle_stage"] == "active"]
    assert len(runs) == 1, runs
    info = runs[0]["info"]
    assert info["run_id"] in made and info["status"] == "FINISHED"
    assert len(server.history(info["run_id"], "loss")) == 200
    assert "upload_duplicate_removed" in (hand / "events.jsonl").read_text()


def test_500_and_429_answers_are_retried(server, store, proxy):
    proxy.inject("500", "log-batch", 2)
    proxy.inject("429", "log-batch", 2)
    proxy.inject("500", "runs/update", 1)
    run_dir = run_train(store, f"http://127.0.0.1:{proxy.port}",
                        env_extra={"METRICTAP_UPLOAD_BACKOFF_MAX": "1s"})
    wait_equal(server, run_dir, timeout=60)
    assert proxy.count("log-batch", "500") == 2
    assert proxy.count("log-batch", "429") == 2
    assert proxy.count("runs/update", "500") == 1


# The cut tests use the appending (file) store: the sqlite store merges a
# point identical to one it holds, so a doubled point would not show there.

def test_connection_cut_after_the_server_applied_a_batch(append_server, store, append_proxy):
    proxy, server = append_proxy, append_server
    proxy.inject("cut", "log-batch", 1, body='"metrics"')
    proxy.inject("close", "log-batch", 1, body='"metrics"')
    # several batches while the trainer runs, so that both faults hit one
    run_dir = run_train(store, f"http://127.0.0.1:{proxy.port}", epochs=30, delay_ms=100,
                        env_extra={"METRICTAP_UPLOAD_BACKOFF_MAX": "1s",
                                   "METRICTAP_UPLOAD_INTERVAL": "200ms"})
    wait_equal(server, run_dir, timeout=60)
    assert proxy.count("log-batch", "cut") == 1
    assert proxy.count("log-batch", "close") == 1
    # the batch was checked against the server before anything was sent again
    assert proxy.count("metrics/get-history") >= 1


def test_cut_batches_of_a_big_sync_are_not_doubled(append_server, store, append_proxy):
    proxy, server = append_proxy, append_server
    hand = write_run(Path(store) / "runs" / "e2e-hand" / "hand0002", "hand0002", rows=3000)
    proxy.inject("cut", "log-batch", 2, body='"metrics"')
    # a clean close after the server applied the batch, on a reused connection:
    # libcurl would resend such a request by itself
    proxy.inject("close", "log-batch", 1, body='"metrics"')
    proxy.inject("500", "log-batch", 1, body='"metrics"')
    r = sync(store, f"http://127.0.0.1:{proxy.port}", extra={"METRICTAP_UPLOAD_BACKOFF_MAX": "1s"})
    assert r.returncode == 0, r.stderr
    problems, _ = compare(server, hand)
    assert not problems, problems
    assert proxy.count("log-batch", "cut") == 2
    assert proxy.count("log-batch", "close") == 1
    assert proxy.count("metrics/get-history") >= 1


def test_server_down_at_start_and_up_20s_later(server, store, proxy):
    proxy.down()
    url = f"http://127.0.0.1:{proxy.port}"
    t = threading.Timer(20, proxy.up)
    t.start()
    try:
        run_dir = run_train(store, url, env_extra={"METRICTAP_UPLOAD_BACKOFF_MAX": "2s"})
        problems, _ = compare(server, run_dir)
        assert problems  # nothing could have arrived yet
        # the agent keeps flushing for 30 s after the run: the server is up by then
        wait_equal(server, run_dir, timeout=45)
    finally:
        t.cancel()
        proxy.up()


def test_server_killed_mid_run_and_restarted(server, store, proxy):
    url = f"http://127.0.0.1:{proxy.port}"
    result = {}

    def trainer():
        result["dir"] = run_train(store, url, epochs=40, delay_ms=150,
                                  env_extra={"METRICTAP_UPLOAD_BACKOFF_MAX": "2s",
                                             "METRICTAP_UPLOAD_INTERVAL": "200ms"})
    th = threading.Thread(target=trainer)
    th.start()
    # wait for the first points to land, then kill the server mid-run
    assert wait_until(lambda: proxy.count("log-batch") >= 2, 30)
    server.kill()
    server.start()  # same database; it takes a while to come back, the trainer goes on
    th.join(120)
    run_dir = result["dir"]
    finish_or_sync(store, url, run_dir, timeout=60)
    wait_equal(server, run_dir, timeout=30)
