#!/usr/bin/env bash
# Builds the libFuzzer targets in tests/fuzz against build-fuzz/libmt.a (made
# by `make fuzz` with clang and ASan/UBSan) and runs each for SECONDS
# (default 60), seeded from tests/golden and tests/fuzz/seeds.  Crashes are
# left in build-fuzz/crash-*; the exit status is non-zero if any target failed.
set -uo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${1:-60}
B=build-fuzz
SAN="-fsanitize=fuzzer,address,undefined -fno-omit-frame-pointer -g"
LIBS=$(pkg-config --libs libcurl libcjson libelf libpcre2-8 yaml-0.1 sqlite3)
status=0
for src in tests/fuzz/fuzz_*.c; do
    name=$(basename "$src" .c)
    bin=$B/$name
    clang -std=gnu11 -O1 -D_GNU_SOURCE -I. $(pkg-config --cflags libcjson) $SAN -o "$bin" "$src" \
        $B/libmt.a $LIBS -lpthread -lm || { status=1; continue; }
    corpus=$B/corpus-$name
    mkdir -p "$corpus"
    case $name in
    fuzz_parse) for f in tests/golden/*/input.* tests/fuzz/seeds/*.txt; do
                    [ "$(stat -c %s "$f")" -lt 4096 ] && cp "$f" "$corpus/$(basename "$(dirname "$f")")-$(basename "$f")"; done ;;
    fuzz_config) for f in tests/golden/*/config.yaml tests/fuzz/seeds/*.yaml; do
                    [ -f "$f" ] && cp "$f" "$corpus/$(basename "$(dirname "$f")")-$(basename "$f")"; done ;;
    esac
    echo "fuzz: $name for ${SECONDS_EACH}s"
    (cd $B && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 "./$name" -max_total_time="$SECONDS_EACH" \
        -max_len=8192 -timeout=10 -print_final_stats=1 "corpus-$name" 2>&1 | tail -25) \
        || status=1
done
exit $status
