"""Capture everything a program prints, without changing it (issue 3, items
1-5, 8 and 10-13): victims in C, C++, Fortran and Python, process trees,
progress bars, exit paths, secure execution, a dead agent and garbage.  Each
runs unwrapped and wrapped; what reaches the terminal (stdout and stderr
separately), the exit status and what the agent recorded are compared."""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from conftest import (CLI, SHIM, clean_env, latest_run, read_jsonl, read_run, run_dirs,
                      run_preloaded, run_wrapped,
                      wait_finished)
from victims import run_pty

HERE = Path(__file__).resolve().parent
VICTIMS = HERE / "victims"


@pytest.fixture(scope="session")
def bin_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("victims")


_built = {}


def build(bin_dir, src, name, compiler, *flags):
    key = (name, flags)
    if key not in _built:
        exe = bin_dir / name
        subprocess.run([compiler, *flags, "-o", str(exe), str(VICTIMS / src)], check=True,
                       capture_output=True)
        _built[key] = exe
    return _built[key]


def c_victim(bin_dir, src, opt):
    flags = ("-O0",) if opt == "O0" else ("-O2", "-D_FORTIFY_SOURCE=2")
    name = Path(src).stem + "-" + opt
    return build(bin_dir, src, name, "cc", "-w", *flags, "-lpthread")


def agent_of(launcher, store, timeout=30):
    """The pid of the agent that `metrictap run` (pid `launcher`) started,
    once it is set up: its run directory exists by then, and the first half
    of its double fork, which carries the same command line, is gone."""
    deadline = time.monotonic() + timeout
    while not (Path(store) / "latest-run").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    while time.monotonic() < deadline:
        found = subprocess.run(["pgrep", "-f", "metrictap-agent --status-fd 3 --launcher-pid "
                                f"{launcher} "], capture_output=True, text=True).stdout.split()
        if len(found) == 1:
            return int(found[0])
        time.sleep(0.01)
    raise AssertionError(f"no single agent of {launcher}: {found}")


def run_as(mode, argv, cwd, env=None, wrap="run"):
    """Runs argv unwrapped (wrap=None), under `metrictap run` or bare preload,
    with stdout on a pipe, a file or a pty.  Returns (rc, stdout, stderr)."""
    env = clean_env(env)
    if wrap == "run":
        argv = [str(CLI), "run", "--", *map(str, argv)]
    elif wrap == "preload":
        env["LD_PRELOAD"] = str(SHIM)
    argv = list(map(str, argv))
    if mode == "pipe":
        p = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, timeout=120,
                           stdin=subprocess.DEVNULL)
        return p.returncode, p.stdout, p.stderr
    if mode == "file":
        out_path = Path(cwd) / f"stdout-{wrap}.txt"
        with open(out_path, "wb") as out:
            p = subprocess.run(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.PIPE,
                               timeout=120, stdin=subprocess.DEVNULL)
        return p.returncode, out_path.read_bytes(), p.stderr
    if mode == "pty":
        rc, out, err = run_pty(argv, env, cwd=cwd, stderr_pipe=True, timeout=120)
        return rc, out, err
    raise ValueError(mode)


def told_drops(got, want):
    """got is want plus the one line `metrictap run` prints at the end when
    output was dropped or cut (issue 16), or nothing more."""
    if got == want:
        return True
    extra = got[len(want):] if got.startswith(want) else b""
    # On a busy machine the save may also take over a second: one progress
    # line before it ("saving the run: ...").
    lines = extra.split(b"\n")
    if len(lines) == 3 and lines[0].startswith(b"metrictap: saving the run: "):
        extra = lines[1] + b"\n"
    return (extra.startswith(b"metrictap: ") and extra.count(b"\n") == 1
            and b'see README "Caps"' in extra)


