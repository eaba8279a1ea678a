#!/bin/sh
# bench_hdd.sh: HDD-RoPE's training step against RoPE's for every chunk size (make bench-hdd).
#
#     sh scripts/bench_hdd.sh [BENCH_TRAIN]        (default build/tests/bench_train)
#
# For c in 2, 3, 4, 8, 16: dynamic expm, dynamic Cayley and static expm, each paired with RoPE in
# one process (bench_train --pair: the two models' steps alternate, so the machine's drift hits
# both), at the small shape (configs/small: C=128 L=4 NH=4 T=256 B=16, 1 thread) and at the
# author's (C=768 L=4 NH=16 T=512 B=4, 2 threads); c = 3 at the small shape runs at C = 96, a
# width it divides. Prints one Markdown table, a row per pair: the
# ratio of median step times, the range of the per-round ratios, the kind's own time inside its
# step, the model FLOPs ratio, and the target for that row. Environment: ROUNDS (default 4),
# SHAPES ("small author", or one of them), CHUNKS (default "2 3 4 8 16").
set -eu
bench=${1:-build/tests/bench_train}
rounds=${ROUNDS:-4}
shapes=${SHAPES:-small author}
chunks=${CHUNKS:-2 3 4 8 16}
[ -x "$bench" ] || { echo "bench_hdd.sh: $bench is not built (make $bench)" >&2; exit 1; }
. "$(dirname "$0")/bench_pair.sh"

# target KIND-LABEL C SHAPE: the issue's bound on the ratio for that row
target() {
    case "$1,$3" in
        static*) echo "≤ 1.05" ;;
        *,small) case "$2" in 2 | 3 | 4) echo "≤ 1.15" ;; 8) echo "≤ 1.5" ;; *) echo "≤ 2.0" ;; esac ;;
        *,author) case "$2" in 4) echo "≤ 1.15" ;; 8) echo "≤ 1.3" ;; *) echo "–" ;; esac ;;
    esac
}

echo "| shape | threads | B (A = rope) | ratio of medians | per-round ratios (median, range) | B's posenc ms/step | model FLOPs B/A | target |"
echo "| --- | ---: | --- | ---: | --- | ---: | ---: | --- |"
for shape in $shapes; do
    case "$shape" in
        small) dims="128 4 4 256 4096 16" threads=1 ;;
        author) dims="768 4 16 512 4096 4" threads=2 ;;
        *) echo "bench_hdd.sh: unknown shape '$shape' (small, author)" >&2; exit 1 ;;
    esac
    for c in $chunks; do
        # c = 3 needs a head size it divides: at the small shape, C = 96 (hs = 24) instead
        cdims=$dims label=$shape
        if [ "$c" = 3 ] && [ "$shape" = small ]; then cdims="96 4 4 256 4096 16" label="small, C = 96"; fi
        for kind in dynamic cayley static; do
            case "$kind" in
                dynamic) json="{\"kind\":\"hddrope\",\"chunk\":$c}" name="c = $c dynamic expm" ;;
                cayley) json="{\"kind\":\"hddrope\",\"chunk\":$c,\"map\":\"cayley\"}" name="c = $c dynamic Cayley" ;;
                static) json="{\"kind\":\"hddrope\",\"chunk\":$c,\"dynamic\":false}" name="c = $c static expm" ;;
            esac
            pair_row "$bench" "$rounds" "$threads" "$cdims" "$json" "$label" "$name" "$(target "$kind" "$c" "$shape")" ||
                { echo "bench_hdd.sh: a pair failed" >&2; exit 1; }
        done
    done
done
