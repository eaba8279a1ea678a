#!/bin/sh
# state_grid.sh CONFIG OUT_DIR [SEEDS] [DEPTHS]: trains a state-tracking config (configs/state/)
# for every positional kind below, depth and seed, then evaluates each run at 1x, 2x and 4x its
# training length (a flip-flop run also at 1x on the sparse and dense variants, p_ignore 0.98 and
# 0.1). Writes OUT_DIR/summary.csv (one row per run) and prints a Markdown table of mean ± std
# over seeds. Finished runs (final.json present) are kept and interrupted ones resume from their
# last checkpoint, so it can be re-run.
#   sh scripts/state_grid.sh configs/state/parity-16.json runs/state/parity 3 "1 2"
#
# JOBS=N trains N runs at once, one thread each (default 1); the evaluations follow when all
# runs have finished.
#
# KINDS replaces the list of configurations, one per line: NAME|POSENC-JSON[|KEY=VALUE], the
# optional last field one more --set for the run (an ablation); KINDS=peers is the published
# peers (ALiBi, FoX on NoPE and on RoPE, PaTH, PaTH + FoX, HDD-RoPE c = 4 + FoX), e.g.
#   KINDS='hdd-c2-cayley|{"kind":"hddrope","chunk":2,"map":"cayley"}
#   hdd-c3-lr0.1|{"kind":"hddrope","chunk":3}|optim.posenc_lr_mult=0.1' sh scripts/state_grid.sh ...
set -eu
cd "$(dirname "$0")/.."
config=$1 out=$2 seeds=${3:-3} depths=${4:-"1 2"}
train=${TRAIN:-build/train}
spec=$("$train" config "$config" | sed -n 's/.*"data":[[:space:]]*"\([^"]*\)".*/\1/p')
length=$(sed -n 's/.*"length":[[:space:]]*\([0-9]*\).*/\1/p' "$spec")
[ -n "$length" ] || { echo "error: $config: no task length found in its data spec" >&2; exit 1; }
flipflop=$(grep -c '"flipflop"' "$spec" || true)
extra_header="" extra_cols=""
[ "$flipflop" = 0 ] || extra_header=",acc_sparse,acc_dense" extra_cols=2
kinds=${KINDS:-'none|{"kind":"none"}
rope|{"kind":"rope"}
xpos|{"kind":"xpos"}
hdd-c2|{"kind":"hddrope","chunk":2}
hdd-c3|{"kind":"hddrope","chunk":3}
hdd-c4|{"kind":"hddrope","chunk":4}
hdd-c8|{"kind":"hddrope","chunk":8}
hdd-c4-static|{"kind":"hddrope","chunk":4,"dynamic":false}'}
if [ "$kinds" = peers ]; then
    kinds='alibi|{"kind":"none","bias":"alibi"}
fox|{"kind":"none","bias":"fox"}
rope-fox|{"kind":"rope","bias":"fox"}
path|{"kind":"path"}
path-fox|{"kind":"path","bias":"fox"}
hdd-c4-fox|{"kind":"hddrope","chunk":4,"bias":"fox"}'
fi
jobs=${JOBS:-1}
case "$jobs" in ''|*[!0-9]*|0) echo "error: JOBS must be a positive integer, not '$jobs'" >&2; exit 1 ;; esac
mkdir -p "$out"
summary="$out/summary.csv"

# train_one NAME POSENC SETTING L SEED: trains one run unless it has finished; resumes a stopped one.
train_one() {
    dir="$out/$1-L$4-s$5"
    [ ! -f "$dir/final.json" ] || return 0
    resume=""
    [ ! -f "$dir/checkpoint.bin" ] || resume=--resume
    OMP_NUM_THREADS=1 "$train" run "$config" --set "model.posenc=$2" --set model.n_layer="$4" --set seed="$5" \
        --set out_dir="$dir" ${3:+--set "$3"} $resume > "$dir.log" 2>&1 ||
        { echo "error: $dir: training failed (see $dir.log)" >&2; return 1; }
}

# Every run first, through a pool of $jobs tokens in a pipe (a run takes one to start and gives it
# back when it ends), so a long run never holds up the short ones.
failed="$out/.grid-failed.$$" fifo="$out/.grid-jobs.$$"
: > "$failed"
mkfifo "$fifo"
exec 3<>"$fifo"
rm -f "$fifo"
i=0
while [ "$i" -lt "$jobs" ]; do echo >&3; i=$((i + 1)); done
echo "$kinds" | {
    while IFS='|' read -r name pe setting; do
        name=$(echo "$name" | tr -d ' ')
        [ -n "$name" ] || continue
        for L in $depths; do
            s=1
            while [ "$s" -le "$seeds" ]; do
                read -r _ <&3
                { train_one "$name" "$pe" "$setting" "$L" "$s" || echo "$out/$name-L$L-s$s" >> "$failed"; echo >&3; } &
                s=$((s + 1))
            done
        done
    done
    wait  # the pipe's subshell owns the runs
}
exec 3>&-
if [ -s "$failed" ]; then
    rm -f "$failed"
    exit 1
fi
rm -f "$failed"

echo "kind,layers,seed,acc_1x,acc_2x,acc_4x,solved_1x,solved_2x,solved_4x$extra_header" > "$summary.tmp"
echo "$kinds" | while IFS='|' read -r name pe setting; do
    name=$(echo "$name" | tr -d ' ')
    [ -n "$name" ] || continue
    for L in $depths; do
        s=1
        while [ "$s" -le "$seeds" ]; do
            dir="$out/$name-L$L-s$s"
            row="$name,$L,$s"
            solved=""
            for mult in 1 2 4; do
                line=$(OMP_NUM_THREADS=1 "$train" eval "$dir" --block-size $((length * mult)) | tail -1)
                acc=$(echo "$line" | sed -n 's/.*accuracy \([0-9.]*\).*/\1/p')
                sl=$(echo "$line" | sed -n 's/.*solved length \([0-9]*\) of.*/\1/p')
                row="$row,$acc"
                solved="$solved,$sl"
            done
            variants=""
            if [ "$flipflop" != 0 ]; then
                for p in 0.98 0.1; do
                    line=$(OMP_NUM_THREADS=1 "$train" eval "$dir" --p-ignore "$p" | tail -1)
                    variants="$variants,$(echo "$line" | sed -n 's/.*accuracy \([0-9.]*\).*/\1/p')"
                done
            fi
            echo "$row$solved$variants" >> "$summary.tmp"
            s=$((s + 1))
        done
    done
done
mv "$summary.tmp" "$summary"
awk -F, -v extra="${extra_cols:-0}" 'NR > 1 {
        k = $1 " | " $2; if (!(k in n)) order[++m] = k; n[k]++
        for (i = 4; i <= 9 + extra; i++) { s[k, i] += $i; q[k, i] += $i * $i }
    }
    END {
        print "| kind | L | acc 1x | acc 2x | acc 4x | solved length 1x | 2x | 4x |" (extra ? " acc sparse | acc dense |" : "")
        print "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |" (extra ? " ---: | ---: |" : "")
        for (j = 1; j <= m; j++) {
            k = order[j]; line = "| " k
            for (i = 4; i <= 9 + extra; i++) {
                mean = s[k, i] / n[k]; var = n[k] > 1 ? (q[k, i] - n[k] * mean * mean) / (n[k] - 1) : 0
                line = line sprintf(i <= 6 || i > 9 ? " | %.3f ± %.3f" : " | %.1f ± %.1f", mean, sqrt(var > 0 ? var : 0))
            }
            print line " |"
        }
    }' "$summary"