def compare(mode, argv, cwd, env=None, wrap="run"):
    """Runs both ways, asserts identical terminal bytes and status, and returns
    (unwrapped result, the run's record)."""
    want = run_as(mode, argv, cwd, env, wrap=None)
    got = run_as(mode, argv, cwd, env, wrap=wrap)
    assert got[0] == want[0], f"exit status {got[0]} != {want[0]}"
    assert got[1] == want[1], "stdout differs"
    assert told_drops(got[2], want[2]), "stderr differs"
    run = read_run(latest_run(Path(cwd) / "metrictap"))
    return want, run


def recorded(run, stream):
    return run["run"]["metadata"]["capture_counts"][f"{stream}_bytes"]


def program_bytes(mode, data):
    """Bytes the program wrote: a pty adds \\r before each \\n."""
    return data.replace(b"\r\n", b"\n") if mode == "pty" else data


ENDINGS = {  # how the entry-points victim ends: (exit status, state)
    "return": (0, "finished"), "exit": (4, "failed"), "_exit": (5, "failed"),
    "error": (6, "failed"), "err": (7, "failed"), "errx": (8, "failed"),
    "assert": (-6, "crashed"), "abort": (-6, "crashed"),
}


@pytest.mark.parametrize("opt", ["O0", "O2"])
@pytest.mark.parametrize("mode", ["pipe", "file", "pty"])
@pytest.mark.parametrize("ending", list(ENDINGS))
def test_c_entry_points(bin_dir, workdir, opt, mode, ending):
    exe = c_victim(bin_dir, "c_entry_points.c", opt)
    want, run = compare(mode, [exe, ending], workdir)
    code, state = ENDINGS[ending]
    assert want[0] == code
    assert run["run"]["state"] == state
    out, err = program_bytes(mode, want[1]), want[2]
    lost = b""
    if ending == "_exit" and mode != "pty":  # block-buffered: _exit drops the buffer
        lost = b"lost in the buffer after _exit\n"
    assert recorded(run, "stdout") == len(out) + len(lost)
    assert recorded(run, "stderr") == len(err)
    log = run["output"]
    for line in (out + lost).split(b"\n") + err.split(b"\n"):
        assert line in log
    assert b"abcdefghijklmnopqrstuvwxyz" * 10 in log  # inline putchar_unlocked bytes


@pytest.mark.parametrize("sync", ["sync", "nosync"])
@pytest.mark.parametrize("ending", ["return", "throw"])
def test_cpp_streams(bin_dir, workdir, sync, ending):
    if not shutil.which("g++"):
        pytest.skip("g++ is not installed")
    exe = build(bin_dir, "cpp_streams.cpp", "cpp_streams", "g++", "-O2")
    want, run = compare("pipe", [exe, sync, ending], workdir)
    assert recorded(run, "stdout") == len(want[1])
    assert recorded(run, "stderr") == len(want[2])
    if ending == "throw":
        assert want[0] == -signal.SIGABRT and run["run"]["state"] == "crashed"
        assert b"diverged: loss is nan" in want[2] and b"diverged: loss is nan" in run["output"]
    rows = [r for r in run["history"] if "loss" in r]
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert run["summary"]["val_acc"] == 0.8


@pytest.mark.parametrize("ending", ["ok", "crash"])
def test_fortran(bin_dir, workdir, ending):
    if not shutil.which("gfortran"):
        pytest.skip("gfortran is not installed")
    exe = build(bin_dir, "fortran_io.f90", "fortran_io", "gfortran", "-O1", "-fno-backtrace")
    want, run = compare("pipe", [exe, ending], workdir)
    assert recorded(run, "stdout") == len(want[1])
    assert recorded(run, "stderr") == len(want[2])
    if ending == "crash":
        assert want[0] != 0 and run["run"]["state"] == "failed"
        assert b"Bad real number" in want[2] and b"Bad real number" in run["output"]
    assert run["summary"]["acc"] == 0.8


