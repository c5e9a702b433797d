#!/usr/bin/env bash
# Upload rows for `make bench`: metrictap vs the official mlflow client on one
# local MLflow server (see bench/upload_bench.py).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || { echo "upload_bench: .venv missing (make deps-test)" >&2; exit 1; }
[ -x build/metrictap ] || make --no-print-directory all >&2
exec .venv/bin/python bench/upload_bench.py
