#!/bin/sh
# compare.sh: run a comparison of configs over several seeds, then build its report.
#
#   sh scripts/compare.sh [--seeds N] [--data DATA.json] [--out DIR] [--set key=value]... CONFIG.json...
#
# Each CONFIG runs once per seed k = 1..N into DIR/<name>/seed<k>/ (name = the config's file name
# without .json; DIR defaults to runs/<the configs' directory name>, e.g. runs/small), one after
# the other. Re-running the same command continues where it stopped: a finished run (it has
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
data=
out=
sets=
while [ $# -gt 0 ]; do
    case "$1" in
        --seeds) [ $# -ge 2 ] || die "--seeds needs a value"; seeds=$2; shift 2 ;;
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
train=${TRAIN:-./train}
[ -x "$train" ] || die "$train not found or not executable (run make first)"
[ -z "$data" ] || [ -f "$data" ] || die "$data: no such data spec"
for cfg in "$@"; do
    [ -f "$cfg" ] || die "$cfg: no such config"
    "$train" config "$cfg" >/dev/null || exit 1   # a bad config fails now, not after hours
done
[ -n "$out" ] || out=runs/$(basename "$(dirname "$1")")

total=$(( $# * seeds )); n=0
for cfg in "$@"; do
    name=$(basename "$cfg" .json)
    k=1
    while [ "$k" -le "$seeds" ]; do
        n=$((n + 1))
        dir=$out/$name/seed$k
        # $args is split into words on purpose: each "--set key=value" is two arguments.
        args="$sets --set out_dir=$dir --set seed=$k"
        [ -z "$data" ] || args="$args --set data=$data"
        # shellcheck disable=SC2086
        want=$("$train" config "$cfg" $args)
        if [ -f "$dir/config.json" ] && [ "$want" != "$(cat "$dir/config.json")" ]; then
            die "$dir holds a run of a different config than $cfg with these options; remove it or choose another --out"
        fi
        if [ -f "$dir/final.json" ]; then
            echo "[$n/$total] $name seed $k: finished, skipped ($dir/final.json)"
        elif [ -f "$dir/checkpoint.bin" ]; then
            echo "[$n/$total] $name seed $k: resuming $dir"
            # shellcheck disable=SC2086
            "$train" run "$cfg" $args --resume
        else
            echo "[$n/$total] $name seed $k: training into $dir"
            # shellcheck disable=SC2086
            "$train" run "$cfg" $args
        fi
        k=$((k + 1))
    done
done

if [ "${REPORT:-1}" != 0 ]; then
    sh "$(dirname "$0")/report.sh" "$out"
fi
echo "done: $total runs in $out"
