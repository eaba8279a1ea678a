# bench_pair.sh: sourced by bench_hdd.sh and bench_peers.sh. pair_row runs one bench_train --pair
# of RoPE against a kind and prints its Markdown row.
#
#   pair_row BENCH ROUNDS THREADS "DIMS" JSON SHAPE-LABEL NAME [TARGET]
#
# The row: | shape | threads | name | ratio of medians | per-round ratios (median, range) | the
# kind's own ms per step | model FLOPs ratio |, and | target | when TARGET is given. A failed
# pair is named on stderr and returns 1.
pair_row() {
    # shellcheck disable=SC2086 # DIMS: six numbers
    _out=$(OMP_NUM_THREADS=$3 "$1" --pair rope "$5" $4 "$2") || {
        echo "bench_train --pair rope '$5' $4 failed" >&2
        return 1
    }
    printf '%s\n' "$_out" | awk -v shape="$6" -v threads="$3" -v name="$7" -v target="${8-}" -v has_target="${8+1}" '
        / B .*median/ { for (i = 1; i <= NF; i++) if ($i == "posenc") { posenc = $(i + 1); sub(/,$/, "", posenc) } }
        /ratio of medians/ {
            for (i = 1; i < NF; i++) {
                if ($i == "medians") ratio = $(i + 1)
                if ($i == "median") med = $(i + 1)
                if ($i == "range") range = $(i + 1)
                if ($i == "FLOPs") flops = $(i + 1)
            }
            sub(/;$/, "", ratio); sub(/,$/, "", med); sub(/;$/, "", range)
        }
        END {
            row = sprintf("| %s | %d | %s | %s | %s (%s) | %s | %s |", shape, threads, name, ratio, med, range, posenc, flops)
            print has_target ? row " " target " |" : row
        }'
}
