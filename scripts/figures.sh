#!/bin/sh
# figures.sh: the teaching figures of docs/figures/, every number computed by the project's own
# code (build/figure, drawn by build/plot or by build/figure itself).
#
#   sh scripts/figures.sh OUT_DIR [DEMO_RUN [HDD_RUN]]
#
#   decay-500.png, decay-50000.png   RoFormer's long-term decay bound of the relative score,
#                                    q = k = all-ones, head size 48, for every kind with a fixed
#                                    position profile (scripts/figure_posenc.h)
#   angles-rope.png, angles-xpos.png, angles-xpos-author.png
#                                    how far pairs 0, 2, 5, 11, 17 and 23 of a head of 48 have
#                                    turned at each position, on the same log axes
#   attention-demo.png               attention maps of DEMO_RUN (default runs/demo, `make demo`) on
#                                    the first 32 tokens of its first validation window
#   motion-hddrope.png               how far each of the first 64 tokens turns HDD-RoPE's P_t, from
#                                    HDD_RUN (default runs/demo-hddrope, see docs/tour.md)
# The two checkpoint figures are skipped, with a note, when their run has no checkpoint.
# Environment: FIGURE, PLOT (default build/figure, build/plot).
set -eu
out=${1:?usage: sh scripts/figures.sh OUT_DIR [DEMO_RUN [HDD_RUN]]}
demo=${2:-runs/demo}
hdd=${3:-runs/demo-hddrope}
fig=${FIGURE:-build/figure}
plot=${PLOT:-build/plot}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$out" "$tmp/near" "$tmp/far" "$tmp/angles"

kinds="none rope xpos xpos-author hddrope-static-c4"
"$fig" decay --out "$tmp/far" --max-distance 50000
near="" far=""
for k in $kinds; do
    head -n 502 "$tmp/far/decay-$k.csv" > "$tmp/near/decay-$k.csv"   # the header and distances 0..500
    near="$near $k=$tmp/near/decay-$k.csv"
    far="$far $k=$tmp/far/decay-$k.csv"
done
# shellcheck disable=SC2086  # the series are words
"$plot" --out "$out/decay-500.png" --x distance --y bound --legend-right --width 960 \
    --title "Long-term decay: the bound of the relative score (q = k = all-ones, head size 48)" \
    --xlabel "relative distance (tokens)" --ylabel "relative upper bound" $near
# shellcheck disable=SC2086
"$plot" --out "$out/decay-50000.png" --x distance --y bound --log-x --legend-right --width 960 \
    --mark-x 2048 --mark-label "author's xPos ends (2048)" \
    --title "Long-term decay out to 50,000 tokens (log distance)" \
    --xlabel "relative distance (tokens)" --ylabel "relative upper bound" $far

"$fig" angles --out "$tmp/angles" --positions 2048
for k in rope xpos xpos-author; do
    s=""
    for j in 0 2 5 11 17 23; do s="$s pair$j=$tmp/angles/angles-$k-pair$j.csv"; done
    # shellcheck disable=SC2086
    "$plot" --out "$out/angles-$k.png" --x position --y angle --log-x --log-y --ymin 1e-5 --ymax 3000 \
        --legend-right --mark-x 512 --mark-label "512: the author's context" \
        --title "$k: how far each pair has turned (radians; 2 pi = one turn)" \
        --xlabel "position" --ylabel "angle turned since position 0 (rad)" $s
done

if [ -f "$demo/checkpoint.bin" ]; then
    "$fig" attention "$demo" --out "$out/attention-demo.png" --tokens 32
else
    echo "note: $demo has no checkpoint (make demo): attention-demo.png not made" >&2
fi
if [ -f "$hdd/checkpoint.bin" ]; then
    "$fig" motion "$hdd" --out "$out/motion-hddrope.png" --tokens 64
else
    echo "note: $hdd has no checkpoint: motion-hddrope.png not made" >&2
fi
echo "figures: $out"
