#!/bin/sh
# A 30-run grid (5 learning rates x 2 batch sizes x 3 optimizers) of
# examples/grid_train.py under `metrictap run`, into project "grid" of the
# store in ./metrictap (or $METRICTAP_DIR).  Then, for example:
#   metrictap ls --project grid --sort -summary.eval_accuracy --limit 3
#   metrictap report --project grid --parallel summary.eval_accuracy -o grid.html
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
cli=${METRICTAP:-$here/build/metrictap}
for lr in 0.0001 0.001 0.01 0.03 0.1; do
  for batch in 32 64; do
    for opt in adam adamw sgd; do
      "$cli" run --project grid --name "$opt-lr$lr-b$batch" -- \
        python3 "$here/examples/grid_train.py" --lr "$lr" --batch "$batch" \
        --optimizer "$opt" --epochs "${EPOCHS:-6}" >/dev/null
    done
  done
done
