"""What the user saw, once: the console rule (preload/console.c) under the
wrappers people really use.  Each test runs a trainer behind a shell, a relay
or a launcher, and checks history and output.log against what reached the
run's console: every printed metric exactly once, none of the plumbing, and
the trainer's own command line as the config."""
import json
import os
import shutil
import stat
import subprocess
import sys
import textwrap

import pytest

from conftest import (CLI, EXAMPLES, clean_env, latest_run, read_run, run_dirs, run_plain,
                      run_wrapped)

TRAIN = str(EXAMPLES / "train_ok")


def loss_rows(run):
    return [r for r in run["history"] if "loss" in r]


def loss_lines(data):
    return [l for l in data.splitlines() if b" loss=" in l]


def one_run(workdir):
    assert len(run_dirs(workdir / "metrictap")) == 1
    return read_run(latest_run(workdir / "metrictap"))


def not_console(run):
    return run["run"]["metadata"]["capture_counts"]["not_console_bytes"]


def check_once(run, shown, epochs):
    """Every loss line the console showed is one history row and one
    output.log line, in order; the trainer's options are the config."""
    seen = loss_lines(shown)
    assert len(seen) == epochs
    assert loss_lines(run["output"]) == seen
    rows = loss_rows(run)
    assert [r["epoch"] for r in rows] == list(range(1, epochs + 1))
    assert run["run"]["config"].get("epochs") == epochs
    assert run["run"]["program"] == "train_ok"
    assert run["run"]["name"].startswith("train_ok-")


@pytest.mark.parametrize("pipeline", [
    "{t} --epochs 3 | tee train.log",
    "{t} --epochs 3 2>&1 | tee log",
    "{t} --epochs 3 | tee a.log | tee b.log",
])
def test_a_relay_records_each_row_once(workdir, pipeline):
    rc, out, err = run_wrapped(["sh", "-c", pipeline.format(t=TRAIN)], workdir)
    assert rc == 0, err
    run = one_run(workdir)
    check_once(run, out, 3)
    assert not_console(run)["pipe"] > 0  # the trainer's writes into the pipe, counted


def test_only_what_grep_let_through(workdir):
    rc, out, err = run_wrapped(["sh", "-c", f"{TRAIN} --epochs 3 | grep -v 'epoch 2 '"],
                               workdir)
    assert rc == 0, err
    run = one_run(workdir)
    assert [r["epoch"] for r in loss_rows(run)] == [1, 3]
    assert loss_lines(run["output"]) == loss_lines(out)
    assert run["run"]["config"]["epochs"] == 3


def write_script(path, body):
    path.write_text(textwrap.dedent(body))
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_wrapper_plumbing_is_not_output(workdir):
    script = write_script(workdir / "wrap.sh", f"""\
        #!/bin/sh
        v=$(echo loss=99)
        echo acc=0.01 > /dev/null
        ls /nonexistent 2>/dev/null
        echo val_loss=7 | cat > /dev/null
        echo "starting ($v)" > /dev/null
        exec {TRAIN} --epochs 3
        """)
    rc, out, err = run_wrapped([str(script)], workdir)
    assert rc == 0, err
    run = one_run(workdir)
    check_once(run, out, 3)
    values = [v for r in run["history"] for k, v in r.items() if not k.startswith("_")]
    assert 99 not in values and 0.01 not in values and 7 not in values
    assert "val_loss" not in run["summary"]
    for text in (b"loss=99", b"acc=0.01", b"val_loss=7", b"nonexistent"):
        assert text not in run["output"]
    counts = not_console(run)
    assert counts["pipe"] > 0 and counts["devnull"] > 0


def test_a_pyenv_shaped_launcher_leaves_nothing_of_itself(workdir):
    """A version manager's shim: a bash script that asks several commands
    about itself with their output sent to /dev/null or captured, then execs
    the real program."""
    (workdir / "version").write_text("3.11.7\n")
    shim = write_script(workdir / "python3", f"""\
        #!/usr/bin/env bash
        set -e
        [ -n "$PYENV_DEBUG" ] && set -x
        root="$(cd "$(dirname "$0")" && pwd)"
        version="$(cat "$root/version" 2>/dev/null || echo system)"
        program="$(basename "$0")"
        if command -v "$program" >/dev/null 2>&1; then :; fi
        type -P ls >/dev/null 2>&1 || true
        hooks="$(ls -1 "$root" 2>/dev/null | head -n 3)"
        echo "pyenv: $program $version $hooks" >/dev/null
        printf 'resolved %s\\n' "$version" 2>/dev/null | cat >/dev/null
        exec {TRAIN} "$@"
        """)
    rc, out, err = run_wrapped([str(shim), "--epochs", "3"], workdir)
    assert rc == 0, err
    run = one_run(workdir)
    check_once(run, out, 3)
    # output.log holds what reached the console and nothing of the shim
    shown = set((out + err).replace(b"\r", b"\n").splitlines())
    logged = [l for l in run["output"].replace(b"\r", b"\n").splitlines() if l.strip()]
    assert logged and all(l in shown for l in logged)
    assert b"pyenv" not in run["output"] and b"resolved" not in run["output"]


