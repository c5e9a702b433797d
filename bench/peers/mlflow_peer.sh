#!/usr/bin/env bash
# In-code logging against MLflow (issue 20): see bench/peers/mlflow_peer.py.
# mlflow lives in .venv-bench/sdk (scripts/bench-venv.sh); when it cannot be
# installed the row says "not installable" and why.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
py="$root/.venv-bench/sdk/bin/python"
why=$("$root/scripts/bench-venv.sh" sdk 2>&1 >/dev/null | tail -1)
if ! { [ -x "$py" ] && "$py" -c 'import mlflow' 2>/dev/null; }; then
    printf 'ROW\tvs MLflow: mlflow.log_metrics per step\tnot installable: %s\t-\t-\treport\n' "${why:-no mlflow in $py}"
    exit 0
fi
[ -x "$root/build/metrictap" ] || { echo "mlflow_peer: build first (make all)" >&2; exit 1; }
exec "$py" "$root/bench/peers/mlflow_peer.py"
