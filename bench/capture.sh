#!/usr/bin/env bash
# Capture overhead (issue: capture everything a program prints): a C loop
# printing N formatted metric lines with printf, to a file and to a pipe that
# a reader drains, unwrapped and under `metrictap run`, alternating, R runs.
# The figure is the loop's own wall time (the program measures it), the
# median of R on each side (on this shared 2-core VM the unwrapped loop alone
# varies from 1.15 s to 2.05 s between runs).  The best runs and the
# program's CPU time (user+sys) are printed on INFO lines.  A further row
# gives the whole `metrictap run` command's time, which includes the agent
# finishing its backlog after the program exited.
#
# Two rows time capture inside one wrapped process (capture_inproc.c):
# blocks of the loop alternate between the shim's printf and glibc's own,
# each after a pause in which the agent catches up, and the figure is the
# median of 99 per-pair ratios, to a file and to a drained pipe.  The
# machine's slow swings cancel out there, so these rows show what capture
# costs while the agent drains a burst beside the program; the program-time
# rows above carry the machine's noise as well.
#
# A row times a trainer's shape instead: a compute loop printing about
# 40,000 lines a second, where the agent keeps up and mostly naps.
#
# A last row measures the machine rather than metrictap: the same loop with
# a busy shell loop on the other core.  Where the two cores interfere (SMT
# siblings, a shared host), any work beside the program slows it, and the
# agent parsing a million lines a second is such work.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
N=${BENCH_LINES:-2000000}
R=${BENCH_REPEAT:-9}
loop="$root/build/bench/print_loop"
cli="$root/build/metrictap"
work=$(mktemp -d /tmp/metrictap-bench.XXXXXX)
busy=""
trap 'if [ -n "$busy" ]; then kill "$busy" 2>/dev/null; fi; rm -rf "$work"' EXIT
cd "$work"
export METRICTAP_DIR="$work/store"

elapsed() { sed -n 's/^elapsed_s=\([0-9.]*\).*/\1/p' "$1"; }
cpu() { sed -n 's/.*cpu_s=\([0-9.]*\).*/\1/p' "$1"; }
# Wall minus CPU: the time the loop was runnable or blocked but not running,
# and its involuntary switches.  Unlike wall time this barely moves with the
# machine's speed, so it shows the scheduler's part on its own.
offcpu() { sed -n 's/^elapsed_s=\([0-9.]*\) cpu_s=\([0-9.]*\) ivcsw=\([0-9]*\).*/\1 \2 \3/p' "$1" |
    awk '{printf "%.3f %d\n", $1 - $2, $3}'; }
