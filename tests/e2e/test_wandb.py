"""metrictap's W&B offline runs read by W&B's own code: the real wandb 0.31
`wandb sync` (started by metrictap at the end of an online run) against a
recording stand-in server on 127.0.0.1, the records decoded with
wandb_internal_pb2 over an independent framing reader, a run logged with the
real SDK compared with metrictap's, framing edges, and a corrupted byte."""
import json
import math
import os
import shutil
import subprocess
from pathlib import Path

import pytest

import wandb_log
import wandb_stub
from conftest import BUILD, METRICTAP, VENV_BIN, agent_done, metrictap_env, run_dirs, wait_until

TRAIN_OK = BUILD / "examples" / "train_ok"
TRAIN_FAIL = BUILD / "examples" / "train_fail"

METRICS_YAML = ("metrics:\n"
                "  loss: {summary: [min], goal: minimize}\n"
                "  acc: {summary: [max]}\n")


@pytest.fixture
def stub():
    s = wandb_stub.start()
    yield s
    s.shutdown()


def wandb_env(store, tmp, stub_url=None, online=True, path_with_wandb=True, **extra):
    env = metrictap_env(store, **extra)
    env["HOME"] = str(tmp)
    env["WANDB_MODE"] = "online" if online else "offline"
    env["WANDB_API_KEY"] = wandb_stub.API_KEY
    env["WANDB_BASE_URL"] = stub_url or "http://127.0.0.1:9"
    if path_with_wandb:
        env["PATH"] = f"{VENV_BIN}:{env.get('PATH', '/usr/bin:/bin')}"
    else:
        env["PATH"] = "/usr/bin:/bin"
    return env


def run_wandb(tmp, store, env, *cmd, project="wb", args=()):
    (tmp / "m.yaml").write_text(METRICS_YAML)
    p = subprocess.run([str(METRICTAP), "run", "-c", str(tmp / "m.yaml"), "--to", "wandb",
                        "--project", project, "--tags", "base,lr-sweep", "--group", "grp",
                        *args, "--", *map(str, cmd)],
                       env=env, cwd=tmp, capture_output=True, timeout=120)
    # the agent's uploader (and its wandb sync) finishes after `run` returns
    for d in run_dirs(store):
        assert wait_until(lambda: agent_done(d, "wandb"), 180)
    return p


def events(run_dir):
    return [json.loads(l) for l in (run_dir / "events.jsonl").read_text().splitlines() if l.strip()]


def sync_event(run_dir):
    ev = [e for e in events(run_dir) if e.get("event") == "wandb_sync"]
    return ev[-1] if ev else None


def history(run_dir):
    return [json.loads(l) for l in (run_dir / "history.jsonl").read_text().splitlines()]


def num(v):
    return {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}.get(v, v) \
        if isinstance(v, str) else v


def same(a, b):
    a, b = num(a), num(b)
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return a == b


def same_row(got, want):
    return set(got) == set(want) and all(same(got[k], want[k]) for k in want)


def offline_dir(tmp):
    dirs = sorted((tmp / "wandb").glob("offline-run-*"))
    assert len(dirs) == 1, dirs
    return dirs[0]


def decode(tmp):
    d = offline_dir(tmp)
    (log,) = d.glob("run-*.wandb")
    return wandb_log.decode(log)


def item_key(it):
    return it.key or ".".join(it.nested_key)


# ---- the real client, at the end of an online run ----

