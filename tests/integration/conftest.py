"""Helpers for running programs wrapped and unwrapped and reading the run store."""
import json
import os
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "build"
CLI = BUILD / "metrictap"
SHIM = BUILD / "libmetrictap.so"
AGENT = BUILD / "metrictap-agent"
EXAMPLES = BUILD / "examples"


def clean_env(extra=None):
    """The test's environment without anything of metrictap's or W&B's."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("METRICTAP_", "WANDB_", "LD_PRELOAD", "MLFLOW_"))
           and k != "PYTHONUNBUFFERED"}  # metrictap decides it (console.c)
    env.update(extra or {})
    return env


def run_plain(argv, cwd, env=None, timeout=60, stdin=None):
    p = subprocess.run(argv, cwd=cwd, env=clean_env(env), capture_output=True,
                       timeout=timeout, stdin=stdin)
    return p.returncode, p.stdout, p.stderr


def run_wrapped(argv, cwd, env=None, flags=(), timeout=60, stdin=None):
    """The program under `metrictap run`."""
    return run_plain([str(CLI), "run", *flags, "--", *argv], cwd, env, timeout, stdin)


def run_preloaded(argv, cwd, env=None, timeout=60, stdin=None):
    """The program under bare LD_PRELOAD."""
    e = dict(env or {})
    e["LD_PRELOAD"] = str(SHIM)
    p = subprocess.run(argv, cwd=cwd, env={**clean_env(), **e}, capture_output=True,
                       timeout=timeout, stdin=stdin)
    return p.returncode, p.stdout, p.stderr


def wait_finished(run_dir, timeout=20.0):
    """Waits for the agent to write the run's end (under bare LD_PRELOAD the
    program does not wait for it)."""
    events = Path(run_dir) / "events.jsonl"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if events.exists() and '"event":"finish"' in events.read_text():
            return
        time.sleep(0.01)
    raise AssertionError(f"run {run_dir} did not finish in {timeout}s")


def latest_run(store, wait=True):
    run_dir = (Path(store) / "latest-run").resolve()
    if wait:
        wait_finished(run_dir)
    return run_dir


def run_dirs(store):
    return sorted(p for p in (Path(store) / "runs").glob("*/*") if p.is_dir())


def read_jsonl(path):
    rows = []
    for line in Path(path).read_text().splitlines():
        if line.strip():
            rows.append(json.loads(line))
    return rows


def read_run(run_dir):
    run_dir = Path(run_dir)
    return {
        "run": json.loads((run_dir / "run.json").read_text()),
        "summary": json.loads((run_dir / "summary.json").read_text()),
        "history": read_jsonl(run_dir / "history.jsonl"),
        "events": read_jsonl(run_dir / "events.jsonl"),
        "output": (run_dir / "output.log").read_bytes(),
    }


@pytest.fixture
def workdir(tmp_path):
    """A fresh directory to run in; its ./metrictap is the store."""
    d = tmp_path / "work"
    d.mkdir()
    return d
