"""In-code logging against MLflow (issue 20), run by bench/peers/mlflow_peer.sh
with the bench venv's Python (.venv-bench/sdk).

One MLflow server on 127.0.0.1 (sqlite store, one worker), started here.
bench/peers/sdk_loop.py's loop, each way, BENCH_MLFLOW_REPEAT times (default 1:
the figures differ a hundredfold, and a run of them takes minutes):
  neither    the loop alone (the baseline)
  mlflow     mlflow.log_metrics({"loss", "acc"}, step=i) per step: one
             request each, so BENCH_MLFLOW_STEPS steps (default 2,000; at
             about 17 ms a request on the 2-core VM, 100,000 would take half
             an hour), which the row names
  mlflow_async  the same with synchronous=False (the client batches from a
             thread), the same step count
  metrictap  print("step N loss=x acc=y") under `metrictap run`, uploading
             live to the same server, at the same step count and at
             BENCH_SDK_STEPS (default 100,000)
metrictap runs with upload.flush_timeout BENCH_UPLOAD_TIMEOUT_S (900 s): at its default (30 s) the end of
a run stops waiting for the upload and leaves the rest to `metrictap sync`,
which 100,000 steps on this VM's server outlast.
Figures: the loop's own wall time, and the time from the loop's start until
every point is on the server (for mlflow, until end_run() returned, which
waits for an async queue; for metrictap, polled on the server), and the
points the server holds against those logged, counted on the server.
Prints rows `ROW<TAB>name<TAB>figure<TAB>baseline<TAB>ratio<TAB>target`."""
import json
import os
import urllib.parse
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
METRICTAP = ROOT / "build" / "metrictap"
SDK_LOOP = ROOT / "bench" / "peers" / "sdk_loop.py"
BIN = Path(sys.executable).parent
ML_STEPS = int(os.environ.get("BENCH_MLFLOW_STEPS", "2000"))
BIG_STEPS = int(os.environ.get("BENCH_SDK_STEPS", "100000"))
REPEAT = int(os.environ.get("BENCH_MLFLOW_REPEAT", "1"))
UPLOAD_TIMEOUT = float(os.environ.get("BENCH_UPLOAD_TIMEOUT_S", "900"))  # also the runs' flush_timeout
KEYS = ("loss", "acc")


def row(name, figure, baseline, unit, target="report"):
    ratio = figure / baseline if baseline else float("nan")
    fmt = "d" if isinstance(figure, int) else ".4g"
    print(f"ROW\t{name}\t{figure:{fmt}}{unit}\t{baseline:{fmt}}{unit}\t{ratio:.3g}\t{target}", flush=True)


def info(text):
    print(f"INFO {text}", flush=True)


class Server:
    def __init__(self, tmp):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(Path(tmp) / "server.log", "ab")
        self.proc = subprocess.Popen(
            [str(BIN / "mlflow"), "server", "--backend-store-uri", f"sqlite:///{tmp}/m.db",
             "--artifacts-destination", f"{tmp}/art", "--host", "127.0.0.1",
             "--port", str(self.port), "--workers", "1"],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "MLFLOW_TRACKING_URI": "", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})
        deadline = time.time() + 180
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("mlflow server exited; see its log")
            try:
                if urllib.request.urlopen(self.url + "/health", timeout=2).status == 200:
                    break
            except (urllib.error.URLError, OSError):
                pass
            if time.time() > deadline:
                raise RuntimeError("mlflow server did not answer in 180 s")
            time.sleep(0.25)

    def get(self, path, **query):
        q = urllib.parse.urlencode(query)
        with urllib.request.urlopen(f"{self.url}/api/2.0/mlflow/{path}?{q}", timeout=60) as r:
            return json.loads(r.read() or b"{}")

    def latest_steps(self, run_id):
        metrics = self.get("runs/get", run_id=run_id)["run"]["data"].get("metrics", [])
        return {m["key"]: int(m.get("step", 0)) for m in metrics}

    def points(self, run_id, key):
        n, token = 0, None
        while True:
            q = {"run_id": run_id, "metric_key": key, "max_results": 25000}
            if token:
                q["page_token"] = token
            page = self.get("metrics/get-history", **q)
            n += len(page.get("metrics", []))
            token = page.get("next_page_token")
            if not token:
                return n

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def fields(stderr):
    for line in reversed(stderr.splitlines()):
        if "loop_s=" in line:
            return dict(kv.split("=", 1) for kv in line.split() if "=" in kv)
    raise RuntimeError("sdk_loop printed no figures:\n" + stderr[-2000:])


