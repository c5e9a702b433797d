#!/usr/bin/env bash
# The peer figure for the agent footprint row (issue 5): peak RSS of the wandb
# SDK's own service process (wandb-core) during an offline run that logs the
# same kind of rows metrictap's agent stores, with system metrics on.
#
#   bench/wandb_peer.sh [ROWS] [SECONDS]
#
# Installs wandb from PyPI into .venv (created if missing), runs an offline
# run in a temp dir, and prints "wandb_service_peak_rss <MiB> MiB" from
# VmHWM of every process below the Python one, read just before finish().
set -euo pipefail
cd "$(dirname "$0")/../.."
ROWS=${1:-60}
SECS=${2:-60}
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -c 'import wandb' 2>/dev/null ||
    .venv/bin/python -m pip install -q --disable-pip-version-check wandb
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
WANDB_MODE=offline WANDB_DIR="$tmp" WANDB_SILENT=true WANDB_DISABLE_CODE=true \
ROWS="$ROWS" SECS="$SECS" .venv/bin/python - <<'PY'
import os, time
import wandb

def tree(root):
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    s = f.read()
                ppid = int(s[s.rindex(")") + 2:].split()[1])
                kids.setdefault(ppid, []).append(int(d))
            except OSError:
                pass
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        for c in kids.get(p, []):
            out.append(c)
            todo.append(c)
    return out

def status(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0

rows, secs = int(os.environ["ROWS"]), float(os.environ["SECS"])
run = wandb.init(project="metrictap-peer", config={"lr": 0.1, "epochs": rows})
for i in range(rows):
    run.log({"loss": 1.0 / (i + 1), "acc": i / rows, "epoch": i})
    time.sleep(secs / rows)
procs = [(p, status(p, "VmHWM")) for p in tree(os.getpid())]
names = {}
for p, _ in procs:
    try:
        names[p] = open(f"/proc/{p}/comm").read().strip()
    except OSError:
        names[p] = "?"
run.finish()
peak = max((kb for _, kb in procs), default=0)
for p, kb in procs:
    print(f"# service process {p} {names[p]} VmHWM {kb / 1024:.1f} MiB")
print(f"wandb_service_peak_rss {peak / 1024:.1f} MiB")
print(f"wandb_python_peak_rss {status(os.getpid(), 'VmHWM') / 1024:.1f} MiB")
print(f"wandb_version {wandb.__version__}")
PY
