#!/usr/bin/env bash
# Runs every test binary of each build directory given and prints one
# closing line "N passed, N failed" (binaries counted, per build).
set -u
cd "$(dirname "$0")/.."
passed=0; failed=0; failures=""
for build in "$@"; do
    for t in "$build"/tests/test_*; do
        [ -x "$t" ] || continue
        case "$t" in *.d|*.o) continue;; esac
        echo "=== $t"
        if AC_BUILD="$build" "$t"; then
            passed=$((passed + 1))
        else
            failed=$((failed + 1)); failures="$failures $t"
        fi
    done
done
[ -n "$failures" ] && echo "failed:$failures"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
