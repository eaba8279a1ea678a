#!/bin/sh
# report.sh: the report of a comparison made by scripts/compare.sh.
#
#   sh scripts/report.sh RUNS_DIR [NAME...]
#
# Reads RUNS_DIR/<name>/seed<k>/log.csv of the finished runs (every <name> with one, or the NAMEs
# given, in that order)
# and writes RUNS_DIR/report/:
#   val_loss.png        validation loss against tokens seen (mean over seeds, min-max band)
#   val_loss_log.png    the same with log-scaled axes (early and late training both visible)
#   train_loss.png      training loss (of the step at each evaluation) against tokens
#   val_loss_time.png   validation loss against training wall time
#   table.md            val loss at 25/50/100% of the tokens, bits per byte, tokens to a target
#                       loss, and the % fewer tokens than the baseline (xpos when present)
# and, where runs hold `train eval` per-position CSVs (eval_T<N>.csv, written by
# scripts/extrapolate.sh), extrapolation_T<N>.png: loss against position at that context, and
# extrapolation.md: the mean val loss per config and context.
#
# Environment: PLOT and TABLE (the tools, default build/plot and build/table: `make` builds them).
set -eu

die() { echo "error: report.sh: $*" >&2; exit 1; }
[ $# -ge 1 ] || die "usage: sh scripts/report.sh RUNS_DIR [NAME...]"
runs=$1; shift
[ -d "$runs" ] || die "$runs: no such directory"
plot=${PLOT:-build/plot}
table=${TABLE:-build/table}
[ -x "$plot" ] && [ -x "$table" ] || die "$plot or $table missing: run make first"

if [ $# -eq 0 ]; then   # every config directory that holds at least one seed's log
    for d in "$runs"/*/; do
        name=$(basename "$d")
        [ "$name" != report ] && ls "$d"seed*/final.json >/dev/null 2>&1 && set -- "$@" "$name"
    done
fi
[ $# -ge 1 ] || die "$runs: no finished runs (expected $runs/<name>/seed<k>/final.json)"

. "$(dirname "$0")/finished_series.sh"
series_of() { finished_series "$runs" "$@"; }   # FILE NAME...

out=$runs/report
mkdir -p "$out"
# Series arguments hold no spaces (run directories are named by compare.sh), so word splitting
# of $(series_of ...) is what we want here.
logs=$(series_of log.csv "$@")
# shellcheck disable=SC2086
"$plot" --out "$out/val_loss.png" --x tokens --y val_loss --title "Validation loss" \
    --xlabel "tokens seen" --ylabel "validation loss (nats/token)" $logs
# shellcheck disable=SC2086
"$plot" --out "$out/val_loss_log.png" --x tokens --y val_loss --log-x --log-y --title "Validation loss (log-log)" \
    --xlabel "tokens seen" --ylabel "validation loss (nats/token)" $logs
# shellcheck disable=SC2086
"$plot" --out "$out/train_loss.png" --x tokens --y train_loss --title "Training loss" \
    --xlabel "tokens seen" --ylabel "training loss (nats/token)" $logs
# shellcheck disable=SC2086
"$plot" --out "$out/val_loss_time.png" --x elapsed_s --y val_loss --title "Validation loss against wall time" \
    --xlabel "training time (s)" --ylabel "validation loss (nats/token)" $logs
# shellcheck disable=SC2086
"$table" $logs > "$out/table.md"

for f in "$runs"/*/seed*/eval_T*.csv; do
    [ -f "$f" ] || continue
    basename "$f" .csv
done | sort -u | while read -r stem; do
    ext=$(series_of "$stem.csv" "$@")
    # shellcheck disable=SC2086
    "$plot" --out "$out/extrapolation_${stem#eval_}.png" --x position --y loss --bin 32 \
        --title "Loss per position, context ${stem#eval_T} (mean of 32 positions)" \
        --xlabel "position in the window" --ylabel "loss (nats/token)" $ext
done
# extrapolation.md: mean (± sample std over seeds) val loss per config and evaluation context.
if [ -f "$out/extrapolation.csv" ]; then
    awk -F, 'NR > 1 {
        col = $3 ($4 == 1 ? " BCA" : ""); key = $1 SUBSEP col
        if (!(key in n)) { if (!($1 in seen)) { seen[$1] = 1; names[++nn] = $1 }
                           if (!(col in cseen)) { cseen[col] = 1; cols[++nc] = col } }
        n[key]++; s[key] += $5; q[key] += $5 * $5 }
    END {
        # contexts in increasing order, plain before BCA
        for (i = 1; i <= nc; i++) for (j = i + 1; j <= nc; j++)
            if (cols[j] + 0 < cols[i] + 0 || (cols[j] + 0 == cols[i] + 0 && cols[i] ~ /BCA/)) {
                t = cols[i]; cols[i] = cols[j]; cols[j] = t }
        printf "| config |"; for (j = 1; j <= nc; j++) printf " T = %s |", cols[j]; printf "\n| :--- |"
        for (j = 1; j <= nc; j++) printf " ---: |"; printf "\n"
        for (i = 1; i <= nn; i++) {
            printf "| %s |", names[i]
            for (j = 1; j <= nc; j++) {
                key = names[i] SUBSEP cols[j]
                if (!(key in n)) { printf " |"; continue }
                m = s[key] / n[key]
                if (n[key] > 1) { v = (q[key] - n[key] * m * m) / (n[key] - 1); if (v < 0) v = 0
                                  printf " %.3f ± %.3f |", m, sqrt(v) }
                else printf " %.3f |", m
            }
            printf "\n"
        } }' "$out/extrapolation.csv" > "$out/extrapolation.md"
fi
echo "report: $out (val_loss.png, val_loss_log.png, train_loss.png, val_loss_time.png, table.md)"
