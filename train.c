/* train.c: the tinyrope program, one binary with subcommands.
 *
 *   ./train run configs/demo.json [--set model.n_layer=2]... [--resume]
 *         the main job: learn (or load) the tokenizer, prepare the shards, train, evaluate on the
 *         whole validation split, log to <out_dir>/log.csv, checkpoint
 *   ./train config configs/small/hddrope-c4.json [--set ...]
 *         print the config as `run` resolves and records it
 *   ./train eval runs/demo --block-size 512 [--bca] [--out per_position.csv]
 *         length extrapolation: the run's checkpoint at another context, on the whole val split
 *   ./train tokenizer --data configs/data/sample.json --vocab 4096 --out runs/tok.bpe
 *         learn a byte-level BPE tokenizer from the train split of a data spec (or --input FILES)
 *   ./train prepare --data configs/data/sample.json --tokenizer runs/tok.bpe --out runs/data
 *         encode train and val text into token shards + meta.json (reused when up to date)
 *   ./train encode (--tokenizer FILE | --gpt2 ENCODER_JSON VOCAB_BPE) (--text STRING | FILES...)
 *         print the ids of a string, or encode whole files in parallel and report MB/s
 *   ./train decode (--tokenizer FILE | --gpt2 ENCODER_JSON VOCAB_BPE) ID...
 *
 * Every command reports bad input as one "error: <file>: <what>" line and exits with status 1.
 * The tokenizer and data commands live next to what they drive (tokenizer/tok_cli.c,
 * data/data_cli.c); the training loop is here, so this file reads as the map of the program.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/data_cli.h"
#include "data/data_spec.h"
#include "data/loader.h"
#include "data/shard_writer.h"
#include "base/util.h"
#include "cli/args.h"
#include "cli/checkpoint.h"
#include "model/config.h"
#include "model/gpt.h"
#include "model/optim.h"
#include "model/sample.h"
#include "cli/tok_cli.h"

/* ------------------------------------------------------------------------------------------------
 * Stories: EOT (as every story in the shards starts after one), the prompt, then sampled tokens
 * until EOT, max_tokens or the end of the context. Tokens are written to out as they come.
 */
static void write_story(GPT *model, const Tokenizer *tok, const char *prompt, int max_tokens, float temperature,
                        float top_p, uint64_t seed, FILE *out) {
    const int eot = tok_eot_id(tok);
    size_t n = strlen(prompt);
    uint32_t *ids = xmalloc((n + 1) * sizeof *ids);
    size_t n_ids = tok_encode(tok, (const uint8_t *)prompt, n, ids, n + 1);
    KVCache kv;
    gpt_kv_init(&kv, model);
    Sampler sampler;
    sampler_init(&sampler, model->config.V);
    uint64_t rng = seed;
    const float *logits = gpt_step(model, &kv, eot);
    for (size_t i = 0; i < n_ids && logits; i++) logits = gpt_step(model, &kv, (int32_t)ids[i]);
    if (!logits) tr_die("prompt: %s", tr_error());
    fwrite(prompt, 1, n, out);
    for (int i = 0; i < max_tokens; i++) {
        int next = sample_token(&sampler, logits, temperature, top_p, &rng);
        if (next == eot) break;
        int len;
        const uint8_t *bytes = tok_token_bytes(tok, next, &len);
        fwrite(bytes, 1, (size_t)len, out);
        fflush(out);
        if (kv.len == kv.capacity) {
            fprintf(out, " [context of %d tokens full]", kv.capacity);
            break;
        }
        logits = gpt_step(model, &kv, next);
    }
    fputc('\n', out);
    sampler_free(&sampler);
    gpt_kv_free(&kv);
    free(ids);
}

/* ------------------------------------------------------------------------------------------------
 * ./train run CONFIG [--set key=value]... [--resume]: the training loop.
 */

typedef struct {
    double loss;              /* mean loss per target token, nats */
    double bits_per_byte;
    uint64_t tokens;          /* targets evaluated */
} EvalResult;

