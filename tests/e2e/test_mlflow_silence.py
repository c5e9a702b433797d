"""Uploads that never hide: sync shows its progress on a terminal and names
the cause of a failure (connection refused, 401) in its message and in
events.jsonl; a failed end-of-run upload leaves an event; `ls` and `show`
say per backend whether a run is uploaded, pending or failed; a sync of a
run whose agent is still flushing waits for it and then completes."""
import json
import os
import pty
import subprocess
import threading
from pathlib import Path

from conftest import (METRICTAP, agent_done, compare, metrictap_env, run_dirs, wait_equal,
                      wait_until)
from test_mlflow_upload import run_train, write_run


def events(run_dir, name="upload_error"):
    p = Path(run_dir) / "events.jsonl"
    out = []
    for line in p.read_text().splitlines() if p.exists() else []:
        try:
            e = json.loads(line)
        except ValueError:
            continue
        if e.get("event") == name:
            out.append(e)
    return out


def cli(store, *args, url=None, **extra):
    return subprocess.run([str(METRICTAP), *args], env=metrictap_env(store, url, **extra),
                          capture_output=True, text=True, timeout=120)


def ls_upload(store, rid):
    rows = json.loads(cli(store, "ls", "--json").stdout)
    return {r["id"]: r.get("upload") for r in rows}[rid]


def on_a_terminal(cmd, env):
    """Runs cmd with stderr on a pty; returns (exit status, what the terminal got)."""
    master, slave = pty.openpty()
    p = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=slave)
    os.close(slave)
    got = b""
    while True:
        try:
            d = os.read(master, 65536)
        except OSError:
            break
        if not d:
            break
        got += d
    os.close(master)
    return p.wait(timeout=120), got.decode(errors="replace")


def test_sync_to_an_unreachable_server_says_why_as_it_goes(server, store, proxy):
    hand = write_run(Path(store) / "runs" / "e2e-hand" / "silent01", "silent01", rows=200)
    proxy.down()
    url = f"http://127.0.0.1:{proxy.port}"
    env = metrictap_env(store, url, METRICTAP_UPLOAD_SYNC_TIMEOUT="5s",
                        METRICTAP_UPLOAD_BACKOFF_MAX="1s")
    rc, term = on_a_terminal([str(METRICTAP), "sync", "--all"], env)
    assert rc == 1
    assert "metrictap: sync [" in term and "0/1 runs" in term, term  # the progress line
    assert "last failure: connection refused" in term, term
    # without a terminal: one line when it starts failing, and the cause at the end
    r = subprocess.run([str(METRICTAP), "sync", "--all"], env=env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 1
    assert "connection refused; retrying for up to 5 s" in r.stderr, r.stderr
    assert "last failure: connection refused" in r.stderr, r.stderr
    evs = events(hand)
    assert evs and all(e["cause"] == "connection refused" for e in evs), evs
    assert any(e.get("phase") == "sync" for e in evs)
    assert ls_upload(store, "silent01") == "failed: connection refused"
    show = cli(store, "show", "silent01").stdout
    assert "mlflow       failed: connection refused" in show, show
    # the server is back: uploaded, and said so
    proxy.up()
    r = cli(store, "sync", "--all", url=url)
    assert r.returncode == 0, r.stderr
    problems, _ = compare(server, hand)
    assert not problems
    assert ls_upload(store, "silent01") == "uploaded"
    assert "mlflow       uploaded" in cli(store, "show", "silent01").stdout
    # a row appended later is pending until the next sync (history.jsonl
    # ends in a torn line here: the system metrics take it)
    with open(hand / "system.jsonl", "a") as f:
        f.write(json.dumps({"_timestamp": 1700009000.0, "_runtime": 9000, "system.cpu_percent": 1,
                            "system.memory_used_mb": 2}) + "\n")
    assert ls_upload(store, "silent01") == "pending 2 points"


def test_a_401_is_named(server, store, proxy):
    write_run(Path(store) / "runs" / "e2e-hand" / "denied01", "denied01", rows=20)
    proxy.inject("401", "", 1000)
    r = cli(store, "sync", "--all", url=f"http://127.0.0.1:{proxy.port}")
    assert r.returncode == 1
    assert "HTTP 401: bad credentials" in r.stderr and "MLFLOW_TRACKING_USERNAME" in r.stderr, r.stderr
    assert ls_upload(store, "denied01").startswith("failed: HTTP 401"), ls_upload(store, "denied01")


def test_a_failed_end_of_run_upload_leaves_an_event(server, store, proxy):
    proxy.down()
    url = f"http://127.0.0.1:{proxy.port}"
    run_dir = run_train(store, url, epochs=3, delay_ms=1,
                        env_extra={"METRICTAP_UPLOAD_FLUSH_TIMEOUT": "2s",
                                   "METRICTAP_UPLOAD_FINISH_TIMEOUT": "2s",
                                   "METRICTAP_UPLOAD_BACKOFF_MAX": "1s"})
    assert wait_until(lambda: agent_done(run_dir), 60)
    end = [e for e in events(run_dir) if e.get("phase") == "end"]
    assert end and end[-1]["cause"] == "connection refused", events(run_dir)
    assert "metrictap sync" in end[-1]["message"]
    rid = json.loads((run_dir / "run.json").read_text())["id"]
    assert ls_upload(store, rid) == "failed: connection refused"


def test_sync_waits_for_a_flushing_agent_then_completes(server, store, proxy):
    proxy.down()
    url = f"http://127.0.0.1:{proxy.port}"
    run_dir = run_train(store, url, epochs=5, delay_ms=1,
                        env_extra={"METRICTAP_UPLOAD_FLUSH_TIMEOUT": "8s",
                                   "METRICTAP_UPLOAD_FINISH_TIMEOUT": "8s",
                                   "METRICTAP_UPLOAD_BACKOFF_MAX": "1s"})
    assert not agent_done(run_dir), "the agent let go before the test could look"
    rid = json.loads((run_dir / "run.json").read_text())["id"]
    assert ls_upload(store, rid).startswith("uploading")

    def up_when_the_agent_gives_up():
        wait_until(lambda: agent_done(run_dir), 60)
        proxy.up()
    th = threading.Thread(target=up_when_the_agent_gives_up)
    th.start()
    env = metrictap_env(store, url, METRICTAP_UPLOAD_BACKOFF_MAX="1s")
    rc, term = on_a_terminal([str(METRICTAP), "sync", rid], env)
    th.join()
    assert rc == 0, term
    assert "waiting for 1 run's agent" in term, term
    assert "being uploaded by its agent" not in term
    wait_equal(server, run_dir, timeout=10)
    assert ls_upload(store, rid) == "uploaded"
