#!/usr/bin/env bash
# make demo: runs the example legacy trainer under metrictap in a fresh store
# and shows the run.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
demo=$(mktemp -d /tmp/metrictap-demo.XXXXXX)
cd "$demo"
echo "== metrictap run --project demo --tags example -- train_ok --lr 0.1 --epochs 5  (in $demo)"
"$root/build/metrictap" run --project demo --tags example -- "$root/build/examples/train_ok" --lr 0.1 --epochs 5
echo
echo "== metrictap ls"
"$root/build/metrictap" ls
echo
run=$(basename "$(readlink metrictap/latest-run)")
echo "== metrictap show $run"
"$root/build/metrictap" show "$run"
echo
echo "== history.jsonl"
cat metrictap/latest-run/history.jsonl