/* Mean loss over the validation split (all of it unless max_tokens caps it), and bits per byte:
 * total nats / ln 2 / text bytes, with the split's text bytes prorated when capped. When
 * pos_nats and pos_tokens (T each) are given, the loss at each window position t is also added
 * to pos_nats[t] and counted in pos_tokens[t] (`train eval --out`). */
static EvalResult evaluate_positions(GPT *model, TokenLoader *val, int B, int T, long max_tokens,
                                     int32_t *inputs, int32_t *targets, double *pos_nats,
                                     uint64_t *pos_tokens) {
    EvalResult r = {0};
    double nats = 0;
    loader_reset(val);
    int rc;
    while ((rc = loader_next_batch(val, inputs, targets)) == 1) {
        if (gpt_forward(model, inputs, targets, B, T) != 0) tr_die_with_error();
        nats += (double)model->mean_loss * (double)model->n_targets;
        r.tokens += (uint64_t)model->n_targets;
        if (pos_nats)
            for (long i = 0; i < (long)B * T; i++)
                if (targets[i] >= 0) {
                    pos_nats[i % T] += model->losses[i];
                    pos_tokens[i % T]++;
                }
        if (max_tokens > 0 && r.tokens >= (uint64_t)max_tokens) break;
    }
    if (rc < 0) tr_die_with_error();
    double bytes = (double)loader_text_bytes(val);
    if (rc == 1) bytes *= (double)r.tokens / (double)(loader_num_tokens(val) - 1);   /* capped */
    r.loss = r.tokens ? nats / (double)r.tokens : 0.0;
    r.bits_per_byte = bytes > 0 ? nats / log(2.0) / bytes : 0.0;
    return r;
}

/* The evaluation of `run` (every eval_every steps and at the end). */
static EvalResult evaluate(GPT *model, TokenLoader *val, int B, int T, long max_tokens, int32_t *inputs,
                           int32_t *targets) {
    return evaluate_positions(model, val, B, T, max_tokens, inputs, targets, NULL, NULL);
}

/* What a checkpoint must agree on to be resumed: the model section of the config (posenc
 * included), the batch shape and the tokenizer. */
static uint64_t run_config_hash(const RunConfig *cfg, const Tokenizer *tok) {
    char *model_json = cJSON_PrintUnformatted(cJSON_GetObjectItem(cfg->json, "model"));
    uint64_t h = tr_fnv1a64(model_json, strlen(model_json), TR_FNV_OFFSET);
    long shape[2] = {cfg->train.batch_size, cfg->train.grad_accum};
    uint64_t tok_h = tok_hash(tok);
    h = tr_fnv1a64(shape, sizeof shape, h);
    h = tr_fnv1a64(&tok_h, sizeof tok_h, h);
    free(model_json);
    return h;
}

static void path_in(char *out, size_t cap, const char *dir, const char *name) { snprintf(out, cap, "%s/%s", dir, name); }

/* On resume, keeps the CSV rows up to the checkpoint's step, so the rows that follow line up
 * with those of an uninterrupted run. */
static void truncate_log(const char *log_path, uint64_t step) {
    size_t n;
    char *text = tr_read_file(log_path, &n);
    if (!text) tr_die_with_error();
    TrAtomicFile af;
    if (tr_atomic_open(&af, log_path) != 0) tr_die_with_error();
    char *line = text;
    int first = 1;
    while (*line) {
        char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line + 1) : strlen(line);
        if (first || strtoull(line, NULL, 10) <= step) fwrite(line, 1, len, af.f);
        first = 0;
        line += len;
    }
    free(text);
    if (tr_atomic_commit(&af) != 0) tr_die_with_error();
}

static void format_duration(char *out, size_t cap, double s) {
    if (s < 0 || !isfinite(s)) snprintf(out, cap, "?");
    else if (s < 60) snprintf(out, cap, "%ds", (int)s);
    else if (s < 3600) snprintf(out, cap, "%dm%02ds", (int)s / 60, (int)s % 60);
    else snprintf(out, cap, "%dh%02dm", (int)s / 3600, ((int)s % 3600) / 60);
}

