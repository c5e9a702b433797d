"""A real MLflow tracking server for the e2e tests (module scope), the fault
proxy in front of it, and a comparison of what the server holds with the
local run store, written independently of the C code."""
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter, defaultdict
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from faultproxy import FaultProxy, wait_until  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "build"
METRICTAP = BUILD / "metrictap"
VENV_BIN = Path(sys.executable).parent
DBL_MAX = sys.float_info.max


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class MlflowServer:
    """backend "sqlite" (the default store; it merges a metric point identical
    to one it holds, so it cannot show a doubled point) or "file" (the
    ./mlruns store, which appends every point it is sent)."""

    def __init__(self, tmp, backend="sqlite", store_uri=None):
        self.tmp = Path(tmp)
        self.backend = backend
        self.store_uri = store_uri  # any other store (postgresql://...)
        self.workers = 1
        self.extra_env = {}
        self.port = free_port()
        self.proc = None
        self.log = self.tmp / "server.log"

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self, wait=True):
        exe = shutil.which("mlflow", path=str(VENV_BIN)) or "mlflow"
        self.proc = subprocess.Popen(
            [exe, "server", "--backend-store-uri",
             self.store_uri or (f"sqlite:///{self.tmp}/m.db" if self.backend == "sqlite"
                                else f"{self.tmp}/mlruns"),
             "--artifacts-destination", f"{self.tmp}/art", "--host", "127.0.0.1",
             "--port", str(self.port), "--workers", str(self.workers)],
            stdout=open(self.log, "ab"), stderr=subprocess.STDOUT, start_new_session=True,
            # No job runner: the tests use none, and the server makes its
            # store in a /dev/shm directory that a killed server leaves behind.
            env={**os.environ, "MLFLOW_TRACKING_URI": "", "MLFLOW_ALLOW_FILE_STORE": "true",
                 "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **self.extra_env})
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout=150):
        def ok():
            if self.proc.poll() is not None:
                raise RuntimeError("mlflow server exited:\n" + self.log.read_text()[-3000:])
            try:
                return urllib.request.urlopen(self.url + "/health", timeout=2).status == 200
            except (urllib.error.URLError, OSError):
                return False
        if not wait_until(ok, timeout, 0.25):
            raise RuntimeError("mlflow server did not answer in %ds" % timeout)

    def kill(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    # ---- REST ----
    def api(self, method, path, body=None):
        url = f"{self.url}/api/2.0/mlflow/{path}"
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read() or b"{}")

    def runs_of(self, mt_id):
        exps = self.api("POST", "experiments/search", {"max_results": 1000}).get("experiments", [])
        ids = [e["experiment_id"] for e in exps]
        res = self.api("POST", "runs/search", {
            "experiment_ids": ids, "filter": f"tags.`metrictap.run_id` = '{mt_id}'",
            "max_results": 100, "run_view_type": "ALL"})
        return res.get("runs", [])

    def history(self, run_id, key):
        q = urllib.parse.urlencode({"run_id": run_id, "metric_key": key})
        return self.api("GET", f"metrics/get-history?{q}").get("metrics", [])

    def artifact(self, run, name):
        uri = run["info"]["artifact_uri"]
        assert uri.startswith("mlflow-artifacts:/"), uri
        path = uri[len("mlflow-artifacts:/"):]
        with urllib.request.urlopen(f"{self.url}/api/2.0/mlflow-artifacts/artifacts/{path}/{name}",
                                    timeout=30) as r:
            return r.read()


@pytest.fixture(scope="session")
def built():
    if not METRICTAP.exists():
        subprocess.run(["make", "-C", str(ROOT), "all"], check=True)
    return METRICTAP


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    """Both kinds of server, started together so their start-ups overlap."""
    both = [MlflowServer(tmp_path_factory.mktemp("mlflow-sqlite")),
            MlflowServer(tmp_path_factory.mktemp("mlflow-file"), backend="file")]
    try:
        for s in both:
            s.start(wait=False)
        for s in both:
            s.wait_ready()
        yield both
    finally:
        for s in both:
            s.kill()


@pytest.fixture(scope="module")
def server(servers):
    return servers[0]


@pytest.fixture(scope="module")
def append_server(servers):
    return servers[1]


@pytest.fixture
def proxy(server):
    p = FaultProxy(server.port)
    yield p
    p.close()


@pytest.fixture
def append_proxy(append_server):
    p = FaultProxy(append_server.port)
    yield p
    p.close()


# ---- the local store, read as a second implementation would ----

SYSTEM_NAMES = {
    "cpu_percent": ("cpu_utilization_percentage", 1),
    "memory_percent": ("system_memory_usage_percentage", 1),
    "memory_used_mb": ("system_memory_usage_megabytes", 1),
    "disk.usage_percent": ("disk_usage_percentage", 1),
    "disk.used_mb": ("disk_usage_megabytes", 1),
    "disk.available_mb": ("disk_available_megabytes", 1),
    "network.sent_bytes": ("network_transmit_megabytes", 1e-6),
    "network.recv_bytes": ("network_receive_megabytes", 1e-6),
}
GPU_NAMES = {
    "utilization_percent": "utilization_percentage",
    "memory_percent": "memory_usage_percentage",
    "memory_used_mb": "memory_usage_megabytes",
    "power_watts": "power_usage_watts",
    "power_percent": "power_usage_percentage",
}


def _num(v):
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return float(v)
    return {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}.get(v) if isinstance(v, str) else None


def _ms(ts):
    return int(math.floor(ts * 1000.0 + 0.5))


def _lines(path):
    if not path.exists():
        return []
    data = path.read_text()
    return [l for l in data.split("\n")[:-1] if l.strip()]  # the last piece is torn or empty


def system_key(k):
    k = k[len("system."):] if k.startswith("system.") else k
    if k in SYSTEM_NAMES:
        return "system/" + SYSTEM_NAMES[k][0], SYSTEM_NAMES[k][1]
    parts = k.split(".")
    if len(parts) == 3 and parts[0] == "gpu" and parts[1].isdigit() and parts[2] in GPU_NAMES:
        return f"system/gpu_{parts[1]}_{GPU_NAMES[parts[2]]}", 1
    return "system/" + k, 1


def expected_points(run_dir):
    """{mlflow key: Counter((step, ts_ms, value))} for a run directory.

    The step rule (README "Uploading"): a metric's step_metric's value when
    that axis is an integer one; a fractional axis gives way to the first
    integer axis of run.json's axes, else the row counter is the step and the
    fractional axis is a metric of its own; axes are not metrics."""
    run_dir = Path(run_dir)
    run = json.loads((run_dir / "run.json").read_text())
    defs = {k: v["step_metric"] for k, v in (run.get("metrics") or {}).items()
            if isinstance(v, dict) and v.get("step_metric")}
    axis_names = list(run.get("axes") or [])
    all_axes = set(axis_names) | set(defs.values())

    def axis_of(key):
        for name, ax in defs.items():
            if (name.endswith("*") and key.startswith(name[:-1])) or name == key:
                return ax
        return None

    out = defaultdict(Counter)
    axes, fractional = {}, set()
    for i, line in enumerate(_lines(run_dir / "history.jsonl")):
        row = json.loads(line)
        for ax in all_axes:
            v = _num(row.get(ax))
            if v is not None and math.isfinite(v):
                axes[ax] = v
                if v != math.floor(v):
                    fractional.add(ax)
        row_step = int(row.get("_step", i))
        ts = _ms(row.get("_timestamp", 0))
        shown = []
        for k, v in row.items():
            val = _num(v)
            if k.startswith("_") or val is None or k in all_axes:
                continue
            ax = axis_of(k)
            if ax not in axes:
                step = row_step
            elif ax not in fractional:
                step = int(math.floor(axes[ax] + 0.5))
            else:
                ints = [a for a in axis_names if a in axes and a not in fractional]
                step = int(math.floor(axes[ints[0]] + 0.5)) if ints else row_step
                if not ints and ax not in shown:
                    shown.append(ax)
            out[k][(step, ts, norm(val))] += 1
        for ax in shown:
            if _num(row.get(ax)) is not None:
                out[ax][(row_step, ts, norm(_num(row[ax])))] += 1
    for i, line in enumerate(_lines(run_dir / "system.jsonl")):
        row = json.loads(line)
        for k, v in row.items():
            val = _num(v)
            if k.startswith("_") or val is None:
                continue
            name, scale = system_key(k)
            out[name][(i, _ms(row.get("_timestamp", 0)), norm(val * scale))] += 1
    return out


def norm(v):
    if isinstance(v, str):
        v = _num(v)
    if math.isnan(v):
        return "NaN"
    if math.isinf(v) or abs(v) >= DBL_MAX:
        return "+Inf" if v > 0 else "-Inf"
    return v


def server_points(server, run_id, keys):
    out = defaultdict(Counter)
    for k in keys:
        for m in server.history(run_id, k):
            out[k][(int(m["step"]), int(m["timestamp"]), norm(m["value"]))] += 1
    return out


def compare(server, run_dir):
    """Returns (problems, run): problems is [] when the server equals the store."""
    run_dir = Path(run_dir)
    run = json.loads((run_dir / "run.json").read_text())
    runs = server.runs_of(run["id"])
    if len(runs) != 1:
        return [f"{len(runs)} MLflow runs carry metrictap.run_id={run['id']}"], None
    r = runs[0]
    exp = expected_points(run_dir)
    keys = set(exp) | {m["key"] for m in r["data"].get("metrics", [])}
    got = server_points(server, r["info"]["run_id"], keys)
    problems = []
    for k in sorted(keys):
        if exp.get(k, Counter()) != got.get(k, Counter()):
            missing = exp.get(k, Counter()) - got.get(k, Counter())
            extra = got.get(k, Counter()) - exp.get(k, Counter())
            problems.append(f"{k}: {sum(missing.values())} missing {list(missing)[:3]}, "
                            f"{sum(extra.values())} extra {list(extra)[:3]}")
    return problems, r


def wait_equal(server, run_dir, timeout=60, final=True):
    """Polls until the server holds exactly the store (and the final status)."""
    last = [None]

    def ok():
        try:
            problems, r = compare(server, run_dir)
        except (urllib.error.URLError, OSError, KeyError) as e:
            last[0] = [repr(e)]
            return False
        if not problems and final and r["info"]["status"] == "RUNNING":
            problems = ["status still RUNNING"]
        last[0] = problems
        return not problems
    if not wait_until(ok, timeout, 0.5):
        raise AssertionError("server differs from the store: " + "; ".join(last[0] or []))


def run_dirs(store):
    return sorted(p for p in Path(store, "runs").glob("*/*") if (p / "run.json").exists())


def metrictap_env(store, url=None, **extra):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MLFLOW_", "METRICTAP_", "WANDB_"))}
    env["METRICTAP_DIR"] = str(store)
    if url:
        env["MLFLOW_TRACKING_URI"] = url
    env.update({k: str(v) for k, v in extra.items()})
    return env


@pytest.fixture
def store(tmp_path):
    d = tmp_path / "metrictap"
    yield d


def agent_done(run_dir, backend="mlflow"):
    """The agent's uploader has let go of the run (finished or gave up)."""
    lock = Path(run_dir) / "upload" / f"{backend}.lock"
    if not lock.exists():
        return True
    import fcntl
    with open(lock) as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError:
            return False


__all__ = ["free_port", "VENV_BIN", "FaultProxy", "wait_until", "compare", "wait_equal", "expected_points", "run_dirs",
           "metrictap_env", "agent_done", "METRICTAP", "BUILD", "tempfile"]