@pytest.mark.parametrize("command", [
    "{t} --epochs 3 > train.log",
    "{t} --epochs 3 > train.log 2>&1 & wait",
])
def test_output_sent_to_a_file_is_followed_once(workdir, command):
    rc, out, err = run_wrapped(["sh", "-c", command.format(t=TRAIN)], workdir)
    assert rc == 0, err
    assert loss_lines(out) == []  # the terminal showed none of it
    run = one_run(workdir)
    rows = loss_rows(run)
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert loss_lines(run["output"]) == []  # output.log is the console
    assert run["run"]["config"]["epochs"] == 3
    assert not_console(run)["file"] > 0
    watched = [e for e in run["events"] if e["event"] == "file_watch"]
    assert [os.path.basename(e["path"]) for e in watched] == ["train.log"]


def test_a_python_wrapper_that_prints_its_childs_lines(workdir):
    wrapper = workdir / "wrap.py"
    wrapper.write_text(textwrap.dedent(f"""\
        import subprocess, sys
        p = subprocess.run([{TRAIN!r}, "--epochs", "3"], stdout=subprocess.PIPE, check=True)
        for line in p.stdout.decode().splitlines():
            print(line)
        """))
    rc, out, err = run_wrapped([sys.executable, str(wrapper)], workdir)
    assert rc == 0, err
    run = one_run(workdir)
    assert loss_lines(run["output"]) == loss_lines(out)
    assert [r["epoch"] for r in loss_rows(run)] == [1, 2, 3]


