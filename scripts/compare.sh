#!/bin/sh
# compare.sh: run a comparison of configs over several seeds, then build its report.
#
#   sh scripts/compare.sh [--seeds N] [--jobs J] [--data DATA.json] [--out DIR] [--set key=value]... CONFIG.json...
#
# Each CONFIG runs once per seed k = 1..N into DIR/<name>/seed<k>/ (name = the config's file name
# without .json; DIR defaults to runs/<the configs' directory name>, e.g. runs/small). J runs go at
# once (default: the number of cores), each on one thread (OMP_NUM_THREADS=1), its output in
# DIR/<name>/seed<k>.log; with --jobs 1 they run one after the other on every thread, output
# shown. Small models train faster per core this way than one run on many threads. Re-running the same command continues where it stopped: a finished run (it has
# final.json) is skipped, an interrupted one (checkpoint.bin, no final.json) resumes from its last
# checkpoint, and a run directory made from a different config is an error rather than a silent
# mix. Then the report goes to DIR/report/: validation and train loss against tokens, validation
# loss against wall time, and table.md (see scripts/report.sh).
#
# Environment: TRAIN (the trainer binary, default ./train), REPORT=0 to skip the report.
set -eu

die() { echo "error: compare.sh: $*" >&2; exit 1; }
usage() {
    echo "usage: $(sed -n '4p' "$0" | sed 's/^# *//')" >&2
    exit "${1:-1}"
}

seeds=3
jobs=$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)
data=
out=
sets=
while [ $# -gt 0 ]; do
    case "$1" in
        --seeds) [ $# -ge 2 ] || die "--seeds needs a value"; seeds=$2; shift 2 ;;
        --jobs) [ $# -ge 2 ] || die "--jobs needs a value"; jobs=$2; shift 2 ;;
        --data) [ $# -ge 2 ] || die "--data needs a value"; data=$2; shift 2 ;;
        --out) [ $# -ge 2 ] || die "--out needs a value"; out=$2; shift 2 ;;
        --set) [ $# -ge 2 ] || die "--set needs key=value"; sets="$sets --set $2"; shift 2 ;;
        -h|--help) usage 0 ;;
        -*) die "unknown option $1" ;;
        *) break ;;
    esac
done
[ $# -ge 1 ] || { usage 1; }
case "$seeds" in ''|*[!0-9]*) die "--seeds must be a positive integer, not '$seeds'" ;; esac
[ "$seeds" -ge 1 ] || die "--seeds must be at least 1"
case "$jobs" in ''|*[!0-9]*) die "--jobs must be a positive integer, not '$jobs'" ;; esac
[ "$jobs" -ge 1 ] || die "--jobs must be at least 1"
train=${TRAIN:-./train}
[ -x "$train" ] || die "$train not found or not executable (run make first)"
[ -z "$data" ] || [ -f "$data" ] || die "$data: no such data spec"
for cfg in "$@"; do
    [ -f "$cfg" ] || die "$cfg: no such config"
    "$train" config "$cfg" >/dev/null || exit 1   # a bad config fails now, not after hours
done
[ -n "$out" ] || out=runs/$(basename "$(dirname "$1")")

# The trainer's options for the run in DIR with seed K: each "--set key=value" is two words.
run_args() { # DIR K
    printf '%s' "$sets --set out_dir=$1 --set seed=$2${data:+ --set data=$data}"
}

# One run: skipped when finished, resumed when interrupted, else started. Prints its lines; with
# more than one job the trainer's output goes to <dir>.log and a failure is recorded in $failed.
run_one() { # N NAME K CFG DIR ARGS
    ro_n=$1 ro_name=$2 ro_k=$3 ro_cfg=$4 ro_dir=$5 ro_args=$6
    if [ -f "$ro_dir/final.json" ]; then
        echo "[$ro_n/$total] $ro_name seed $ro_k: finished, skipped ($ro_dir/final.json)"
        return 0
    fi
    ro_resume=
    if [ -f "$ro_dir/checkpoint.bin" ]; then
        echo "[$ro_n/$total] $ro_name seed $ro_k: resuming $ro_dir"
        ro_resume=--resume
    else
        echo "[$ro_n/$total] $ro_name seed $ro_k: training into $ro_dir"
    fi
    if [ "$jobs" = 1 ]; then
        # shellcheck disable=SC2086   ($ro_args is split into words on purpose)
        "$train" run "$ro_cfg" $ro_args $ro_resume
    else
        mkdir -p "${ro_dir%/*}"
        # shellcheck disable=SC2086
        if OMP_NUM_THREADS=1 "$train" run "$ro_cfg" $ro_args $ro_resume > "$ro_dir.log" 2>&1; then
            echo "[$ro_n/$total] $ro_name seed $ro_k: done"
        else
            echo "[$ro_n/$total] $ro_name seed $ro_k: FAILED: $(grep '^error' "$ro_dir.log" | tail -1) (see $ro_dir.log)"
            echo "$ro_dir" >> "$failed"
        fi
    fi
}

# Every run directory is checked before any run starts: another config's run there is an error.
total=$(( $# * seeds ))
for cfg in "$@"; do
    name=$(basename "$cfg" .json)
    k=1
    while [ "$k" -le "$seeds" ]; do
        dir=$out/$name/seed$k
        args=$(run_args "$dir" "$k")
        # shellcheck disable=SC2086   ($args is split into words on purpose)
        want=$("$train" config "$cfg" $args)
        if [ -f "$dir/config.json" ] && [ "$want" != "$(cat "$dir/config.json")" ]; then
            die "$dir holds a run of a different config than $cfg with these options; remove it or choose another --out"
        fi
        k=$((k + 1))
    done
done

n=0
if [ "$jobs" -gt 1 ]; then
    # A pool of $jobs tokens in a pipe: a run takes one before it starts and puts it back when it
    # ends, so a long run never holds up the next short ones.
    mkdir -p "$out"
    failed=$out/.compare-failed.$$ fifo=$out/.compare-jobs.$$
    : > "$failed"
    mkfifo "$fifo"
    exec 3<>"$fifo"
    rm -f "$fifo"
    i=0
    while [ "$i" -lt "$jobs" ]; do echo >&3; i=$((i + 1)); done
fi
for cfg in "$@"; do
    name=$(basename "$cfg" .json)
    k=1
    while [ "$k" -le "$seeds" ]; do
        n=$((n + 1))
        dir=$out/$name/seed$k
        args=$(run_args "$dir" "$k")
        if [ "$jobs" = 1 ]; then
            run_one "$n" "$name" "$k" "$cfg" "$dir" "$args"
        else
            read -r _ <&3
            { run_one "$n" "$name" "$k" "$cfg" "$dir" "$args"; echo >&3; } &
        fi
        k=$((k + 1))
    done
done
if [ "$jobs" -gt 1 ]; then
    wait
    exec 3>&-
    if [ -s "$failed" ]; then
        list=$(tr '\n' ' ' < "$failed")
        rm -f "$failed"
        die "runs failed: $list(each has its output in <run directory>.log)"
    fi
    rm -f "$failed"
fi

if [ "${REPORT:-1}" != 0 ]; then
    sh "$(dirname "$0")/report.sh" "$out"
fi
echo "done: $total runs in $out"