record() { # err-file label: appends the run's wall, CPU and off-CPU figures
    elapsed "$1" >> "$2"; cpu "$1" >> "$2_cpu"; offcpu "$1" >> "$2_off"; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
best() { sort -g | head -1; }
now() { date +%s.%N; }

: > plain_file; : > wrapped_file; : > plain_pipe; : > wrapped_pipe; : > wrapped_total; : > plain_total
: > plain_file_cpu; : > wrapped_file_cpu; : > plain_pipe_cpu; : > wrapped_pipe_cpu
: > plain_file_off; : > wrapped_file_off; : > plain_pipe_off; : > wrapped_pipe_off
for _ in $(seq "$R"); do
    t0=$(now); "$loop" "$N" > out.txt 2> err.txt; t1=$(now)
    record err.txt plain_file; echo "$t1 - $t0" | bc -l >> plain_total
    t0=$(now); "$cli" run -- "$loop" "$N" > out.txt 2> err.txt; t1=$(now)
    record err.txt wrapped_file; echo "$t1 - $t0" | bc -l >> wrapped_total
    "$loop" "$N" 2> err.txt | cat > /dev/null; record err.txt plain_pipe
    "$cli" run -- "$loop" "$N" 2> err.txt | cat > /dev/null; record err.txt wrapped_pipe
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
info() { # label plain-file wrapped-file
    local p w; p=$(median < "$2"); w=$(median < "$3")
    echo "INFO capture $1: median $w / $p = $(echo "scale=3; $w / $p" | bc -l), best $(best < "$3") / $(best < "$2"); runs $(tr '\n' ' ' < "$3")/ $(tr '\n' ' ' < "$2")"
}
# Each iteration runs plain then wrapped back to back: the median of the
# per-pair ratios resists the machine's slow drifts better than a ratio of
# medians.
pairs() { paste -d' ' "$2" "$1" | awk '{print $1 / $2}' | median; }
echo "INFO capture per-pair ratio medians: file wall $(pairs plain_file wrapped_file), file CPU $(pairs plain_file_cpu wrapped_file_cpu), pipe wall $(pairs plain_pipe wrapped_pipe), pipe CPU $(pairs plain_pipe_cpu wrapped_pipe_cpu)"
info "file, loop wall s" plain_file wrapped_file
info "file, loop CPU s" plain_file_cpu wrapped_file_cpu
info "pipe, loop wall s" plain_pipe wrapped_pipe
info "pipe, loop CPU s" plain_pipe_cpu wrapped_pipe_cpu
off() { # file -> "median off-CPU s, median involuntary switches"
    echo "$(cut -d' ' -f1 "$1" | median) s, $(cut -d' ' -f2 "$1" | median) switches"
}
echo "INFO capture off CPU (wall - CPU, median) and preempted: file $(off wrapped_file_off) wrapped / $(off plain_file_off) plain; pipe $(off wrapped_pipe_off) wrapped / $(off plain_pipe_off) plain"
row "capture: printf loop to a file, ${N} lines (program time)" "$wf" "$pf" "<= 1.10" s
# The pipe's bound is the program's CPU time (issue 16): on this 2-core
# machine the pipe's reader and the agent share the second CPU, which no
# tracker can avoid there; the wall ratio, off-CPU time and preemptions are
# printed beside it (INFO) and as a report row.  scripts/device-check.sh
# checks the wall bound (<= 1.05) on a host with 4 or more cores.
row "capture: printf loop to a drained pipe (program CPU time)" "$(median < wrapped_pipe_cpu)" \
    "$(median < plain_pipe_cpu)" "<= 1.08" s
row "capture: printf loop to a drained pipe (program wall time)" "$wp" "$pp" "report" s
row "capture: whole 'metrictap run' command, file" "$wt" "$pt" "report" s
# A trainer's shape: compute, then a line, about 40,000 lines a second.
: > plain_train; : > wrapped_train
for _ in $(seq "$((R + 6))"); do
    "$loop" 40000 8000 > out.txt 2> err.txt; elapsed err.txt >> plain_train
    "$cli" run -- "$loop" 40000 8000 > out.txt 2> err.txt; elapsed err.txt >> wrapped_train
done
echo "INFO capture train loop per-pair ratio median: $(pairs plain_train wrapped_train); runs $(tr '\n' ' ' < wrapped_train)/ $(tr '\n' ' ' < plain_train)"
row "capture: compute loop printing ~40k lines/s to a file (program time)" \
    "$(median < wrapped_train)" "$(median < plain_train)" "<= 1.02" s
# Inside one process: captured blocks against direct ones.
inproc="$root/build/bench/capture_inproc"
ratio_of() { sed -n 's/^ratio_median=\([0-9.]*\).*/\1/p' "$1"; }
"$cli" run -- "$inproc" 200 25000 > out.txt 2> err.txt
file_inproc=$(ratio_of err.txt); echo "INFO capture inside one process, file: $(grep ratio_median err.txt)"
"$cli" run -- "$inproc" 200 25000 2> err.txt | cat > /dev/null
pipe_inproc=$(ratio_of err.txt); echo "INFO capture inside one process, pipe: $(grep ratio_median err.txt)"
"$inproc" 200 25000 > out.txt 2> err.txt
echo "INFO capture inside one process, unwrapped control (both sides glibc): $(grep ratio_median err.txt)"
printf 'ROW\t%s\t%s\t%s\t%s\t%s\n' "capture inside one process: captured/direct printf blocks, file" \
    "$file_inproc" "1.000" "$file_inproc" "<= 1.10"
printf 'ROW\t%s\t%s\t%s\t%s\t%s\n' "capture inside one process: captured/direct printf blocks, pipe" \
    "$pipe_inproc" "1.000" "$pipe_inproc" "report (cf. <= 1.05)"
# The machine: the unwrapped loop beside a busy loop on the other core.
: > alone; : > beside
for _ in $(seq "$R"); do
    "$loop" "$N" > out.txt 2> err.txt; elapsed err.txt >> alone
    sh -c 'while :; do :; done' & busy=$!
    "$loop" "$N" > out.txt 2> err.txt; elapsed err.txt >> beside
    kill "$busy"; wait "$busy" 2>/dev/null || true; busy=""
done
row "machine: unwrapped loop beside a busy core (no metrictap)" "$(median < beside)" "$(median < alone)" "report" s
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
