"""metrictap's TensorBoard event files read by the real tensorboard package:
EventAccumulator gets every history value at its step and time, and a real
`tensorboard --logdir` server (Rust loader and Python loader) serves the
scalars and the run's hparams, already while the run is still going."""
import json
import math
import os
import shutil
import signal
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from conftest import (BUILD, METRICTAP, VENV_BIN, agent_done, expected_points, free_port,
                      metrictap_env, run_dirs, wait_until)

TRAIN_OK = BUILD / "examples" / "train_ok"
TRAIN_FAIL = BUILD / "examples" / "train_fail"


def tb_run(tmp, store, logdir, *cmd, project="tb", extra=None):
    env = metrictap_env(store, METRICTAP_TENSORBOARD_DIR=logdir, **(extra or {}))
    p = subprocess.run([str(METRICTAP), "run", "--to", "tensorboard", "--project", project, "--",
                        *map(str, cmd)], env=env, capture_output=True, timeout=120, cwd=tmp)
    # `metrictap run` returns once the run is saved; the agent's uploaders
    # finish after it
    for d in run_dirs(store):
        assert wait_until(lambda: agent_done(d, "tensorboard"), 60)
    return p


def event_dir(logdir, project, run):
    d = Path(logdir) / project / f"{run['name']}"
    if not d.name.endswith(run["id"]):
        d = Path(logdir) / project / f"{run['name']}-{run['id']}"
    return d


def accumulate(d):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    ea = EventAccumulator(str(d), size_guidance={"scalars": 0, "tensors": 0})
    ea.Reload()
    return ea


def test_event_accumulator_reads_every_value_at_its_step_and_time(tmp_path, store):
    logdir = tmp_path / "tb"
    p = tb_run(tmp_path, store, logdir, TRAIN_OK, "--epochs", "6", "--delay-ms", "5", "--lr", "0.05")
    direct = subprocess.run([str(TRAIN_OK), "--epochs", "6", "--delay-ms", "5", "--lr", "0.05"],
                            capture_output=True, timeout=60)
    assert p.returncode == direct.returncode == 0 and p.stdout == direct.stdout
    (run_dir,) = run_dirs(store)
    run = json.loads((run_dir / "run.json").read_text())
    d = event_dir(logdir, "tb", run)
    files = list(d.glob("events.out.tfevents.*.metrictap"))
    assert len(files) == 1, list(d.iterdir())
    ea = accumulate(d)
    exp = expected_points(run_dir)  # (step, ts_ms, value) per key, the MLflow rule
    history_keys = {k for k in exp if not k.startswith("system/")}
    assert {"loss", "acc"} <= history_keys
    assert "epoch" not in ea.Tags()["scalars"]  # an axis is the x, not a metric
    for k in history_keys:
        got = sorted((e.step, round(e.wall_time * 1000), e.value) for e in ea.Scalars(k))
        want = sorted((s, ts, v) for (s, ts, v), n in exp[k].items() for _ in range(n))
        assert len(got) == len(want), k
        for (gs, gt, gv), (ws, wt, wv) in zip(got, want):
            assert gs == ws and abs(gt - wt) <= 1 and math.isclose(gv, wv, rel_tol=1e-6), (k, got, want)
    # loss is plotted against the trainer's epoch: 1..6
    assert [e.step for e in ea.Scalars("loss")] == [1, 2, 3, 4, 5, 6]
    # system metrics, under system/
    assert any(t.startswith("system/") for t in ea.Tags()["scalars"])
    # the config: HParams and a text table; the end: a session-end status
    from tensorboard.plugins.hparams import plugin_data_pb2
    tensors = ea.Tags()["tensors"]
    assert "_hparams_/session_start_info" in tensors and "_hparams_/session_end_info" in tensors
    content = ea.SummaryMetadata("_hparams_/session_start_info").plugin_data.content
    start = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
    assert start.hparams["lr"].number_value == 0.05
    assert start.hparams["epochs"].number_value == 6
    end = plugin_data_pb2.HParamsPluginData.FromString(
        ea.SummaryMetadata("_hparams_/session_end_info").plugin_data.content).session_end_info
    assert end.status == 1  # STATUS_SUCCESS
    table = ea.Tensors("config")[0].tensor_proto.string_val[0].decode()
    assert "| lr | 0.05 |" in table and "| epochs | 6 |" in table


def test_a_failed_run_ends_in_failure_status(tmp_path, store):
    logdir = tmp_path / "tb"
    p = tb_run(tmp_path, store, logdir, TRAIN_FAIL)
    assert p.returncode == 3
    (run_dir,) = run_dirs(store)
    run = json.loads((run_dir / "run.json").read_text())
    from tensorboard.plugins.hparams import plugin_data_pb2
    ea = accumulate(event_dir(logdir, "tb", run))
    end = plugin_data_pb2.HParamsPluginData.FromString(
        ea.SummaryMetadata("_hparams_/session_end_info").plugin_data.content).session_end_info
    assert end.status == 2  # STATUS_FAILURE