@pytest.mark.parametrize("unbuffered", [False, True])
def test_python(workdir, unbuffered):
    argv = [sys.executable] + (["-u"] if unbuffered else []) + [str(VICTIMS / "py_output.py")]
    want, run = compare("pipe", argv, workdir)
    assert recorded(run, "stdout") == len(want[1])
    assert recorded(run, "stderr") == len(want[2])
    assert b"INFO val_loss=0.667" in run["output"]
    assert run["summary"]["val_loss"] == 0.667 and run["summary"]["loss"] == 0.3333


def test_shell_script_with_pipeline(bin_dir, workdir):
    c = c_victim(bin_dir, "c_entry_points.c", "O2")
    tree = c_victim(bin_dir, "tree.c", "O2")
    script = (f"{c} return; {tree} spawn | tr a-z A-Z; echo 'shell loss: 0.5'; "
              f"{sys.executable} -u {VICTIMS / 'py_output.py'}")
    want, run = compare("pipe", ["sh", "-c", script], workdir)
    assert len(run_dirs(workdir / "metrictap")) == 1
    procs = run["run"]["metadata"]["capture_counts"]["processes"]
    exes = {os.path.basename(p["exe"]) for p in procs}
    assert {"c_entry_points-O2", "tree-O2", "echo", "tr"} <= exes
    assert b"SPAWNED CHILD LOSS: 0.125" in run["output"]  # tr's output, captured
    assert run["summary"]["val_loss"] == 0.667


def test_fork_workers_and_posix_spawn(bin_dir, workdir):
    exe = c_victim(bin_dir, "tree.c", "O2")
    want, run = compare("pipe", [exe, "fork"], workdir)
    procs = run["run"]["metadata"]["capture_counts"]["processes"]
    assert len({p["pid"] for p in procs}) == 4  # the parent and 3 forked workers
    for w in range(3):
        assert b"worker %d step 4" % w in run["output"]
    want, run = compare("pipe", [exe, "spawn"], workdir)
    assert b"spawned child loss: 0.125" in run["output"]
    assert run["summary"]["loss"] == 0.125