/* The positional encoding of the config's model as it is trained (max_T = block_size): created
 * to check its options against the shapes before any work, and to ask it what it allows. Dies
 * with the config's path and the option at fault. */
static void create_posenc(PosEnc *pe, const RunConfig *cfg, const char *config_path) {
    ModelDims dims = {.L = (int)cfg->model.n_layer, .C = (int)cfg->model.n_embd, .NH = (int)cfg->model.n_head,
                      .hs = (int)(cfg->model.n_embd / cfg->model.n_head), .max_T = (int)cfg->model.block_size};
    if (posenc_create(pe, cfg->model.posenc, dims) != 0) tr_die("%s: model.%s", config_path, tr_error());
}

static void check_posenc(const RunConfig *cfg, const char *config_path) {
    PosEnc probe;
    create_posenc(&probe, cfg, config_path);
    posenc_destroy(&probe);
}

static void run_usage(void) {
    fprintf(stderr, "usage: train run CONFIG.json [--set key=value]... [--resume] [--stop-at STEP]\n"
                    "  --set model.n_layer=2   override any key of the config (repeatable)\n"
                    "  --resume                continue from <out_dir>/checkpoint.bin\n"
                    "  --stop-at STEP          stop after STEP updates with a checkpoint, as if interrupted\n"
                    "                          (the schedule still runs to train.max_steps on --resume)\n");
}

