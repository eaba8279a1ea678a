/* train.c: the tinyrope program, one binary with subcommands.
 *
 *   ./train run configs/demo.json [--set model.n_layer=2]... [--resume]
 *         the main job: learn (or load) the tokenizer, prepare the shards, train, evaluate on the
 *         whole validation split, log to <out_dir>/log.csv, checkpoint; or, when the config's data
 *         spec is a synthetic task (configs/state/), train on fresh task sequences (cli/task_run.h)
 *   ./train config configs/small/hddrope-c4.json [--set ...]
 *         print the config as `run` resolves and records it
 *   ./train sample runs/demo [--prompt TEXT] [--temperature 0.8]
 *         a story from the run's checkpoint
 *   ./train eval runs/demo --block-size 512 [--bca] [--out per_position.csv]
 *         length extrapolation: the run's checkpoint at another context, on the whole val split;
 *         on a task run: accuracy (per position with --out) and the solved length
 *   ./train tokenizer --data configs/data/sample.json --vocab 4096 --out runs/tok.bpe
 *         learn a byte-level BPE tokenizer from the train split of a data spec (or --input FILES)
 *   ./train prepare --data configs/data/sample.json --tokenizer runs/tok.bpe --out runs/data
 *         encode train and val text into token shards + meta.json (reused when up to date)
 *   ./train encode (--tokenizer FILE | --gpt2 ENCODER_JSON VOCAB_BPE) (--text STRING | FILES...)
 *         print the ids of a string, or encode whole files in parallel and report MB/s
 *   ./train decode (--tokenizer FILE | --gpt2 ENCODER_JSON VOCAB_BPE) ID...
 *   ./train export runs/demo --out model.safetensors
 *         the checkpoint's parameters as safetensors, the tokenizer as model.tokenizer.json
 *   ./train import model.safetensors --out runs/imported [--config FILE] [--set ...] [--no-data]
 *         a run directory from such a file: sample, eval and run --resume work on it
 *
 * Every command reports bad input as one "error: <file>: <what>" line and exits with status 1.
 * This file is the map of the program: what run, config, sample and eval do, in order, with the
 * details one call away in cli/: the stages of a training run (cli/run.c), opening a run
 * directory (cli/run_dir.c), the evaluation (cli/evaluate.c), stories (cli/story.c). The
 * tokenizer and data commands live in cli/tok_cli.c and cli/data_cli.c.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "cli/args.h"
#include "cli/data_cli.h"
#include "cli/evaluate.h"
#include "cli/export.h"
#include "cli/run.h"
#include "cli/run_dir.h"
#include "cli/story.h"
#include "cli/task_run.h"
#include "cli/tok_cli.h"
#include "data/loader.h"
#include "model/config.h"

/* ------------------------------------------------------------------------------------------------
 * ./train run CONFIG [--set key=value]... [--resume] [--stop-at STEP]: the training loop. Each
 * stage is a call into cli/run.c; the cadence of logging, evaluation and checkpoints is here.
 */

static void run_usage(void) {
    fprintf(stderr, "usage: train run CONFIG.json [--set key=value]... [--resume] [--stop-at STEP]\n"
                    "  --set model.n_layer=2   override any key of the config (repeatable)\n"
                    "  --resume                continue from <out_dir>/checkpoint.bin\n"
                    "  --stop-at STEP          stop after STEP updates with a checkpoint, as if interrupted\n"
                    "                          (the schedule still runs to train.max_steps on --resume)\n");
}