def test_wandb_sync_at_the_end_sends_rows_summary_config_system_output_exit(tmp_path, store, stub):
    env = wandb_env(store, tmp_path, stub.url)
    p = run_wandb(tmp_path, store, env, TRAIN_OK, "--epochs", "5", "--delay-ms", "5", "--lr", "0.05")
    direct = subprocess.run([str(TRAIN_OK), "--epochs", "5", "--delay-ms", "5", "--lr", "0.05"],
                            capture_output=True, timeout=60)
    assert p.returncode == 0 and p.stdout == direct.stdout
    (run_dir,) = run_dirs(store)
    assert wait_until(lambda: sync_event(run_dir) is not None, 120), events(run_dir)
    ev = sync_event(run_dir)
    assert ev["ok"], ev
    rec = stub.recording
    # every history row, as the store has it
    sent = [json.loads(l) for l in rec.file_lines("wandb-history.jsonl")]
    rows = history(run_dir)
    assert len(sent) == len(rows) >= 5
    for got, want in zip(sent, rows):
        assert same_row(got, want), (got, want)
    # the summary, in W&B's shape: define_metric(summary="min") gives {"min": x}
    summary = json.loads((run_dir / "summary.json").read_text())
    final = json.loads(rec.file_lines("wandb-summary.json")[-1])
    assert same(final["loss"]["min"], summary["loss.min"])
    assert same(final["acc"]["max"], summary["acc.max"])
    assert same(final["epoch"], summary["epoch"])
    # config, tags and group, in the run's upsert
    up = rec.operation("UpsertBucket")
    config = json.loads(up[0]["config"])
    assert config["lr"]["value"] == 0.05 and config["epochs"]["value"] == 5
    assert up[0]["tags"] == ["base", "lr-sweep"] and up[0]["groupName"] == "grp"
    assert up[0]["name"] == run_dir.name
    # system metrics under W&B's own names
    stats = [json.loads(l) for l in rec.file_lines("wandb-events.jsonl")]
    assert stats and "system.memory_percent" in stats[0] and "system.proc.memory.rssMB" in stats[0]
    # the console, and the exit code
    out = rec.uploads.get("output.log", b"").decode()
    assert out == (run_dir / "output.log").read_text()
    assert rec.stream_field("exitcode") == [0] and rec.stream_field("complete") == [True]
    # a second sync of the same run sends nothing again (synced)
    state = json.loads((run_dir / "upload" / "wandb.json").read_text())["backend"]
    assert state["synced"] is True


def test_a_failed_run_reaches_wandb_with_its_exit_code(tmp_path, store, stub):
    env = wandb_env(store, tmp_path, stub.url)
    p = run_wandb(tmp_path, store, env, TRAIN_FAIL)
    assert p.returncode == 3
    (run_dir,) = run_dirs(store)
    assert wait_until(lambda: sync_event(run_dir) is not None, 120)
    assert sync_event(run_dir)["ok"]
    assert stub.recording.stream_field("exitcode") == [3]


