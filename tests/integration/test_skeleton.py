"""The walking skeleton: the example trainers under `metrictap run` and bare
LD_PRELOAD, compared byte for byte with unwrapped runs, and the run store they
leave; and the fail-open paths."""
import re
import shutil
import subprocess

import pytest

from conftest import (EXAMPLES, read_run, latest_run, run_dirs, run_plain, run_preloaded,
                      run_wrapped, CLI)

TRAINERS = [("train_ok", 0, "finished"), ("train_fail", 3, "failed")]


def expected_epochs(stdout):
    rows = []
    for m in re.finditer(rb"^epoch (\d+) loss=(\S+) acc=(\S+)$", stdout, re.M):
        rows.append((int(m.group(1)), float(m.group(2)), float(m.group(3))))
    return rows


@pytest.mark.parametrize("mode", ["run", "preload"])
@pytest.mark.parametrize("name,code,state", TRAINERS)
def test_trainer_output_exit_and_store(workdir, mode, name, code, state):
    argv = [str(EXAMPLES / name), "--lr", "0.1"]
    want = run_plain(argv, workdir)
    got = (run_wrapped if mode == "run" else run_preloaded)(argv, workdir)
    assert want[0] == code
    assert got[0] == want[0]
    assert got[1] == want[1], "stdout differs"
    assert got[2] == want[2], "stderr differs"

    run = read_run(latest_run(workdir / "metrictap"))
    assert run["run"]["state"] == state
    assert run["run"]["exit_code"] == code
    epochs = expected_epochs(want[1])
    assert len(epochs) == (5 if code == 0 else 3)
    rows = [r for r in run["history"] if "loss" in r]
    assert [(r["epoch"], r["loss"], r["acc"]) for r in rows] == epochs
    assert [r["_step"] for r in run["history"]] == list(range(len(run["history"])))
    last = epochs[-1]
    assert run["summary"]["loss"] == last[1]
    assert run["summary"]["acc"] == last[2]
    assert run["summary"]["epoch"] == last[0]
    # output.log is what a person saw: stdout and stderr lines, progress collapsed.
    out = run["output"].decode()
    assert "epoch 1 loss=" in out and "epoch 1: batch 4/4\n" in out
    assert "batch 1/4" not in out
    assert [e["event"] for e in run["events"]][0] == "start"
    assert run["events"][-1]["event"] == "finish"
    assert run["events"][-1]["dropped_records"] == 0


def test_ls_and_show(workdir):
    run_wrapped([str(EXAMPLES / "train_ok")], workdir, flags=["--project", "p1", "--tags",
                                                               "a,b", "--name", "first"])
    run_wrapped([str(EXAMPLES / "train_fail")], workdir, flags=["--project", "p1"])
    rc, out, err = run_plain([str(CLI), "ls"], workdir)
    assert rc == 0, err
    lines = out.decode().splitlines()
    assert lines[0].split()[:3] == ["ID", "NAME", "STATE"]
    assert len(lines) == 3
    assert "failed" in lines[1] and "finished" in lines[2] and "a,b" in lines[2]
    run_id = lines[2].split()[0]
    rc, out, err = run_plain([str(CLI), "show", run_id[:5]], workdir)
    assert rc == 0, err
    text = out.decode()
    assert f"run      {run_id}" in text and "name     first" in text
    assert "state    finished (exit code 0)" in text
    assert re.search(r"^  loss\s+0\.5831$", text, re.M)
    rc, out, err = run_plain([str(CLI), "show", "zzzzzzzz"], workdir)
    assert rc == 1 and b"no run zzzzzzzz" in err


def one_metrictap_line(want_err, got_err):
    """got_err is want_err plus exactly one line beginning 'metrictap:'."""
    got_lines = got_err.split(b"\n")
    extra = [l for l in got_lines if l.startswith(b"metrictap:")]
    assert len(extra) == 1, got_err
    assert b"this run is not tracked" in extra[0]
    rest = b"\n".join(l for l in got_lines if not l.startswith(b"metrictap:"))
    assert rest == want_err
    return extra[0]


