#!/bin/sh
# run_fuzz.sh BUILD_DIR SECONDS TARGET...: runs each libFuzzer binary BUILD_DIR/fuzz_<target> for
# SECONDS on its corpus (BUILD_DIR/corpus/<target>, grown here) plus the generated seeds
# (BUILD_DIR/seeds/<target>) and the committed seeds and regression inputs (tests/fuzz/), and
# prints one line per target. Any crash, sanitizer report, leak, timeout or memory blow-up fails
# the target; the input that did it is left in BUILD_DIR/artifacts/<target>/. Exit status 1 if
# any target failed.
set -u
build=$1 seconds=$2
shift 2
# The targets write their input to a scratch file per run: memory-backed when there is one.
scratch="$build/tmp"
[ -d /dev/shm ] && [ -w /dev/shm ] && scratch="/dev/shm/tinyrope-fuzz-$$"
export OMP_NUM_THREADS=1 TMPDIR="$scratch"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:allocator_may_return_null=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
mkdir -p "$TMPDIR"
failed=0
for t in "$@"; do
    dirs=""
    mkdir -p "$build/corpus/$t" "$build/artifacts/$t" "$build/logs"
    for d in "$build/seeds/$t" "tests/fuzz/seeds/$t" "tests/fuzz/regressions/$t"; do
        [ -d "$d" ] && dirs="$dirs $d"
    done
    log="$build/logs/$t.log"
    # shellcheck disable=SC2086  # dirs is a list of paths without spaces
    "$build/fuzz_$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=1024 \
        -detect_leaks=1 -print_final_stats=1 -artifact_prefix="$build/artifacts/$t/" \
        "$build/corpus/$t" $dirs > "$log" 2>&1
    rc=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | sed 's/cov: //')
    ft=$(grep -o 'ft: [0-9]*' "$log" | tail -1 | sed 's/ft: //')
    corpus=$(ls "$build/corpus/$t" | wc -l)
    if [ $rc -eq 0 ]; then
        echo "PASS fuzz $t: ${runs:-?} runs, ${cov:-?} edges, ${ft:-?} features, corpus $corpus"
    else
        failed=$((failed + 1))
        what=$(grep -m1 -E 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:|fuzz target:' "$log")
        artifact=$(sed -n 's/.*Test unit written to \(.*\)/\1/p' "$log" | tail -1)
        echo "FAIL fuzz $t: ${what:-exit status $rc} (input: ${artifact:-none}; log: $log)"
    fi
done
rm -rf "$scratch"
[ "$failed" -eq 0 ]