@pytest.mark.parametrize("how", ["spawn", "fork"])
def test_process_turns_keep_their_order(bin_dir, workdir, how):
    # Each process writes its own ring; the agent merges them by timestamp.
    # A program alone stamps with the coarse clock (cheap), and must switch
    # to the fine one once a child exists, or these turns (well inside one
    # 4 ms tick) come out of order in output.log.  The agent is held stopped
    # while they happen, so only the stamps can order the rings.
    exe = c_victim(bin_dir, "turns.c", "O2")
    want = subprocess.run([str(exe), how, "60"], capture_output=True, timeout=60).stdout
    assert want.count(b"\n") == 180
    gate = workdir / "gate"
    env = clean_env()
    p = subprocess.Popen([str(CLI), "run", "--", str(exe), how, "60", str(gate)], cwd=workdir,
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    agent = None
    try:
        deadline = time.time() + 30
        agent = agent_of(p.pid, workdir / "metrictap")
        os.kill(agent, signal.SIGSTOP)
        gate.touch()
        done = Path(str(gate) + ".done")
        while not done.exists() and time.time() < deadline:
            time.sleep(0.01)
        assert done.exists()
    finally:
        if agent:
            os.kill(agent, signal.SIGCONT)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    assert out == want
    run = read_run(latest_run(workdir / "metrictap"))
    assert run["output"] == want


# Each process prints the size of its own ring file: the header page plus
# the ring.  The shell and the shell it starts have a ring each.
RING_SIZES = ('stat -c %s /dev/shm/metrictap-*/ring.$$.*; '
              'sh -c \'stat -c %s /dev/shm/metrictap-*/ring.$$.*\'')


@pytest.mark.parametrize("source,preload", [
    ("default", False), ("file", False), ("METRICTAP_CAPTURE_RING_SIZE", False),
    ("METRICTAP_RING_SIZE", False), ("METRICTAP_RING_SIZE", True)])
def test_ring_size_from_the_config_reaches_every_process(workdir, source, preload):
    # capture.ring_size is read once, by the agent, and handed to the shim
    # through the run's channel: before, only METRICTAP_RING_SIZE reached
    # the shim, and "1G" read as 1 byte (a 64 KiB ring).
    env, want = {}, 4096 + (16 << 20)
    if source == "file":
        (workdir / "metrictap.yaml").write_text("capture:\n  ring_size: 100k\n")
        want = 4096 + (128 << 10)  # rounded up to a power of two
    elif source != "default":
        env[source] = "1G" if preload else "256k"
        want = 4096 + ((1 << 30) if preload else (256 << 10))
    run = run_preloaded if preload else run_wrapped
    rc, out, err = run(["sh", "-c", RING_SIZES], workdir, env)
    assert rc == 0, err
    assert out.decode().split() == [str(want)] * 2
    if preload:
        latest_run(workdir / "metrictap")  # let the agent finish before the store goes


def test_bad_ring_size_is_one_line_and_the_program_runs(workdir):
    rc, out, err = run_wrapped(["sh", "-c", "echo hello"], workdir,
                               {"METRICTAP_RING_SIZE": "lots"})
    assert rc == 0 and out == b"hello\n"
    assert err.count(b"\n") == 1
    assert b"METRICTAP_RING_SIZE" in err and b"capture.ring_size" in err


def small_shm_argv(argv, size):
    """argv in a private mount namespace whose /dev/shm is a tmpfs of `size`."""
    if shutil.which("unshare") is None:
        pytest.skip("unshare is not available")
    if subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode != 0:
        pytest.skip("cannot make a mount namespace here")
    script = f'mount -t tmpfs -o size={size} tmpfs /dev/shm && exec "$@"'
    return ["unshare", "-m", "sh", "-c", script, "sh", *map(str, argv)]


@pytest.mark.parametrize("size", ["3m", "1m"])
def test_full_dev_shm_fails_open(workdir, size):
    # Rings are sparse files on /dev/shm (docker gives containers 64 MiB of
    # it).  With 3 MiB the ring gets its first two chunks and then no more
    # memory; with 1 MiB not even the first.  Either way the program runs to
    # its end with its output unchanged (a store into an unbacked page would
    # be a SIGBUS), and the run records what it could not capture, and why.
    prog = [sys.executable, "-c",
            "for i in range(300000): print(f'step {i} loss={1 / (i + 1):.6f}')"]
    env = clean_env()
    want = subprocess.run(small_shm_argv(prog, size), cwd=workdir, env=env,
                          capture_output=True, timeout=120)
    got = subprocess.run(small_shm_argv([CLI, "run", "--", *prog], size), cwd=workdir, env=env,
                         capture_output=True, timeout=120)
    assert want.returncode == 0 and got.returncode == 0
    assert got.stdout == want.stdout and len(want.stdout) > 7_000_000
    run_dir = latest_run(workdir / "metrictap")
    events = read_jsonl(run_dir / "events.jsonl")
    if size == "3m":
        assert told_drops(got.stderr, want.stderr)
        drops = [e for e in events if e["event"] == "dropped"]
        assert drops and all("/dev/shm is full" in e["reason"] for e in drops)
        captured = read_run(run_dir)["run"]["metadata"]["capture_counts"]["stdout_bytes"]
        assert 0 < captured < len(want.stdout)
        assert captured + sum(e["bytes"] for e in drops) == len(want.stdout)
    else:
        extra = got.stderr.replace(want.stderr, b"", 1)
        assert extra.count(b"\n") == 1 and extra.startswith(b"metrictap: cannot create a capture ring")
        untracked = [e for e in events if e["event"] == "untracked"]
        assert untracked and untracked[0]["processes"] == 1


def test_eight_threads(bin_dir, workdir):
    exe = c_victim(bin_dir, "tree.c", "O2")
    # Threads race, so two runs interleave differently: compare the lines as
    # a multiset, and each thread's own order.
    want = run_as("pipe", [exe, "threads"], workdir, wrap=None)
    got = run_as("pipe", [exe, "threads"], workdir)
    assert got[0] == want[0] == 0 and got[2] == want[2]
    assert sorted(got[1].split(b"\n")) == sorted(want[1].split(b"\n"))
    run = read_run(latest_run(workdir / "metrictap"))
    lines = run["output"].decode().splitlines()
    seen = {t: [] for t in range(8)}
    for line in lines:
        if line.startswith("thread "):
            parts = line.split()
            assert len(parts) == 5 and parts[2] == "line", f"torn line {line!r}"
            seen[int(parts[1])].append(int(parts[3]))
    for t in range(8):
        assert seen[t] == list(range(2000)), f"thread {t} lost or reordered lines"
    procs = run["run"]["metadata"]["capture_counts"]["processes"]
    assert len(procs) == 1 and len(procs[0]["tids"]) >= 8
    assert recorded(run, "stdout") == len(want[1])


def test_progress_bar_updates(bin_dir, workdir):
    exe = c_victim(bin_dir, "ends.c", "O2")
    want, run = compare("pipe", [exe, "progress"], workdir)
    assert run["output"].count(b"progress: 10000\n") == 1
    assert b"progress: 9999" not in run["output"]  # overwritten, as on a terminal
    values = [r["progress"] for r in run["history"] if "progress" in r]
    assert values == list(range(1, 10001))  # every update was parsed


@pytest.mark.parametrize("how,code,state", [
    ("return", 0, "finished"), ("exit", 2, "failed"), ("_exit", 3, "failed"),
    ("sigterm", -signal.SIGTERM, "killed"), ("sigkill", -signal.SIGKILL, "killed"),
])
def test_exit_paths(bin_dir, workdir, how, code, state):
    exe = c_victim(bin_dir, "ends.c", "O2")
    want, run = compare("file", [exe, how], workdir)
    assert want[0] == code
    assert run["run"]["state"] == state
    if how == "_exit":
        # printf'ed into a file-backed stdout right before _exit: never
        # written, but the run has it.
        assert b"buffered when _exit came" not in want[1]
        assert b"before the end\nbuffered when _exit came\n" in run["output"]


def test_setuid_program_is_left_alone(bin_dir):
    """Secure execution: run by an unprivileged user, a setuid-root copy of a
    victim gets no tracking at all (ld.so ignores the preload, and the shim
    checks AT_SECURE itself as well)."""
    if os.getuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root and setpriv")
    src = c_victim(bin_dir, "ends.c", "O2")
    d = Path(tempfile.mkdtemp(prefix="metrictap-suid-", dir="/tmp"))
    try:
        os.chmod(d, 0o777)
        exe = d / "victim"
        shutil.copy(src, exe)
        os.chown(exe, 0, 0)
        os.chmod(exe, 0o4755)
        as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "env"]
        env = clean_env({"METRICTAP_DIR": str(d / "store")})
        want = subprocess.run([*as_nobody, str(exe)], env=env, capture_output=True, cwd=d)
        got = subprocess.run([*as_nobody, f"LD_PRELOAD={SHIM}", str(exe)], env=env,
                             capture_output=True, cwd=d)
        assert want.returncode == 0 and b"started loss: 1.5" in want.stdout
        assert (got.returncode, got.stdout, got.stderr) == (want.returncode, want.stdout,
                                                            want.stderr)
        assert not (d / "store").exists()
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_agent_killed_mid_run(bin_dir, workdir):
    exe = c_victim(bin_dir, "ends.c", "O2")
    want = run_as("pipe", [exe, "slow"], workdir, wrap=None)
    env = clean_env()
    p = subprocess.Popen([str(CLI), "run", "--", str(exe), "slow"], cwd=workdir, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    store = workdir / "metrictap"
    agent = agent_of(p.pid, store, timeout=10)
    time.sleep(1.0)
    os.kill(agent, signal.SIGKILL)
    out, err = p.communicate(timeout=20)
    assert (p.returncode, out, err) == want
    run_dir = latest_run(store, wait=False)
    log = (run_dir / "output.log").read_bytes()
    assert log.startswith(b"started loss: 1.5\ntick 0\n")  # what was captured until then
    assert len(log) < len(want[1])
    run_id = json.loads((run_dir / "run.json").read_text())["id"]
    assert not list(Path("/dev/shm").glob(f"metrictap-{run_id}-*"))  # the launcher cleared it


def test_agent_leaves_the_terminal_group_but_shares_the_session(bin_dir, workdir):
    # The agent sits in a process group of its own (a terminal's ^C and ^Z
    # go to the program's group, not to it) but stays in the program's
    # session: under autogroup, a session of its own would compete for the
    # CPU as the program's equal whatever its nice (bench/capture_inproc:
    # 1.23-1.30x against 1.15-1.19x on the 2-core VM).  It stays on the
    # terminal, so job-control signals from it are ignored.
    exe = c_victim(bin_dir, "ends.c", "O2")
    want = run_as("pipe", [exe, "slow"], workdir, wrap=None)
    p = subprocess.Popen([str(CLI), "run", "--", str(exe), "slow"], cwd=workdir,
                         env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         start_new_session=True)
    agent = agent_of(p.pid, workdir / "metrictap", timeout=10)
    stat = Path(f"/proc/{agent}/stat").read_text()
    status = Path(f"/proc/{agent}/status").read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    pgrp, session, nice = int(fields[2]), int(fields[3]), int(fields[16])
    assert pgrp == agent
    assert session == os.getsid(p.pid) == p.pid
    # The drain keeps the program's nice (at 10 it starved on a busy machine
    # and the ring dropped); the parse stage, the agent's real work, is 19.
    assert nice == 0
    def nices():
        out = []
        for task in Path(f"/proc/{agent}/task").iterdir():
            t = (task / "stat").read_text()
            out.append(int(t[t.rindex(")") + 2:].split()[16]))
        return out
    deadline = time.monotonic() + 10
    while 19 not in nices():  # the parse stage sets its own once started
        assert time.monotonic() < deadline, nices()
        time.sleep(0.01)
    ignored = int(next(l.split()[1] for l in status.splitlines() if l.startswith("SigIgn:")), 16)
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU):
        assert ignored & (1 << (sig - 1)), sig
    out, err = p.communicate(timeout=30)
    assert (p.returncode, out, err) == want
    run = read_run(latest_run(workdir / "metrictap"))
    assert run["output"] == want[1]