def loop_alone(steps):
    p = subprocess.run([sys.executable, str(SDK_LOOP), "neither", str(steps)],
                       capture_output=True, text=True, check=True)
    return float(fields(p.stderr)["loop_s"])


def with_mlflow(server, steps, mode="mlflow"):
    """Loop time, seconds from the loop's start until end_run() returned,
    the points the server holds (the fewer of loss and acc), and the set-up
    (import, experiment, start_run) before the loop."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": server.url}
    p = subprocess.run([sys.executable, str(SDK_LOOP), mode, str(steps)], env=env,
                       capture_output=True, text=True)
    if p.returncode:
        raise RuntimeError("mlflow loop failed: " + p.stderr[-1000:])
    f = fields(p.stderr)
    on_server = {k: server.points(f["run_id"], k) for k in KEYS}
    return (float(f["loop_s"]), float(f["done_at"]) - float(f["loop_start"]), min(on_server.values()),
            float(f["setup_s"]))


def uploader_gone(run_dir):
    """The agent's uploader has let go of the run (finished or gave up)."""
    import fcntl
    try:
        with open(run_dir / "upload" / "mlflow.lock") as f:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
    except FileNotFoundError:
        return True
    except OSError:
        return False


def with_metrictap(server, steps, tmp):
    """Loop time, seconds from the loop's start until the server holds every
    point, and the points it holds (the fewer of loss and acc)."""
    store = Path(tempfile.mkdtemp(dir=tmp))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "METRICTAP_"))}
    env.update(METRICTAP_DIR=str(store), MLFLOW_TRACKING_URI=server.url)
    conf = store / "bench.yaml"
    conf.write_text(f"upload:\n  flush_timeout: {UPLOAD_TIMEOUT:.0f}s\n")
    with open(store / "out.txt", "wb") as out:
        p = subprocess.run([str(METRICTAP), "run", "-c", str(conf), "--", sys.executable, str(SDK_LOOP), "print",
                            str(steps)], env=env, stdout=out, stderr=subprocess.PIPE, text=True)
    if p.returncode:
        raise RuntimeError("metrictap run failed: " + p.stderr[-1000:])
    f = fields(p.stderr)
    state = store / "latest-run" / "upload" / "mlflow.json"
    deadline = time.time() + UPLOAD_TIMEOUT
    run_id, done, pause = None, None, 0.02
    while time.time() < deadline:
        try:
            run_id = run_id or json.loads(state.read_text())["backend"]["run_id"]
            latest = server.latest_steps(run_id)
            if all(latest.get(k) == steps - 1 for k in KEYS):
                done = time.time()
                break
            if uploader_gone(store / "latest-run") and latest == server.latest_steps(run_id):
                raise RuntimeError(f"metrictap's uploader stopped at steps {latest} of {steps}")
        except (OSError, ValueError, KeyError):
            pass
        # Soon at first (2,000 steps are up in a fraction of a second), then
        # at most twice a second, not to crowd the one-worker server.
        time.sleep(pause)
        pause = min(pause * 1.5, 0.5)
    if done is None:
        raise RuntimeError(f"metrictap's points were not all on the server in {UPLOAD_TIMEOUT:.0f} s")
    held = min(server.points(run_id, k) for k in KEYS)
    return float(f["loop_s"]), done - float(f["loop_start"]), held


def median_of(runs, i):
    return statistics.median(r[i] for r in runs)