def test_an_unwritable_logdir_leaves_the_run_and_says_why(tmp_path, store):
    (tmp_path / "blocker").write_text("a file where a directory should be")
    logdir = tmp_path / "blocker" / "tb"
    p = tb_run(tmp_path, store, logdir, TRAIN_OK, "--epochs", "2", "--delay-ms", "1")
    assert p.returncode == 0
    said = [l for l in p.stderr.decode().splitlines() if l.startswith("metrictap:")]
    assert len(said) == 1 and "tensorboard" in said[0] and "goes on" in said[0], said
    (run_dir,) = run_dirs(store)
    assert "loss" in (run_dir / "history.jsonl").read_text()  # the run itself was kept
    events = [json.loads(l) for l in (run_dir / "events.jsonl").read_text().splitlines()]
    refused = [e for e in events if e.get("backend") == "tensorboard" and e["event"] == "upload_refused"]
    assert refused and "blocker" in refused[0]["message"], events


def test_a_link_in_the_logdir_is_not_followed(tmp_path, store):
    logdir = tmp_path / "tb"
    logdir.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.symlink(elsewhere, logdir / "tb")  # <logdir>/<project> is a link we did not make
    p = tb_run(tmp_path, store, logdir, TRAIN_OK, "--epochs", "2", "--delay-ms", "1")
    assert p.returncode == 0
    assert list(elsewhere.iterdir()) == []
    (run_dir,) = run_dirs(store)
    assert "a link, not followed" in (run_dir / "events.jsonl").read_text()


# ---- a real tensorboard server ----