static int cmd_run(int argc, char **argv) {
    const char **sets = xcalloc((size_t)argc, sizeof *sets);
    RunOptions opts = {.sets = sets, .stop_at = -1};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--set")) sets[opts.n_sets++] = tr_arg_value(argc, argv, &i);
        else if (!strcmp(argv[i], "--resume")) opts.resume = 1;
        else if (!strcmp(argv[i], "--stop-at"))
            opts.stop_at = tr_parse_int(tr_arg_value(argc, argv, &i), "--stop-at", 1, 1LL << 50);
        else if (!strcmp(argv[i], "--help")) { run_usage(); free(sets); return 0; }
        else if (!strncmp(argv[i], "--", 2)) { run_usage(); tr_die("run: unknown option '%s'", argv[i]); }
        else if (!opts.config_path) opts.config_path = argv[i];
        else { run_usage(); tr_die("run: more than one config file given"); }
    }
    if (!opts.config_path) { run_usage(); tr_die("run: give a config file (see configs/)"); }

    /* Config, tokenizer, shards, model and optimizer; a fresh start or the checkpoint's state. */
    TrainingRun run;
    run_setup(&run, &opts);
    const RunConfig *cfg = &run.dir.config;
    const uint64_t steps = (uint64_t)cfg->train.max_steps;
    while (run.dir.progress.step < run.end) {
        run_train_step(&run);
        const uint64_t step = run.dir.progress.step;
        if (run.tty || step % cfg->train.log_every == 0 || step == steps) run_print_progress(&run);
        if (step % cfg->train.eval_every == 0 || step == steps) run_evaluate_and_log(&run);
        /* The last step before stopping is always saved, so --stop-at and --resume meet exactly. */
        if ((cfg->train.checkpoint_every && step % cfg->train.checkpoint_every == 0) || step == run.end)
            run_save_checkpoint(&run);
    }
    run_finish(&run);
    run_free(&run);
    free(sets);
    return 0;
}

/* ------------------------------------------------------------------------------------------------
 * ./train sample RUN_DIR [--prompt TEXT] [--tokens N] ...: a story from the run's checkpoint.
 */
static void sample_usage(void) {
    fprintf(stderr, "usage: train sample RUN_DIR [--prompt TEXT] [--tokens N] [--temperature T] [--top-p P]\n"
                    "                    [--seed S] [--checkpoint FILE]\n"
                    "  writes a story from the run's checkpoint (default: RUN_DIR/checkpoint.bin), with a\n"
                    "  KV cache; temperature 0 = always the most likely token\n");
}

static int cmd_sample(int argc, char **argv) {
    const char *run_dir = NULL, *prompt = "Once upon a time", *ckpt = NULL;
    long long n_tokens = 200, seed = 1;
    double temperature = 0.8, top_p = 0.9;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--prompt")) prompt = tr_arg_value(argc, argv, &i);
        else if (!strcmp(argv[i], "--tokens")) n_tokens = tr_parse_int(tr_arg_value(argc, argv, &i), "--tokens", 0, 1 << 20);
        else if (!strcmp(argv[i], "--temperature"))
            temperature = tr_parse_double(tr_arg_value(argc, argv, &i), "--temperature", 0, 100);
        else if (!strcmp(argv[i], "--top-p")) top_p = tr_parse_double(tr_arg_value(argc, argv, &i), "--top-p", 0, 1);
        else if (!strcmp(argv[i], "--seed")) seed = tr_parse_int(tr_arg_value(argc, argv, &i), "--seed", 0, 1LL << 62);
        else if (!strcmp(argv[i], "--checkpoint")) ckpt = tr_arg_value(argc, argv, &i);
        else if (!strcmp(argv[i], "--help")) { sample_usage(); return 0; }
        else if (!strncmp(argv[i], "--", 2)) { sample_usage(); tr_die("sample: unknown option '%s'", argv[i]); }
        else run_dir = argv[i];
    }
    if (!run_dir) { sample_usage(); tr_die("sample: give the run directory (the out_dir of a run)"); }
    RunDir rd;
    run_dir_init(&rd, run_dir);
    if (ckpt) snprintf(rd.checkpoint_path, sizeof rd.checkpoint_path, "%s", ckpt);
    run_dir_read_config(&rd);
    if (task_run_open(&rd)) tr_die("%s/task.json: a task run has no tokenizer: use eval", run_dir);
    run_dir_load_model(&rd, (int)rd.config.model.block_size);
    write_story(&rd.model, rd.tokenizer, prompt, (int)n_tokens, (float)temperature, (float)top_p, (uint64_t)seed,
                stdout);
    run_dir_free(&rd);
    return 0;
}

