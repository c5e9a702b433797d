#!/usr/bin/env bash
# Persist, then parse (issue 16): a C loop printing N lines as fast as printf
# goes (bench/print_loop.c, ~2-4M lines/s here) to a file under `metrictap
# run` with the default config.
#  - captured/printed lines: the minimum over RUNS (5) runs of 2,000,000
#    lines, and one run of 10,000,000 (target 1.000 in every run);
#  - the drain's rate (journal bytes and records per second of the drain
#    thread's CPU) beside dd writing the same filesystem (bytes per second of
#    dd's CPU: both the page cache's price, no fsync);
#  - the agent's end-to-end parse rate (lines per second of the parse
#    thread's CPU: journal read back, line assembly, rules, history,
#    output.log) beside `metrictap parse` of the same log (lines per second of
#    its CPU) - both one core;
#  - the whole `metrictap run` command's wall time (the program plus the
#    parse tail) beside the unwrapped loop's, as a figure.
# Prints ROW/INFO lines for bench/run.sh.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${RUNS:-5}
loop="$root/build/bench/print_loop"
cli="$root/build/metrictap"
work=$(mktemp -d /tmp/metrictap-burst.XXXXXX)
trap 'rm -rf "$work"' EXIT
cd "$work"
export METRICTAP_DIR="$work/store"
now() { date +%s.%N; }
finish_field() { # run-dir key
    grep '"event":"finish"' "$1/events.jsonl" | tail -1 | sed -n "s/.*\"$2\":\([0-9.]*\).*/\1/p"; }

burst() { # lines -> "captured printed total_s plain_s run_dir"
    local n=$1 t0 t1 t2 dir lines
    t0=$(now); "$loop" "$n" > plain.txt 2> /dev/null; t1=$(now)
    "$cli" run -- "$loop" "$n" > out.txt 2> err.txt; t2=$(now)
    dir=$(readlink -f "$METRICTAP_DIR/latest-run")
    lines=$(grep -c '^step ' "$dir/output.log" || true)
    echo "$lines $n $(echo "$t2 - $t1" | bc -l) $(echo "$t1 - $t0" | bc -l) $dir"
}

ratios=(); totals=(); plains=(); last=""
for _ in $(seq "$RUNS"); do
    read -r got n total plain dir < <(burst 2000000)
    ratios+=("$(echo "scale=6; $got / $n" | bc -l)")
    totals+=("$total"); plains+=("$plain"); last=$dir
done
min_ratio=$(printf '%s\n' "${ratios[@]}" | sort -g | head -1)
echo "INFO burst 2,000,000 lines: captured/printed per run ${ratios[*]}"
printf 'ROW\t%s\t%.6f\t1.000\t%.6f\t1.000 every run\n' \
    "burst: lines captured/printed, 2M lines to a file, min of $RUNS runs" "$min_ratio" "$min_ratio"
median() { printf '%s\n' "$@" | sort -g | sed -n "$(( ($# + 1) / 2 ))p"; }
mt=$(median "${totals[@]}"); mp=$(median "${plains[@]}")
printf 'ROW\t%s\t%.3f s\t%.3f s\t%.3f\treport\n' \
    "burst: whole 'metrictap run' command, 2M lines (program + parse tail)" "$mt" "$mp" \
    "$(echo "$mt / $mp" | bc -l)"

# The journal's stage and the parse stage of the last 2M run.
jb=$(finish_field "$last" journal_bytes); jr=$(finish_field "$last" journal_records)
dcpu=$(finish_field "$last" drain_cpu_s); pcpu=$(finish_field "$last" parse_cpu_s)
lines=$(finish_field "$last" lines)
/usr/bin/time -f "%U %S" -o dd.time dd if=/dev/zero of="$work/dd.out" bs=1M count=256 2> /dev/null
ddcpu=$(awk '{print $1 + $2}' dd.time); rm -f "$work/dd.out"
ddrate=$(echo "268435456 / 1000000 / $ddcpu" | bc -l)
drate=$(echo "$jb / 1000000 / $dcpu" | bc -l)
printf 'ROW\t%s\t%.0f MB/s\t%.0f MB/s (dd)\t%.2f\treport\n' \
    "drain: journal write rate per CPU second" "$drate" "$ddrate" "$(echo "$drate / $ddrate" | bc -l)"
echo "INFO drain: $jr records, $jb bytes in $dcpu s of drain CPU: $(echo "$jr / $dcpu" | bc) records/s"
prate=$(echo "$lines / $pcpu" | bc -l)
grep '^step ' "$last/output.log" > log.txt
HOME=/nonexistent /usr/bin/time -f "%U %S" -o parse.time "$cli" parse --stats log.txt > /dev/null
clicpu=$(awk '{print $1 + $2}' parse.time)
crate=$(echo "2000000 / $clicpu" | bc -l)
printf 'ROW\t%s\t%.0f\t%.0f (metrictap parse)\t%.2f\t>= 2M lines/s\n' \
    "agent parse stage end to end, keyvalue line (lines/s, 1 core)" "$prate" "$crate" \
    "$(echo "$prate / $crate" | bc -l)"

# Ten million lines, once.
read -r got n total plain dir < <(burst 10000000)
printf 'ROW\t%s\t%.6f\t1.000\t%.6f\t1.000\n' "burst: lines captured/printed, 10M lines to a file" \
    "$(echo "scale=6; $got / $n" | bc -l)" "$(echo "scale=6; $got / $n" | bc -l)"
echo "INFO burst 10M: whole command $total s, unwrapped loop $plain s, journal peak $(finish_field "$dir" journal_peak_bytes) bytes, agent RSS $(finish_field "$dir" agent_max_rss_kb) KiB"
