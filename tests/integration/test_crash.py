"""Crashes (issue 3, item 9): a segfault, an abort, a stack overflow, a crash
in a thread and in a forked worker, and programs with signal handlers of their
own.  Under `metrictap run` and bare LD_PRELOAD the program's stdout, stderr
and exit status (the signal included) are exactly as unwrapped, its own
handlers still run, the run ends `crashed` and crash.txt names the victim's
functions."""
import re
import signal
import subprocess
from pathlib import Path

import pytest

from conftest import (SHIM, clean_env, latest_run, read_run, run_plain, run_preloaded,
                      run_wrapped)

VICTIMS = Path(__file__).resolve().parent / "victims"
OPTS = {"O0": ["-O0", "-fno-omit-frame-pointer"], "O2": ["-O2"]}


@pytest.fixture(scope="module")
def bins(tmp_path_factory):
    d = tmp_path_factory.mktemp("crash-victims")
    out = {}
    for opt, flags in OPTS.items():
        exe = d / f"crash-{opt}"
        subprocess.run(["cc", "-g", *flags, "-Wall", "-o", str(exe), str(VICTIMS / "crash.c"),
                        "-lpthread"], check=True)
        out[opt] = exe
    lib = d / "libprev_handler.so"
    subprocess.run(["cc", "-shared", "-fPIC", "-O2", "-Wall", "-o", str(lib),
                    str(VICTIMS / "crash_prev_handler.c")], check=True)
    out["prev"] = lib
    return out


def run_both(wrap, argv, cwd, env=None):
    """The unwrapped run, then the wrapped one; asserts identical terminal
    bytes and exit status and returns (unwrapped result, the run's record, dir)."""
    want = run_plain(argv, cwd, env=env)
    if wrap == "run":
        got = run_wrapped(argv, cwd, env=env)
    else:
        got = run_preloaded(argv, cwd, env=env)
    assert got[0] == want[0], f"exit status {got[0]} != {want[0]}; stderr {got[2]!r}"
    assert got[1] == want[1], "stdout differs"
    assert got[2] == want[2], "stderr differs"
    run_dir = latest_run(Path(cwd) / "metrictap")
    return want, read_run(run_dir), run_dir


def crash_text(run_dir):
    p = run_dir / "crash.txt"
    assert p.exists(), "no crash.txt"
    return p.read_text()


def frames(text):
    """The function names of the backtrace, innermost first."""
    return re.findall(r"^#\d+\s+0x[0-9a-f]+ in (\S+?)(?:\+0x[0-9a-f]+)? \(", text, re.M)


def crash_events(run):
    return [e for e in run["events"] if e["event"] == "crash"]


CASES = {  # mode: (exit status, signal name, functions in order, innermost first)
    "segv": (-signal.SIGSEGV, "SIGSEGV", ["victim_crash_here", "victim_caller"]),
    "abort": (-signal.SIGABRT, "SIGABRT", ["abort", "victim_abort_here", "victim_abort_caller"]),
    "overflow": (-signal.SIGSEGV, "SIGSEGV", ["victim_recurse", "victim_recurse"]),
    "thread": (-signal.SIGSEGV, "SIGSEGV",
               ["victim_crash_here", "victim_caller", "victim_thread_main"]),
}


def in_order(names, want):
    """Each wanted name appears, in this order (others may come between)."""
    it = iter(names)
    return all(any(n == w for n in it) for w in want)


@pytest.mark.parametrize("wrap", ["run", "preload"])
@pytest.mark.parametrize("opt", list(OPTS))
@pytest.mark.parametrize("mode", list(CASES))
def test_crash_is_reported_and_unchanged(bins, workdir, wrap, opt, mode):
    code, signame, want_frames = CASES[mode]
    want, run, run_dir = run_both(wrap, [str(bins[opt]), mode], workdir)
    assert want[0] == code
    assert f"victim {mode}: about to die".encode() in want[2]
    assert b"unflushed line" not in want[1]  # died with it in the stdio buffer
    assert run["run"]["state"] == "crashed"
    text = crash_text(run_dir)
    assert text.startswith(f"signal: {signame} ({-code})"), text
    names = frames(text)
    assert in_order(names, want_frames), names
    if opt == "O0" and mode in ("segv", "abort"):  # at -O2 main tail-calls the victim
        assert in_order(names, want_frames + ["main"]), names
    if mode == "segv":
        assert ", address 0x0\n" in text
    if mode == "overflow":
        assert names.count("victim_recurse") >= 100  # capped at 128 frames
    m = re.search(r"^process: pid (\d+), tid (\d+) \((.*)\)$", text, re.M)
    assert m and m.group(3) == str(bins[opt])
    assert (m.group(1) != m.group(2)) == (mode == "thread")
    ev = crash_events(run)
    assert len(ev) == 1
    assert ev[0]["signal"] == -code and ev[0]["signal_name"] == signame
    assert ev[0]["function"] == want_frames[0 if mode != "abort" else 1]
    assert ev[0]["file"] == "crash.txt"
    assert run["events"][-1]["event"] == "finish"  # the agent saw it through
    # What was printed before the crash reached the run.
    assert f"victim {mode}: epoch 1 loss=0.5".encode() in run["output"]