/* ------------------------------------------------------------------------------------------------
 * ./train config CONFIG [--set key=value]...: the resolved config (base files merged, overrides
 * applied, defaults filled in), exactly as `run` records it in <out_dir>/config.json. */
static int cmd_config(int argc, char **argv) {
    const char *config_path = NULL;
    const char **sets = xcalloc((size_t)argc, sizeof *sets);
    int n_sets = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--set")) sets[n_sets++] = tr_arg_value(argc, argv, &i);
        else if (!strcmp(argv[i], "--help") || argv[i][0] == '-' || config_path) {
            fprintf(stderr, "usage: train config CONFIG.json [--set key=value]...\n");
            if (strcmp(argv[i], "--help")) tr_die("config: unexpected argument '%s'", argv[i]);
            free(sets);
            return 0;
        } else config_path = argv[i];
    }
    if (!config_path) tr_die("config: give a config file (see configs/)");
    RunConfig cfg;
    if (config_load(&cfg, config_path, sets, n_sets) != 0 || config_check_training_memory(&cfg, config_path) != 0)
        tr_die_with_error();
    trained_posenc_check(&cfg, config_path);
    char *json = config_to_json(&cfg);
    printf("%s\n", json);
    free(json);
    free(sets);
    config_free(&cfg);
    return 0;
}

/* ------------------------------------------------------------------------------------------------
 * ./train eval RUN_DIR [--block-size N] [--bca] [--out FILE.csv] [--max-tokens N] [--batch-size B]:
 * length extrapolation. The run's model (its config.json, tokenizer and the parameters of
 * checkpoint.bin) is rebuilt with a context of N tokens and evaluated on the whole validation
 * split with `run`'s own evaluation: windows of N+1 tokens, every val token predicted once. A
 * task run is evaluated by task_run_eval (cli/task_run.h): its validation sequences at N tokens.
 */
static void eval_usage(void) {
    fprintf(stderr, "usage: train eval RUN_DIR [--block-size N] [--bca] [--out FILE.csv] [--max-tokens N]\n"
                    "                  [--batch-size B]\n"
                    "  mean val loss and bits per byte of the run's checkpoint at a context of N tokens;\n"
                    "  on a task run: val loss, accuracy and solved length on sequences of N tokens\n"
                    "  --block-size N   context length (default: the trained block_size)\n"
                    "  --bca            blockwise causal attention, blocks of block_size/2 (xPos paper;\n"
                    "                   relative encodings only: not with learned)\n"
                    "  --out FILE.csv   per-position mean loss: position,loss,tokens (N rows);\n"
                    "                   a task run: position,supervised,correct,accuracy\n"
                    "  --max-tokens N   stop after about N target tokens (default: the whole split)\n"
                    "  --batch-size B   windows per forward (default: batch_size * block_size / N)\n"
                    "  --p-ignore P     a flip-flop run on another share of ignore instructions\n"
                    "                   (e.g. 0.98 sparse, 0.1 dense; default: as trained)\n");
}