@pytest.mark.parametrize("mode", ["run", "preload"])
@pytest.mark.parametrize("name,code,state", TRAINERS)
def test_missing_agent_fails_open(workdir, mode, name, code, state):
    argv = [str(EXAMPLES / name)]
    want = run_plain(argv, workdir)
    env = {"METRICTAP_AGENT": "/nonexistent/metrictap-agent"}
    got = (run_wrapped if mode == "run" else run_preloaded)(argv, workdir, env=env)
    assert got[0] == want[0] and got[1] == want[1]
    line = one_metrictap_line(want[2], got[2])
    assert b"/nonexistent/metrictap-agent" in line
    assert not (workdir / "metrictap").exists()


def read_only_dir_argv(argv, ro):
    """argv run in a private mount namespace where `ro` is a read-only tmpfs."""
    if shutil.which("unshare") is None:
        pytest.skip("unshare is not available")
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("cannot make a mount namespace here")
    script = 'mount -t tmpfs -o ro tmpfs "$0" && exec "$@"'
    return ["unshare", "-m", "sh", "-c", script, str(ro), *argv]


@pytest.mark.parametrize("mode", ["run", "preload"])
def test_read_only_store_fails_open(workdir, mode):
    ro = workdir / "ro"
    ro.mkdir()
    store = ro / "store"
    prog = [str(EXAMPLES / "train_fail")]
    want = run_plain(read_only_dir_argv(prog, ro), workdir)
    if mode == "run":
        argv = [str(CLI), "run", "--", *prog]
    else:
        argv = ["env", f"LD_PRELOAD={CLI.parent / 'libmetrictap.so'}", *prog]
    got = run_plain(read_only_dir_argv(argv, ro), workdir, env={"METRICTAP_DIR": str(store)})
    assert want[0] == 3
    assert got[0] == want[0] and got[1] == want[1]
    line = one_metrictap_line(want[2], got[2])
    assert b"cannot create the run store" in line and b"Read-only file system" in line


def test_strict_mode_refuses_to_run(workdir):
    env = {"METRICTAP_AGENT": "/nonexistent/metrictap-agent", "METRICTAP_STRICT": "1"}
    rc, out, err = run_wrapped([str(EXAMPLES / "train_ok")], workdir, env=env)
    assert rc == 125 and out == b""
    rc, out, err = run_preloaded([str(EXAMPLES / "train_ok")], workdir, env=env)
    assert rc == 125 and out == b""


def test_bad_config_value_fails_open_with_a_clear_message(workdir):
    want = run_plain([str(EXAMPLES / "train_ok")], workdir)
    got = run_wrapped([str(EXAMPLES / "train_ok")], workdir,
                      env={"METRICTAP_SYSTEM_INTERVAL": "fast"})
    assert got[0] == 0 and got[1] == want[1]
    line = one_metrictap_line(want[2], got[2])
    assert b"METRICTAP_SYSTEM_INTERVAL" in line and b"fast" in line


def test_child_processes_join_the_parents_run(workdir):
    script = f"{EXAMPLES / 'train_ok'} --epochs 2; echo loss: 9.5"
    want = run_plain(["sh", "-c", script], workdir)
    got = run_wrapped(["sh", "-c", script], workdir)
    assert got == want
    assert len(run_dirs(workdir / "metrictap")) == 1
    run = read_run(latest_run(workdir / "metrictap"))
    assert run["summary"]["loss"] == 9.5
    assert [r["epoch"] for r in run["history"] if "acc" in r] == [1, 2]


def test_a_command_that_cannot_run_makes_no_run(workdir):
    rc, out, err = run_wrapped(["/nonexistent/prog"], workdir)
    assert rc == 127 and err == b"metrictap: /nonexistent/prog: No such file or directory\n"
    (workdir / "noexec").write_text("echo hi\n")
    rc, out, err = run_wrapped(["./noexec"], workdir)
    assert rc == 126 and b"Permission denied" in err
    assert not (workdir / "metrictap").exists()
