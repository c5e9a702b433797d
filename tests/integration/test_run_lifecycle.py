"""The run (issue 5): identity from flags and variables, states, resume, the
code and binary record, secrets, and who can reach a run's files."""
import json
import os
import shutil
import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest

from conftest import (CLI, EXAMPLES, SHIM, clean_env, latest_run, read_run, run_dirs, run_plain,
                      run_preloaded, run_wrapped, wait_finished)

TRAIN_OK = str(EXAMPLES / "train_ok")
TRAIN_FAIL = str(EXAMPLES / "train_fail")


def test_identity_from_flags_then_metrictap_then_wandb_variables(workdir):
    env = {"WANDB_PROJECT": "wp", "WANDB_NAME": "wandb-name", "WANDB_TAGS": "w1,w2",
           "WANDB_RUN_GROUP": "wg", "WANDB_JOB_TYPE": "train", "WANDB_NOTES": "from wandb",
           "METRICTAP_NAME": "mt-name"}
    rc, _, err = run_wrapped([TRAIN_OK], workdir, env=env, flags=["--tags", "f1"])
    assert rc == 0, err
    run = read_run(latest_run(workdir / "metrictap"))["run"]
    assert run["project"] == "wp"            # WANDB_* when nothing else says
    assert run["name"] == "mt-name"          # METRICTAP_* over WANDB_*
    assert run["tags"] == ["f1"]             # the flag over both
    assert run["group"] == "wg" and run["job_type"] == "train" and run["notes"] == "from wandb"
    assert len(run["id"]) == 8 and run["id"].isalnum() and run["id"] == run["id"].lower()


def test_wandb_mode_disabled_tracks_nothing(workdir):
    want = run_plain([TRAIN_OK], workdir)
    assert run_wrapped([TRAIN_OK], workdir, env={"WANDB_MODE": "disabled"}) == want
    assert run_preloaded([TRAIN_OK], workdir, env={"WANDB_MODE": "disabled"}) == want
    assert not (workdir / "metrictap").exists()


def test_states(workdir, tmp_path):
    run_wrapped([TRAIN_OK], workdir)
    assert read_run(latest_run(workdir / "metrictap"))["run"]["state"] == "finished"
    run_wrapped([TRAIN_FAIL], workdir)
    r = read_run(latest_run(workdir / "metrictap"))["run"]
    assert (r["state"], r["exit_code"], r["signal"]) == ("failed", 3, None)
    run_wrapped(["sh", "-c", "kill -TERM $$"], workdir)
    r = read_run(latest_run(workdir / "metrictap"))["run"]
    assert (r["state"], r["exit_code"], r["signal"]) == ("killed", None, 15)
    assert r["end_time"] >= r["start_time"] and r["runtime"] >= 0


def test_lost_when_the_process_vanishes_without_an_exit_record(workdir):
    env = clean_env({"LD_PRELOAD": str(SHIM)})
    p = subprocess.Popen(["sleep", "30"], cwd=workdir, env=env)
    store = workdir / "metrictap"
    deadline = time.monotonic() + 10
    while not (store / "latest-run").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    p.send_signal(signal.SIGKILL)
    p.wait()
    run = read_run(latest_run(store))["run"]
    assert run["state"] == "lost"


def test_resume_appends_after_the_last_step_and_continues(workdir):
    flags = ["--project", "p", "--id", "run1"]
    run_wrapped([TRAIN_FAIL], workdir, flags=flags)
    first = read_run(latest_run(workdir / "metrictap"))
    steps_before = [r["_step"] for r in first["history"]]
    rc, out, err = run_wrapped(["sh", "-c", "echo 'val_loss: 0.25'"], workdir,
                               flags=flags + ["--resume", "allow"])
    assert rc == 0, err
    run = read_run(latest_run(workdir / "metrictap"))
    assert len(run_dirs(workdir / "metrictap")) == 1
    new_rows = run["history"][len(steps_before):]
    assert [r["_step"] for r in new_rows] == [steps_before[-1] + 1]
    # _runtime is written with 3 decimals: 0.0104 may read back as 0.010.
    assert new_rows[0]["_runtime"] >= round(first["run"]["runtime"], 3) - 0.001
    assert run["summary"]["val_loss"] == 0.25
    assert run["summary"]["loss"] == first["summary"]["loss"]  # carried over
    assert run["run"]["start_time"] == first["run"]["start_time"]
    assert run["run"]["resumed"] == 1 and run["run"]["name"] == first["run"]["name"]
    resumes = [e for e in run["events"] if e["event"] == "resume"]
    assert len(resumes) == 1 and resumes[0]["first_step"] == steps_before[-1] + 1
    # WANDB_RESUME / WANDB_RUN_ID resume the same run again.
    run_wrapped(["true"], workdir, env={"WANDB_RUN_ID": "run1", "WANDB_RESUME": "must",
                                        "WANDB_PROJECT": "p"})
    run = read_run(latest_run(workdir / "metrictap"))
    assert run["run"]["resumed"] == 2
    assert len([e for e in run["events"] if e["event"] == "resume"]) == 2