static int cmd_eval(int argc, char **argv) {
    const char *run_dir = NULL, *csv_path = NULL;
    long long T = 0, B = 0, max_tokens = 0;
    int bca = 0;
    double p_ignore = NAN;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--block-size")) T = tr_parse_int(tr_arg_value(argc, argv, &i), "--block-size", 1, 1 << 20);
        else if (!strcmp(argv[i], "--batch-size")) B = tr_parse_int(tr_arg_value(argc, argv, &i), "--batch-size", 1, 1 << 20);
        else if (!strcmp(argv[i], "--max-tokens"))
            max_tokens = tr_parse_int(tr_arg_value(argc, argv, &i), "--max-tokens", 1, 1LL << 50);
        else if (!strcmp(argv[i], "--out")) csv_path = tr_arg_value(argc, argv, &i);
        else if (!strcmp(argv[i], "--bca")) bca = 1;
        else if (!strcmp(argv[i], "--p-ignore")) p_ignore = tr_parse_double(tr_arg_value(argc, argv, &i), "--p-ignore", 0.0, 1.0);
        else if (!strcmp(argv[i], "--help")) { eval_usage(); return 0; }
        else if (!strncmp(argv[i], "--", 2)) { eval_usage(); tr_die("eval: unknown option '%s'", argv[i]); }
        else if (!run_dir) run_dir = argv[i];
        else { eval_usage(); tr_die("eval: more than one run directory given"); }
    }
    if (!run_dir) { eval_usage(); tr_die("eval: give the run directory (the out_dir of a run)"); }
    if (!tr_file_exists(run_dir)) tr_die("eval: %s: no such run directory", run_dir);
    RunDir rd;
    run_dir_init(&rd, run_dir);
    if (!tr_file_exists(rd.config_path)) tr_die("%s: missing: %s is not the out_dir of a run", rd.config_path, run_dir);
    if (!tr_file_exists(rd.checkpoint_path))
        tr_die("%s: missing: the run has no checkpoint to evaluate", rd.checkpoint_path);
    run_dir_read_config(&rd);
    if (task_run_open(&rd)) return task_run_eval(&rd, (int)T, (int)B, (long)max_tokens, bca, p_ignore, csv_path);
    if (!isnan(p_ignore)) tr_die("eval: --p-ignore is for a flip-flop run; %s is a text run", run_dir);
    const int T_train = (int)rd.config.model.block_size;
    if (!T) T = T_train;
    if (!B) B = T_train * rd.config.train.batch_size / T > 1 ? T_train * rd.config.train.batch_size / T : 1;
    const char *kind = check_eval_context(&rd, T, bca);

    /* Built for the longer of the two contexts: a learned table keeps its trained size (and so its
     * parameter count), evaluated at N <= T_train; every other kind sizes its tables by max_T. The
     * checkpoint is checked against the run's own config.json (trained block_size and batch
     * shape): it must come from this very model and tokenizer, whatever the context now. */
    run_dir_load_model(&rd, T > T_train ? (int)T : T_train);
    rd.model.attn_block = bca ? T_train / 2 : 0;
    TokenLoader *val = loader_open(rd.data_dir, "val", tok_hash(rd.tokenizer), (int)B, (int)T, 0, 0);
    if (!val) tr_die_with_error();
    Batch batch;
    batch_alloc(&batch, (int)B, (int)T);
    PositionLoss *per_position = csv_path ? xcalloc((size_t)T, sizeof *per_position) : NULL;
    const double t0 = tr_now_seconds();
    EvalResult ev = evaluate(&rd.model, val, &batch, (long)max_tokens, per_position);
    printf("eval %s (step %llu): %s, block size %lld (trained %d)%s, batch %lld: val loss %.6f, %.6f bits per byte "
           "(%llu tokens, %.1f s)\n", run_dir, (unsigned long long)rd.progress.step, kind, T, T_train,
           bca ? ", BCA" : "", B, ev.loss, ev.bits_per_byte, (unsigned long long)ev.tokens, tr_now_seconds() - t0);
    if (csv_path) write_position_losses(csv_path, per_position, (int)T);
    batch_free(&batch);
    free(per_position);
    loader_close(val);
    run_dir_free(&rd);
    return 0;
}

/* ------------------------------------------------------------------------------------------------
 * ./train export RUN_DIR --out FILE.safetensors and ./train import FILE.safetensors --out RUN_DIR:
 * the weights for other tools and back (cli/export.c; the format is in docs/export.md).
 */
