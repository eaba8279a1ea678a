#!/bin/sh
# run.sh: the project's test command (make test). Runs every test twice: the optimised build,
# then the AddressSanitizer + UndefinedBehaviorSanitizer build on small inputs, and ends with
# one line "N passed, N failed, N skipped" over both.
set -u
jobs=$(nproc 2>/dev/null || echo 2)
rm -f build/test-results.txt build-san/test-results.txt
make --no-print-directory -j"$jobs" test-fast
TINYROPE_SMALL=1 ASAN_OPTIONS=detect_leaks=1 make --no-print-directory -j"$jobs" test-san
pass=0; fail=0; skip=0
for f in build/test-results.txt build-san/test-results.txt; do
    [ -f "$f" ] || { echo "FAIL missing $f (a build failed)"; fail=$((fail + 1)); continue; }
    pass=$((pass + $(grep -c '^PASS ' "$f")))
    fail=$((fail + $(grep -c '^FAIL ' "$f")))
    skip=$((skip + $(grep -c '^SKIP ' "$f")))
done
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
