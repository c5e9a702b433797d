#!/usr/bin/env bash
# make bench: runs every bench/*.sh (except this one) and the peer rows of
# bench/peers/*_peer.sh (Guild AI, W&B, MLflow), and prints one table.
#   bench/run.sh          everything
#   bench/run.sh peers    only the peer rows
#   bench/run.sh core     everything but the peer rows (about 15 minutes fewer)
# Each script prints rows as: ROW<TAB>name<TAB>figure<TAB>baseline<TAB>ratio<TAB>target
# where the baseline was measured in the same run.  Lines starting INFO are
# printed after the table (medians, spreads, counts behind a figure).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
rows=$(mktemp)
info=$(mktemp)
trap 'rm -f "$rows" "$info"' EXIT
scripts=("$here"/*.sh "$here"/peers/*_peer.sh)
[ "${1:-}" = peers ] && scripts=("$here"/peers/*_peer.sh)
[ "${1:-}" = core ] && scripts=("$here"/*.sh)
for script in "${scripts[@]}"; do
    [ "$(basename "$script")" = run.sh ] && continue
    echo "bench: $(basename "$script") ..." >&2
    # The capture bench leaves gigabytes of dirty pages and deleted stores;
    # written back during the next script, they slowed its timings.
    sync
    if ! "$script" > "$rows.out" 2> "$rows.err"; then
        echo "bench: $(basename "$script") failed:" >&2
        tail -5 "$rows.err" >&2
    fi
    grep '^ROW' "$rows.out" >> "$rows" || true
    grep '^INFO' "$rows.out" >> "$info" || true
done
rm -f "$rows.out" "$rows.err"
echo
printf '%-64s %-16s %-16s %-8s %s\n' NAME FIGURE BASELINE RATIO TARGET
cut -f2- "$rows" | awk -F'\t' '{printf "%-64s %-16s %-16s %-8s %s\n", $1, $2, $3, $4, $5}'
if [ -s "$info" ]; then
    echo
    sed 's/^INFO /  /' "$info"
fi