def test_the_root_stdout_is_a_pipe_to_the_users_tee(workdir):
    """`metrictap run -- ./train | tee log` from the user's own shell: the
    pipe to tee is the console (tee is not part of the run)."""
    env = clean_env()
    p = subprocess.run(["sh", "-c", f"'{CLI}' run -- {TRAIN} --epochs 3 | tee user.log"],
                       cwd=workdir, env=env, capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr
    run = one_run(workdir)
    check_once(run, p.stdout, 3)
    assert (workdir / "user.log").read_bytes() == p.stdout


@pytest.mark.skipif(not shutil.which("script"), reason="util-linux script is missing")
def test_a_terminal_console_with_a_relay(workdir):
    """The console a terminal (a pty from script(1)): the relay's lines once."""
    cmd = f"'{CLI}' run -- sh -c '{TRAIN} --epochs 3 | tee t.log'"
    p = subprocess.run(["script", "-qec", cmd, "/dev/null"], cwd=workdir, env=clean_env(),
                       capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stderr
    run = one_run(workdir)
    shown = p.stdout.replace(b"\r\n", b"\n")
    check_once(run, shown, 3)


@pytest.mark.parametrize("wrapper", [
    ["env", "FOO=1"], ["timeout", "60"], ["nice", "-n", "1"], ["stdbuf", "-oL"], ["nohup"],
    ["taskset", "-c", "0"], ["sh", "-c", 'exec "$0" "$@"'],
    ["bash", "-c", '"$0" "$@"; echo done-wrapping'],
])
def test_config_and_name_come_from_the_trainer_not_its_wrapper(workdir, wrapper):
    if not shutil.which(wrapper[0]):
        pytest.skip(f"{wrapper[0]} is not installed")
    rc, out, err = run_wrapped(wrapper + [TRAIN, "--epochs", "3", "--lr", "1e-3"], workdir)
    assert rc == 0, err
    run = one_run(workdir)
    assert run["run"]["config"] == {"epochs": 3, "lr": 1e-3}
    assert run["run"]["program"] == "train_ok"
    assert run["run"]["name"].startswith("train_ok-")
    assert run["run"]["command"][0] == wrapper[0]  # what was run stays on record
    text = (latest_run(workdir / "metrictap") / "run.json").read_text()
    assert '"lr":\t1e-3' in text  # as printed


def test_a_python_launcher_module(workdir):
    """`python -m launcher train ...`: the process that printed is the trainer."""
    (workdir / "launcher.py").write_text(textwrap.dedent("""\
        import subprocess, sys
        sys.exit(subprocess.call(sys.argv[1:]))
        """))
    rc, out, err = run_wrapped([sys.executable, "-m", "launcher", TRAIN, "--epochs", "3"],
                               workdir, env={"PYTHONPATH": str(workdir)})
    assert rc == 0, err
    run = one_run(workdir)
    check_once(run, out, 3)


def test_shell_script_metrics_name_the_script(workdir):
    script = write_script(workdir / "report.sh", """\
        #!/bin/sh
        echo "loss: 0.5"
        echo "loss: 0.25"
        """)
    rc, out, err = run_wrapped(["sh", str(script), "--seed", "3"], workdir)
    assert rc == 0, err
    run = one_run(workdir)
    assert [r["loss"] for r in run["history"]] == [0.5, 0.25]
    assert run["run"]["program"] == "report"


PY_LIVE = """\
import json, os, sys, time
run = os.path.join(os.environ["METRICTAP_DIR"], "latest-run", "history.jsonl")
print("unbuffered:", os.environ.get("PYTHONUNBUFFERED", "unset"), file=sys.stderr)
for epoch in (1, 2, 3):
    print(f"epoch {epoch} loss={1.0 / epoch:.3f}")
    # Wait until the row is in the store: only possible when the line left
    # the process at once, not when a buffer filled at exit.
    deadline = time.monotonic() + float(sys.argv[1])
    while time.monotonic() < deadline:
        try:
            rows = [json.loads(l) for l in open(run) if l.strip()]
        except OSError:
            rows = []
        if any(r.get("epoch") == epoch for r in rows):
            break
        time.sleep(0.02)
    else:
        print(f"epoch {epoch} was not recorded while the program ran", file=sys.stderr)
"""


def test_python_lines_are_recorded_as_they_are_printed(workdir):
    (workdir / "live.py").write_text(PY_LIVE)
    store = workdir / "metrictap"
    rc, out, err = run_wrapped([sys.executable, "live.py", "20"], workdir,
                               env={"METRICTAP_DIR": str(store)})
    assert rc == 0, err
    assert b"unbuffered: 1" in err
    assert b"was not recorded" not in err, err
    run = read_run(latest_run(store))
    assert [r["epoch"] for r in loss_rows(run)] == [1, 2, 3]


def test_python_unbuffered_can_be_turned_off_and_is_never_forced(workdir):
    (workdir / "live.py").write_text(PY_LIVE)
    store = workdir / "metrictap"
    rc, out, err = run_wrapped([sys.executable, "live.py", "0.2"], workdir,
                               env={"METRICTAP_DIR": str(store),
                                    "METRICTAP_CAPTURE_PYTHON_UNBUFFERED": "false"})
    assert rc == 0, err
    assert b"unbuffered: unset" in err
    assert b"epoch 1 was not recorded" in err  # block-buffered into the pipe, as asked
    assert [r["epoch"] for r in loss_rows(read_run(latest_run(store)))] == [1, 2, 3]
    # A value the user set is left alone.
    rc, out, err = run_wrapped([sys.executable, "live.py", "0"], workdir,
                               env={"METRICTAP_DIR": str(store), "PYTHONUNBUFFERED": "x"})
    assert b"unbuffered: x" in err


def test_output_of_a_process_whose_stdout_is_closed_or_full(workdir):
    """Bytes nothing received are not output: a closed stdout, /dev/full."""
    rc, out, err = run_wrapped(["sh", "-c", f"{TRAIN} --epochs 3 >&-; "
                                            f"{TRAIN} --epochs 2 > /dev/full; echo 'loss: 9'"],
                               workdir)
    run = one_run(workdir)
    assert [r.get("loss") for r in run["history"] if "loss" in r] == [9]
    counts = not_console(run)
    assert counts["closed"] > 0 and counts["failed"] > 0


def test_signal_handler_writes_are_captured(workdir, tmp_path):
    """A signal handler's write() while an interposed printf is running (the
    shim is inside its stdio wrapper): printf's own conversion handler raises
    the signal, so every tick lands inside printf, deterministically."""
    src = tmp_path / "ticks.c"
    src.write_text(textwrap.dedent("""\
        #include <printf.h>
        #include <signal.h>
        #include <stdio.h>
        #include <unistd.h>
        static int ticks;
        static void on_usr1(int sig) {
            (void)sig;
            char msg[] = "tick 0\\n";
            msg[5] = (char)('0' + ticks++);
            write(2, msg, sizeof msg - 1);
        }
        static int print_y(FILE *f, const struct printf_info *info, const void *const *args) {
            (void)info; (void)args;
            raise(SIGUSR1);  /* the handler runs inside printf */
            return fprintf(f, "y");
        }
        static int arginfo_y(const struct printf_info *info, size_t n, int *types, int *size) {
            (void)info; (void)n; (void)types; (void)size;
            return 0;
        }
        int main(void) {
            signal(SIGUSR1, on_usr1);
            register_printf_specifier('Y', print_y, arginfo_y);
            for (int i = 0; i < 10; i++)
                printf("line %d %Y loss: 0.%d\\n", i, i + 1);
            return 0;
        }
        """))
    exe = tmp_path / "ticks"
    subprocess.run(["cc", "-O2", "-Wno-format", "-o", str(exe), str(src)], check=True)
    rc, out, err = run_wrapped([str(exe)], workdir)
    assert rc == 0, err
    shown = [l for l in err.splitlines() if l.startswith(b"tick")]
    assert len(shown) == 10
    run = one_run(workdir)
    kept = [l for l in run["output"].splitlines() if l.startswith(b"tick")]
    assert kept == shown
    assert len([l for l in run["output"].splitlines() if l.startswith(b"line")]) == 10
