#!/usr/bin/env bash
# Runs each C unit-test binary and adds up their "N passed, N failed" lines.
# With VALGRIND=1 each runs under valgrind's memcheck.
set -u
passed=0 failed=0 status=0
for t in "$@"; do
    echo "== $(basename "$t")"
    if [ "${VALGRIND:-0}" = 1 ]; then
        out=$(valgrind -q --error-exitcode=99 --trace-children=yes "$t" 2>&1); rc=$?
    else
        out=$("$t" 2>&1); rc=$?
    fi
    echo "$out" | grep -v '^  ok  ' || true
    line=$(echo "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed$' | tail -1)
    if [ -z "$line" ]; then
        echo "   $(basename "$t") did not finish (exit $rc)"
        failed=$((failed + 1)); status=1; continue
    fi
    p=${line%% passed*}; f=${line#*passed, }; f=${f%% failed*}
    passed=$((passed + p)); failed=$((failed + f))
    [ "$rc" -ne 0 ] && status=1
done
echo "unit: $passed passed, $failed failed"
exit $status