def main():
    import mlflow
    tmp = tempfile.mkdtemp(prefix="metrictap-bench-mlflow.")
    server = None
    try:
        server = Server(tmp)
        # The server's first requests pay for lazy imports: not a figure.
        with_mlflow(server, 20)
        with_metrictap(server, 20, tmp)
        with_mlflow(server, 20, "mlflow_async")
        alone_small, alone_big, ml, mla, mt, mt_big = [], [], [], [], [], []
        for _ in range(REPEAT):
            alone_small.append(loop_alone(ML_STEPS))
            ml.append(with_mlflow(server, ML_STEPS))
            mla.append(with_mlflow(server, ML_STEPS, "mlflow_async"))
            mt.append(with_metrictap(server, ML_STEPS, tmp))
            alone_big.append(loop_alone(BIG_STEPS))
            mt_big.append(with_metrictap(server, BIG_STEPS, tmp))
        name = f"vs MLflow: Python loop, {ML_STEPS} steps (log_metrics per step)"
        a = statistics.median(alone_small)
        row(f"{name}: mlflow.log_metrics / neither (loop s)", median_of(ml, 0), a, " s")
        row(f"{name}: print under metrictap run / neither (loop s)", median_of(mt, 0), a, " s")
        row(f"{name}: metrictap run / mlflow.log_metrics (loop s)", median_of(mt, 0), median_of(ml, 0), " s")
        row(f"{name}: every point on the server, metrictap / mlflow (s from loop start)",
            median_of(mt, 1), median_of(ml, 1), " s")
        row(f"{name}: metrictap run / log_metrics(synchronous=False) (loop s)",
            median_of(mt, 0), median_of(mla, 0), " s")
        row(f"{name}: every point on the server, metrictap / synchronous=False (s from loop start)",
            median_of(mt, 1), median_of(mla, 1), " s")
        want = ML_STEPS
        row(f"{name}: points on the server per key, MLflow / logged", min(r[2] for r in ml), want, "", "1.000")
        row(f"{name}: points on the server per key, MLflow synchronous=False / logged",
            min(r[2] for r in mla), want, "", "1.000")
        row(f"{name}: points on the server per key, metrictap / printed", min(r[2] for r in mt), want, "", "1.000")
        big = f"vs MLflow: Python loop, {BIG_STEPS} steps, print under metrictap run uploading"
        row(f"{big}: loop s / neither", median_of(mt_big, 0), statistics.median(alone_big), " s")
        row(f"{big}: every point on the server (s from loop start) / loop s",
            median_of(mt_big, 1), median_of(mt_big, 0), " s")
        row(f"{big}: points on the server per key / printed", min(r[2] for r in mt_big), BIG_STEPS, "", "1.000")
        per_req = median_of(ml, 0) / ML_STEPS * 1e3
        info(f"{name}: mlflow.log_metrics {per_req:.2f} ms a step (one request each: {BIG_STEPS} steps "
             f"would take about {per_req * BIG_STEPS / 1e3:.0f} s); metrictap's uploader "
             f"{2 * BIG_STEPS / median_of(mt_big, 1):.0f} points/s at {BIG_STEPS} steps; "
             f"runs (loop s, on server s): mlflow {[(round(r[0], 3), round(r[1], 3)) for r in ml]}, "
             f"synchronous=False {[(round(r[0], 3), round(r[1], 3)) for r in mla]}, "
             f"metrictap {[(round(r[0], 3), round(r[1], 3)) for r in mt]}, "
             f"metrictap at {BIG_STEPS} {[(round(r[0], 3), round(r[1], 3)) for r in mt_big]}; "
             f"mlflow {mlflow.__version__}, server sqlite, 1 worker; mlflow's import and start_run "
             f"before the loop {median_of(ml + mla, 3):.2f} s (median)")
    except Exception as e:  # a row that says why, never a silent gap
        print(f"ROW\tvs MLflow: Python loop, {ML_STEPS} steps\tfailed: {str(e).splitlines()[0]}\t-\t-\treport",
              flush=True)
        if server:
            server.log.flush()
            log = (Path(tmp) / "server.log").read_text(errors="replace")[-1500:]
            print(log, file=sys.stderr)
    finally:
        if server:
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
