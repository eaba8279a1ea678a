#!/bin/sh
# bench_peers.sh: the published peers' training step against RoPE's (make bench-peers).
#
#     sh scripts/bench_peers.sh [BENCH_TRAIN]        (default build/tests/bench_train)
#
# ALiBi and FoX (score biases on NoPE), RoPE + FoX, HDD-RoPE c = 4 + FoX, PaTH and PaTH + FoX,
# each paired with RoPE in one process (bench_train --pair: the two models' steps alternate),
# at the small shape (configs/small: C=128 L=4 NH=4 T=256 B=16, 1 thread) and at the author's
# (C=768 L=4 NH=16 T=512 B=4, 2 threads). Prints one Markdown table, a row per pair: the ratio
# of median step times, the range of the per-round ratios, the kind's own time inside its step
# (q/k hooks and PaTH's scores; a score bias is counted with attention) and the model FLOPs
# ratio. Environment: ROUNDS (default 4), SHAPES ("small author", or one of them).
set -eu
bench=${1:-build/tests/bench_train}
rounds=${ROUNDS:-4}
shapes=${SHAPES:-small author}
[ -x "$bench" ] || { echo "bench_peers.sh: $bench is not built (make $bench)" >&2; exit 1; }
. "$(dirname "$0")/bench_pair.sh"
peers='alibi|{"kind":"none","bias":"alibi"}
fox|{"kind":"none","bias":"fox"}
rope + fox|{"kind":"rope","bias":"fox"}
hddrope c = 4 + fox|{"kind":"hddrope","chunk":4,"bias":"fox"}
path|{"kind":"path"}
path + fox|{"kind":"path","bias":"fox"}'

echo "| shape | threads | B (A = rope) | ratio of medians | per-round ratios (median, range) | B's posenc ms/step | model FLOPs B/A |"
echo "| --- | ---: | --- | ---: | --- | ---: | ---: |"
for shape in $shapes; do
    case "$shape" in
        small) dims="128 4 4 256 4096 16" threads=1 ;;
        author) dims="768 4 16 512 4096 4" threads=2 ;;
        *) echo "bench_peers.sh: unknown shape '$shape' (small, author)" >&2; exit 1 ;;
    esac
    echo "$peers" | while IFS='|' read -r name json; do
        pair_row "$bench" "$rounds" "$threads" "$dims" "$json" "$shape" "$name" ||
            { echo "bench_peers.sh: a pair failed" >&2; exit 1; }
    done
done
