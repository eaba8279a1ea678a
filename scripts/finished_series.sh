# finished_series.sh: sourced by report.sh and results_figures.sh (not run on its own).
#
#   finished_series RUNS_DIR FILE NAME...
#
# Prints one series argument of the report tools per config, "NAME=RUNS_DIR/NAME/seed1/FILE,...",
# over the seeds that finished (final.json: a run still training would drag the curves' ends)
# and have FILE; nothing for a config with none. Run directories are named by compare.sh and
# hold no spaces, so callers may word-split the output.
finished_series() {
    fs_runs=$1; fs_file=$2; shift 2
    for fs_name in "$@"; do
        fs_list=
        for fs_f in "$fs_runs/$fs_name"/seed*/"$fs_file"; do
            [ -f "$fs_f" ] && [ -f "${fs_f%/*}/final.json" ] && fs_list="${fs_list:+$fs_list,}$fs_f"
        done
        [ -n "$fs_list" ] && printf '%s\n' "$fs_name=$fs_list"
    done
    return 0
}
