#!/usr/bin/env bash
# The file backends (issue 17), measured against the agent's own work in the
# same run:
#  - cost per row: a run of BENCH_BACKEND_ROWS print_loop rows (default
#    200,000; 3 metrics and a step axis a row) is written by the agent with no
#    backend; then `metrictap export --to tensorboard` and `--to wandb` write
#    the same rows as a backend would (the uploader's reading, batching and
#    encoding, and the writes).  Their CPU per row against the agent's
#    (capture, parse, store) is what the backend adds to the agent;
#  - bytes per row of each format against history.jsonl;
#  - the capture rows with all three backends on: the program's own time
#    wrapped with --to mlflow,tensorboard,wandb against wrapped with none,
#    alternating, medians (MLflow aimed at a closed port: retrying, as when
#    the server is down).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
N=${BENCH_BACKEND_ROWS:-200000}
NCAP=${BENCH_BACKEND_CAPTURE_LINES:-500000}
R=${BENCH_REPEAT:-5}
loop="$root/build/bench/print_loop"
cli="$root/build/metrictap"
work=$(mktemp -d /tmp/metrictap-bench-backends.XXXXXX)
# The agents go on after `metrictap run` returns, flushing their uploaders:
# wait for each run's upload locks before removing what they write.
wait_agents() {
    for l in "$METRICTAP_DIR"/runs/*/*/upload/*.lock; do
        [ -e "$l" ] && flock "$l" true
    done
    return 0
}
trap 'wait_agents; rm -rf "$work"' EXIT
cd "$work"
export METRICTAP_DIR="$work/store" METRICTAP_TENSORBOARD_DIR="$work/tb" METRICTAP_WANDB_DIR="$work/wb"
unset MLFLOW_TRACKING_URI METRICTAP_UPLOAD_TO WANDB_MODE
export WANDB_MODE=offline

cpu_of() { # command...: prints its user+system CPU seconds
    /usr/bin/time -f '%U %S' -o "$work/time" "$@" > /dev/null 2>&1
    awk '{printf "%.3f\n", $1 + $2}' "$work/time"
}
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

"$cli" run --project bench -- "$loop" "$N" > /dev/null 2>&1
wait_agents
run=$(readlink -f "$METRICTAP_DIR/latest-run")
rows=$(wc -l < "$run/history.jsonl")
agent_cpu=$(sed -n 's/.*"event":"finish".*"agent_cpu_s":\([0-9.]*\).*/\1/p' "$run/events.jsonl")
agent_us=$(echo "scale=3; 1000000 * $agent_cpu / $rows" | bc -l)
hist_bytes=$(stat -c %s "$run/history.jsonl")
for be in tensorboard wandb; do
    c=$(cpu_of "$cli" export -q --to "$be" --all)
    us=$(echo "scale=3; 1000000 * $c / $rows" | bc -l)
    ratio=$(echo "scale=3; $us / $agent_us" | bc -l)
    printf 'ROW\tbackend %s: CPU per history row (vs the agent'"'"'s own per row)\t%s us\t%s us\t%s\treport\n' \
        "$be" "$us" "$agent_us" "$ratio"
done
tb_bytes=$(find "$work/tb" -name 'events.out.tfevents.*' -printf '%s\n' | awk '{s+=$1} END {print s}')
wb_bytes=$(find "$work/wb" -name 'run-*.wandb' -printf '%s\n' | awk '{s+=$1} END {print s}')
for f in "tensorboard:$tb_bytes" "wandb:$wb_bytes"; do
    b=${f#*:}
    per=$(echo "scale=1; $b / $rows" | bc -l)
    base=$(echo "scale=1; $hist_bytes / $rows" | bc -l)
    printf 'ROW\tbytes per history row, %s file (vs history.jsonl)\t%s B\t%s B\t%s\treport\n' \
        "${f%%:*}" "$per" "$base" "$(echo "scale=3; $per / $base" | bc -l)"
done
echo "INFO backends: $rows rows of 3 metrics and a step axis; agent ${agent_cpu}s CPU for them"

# The capture rows with every backend on, against none.
: > none; : > all
for _ in $(seq "$R"); do
    wait_agents; rm -rf "$METRICTAP_DIR" "$work/tb" "$work/wb"
    "$cli" run -- "$loop" "$NCAP" > out.txt 2> err.txt
    sed -n 's/^elapsed_s=\([0-9.]*\).*/\1/p' err.txt >> none
    wait_agents; rm -rf "$METRICTAP_DIR" "$work/tb" "$work/wb"
    WANDB_MODE=online MLFLOW_TRACKING_URI=http://127.0.0.1:9 METRICTAP_UPLOAD_FINISH_TIMEOUT=1s \
        "$cli" run --to mlflow,tensorboard,wandb -- "$loop" "$NCAP" > out.txt 2> err.txt
    sed -n 's/^elapsed_s=\([0-9.]*\).*/\1/p' err.txt >> all
done
m0=$(median < none)
m1=$(median < all)
printf 'ROW\tcapture: print loop %s lines wrapped, all three backends on (vs none)\t%s s\t%s s\t%s\t<= 1.05\n' \
    "$NCAP" "$m1" "$m0" "$(echo "scale=3; $m1 / $m0" | bc -l)"
echo "INFO backends: capture runs none: $(tr '\n' ' ' < none)"
echo "INFO backends: capture runs all:  $(tr '\n' ' ' < all)"
