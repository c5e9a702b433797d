#!/usr/bin/env bash
# The runs table at 100,000 runs (issue: the runs table and run views).
# bench/gen_runs writes BENCH_RUNS (default 100000) runs in one project
# straight into a fresh store; then, each the median of BENCH_REPEAT runs:
#   ls --tag X --filter ...        from the index  vs  --scan (every run.json
#                                  and summary.json read and parsed, no index;
#                                  once, it takes seconds)
#   ls --sort -summary.X --limit   the same pair
#   show RUN                       vs finding the run with --scan
#   ls's self-repair look          unchanged store, and with one run dir added
#                                  by hand, vs ls --no-sync
# and once: generation time, reindex time (vs the --scan of the filter),
# store and index size.  Wall-clock seconds; on a shared machine they vary, so each
# query's user+sys CPU seconds go to stderr beside them.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
N=${BENCH_RUNS:-100000}
R=${BENCH_REPEAT:-5}
cli="$root/build/metrictap"
gen="$root/build/bench/gen_runs"
[ -x "$gen" ] || make -C "$root" --no-print-directory build/bench/gen_runs >&2
work=$(mktemp -d /tmp/metrictap-table.XXXXXX)
trap 'rm -rf "$work"' EXIT
export METRICTAP_DIR="$work/store"
export TIMEFORMAT='%R %U %S'

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
# once NAME CMD...: wall seconds of one run (stdout discarded), cpu to stderr
once() {
    local name=$1; shift
    local t; t=$( { time "$@" > /dev/null 2> "$work/err"; } 2>&1 ) || { cat "$work/err" >&2; exit 1; }
    echo "table: $name: wall ${t%% *} s, user+sys $(echo "$t" | awk '{print $2 + $3}') s" >&2
    echo "${t%% *}"
}
# med NAME CMD...: median wall seconds of R runs
med() {
    local name=$1; shift
    for _ in $(seq "$R"); do once "$name" "$@"; done | median
}
row() { # name figure baseline target unit
    local ratio=-
    [ "$3" != - ] && ratio=$(awk -v a="$2" -v b="$3" 'BEGIN { printf "%.3g", (b > 0) ? a / b : 0 }')
    local base=$3; [ "$3" != - ] && base="$3 $5"
    printf 'ROW\t%s\t%s %s\t%s\t%s\t%s\n' "$1" "$2" "$5" "$base" "$ratio" "$4"
}

t0=$(date +%s.%N)
"$gen" "$METRICTAP_DIR" "$N" > "$work/gen.out"
t1=$(date +%s.%N)
gen_s=$(echo "$t1 - $t0" | bc -l | xargs printf '%.1f')
first=$(awk -F'\t' '$1 == "first" {print $2}' "$work/gen.out")

store_mb=$(du -sm "$METRICTAP_DIR" | cut -f1)

reindex_s=$(once reindex "$cli" reindex)
index_mb=$(du -cm "$METRICTAP_DIR"/index.sqlite* | tail -1 | cut -f1)

# same NAME ARGS...: the index's and the scan's CSV must agree before their
# times mean anything; prints the scan's wall seconds (it is the baseline).
same() {
    local name=$1; shift
    "$cli" "$@" --csv > "$work/ix.csv"
    local t; t=$(once "$name-scan" "$cli" "$@" --csv --scan)
    "$cli" "$@" --csv --scan > "$work/scan.csv"
    if ! cmp -s "$work/ix.csv" "$work/scan.csv"; then
        echo "table: the index and the scan disagree on: $*" >&2
        diff "$work/ix.csv" "$work/scan.csv" | head >&2
        exit 1
    fi
    echo "table: $*: $(($(wc -l < "$work/ix.csv") - 1)) runs" >&2
    echo "$t"
}
filter='summary.val_acc > 0.9 and config.lr < 0.01'
q=(ls --project bench --tag baseline --filter "$filter" --columns summary.val_acc,config.lr)
ls_scan_s=$(same ls-filter "${q[@]}")
ls_s=$(med ls-filter "$cli" "${q[@]}")
s=(ls --project bench --sort -summary.val_acc --limit 20 --columns summary.val_acc,config.lr)
sort_scan_s=$(same ls-sort "${s[@]}")
sort_s=$(med ls-sort "$cli" "${s[@]}")

show_s=$(med show "$cli" show "$first")
find_scan_s=$(once find-scan "$cli" ls --scan --project bench --filter "id = \"$first\"")

check_s=$(med repair-check "$cli" ls --project bench --limit 1)
nosync_s=$(med no-sync "$cli" ls --project bench --limit 1 --no-sync)
# A run directory appears behind the index's back: the next ls lists the
# project's 100,000 entries, finds it and indexes it.
cp -r "$METRICTAP_DIR/runs/bench/$first" "$METRICTAP_DIR/runs/bench/zzcopied"
appear_s=$(once repair-new-dir "$cli" ls --project bench --limit 1)
"$cli" ls --project bench --filter 'id = "zzcopied"' --csv | grep -q zzcopied ||
    { echo "table: the copied run was not indexed" >&2; exit 1; }

row "table: generate $N runs (bench/gen_runs)" "$gen_s" - "<=120 s" s
row "table: store size, $N runs" "$store_mb" - "<=2048 MB" MB
row "table: index.sqlite size (baseline: the store)" "$index_mb" "$store_mb" - MB
row "table: reindex $N runs (baseline: one --scan)" "$reindex_s" "$ls_scan_s" - s
row "table: ls --tag --filter, $N runs (baseline: --scan)" "$ls_s" "$ls_scan_s" "<=0.5 s" s
row "table: ls --sort -summary --limit 20 (baseline: --scan)" "$sort_s" "$sort_scan_s" "<=0.5 s" s
row "table: show RUN, 1000 rows (baseline: find by --scan)" "$show_s" "$find_scan_s" "<=0.2 s" s
row "table: ls self-repair look, no change (baseline: --no-sync)" "$check_s" "$nosync_s" - s
row "table: ls after a run dir appeared (baseline: --no-sync)" "$appear_s" "$nosync_s" - s
