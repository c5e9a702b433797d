#!/usr/bin/env bash
# stack: how long `metrictap stack` holds the threads of a program
# (agent/stack.c), for 1, 8 and 64 threads blocked a few calls deep.  Each
# thread is held alone, from PTRACE_INTERRUPT to PTRACE_DETACH; the figure is
# the longest hold of a dump (median of BENCH_STACK_DUMPS dumps).  Baseline,
# measured in the same run: gdb attaching and printing every thread's
# backtrace, during which the whole program is stopped.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
B=$(cd "$here/.." && pwd)/build
CLI=$B/metrictap
VICTIM=$B/bench/stack_threads
DUMPS=${BENCH_STACK_DUMPS:-20}
work=$(mktemp -d)
victim=
[ -x "$VICTIM" ] && [ -x "$CLI" ] || { echo "bench: build $VICTIM and $CLI first" >&2; exit 1; }
trap '[ -n "$victim" ] && kill -9 $victim 2>/dev/null; rm -rf "$work"' EXIT

for n in 1 8 64; do
    "$VICTIM" "$n" > "$work/ready" &
    victim=$!
    for _ in $(seq 200); do grep -q ready "$work/ready" 2>/dev/null && break; sleep 0.05; done
    for _ in $(seq 20); do
        [ "$(ls /proc/$victim/task | wc -l)" -ge "$n" ] && break
        sleep 0.05
    done
    sleep 0.2 # the workers reach their wait
    : > "$work/dumps"
    for _ in $(seq "$DUMPS"); do
        "$CLI" stack --pid "$victim" --json >> "$work/dumps" || echo "bench: stack failed" >&2
    done
    gdb_ms=-
    if command -v gdb > /dev/null; then
        t0=$(date +%s.%N)
        gdb -q -nx -batch -p "$victim" -ex 'thread apply all bt' > /dev/null 2>&1
        t1=$(date +%s.%N)
        gdb_ms=$(python3 -c "print(f'{($t1 - $t0) * 1000:.1f}')")
    fi
    kill -9 "$victim"; wait "$victim" 2>/dev/null; victim=
    python3 - "$work/dumps" "$n" "$gdb_ms" <<'PY'
import json, statistics, sys
path, n, gdb_ms = sys.argv[1], int(sys.argv[2]), sys.argv[3]
dumps = [json.loads(l) for l in open(path) if l.strip()]
per = [t["held_us"] for d in dumps for p in d["processes"] for t in p["threads"] if "held_us" in t]
longest = statistics.median(d["held_max_us"] for d in dumps)
total = statistics.median(d["held_total_us"] for d in dumps)
frames = statistics.median(len(t["frames"]) for d in dumps for p in d["processes"] for t in p["threads"])
if gdb_ms != "-":
    base, ratio = f"{float(gdb_ms) * 1000:.0f} us", f"{longest / (float(gdb_ms) * 1000):.4f}"
else:
    base, ratio = "-", "-"
print(f"ROW\tstack: longest hold of one thread per dump, {n} threads (vs gdb attach + bt, all stopped)"
      f"\t{longest:.0f} us\t{base}\t{ratio}\treport")
print(f"INFO stack {n} threads: {len(dumps)} dumps, {len(per)} holds; per thread median "
      f"{statistics.median(per):.0f} us, max {max(per):.0f} us; sum of holds per dump median "
      f"{total:.0f} us; {frames:.0f} frames per thread")
PY
done
