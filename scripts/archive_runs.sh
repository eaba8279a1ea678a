#!/bin/sh
# archive_runs.sh: keep the evidence of a comparison without its checkpoints.
#
#   sh scripts/archive_runs.sh RUNS_DIR ARCHIVE_DIR      (e.g. runs/small docs/results/runs)
#
# Copies, for every finished run RUNS_DIR/<name>/seed<k>/ (it has final.json), the small files
# that the report and the results page are made from: config.json, log.csv, final.json and the
# length-extrapolation CSVs eval_T*.csv, into ARCHIVE_DIR/<name>/seed<k>/, and
# RUNS_DIR/report/extrapolation.csv into ARCHIVE_DIR/. Checkpoints and shards stay behind.
# Copying ARCHIVE_DIR back (cp -R ARCHIVE_DIR/. RUNS_DIR/) restores the runs as finished:
# compare.sh then skips them and trains only the seeds still missing, and report.sh,
# extrapolate.sh and results_figures.sh read them as if they had just run.
set -eu

die() { echo "error: archive_runs.sh: $*" >&2; exit 1; }
[ $# -eq 2 ] || die "usage: sh scripts/archive_runs.sh RUNS_DIR ARCHIVE_DIR"
runs=$1; archive=$2
[ -d "$runs" ] || die "$runs: no such directory"
n=0
for final in "$runs"/*/seed*/final.json; do
    [ -f "$final" ] || continue
    dir=${final%/final.json}
    seed=$(basename "$dir"); name=$(basename "$(dirname "$dir")")
    dest=$archive/$name/$seed
    mkdir -p "$dest"
    for f in "$dir"/config.json "$dir"/log.csv "$dir"/final.json "$dir"/eval_T*.csv; do
        [ -f "$f" ] && cp "$f" "$dest/"
    done
    n=$((n + 1))
done
[ -f "$runs/report/extrapolation.csv" ] && cp "$runs/report/extrapolation.csv" "$archive/"
echo "archived $n finished runs of $runs into $archive"