static int cmd_run(int argc, char **argv) {
    const char *config_path = NULL;
    const char **sets = xcalloc((size_t)argc, sizeof *sets);
    int n_sets = 0, resume = 0;
    long long stop_at = -1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--set")) sets[n_sets++] = tr_arg_value(argc, argv, &i);
        else if (!strcmp(argv[i], "--resume")) resume = 1;
        else if (!strcmp(argv[i], "--stop-at")) stop_at = tr_parse_int(tr_arg_value(argc, argv, &i), "--stop-at", 1, 1LL << 50);
        else if (!strcmp(argv[i], "--help")) { run_usage(); return 0; }
        else if (!strncmp(argv[i], "--", 2)) { run_usage(); tr_die("run: unknown option '%s'", argv[i]); }
        else if (!config_path) config_path = argv[i];
        else { run_usage(); tr_die("run: more than one config file given"); }
    }
    if (!config_path) { run_usage(); tr_die("run: give a config file (see configs/)"); }
    RunConfig cfg;
    if (config_load(&cfg, config_path, sets, n_sets) != 0) tr_die_with_error();
    const int B = (int)cfg.train.batch_size, T = (int)cfg.model.block_size;
    check_posenc(&cfg, config_path);
    DataSpec spec;
    if (data_spec_load(cfg.data, &spec) != 0) tr_die_with_error();
    const char *out = cfg.out_dir;
    char path[1100], tok_path[1100], data_dir[1100], log_path[1100], ckpt_path[1100], final_path[1100];
    if (tr_mkdir_p(out) != 0) tr_die_with_error();
    path_in(log_path, sizeof log_path, out, "log.csv");
    path_in(ckpt_path, sizeof ckpt_path, out, "checkpoint.bin");
    path_in(data_dir, sizeof data_dir, out, "data");

    /* Tokenizer: the config's file, else the run's own: learned afresh by a new run (it is
     * deterministic, so the shards of an identical earlier run are still reused), loaded on resume. */
    Tokenizer *tok;
    if (cfg.tokenizer.file[0]) {
        snprintf(tok_path, sizeof tok_path, "%s", cfg.tokenizer.file);
        if (!(tok = tok_load(tok_path))) tr_die_with_error();
    } else {
        path_in(tok_path, sizeof tok_path, out, "tokenizer.bpe");
        if (resume) {
            if (!(tok = tok_load(tok_path))) tr_die_with_error();
        } else {
            tok = learn_tokenizer(spec.train, spec.n_train, (int)cfg.tokenizer.vocab_size, tok_path);
        }
    }
    PrepareReport report;
    if (shards_prepare(&spec, tok, tok_path, data_dir, 0, 0, &report) != 0) tr_die_with_error();
    data_spec_free(&spec);
    uint64_t th = tok_hash(tok);
    TokenLoader *train = loader_open(data_dir, "train", th, B, T, 1, (uint64_t)cfg.seed);
    TokenLoader *val = train ? loader_open(data_dir, "val", th, B, T, 0, 0) : NULL;
    if (!train || !val) tr_die_with_error();

    GPTConfig mc = {.V = tok_vocab_size(tok), .L = (int)cfg.model.n_layer, .C = (int)cfg.model.n_embd,
                    .NH = (int)cfg.model.n_head, .max_T = T};
    GPT model;
    if (gpt_build(&model, &mc, cfg.model.posenc, (uint64_t)cfg.seed) != 0) tr_die_with_error();
    ParamGroup *groups;
    int n_groups = gpt_param_groups(&model, (float)cfg.optim.weight_decay, (float)cfg.optim.posenc_lr_mult,
                                    (float)cfg.optim.posenc_weight_decay, &groups);
    AdamW opt;
    if (adamw_init(&opt, model.num_params, groups, n_groups, (float)cfg.optim.beta1, (float)cfg.optim.beta2,
                   (float)cfg.optim.eps, (float)cfg.optim.grad_clip, cfg.optim.clip_per_group) != 0)
        tr_die_with_error();
    for (int g = 0; g < n_groups; g++) free(groups[g].ranges);
    free(groups);
    LrSchedule sched = {.kind = strcmp(cfg.optim.schedule, "cosine") ? LR_CONSTANT : LR_COSINE,
                        .lr = (float)cfg.optim.lr, .min_lr = (float)cfg.optim.min_lr,
                        .warmup = cfg.optim.warmup_steps, .max_steps = cfg.train.max_steps};

    int32_t *inputs = xmalloc((size_t)B * T * sizeof *inputs), *targets = xmalloc((size_t)B * T * sizeof *targets);
    /* One forward to size the activations, so the memory report below is complete. */
    if (loader_next_batch(train, inputs, targets) != 1) tr_die_with_error();
    /* ...and timed, with a backward, for the wall-time estimate printed below (the gradients are
     * zeroed at the start of every step, so this leaves no trace in training). */
    double t_micro = tr_now_seconds();
    if (gpt_forward(&model, inputs, targets, B, T) != 0) tr_die_with_error();
    const double t_forward = tr_now_seconds() - t_micro;
    gpt_backward(&model, inputs, 1.0f);
    t_micro = tr_now_seconds() - t_micro;
    loader_set_state(train, (LoaderState){0, 0});
    printf("model: %s, L=%d C=%d NH=%d T=%d V=%d: %zu parameters\n", model.posenc.kind->name, mc.L, mc.C, mc.NH, T,
           mc.V, model.num_params);
    printf("memory: parameters %.1f MB, gradients %.1f MB, AdamW %.1f MB, activations (B=%d) %.1f MB, "
           "their gradients %.1f MB\n", model.num_params * 4e-6, model.num_params * 4e-6, model.num_params * 8e-6, B,
           model.num_acts * 4e-6, model.num_grad_acts * 4e-6);
    printf("data: train %llu tokens, val %llu tokens; %ld tokens per step\n",
           (unsigned long long)loader_num_tokens(train), (unsigned long long)loader_num_tokens(val),
           cfg.train.batch_size * cfg.model.block_size * cfg.train.grad_accum);

    CheckpointState st = {.config_hash = run_config_hash(&cfg, tok)};
    path_in(final_path, sizeof final_path, out, "final.json");
    if (resume) {
        if (checkpoint_load(ckpt_path, &st, st.config_hash, model.params_memory, model.num_params, &opt) != 0)
            tr_die_with_error();
        if (loader_set_state(train, st.loader) != 0) tr_die_with_error();
        truncate_log(log_path, st.step);
        printf("resumed from %s at step %llu\n", ckpt_path, (unsigned long long)st.step);
    } else {
        remove(final_path);   /* a finished earlier run in this directory is being replaced */
        char *json = config_to_json(&cfg);
        TrAtomicFile af;
        path_in(path, sizeof path, out, "config.json");
        if (tr_atomic_open(&af, path) != 0) tr_die_with_error();
        fprintf(af.f, "%s\n", json);
        free(json);
        if (tr_atomic_commit(&af) != 0) tr_die_with_error();
        if (tr_atomic_open(&af, log_path) != 0) tr_die_with_error();
        fprintf(af.f, "step,tokens,train_loss,val_loss,val_bpb,lr,grad_norm,elapsed_s,tokens_per_s\n");
        if (tr_atomic_commit(&af) != 0) tr_die_with_error();
    }

    {   /* One micro-step measured above, times the micro-steps left, plus the evaluations. */
        const long steps_left = cfg.train.max_steps - (long)st.step;
        const double val_batches = ceil((double)loader_num_tokens(val) / ((double)B * T));
        const long evals_left = steps_left / cfg.train.eval_every + 1;
        const double eval_s = val_batches * t_forward;
        char total[32];
        format_duration(total, sizeof total, steps_left * cfg.train.grad_accum * t_micro + evals_left * eval_s);
        printf("estimate: %s on this machine (%ld micro-steps of %.2f s, %ld evaluations of %.1f s; "
               "measured on one micro-step)\n", total, steps_left * cfg.train.grad_accum, t_micro, evals_left, eval_s);
    }

    FILE *log = fopen(log_path, "a");
    if (!log) tr_die("%s: cannot append", log_path);
    const int tty = isatty(fileno(stdout));
    const long steps = cfg.train.max_steps, accum = cfg.train.grad_accum;
    const double t_start = tr_now_seconds();
    const uint64_t first_step = st.step;
    const double elapsed_before = st.elapsed_s;   /* training time of earlier sessions (resume) */
    double train_loss = 0, grad_norm = 0;
    float lr = 0;
    EvalResult last_eval = {.tokens = 0};
    const uint64_t end = stop_at > 0 && stop_at < steps ? (uint64_t)stop_at : (uint64_t)steps;
    for (uint64_t step = st.step; step < end; step++) {
        gpt_zero_grad(&model);
        train_loss = 0;
        for (long micro = 0; micro < accum; micro++) {
            if (loader_next_batch(train, inputs, targets) != 1) tr_die_with_error();
            if (gpt_forward(&model, inputs, targets, B, T) != 0) tr_die_with_error();
            if (!isfinite(model.mean_loss))
                tr_die("step %llu: the loss is %f; stopping (the last checkpoint, if any, is intact)",
                       (unsigned long long)step, model.mean_loss);
            gpt_backward(&model, inputs, 1.0f / (float)accum);
            train_loss += model.mean_loss / (double)accum;
        }
        lr = lr_at(&sched, (long)step);
        grad_norm = adamw_step(&opt, model.params_memory, model.grads_memory, lr);
        if (!isfinite(grad_norm))
            tr_die("step %llu: the gradient norm is %f; stopping (the last checkpoint, if any, is intact)",
                   (unsigned long long)step, grad_norm);
        st.step = step + 1;
        st.tokens_seen += (uint64_t)B * T * accum;

        double session_s = tr_now_seconds() - t_start;
        double elapsed = st.elapsed_s = elapsed_before + session_s;
        double tok_per_s = (double)(st.step - first_step) * B * T * accum / session_s;
        if (tty || st.step % cfg.train.log_every == 0 || st.step == (uint64_t)steps) {
            char eta[32];
            format_duration(eta, sizeof eta, (double)(steps - (long)st.step) * B * T * accum / tok_per_s);
            printf("%sstep %llu/%ld | loss %.4f | lr %.2e | norm %.3f | %.0f tok/s | ETA %s%s", tty ? "\r" : "",
                   (unsigned long long)st.step, steps, train_loss, lr, grad_norm, tok_per_s, eta, tty ? "  " : "\n");
            fflush(stdout);
        }
        int last = st.step == (uint64_t)steps;
        if (st.step % cfg.train.eval_every == 0 || last) {
            EvalResult ev = last_eval = evaluate(&model, val, B, T, cfg.train.eval_max_tokens, inputs, targets);
            if (tty) printf("\n");
            printf("eval step %llu: val loss %.4f, %.4f bits per byte (%llu tokens)\n", (unsigned long long)st.step,
                   ev.loss, ev.bits_per_byte, (unsigned long long)ev.tokens);
            fprintf(log, "%llu,%llu,%.6f,%.6f,%.6f,%.6e,%.6f,%.2f,%.1f\n", (unsigned long long)st.step,
                    (unsigned long long)st.tokens_seen, train_loss, ev.loss, ev.bits_per_byte, lr, grad_norm, elapsed,
                    tok_per_s);
            fflush(log);
        }
        if ((cfg.train.checkpoint_every && st.step % cfg.train.checkpoint_every == 0) || st.step == end) {
            st.loader = loader_get_state(train);
            if (checkpoint_save(ckpt_path, &st, model.params_memory, model.num_params, &opt) != 0)
                tr_die_with_error();
        }
    }
    fclose(log);
    if (st.step == (uint64_t)steps) {
        /* final.json marks a finished run (scripts/compare.sh skips it); written last, atomically. */
        if (!last_eval.tokens)   /* resumed from the final checkpoint: nothing was evaluated above */
            last_eval = evaluate(&model, val, B, T, cfg.train.eval_max_tokens, inputs, targets);
        TrAtomicFile af;
        if (tr_atomic_open(&af, final_path) != 0) tr_die_with_error();
        fprintf(af.f, "{\"step\": %llu, \"tokens\": %llu, \"val_loss\": %.6f, \"val_bpb\": %.6f, \"elapsed_s\": %.2f}\n",
                (unsigned long long)st.step, (unsigned long long)st.tokens_seen, last_eval.loss,
                last_eval.bits_per_byte, st.elapsed_s);
        if (tr_atomic_commit(&af) != 0) tr_die_with_error();
    }
    if (cfg.train.sample_tokens > 0 && st.step == (uint64_t)steps) {
        printf("sample (temperature 0.8, top-p 0.9):\n");
        write_story(&model, tok, "Once upon a time", (int)cfg.train.sample_tokens, 0.8f, 0.9f, (uint64_t)cfg.seed,
                    stdout);
    }
    printf("done: %s (log.csv, config.json, checkpoint.bin%s)\n", out,
           st.step == (uint64_t)steps ? ", final.json" : "; interrupted: --resume continues");

    free(inputs); free(targets); free(sets);
    adamw_free(&opt);
    gpt_free(&model);
    loader_close(train);
    loader_close(val);
    tok_free(tok);
    config_free(&cfg);
    return 0;
}

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
    char path[1100], tok_path[1100], ckpt_path[1100];
    path_in(path, sizeof path, run_dir, "config.json");
    RunConfig cfg;
    if (config_load(&cfg, path, NULL, 0) != 0) tr_die_with_error();
    if (cfg.tokenizer.file[0]) snprintf(tok_path, sizeof tok_path, "%s", cfg.tokenizer.file);
    else path_in(tok_path, sizeof tok_path, run_dir, "tokenizer.bpe");
    Tokenizer *tok = tok_load(tok_path);
    if (!tok) tr_die_with_error();
    GPTConfig mc = {.V = tok_vocab_size(tok), .L = (int)cfg.model.n_layer, .C = (int)cfg.model.n_embd,
                    .NH = (int)cfg.model.n_head, .max_T = (int)cfg.model.block_size};
    GPT model;
    if (gpt_build(&model, &mc, cfg.model.posenc, (uint64_t)cfg.seed) != 0) tr_die_with_error();
    if (ckpt) snprintf(ckpt_path, sizeof ckpt_path, "%s", ckpt);
    else path_in(ckpt_path, sizeof ckpt_path, run_dir, "checkpoint.bin");
    CheckpointState st;
    if (checkpoint_load(ckpt_path, &st, run_config_hash(&cfg, tok), model.params_memory, model.num_params, NULL) != 0)
        tr_die_with_error();
    write_story(&model, tok, prompt, (int)n_tokens, (float)temperature, (float)top_p, (uint64_t)seed, stdout);
    gpt_free(&model);
    tok_free(tok);
    config_free(&cfg);
    return 0;
}