def test_a_failing_sync_is_kept_in_events_and_metrictap_sync_retries(tmp_path, store, stub):
    # nothing listens there: 0.31 retries forever, the timeout stops it
    env = wandb_env(store, tmp_path, "http://127.0.0.1:9", METRICTAP_WANDB_SYNC_TIMEOUT="3s")
    p = run_wandb(tmp_path, store, env, TRAIN_OK, "--epochs", "2", "--delay-ms", "1")
    assert p.returncode == 0
    (run_dir,) = run_dirs(store)
    assert wait_until(lambda: sync_event(run_dir) is not None, 120)
    ev = sync_event(run_dir)
    assert not ev["ok"] and ev["message"], ev
    show = subprocess.run([str(METRICTAP), "show", run_dir.name], env=env, capture_output=True,
                          text=True, cwd=tmp_path)
    assert ev["message"] in show.stdout, show.stdout
    assert "  wandb        written; wandb sync failed" in show.stdout, show.stdout
    # the server is back: `metrictap sync --to wandb` hands the directory over again
    env2 = wandb_env(store, tmp_path, stub.url)
    r = subprocess.run([str(METRICTAP), "sync", "--to", "wandb", run_dir.name], env=env2,
                       capture_output=True, text=True, timeout=180, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert sync_event(run_dir)["ok"], events(run_dir)
    show = subprocess.run([str(METRICTAP), "show", run_dir.name], env=env2, capture_output=True,
                          text=True, cwd=tmp_path)
    assert "  wandb        uploaded" in show.stdout, show.stdout
    assert len(stub.recording.file_lines("wandb-history.jsonl")) == len(history(run_dir))


def test_without_wandb_installed_it_says_how_and_keeps_the_directory(tmp_path, store):
    env = wandb_env(store, tmp_path, path_with_wandb=False)
    p = run_wandb(tmp_path, store, env, TRAIN_OK, "--epochs", "2", "--delay-ms", "1")
    assert p.returncode == 0
    (run_dir,) = run_dirs(store)
    assert wait_until(lambda: sync_event(run_dir) is not None, 60)
    ev = sync_event(run_dir)
    assert not ev["ok"] and "pip install wandb" in ev["message"]
    assert list(offline_dir(tmp_path).glob("run-*.wandb"))


def test_offline_mode_writes_the_directory_and_runs_no_sync(tmp_path, store):
    env = wandb_env(store, tmp_path, online=False)
    p = run_wandb(tmp_path, store, env, TRAIN_OK, "--epochs", "2", "--delay-ms", "1")
    assert p.returncode == 0
    (run_dir,) = run_dirs(store)
    assert wait_until(lambda: (run_dir / "upload" / "wandb.json").exists() and
                      json.loads((run_dir / "upload" / "wandb.json").read_text())
                      .get("state") == "finished", 60)
    assert sync_event(run_dir) is None
    latest = tmp_path / "wandb" / "latest-run"
    assert latest.is_symlink() and latest.resolve() == offline_dir(tmp_path).resolve()


# ---- the records, decoded with W&B's own schema ----

def test_records_hold_the_history_and_summary_of_the_store(tmp_path, store):
    env = wandb_env(store, tmp_path, online=False)
    p = run_wandb(tmp_path, store, env, TRAIN_OK, "--epochs", "4", "--delay-ms", "2", "--lr", "1e-3")
    assert p.returncode == 0
    (run_dir,) = run_dirs(store)
    assert wait_until(lambda: json.loads((run_dir / "upload" / "wandb.json").read_text())
                      .get("state") == "finished", 60)
    recs = decode(tmp_path)
    kinds = [r.WhichOneof("record_type") for r in recs]
    assert kinds[:2] == ["header", "run"] and kinds[-2:] == ["exit", "final"]
    run = recs[1].run
    assert run.run_id == run_dir.name and run.project == "wb" and list(run.tags) == ["base", "lr-sweep"]
    config = {i.key: i.value_json for i in run.config.update}
    assert config["lr"] == "1e-3"  # as printed
    hist = [{item_key(i): json.loads(i.value_json) for i in r.history.item}
            for r in recs if r.HasField("history")]
    rows = history(run_dir)
    assert len(hist) == len(rows)
    for got, want, r in zip(hist, rows, [r for r in recs if r.HasField("history")]):
        assert same_row(got, want)
        assert r.history.step.num == want["_step"]
    summary = json.loads((run_dir / "summary.json").read_text())
    last = {}
    for r in recs:
        if r.HasField("summary"):
            last.update({item_key(i): json.loads(i.value_json) for i in r.summary.update})
    assert same(last["loss"]["min"], summary["loss.min"]) and same(last["acc"]["max"], summary["acc.max"])
    metrics = {r.metric.name: r.metric for r in recs if r.HasField("metric")}
    assert metrics["loss"].step_metric == "epoch" and metrics["loss"].summary.min
    assert metrics["loss"].goal == 1  # GOAL_MINIMIZE
    # metric definitions come before the first row that uses them
    first_hist = kinds.index("history")
    assert max(i for i, r in enumerate(recs) if r.HasField("metric") and r.metric.name == "loss") \
        < next(i for i, r in enumerate(recs) if r.HasField("history") and
               any(item_key(x) == "loss" for x in r.history.item)) or first_hist
    stats = [r for r in recs if r.HasField("stats")]
    assert stats and {"memory_percent", "cpu"} <= {i.key for i in stats[0].stats.item}
    out = "".join(r.output_raw.line for r in recs if r.HasField("output_raw"))
    assert out == (run_dir / "output.log").read_text()


SDK_SCRIPT = """
import wandb
run = wandb.init(project="cmp", id="sdkrun01", config={"lr": 0.001})
run.define_metric("loss", step_metric="epoch", summary="min")
run.define_metric("acc", step_metric="epoch", summary="max")
for e, loss, acc in ((1, 0.5, 0.25), (2, 0.25, 0.5), (3, 0.125, 0.75)):
    run.log({"epoch": e, "loss": loss, "acc": acc})
run.finish()
"""

TRAINER = """#!/bin/sh
echo 'epoch 1 loss=0.5 acc=0.25'
echo 'epoch 2 loss=0.25 acc=0.5'
echo 'epoch 3 loss=0.125 acc=0.75'
"""


def test_same_history_summary_and_metrics_as_the_real_sdk(tmp_path, store):
    sdk = tmp_path / "sdk"
    sdk.mkdir()
    (sdk / "sdk.py").write_text(SDK_SCRIPT)
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_DIR": str(sdk), "HOME": str(sdk),
           "WANDB_SILENT": "true"}
    subprocess.run([str(VENV_BIN / "python"), "sdk.py"], cwd=sdk, env=env, check=True, timeout=180)
    sdk_recs = decode(sdk)
    ours = tmp_path / "ours"
    ours.mkdir()
    train = ours / "train.sh"
    train.write_text(TRAINER)
    train.chmod(0o755)
    menv = wandb_env(store, ours, online=False)
    (ours / "m.yaml").write_text("metrics:\n  loss: {summary: [min]}\n  acc: {summary: [max]}\n")
    p = subprocess.run([str(METRICTAP), "run", "-c", "m.yaml", "--to", "wandb", "--", str(train),
                        "--lr", "0.001"], env=menv, cwd=ours, capture_output=True, timeout=120)
    assert p.returncode == 0
    (run_dir,) = run_dirs(store)
    assert wait_until(lambda: json.loads((run_dir / "upload" / "wandb.json").read_text())
                      .get("state") == "finished", 60)
    our_recs = decode(ours)

    def hist(recs):
        return [{k: v for k, v in ((item_key(i), json.loads(i.value_json)) for i in r.history.item)
                 if k in ("epoch", "loss", "acc", "_step")} for r in recs if r.HasField("history")]

    def summary(recs):
        s = {}
        for r in recs:
            if r.HasField("summary"):
                s.update({item_key(i): json.loads(i.value_json) for i in r.summary.update})
        return {k: s[k] for k in ("epoch", "loss", "acc", "_step")}

    def metrics(recs):
        return {r.metric.name: (r.metric.step_metric, r.metric.summary.min, r.metric.summary.max)
                for r in recs if r.HasField("metric") and r.metric.name in ("loss", "acc")}

    assert hist(our_recs) == hist(sdk_recs)
    assert summary(our_recs) == summary(sdk_recs)
    assert metrics(our_recs) == metrics(sdk_recs)
    sdk_config = {i.key: i.value_json for i in next(r for r in sdk_recs if r.HasField("run")).run.config.update}
    our_config = {i.key: i.value_json for i in next(r for r in our_recs if r.HasField("run")).run.config.update}
    assert our_config["lr"] == sdk_config["lr"]


