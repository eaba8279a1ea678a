#!/bin/sh
# run_binaries.sh BUILD_DIR TEST_BINARY...: runs each test binary, shows its output, and
# appends its PASS/FAIL/SKIP lines to BUILD_DIR/test-results.txt. A binary that dies without
# reporting (crash, sanitizer abort) counts as one failure.
build=$1; shift
export TINYROPE_TRAIN_BIN="$build/train" TINYROPE_TEST_TMP="$build/test-tmp"
results="$build/test-results.txt"
: > "$results"
for bin in "$@"; do
    name=$(basename "$bin")
    out="$build/tests/$name.out"
    "$bin" > "$out" 2>&1
    rc=$?
    cat "$out"
    grep -E '^(PASS|FAIL|SKIP) ' "$out" | sed "s|^\([A-Z]*\) |\1 $name/|" >> "$results"
    if [ $rc -ne 0 ] && ! grep -q '^FAIL ' "$out"; then
        echo "FAIL $name: exited with status $rc without reporting a failed test" | tee -a "$results"
    fi
done
