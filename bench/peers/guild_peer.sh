#!/usr/bin/env bash
# Zero-code capture against Guild AI (issue 20), the other tracker that turns
# printed lines into scalars with no code.  The bench's print loop
# (build/bench/print_loop) in two shapes, each run plain, under `guild run`
# (an exec: operation of a guild.yml made here, output-scalars matching the
# line) and under `metrictap run`, stdout to a file each time:
#   - full speed: BENCH_GUILD_LINES lines (default 2,000,000), printf only;
#   - a trainer's shape: 40,000 lines with 8000 square roots before each
#     (about 40,000 lines/s on the 2-core VM), BENCH_PEER_REPEAT times.
# Figures: the loop's own wall time (print_loop measures it; Guild passes its
# stderr through) against plain, and the scalars each tracker recorded (Guild:
# its run's tfevents, read with Guild's own reader; metrictap: the values in
# history.jsonl) against the 3 a line printed (loss, acc, lr).
# Guild's venv is .venv-bench/guild (scripts/bench-venv.sh); when it cannot be
# made, every row says "not installable" and why.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
FULL=${BENCH_GUILD_LINES:-2000000}
R=${BENCH_PEER_REPEAT:-3}
loop="$root/build/bench/print_loop"
cli="$root/build/metrictap"
guild="$root/.venv-bench/guild/bin/guild"
gpy="$root/.venv-bench/guild/bin/python"
[ -x "$loop" ] && [ -x "$cli" ] || { echo "guild_peer: build first (make all build/bench/print_loop)" >&2; exit 1; }

full_name="vs Guild: printf loop, ${FULL} lines"
train_name="vs Guild: compute loop, ~40k lines/s, 40000 lines"
why=$("$root/scripts/bench-venv.sh" guild 2>&1 >/dev/null | tail -1)
if [ ! -x "$guild" ] || ! "$guild" --version > /dev/null 2>&1; then
    why=${why:-"$guild does not run"}
    for n in "$full_name" "$train_name"; do
        printf 'ROW\t%s (guild run)\tnot installable: %s\t-\t-\treport\n' "$n" "$why"
    done
    exit 0
fi

work=$(mktemp -d /tmp/metrictap-bench-guild.XXXXXX)
trap 'rm -rf "$work"' EXIT
cd "$work"
export METRICTAP_DIR="$work/store" GUILD_HOME="$work/guild-home"
mkdir -p "$GUILD_HOME"
# One named-group pattern: Guild takes the step from (?P<step>) and one
# scalar from each other group, as metrictap's parser does from the line.
cat > guild.yml <<EOF
loop:
  description: the bench's print loop
  exec: $loop \${lines} \${work}
  flags:
    lines: 1000
    work: 0
  sourcecode: no
  output-scalars:
    - 'step (?P<step>\step) loss=(?P<loss>\value) acc=(?P<acc>\value) lr=(?P<lr>\value)'
EOF

elapsed() { sed -n 's/^elapsed_s=\([0-9.]*\).*/\1/p' "$1" | tail -1; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }
now() { date +%s.%N; }
guild_scalars() { # scalars in the latest Guild run's tfevents, and per tag
    "$gpy" - "$("$guild" runs info 2>/dev/null | sed -n 's/^run_dir: //p')" <<'PY'
import collections, sys
from guild import tfevent
tags = collections.Counter(tag for tag, _val, _step in tfevent.ScalarReader(sys.argv[1] + "/.guild"))
print(sum(tags.values()), " ".join(f"{t}={n}" for t, n in sorted(tags.items())))
PY
}
mt_scalars() { # values of loss/acc/lr in the latest metrictap run's history
    python3 - "$METRICTAP_DIR/latest-run/history.jsonl" <<'PY'
import collections, json, sys
tags = collections.Counter()
for line in open(sys.argv[1]):
    tags.update(k for k in json.loads(line) if k in ("loss", "acc", "lr"))
print(sum(tags.values()), " ".join(f"{t}={n}" for t, n in sorted(tags.items())))
PY
}

shape() { # name lines work repeats
    local name=$1 n=$2 w=$3 reps=$4
    : > plain; : > guilded; : > wrapped; : > guild_total
    for _ in $(seq "$reps"); do
        "$loop" "$n" "$w" > out.txt 2> err.txt; elapsed err.txt >> plain
        t0=$(now)
        if ! "$guild" run -y loop lines="$n" work="$w" > out.txt 2> err.txt; then
            printf 'ROW\t%s: guild run\tfailed: %s\t-\t-\treport\n' "$name" "$(grep -v elapsed_s err.txt | tail -1)"
            return 0
        fi
        echo "$(now) - $t0" | bc -l >> guild_total
        elapsed err.txt >> guilded
        "$cli" run -- "$loop" "$n" "$w" > out.txt 2> err.txt; elapsed err.txt >> wrapped
    done
    local p g m gs ms
    p=$(median < plain); g=$(median < guilded); m=$(median < wrapped)
    read -r gs gtags <<< "$(guild_scalars)"; gs=${gs:-0}
    read -r ms mtags <<< "$(mt_scalars)"; ms=${ms:-0}
    local want=$((3 * n))
    printf 'ROW\t%s: guild run / plain (loop s)\t%s s\t%s s\t%s\treport\n' "$name" "$g" "$p" "$(ratio "$g" "$p")"
    printf 'ROW\t%s: metrictap run / plain (loop s)\t%s s\t%s s\t%s\treport\n' "$name" "$m" "$p" "$(ratio "$m" "$p")"
    printf 'ROW\t%s: metrictap run / guild run (loop s)\t%s s\t%s s\t%s\treport\n' "$name" "$m" "$g" "$(ratio "$m" "$g")"
    printf 'ROW\t%s: Guild scalars / printed (3 a line)\t%s\t%s\t%s\t1.000\n' "$name" "$gs" "$want" "$(ratio "$gs" "$want")"
    printf 'ROW\t%s: metrictap scalars / printed (3 a line)\t%s\t%s\t%s\t1.000\n' "$name" "$ms" "$want" "$(ratio "$ms" "$want")"
    echo "INFO $name: loop s plain $(tr '\n' ' ' < plain)/ guild run $(tr '\n' ' ' < guilded)/ metrictap run $(tr '\n' ' ' < wrapped); whole guild run command $(median < guild_total | xargs printf '%.2f') s; scalars by tag (last run): Guild $gtags, metrictap $mtags"
}

# The first guild run pays for Guild's own start-up caches: not a figure.
"$guild" run -y loop lines=10 > /dev/null 2>&1
shape "$full_name" "$FULL" 0 1
shape "$train_name" 40000 8000 "$R"
echo "INFO guild peer: $("$guild" --version 2>&1 | head -1), $("$gpy" --version)"
