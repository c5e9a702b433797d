"""Helpers for the integration tests: build victim programs, run them with and
without `metrictap run` through pipes or a pty, and read what the run stored.
"""
import errno
import fcntl
import json
import os
import select
import shutil
import struct
import subprocess
import termios
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "build"
METRICTAP = BUILD / "metrictap"
GO = shutil.which("go") or "/usr/local/go/bin/go"


def compile_c(src: str, out_dir: Path, name: str, static=False, cflags=()):
    """Compiles C source text into out_dir/name; returns the path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    c = out_dir / (name + ".c")
    c.write_text(src)
    exe = out_dir / name
    cmd = ["cc", "-O2", "-Wall", "-o", str(exe), str(c), *cflags]
    if static:
        cmd.insert(1, "-static")
    subprocess.run(cmd, check=True)
    return exe


def build_go(src: str, out_dir: Path, name: str):
    """Builds a dependency-free Go program offline; returns the path."""
    mod = out_dir / (name + "-src")
    mod.mkdir(parents=True, exist_ok=True)
    (mod / "main.go").write_text(src)
    (mod / "go.mod").write_text("module victim\n\ngo 1.20\n")
    exe = out_dir / name
    cache = BUILD / "go-cache"  # kept between runs; `make clean` removes it
    env = dict(os.environ, GOFLAGS="-mod=mod", GOCACHE=str(cache),
               GOPATH=str(cache / "gopath"), GOPROXY="off", GOTOOLCHAIN="local",
               CGO_ENABLED="0")
    subprocess.run([GO, "build", "-o", str(exe), "."], cwd=mod, env=env, check=True)
    return exe


def env_for(store: Path, **extra):
    """The environment for a run: the store in `store`, no leftover settings."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("METRICTAP_", "WANDB_")) and k != "LD_PRELOAD"}
    env["METRICTAP_DIR"] = str(store)
    env.update(extra)
    return env


def wrapped(cmd, *run_args):
    return [str(METRICTAP), "run", *run_args, "--", *map(str, cmd)]


def run_pipes(cmd, env, cwd=None, timeout=60):
    """Runs cmd with stdout and stderr on pipes; returns (rc, out, err)."""
    p = subprocess.run(list(map(str, cmd)), env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def _set_winsize(fd, rows, cols):
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def run_pty(cmd, env, cwd=None, size=(33, 101), stderr_pipe=False, on_output=None,
            controlling=False, timeout=60):
    """Runs cmd with stdout (and stderr unless stderr_pipe) on a fresh pty of
    `size`.  With `controlling`, the pty becomes the process's controlling
    terminal (a new session), so resizing it sends SIGWINCH as a real terminal
    does.  on_output(master_fd, proc, data_so_far) is called after each read
    and may act once; returns (rc, pty_bytes, stderr_bytes or None)."""
    master, slave = os.openpty()
    _set_winsize(master, *size)

    def make_ctty():
        fcntl.ioctl(1, termios.TIOCSCTTY, 0)

    proc = subprocess.Popen(list(map(str, cmd)), env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                            stdout=slave, stderr=subprocess.PIPE if stderr_pipe else slave,
                            start_new_session=controlling,
                            preexec_fn=make_ctty if controlling else None)
    os.close(slave)
    out = bytearray()
    err = bytearray()
    deadline = time.monotonic() + timeout
    fds = [master] + ([proc.stderr.fileno()] if stderr_pipe else [])
    while fds:
        left = deadline - time.monotonic()
        if left <= 0:
            proc.kill()
            raise TimeoutError(f"{cmd} did not finish; output so far {bytes(out)!r}")
        ready, _, _ = select.select(fds, [], [], left)
        for fd in ready:
            try:
                data = os.read(fd, 65536)
            except OSError as e:
                if e.errno != errno.EIO:  # EIO: every slave fd is closed
                    raise
                data = b""
            if not data:
                fds.remove(fd)
                continue
            if fd == master:
                out += data
                if on_output:
                    on_output(master, proc, bytes(out))
            else:
                err += data
    rc = proc.wait(timeout=max(1, deadline - time.monotonic()))
    os.close(master)
    return rc, bytes(out), (bytes(err) if stderr_pipe else None)


def latest_run(store: Path) -> Path:
    return (store / "latest-run").resolve()


def read_jsonl(path: Path):
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            pass  # a torn last line
    return rows


def events(run: Path, name=None):
    evs = read_jsonl(run / "events.jsonl")
    return [e for e in evs if name is None or e.get("event") == name]


def history(run: Path):
    return read_jsonl(run / "history.jsonl")


def wait_for(pred, timeout=15.0, what="condition"):
    """Waits until pred() is true (polling what the agent writes)."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.02)
