#!/usr/bin/env bash
# Probe (not part of make bench): how the ring's size changes what capture
# costs the program.  Runs the print loop unwrapped and under `metrictap run`
# with several METRICTAP_RING_SIZE values, interleaved, to a file and to a
# drained pipe, and prints the median loop wall and CPU time of each, and the
# records dropped in the last run of each size.
#   bench/probes/ring_size.sh [runs] [sizes...]
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
R=${1:-5}; shift || true
SIZES=${*:-256k 1m 4m 16m 64m}
N=${BENCH_LINES:-2000000}
loop="$root/build/bench/print_loop"; cli="$root/build/metrictap"
work=$(mktemp -d /tmp/metrictap-probe.XXXXXX); trap 'rm -rf "$work"' EXIT
cd "$work"; export METRICTAP_DIR="$work/store"
one() { # mode label cmd... -> appends "wall cpu" to $label.$mode
    local mode=$1 label=$2; shift 2
    if [ "$mode" = pipe ]; then "$@" "$loop" "$N" 2> err | cat > /dev/null
    else "$@" "$loop" "$N" > out 2> err; fi
    sed -n 's/^elapsed_s=\([0-9.]*\) cpu_s=\([0-9.]*\).*/\1 \2/p' err >> "$label.$mode"
}
for _ in $(seq "$R"); do
    for mode in file pipe; do
        one $mode plain env
        for s in $SIZES; do one $mode "ring$s" env METRICTAP_RING_SIZE=$s "$cli" run --; done
    done
done
med() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
for mode in file pipe; do
    pw=$(cut -d' ' -f1 plain.$mode | med); pc=$(cut -d' ' -f2 plain.$mode | med)
    echo "$mode plain: wall $pw cpu $pc"
    for s in $SIZES; do
        w=$(cut -d' ' -f1 "ring$s.$mode" | med); c=$(cut -d' ' -f2 "ring$s.$mode" | med)
        echo "$mode ring $s: wall $w ($(echo "scale=3; $w / $pw" | bc -l)) cpu $c ($(echo "scale=3; $c / $pc" | bc -l))"
    done
done
