#!/usr/bin/env bash
# Makes the bench's peer venvs, apart from the test venv (.venv):
#   .venv-bench/guild  guildai (bench/peers/requirements-guild.txt)
#   .venv-bench/sdk    wandb and mlflow (bench/peers/requirements-sdk.txt)
# Two of them because guildai pins protobuf<5 and the SDKs need a newer one.
#   scripts/bench-venv.sh [guild|sdk]...   (default: both)
# Safe to run again: a venv whose requirements did not change is left alone.
# A venv that cannot be made prints why on stderr and exits 1; the peer
# scripts then print their rows as "not installable: <reason>".
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
status=0
[ $# -gt 0 ] || set -- guild sdk
for n in "$@"; do
    req=bench/peers/requirements-$n.txt
    dir=.venv-bench/$n
    [ -f "$req" ] || { echo "bench-venv: no $req" >&2; status=1; continue; }
    sum=$(sha256sum "$req" | cut -d' ' -f1)
    [ "$(cat "$dir/.metrictap-reqs" 2>/dev/null)" = "$sum" ] && continue
    echo "bench-venv: installing $req into $dir" >&2
    log=$(mktemp)
    if { [ -x "$dir/bin/python" ] || "$PY" -m venv "$dir"; } >"$log" 2>&1 &&
        "$dir/bin/python" -m pip install -q --disable-pip-version-check -r "$req" >"$log" 2>&1; then
        echo "$sum" > "$dir/.metrictap-reqs"
    else
        # pip's last ERROR line names what failed; else the last line.
        reason=$(grep -E 'ERROR|rror:' "$log" | tail -1)
        [ -n "$reason" ] || reason=$(grep -v '^[[:space:]]*$' "$log" | tail -1)
        echo "bench-venv: $dir: ${reason:-failed}" >&2
        status=1
    fi
    rm -f "$log"
done
exit "$status"
