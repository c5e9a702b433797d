#!/usr/bin/env bash
# In-code logging against W&B (issue 20).  bench/peers/sdk_loop.py's loop of
# BENCH_SDK_STEPS steps (default 100,000), BENCH_PEER_REPEAT times (default
# 3), each way in turn, stdout to a file:
#   neither            the loop alone (the baseline)
#   print              print("step N loss=x acc=y"), no tracker
#   metrictap          the same print under `metrictap run`
#   wandb              wandb.log({"loss": x, "acc": y}), offline, in the SDK's
#                      own service (wandb-core)
# Figures: the loop's own wall time (medians), the rows each tracker stored
# (metrictap: history.jsonl; W&B: history records of the offline run's
# .wandb file) against the steps, and the trackers' peak RSS: metrictap's
# agent (its own getrusage, in the finish event) against the highest VmHWM of
# the processes below the Python one (wandb-core).
#
#   bench/peers/wandb_peer.sh                      the rows (make bench)
#   bench/peers/wandb_peer.sh footprint ROWS SECS  bench/agent.sh's peer: an
#       offline run of ROWS rows over SECS seconds; prints
#       "wandb_service_peak_rss <MiB> MiB"
# The SDK lives in .venv-bench/sdk (scripts/bench-venv.sh); when it cannot be
# installed the rows say "not installable" and why.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
py="$root/.venv-bench/sdk/bin/python"
sdk_loop="$root/bench/peers/sdk_loop.py"
why=$("$root/scripts/bench-venv.sh" sdk 2>&1 >/dev/null | tail -1)
installed() { [ -x "$py" ] && "$py" -c 'import wandb' 2>/dev/null; }
work=$(mktemp -d /tmp/metrictap-bench-wandb.XXXXXX)
trap 'rm -rf "$work"' EXIT
cd "$work"
export WANDB_MODE=offline WANDB_SILENT=true WANDB_DISABLE_CODE=true
field() { sed -n "s/.*\\b$1=\\([^ ]*\\).*/\\1/p" "$2" | tail -1; }

if [ "${1:-}" = footprint ]; then
    installed || { echo "wandb_peer: wandb not installable: $why" >&2; exit 1; }
    WANDB_DIR="$work" SDK_LOOP_PACE_S="${3:-60}" "$py" "$sdk_loop" wandb "${2:-60}" 2> err.txt > /dev/null ||
        { tail -3 err.txt >&2; exit 1; }
    echo "wandb_service_peak_rss $(awk -v k="$(field service_peak_kib err.txt)" 'BEGIN { printf "%.1f", k / 1024 }') MiB"
    exit 0
fi

N=${BENCH_SDK_STEPS:-100000}
R=${BENCH_PEER_REPEAT:-3}
name="vs W&B: Python loop, $N steps"
cli="$root/build/metrictap"
[ -x "$cli" ] || { echo "wandb_peer: build first (make all)" >&2; exit 1; }
if ! installed; then
    printf 'ROW\t%s: wandb.log offline\tnot installable: %s\t-\t-\treport\n' "$name" "${why:-no wandb in $py}"
    exit 0
fi
export METRICTAP_DIR="$work/store"
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }
us() { awk -v s="$1" -v n="$N" 'BEGIN { printf "%.2f", 1e6 * s / n }'; }
wandb_rows() { # history records in the offline run's .wandb file
    PYTHONPATH="$root/tests/e2e" "$py" - "$1" <<'PY'
import glob, sys
import wandb_log
(log,) = glob.glob(sys.argv[1].rstrip("/").removesuffix("/files") + "/run-*.wandb")
print(sum(1 for r in wandb_log.decode(log) if r.HasField("history")))
PY
}

: > neither; : > print; : > wrapped; : > wandb; : > wandb_setup; : > wandb_finish
for i in $(seq "$R"); do
    "$py" "$sdk_loop" neither "$N" > out.txt 2> err.txt; field loop_s err.txt >> neither
    "$py" "$sdk_loop" print "$N" > out.txt 2> err.txt; field loop_s err.txt >> print
    "$cli" run -- "$py" "$sdk_loop" print "$N" > out.txt 2> err.txt; field loop_s err.txt >> wrapped
    mkdir "wandb$i"
    if ! WANDB_DIR="$work/wandb$i" "$py" "$sdk_loop" wandb "$N" > out.txt 2> err.txt; then
        printf 'ROW\t%s: wandb.log offline\tfailed: %s\t-\t-\treport\n' "$name" "$(tail -1 err.txt)"
        exit 0
    fi
    field loop_s err.txt >> wandb; field setup_s err.txt >> wandb_setup; field finish_s err.txt >> wandb_finish
done
n0=$(median < neither); np=$(median < print); nm=$(median < wrapped); nw=$(median < wandb)
mt_rows=$(wc -l < "$METRICTAP_DIR/latest-run/history.jsonl")
wb_rows=$(wandb_rows "$(field run_dir err.txt)")
wb_peak=$(awk -v k="$(field service_peak_kib err.txt)" 'BEGIN { printf "%.1f", k / 1024 }')
finish=$(grep '"event":"finish"' "$METRICTAP_DIR/latest-run/events.jsonl")
mt_peak=$(echo "$finish" | sed 's/.*"agent_max_rss_kb":\([0-9]*\).*/\1/' | awk '{ printf "%.1f", $1 / 1024 }')
row() { printf 'ROW\t%s: %s\t%s\t%s\t%s\t%s\n' "$name" "$1" "$2" "$3" "$(ratio "$4" "$5")" "$6"; }
row "wandb.log offline / neither (loop s)" "$nw s" "$n0 s" "$nw" "$n0" report
row "print under metrictap run / neither (loop s)" "$nm s" "$n0 s" "$nm" "$n0" report
row "print under metrictap run / print alone (loop s)" "$nm s" "$np s" "$nm" "$np" report
row "metrictap run / wandb.log (loop s)" "$nm s" "$nw s" "$nm" "$nw" report
row "rows stored by W&B / steps" "$wb_rows" "$N" "$wb_rows" "$N" 1.000
row "rows stored by metrictap / steps" "$mt_rows" "$N" "$mt_rows" "$N" 1.000
row "peak RSS, metrictap agent / wandb-core service" "$mt_peak MiB" "$wb_peak MiB" "$mt_peak" "$wb_peak" report
echo "INFO $name: per step, loop alone $(us "$n0") us, print $(us "$np") us, print under metrictap $(us "$nm") us, wandb.log $(us "$nw") us; loop s neither $(tr '\n' ' ' < neither)/ print $(tr '\n' ' ' < print)/ metrictap $(tr '\n' ' ' < wrapped)/ wandb $(tr '\n' ' ' < wandb)"
echo "INFO $name: wandb.init $(median < wandb_setup) s and run.finish $(median < wandb_finish) s outside the loop (median); the Python process peaked at $(awk -v k="$(field python_peak_kib err.txt)" 'BEGIN { printf "%.1f", k / 1024 }') MiB under W&B; wandb $("$py" -c 'import wandb; print(wandb.__version__)')"
