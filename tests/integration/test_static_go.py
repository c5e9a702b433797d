"""Issue 3 item 6: static and Go programs, which ignore LD_PRELOAD, are captured
by `metrictap run` through a pty or pipes; their output, exit status, window
size and SIGWINCH stay as they were without metrictap."""
import os
import re
import signal
import subprocess
import pytest

import victims as v

STATIC_SRC = r"""
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

static volatile sig_atomic_t winched;
static void on_winch(int sig) { (void)sig; winched = 1; }

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "print";
    struct winsize a = {0}, b = {0};
    int tty = ioctl(1, TIOCGWINSZ, &a) == 0;
    if (strcmp(mode, "winch") == 0) {
        sigset_t set, old;
        sigemptyset(&set);
        sigaddset(&set, SIGWINCH);
        sigprocmask(SIG_BLOCK, &set, &old);
        signal(SIGWINCH, on_winch);
        printf("size %d %d\n", a.ws_row, a.ws_col);
        fflush(stdout);
        alarm(20);
        for (;;) {
            sigsuspend(&old);
            ioctl(1, TIOCGWINSZ, &b);
            if (b.ws_row != a.ws_row || b.ws_col != a.ws_col)
                break;
        }
        printf("resized %d %d\n", b.ws_row, b.ws_col);
        return 0;
    }
    printf("isatty %d %d\n", isatty(1), isatty(2));
    if (tty)
        printf("winsize %d %d\n", a.ws_row, a.ws_col);
    for (int i = 0; i < 20; i++) {
        printf("step: %d loss: %.4f\n", i, 1.0 / (i + 1));
        fprintf(stderr, "warning %d: \t tab, bytes \x01\xff\xfe\n", i);
    }
    fputs("progress 10%\rprogress 50%\rprogress 100%\n", stdout);
    int bulk = strcmp(mode, "big") == 0 ? 200000 : 3000;
    for (int i = 0; i < bulk; i++)
        printf("bulk line %d of a long run: accuracy: %.3f\n", i, i / 3000.0);
    printf("no newline at the end");
    fflush(stdout);
    if (strcmp(mode, "term") == 0)
        raise(SIGTERM);
    return 7;
}
"""

GO_SRC = r"""
package main

import (
	"fmt"
	"os"
	"syscall"
	"unsafe"
)

type winsize struct{ Row, Col, X, Y uint16 }

func main() {
	var ws winsize
	_, _, e := syscall.Syscall(syscall.SYS_IOCTL, 1, syscall.TIOCGWINSZ, uintptr(unsafe.Pointer(&ws)))
	if e == 0 {
		fmt.Printf("winsize %d %d\n", ws.Row, ws.Col)
	}
	for i := 0; i < 20; i++ {
		fmt.Printf("epoch: %d acc: %.3f\n", i, 0.5+float64(i)/100)
		fmt.Fprintf(os.Stderr, "go warning %d\n", i)
	}
	for i := 0; i < 2000; i++ {
		fmt.Printf("go bulk %d val_loss: %.4f\n", i, 1/float64(i+1))
	}
	os.Stdout.Write([]byte("tail without newline"))
	os.Exit(3)
}
"""

DYNAMIC_SRC = r"""
#include <stdio.h>
int main(void) { printf("loss: 0.5\n"); fprintf(stderr, "e\n"); return 0; }
"""

MODE_LINE = re.compile(rb"^metrictap: (\S+) (is statically linked|is a Go program); "
                       rb"capturing its output through ([a-z ]+)\r?\n")


@pytest.fixture(scope="module")
def bins(tmp_path_factory):
    d = tmp_path_factory.mktemp("victims")
    out = {"static": v.compile_c(STATIC_SRC, d, "static_victim", static=True),
           "dynamic": v.compile_c(DYNAMIC_SRC, d, "dynamic_victim")}
    if os.path.exists(v.GO):
        out["go"] = v.build_go(GO_SRC, d, "go_victim")
    return out


def victim(bins, kind):
    if kind not in bins:
        pytest.skip("go is not installed")
    return bins[kind]


def split_mode_line(data, why, through):
    """Checks that data starts with exactly one mode line; returns the rest."""
    m = MODE_LINE.match(data)
    assert m, f"no mode line at the start of {data[:200]!r}"
    assert m.group(2) == why
    assert m.group(3) == through
    rest = data[m.end():]
    assert b"metrictap:" not in rest
    return rest


WHY = {"static": b"is statically linked", "go": b"is a Go program"}


@pytest.mark.parametrize("kind", ["static", "go"])
def test_pipes_output_status_and_run(bins, kind, tmp_path):
    exe = victim(bins, kind)
    store = tmp_path / "store"
    rc0, out0, err0 = v.run_pipes([exe], v.env_for(store))
    rc1, out1, err1 = v.run_pipes(v.wrapped([exe]), v.env_for(store))
    assert rc1 == rc0 == (7 if kind == "static" else 3)
    assert out1 == out0
    assert split_mode_line(err1, WHY[kind], b"pipes") == err0

    run = v.latest_run(store)
    log = (run / "output.log").read_bytes()
    # Every line the program printed, on either stream, is in output.log.
    for line in (out0 + b"\n" + err0).split(b"\n"):
        if line and b"\r" not in line:
            assert line in log
    rows = v.history(run)
    key = "loss" if kind == "static" else "acc"
    assert sum(1 for r in rows if key in r) == 20
    fin = v.events(run, "finish")[-1]
    assert fin["exit_code"] == rc0 and fin["state"] == "failed"
    assert fin["dropped_bytes"] == 0