class TensorBoard:
    def __init__(self, logdir, load_fast, log):
        self.port = free_port()
        exe = shutil.which("tensorboard", path=str(VENV_BIN))
        self.proc = subprocess.Popen(
            [exe, "--logdir", str(logdir), "--host", "127.0.0.1", "--port", str(self.port),
             f"--load_fast={load_fast}", "--reload_interval", "1"],
            stdout=open(log, "ab"), stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "HOME": str(Path(logdir).parent)})
        self.log = log

    def get(self, path, data=None):
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data,
                                     headers={"Content-Type": "application/json"} if data else {})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def scalars(self, run, tag):
        q = urllib.parse.urlencode({"run": run, "tag": tag})
        try:
            return self.get(f"/data/plugin/scalars/scalars?{q}")
        except (urllib.error.URLError, OSError, ValueError):
            return None

    def close(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


@pytest.fixture(params=["true", "false"], ids=["load_fast", "python_loader"])
def tensorboard(request, tmp_path):
    logdir = tmp_path / "tb"
    logdir.mkdir()
    tb = TensorBoard(logdir, request.param, tmp_path / "tensorboard.log")
    yield tb, logdir
    tb.close()


def test_tensorboard_serves_a_running_run_then_its_scalars_and_hparams(tensorboard, tmp_path, store):
    tb, logdir = tensorboard
    go = tmp_path / "go"
    script = tmp_path / "train.sh"
    script.write_text("#!/bin/sh\n"
                      "echo 'epoch 1 loss=0.5 acc=0.25'\n"
                      f"while [ ! -e {go} ]; do sleep 0.05; done\n"
                      "echo 'epoch 2 loss=0.25 acc=0.5'\n"
                      "echo 'epoch 3 loss=0.125 acc=0.75'\n")
    script.chmod(0o755)
    env = metrictap_env(store, METRICTAP_TENSORBOARD_DIR=logdir)
    p = subprocess.Popen([str(METRICTAP), "run", "--to", "tensorboard", "--project", "live", "--",
                          str(script), "--lr", "0.01", "--opt", "adam"], env=env, cwd=tmp_path,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        run_dir = None

        def started():
            nonlocal run_dir
            dirs = run_dirs(store)
            run_dir = dirs[0] if dirs else None
            return run_dir is not None
        assert wait_until(started, 30)
        run = json.loads((run_dir / "run.json").read_text())
        name = event_dir(logdir, "live", run).relative_to(logdir).as_posix()
        # the run is still going: the server already shows its first row
        assert wait_until(lambda: (tb.scalars(name, "loss") or []) != [], 90), tb.log.read_text()[-2000:]
        assert p.poll() is None
        first = tb.scalars(name, "loss")
        assert [(s, v) for _, s, v in first] == [(1, 0.5)]
    finally:
        go.write_text("")
        p.wait(timeout=60)
    assert wait_until(lambda: len(tb.scalars(name, "loss") or []) == 3, 60)
    got = tb.scalars(name, "acc")
    assert [(s, round(v, 6)) for _, s, v in got] == [(1, 0.25), (2, 0.5), (3, 0.75)]
    # the HParams plugin: the run's config, and its scalars as metrics to compare by
    def experiment():
        try:
            return tb.get("/data/plugin/hparams/experiment", json.dumps({"experimentName": ""}).encode())
        except (urllib.error.URLError, OSError, ValueError):
            return {}
    assert wait_until(lambda: experiment().get("hparamInfos"), 60)
    exp = experiment()
    names = {h["name"] for h in exp["hparamInfos"]}
    assert {"lr", "opt"} <= names, exp
    metrics = {m["name"]["tag"] for m in exp.get("metricInfos", [])}
    assert "loss" in metrics, exp
    groups = tb.get("/data/plugin/hparams/session_groups", json.dumps({
        "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"],
        "colParams": [], "startIndex": 0, "sliceSize": 100}).encode())
    sessions = [s for g in groups["sessionGroups"] for s in g["sessions"]]
    assert len(sessions) == 1 and sessions[0]["status"] == "STATUS_SUCCESS", groups
    assert groups["sessionGroups"][0]["hparams"]["opt"] == "adam"


def test_a_resumed_run_appends_to_its_event_file(tmp_path, store):
    logdir = tmp_path / "tb"
    script = tmp_path / "train.sh"
    script.write_text("#!/bin/sh\n"
                      "for e in $(seq $1 $2); do echo \"epoch $e loss=0.$e\"; done\n")
    script.chmod(0o755)
    env = metrictap_env(store, METRICTAP_TENSORBOARD_DIR=logdir)
    for args in (["--id", "tbres001"], ["--id", "tbres001", "--resume", "must"]):
        first = args[-1] == "tbres001"
        p = subprocess.run([str(METRICTAP), "run", "--to", "tensorboard", "--project", "tb", *args,
                            "--", str(script), "1" if first else "4", "3" if first else "5"],
                           env=env, capture_output=True, timeout=120, cwd=tmp_path)
        assert p.returncode == 0, p.stderr
        (run_dir,) = run_dirs(store)
        assert wait_until(lambda: agent_done(run_dir, "tensorboard"), 60)
    run = json.loads((run_dir / "run.json").read_text())
    d = event_dir(logdir, "tb", run)
    assert len(list(d.glob("events.out.tfevents.*"))) == 1, list(logdir.rglob("*"))
    ea = accumulate(d)
    got = [(e.step, round(e.value, 6)) for e in ea.Scalars("loss")]
    assert got == [(1, 0.1), (2, 0.2), (3, 0.3), (4, 0.4), (5, 0.5)]


def test_a_full_logdir_is_counted_and_the_run_goes_on(tmp_path, store):
    """The logdir on a 64 KiB tmpfs (a mount namespace of the test's own):
    the program's output and exit are unchanged, every row is in the store,
    and the failed writes are events that `show` prints."""
    logdir = tmp_path / "tbfull"
    logdir.mkdir()
    script = tmp_path / "fills_the_logdir.sh"
    script.write_text("#!/bin/sh\n"
                      "i=1; while [ $i -le 3000 ]; do echo \"epoch $i loss=0.$i\"; i=$((i+1)); done\n")
    script.chmod(0o755)
    env = metrictap_env(store, METRICTAP_TENSORBOARD_DIR=logdir)
    inner = (f'mount -t tmpfs -o size=64k,mode=0700 tmpfs "{logdir}" && '
             f'exec "{METRICTAP}" run --to tensorboard --project full -- "{script}"')
    try:
        p = subprocess.run(["unshare", "-m", "sh", "-c", inner], env=env, cwd=tmp_path,
                           capture_output=True, timeout=120)
        direct = subprocess.run([str(script)], capture_output=True, timeout=60)
        assert p.returncode == 0 and p.stdout == direct.stdout, p.stderr
        (run_dir,) = run_dirs(store)
        assert len((run_dir / "history.jsonl").read_text().splitlines()) == 3000

        def full_events():
            evs = [json.loads(l) for l in (run_dir / "events.jsonl").read_text().splitlines()]
            return [e for e in evs if e.get("event") == "upload_write_error" and e.get("errno") == 28]
        assert wait_until(lambda: full_events(), 60)
        assert full_events()[0]["backend"] == "tensorboard"
        show = subprocess.run([str(METRICTAP), "show", run_dir.name], env=env, capture_output=True,
                              text=True, timeout=60)
        assert "No space left on device" in show.stdout, show.stdout
    finally:
        # the agent keeps retrying into its namespace's full tmpfs: stop it
        subprocess.run(["pkill", "-f", f"metrictap-agent .*-- {script}"])