# ---- framing edges, and a corrupted byte, through wandb's own reader ----

def make_store_run(store, rows, run_id="edge0001"):
    d = Path(store) / "runs" / "edges" / run_id
    d.mkdir(parents=True)
    (d / "run.json").write_text(json.dumps({
        "id": run_id, "project": "edges", "name": "edges", "state": "finished",
        "start_time": 1700000000.0, "end_time": 1700000100.0, "runtime": 100, "exit_code": 0,
        "config": {}, "metrics": {"loss": {"step_metric": "step"}, "pad": {}}, "axes": ["step"]}))
    with open(d / "history.jsonl", "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    return d


def export(store, tmp, run_id):
    Path(tmp).mkdir(parents=True, exist_ok=True)
    env = metrictap_env(store, METRICTAP_WANDB_DIR=tmp)
    r = subprocess.run([str(METRICTAP), "export", "--to", "wandb", run_id], env=env,
                       capture_output=True, text=True, timeout=600, cwd=tmp)
    assert r.returncode == 0, r.stderr


def chunk_ends(path):
    """(offset of each record's end, chunk types) walking the framing."""
    data = path.read_bytes()
    off, ends, types = 7, [], []
    while off < len(data):
        room = wandb_log.BLOCK - off % wandb_log.BLOCK
        if room < 7:
            off += room
            continue
        length, typ = int.from_bytes(data[off + 4:off + 6], "little"), data[off + 6]
        off += 7 + length
        types.append(typ)
        if typ in (1, 4):
            ends.append(off)
    return ends, types


def real_sync(tmp, run_dir, stub):
    copy = tmp / "copy" / run_dir.name  # sync writes into the directory
    shutil.copytree(run_dir, copy)
    env = {**os.environ, "WANDB_API_KEY": wandb_stub.API_KEY, "WANDB_BASE_URL": stub.url,
           "HOME": str(tmp), "WANDB_MODE": "online"}
    # (sync writes its logs into ./wandb: the test's directory, not the tree's)
    return subprocess.run(["timeout", "120", str(VENV_BIN / "wandb"), "sync", str(copy)], env=env,
                          capture_output=True, text=True, cwd=tmp)


def test_framing_edges_reach_wandb_whole(tmp_path, store, stub):
    """A record longer than a block, a record ending exactly 7 bytes before a
    block's end (the next one starts with an empty FIRST chunk there)."""
    big = {"_step": 0, "_timestamp": 1700000001.0, "step": 1, "loss": 1.0, "pad": "x" * 70000}

    def attempt(pad_len, tag):
        rows = [big, {"_step": 1, "_timestamp": 1700000002.0, "step": 2, "loss": 0.5, "pad": "y" * pad_len},
                {"_step": 2, "_timestamp": 1700000003.0, "step": 3, "loss": 0.25}]
        make_store_run(store / tag, rows)
        export(store / tag, tmp_path / tag, "edge0001")
        (log,) = (tmp_path / tag / "wandb").glob("offline-run-*/run-*.wandb")
        return log, chunk_ends(log)

    # find the padding that makes the second row's record end 7 bytes before a block end
    pad, log = 100, None
    for i in range(4):
        log, (ends, types) = attempt(pad, f"t{i}")
        hist_end = ends[-3 - 1]  # ..., row 2, row 3, exit, final: row 2 ends 4th from last
        gap = (wandb_log.BLOCK - hist_end % wandb_log.BLOCK) % wandb_log.BLOCK
        if gap == 7:
            break
        pad += gap - 7 if gap > 7 else gap + wandb_log.BLOCK - 7 - 100
    assert gap == 7, (pad, gap)
    assert 3 in types  # a MIDDLE chunk: a record longer than a block
    data = log.read_bytes()
    assert data[hist_end + 4:hist_end + 7] == b"\x00\x00\x02"  # an empty FIRST chunk at the edge
    r = real_sync(tmp_path, log.parent, stub)
    assert "ERROR" not in r.stderr + r.stdout, r.stderr
    sent = [json.loads(l) for l in stub.recording.file_lines("wandb-history.jsonl")]
    assert [s["loss"] for s in sent] == [1.0, 0.5, 0.25]
    assert len(sent[0]["pad"]) == 70000


def test_a_hundred_thousand_rows(tmp_path, store):
    rows = [{"_step": i, "_timestamp": 1700000000.0 + i / 100, "step": i, "loss": 1.0 / (i + 1)}
            for i in range(100000)]
    make_store_run(store, rows)
    export(store, tmp_path, "edge0001")
    recs = decode(tmp_path)
    hist = [r for r in recs if r.HasField("history")]
    assert len(hist) == 100000
    assert all(r.history.step.num == i for i, r in enumerate(hist))
    last = {item_key(i): json.loads(i.value_json) for i in hist[-1].history.item}
    assert same(last["loss"], 1.0 / 100000)


def test_a_corrupted_byte_is_reported_by_wandbs_reader(tmp_path, store, stub):
    rows = [{"_step": i, "_timestamp": 1700000000.0 + i, "step": i, "loss": 1.0 / (i + 1)}
            for i in range(50)]
    make_store_run(store, rows)
    export(store, tmp_path, "edge0001")
    d = offline_dir(tmp_path)
    (log,) = d.glob("run-*.wandb")
    ok = real_sync(tmp_path / "good", d, stub)
    assert "ERROR" not in ok.stderr + ok.stdout
    assert len(stub.recording.file_lines("wandb-history.jsonl")) == 50
    data = bytearray(log.read_bytes())
    ends, _ = chunk_ends(log)
    data[ends[10] - 3] ^= 0x01  # a byte inside a history record's payload
    log.write_bytes(bytes(data))
    with pytest.raises(wandb_log.CorruptLog):
        wandb_log.decode(log)
    stub2 = wandb_stub.start()
    try:
        bad = real_sync(tmp_path / "bad", d, stub2)
        out = bad.stdout + bad.stderr
        assert "checksum" in out or "ERROR" in out, out
        assert len(stub2.recording.file_lines("wandb-history.jsonl")) < 50
    finally:
        stub2.shutdown()


def test_a_resumed_run_continues_in_a_new_offline_directory_after_its_last_step(tmp_path, store, stub):
    env = wandb_env(store, tmp_path, online=False)
    p = run_wandb(tmp_path, store, env, TRAIN_OK, "--epochs", "3", "--delay-ms", "2",
                  args=("--id", "resume01"))
    assert p.returncode == 0
    (run_dir,) = run_dirs(store)
    first = sorted((tmp_path / "wandb").glob("offline-run-*"))
    assert len(first) == 1
    p = run_wandb(tmp_path, store, env, TRAIN_OK, "--epochs", "2", "--delay-ms", "2",
                  args=("--id", "resume01", "--resume", "must"))
    assert p.returncode == 0, p.stderr
    assert wait_until(lambda: json.loads((run_dir / "upload" / "wandb.json").read_text())
                      .get("state") == "finished", 60)
    dirs = sorted((tmp_path / "wandb").glob("offline-run-*"))
    assert len(dirs) == 2 and first[0] in dirs, dirs  # W&B's way: a new directory per resume
    (second,) = [d for d in dirs if d != first[0]]
    recs = wandb_log.decode(next(second.glob("run-*.wandb")))
    run = [r.run for r in recs if r.HasField("run")][0]
    assert run.run_id == "resume01" and run.resumed and run.starting_step == 3
    steps = [r.history.step.num for r in recs if r.HasField("history")]
    rows = history(run_dir)
    assert [r["_step"] for r in rows] == [0, 1, 2, 3, 4]
    assert steps == [3, 4]
    # the real client takes both directories: one run, every row once
    for d in dirs:
        r = real_sync(tmp_path, d, stub)
        assert r.returncode == 0, r.stdout + r.stderr
    sent = [json.loads(l) for l in stub.recording.file_lines("wandb-history.jsonl")]
    assert sorted(s["_step"] for s in sent) == [0, 1, 2, 3, 4]
