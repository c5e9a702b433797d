#!/usr/bin/env bash
# Installs what metrictap needs and is missing; safe to run again.
#   scripts/deps.sh build   Debian -dev packages and pkg-config
#   scripts/deps.sh test    the above, compilers and trainers for the tests,
#                           and .venv with the Python test tools
#   scripts/deps.sh fuzz    the build packages and clang (libFuzzer), for make fuzz
# Installs with apt-get only when a package is absent, so a machine that has
# everything is not touched (and needs no network).
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD_PKGS=(pkg-config gcc make libcurl4-openssl-dev libcjson-dev libelf-dev libunwind-dev
            libpcre2-dev libyaml-dev libsqlite3-dev zlib1g-dev)
TEST_PKGS=(g++ gfortran python3 python3-venv git fasttext xgboost libsvm-tools
           liblinear-tools util-linux procps chromium strace gdb binutils postgresql)

missing=()
want=("${BUILD_PKGS[@]}")
[ "${1:-build}" = test ] && want+=("${TEST_PKGS[@]}")
[ "${1:-build}" = fuzz ] && want+=(clang libclang-rt-dev)
for p in "${want[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "deps: installing ${missing[*]}"
    if [ "$(id -u)" -ne 0 ]; then
        echo "deps: need root to install: ${missing[*]}" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

[ "${1:-build}" = test ] || exit 0

# The Python test tools live in .venv (ignored by git).  Each tests/*/
# requirements.txt adds what its tests need.
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    echo "deps: creating .venv"
    "$PY" -m venv .venv
fi
reqs=(tests/requirements.txt)
for f in tests/*/requirements.txt bench/requirements.txt; do [ -f "$f" ] && reqs+=("$f"); done
stamp=.venv/.metrictap-reqs
sum=$(cat "${reqs[@]}" | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$sum" ]; then
    echo "deps: installing Python test tools"
    args=()
    for f in "${reqs[@]}"; do args+=(-r "$f"); done
    .venv/bin/python -m pip install -q --disable-pip-version-check "${args[@]}"
    echo "$sum" > "$stamp"
fi