@pytest.mark.parametrize("wrap", ["run", "preload"])
def test_stack_overflow_in_a_thread_is_a_known_gap(bins, workdir, wrap):
    """Only the main thread gets an alternate signal stack from the shim, so a
    thread that overflows its stack is killed by the kernel before any handler
    can run: the status is still exact, `metrictap run` still ends the run
    `crashed`, but there is no crash.txt (and bare LD_PRELOAD ends `lost`)."""
    want, run, run_dir = run_both(wrap, [str(bins["O0"]), "thread-overflow"], workdir)
    assert want[0] == -signal.SIGSEGV
    assert not (run_dir / "crash.txt").exists()
    assert run["run"]["state"] == ("crashed" if wrap == "run" else "lost")


@pytest.mark.parametrize("wrap", ["run", "preload"])
def test_crash_in_a_forked_worker(bins, workdir, wrap):
    want, run, run_dir = run_both(wrap, [str(bins["O0"]), "child"], workdir)
    assert want[0] == 3 and b"worker died of signal 11\n" in want[1]
    assert run["run"]["state"] == "failed"  # the root exited 3; the worker crashed
    text = crash_text(run_dir)
    assert in_order(frames(text), ["victim_crash_here", "victim_caller", "main"])
    ev = crash_events(run)
    assert len(ev) == 1 and ev[0]["function"] == "victim_crash_here"


@pytest.mark.parametrize("wrap", ["run", "preload"])
@pytest.mark.parametrize("opt", list(OPTS))
def test_own_handler_that_exits(bins, workdir, wrap, opt):
    """The program installs its own SIGSEGV handler (after metrictap's, so it
    replaces it): its handler runs, the exit status is its own, and metrictap
    reports no crash (it never saw one)."""
    want, run, run_dir = run_both(wrap, [str(bins[opt]), "own-exit"], workdir)
    assert want[0] == 42
    assert b"own handler: caught SIGSEGV, exiting 42\n" in want[1]
    assert run["run"]["state"] == "failed" and run["run"]["exit_code"] == 42
    assert not (run_dir / "crash.txt").exists()
    assert crash_events(run) == []


@pytest.mark.parametrize("wrap", ["run", "preload"])
def test_own_handler_that_reraises(bins, workdir, wrap):
    """Its handler runs and re-raises: the status is SIGSEGV as unwrapped.  The
    handler replaced metrictap's, so there is no crash.txt; `metrictap run`
    still sees the signal (crashed), while under bare LD_PRELOAD nothing
    reports the death and the run ends `lost` (a known limit)."""
    want, run, run_dir = run_both(wrap, [str(bins["O0"]), "own-reraise"], workdir)
    assert want[0] == -signal.SIGSEGV
    assert b"own handler: caught SIGSEGV, dying of it\n" in want[2]
    assert not (run_dir / "crash.txt").exists()
    assert crash_events(run) == []
    assert run["run"]["state"] == ("crashed" if wrap == "run" else "lost")


@pytest.mark.parametrize("wrap", ["run", "preload"])
@pytest.mark.parametrize("mode", ["segv", "abort"])
def test_handler_installed_before_ours_is_chained(bins, workdir, wrap, mode):
    """A preloaded library's constructor installs SA_SIGINFO handlers before
    the shim's: metrictap reports the crash, then the signal reaches that
    handler with the same siginfo (it prints code and address), and the process
    dies as unwrapped."""
    prev = str(bins["prev"])
    argv = [str(bins["O2"]), mode]
    want = run_plain(argv, workdir, env={"LD_PRELOAD": prev})
    if wrap == "run":  # `metrictap run` puts the shim before what LD_PRELOAD had
        got = run_wrapped(argv, workdir, env={"LD_PRELOAD": prev})
    else:
        p = subprocess.run(argv, cwd=workdir, capture_output=True, timeout=60,
                           env=clean_env({"LD_PRELOAD": f"{SHIM}:{prev}"}))
        got = (p.returncode, p.stdout, p.stderr)
    assert got == want
    sig = signal.SIGSEGV if mode == "segv" else signal.SIGABRT
    assert want[0] == -sig
    line = (b"prev handler: signal 11 code 1 addr (nil) from self 0\n" if mode == "segv"
            else b"prev handler: signal 6 code -6 addr (nil) from self 1\n")
    assert want[2].count(b"prev handler") == 1 and line in want[2]
    run_dir = latest_run(workdir / "metrictap")
    run = read_run(run_dir)
    text = crash_text(run_dir)
    assert "note: a signal handler installed before metrictap's ran next" in text
    assert in_order(frames(text), ["victim_crash_here", "victim_caller"] if mode == "segv"
                    else ["victim_abort_here", "victim_abort_caller"])
    # The shim cannot know whether that handler lets the process die, so under
    # bare LD_PRELOAD the run ends `lost`; `metrictap run` sees the signal.
    assert run["run"]["state"] == ("crashed" if wrap == "run" else "lost")


def test_shim_needs_libc_only():
    out = subprocess.run(["readelf", "-d", str(SHIM)], capture_output=True, text=True,
                         check=True).stdout
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[(.*)\]", out)
    assert needed == ["libc.so.6"]
    dyn = subprocess.run(["nm", "-D", "--defined-only", str(SHIM)], capture_output=True,
                         text=True, check=True).stdout
    assert "_Unwind_" not in dyn  # the unwinder is linked in hidden
