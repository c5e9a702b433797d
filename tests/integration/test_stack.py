"""Issue 19: native stacks of a live run (`metrictap stack`, agent/stack.c)
and the stall watchdog.  Victims in tests/integration/victims/stack_*: two
threads deadlocked on two mutexes, a read() on a pipe, a Fortran loop, an
8-process tree, a static binary, a fast printer.  The dump names the victims'
own functions, and the program's output and exit status are those of an
unwrapped run; it carries on normally after the dump."""
import json
import os
import re
import select
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from conftest import CLI, SHIM, clean_env, read_jsonl
import victims as vict

VICTIMS = Path(__file__).resolve().parent / "victims"
NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
WAIT = 60.0  # generous: the machine may be busy; nothing here measures speed


@pytest.fixture(scope="module")
def bins(tmp_path_factory):
    # World-readable, so a victim running as nobody can execute them.
    d = Path(tempfile.mkdtemp(prefix="mt-stack-victims-"))
    d.chmod(0o755)

    def cc(name, src, *flags):
        subprocess.run(["cc", "-g", "-O2", "-Wall", "-o", str(d / name), str(VICTIMS / src),
                        *flags], check=True)
    cc("deadlock", "stack_deadlock.c", "-lpthread")
    cc("deadlock-static", "stack_deadlock.c", "-static", "-lpthread")
    cc("pipe", "stack_pipe.c")
    cc("tree", "stack_tree.c")
    cc("printer", "stack_printer.c")
    cc("sleeper", "stack_sleeper.c")
    cc("signals", "stack_signals.c")
    cc("vfork", "stack_vfork.c")
    subprocess.run(["gfortran", "-g", "-O2", "-o", str(d / "loop"),
                    str(VICTIMS / "stack_loop.f90")], check=True)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def wait_for(cond, what, timeout=WAIT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class Victim:
    """A victim started under `metrictap run` ("run"), bare LD_PRELOAD
    ("preload") or nothing ("plain"), stdin a pipe from the test."""

    def __init__(self, argv, cwd, mode="run", env=None, stdout=subprocess.PIPE, prefix=()):
        self.store = Path(cwd) / "metrictap"
        e = clean_env(dict(env or {}, METRICTAP_DIR=str(self.store)))
        argv = list(map(str, argv))
        if mode == "run":
            argv = [str(CLI), "run", "--", *argv]
        elif mode == "preload":
            e["LD_PRELOAD"] = str(SHIM)
        self.p = subprocess.Popen([*prefix, *argv], cwd=cwd, env=e, stdin=subprocess.PIPE,
                                  stdout=stdout, stderr=subprocess.PIPE)
        self.head = b""

    def read_line(self):
        line = self.p.stdout.readline()
        self.head += line
        return line

    def run_dir(self):
        link = self.store / "latest-run"
        return wait_for(lambda: link.exists() and link.resolve(), "the run to appear")

    def run_id(self):
        return self.run_dir().name

    def finish(self, data=b"go\n"):
        out, err = self.p.communicate(data, timeout=WAIT)
        return self.p.returncode, self.head + (out or b""), err

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()


@pytest.fixture
def victims():
    started = []
    yield lambda *a, **k: started.append(Victim(*a, **k)) or started[-1]
    for v in started:
        v.kill()


def stack(store, target, *args, prefix=()):
    env = clean_env({"METRICTAP_DIR": str(store)})
    return subprocess.run([*prefix, str(CLI), "stack", *args, *target], env=env,
                          capture_output=True, timeout=WAIT)


def dump_json(store, run_id):
    r = stack(store, [run_id], "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def threads_of(dump):
    """[(pid, thread name, [function names innermost first])], GCC's clone
    suffixes (.constprop.0, .isra.0) cut off."""
    out = []
    for p in dump["processes"]:
        for t in p["threads"]:
            out.append((p["pid"], t["name"],
                        [(f["function"] or "").split(".")[0] for f in t["frames"]]))
    return out


def dump_until(store, run_id, cond, what):
    """Dumps until `cond(dump)` holds (the victim may still be on its way
    to where it blocks); returns that dump."""
    last = {}

    def once():
        last["d"] = dump_json(store, run_id)
        return cond(last["d"])
    try:
        wait_for(once, what)
    except AssertionError:
        raise AssertionError(f"{what}; last dump: {json.dumps(last.get('d'))[:3000]}")
    return last["d"]


def unwrapped(argv, cwd, data=b"go\n"):
    p = subprocess.run(list(map(str, argv)), cwd=cwd, env=clean_env(), input=data,
                       capture_output=True, timeout=WAIT)
    return p.returncode, p.stdout, p.stderr


def deadlocked(dump):
    fns = {name: f for _, name, f in threads_of(dump)}
    return ("victim_take_b_after_a" in fns.get("loader-ab", []) and
            "victim_take_a_after_b" in fns.get("loader-ba", []) and
            any("victim_main_waits" in f for _, _, f in threads_of(dump)))


@pytest.mark.parametrize("mode,exe", [("run", "deadlock"), ("preload", "deadlock"),
                                      ("run", "deadlock-static")])
def test_deadlocked_threads_are_named_and_the_program_carries_on(bins, workdir, victims,
                                                                 mode, exe):
    expected = unwrapped([bins / exe], workdir)
    assert expected[:2] == (3, b"deadlocked\nafter 3\n")
    v = victims([bins / exe], workdir, mode)
    assert v.read_line() == b"deadlocked\n"
    run_id = v.run_id()
    dump = dump_until(v.store, run_id, deadlocked, "both threads blocked in their lock")
    assert dump["refused"] == 0 and dump["held"] == dump["threads"] == 3
    for p in dump["processes"]:
        assert p["exe"] == str(bins / exe)
        for t in p["threads"]:
            assert t["held_us"] > 0 and t["state"] in "SR"
            # walked to the bottom: _start, or clone for a thread (libc's local
            # symbols are stripped in Debian's libc.so.6, not in libc.a)
            last = t["frames"][-1]["function"]
            assert last is None or last.lstrip("_") in ("start", "clone3", "clone"), t
    if shutil.which("addr2line"):  # file:line from the victim's debug info (-g)
        frame = next(f for p in dump["processes"] for t in p["threads"] for f in t["frames"]
                     if f["function"] == "victim_take_b_after_a")
        assert frame["file"].endswith("stack_deadlock.c") and frame["line"] > 0, frame
    text = stack(v.store, [run_id])
    assert text.returncode == 0, text.stderr
    out = text.stdout.decode()
    if shutil.which("addr2line"):
        assert "victim_take_b_after_a+0x28 at stack_deadlock.c:" in out or \
            " at stack_deadlock.c:" in out, out
    for needle in ("thread", '"loader-ab"', '"loader-ba"', "victim_take_b_after_a+0x",
                   "victim_take_a_after_b+0x", "victim_main_waits+0x", "pthread_mutex_lock",
                   "3 threads held"):
        assert needle in out, out
    # What the program did is what it does without metrictap: the read()
    # the dump interrupted came back with the line, not EINTR.
    rc, stdout, stderr = v.finish()
    assert (rc, stdout) == expected[:2]
    if exe == "deadlock":
        assert stderr == expected[2]


def test_read_on_a_pipe_restarts_with_its_data(bins, workdir, victims):
    expected = unwrapped([bins / "pipe"], workdir)
    assert expected[0] == 10 and b"read 7: payload\n" in expected[1]
    v = victims([bins / "pipe"], workdir, "run")
    wait_for(lambda: v.read_line() == b"before 99\n", "the first lines")
    run_id = v.run_id()
    dump = dump_until(v.store, run_id,
                      lambda d: any("victim_read_pipe" in f for _, _, f in threads_of(d)) and
                      len(d["processes"]) == 2, "the read() on the pipe and the writer child")
    for _ in range(3):  # several holds of the same read()
        dump_json(v.store, run_id)
    assert v.finish() == expected


def test_eight_processes_under_bare_preload(bins, workdir, victims):
    v = victims([bins / "tree"], workdir, "preload")
    assert v.read_line() == b"tree of 8\n"
    run_id = v.run_id()

    def all_eight(d):
        fns = [f for _, _, f in threads_of(d)]
        return (len(d["processes"]) == 8 and
                sum("victim_child_waits" in f for f in fns) == 7 and
                sum("victim_parent_waits" in f for f in fns) == 1)
    dump = dump_until(v.store, run_id, all_eight, "eight processes in their reads")
    assert len({p["pid"] for p in dump["processes"]}) == 8
    assert v.finish() == (0, b"tree of 8\ndone 21\n", b"")


def test_fortran_loop_is_named(bins, workdir, victims):
    v = victims([bins / "loop"], workdir, "run")
    assert v.read_line() == b"spinning\n"
    run_id = v.run_id()
    dump = dump_until(v.store, run_id,
                      lambda d: any("victim_spin_" in f for _, _, f in threads_of(d)),
                      "victim_spin_ on the stack")
    assert any("MAIN__" in f for _, _, f in threads_of(dump))
    (workdir / "stop").write_text("")
    assert v.finish(b"") == (0, b"spinning\nspun\n", b"")


GO_SRC = """
package main

import (
	"fmt"
	"os"
)

//go:noinline
func victimGoRead(buf []byte) int {
	n, _ := os.Stdin.Read(buf)
	return n
}

func main() {
	fmt.Println("waiting")
	fmt.Println("read", victimGoRead(make([]byte, 16)))
}
"""


@pytest.mark.skipif(not os.path.exists(vict.GO), reason="no Go toolchain")
def test_go_binary_under_run(workdir, victims, tmp_path):
    exe = vict.build_go(GO_SRC, tmp_path, "govictim")
    v = victims([exe], workdir, "run")
    assert v.read_line() == b"waiting\n"
    def go_read(d):
        return any(f["function"] == "main.victimGoRead"
                   for p in d["processes"] for t in p["threads"] for f in t["frames"])
    dump_until(v.store, v.run_id(), go_read, "main.victimGoRead on a thread's stack")
    rc, out, _ = v.finish()
    assert (rc, out) == (0, b"waiting\nread 3\n")


def test_signals_during_dumps_each_reach_the_handler(bins, workdir, victims):
    """40 SIGUSR1, each answered before the next is sent, while dumps hold
    the thread again and again: none is lost, none doubled."""
    v = victims([bins / "signals"], workdir, "preload")
    assert v.read_line() == b"ready\n"
    run_id = v.run_id()
    stop = threading.Event()
    dumps = []

    def dumper():
        while not stop.is_set():
            dumps.append(stack(v.store, [run_id], "--json").returncode)
    t = threading.Thread(target=dumper)
    t.start()
    try:
        got = b""
        for i in range(40):
            os.kill(v.p.pid, signal.SIGUSR1)
            r, _, _ = select.select([v.p.stdout], [], [], WAIT)
            assert r, f"signal {i} was not handled"
            got += os.read(v.p.stdout.fileno(), 1)
    finally:
        stop.set()
        t.join()
    assert got == b"u" * 40
    assert dumps and set(dumps) == {0}
    rc, out, err = v.finish()
    assert (rc, out[len(b"ready\n"):], err) == (0, b"\nread 3\n", b"")


def test_uninterruptible_thread_is_reported_not_held(bins, workdir, victims):
    """vfork's parent sleeps uninterruptibly (D) until its child exits: it
    would not stop, so it is shown with its kernel wait and not held."""
    v = victims([bins / "vfork"], workdir, "run")
    assert v.read_line() == b"vforking\n"

    def parent_in_d(d):
        states = {t["state"] for p in d["processes"] for t in p["threads"]}
        return len(d["processes"]) == 2 and "D" in states and \
            any("victim_vfork_child" in f for _, _, f in threads_of(d))
    d = dump_until(v.store, v.run_id(), parent_in_d, "the vfork parent in D, its child in read")
    parent = next(t for p in d["processes"] for t in p["threads"] if t["state"] == "D")
    assert "uninterruptible" in parent["error"] and "held_us" not in parent
    assert d["refused"] == 0 and d["held"] == 1
    text = stack(v.store, [v.run_id()])
    assert text.returncode == 0 and b"not held" in text.stdout
    assert v.finish() == (0, b"vforking\nchild 5\n", b"")


def test_a_dump_during_heavy_printing_loses_nothing(bins, workdir, victims):
    out_path = workdir / "printed.txt"
    with open(out_path, "wb") as out:
        v = victims([bins / "printer"], workdir, "run", stdout=out)
        run_id = v.run_id()
        wait_for(lambda: out_path.stat().st_size > 100000, "the printer to print")
        seen = 0
        for _ in range(5):
            d = dump_json(v.store, run_id)
            seen += any("victim_print_loop" in f for _, _, f in threads_of(d))
        assert seen >= 1
        rc, _, err = v.finish()
    # `metrictap run` may say it is still saving a backlog (its progress line)
    err = b"".join(l for l in err.splitlines(True) if not l.startswith(b"metrictap: saving"))
    assert (rc, err) == (0, b"")
    lines = out_path.read_bytes().split(b"\n")
    n = int(lines[-2].split()[1])
    assert lines[:n] == [b"line %d" % i for i in range(n)]
    run_dir = v.run_dir()
    wait_for(lambda: '"event":"finish"' in (run_dir / "events.jsonl").read_text(), "the end")
    assert (run_dir / "output.log").read_bytes() == out_path.read_bytes()
    events = read_jsonl(run_dir / "events.jsonl")
    assert not [e for e in events if e["event"] in ("dropped", "stalled")]


def test_watch_shows_what_changed(bins, workdir, victims):
    v = victims([bins / "deadlock"], workdir, "run")
    assert v.read_line() == b"deadlocked\n"
    run_id = v.run_id()
    dump_until(v.store, run_id, deadlocked, "the deadlock")
    r = stack(v.store, [run_id], "--watch", "0.2", "--count", "3")
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode()
    assert out.count("victim_take_b_after_a") == 1, out  # shown once: it never changes
    assert out.count("of 3 threads changed") == 2 and "=== " in out, out
    assert out.count("0 of 3 threads changed") == 2, out
    assert v.finish()[0] == 3


def test_stack_disabled_by_config(bins, workdir, victims):
    v = victims([bins / "sleeper"], workdir, "run", env={"METRICTAP_STACK_ENABLED": "false"})
    assert v.read_line() == b"sleeping\n"
    r = stack(v.store, [v.run_id()])
    assert r.returncode == 1 and r.stdout == b""
    assert r.stderr.decode().count("\n") == 1 and "stack.enabled is false" in r.stderr.decode()
    v.p.stdin.write(b"x\n")
    assert v.finish(b"") == (0, b"sleeping\nwoke\nbye\n", b"")


def test_a_finished_run_says_so(bins, workdir):
    env = clean_env({"METRICTAP_DIR": str(workdir / "metrictap")})
    subprocess.run([str(CLI), "run", "--", "true"], cwd=workdir, env=env, check=True)
    run_id = (workdir / "metrictap" / "latest-run").resolve().name
    r = stack(workdir / "metrictap", [run_id])
    assert r.returncode == 1 and "is not running" in r.stderr.decode()


# ---- Yama's ptrace_scope 1: every process names the agent its tracer ----

def ptracer_calls(trace):
    """{pid: tracer} of each prctl(PR_SET_PTRACER, tracer) in an strace -f log."""
    calls = {}
    for line in Path(trace).read_text().splitlines():
        m = re.match(r"(\d+) +prctl\(PR_SET_PTRACER, (\d+)", line)
        if m:
            calls[int(m.group(1))] = int(m.group(2))
    return calls


def agent_pids(trace):
    """The processes forked by one that executed metrictap-agent (the agent
    double-forks: the child is the agent)."""
    text = Path(trace).read_text()
    spawners = {int(m.group(1)) for m in re.finditer(r"^(\d+) +execve\(\"[^\"]*metrictap-agent\"",
                                                     text, re.M)}
    return {int(m.group(2)) for m in re.finditer(r"^(\d+) +(?:clone|clone3|fork)\(.*= (\d+)$",
                                                 text, re.M) if int(m.group(1)) in spawners}


@pytest.mark.skipif(not shutil.which("strace"), reason="needs strace")
@pytest.mark.parametrize("enabled", ["true", "false"])
def test_each_process_names_the_agent_its_tracer(bins, workdir, enabled):
    """This kernel may have no Yama (then the call fails harmlessly), so the
    calls themselves are checked: the 8 processes of the tree (the root and
    its fork children) each name the same tracer, the agent, when
    stack.enabled; none do when it is off."""
    trace = workdir / "trace.txt"
    env = clean_env({"METRICTAP_DIR": str(workdir / "metrictap"),
                     "METRICTAP_STACK_ENABLED": enabled})
    p = subprocess.run(["strace", "-f", "-qq", "-e", "trace=prctl,execve,clone,clone3,fork",
                        "-o", str(trace), str(CLI),
                        "run", "--", str(bins / "tree")], cwd=workdir, env=env, input=b"go\n",
                       capture_output=True, timeout=WAIT)
    assert (p.returncode, p.stdout) == (0, b"tree of 8\ndone 21\n")
    calls = ptracer_calls(trace)
    if enabled == "false":
        assert calls == {}
        return
    assert len(calls) == 8, calls
    tracers = set(calls.values())
    assert len(tracers) == 1 and tracers <= agent_pids(trace), (calls, agent_pids(trace))


@pytest.mark.skipif(not shutil.which("strace"), reason="needs strace")
def test_a_static_program_names_the_agent_through_the_launcher(bins, workdir):
    trace = workdir / "trace.txt"
    env = clean_env({"METRICTAP_DIR": str(workdir / "metrictap")})
    p = subprocess.run(["strace", "-f", "-qq", "-e", "trace=prctl,execve", "-o", str(trace),
                        str(CLI), "run", "--", str(bins / "deadlock-static")], cwd=workdir,
                       env=env, input=b"go\n", capture_output=True, timeout=WAIT)
    assert p.returncode == 3
    calls = ptracer_calls(trace)
    assert len(calls) == 1, calls
    (child,) = calls
    execs = [l for l in trace.read_text().splitlines()
             if l.startswith(f"{child} ") and "execve(" in l and "deadlock-static" in l]
    assert execs, "the prctl is made by the process that then runs the program"


# ---- the stall watchdog ----

def events_of(run_dir, name):
    path = Path(run_dir) / "events.jsonl"
    return [e for e in read_jsonl(path) if e["event"] == name] if path.exists() else []


def ls_state(store, run_id):
    env = clean_env({"METRICTAP_DIR": str(store)})
    r = subprocess.run([str(CLI), "ls", "--json"], env=env, capture_output=True, timeout=WAIT)
    rows = json.loads(r.stdout)
    return next(row["state"] for row in rows if row["id"] == run_id)


def test_stall_watchdog_fires_once_and_sees_the_resume(bins, workdir, victims):
    v = victims([bins / "sleeper"], workdir, "run", env={"METRICTAP_STACK_STALL_AFTER": "1s"})
    assert v.read_line() == b"sleeping\n"
    run_dir = v.run_dir()
    stalled = wait_for(lambda: events_of(run_dir, "stalled"), "the stalled event")
    assert stalled[0]["file"] == "stacks.txt" and "victim_sleeps" in stalled[0]["functions"]
    assert stalled[0]["quiet_s"] >= 1.0
    text = (run_dir / "stacks.txt").read_text()
    assert "stalled: no output and no CPU" in text and "victim_sleeps+0x" in text
    assert ls_state(v.store, run_dir.name) == "stalled"
    show = subprocess.run([str(CLI), "show", run_dir.name], capture_output=True,
                          env=clean_env({"METRICTAP_DIR": str(v.store)}), timeout=WAIT)
    assert "stalled" in show.stdout.decode()
    # Still silent for several more stall_after: still one event.
    time.sleep(3)
    assert len(events_of(run_dir, "stalled")) == 1
    v.p.stdin.write(b"x\n")
    v.p.stdin.flush()
    resumed = wait_for(lambda: events_of(run_dir, "resumed"), "the resumed event")
    assert resumed[0]["_timestamp"] > stalled[0]["_timestamp"]
    assert ls_state(v.store, run_dir.name) in ("running", "stalled")  # it may stall again
    assert v.finish(b"") == (0, b"sleeping\nwoke\nbye\n", b"")
    wait_for(lambda: events_of(run_dir, "finish"), "the end")
    assert not (run_dir / "stalled").exists()
    assert ls_state(v.store, run_dir.name) == "finished"


def test_stall_watchdog_leaves_silent_compute_alone(bins, workdir, victims):
    # 3 s: on a machine this busy (two cores shared by several test runs) a
    # second without a CPU slice can happen; twelve quarter-seconds in a row
    # without one would be a stall indeed.
    v = victims([bins / "loop"], workdir, "run", env={"METRICTAP_STACK_STALL_AFTER": "3s"})
    assert v.read_line() == b"spinning\n"
    run_dir = v.run_dir()
    time.sleep(7)  # more than two stall_after of silence, all of it busy
    assert not events_of(run_dir, "stalled")
    (workdir / "stop").write_text("")
    assert v.finish(b"") == (0, b"spinning\nspun\n", b"")
    wait_for(lambda: events_of(run_dir, "finish"), "the end")
    assert not events_of(run_dir, "stalled") and not (run_dir / "stacks.txt").exists()


# ---- ptrace refused ----

needs_root = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"),
                                reason="another user's process: needs root and setpriv")


@needs_root
def test_refused_by_another_user_direct(bins, workdir, victims):
    """The victim is nobody's; `metrictap stack --pid` runs as another
    unprivileged user: one line with the reason, exit 1, the program as before."""
    expected = unwrapped([bins / "deadlock"], "/")
    v = victims([bins / "deadlock"], "/", "plain", prefix=NOBODY)
    assert v.read_line() == b"deadlocked\n"
    other = ["setpriv", "--reuid=65533", "--regid=65533", "--clear-groups"]
    r = stack(workdir / "metrictap", ["--pid", str(v.p.pid)], prefix=other)
    err = r.stderr.decode()
    assert r.returncode == 1 and r.stdout == b"", err
    assert err.count("\n") == 1, err
    assert f"pid {v.p.pid}" in err and "uid 65534" in err and "CAP_SYS_PTRACE" in err, err
    assert v.finish()[:2] == expected[:2]


@needs_root
def test_refused_when_the_agent_may_not_attach(bins, workdir, victims):
    """The run's agent lacks CAP_SYS_PTRACE and the program became nobody:
    `metrictap stack RUN` says why in one line and exits 1."""
    expected = unwrapped([bins / "deadlock"], workdir)
    v = victims([*NOBODY, bins / "deadlock"], workdir, "run",
                prefix=["setpriv", "--bounding-set=-sys_ptrace", "--inh-caps=-sys_ptrace"])
    assert v.read_line() == b"deadlocked\n"
    run_id = v.run_id()

    def refused():
        r = stack(v.store, [run_id])
        return r if r.returncode == 1 and b"uid 65534" in r.stderr else None
    r = wait_for(refused, "the refusal")
    err = r.stderr.decode()
    assert err.count("\n") == 1 and "cannot read the stacks of pid" in err, err
    assert r.stdout == b""
    assert v.finish()[:2] == expected[:2]