def test_resume_must_and_never_fail_before_the_program_starts(workdir):
    marker = workdir / "ran"
    prog = ["sh", "-c", f"touch {marker}"]
    rc, out, err = run_wrapped(prog, workdir, flags=["--id", "nope", "--resume", "must"])
    assert rc != 0 and b"does not exist" in err and b"not started" in err
    assert not marker.exists()
    run_wrapped([TRAIN_OK], workdir, flags=["--id", "there"])
    rc, out, err = run_wrapped(prog, workdir, flags=["--id", "there", "--resume", "never"])
    assert rc != 0 and b"already exists" in err and not marker.exists()


def test_resume_never_under_bare_preload_fails_open(workdir):
    run_wrapped([TRAIN_OK], workdir, flags=["--id", "there"])
    want = run_plain([TRAIN_OK], workdir)
    got = run_preloaded([TRAIN_OK], workdir, env={"METRICTAP_ID": "there",
                                                  "METRICTAP_RESUME": "never"})
    assert got[0] == want[0] and got[1] == want[1]
    lines = [l for l in got[2].split(b"\n") if l.startswith(b"metrictap:")]
    assert len(lines) == 1 and b"already exists" in lines[0]


def git(cwd, *args):
    subprocess.run(["git", "-c", "user.email=t@example.com", "-c", "user.name=t", *args],
                   cwd=cwd, check=True, capture_output=True)


def test_code_state_and_disable_switch(workdir):
    if not shutil.which("git"):
        pytest.skip("git is not installed")
    git(workdir, "init", "-q")
    (workdir / "train.cfg").write_text("lr=0.1\n")
    git(workdir, "add", "train.cfg")
    git(workdir, "commit", "-qm", "first")
    git(workdir, "remote", "add", "origin", "https://user:hunter2@example.com/team/repo.git")
    (workdir / "train.cfg").write_text("lr=0.2\n")
    run_wrapped([TRAIN_OK], workdir)
    run_dir = latest_run(workdir / "metrictap")
    meta = read_run(run_dir)["run"]["metadata"]
    assert meta["git"]["dirty"] is True and len(meta["git"]["commit"]) == 40
    assert meta["git"]["remote"] == "https://example.com/team/repo.git"
    assert "+lr=0.2" in (run_dir / "diff.patch").read_text()
    assert not [f for f in meta["git"].get("untracked", []) if f.startswith("metrictap")]
    assert meta["binary"]["kind"] == "dynamic" and len(meta["binary"]["sha256"]) == 64
    run_wrapped([TRAIN_OK], workdir, env={"WANDB_DISABLE_CODE": "true",
                                          "WANDB_IGNORE_GLOBS": "*.patch,*.ckpt"})
    run_dir = latest_run(workdir / "metrictap")
    meta = read_run(run_dir)["run"]["metadata"]
    assert "commit" not in meta.get("git", {}) and not (run_dir / "diff.patch").exists()
    assert meta["code"] == {"disabled": True, "ignore_globs": ["*.patch", "*.ckpt"]}


def test_secrets_are_redacted(workdir):
    run_wrapped([TRAIN_OK, "--api-key", "sk-123", "--hf_token=abc", "PASSWORD=pw"], workdir)
    run_dir = latest_run(workdir / "metrictap")
    text = (run_dir / "run.json").read_text()
    assert "sk-123" not in text and "abc\"" not in text and "=pw" not in text
    cmd = json.loads(text)["command"]
    assert cmd[1:] == ["--api-key", "[REDACTED]", "--hf_token=[REDACTED]",
                       "PASSWORD=[REDACTED]"]


def test_store_and_channel_are_private(workdir):
    run_wrapped([TRAIN_OK], workdir)
    store = workdir / "metrictap"
    for p in [store, *store.rglob("*")]:
        try:
            if p.is_symlink():
                continue
            mode = stat.S_IMODE(p.stat().st_mode)
        except FileNotFoundError:
            continue  # SQLite removes its -wal/-shm files when the agent closes the index
        assert mode == (0o700 if p.is_dir() else 0o600), f"{p} has mode {oct(mode)}"


def test_another_user_cannot_reach_the_channel(workdir):
    if os.getuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root and setpriv")
    p = subprocess.Popen([str(CLI), "run", "-v", "--", "sleep", "3"], cwd=workdir,
                         env=clean_env(), stderr=subprocess.PIPE)
    try:
        first = p.stderr.readline().decode()  # "metrictap: run ID in DIR"
        run_id = first.split()[2]
        deadline = time.monotonic() + 10
        rings = []
        while not rings and time.monotonic() < deadline:
            rings = [r for d in Path("/dev/shm").glob(f"metrictap-{run_id}-*")
                     for r in d.glob("ring.*")]
            time.sleep(0.02)
        assert rings, "no ring found"
        chan = rings[0].parent
        assert stat.S_IMODE(chan.stat().st_mode) == 0o700
        assert stat.S_IMODE(rings[0].stat().st_mode) == 0o600
        probe = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                                "cat", str(rings[0])], capture_output=True)
        assert probe.returncode != 0 and b"Permission denied" in probe.stderr
    finally:
        p.communicate(timeout=20)