/* ./train config CONFIG [--set key=value]...: the resolved config (base files merged, overrides
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
    if (config_load(&cfg, config_path, sets, n_sets) != 0) tr_die_with_error();
    check_posenc(&cfg, config_path);
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
 * split with `run`'s own evaluation: windows of N+1 tokens, every val token predicted once.
 */
static void eval_usage(void) {
    fprintf(stderr, "usage: train eval RUN_DIR [--block-size N] [--bca] [--out FILE.csv] [--max-tokens N]\n"
                    "                  [--batch-size B]\n"
                    "  mean val loss and bits per byte of the run's checkpoint at a context of N tokens\n"
                    "  --block-size N   context length (default: the trained block_size)\n"
                    "  --bca            blockwise causal attention, blocks of block_size/2 (xPos paper;\n"
                    "                   relative encodings only: not with learned)\n"
                    "  --out FILE.csv   per-position mean loss: position,loss,tokens (N rows)\n"
                    "  --max-tokens N   stop after about N target tokens (default: the whole split)\n"
                    "  --batch-size B   windows per forward (default: batch_size * block_size / N)\n");
}

static int cmd_eval(int argc, char **argv) {
    const char *run_dir = NULL, *csv_path = NULL;
    long long T = 0, B = 0, max_tokens = 0;
    int bca = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--block-size")) T = tr_parse_int(tr_arg_value(argc, argv, &i), "--block-size", 1, 1 << 20);
        else if (!strcmp(argv[i], "--batch-size")) B = tr_parse_int(tr_arg_value(argc, argv, &i), "--batch-size", 1, 1 << 20);
        else if (!strcmp(argv[i], "--max-tokens"))
            max_tokens = tr_parse_int(tr_arg_value(argc, argv, &i), "--max-tokens", 1, 1LL << 50);
        else if (!strcmp(argv[i], "--out")) csv_path = tr_arg_value(argc, argv, &i);
        else if (!strcmp(argv[i], "--bca")) bca = 1;
        else if (!strcmp(argv[i], "--help")) { eval_usage(); return 0; }
        else if (!strncmp(argv[i], "--", 2)) { eval_usage(); tr_die("eval: unknown option '%s'", argv[i]); }
        else if (!run_dir) run_dir = argv[i];
        else { eval_usage(); tr_die("eval: more than one run directory given"); }
    }
    if (!run_dir) { eval_usage(); tr_die("eval: give the run directory (the out_dir of a run)"); }
    char path[1100], tok_path[1100], ckpt_path[1100], data_dir[1100];
    if (!tr_file_exists(run_dir)) tr_die("eval: %s: no such run directory", run_dir);
    path_in(path, sizeof path, run_dir, "config.json");
    path_in(ckpt_path, sizeof ckpt_path, run_dir, "checkpoint.bin");
    path_in(data_dir, sizeof data_dir, run_dir, "data");
    if (!tr_file_exists(path)) tr_die("%s: missing: %s is not the out_dir of a run", path, run_dir);
    if (!tr_file_exists(ckpt_path)) tr_die("%s: missing: the run has no checkpoint to evaluate", ckpt_path);
    RunConfig cfg;
    if (config_load(&cfg, path, NULL, 0) != 0) tr_die_with_error();
    const int T_train = (int)cfg.model.block_size;
    if (!T) T = T_train;
    if (!B) B = T_train * cfg.train.batch_size / T > 1 ? T_train * cfg.train.batch_size / T : 1;

    /* What the positional encoding allows, asked of it as it was trained (max_T = T_train). */
    PosEnc trained;
    create_posenc(&trained, &cfg, path);
    const int max_positions = posenc_max_positions(&trained), absolute = trained.kind->embed_forward != NULL;
    char kind[64];
    snprintf(kind, sizeof kind, "%s", trained.kind->name);
    posenc_destroy(&trained);
    if (max_positions && T > max_positions)
        tr_die("eval: --block-size %lld: %s positions exist for %d positions only (the run's block_size is %d)", T,
               kind, max_positions, T_train);
    /* BCA keeps every query within T_train - 1 of its keys, which only helps a kind whose scores
     * depend on distances; an absolute kind (learned) has no use for it. */
    if (bca && absolute) tr_die("eval: --bca is for relative position encodings; %s adds absolute positions", kind);
    if (bca && T_train < 2) tr_die("eval: --bca needs a trained block_size of at least 2 (blocks of block_size/2)");

    if (cfg.tokenizer.file[0]) snprintf(tok_path, sizeof tok_path, "%s", cfg.tokenizer.file);
    else path_in(tok_path, sizeof tok_path, run_dir, "tokenizer.bpe");
    Tokenizer *tok = tok_load(tok_path);
    if (!tok) tr_die_with_error();
    /* Built for the longer of the two contexts: a learned table keeps its trained size (and so its
     * parameter count), evaluated at N <= T_train; every other kind sizes its tables by max_T. */
    GPTConfig mc = {.V = tok_vocab_size(tok), .L = (int)cfg.model.n_layer, .C = (int)cfg.model.n_embd,
                    .NH = (int)cfg.model.n_head, .max_T = T > T_train ? (int)T : T_train};
    GPT model;
    if (gpt_build(&model, &mc, cfg.model.posenc, (uint64_t)cfg.seed) != 0) tr_die_with_error();
    model.attn_block = bca ? T_train / 2 : 0;
    /* The hash of the run's own config.json (trained block_size and batch shape): the checkpoint
     * must come from this very model and tokenizer, whatever context it is evaluated at. */
    CheckpointState st;
    if (checkpoint_load(ckpt_path, &st, run_config_hash(&cfg, tok), model.params_memory, model.num_params, NULL) != 0)
        tr_die_with_error();
    TokenLoader *val = loader_open(data_dir, "val", tok_hash(tok), (int)B, (int)T, 0, 0);
    if (!val) tr_die_with_error();

    int32_t *inputs = xmalloc((size_t)B * T * sizeof *inputs), *targets = xmalloc((size_t)B * T * sizeof *targets);
    double *pos_nats = csv_path ? xcalloc((size_t)T, sizeof *pos_nats) : NULL;
    uint64_t *pos_tokens = csv_path ? xcalloc((size_t)T, sizeof *pos_tokens) : NULL;
    const double t0 = tr_now_seconds();
    EvalResult ev = evaluate_positions(&model, val, (int)B, (int)T, (long)max_tokens, inputs, targets,
                                       pos_nats, pos_tokens);
    printf("eval %s (step %llu): %s, block size %lld (trained %d)%s, batch %lld: val loss %.6f, %.6f bits per byte "
           "(%llu tokens, %.1f s)\n", run_dir, (unsigned long long)st.step, kind, T, T_train,
           bca ? ", BCA" : "", B, ev.loss, ev.bits_per_byte, (unsigned long long)ev.tokens, tr_now_seconds() - t0);
    if (csv_path) {
        TrAtomicFile af;
        if (tr_atomic_open(&af, csv_path) != 0) tr_die_with_error();
        fprintf(af.f, "position,loss,tokens\n");
        for (long t = 0; t < T; t++) {
            if (pos_tokens[t]) fprintf(af.f, "%ld,%.6f,%llu\n", t, pos_nats[t] / (double)pos_tokens[t],
                                       (unsigned long long)pos_tokens[t]);
            else fprintf(af.f, "%ld,,0\n", t);   /* no window reached this position */
        }
        if (tr_atomic_commit(&af) != 0) tr_die_with_error();
    }
    free(inputs); free(targets); free(pos_nats); free(pos_tokens);
    loader_close(val);
    gpt_free(&model);
    tok_free(tok);
    config_free(&cfg);
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
