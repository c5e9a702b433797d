"""Issue 15, items 6-8: the index is a cache of the run directories.  A busy
index.sqlite does not hold up a program's start, a damaged one is moved aside
and rebuilt with one line saying so, a store that does not exist has no runs,
and a run whose run.json is damaged is named and shown for what is readable."""
import json
import os
import sqlite3
import subprocess

import pytest

import victims as v
from conftest import CLI, EXAMPLES, SHIM, clean_env, run_dirs, wait_finished

TRAIN = str(EXAMPLES / "train_ok")


def cli(cwd, *argv, env=None):
    return subprocess.run([str(CLI), *argv], cwd=cwd, env=clean_env(env), capture_output=True,
                          text=True, timeout=120)


def track(cwd, mode="run", run_id=None):
    env = clean_env({"METRICTAP_ID": run_id} if run_id else None)
    argv = [str(CLI), "run", "--", TRAIN] if mode == "run" else [TRAIN]
    if mode == "preload":
        env["LD_PRELOAD"] = str(SHIM)
    p = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, timeout=120)
    assert p.returncode == 0
    return p


def agents_gone(store):
    """No agent holds its run's .agent.lock any more (it is held for the
    agent's whole life, its index thread's last writes included)."""
    import fcntl
    for lock in store.glob("runs/*/*/.agent.lock"):
        with open(lock) as f:
            try:
                fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
    return True


def quiet_index(store):
    """Waits until every agent has exited and closed the index (SQLite then
    folds its -wal into index.sqlite and removes it)."""
    v.wait_for(lambda: agents_gone(store) and not (store / "index.sqlite-wal").exists(),
               what="the agents' exit")


def ls_ids(cwd):
    p = cli(cwd, "ls", "--json")
    assert p.returncode == 0, p.stderr
    return sorted(r["id"] for r in json.loads(p.stdout)), p.stderr


@pytest.mark.parametrize("mode", ["run", "preload"])
def test_busy_index_does_not_hold_up_the_start(workdir, mode):
    """Another process holds BEGIN EXCLUSIVE on index.sqlite for the whole
    run: the program is tracked all the same (the agent answered without the
    index), the run says its row is pending, and ls puts it in afterwards."""
    track(workdir, run_id="first1")
    store = workdir / "metrictap"
    wait_finished(store / "runs" / "uncategorized" / "first1")
    quiet_index(store)
    db = sqlite3.connect(store / "index.sqlite", isolation_level=None, timeout=0)
    db.execute("BEGIN EXCLUSIVE")
    try:
        p = track(workdir, mode, run_id="busy1")
        assert b"metrictap:" not in p.stderr, p.stderr
        run = store / "runs" / "uncategorized" / "busy1"
        wait_finished(run)
        assert [r["epoch"] for r in v.history(run) if "epoch" in r] == [1, 2, 3, 4, 5]
        pending = v.events(run, "index_pending")
        assert len(pending) == 1 and "locked" in pending[0]["message"]
    finally:
        db.execute("ROLLBACK")
        db.close()
    ids, _ = ls_ids(workdir)
    assert ids == ["busy1", "first1"]
    p = cli(workdir, "ls", "--json", "--state", "finished")
    assert sorted(r["id"] for r in json.loads(p.stdout)) == ["busy1", "first1"]


def damage(path, how):
    size = path.stat().st_size
    if how == "random":
        path.write_bytes(os.urandom(49152))
    else:
        os.truncate(path, size // 2)


@pytest.mark.parametrize("how", ["random", "half"])
@pytest.mark.parametrize("command", ["ls", "reindex", "run"])
def test_damaged_index_is_moved_aside_and_rebuilt(workdir, how, command):
    for i in range(3):
        track(workdir, run_id=f"run{i}")
    store = workdir / "metrictap"
    for d in run_dirs(store):
        wait_finished(d)
    quiet_index(store)
    damage(store / "index.sqlite", how)
    if command == "run":
        track(workdir, run_id="after1")
        wait_finished(store / "runs" / "uncategorized" / "after1")
        quiet_index(store)
        rebuilt = v.events(store / "runs" / "uncategorized" / "after1", "index_rebuilt")
        assert len(rebuilt) == 1 and "was damaged" in rebuilt[0]["message"]
        ids, err = ls_ids(workdir)
        assert ids == ["after1", "run0", "run1", "run2"] and err == ""
    else:
        p = cli(workdir, command)
        assert p.returncode == 0, p.stderr
        lines = [l for l in p.stderr.splitlines() if "damaged" in l]
        assert len(lines) == 1, p.stderr
        assert "index.sqlite was damaged" in lines[0] and "index.sqlite.damaged-" in lines[0]
        ids, err = ls_ids(workdir)
        assert ids == ["run0", "run1", "run2"] and err == ""  # said once, not again
    aside = [p.name for p in store.iterdir() if p.name.startswith("index.sqlite.damaged-")]
    assert len(aside) == 1


def test_reindex_rebuilds_from_scratch(workdir):
    """Rows the run directories do not back are gone after reindex."""
    track(workdir, run_id="real1")
    store = workdir / "metrictap"
    wait_finished(store / "runs" / "uncategorized" / "real1")
    quiet_index(store)
    db = sqlite3.connect(store / "index.sqlite")
    db.execute("UPDATE runs SET name = 'stale' WHERE id = 'real1'")
    db.commit()
    db.close()
    assert cli(workdir, "reindex").returncode == 0
    p = cli(workdir, "ls", "--json")
    assert [r["name"] for r in json.loads(p.stdout)] == ["train_ok-real1"]


def test_ls_on_a_store_that_does_not_exist_says_no_runs(workdir):
    p = cli(workdir, "ls")
    assert p.returncode == 0
    assert "no runs yet" in p.stderr and "unable to open" not in p.stderr
    assert cli(workdir, "ls", "--json").stdout == "[]\n"
    assert not (workdir / "metrictap").exists()  # looking creates nothing


def test_damaged_run_json_is_named_and_what_is_readable_shown(workdir):
    track(workdir, run_id="good1")
    track(workdir, run_id="hurt1")
    store = workdir / "metrictap"
    hurt = store / "runs" / "uncategorized" / "hurt1"
    wait_finished(hurt)
    quiet_index(store)
    (hurt / "run.json").write_text('{"id": "hurt1", "state": "finis')
    p = cli(workdir, "reindex")
    assert p.returncode == 0
    assert f"skipped {hurt}: its run.json is not valid JSON (at byte" in p.stderr
    assert "1 run directories without a readable run.json were skipped" in p.stderr
    p = cli(workdir, "show", "hurt1")
    assert p.returncode == 0, p.stderr
    assert "run hurt1 is not in the index" in p.stderr and str(hurt.relative_to(workdir)) in p.stderr
    assert "damaged  its run.json is not valid JSON" in p.stdout
    assert "acc                          0.844" in p.stdout      # summary.json
    assert "epoch 5 loss=0.5831 acc=0.844" in p.stdout           # output.log
    assert "loss  (vs " in p.stdout                              # history.jsonl, charted
    ids, _ = ls_ids(workdir)
    assert ids == ["good1"]
