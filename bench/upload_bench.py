"""Upload benchmark: points per second that metrictap uploads to a local MLflow
server, against the official mlflow Python client logging the same points
with log_metric in a loop and with log_batch, on the same server in the same
run; and the latency from a printed line to the point being visible on the
server with default settings.

Prints rows `ROW<TAB>name<TAB>figure<TAB>baseline<TAB>ratio<TAB>target`.
Environment: BENCH_POINTS (default 20000), BENCH_LOOP_POINTS (log_metric
loop, default 1000: one request per point), BENCH_PROBES (default 5)."""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "e2e"))
from conftest import METRICTAP, MlflowServer, metrictap_env, wait_until  # noqa: E402

POINTS = int(os.environ.get("BENCH_POINTS", "20000"))
LOOP_POINTS = int(os.environ.get("BENCH_LOOP_POINTS", "1000"))
PROBES = int(os.environ.get("BENCH_PROBES", "5"))
KEYS = 4  # metrics per history row


def row(name, figure, baseline, target):
    ratio = figure / baseline if baseline else float("nan")
    print(f"ROW\t{name}\t{figure:.4g}\t{baseline:.4g}\t{ratio:.3g}\t{target}", flush=True)


def points(total=None):
    rows = (total or POINTS) // KEYS
    t0 = 1700000000.0
    for i in range(rows):
        yield i, t0 + i * 0.01, {f"m{k}": (i * 7 + k) / 13.0 for k in range(KEYS)}


def write_store(store, rid, total=None):
    d = Path(store) / "runs" / "bench" / rid
    d.mkdir(parents=True)
    (d / "run.json").write_text(json.dumps({
        "id": rid, "project": "bench", "name": rid, "state": "finished", "start_time": 1700000000.0,
        "end_time": 1700001000.0, "program": "bench", "user": "bench", "config": {}, "tags": []}))
    with open(d / "history.jsonl", "w") as f:
        for i, ts, vals in points(total):
            f.write(json.dumps({"_step": i, "_runtime": ts - 1700000000.0, "_timestamp": ts, **vals}) + "\n")
    return d


def bench_metrictap(server, tmp, rid, total=None):
    store = Path(tmp) / "store"
    write_store(store, rid, total)
    env = metrictap_env(store, server.url)
    t = time.perf_counter()
    r = subprocess.run([str(METRICTAP), "sync", "-q", rid], env=env, capture_output=True, text=True)
    dt = time.perf_counter() - t
    if r.returncode != 0:
        raise SystemExit("metrictap sync failed: " + r.stderr)
    return (total or POINTS) / dt


def warm_up(server, tmp):
    """The server's first requests pay for lazy imports: neither side should."""
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient
    c = MlflowClient(server.url)
    run = c.create_run(c.create_experiment(f"warm-{time.time()}"))
    c.log_batch(run.info.run_id, metrics=[Metric("w", 1.0, 1, i) for i in range(100)])
    bench_metrictap(server, tmp, "benchwrm", 400)


def bench_python(server):
    import mlflow
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient
    mlflow.set_tracking_uri(server.url)
    c = MlflowClient(server.url)
    exp = c.create_experiment(f"bench-py-{time.time()}")
    pts = [(f"m{k}", v, int(ts * 1000), i) for i, ts, vals in points() for k, v in enumerate(vals.values())]

    run = c.create_run(exp)
    loop = pts[:LOOP_POINTS]
    t = time.perf_counter()
    for key, v, ts, step in loop:
        c.log_metric(run.info.run_id, key, v, timestamp=ts, step=step)
    loop_rate = len(loop) / (time.perf_counter() - t)

    run = c.create_run(exp)
    t = time.perf_counter()
    for i in range(0, len(pts), 1000):
        c.log_batch(run.info.run_id, metrics=[Metric(k, v, ts, s) for k, v, ts, s in pts[i:i + 1000]])
    batch_rate = len(pts) / (time.perf_counter() - t)
    return loop_rate, batch_rate


PROBE = r"""
import sys, time
for i in range(int(sys.argv[1])):
    time.sleep(1.3)
    t = time.time()
    print(f"probe: {i}", flush=True)
    with open(sys.argv[2], "a") as f:
        f.write(f"{i} {t}\n")
time.sleep(1.0)
"""


def bench_latency(server, tmp):
    store = Path(tmp) / "lat"
    stamps = Path(tmp) / "stamps.txt"
    prog = Path(tmp) / "probe.py"
    prog.write_text(PROBE)
    env = metrictap_env(store, server.url)
    p = subprocess.Popen([str(METRICTAP), "run", "--project", "latency", "--", sys.executable, str(prog),
                          str(PROBES), str(stamps)], env=env, stdout=subprocess.DEVNULL)
    seen = {}
    run_id = None
    deadline = time.time() + PROBES * 1.3 + 40
    while time.time() < deadline and len(seen) < PROBES:
        now = time.time()
        if run_id is None:
            try:
                exp = server.api("GET", "experiments/get-by-name?experiment_name=latency")["experiment"]
                runs = server.api("POST", "runs/search", {"experiment_ids": [exp["experiment_id"]],
                                                          "max_results": 1}).get("runs", [])
                run_id = runs[0]["info"]["run_id"] if runs else None
            except Exception:
                pass
        if run_id:
            q = urllib.parse.urlencode({"run_id": run_id, "metric_key": "probe"})
            for m in server.api("GET", f"metrics/get-history?{q}").get("metrics", []):
                seen.setdefault(int(m["value"]), now)
        time.sleep(0.02)
    p.wait(60)
    printed = {}
    for line in stamps.read_text().split("\n"):
        if line:
            i, t = line.split()
            printed[int(i)] = float(t)
    lat = [seen[i] - printed[i] for i in printed if i in seen]
    if len(lat) < len(printed):
        print(f"# latency: only {len(lat)} of {len(printed)} probes became visible", file=sys.stderr)
    return lat


def main():
    with tempfile.TemporaryDirectory() as tmp:
        server = MlflowServer(tmp)
        server.start()
        try:
            warm_up(server, tmp)
            mt1 = bench_metrictap(server, tmp, "benchmt1")
            loop, batch = bench_python(server)
            mt2 = bench_metrictap(server, tmp, "benchmt2")
            mt = (mt1 + mt2) / 2
            print(f"# metrictap sync: {mt1:.0f} and {mt2:.0f} points/s (before and after the "
                  f"python client); mean {mt:.0f}", file=sys.stderr)
            row(f"upload points/s, metrictap sync vs mlflow log_metric loop ({POINTS} vs {LOOP_POINTS} pts)",
                mt, loop, ">=10x")
            row(f"upload points/s, metrictap sync vs mlflow log_batch ({POINTS} pts)", mt, batch, ">=0.8x")
            lat = bench_latency(server, tmp)
            if lat:
                med = statistics.median(lat)
                row(f"latency printed line -> visible on server, median of {len(lat)} (s)",
                    med, 1.0, "<=2 s (upload interval 1 s)")
        finally:
            server.kill()


if __name__ == "__main__":
    main()
