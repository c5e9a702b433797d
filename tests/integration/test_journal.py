"""Persist, then parse (issue 16) and every run ending in a true state (issue
15, items 5 and 9): no line lost to a slow parser, a dead agent's journal
finished later, a full disk, drops that are shown, children that outlive the
root, daemon() under bare LD_PRELOAD."""
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import (BUILD, CLI, SHIM, clean_env, latest_run, read_jsonl, read_run,
                      wait_finished)
from test_capture import agent_of

LOOP = BUILD / "bench" / "print_loop"


@pytest.fixture(scope="module", autouse=True)
def print_loop():
    if not LOOP.exists():
        subprocess.run(["make", "-s", "-C", str(BUILD.parent), str(LOOP.relative_to(BUILD.parent))],
                       check=True)


def agent_of_root(root, timeout=10):
    """The agent the shim of process `root` started (never another run's:
    other runs share this machine)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = subprocess.run(["pgrep", "-f", f"metrictap-agent --status-fd [0-9]+ --root-pid {root}( |$)"],
                               capture_output=True, text=True).stdout.split()
        if len(found) == 1 and Path(f"/proc/{found[0]}/task").exists() and \
                len(list(Path(f"/proc/{found[0]}/task").iterdir())) > 1:
            return int(found[0])  # the agent itself (threads), not its first half
        time.sleep(0.01)
    raise AssertionError(f"no agent of {root}")


def wait_gone(pid, timeout=10):
    deadline = time.monotonic() + timeout
    while Path(f"/proc/{pid}").exists():
        assert time.monotonic() < deadline
        time.sleep(0.01)


def compile_c(tmp_path, name, src):
    c = tmp_path / f"{name}.c"
    c.write_text(src)
    exe = tmp_path / name
    subprocess.run(["cc", "-O2", "-o", str(exe), str(c)], check=True)
    return exe


def loop_lines(n):
    """What print_loop prints, computed the way it does (C printf of the same
    doubles): run it unwrapped once."""
    return subprocess.run([str(LOOP), str(n)], capture_output=True, env=clean_env()).stdout


def test_a_burst_with_the_default_config_loses_no_line(workdir):
    # 2,000,000 lines as fast as printf goes (millions a second): before the
    # journal, the agent parsed behind the ring and the ring dropped.
    n = 2_000_000
    with open(workdir / "out.txt", "wb") as out:
        p = subprocess.run([str(CLI), "run", "--", str(LOOP), str(n)], cwd=workdir,
                           env=clean_env(), stdout=out, stderr=subprocess.PIPE, timeout=300)
    assert p.returncode == 0
    # At most the progress line of a save that takes more than a second.
    told = [l for l in p.stderr.splitlines() if l.startswith(b"metrictap:")]
    assert all(l.startswith(b"metrictap: saving the run") for l in told), p.stderr
    run_dir = latest_run(workdir / "metrictap")
    finish = read_jsonl(run_dir / "events.jsonl")[-1]
    assert finish["event"] == "finish" and finish["dropped_records"] == 0
    output = (run_dir / "output.log").read_bytes()
    assert output.startswith((workdir / "out.txt").read_bytes())
    with open(run_dir / "history.jsonl", "rb") as h:
        rows = sum(1 for _ in h)
    assert rows == n
    assert not (run_dir / "journal").exists()  # removed once parsed


def slow_parse_run(workdir, n, env=None):
    """A run under bare LD_PRELOAD whose parse stage lags far behind: the
    agent shares every CPU with busy loops, where its parse thread (nice 19)
    gets a sliver and its drain enough.  Once every ring was drained into the
    journal, the agent is SIGKILLed in its backlog.  Returns (program output,
    run dir, agent pid, output.log as the agent left it)."""
    # Busy loops at nice 0 on every CPU (the agent is not pinned: it runs
    # where it may) leave the parse thread at nice 19 a sliver of any CPU:
    # it stays behind however fast it is.
    busy = [subprocess.Popen(["taskset", "-c", str(cpu), "sh", "-c", "while :; do :; done"])
            for cpu in sorted(os.sched_getaffinity(0)) for _ in range(2)]
    try:
        e = clean_env({"LD_PRELOAD": str(SHIM), "METRICTAP_CAPTURE_RING_SIZE": "256M",
                       **(env or {})})
        with open(workdir / "out.txt", "wb") as out:
            p = subprocess.Popen(["taskset", "-c", "0", str(LOOP), str(n)], cwd=workdir, env=e,
                                 stdout=out, stderr=subprocess.DEVNULL)
            agent = agent_of_root(p.pid)
            assert p.wait(timeout=120) == 0
        run_dir = (workdir / "metrictap" / "latest-run").resolve()
        run_id = run_dir.name
        deadline = time.monotonic() + 60
        # Drained: no ring is left in the run's channel.
        while list(Path("/dev/shm").glob(f"metrictap-{run_id}-*/ring.*")):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        # Killed while the busy loops still hold its CPU: once they stop,
        # the parse stage catches up in a moment and there is no backlog.
        before = (run_dir / "output.log").read_bytes()
        os.kill(agent, signal.SIGKILL)
        wait_gone(agent)
        return (workdir / "out.txt").read_bytes(), run_dir, agent, before
    finally:
        for b in busy:
            b.kill()
            b.wait()


@pytest.mark.parametrize("command", ["recover", "show"])
def test_agent_killed_in_a_backlog_then_a_later_command_completes_the_run(workdir, command):
    if not shutil.which("taskset"):
        pytest.skip("needs taskset")
    n = 1_500_000
    printed, run_dir, agent, before = slow_parse_run(workdir, n)
    assert len(before) < len(printed), "the parse stage was not behind: nothing to recover"
    run = json.loads((run_dir / "run.json").read_text())
    assert run["state"] == "running"
    # ls tells the agent is gone without writing anything (the exit record
    # is still in the unparsed journal: lost until a command finishes it).
    ls = subprocess.run([str(CLI), "ls", "--json"], cwd=workdir, env=clean_env(),
                        capture_output=True, text=True, check=True)
    assert json.loads(ls.stdout)[0]["state"] == "lost"
    assert json.loads((run_dir / "run.json").read_text())["state"] == "running"
    argv = {"recover": ["recover", run["id"]], "show": ["show", run["id"]]}[command]
    p = subprocess.run([str(CLI), *argv], cwd=workdir, env=clean_env(), capture_output=True)
    assert b"metrictap: recovered run " + run["id"].encode() in p.stderr, p.stderr
    r = read_run(run_dir)
    assert r["run"]["state"] == "finished" and r["run"]["exit_code"] == 0
    console = b"".join(l for l in r["output"].splitlines(keepends=True)
                       if not l.startswith(b"elapsed_s="))  # print_loop's stderr line
    assert console == printed  # every line once, in order
    steps = [row["step"] for row in r["history"]]
    assert steps == list(range(n))
    assert r["summary"]["step"] == n - 1
    assert not (run_dir / "journal").exists()
    assert any(e["event"] == "recovered" for e in r["events"])


def test_run_records_the_end_when_its_agent_dies(workdir, tmp_path):
    # `metrictap run` saw its child's exit status: the run ends in that state
    # even though the agent was killed, with what reached the journal parsed.
    exe = compile_c(tmp_path, "slow", r'''
        #include <stdio.h>
        #include <unistd.h>
        int main(void) { for (int i = 0; i < 30; i++) { printf("tick %d\n", i); fflush(stdout);
                         usleep(100000); } return 3; }''')
    p = subprocess.Popen([str(CLI), "run", "--", str(exe)], cwd=workdir, env=clean_env(),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    agent = agent_of(p.pid, workdir / "metrictap", timeout=10)
    time.sleep(1.0)
    os.kill(agent, signal.SIGKILL)
    out, err = p.communicate(timeout=30)
    assert p.returncode == 3 and out.count(b"tick") == 30
    run_dir = latest_run(workdir / "metrictap", wait=False)
    r = read_run(run_dir)
    assert (r["run"]["state"], r["run"]["exit_code"]) == ("failed", 3)
    assert r["output"].startswith(b"tick 0\ntick 1\n")
    assert r["events"][-1]["event"] == "finish" and r["events"][-1]["recovered"]


def test_a_run_whose_agent_died_shows_as_lost(workdir):
    # The program still runs but nobody captures it any more: `ls` says
    # lost (from the agent's lock), and reindex records it.
    p = subprocess.Popen(["sleep", "30"], cwd=workdir, env=clean_env({"LD_PRELOAD": str(SHIM)}))
    try:
        store = workdir / "metrictap"
        deadline = time.monotonic() + 10
        while not (store / "latest-run").exists():
            assert time.monotonic() < deadline
            time.sleep(0.01)
        run_dir = (store / "latest-run").resolve()
        while not (run_dir / "journal" / "meta").exists():
            assert time.monotonic() < deadline
            time.sleep(0.01)
        agent = agent_of_root(p.pid)
        os.kill(agent, signal.SIGKILL)
        wait_gone(agent)
        ls = subprocess.run([str(CLI), "ls"], cwd=workdir, env=clean_env(), capture_output=True,
                            text=True, check=True).stdout
        assert " lost " in ls, ls
        assert json.loads((run_dir / "run.json").read_text())["state"] == "running"
        subprocess.run([str(CLI), "reindex"], cwd=workdir, env=clean_env(), check=True,
                       capture_output=True)
        assert json.loads((run_dir / "run.json").read_text())["state"] == "lost"
    finally:
        p.kill()
        p.wait()


def small_tmpfs(mount, size, script):
    """`script` in a mount namespace where `mount` is a tmpfs of `size`."""
    if subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode != 0:
        pytest.skip("cannot make a mount namespace here")
    return ["unshare", "-m", "sh", "-c",
            f'mount -t tmpfs -o size={size},mode=0700 tmpfs "{mount}" && {script}']


def test_a_full_store_disk_during_a_burst(workdir):
    # The store's filesystem (24 MiB) fills during a 2,000,000-line burst:
    # the program's output and exit stay as they were, what was written is
    # whole, drops are counted with their reason and the run ends finished.
    n = 2_000_000
    store, copy = workdir / "store", workdir / "copy"
    store.mkdir()
    copy.mkdir()
    script = (f'METRICTAP_DIR="{store}" "{CLI}" run -- "{LOOP}" {n} > "{workdir}/out.txt"'
              f' 2> "{workdir}/err.txt"; rc=$?; cp -a "{store}/." "{copy}/"; exit $rc')
    p = subprocess.run(small_tmpfs(store, "24m", script), cwd=workdir, env=clean_env(),
                       timeout=300)
    assert p.returncode == 0
    assert (workdir / "out.txt").read_bytes() == loop_lines(n)
    err = (workdir / "err.txt").read_bytes()
    assert b"writes were dropped" in err or b"could not be written" in err, err
    run_dir = (copy / "latest-run").resolve()
    run_dir = next(copy.glob("runs/*/*"))
    run = json.loads((run_dir / "run.json").read_text())
    assert run["state"] == "finished" and run["exit_code"] == 0
    counts = run["metadata"]["capture_counts"]
    assert counts["dropped_records"] + counts["lines_lost_write"] > 0
    assert set(counts["dropped_reasons"]) <= {"disk full", "journal full", "capture ring full"}
    events = read_jsonl(run_dir / "events.jsonl")
    assert events[-1]["event"] == "finish" and events[-1]["state"] == "finished"
    for i, line in enumerate((run_dir / "history.jsonl").read_text().splitlines()):
        try:
            json.loads(line)  # whole rows only
        except ValueError:
            raise AssertionError(f"history line {i}: {line[:200]!r}")
    printed = set(loop_lines(n).splitlines())
    log = (run_dir / "output.log").read_bytes().splitlines()
    assert log and all(l in printed or l.startswith(b"elapsed_s=") for l in log)


def test_a_forced_ring_drop_is_counted_and_shown(workdir):
    # A 64 KiB ring and a stopped agent: the ring must drop.  `run` says so
    # in one line, `show` in its header, `ls` with a mark and in --json.
    # This run's own agent: started by our launcher, the shell's parent.
    script = ('a=$(pgrep -n -f -- "metrictap-agent .*--launcher-pid $PPID "); kill -STOP $a; '
              f'"{LOOP}" 100000; kill -CONT $a')
    p = subprocess.run([str(CLI), "run", "--", "sh", "-c", script], cwd=workdir,
                       env=clean_env({"METRICTAP_CAPTURE_RING_SIZE": "64k"}),
                       capture_output=True, timeout=120)
    assert p.returncode == 0
    lines = [l for l in p.stderr.splitlines() if l.startswith(b"metrictap:")
             and not l.startswith(b"metrictap: saving the run")]  # the backlog's progress
    assert len(lines) == 1 and b"writes were dropped (capture ring full" in lines[0]
    run_dir = latest_run(workdir / "metrictap")
    run = json.loads((run_dir / "run.json").read_text())
    counts = run["metadata"]["capture_counts"]
    assert counts["dropped_records"] > 0
    assert counts["dropped_reasons"]["capture ring full"] == counts["dropped_records"]
    show = subprocess.run([str(CLI), "show", run["id"]], cwd=workdir, env=clean_env(),
                          capture_output=True, text=True, check=True).stdout
    assert "writes were dropped" in show.split("config:")[0]
    ls = subprocess.run([str(CLI), "ls"], cwd=workdir, env=clean_env(), capture_output=True,
                        text=True, check=True).stdout
    assert "finished!" in ls
    js = json.loads(subprocess.run([str(CLI), "ls", "--json"], cwd=workdir, env=clean_env(),
                                   capture_output=True, text=True, check=True).stdout)
    assert js[0]["dropped"] == counts["dropped_records"]


CHILD = r'''
import os, sys, time
if os.fork() == 0:
    for i in range(10):
        print(f"tick {i}", flush=True)
        time.sleep(0.5)
    os._exit(0)
print("parent done", flush=True)
'''


def test_children_that_outlive_the_root_are_captured(workdir):
    # A forked child prints for 5 s after its parent exits; before, the
    # agent stopped 3 s after the root and kept 6 of 10 ticks, uncounted.
    p = subprocess.run([str(CLI), "run", "--", "python3", "-c", CHILD], cwd=workdir,
                       env=clean_env(), capture_output=True, timeout=60)
    assert p.returncode == 0
    run_dir = (workdir / "metrictap" / "latest-run").resolve()
    wait_finished(run_dir, timeout=30)
    output = (run_dir / "output.log").read_bytes()
    assert all(f"tick {i}\n".encode() in output for i in range(10)), output


def test_children_past_capture_linger_are_counted(workdir):
    p = subprocess.run([str(CLI), "run", "--", "sh", "-c", "sleep 4 & echo started"],
                       cwd=workdir, env=clean_env({"METRICTAP_CAPTURE_LINGER": "1s"}),
                       capture_output=True, timeout=60)
    assert p.returncode == 0
    run_dir = (workdir / "metrictap" / "latest-run").resolve()
    wait_finished(run_dir, timeout=30)
    events = read_jsonl(run_dir / "events.jsonl")
    outlived = [e for e in events if e["event"] == "outlived"]
    assert outlived and outlived[0]["processes"] == 1
    run = json.loads((run_dir / "run.json").read_text())
    assert run["metadata"]["capture_counts"]["processes_outlived"] == 1


def test_a_daemon_under_bare_preload_ends_finished(workdir, tmp_path):
    # daemon(): the parent _exits inside libc, leaving no exit record; the
    # daemon child is the run's last process and its exit tells the state.
    exe = compile_c(tmp_path, "daemonize", r'''
        #include <stdio.h>
        #include <stdlib.h>
        #include <unistd.h>
        int main(void) { printf("before\n"); fflush(stdout);
                         if (daemon(1, 1) != 0) return 9;
                         usleep(300000); printf("in the daemon loss: 0.5\n"); return 0; }''')
    p = subprocess.run([str(exe)], cwd=workdir, env=clean_env({"LD_PRELOAD": str(SHIM)}),
                       capture_output=True, timeout=30)
    assert p.returncode == 0
    run_dir = latest_run(workdir / "metrictap")
    run = read_run(run_dir)
    assert run["run"]["state"] == "finished"
    assert run["summary"]["loss"] == 0.5


def test_keep_journal_keeps_it(workdir):
    p = subprocess.run([str(CLI), "run", "--", "echo", "loss: 1"], cwd=workdir,
                       env=clean_env({"METRICTAP_CAPTURE_KEEP_JOURNAL": "true"}),
                       capture_output=True)
    assert p.returncode == 0
    run_dir = latest_run(workdir / "metrictap")
    assert list((run_dir / "journal").glob("*.seg"))
    # Recovery of a complete run with a kept journal changes nothing.
    before = (run_dir / "output.log").read_bytes()
    subprocess.run([str(CLI), "recover", "--all"], cwd=workdir, env=clean_env(), check=True)
    assert (run_dir / "output.log").read_bytes() == before
