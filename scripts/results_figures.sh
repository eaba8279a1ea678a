#!/bin/sh
# results_figures.sh: the figures and tables of docs/results.md, from the runs of configs/small/.
#
#   sh scripts/results_figures.sh [RUNS_DIR [OUT_DIR]]     (default runs/small, docs/results)
#
# Groups the configs into the page's questions (the main comparison, the chunk size at the default
# and at a 0.1 generator learning rate, what the dynamic generator needs, the published peers
# against RoPE) and draws each with build/plot and build/table over the finished
# seeds; a config with no finished seed is left out. The length-extrapolation table comes from
# RUNS_DIR/report/extrapolation.csv (scripts/extrapolate.sh).
set -eu
runs=${1:-runs/small}
out=${2:-docs/results}
plot=${PLOT:-build/plot}
table=${TABLE:-build/table}
[ -x "$plot" ] && [ -x "$table" ] || { echo "error: results_figures.sh: $plot or $table missing: run make" >&2; exit 1; }
mkdir -p "$out"

. "$(dirname "$0")/finished_series.sh"
series() { finished_series "$runs" "$@"; }   # FILE NAME...

main="xpos xpos-author none rope hddrope-c4-static hddrope-c4"
chunks="rope hddrope-c2 hddrope-c4 hddrope-c8 hddrope-c16"
chunks_slow="rope hddrope-c4-static hddrope-c2-lr0.1 hddrope-c4-lr0.1 hddrope-c8-lr0.1"
ablations="rope hddrope-c4 hddrope-c4-lr0.3 hddrope-c4-lr0.1 hddrope-c4-wd0.1 hddrope-c4-zero hddrope-c4-clipgroup"
peers="rope alibi fox rope-fox hddrope-c4-lr0.1 hddrope-fox pathattn pathattn-fox"

# shellcheck disable=SC2086   (word splitting of the series lists is intended: no spaces in them)
{
m=$(series log.csv $main); c=$(series log.csv $chunks); a=$(series log.csv $ablations)
cs=$(series log.csv $chunks_slow)
"$plot" --out "$out/main_val_loss.png" --ymax 4.5 --title "Validation loss, mean of seeds (min-max band)" \
    --xlabel "tokens seen" --ylabel "validation loss (nats/token)" $m
"$plot" --out "$out/main_val_loss_log.png" --log-x --log-y --title "Validation loss, log-log" \
    --xlabel "tokens seen" --ylabel "validation loss (nats/token)" $m
"$plot" --out "$out/main_train_loss.png" --y train_loss --ymax 4.5 --title "Training loss (the step at each evaluation)" \
    --xlabel "tokens seen" --ylabel "training loss (nats/token)" $m
"$plot" --out "$out/main_val_loss_time.png" --x elapsed_s --ymax 4.5 --title "Validation loss against training time" \
    --xlabel "training time (s, 1 thread, shared machine)" --ylabel "validation loss (nats/token)" $m
"$plot" --out "$out/chunks_val_loss.png" --ymax 4.5 --title "Chunk size c (HDD-RoPE, dynamic)" \
    --xlabel "tokens seen" --ylabel "validation loss (nats/token)" $c
[ -z "$cs" ] || "$plot" --out "$out/chunks_lr0.1_val_loss.png" --ymax 4.5 \
    --title "Chunk size c at generator lr x 0.1 (HDD-RoPE, dynamic)" \
    --xlabel "tokens seen" --ylabel "validation loss (nats/token)" $cs
"$plot" --out "$out/ablations_val_loss.png" --ymax 4.5 --title "HDD-RoPE c = 4 dynamic: what the generator needs" \
    --xlabel "tokens seen" --ylabel "validation loss (nats/token)" $a
"$table" $m > "$out/main_table.md"
"$table" --baseline xpos $(series log.csv xpos) $c > "$out/chunks_table.md"
[ -z "$cs" ] || "$table" --baseline xpos $(series log.csv xpos) $cs > "$out/chunks_lr0.1_table.md"
"$table" --baseline xpos $(series log.csv xpos) $a > "$out/ablations_table.md"
p=$(series log.csv $peers)
if [ -n "$p" ]; then
    "$plot" --out "$out/peers_val_loss.png" --ymax 4.5 --legend-right --width 960 \
        --title "The published peers against RoPE" --xlabel "tokens seen" --ylabel "validation loss (nats/token)" $p
    "$plot" --out "$out/peers_val_loss_diff.png" --legend-right --width 960 --minus rope --ymin -0.25 --ymax 0.1 \
        --title "Validation loss minus RoPE's" --xlabel "tokens seen" --ylabel "val loss - rope val loss (nats/token)" $p
    "$table" --baseline rope $p > "$out/peers_table.md"
fi
# Loss per position past the trained length (marked), and each kind's loss minus xPos's (the
# baseline) at the same positions, where the differences the curves share disappear.
for T in 512 1024; do
    for v in "" -bca; do
        e=$(series eval_T$T$v.csv $main hddrope-c4-lr0.1)
        [ -n "$e" ] || continue
        how="(mean of 32 positions)"
        [ -z "$v" ] || how="with blockwise causal attention"
        "$plot" --out "$out/extrapolation_T$T$v.png" --x position --y loss --bin 32 --legend-right \
            --mark-x 256 --mark-label "trained length 256" --width 960 \
            --title "Loss per position at context $T $how" \
            --xlabel "position in the window" --ylabel "loss (nats/token)" $e
        "$plot" --out "$out/extrapolation_T$T$v-diff.png" --x position --y loss --bin 32 --legend-right \
            --mark-x 256 --mark-label "trained length 256" --width 960 --minus xpos \
            --title "Loss per position at context $T minus xPos's $how" \
            --xlabel "position in the window" --ylabel "loss - xpos loss (nats/token)" $e
        e=$(series eval_T$T$v.csv $peers)
        [ -n "$e" ] || continue
        "$plot" --out "$out/extrapolation_peers_T$T$v-diff.png" --x position --y loss --bin 32 --legend-right \
            --mark-x 256 --mark-label "trained length 256" --width 960 --minus rope \
            --title "Peers: loss minus RoPE's at context $T $how" \
            --xlabel "position in the window" --ylabel "loss - rope loss (nats/token)" $e
    done
done
}
[ -f "$runs/report/extrapolation.md" ] && cp "$runs/report/extrapolation.md" "$out/extrapolation_table.md"
echo "results: $out"
