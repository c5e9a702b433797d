"""The in-code logging loop of the W&B and MLflow peer rows (issue 20).

    sdk_loop.py MODE STEPS

One loop of STEPS steps, each making a loss and an accuracy and handing them
to MODE's tracker:
  neither  nothing (the baseline)
  print    print("step N loss=x acc=y"), as a program run under metrictap does
  wandb    wandb.log({"loss": x, "acc": y}) in a run of the SDK's own
           service (WANDB_MODE etc. come from the environment)
  mlflow   mlflow.log_metrics({"loss": x, "acc": y}, step=N) per step, to
           MLFLOW_TRACKING_URI
  mlflow_async  the same with synchronous=False (the client's queue sends
           batches from a thread; end_run() waits for it)
SDK_LOOP_PACE_S spreads the steps over that many seconds (a sleep after each),
for the agent footprint's idle peer (bench/agent.sh).
On stderr, one `key=value ...` line: loop_s (the loop's own wall time, set-up
and finish excluded), loop_start (its start, Unix time), setup_s, finish_s
and, for mlflow, run_id and done_at (Unix time once end_run() returned:
every point is on the server then); for wandb, service_peak_kib (the highest VmHWM of the processes below
this one, polled through the run and read once more before they exit) and
python_peak_kib."""
import os
import sys
import threading
import time


def children(root):
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    s = f.read()
                kids.setdefault(int(s[s.rindex(")") + 2:].split()[1]), []).append(int(d))
            except (OSError, ValueError, IndexError):
                pass
    out, todo = [], [root]
    while todo:
        for c in kids.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def hwm_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class PeakWatch:
    """The highest VmHWM of any process below this one.  VmHWM is the
    process's own high-water mark, so polling only has to see each process
    once before it exits; the poll every 50 ms and the read after finish()
    do that for the SDK's service, which outlives the run."""

    def __init__(self):
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def sample(self):
        for p in children(os.getpid()):
            self.peak = max(self.peak, hwm_kib(p))

    def _run(self):
        while not self._stop.wait(0.05):
            self.sample()

    def stop(self):
        self._stop.set()
        self._thread.join()
        self.sample()
        return self.peak


def main():
    mode, steps = sys.argv[1], int(sys.argv[2])
    out = {}
    t = time.perf_counter()
    watch = None
    if mode == "neither":
        def emit(i, loss, acc):
            pass
    elif mode == "print":
        def emit(i, loss, acc):
            print(f"step {i} loss={loss:.6f} acc={acc:.4f}")
    elif mode == "wandb":
        import wandb
        watch = PeakWatch()
        run = wandb.init(project="metrictap-peer", config={"steps": steps})

        def emit(i, loss, acc):
            run.log({"loss": loss, "acc": acc})
    elif mode in ("mlflow", "mlflow_async"):
        import mlflow
        mlflow.set_experiment("metrictap-peer")
        mlflow.start_run()
        synchronous = mode == "mlflow"

        def emit(i, loss, acc):
            mlflow.log_metrics({"loss": loss, "acc": acc}, step=i, synchronous=synchronous)
    else:
        raise SystemExit(f"sdk_loop: unknown mode {mode!r}")
    out["setup_s"] = time.perf_counter() - t

    pause = float(os.environ.get("SDK_LOOP_PACE_S", "0")) / max(steps, 1)
    if pause:
        inner = emit

        def emit(i, loss, acc):
            inner(i, loss, acc)
            time.sleep(pause)
    loss = 2.5
    out["loop_start"] = time.time()
    t = time.perf_counter()
    for i in range(steps):
        loss *= 0.99999
        emit(i, loss, 1.0 - loss / 3.0)
    sys.stdout.flush()
    out["loop_s"] = time.perf_counter() - t

    t = time.perf_counter()
    if mode == "wandb":
        run.finish()
        out["service_peak_kib"] = watch.stop()
        out["python_peak_kib"] = hwm_kib(os.getpid())
        out["run_dir"] = run.dir
    elif mode.startswith("mlflow"):
        out["run_id"] = mlflow.active_run().info.run_id
        mlflow.end_run()
        out["done_at"] = time.time()
    out["finish_s"] = time.perf_counter() - t
    print(" ".join(f"{k}={v:.6f}" if isinstance(v, float) else f"{k}={v}" for k, v in out.items()),
          file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