def test_garbage_long_lines_and_caps(bin_dir, workdir):
    exe = c_victim(bin_dir, "ends.c", "O2")
    want, run = compare("pipe", [exe, "garbage"], workdir)
    finish = run["events"][-1]
    assert finish["lines_truncated"] >= 1  # the 10 MB line, cut for matching and the log
    assert finish["stdout_bytes"] + finish["dropped_bytes"] == len(want[1])
    assert finish["agent_max_rss_kb"] < 64 * 1024  # the agent's documented memory cap
    assert run["summary"]["acc"] == 0.5
    assert b"after the long line acc: 0.5\n" in run["output"]


def test_a_gigabyte_of_output(bin_dir, workdir):
    exe = c_victim(bin_dir, "ends.c", "O2")
    argv = [str(CLI), "run", "--", str(exe), "flood", "1024"]
    with open(os.devnull, "wb") as null:
        p = subprocess.run(argv, cwd=workdir, env=clean_env(), stdout=null,
                           stderr=subprocess.PIPE, timeout=300)
    assert p.returncode == 0 and told_drops(p.stderr, b"")
    run = read_run(latest_run(workdir / "metrictap"))
    finish = run["events"][-1]
    printed = 1024 * 1024 * 1024 + len(b"started loss: 1.5\nbefore the end\n")
    assert finish["stdout_bytes"] + finish["dropped_bytes"] == printed
    drops = [e for e in run["events"] if e["event"] == "dropped"]
    assert sum(e["bytes"] for e in drops) == finish["dropped_bytes"]
    assert finish["agent_max_rss_kb"] < 64 * 1024
