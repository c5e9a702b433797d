#!/usr/bin/env bash
# Capture overhead (issue: capture everything a program prints): a C loop
# printing N formatted metric lines with printf, to a file and to a pipe that
# a reader drains, unwrapped and under `metrictap run`, alternating, median of
# R runs.  The figure is the loop's own wall time (the program measures it);
# a second row gives the whole `metrictap run` command's time, which includes
# the agent finishing its backlog after the program exited.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
N=${BENCH_LINES:-2000000}
R=${BENCH_REPEAT:-5}
loop="$root/build/bench/print_loop"
cli="$root/build/metrictap"
work=$(mktemp -d /tmp/metrictap-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
cd "$work"
export METRICTAP_DIR="$work/store"

elapsed() { sed -n 's/^elapsed_s=//p' "$1"; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
now() { date +%s.%N; }

: > plain_file; : > wrapped_file; : > plain_pipe; : > wrapped_pipe; : > wrapped_total; : > plain_total
for _ in $(seq "$R"); do
    t0=$(now); "$loop" "$N" > out.txt 2> err.txt; t1=$(now)
    elapsed err.txt >> plain_file; echo "$t1 - $t0" | bc -l >> plain_total
    t0=$(now); "$cli" run -- "$loop" "$N" > out.txt 2> err.txt; t1=$(now)
    elapsed err.txt >> wrapped_file; echo "$t1 - $t0" | bc -l >> wrapped_total
    "$loop" "$N" 2> err.txt | cat > /dev/null; elapsed err.txt >> plain_pipe
    "$cli" run -- "$loop" "$N" 2> err.txt | cat > /dev/null; elapsed err.txt >> wrapped_pipe
done
# Capture completeness of the last file run: captured bytes vs printed bytes.
last=$(readlink -f "$METRICTAP_DIR/latest-run")
printed=$(stat -c %s out.txt 2>/dev/null || echo 0)

row() { # name figure baseline target unit
    local ratio; ratio=$(echo "scale=3; $2 / $3" | bc -l)
    printf 'ROW\t%s\t%s %s\t%s %s\t%s\t%s\n' "$1" "$2" "$5" "$3" "$5" "$ratio" "$4"
}
pf=$(median < plain_file); wf=$(median < wrapped_file)
pp=$(median < plain_pipe); wp=$(median < wrapped_pipe)
pt=$(median < plain_total); wt=$(median < wrapped_total)
row "capture: printf loop to a file, ${N} lines (program time)" "$wf" "$pf" "<= 1.10" s
row "capture: printf loop to a drained pipe (program time)" "$wp" "$pp" "<= 1.05" s
row "capture: whole 'metrictap run' command, file" "$wt" "$pt" "report" s
python3 - "$last" "$printed" <<'PY'
import json, sys
run = json.load(open(sys.argv[1] + "/run.json"))
counts = run["metadata"]["capture_counts"]
captured = counts["stdout_bytes"]
printed = int(sys.argv[2])
print(f"ROW\tcapture: stdout bytes captured / printed (last pipe run; file run {printed} B)"
      f"\t{captured} B\t{printed} B\t{captured / printed if printed else 0:.3f}\t1.000 "
      f"(dropped records {counts['dropped_records']})")
PY