static void export_usage(void) {
    fprintf(stderr, "usage: train export RUN_DIR --out FILE.safetensors\n"
                    "  the parameters of RUN_DIR/checkpoint.bin as safetensors (float32, named as GPT-2's),\n"
                    "  the run's config in its metadata, and the tokenizer as FILE.tokenizer.json\n");
}

static int cmd_export(int argc, char **argv) {
    const char *run_dir = NULL, *out = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--out")) out = tr_arg_value(argc, argv, &i);
        else if (!strcmp(argv[i], "--help")) { export_usage(); return 0; }
        else if (!strncmp(argv[i], "--", 2)) { export_usage(); tr_die("export: unknown option '%s'", argv[i]); }
        else if (!run_dir) run_dir = argv[i];
        else { export_usage(); tr_die("export: more than one run directory given"); }
    }
    if (!run_dir || !out) { export_usage(); tr_die("export: give the run directory and --out FILE.safetensors"); }
    export_run(run_dir, out);
    return 0;
}

static void import_usage(void) {
    fprintf(stderr, "usage: train import FILE.safetensors --out RUN_DIR [--config FILE] [--tokenizer FILE.json]\n"
                    "                    [--set key=value]... [--no-data]\n"
                    "  a new run directory from exported weights: config.json (the file's metadata, or --config),\n"
                    "  tokenizer.bpe (from FILE.tokenizer.json, or --tokenizer), checkpoint.bin at step 0 with\n"
                    "  fresh AdamW state, and the token shards of the config's data spec (not with --no-data)\n");
}

static int cmd_import(int argc, char **argv) {
    ImportOptions opts = {.n_sets = 0};
    const char **sets = xcalloc((size_t)argc, sizeof *sets);
    opts.sets = sets;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--out")) opts.out_dir = tr_arg_value(argc, argv, &i);
        else if (!strcmp(argv[i], "--config")) opts.config_path = tr_arg_value(argc, argv, &i);
        else if (!strcmp(argv[i], "--tokenizer")) opts.tokenizer_path = tr_arg_value(argc, argv, &i);
        else if (!strcmp(argv[i], "--set")) sets[opts.n_sets++] = tr_arg_value(argc, argv, &i);
        else if (!strcmp(argv[i], "--no-data")) opts.no_data = 1;
        else if (!strcmp(argv[i], "--help")) { import_usage(); free(sets); return 0; }
        else if (!strncmp(argv[i], "--", 2)) { import_usage(); tr_die("import: unknown option '%s'", argv[i]); }
        else if (!opts.in_path) opts.in_path = argv[i];
        else { import_usage(); tr_die("import: more than one weights file given"); }
    }
    if (!opts.in_path || !opts.out_dir) { import_usage(); tr_die("import: give the weights file and --out RUN_DIR"); }
    import_run(&opts);
    free(sets);
    return 0;
}

/* ------------------------------------------------------------------------------------------------ */

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);   /* argv[0] is the command name */
    const char *help;
} Command;

static const Command commands[] = {
    {"run", cmd_run, "train a model from a config (the main job)"},
    {"config", cmd_config, "print a config as run resolves it (base files, --set, defaults)"},
    {"sample", cmd_sample, "write a story from a run's checkpoint"},
    {"eval", cmd_eval, "evaluate a run's checkpoint at another context length (--bca, per position)"},
    {"tokenizer", cmd_tokenizer, "learn a BPE tokenizer from text"},
    {"prepare", cmd_prepare, "encode text into token shards"},
    {"encode", cmd_encode, "encode a string or files; reports MB/s"},
    {"decode", cmd_decode, "decode token ids to text"},
    {"export", cmd_export, "write a run's weights as safetensors, and its tokenizer as JSON"},
    {"import", cmd_import, "build a run directory from exported weights"},
};

static void usage(FILE *out) {
    fprintf(out, "usage: train <command> [options]   (train <command> --help for its options)\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].help);
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 1 : 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "error: unknown command '%s' (train --help lists the commands)\n", argv[1]);
    return 1;
}