@pytest.mark.parametrize("kind", ["static", "go"])
def test_pty_shared_by_stdout_and_stderr(bins, kind, tmp_path):
    exe = victim(bins, kind)
    store = tmp_path / "store"
    rc0, out0, _ = v.run_pty([exe], v.env_for(store), size=(33, 101))
    rc1, out1, _ = v.run_pty(v.wrapped([exe]), v.env_for(store), size=(33, 101))
    assert b"winsize 33 101\r\n" in out0
    if kind == "static":
        assert b"isatty 1 1\r\n" in out0
    assert rc1 == rc0
    # Byte for byte, interleaving of stdout and stderr included.
    assert split_mode_line(out1, WHY[kind], b"a pty") == out0
    log = (v.latest_run(store) / "output.log").read_bytes()
    assert b"winsize 33 101\n" in log  # raw: no "\r\n" from the inner pty


@pytest.mark.parametrize("kind", ["static", "go"])
def test_pty_for_stdout_pipe_for_stderr(bins, kind, tmp_path):
    exe = victim(bins, kind)
    store = tmp_path / "store"
    rc0, out0, err0 = v.run_pty([exe], v.env_for(store), size=(40, 120), stderr_pipe=True)
    rc1, out1, err1 = v.run_pty(v.wrapped([exe]), v.env_for(store), size=(40, 120),
                                stderr_pipe=True)
    assert rc1 == rc0
    assert b"winsize 40 120" in out0
    if kind == "static":
        assert b"isatty 1 0" in out0
    assert out1 == out0
    assert split_mode_line(err1, WHY[kind], b"a pty for stdout and a pipe for stderr") == err0


def test_death_by_signal_is_passed_on(bins, tmp_path):
    exe = bins["static"]
    store = tmp_path / "store"
    rc0, out0, err0 = v.run_pipes([exe, "term"], v.env_for(store))
    rc1, out1, err1 = v.run_pipes(v.wrapped([exe, "term"]), v.env_for(store))
    assert rc0 == rc1 == -signal.SIGTERM
    assert out1 == out0
    assert split_mode_line(err1, WHY["static"], b"pipes") == err0
    fin = v.events(v.latest_run(store), "finish")[-1]
    assert fin["signal"] == signal.SIGTERM


def test_window_size_change_reaches_the_program(bins, tmp_path):
    exe = bins["static"]
    store = tmp_path / "store"

    for cmd in ([exe, "winch"], v.wrapped([exe, "winch"])):
        done = []

        def resize_once(master, proc, data):
            if b"size 24 80\r\n" in data and not done:
                done.append(1)
                # As a terminal emulator does: the kernel then sends SIGWINCH
                # to the terminal's foreground process group.
                v._set_winsize(master, 50, 132)

        rc, out, _ = v.run_pty(cmd, v.env_for(store), size=(24, 80), controlling=True,
                               on_output=resize_once)
        assert rc == 0, out
        if cmd[0] == exe:
            assert out == b"size 24 80\r\nresized 50 132\r\n"
        else:
            assert split_mode_line(out, WHY["static"], b"a pty") == \
                b"size 24 80\r\nresized 50 132\r\n"


def test_window_size_follows_sigwinch_sent_to_metrictap(bins, tmp_path):
    """A SIGWINCH sent to `metrictap run` alone (no controlling terminal):
    the new size of its terminal is copied to the program's pty first."""
    exe = bins["static"]
    store = tmp_path / "store"
    sent = []

    def resize(master, proc, data):
        if b"size 24 80\r\n" in data and not sent:
            sent.append(1)
            v._set_winsize(master, 45, 99)
            os.kill(proc.pid, signal.SIGWINCH)

    rc, out, _ = v.run_pty(v.wrapped([exe, "winch"]), v.env_for(store), size=(24, 80),
                           on_output=resize)
    assert rc == 0
    assert split_mode_line(out, WHY["static"], b"a pty") == b"size 24 80\r\nresized 45 99\r\n"


def test_dynamic_program_gets_the_shim_and_no_mode_line(bins, tmp_path):
    store = tmp_path / "store"
    rc, out, err = v.run_pipes(v.wrapped([bins["dynamic"]]), v.env_for(store))
    assert rc == 0 and out == b"loss: 0.5\n" and err == b"e\n"


def test_reader_gone_gives_sigpipe_as_without_metrictap(bins, tmp_path):
    """`prog | head -c 100` on 9 MB of output: the program dies of SIGPIPE in
    both cases (the pump reads no further ahead than about a pipe's worth)."""
    exe = bins["static"]
    store = tmp_path / "store"
    codes = []
    for cmd in ([exe, "big"], v.wrapped([exe, "big"])):
        r, w = os.pipe()
        p = subprocess.Popen(list(map(str, cmd)), stdout=w, stderr=subprocess.DEVNULL,
                             env=v.env_for(store))
        os.close(w)
        got = os.read(r, 100)
        assert got.startswith(b"isatty 0 0\n")
        os.close(r)
        codes.append(p.wait(timeout=60))
    assert codes == [-signal.SIGPIPE, -signal.SIGPIPE]
