#!/bin/sh
# state_figures.sh RUNS_DIR OUT_DIR NAME: the figures of docs/state-tracking.md for one task,
# from the runs of scripts/state_grid.sh in RUNS_DIR (named KIND-L<depth>-s<seed>).
#
#   sh scripts/state_figures.sh runs/state/s3-8 docs/results/state s3-8
#
# Evaluates every finished run at 4x its training length with per-position accuracy
# (RUN/acc_4x.csv), then draws, each line the mean of the seeds over their min-max band:
#   NAME-position-L<d>.png  accuracy against position at 4x, one line per kind, per depth
#   NAME-curves-L<d>.png    validation accuracy during training, one line per kind, per depth
#   NAME-solved-c.png       solved length at 4x against the chunk size c (dynamic), one line per depth
#                           (only when the grid has kinds named hdd-c<c>)
#   NAME-solved-depth.png   solved length at 4x against the depth, one line per kind
# and copies RUNS_DIR/summary.csv to OUT_DIR/NAME-summary.csv. Flip-flop's per-position accuracy
# is averaged over bins of 8 positions (few reads land on any one position).
set -eu
cd "$(dirname "$0")/.."
runs=$1 out=$2 name=$3
train=${TRAIN:-build/train} plot=${PLOT:-build/plot}
[ -x "$train" ] && [ -x "$plot" ] || { echo "error: state_figures.sh: $train or $plot missing: run make" >&2; exit 1; }
[ -f "$runs/summary.csv" ] || { echo "error: $runs/summary.csv: missing (run scripts/state_grid.sh first)" >&2; exit 1; }
mkdir -p "$out"
cp "$runs/summary.csv" "$out/$name-summary.csv"
kinds=$(awk -F, 'NR > 1 && !seen[$1]++ { printf "%s ", $1 }' "$runs/summary.csv")
depths=$(awk -F, 'NR > 1 && !seen[$2]++ { printf "%s ", $2 }' "$runs/summary.csv")
bin=1
head -1 "$runs/summary.csv" | grep -q acc_sparse && bin=8 # a flip-flop grid

# the evaluation at 4x: block size from the run's own training length
for dir in "$runs"/*-L*-s*/; do
    dir=${dir%/}
    [ -f "$dir/final.json" ] || continue
    [ -f "$dir/acc_4x.csv" ] && continue
    length=$(sed -n 's/.*"length":[[:space:]]*\([0-9]*\).*/\1/p' "$dir/task.json")
    OMP_NUM_THREADS=1 "$train" eval "$dir" --block-size $((4 * length)) --out "$dir/acc_4x.csv" > /dev/null
done

# series NAME FILE: "NAME=dir-s1/FILE,dir-s2/FILE,..." over the seeds that have FILE
series() {
    list=
    for f in "$runs/$1"-s*/"$2"; do [ -f "$f" ] && list="${list:+$list,}$f"; done
    [ -z "$list" ] || printf '%s=%s\n' "$3" "$list"
}
for L in $depths; do
    pos="" curves=""
    for k in $kinds; do
        pos="$pos $(series "$k-L$L" acc_4x.csv "$k")"
        curves="$curves $(series "$k-L$L" log.csv "$k")"
    done
    # shellcheck disable=SC2086   (series arguments hold no spaces)
    "$plot" --out "$out/$name-position-L$L.png" --x position --y accuracy --bin "$bin" --ymin 0 --ymax 1 \
        --title "$name, L = $L: accuracy at 4x the training length" --xlabel "position" \
        --ylabel "accuracy (mean of seeds)" $pos
    # shellcheck disable=SC2086
    "$plot" --out "$out/$name-curves-L$L.png" --x tokens --y val_acc --ymin 0 --ymax 1 \
        --title "$name, L = $L: held-out accuracy during training" --xlabel "tokens seen" \
        --ylabel "validation accuracy" $curves
done

# solved length against c and against depth, from summary.csv: one small CSV per seed and line
tables="$runs/figure-tables"
rm -rf "$tables" && mkdir -p "$tables"
awk -F, -v dir="$tables" 'NR > 1 {
        if ($1 ~ /^hdd-c[0-9]+$/) {
            f = dir "/c-L" $2 "-s" $3 ".csv"
            if (!(f in started)) { print "c,solved_4x,acc_4x" > f; started[f] = 1 }
            print substr($1, 6) "," $9 "," $6 >> f
        }
        g = dir "/depth-" $1 "-s" $3 ".csv"
        if (!(g in started)) { print "layers,solved_4x,acc_4x" > g; started[g] = 1 }
        print $2 "," $9 "," $6 >> g
    }' "$runs/summary.csv"
# files LABEL PREFIX: "LABEL=PREFIX-s1.csv,PREFIX-s2.csv,..." over the seeds present
files() {
    list=
    for f in "$2"-s*.csv; do [ -f "$f" ] && list="${list:+$list,}$f"; done
    [ -z "$list" ] || printf '%s=%s\n' "$1" "$list"
}
by_c="" by_depth=""
for L in $depths; do by_c="$by_c $(files "L$L" "$tables/c-L$L")"; done
for k in $kinds; do by_depth="$by_depth $(files "$k" "$tables/depth-$k")"; done
# shellcheck disable=SC2086
[ -z "$(echo $by_c)" ] || "$plot" --out "$out/$name-solved-c.png" --x c --y solved_4x --ymin 0 \
    --title "$name: solved length at 4x against c (dynamic)" --xlabel "chunk size c" \
    --ylabel "solved length (positions)" $by_c
# shellcheck disable=SC2086
"$plot" --out "$out/$name-solved-depth.png" --x layers --y solved_4x --ymin 0 \
    --title "$name: solved length at 4x against depth" --xlabel "layers L" \
    --ylabel "solved length (positions)" $by_depth
