#!/bin/sh
# extrapolate.sh: length extrapolation of the runs of a comparison (scripts/compare.sh).
#
#   sh scripts/extrapolate.sh RUNS_DIR [NAME...]
#
# For every finished run RUNS_DIR/<name>/seed<k>/ (every <name>, or the NAMEs given) trained with
# context L, evaluates the whole validation split at contexts L, 2L and 4L with `train eval`, and
# for every kind but `learned` (which has no positions past L) also at 2L and 4L with blockwise
# causal attention (--bca: each query sees its own block of L/2 and the one before). Writes per
# run eval_T<N>.csv and eval_T<N>-bca.csv (loss per position), and RUNS_DIR/report/
# extrapolation.csv: name,seed,context,bca,val_loss, one row per evaluation (rows of configs not
# named this time are kept). A run that already has a CSV is not evaluated again (its loss is read
# back from the summary of the previous pass).
# Then scripts/report.sh draws extrapolation_T<N>.png from the CSVs.
#
# Environment: TRAIN (default ./train).
set -eu

die() { echo "error: extrapolate.sh: $*" >&2; exit 1; }
[ $# -ge 1 ] || die "usage: sh scripts/extrapolate.sh RUNS_DIR [NAME...]"
runs=$1; shift
[ -d "$runs" ] || die "$runs: no such directory"
train=${TRAIN:-./train}
[ -x "$train" ] || die "$train not found or not executable (run make first)"
if [ $# -eq 0 ]; then
    for d in "$runs"/*/; do
        name=$(basename "$d")
        [ "$name" != report ] && set -- "$@" "$name"
    done
fi

mkdir -p "$runs/report"
summary=$runs/report/extrapolation.csv
old=$summary.previous
[ -f "$summary" ] && mv "$summary" "$old"
echo "name,seed,context,bca,val_loss" > "$summary"
for name in "$@"; do
    for dir in "$runs/$name"/seed*/; do
        dir=${dir%/}
        [ -f "$dir/final.json" ] || { echo "skip $dir (not finished)"; continue; }
        seed=${dir##*/seed}
        T=$(sed -n 's/.*"block_size":[[:space:]]*\([0-9]*\).*/\1/p' "$dir/config.json")
        kind=$(sed -n '/"posenc"/,/}/s/.*"kind":[[:space:]]*"\([a-z]*\)".*/\1/p' "$dir/config.json")
        [ -n "$T" ] && [ -n "$kind" ] || die "$dir/config.json: no block_size or posenc kind"
        for N in "$T" $((2 * T)) $((4 * T)); do
            for bca in 0 1; do
                [ "$bca" = 0 ] || { [ "$N" -gt "$T" ] && [ "$kind" != learned ]; } || continue
                [ "$kind" = learned ] && [ "$N" -gt "$T" ] && continue
                csv=$dir/eval_T$N.csv; flag=
                [ "$bca" = 0 ] || { csv=$dir/eval_T$N-bca.csv; flag=--bca; }
                loss=
                if [ -f "$csv" ] && [ -f "$old" ]; then
                    loss=$(awk -F, -v n="$name" -v s="$seed" -v t="$N" -v b="$bca" \
                        '$1 == n && $2 == s && $3 == t && $4 == b { print $5 }' "$old")
                fi
                if [ -z "$loss" ]; then
                    line=$("$train" eval "$dir" --block-size "$N" $flag --out "$csv")
                    echo "$line"
                    loss=$(echo "$line" | sed -n 's/.*val loss \([0-9.]*\).*/\1/p')
                    [ -n "$loss" ] || die "$dir: could not read the val loss from: $line"
                fi
                echo "$name,$seed,$N,$bca,$loss" >> "$summary"
            done
        done
    done
done
if [ -f "$old" ]; then   # keep the rows of the configs not evaluated this time
    awk -F, -v names=" $* " 'NR > 1 && index(names, " " $1 " ") == 0' "$old" >> "$summary"
    rm -f "$old"
fi
echo "extrapolation: $summary"
