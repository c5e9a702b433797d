#!/usr/bin/env bash
# The checks that need the GPU machine (the `device` tool), as one script:
#  1. real NVML: a 20 s PyTorch job on the GPU under `metrictap run`; the
#     run's system.jsonl must carry system.gpu.0.* rows;
#  2. the capture and parse benches on that machine's 16 cores, beside the
#     2-core VM's numbers.
# The machine is bare and offline: this checkout's build/ and the libraries
# the binaries need travel with the call (carry build/metrictap,
# build/metrictap-agent, build/libmetrictap.so, build/bench and .devlibs).
# Prepare .devlibs here first:
#   mkdir -p .devlibs/bin && for b in build/metrictap build/metrictap-agent \
#     /usr/bin/bc /usr/bin/time; do ldd $b | awk '/=>/ {print $3}'; done | sort -u |
#     grep -vE '/lib(c|m|pthread|dl|rt|resolv)\.so|ld-linux' | xargs -I{} cp -L {} .devlibs/
#   cp /usr/bin/bc /usr/bin/time .devlibs/bin/
# Results go to $OUT (device.json, capture.txt, parse.txt).
set -uo pipefail
cd "$(dirname "$0")/.."
export LD_LIBRARY_PATH=$PWD/.devlibs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export PATH=$PWD/.devlibs/bin:$PATH
OUT=${OUT:-/tmp/device-check}
mkdir -p "$OUT"
nproc; nvidia-smi -L

echo "== 1. NVML under metrictap run"
export METRICTAP_DIR=/tmp/mt-device-store
rm -rf "$METRICTAP_DIR"
build/metrictap run -- python3 -c '
import time, torch
x = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
t, i = time.time(), 0
while time.time() - t < 20:
    y = x @ x
    i += 1
    if i % 200 == 0:
        torch.cuda.synchronize()
        print(f"iter {i} loss={1.0 / i:.6f}", flush=True)
'
echo "exit status $?"
run=$(readlink -f "$METRICTAP_DIR/latest-run")
ls -la "$run"
python3 - "$run" "$OUT/device.json" <<'PY'
import json, sys
run = sys.argv[1]
rows = [json.loads(l) for l in open(run + "/system.jsonl") if l.strip()]
gpu = [{k: v for k, v in r.items() if ".gpu." in k or k.startswith("_")} for r in rows]
meta = json.load(open(run + "/run.json"))
out = {"system_rows": len(rows), "gpu_rows": gpu,
       "gpu_keys": sorted({k for r in rows for k in r if ".gpu." in k}),
       "host": meta.get("metadata", {}).get("host"),
       "history_rows": sum(1 for _ in open(run + "/history.jsonl")),
       "state": meta.get("state")}
json.dump(out, open(sys.argv[2], "w"), indent=1)
print(json.dumps(out, indent=1)[:4000])
PY

echo "== 2. capture bench, 16 cores"
BENCH_REPEAT=${BENCH_REPEAT:-5} bash bench/capture.sh 2>&1 | tee "$OUT/capture.txt"
echo "== 3. parse bench"
RUNS=${RUNS:-3} bash bench/parse.sh 2>&1 | tee "$OUT/parse.txt"
# Issue 16: on 4 or more cores the pipe row's wall ratio must be <= 1.05
# (on the 2-core VM the bound is the program's CPU time, <= 1.08).
if [ "$(nproc)" -ge 4 ]; then
    awk -F'\t' '/drained pipe \(program wall time\)/ {
        ok = $5 + 0 <= 1.05; print "pipe wall ratio " $5 " (<= 1.05 on 4+ cores): " (ok ? "PASS" : "FAIL")
    }' <(grep '^ROW' "$OUT/capture.txt") | tee -a "$OUT/capture.txt"
fi
echo "== 4. burst bench (persist, then parse)"
RUNS=${RUNS:-3} bash bench/burst.sh 2>&1 | tee "$OUT/burst.txt"
