/* test_eval.c: length extrapolation, `./train eval`: blockwise causal attention (BCA) against a
 * reference with an explicit mask; each kind's context limit (max_positions); and the command on
 * tiny trained runs: log.csv's bits per byte follows from its val loss and the split's counts; at
 * the trained context the command reproduces the run's last val loss, its per-position CSV adds
 * up to the mean, longer contexts give finite losses for every relative kind, learned refuses them,
 * --bca is exact where it should be, and bad arguments get one error line. */
#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "base/util.h"
#include "model/layers.h"
#include "model/posenc.h"
#include "tests/cli_test_helpers.h"

/* ---- BCA in the attention layer ---- */

static void fill_uniform(float *x, size_t n, uint64_t *rng, float scale) {
    for (size_t i = 0; i < n; i++) x[i] = scale * (2.0f * tr_rng_uniform(rng) - 1.0f);
}

static float max_abs_diff(const float *a, const float *b, size_t n) {
    float m = 0.0f;
    for (size_t i = 0; i < n; i++) m = fmaxf(m, fabsf(a[i] - b[i]));
    return m;
}

/* The fast tiled kernel with a block size against the row-by-row reference, and the zeros of att
 * against a mask written out here from the paper's rule (j <= i and j >= w (floor(i/w) - 1)).
 * T spans several 64-row tiles and blocks that do not divide it. */
static void test_bca_attention_matches_reference(void) {
    const int B = 2, C = 16, NH = 2, S = 3 * C + 3, T = test_small() ? 75 : 150;
    const int blocks[] = {5, 16, 24, 40};
    const size_t n_qkv = (size_t)B * T * S, n_out = (size_t)B * T * C, n_att = (size_t)B * NH * T * T;
    float *qkv = xmalloc(n_qkv * sizeof *qkv), *out = xmalloc(n_out * sizeof *out);
    float *out_ref = xmalloc(n_out * sizeof *out), *att = xmalloc(n_att * sizeof *att);
    float *att_ref = xmalloc(n_att * sizeof *att);
    uint64_t rng = 11;
    fill_uniform(qkv, n_qkv, &rng, 2.0f);
    for (int k = 0; k < 4; k++) {
        const int w = blocks[k];
        attention_forward_blockwise(out, att, qkv, B, T, C, NH, S, w, NULL, 0);
        attention_forward_blockwise_reference(out_ref, att_ref, qkv, B, T, C, NH, S, w, NULL, 0);
        float d_out = max_abs_diff(out, out_ref, n_out), d_att = max_abs_diff(att, att_ref, n_att);
        CHECKF(d_out < 1e-5f && d_att < 1e-5f, "block %d: fast vs reference: out %g, att %g", w, d_out, d_att);
        int mask_ok = 1;
        double worst_row = 0;
        for (int bh = 0; bh < B * NH; bh++)
            for (int i = 0; i < T; i++) {
                double row_sum = 0;
                for (int j = 0; j < T; j++) {
                    int visible = j <= i && j >= w * (i / w - 1);
                    float p = att[((size_t)bh * T + i) * T + j];
                    if (visible ? !(p > 0.0f) : p != 0.0f) mask_ok = 0;
                    row_sum += p;
                }
                worst_row = fmax(worst_row, fabs(row_sum - 1.0));
            }
        CHECKF(mask_ok && worst_row < 1e-5, "block %d: att is not the BCA mask (rows sum to 1 within %g)", w, worst_row);
    }
    /* block 0, and any T <= 2 * block, is plain causal attention, bit for bit */
    attention_forward(out_ref, att_ref, qkv, B, T, C, NH, S);
    attention_forward_blockwise(out, att, qkv, B, T, C, NH, S, 0, NULL, 0);
    CHECK(!memcmp(out, out_ref, n_out * sizeof *out) && !memcmp(att, att_ref, n_att * sizeof *att));
    attention_forward_blockwise(out, att, qkv, B, T, C, NH, S, (T + 1) / 2, NULL, 0);
    CHECK(!memcmp(out, out_ref, n_out * sizeof *out) && !memcmp(att, att_ref, n_att * sizeof *att));
    /* and a block that does cut the context changes the result */
    attention_forward_blockwise(out, att, qkv, B, T, C, NH, S, T / 4, NULL, 0);
    CHECK(max_abs_diff(out, out_ref, n_out) > 1e-3f);
    free(qkv); free(out); free(out_ref); free(att); free(att_ref);
}

/* ---- each kind's context limit ---- */

static int max_positions_of(const char *json, int max_T) {
    cJSON *o = cJSON_Parse(json);
    PosEnc pe;
    ModelDims d = {.L = 2, .C = 96, .NH = 2, .hs = 48, .max_T = max_T};
    int rc = posenc_create(&pe, o, d);
    cJSON_Delete(o);
    CHECKF(rc == 0, "%s: %s", json, tr_error());
    if (rc) return -1;
    int n = posenc_max_positions(&pe);
    posenc_destroy(&pe);
    return n;
}

static void test_max_positions(void) {
    CHECK(max_positions_of("{\"kind\": \"learned\"}", 256) == 256);
    CHECK(max_positions_of("{\"kind\": \"xpos\", \"variant\": \"author\"}", 256) == 2048);
    CHECK(max_positions_of("{\"kind\": \"rope\"}", 256) == 0);
    CHECK(max_positions_of("{\"kind\": \"none\"}", 256) == 0);
    CHECK(max_positions_of("{\"kind\": \"hddrope\"}", 256) == 0);
    /* reference xPos: as long as the centre keeps position 0's scale a normal float: 2 * floor(80 *
     * 512 / ln 3.5) = 65,382 at scale_base 512; the model builds there and not one position later */
    int ref = max_positions_of("{\"kind\": \"xpos\"}", 256);
    CHECKF(ref == 2 * (int)floor(80.0 * 512 / log(3.5)), "xpos reference: %d", ref);
    CHECK(max_positions_of("{\"kind\": \"xpos\"}", ref) == ref);
    cJSON *o = cJSON_Parse("{\"kind\": \"xpos\"}");
    PosEnc pe;
    ModelDims d = {.L = 2, .C = 96, .NH = 2, .hs = 48, .max_T = ref + 1};
    CHECK(posenc_create(&pe, o, d) == -1 && strstr(tr_error(), "scale_base"));
    cJSON_Delete(o);
}

/* ---- ./train eval on tiny runs ---- */

/* The tiny run of test_train.c, trained block_size 32, one evaluation at the end: of the whole split
 * in the RoPE test of the fast build, else of the first few thousand tokens, as every eval of that
 * run then does (eval_cap). */
#define EVAL_T 32
#define EVAL_RUN "run configs/demo.json --set model.n_layer=1 --set model.n_embd=32 --set model.n_head=2 "  \
                 "--set model.block_size=32 --set train.batch_size=4 --set train.max_steps=6 "             \
                 "--set train.eval_every=6 --set optim.warmup_steps=2 --set train.sample_tokens=0"

static int whole_split;   /* set by the test that checks that every val token is evaluated once */
static long eval_cap(void) { return test_small() ? 4096 : whole_split ? 0 : 8192; } /* multiples of B*T */

/* Trains kind (a posenc JSON object's kind) into <tmp>/eval_<name>; 0 on success. */
static int train_tiny(const char *name, const char *kind, char *dir, size_t cap) {
    char args[2048];
    snprintf(dir, cap, "%s/eval_%s", test_tmp_dir(), name);
    snprintf(args, sizeof args, "rm -rf %s", dir);
    if (system(args) != 0) return -1;
    snprintf(args, sizeof args, EVAL_RUN " --set train.eval_max_tokens=%ld --set model.posenc.kind=%s --set out_dir=%s",
             eval_cap(), kind, dir);
    int rc = run_train(args);
    CHECKF(rc == 0, "%s: %s", name, err_buf);
    return rc;
}

typedef struct {
    double loss, bpb;
    unsigned long long tokens;
} EvalLine;

/* ./train eval dir extra...: parses its summary line; 0 on success. */
static int run_eval(const char *dir, const char *extra, EvalLine *r) {
    char args[2048];
    snprintf(args, sizeof args, "eval %s %s", dir, extra);
    if (eval_cap()) snprintf(args + strlen(args), sizeof args - strlen(args), " --max-tokens %ld", eval_cap());
    int rc = run_train(args);
    const char *p = strstr(out_buf, "val loss ");
    if (rc != 0 || !p || sscanf(p, "val loss %lf, %lf bits per byte (%llu tokens", &r->loss, &r->bpb, &r->tokens) != 3) {
        CHECKF(0, "eval %s %s: rc %d: %s%s", dir, extra, rc, out_buf, err_buf);
        return -1;
    }
    return 0;
}

/* val_loss and val_bpb of the last row of dir/log.csv. */
static int last_log_row(const char *dir, double *loss, double *bpb) {
    double v[256];
    int n = cli_log_column(dir, 3, v, 256);
    if (n <= 0) return -1;
    *loss = v[n - 1];
    if (cli_log_column(dir, 4, v, 256) != n) return -1;
    *bpb = v[n - 1];
    return 0;
}

/* Reads position,loss,tokens; returns the rows (-1 on a malformed file) and sums. */
static int read_positions(const char *path, int *all_finite, double *weighted_nats, unsigned long long *tokens) {
    char *text = tr_read_file(path, NULL);
    if (!text) return -1;
    int rows = 0, ok = !strncmp(text, "position,loss,tokens\n", 21);
    *all_finite = 1;
    *weighted_nats = 0;
    *tokens = 0;
    for (char *line = strchr(text, '\n'); ok && line && line[1]; line = strchr(line + 1, '\n')) {
        int pos;
        double loss;
        unsigned long long n;
        if (sscanf(line + 1, "%d,%lf,%llu", &pos, &loss, &n) != 3 || pos != rows) ok = 0;
        else {
            *all_finite &= isfinite(loss) && n > 0;
            *weighted_nats += loss * (double)n;
            *tokens += n;
            rows++;
        }
    }
    free(text);
    return ok ? rows : -1;
}

static int rel_close(double a, double b, double tol) { return fabs(a - b) <= tol * fmax(fabs(a), fabs(b)); }

/* log.csv's val_bpb against its definition: val_loss (mean nats per target) times the targets of
 * the val split, over ln 2 times the split's text bytes. The targets are counted here from the
 * shard files: a shard of n tokens (its opening EOT and every story's closing EOT included) has
 * n - 1 targets, each scored once. The text bytes (the stories' UTF-8, EOTs excluded) are
 * meta.json's. A capped evaluation prorates the bytes by the fraction of targets it scored, so
 * the identity holds with the whole split's counts either way. log.csv has six decimals: the
 * tolerance is 2e-6 relative. */
static void check_bits_per_byte(const char *dir, double val_loss, double val_bpb) {
    char path[800];
    snprintf(path, sizeof path, "%s/data/meta.json", dir);
    char *text = tr_read_file(path, NULL);
    cJSON *meta = text ? cJSON_Parse(text) : NULL;
    free(text);
    const cJSON *val = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(meta, "splits"), "val");
    const cJSON *text_bytes = cJSON_GetObjectItemCaseSensitive(val, "text_bytes");
    const cJSON *token_bytes = cJSON_GetObjectItemCaseSensitive(meta, "token_bytes");
    const cJSON *shards = cJSON_GetObjectItemCaseSensitive(val, "shards"), *shard;
    CHECKF(cJSON_IsNumber(text_bytes) && text_bytes->valuedouble > 0 && cJSON_IsNumber(token_bytes) &&
               cJSON_GetArraySize(shards) > 0,
           "%s lacks the val split's text_bytes, token_bytes or shards", path);
    double targets = 0;
    cJSON_ArrayForEach(shard, shards) {
        const cJSON *file = cJSON_GetObjectItemCaseSensitive(shard, "file");
        struct stat st;
        snprintf(path, sizeof path, "%s/data/%s", dir, cJSON_IsString(file) ? file->valuestring : "?");
        CHECKF(stat(path, &st) == 0, "cannot stat %s", path);
        if (test_current_failed) break;
        targets += (double)(st.st_size - 64) / token_bytes->valuedouble - 1.0;   /* a 64-byte header */
    }
    if (!test_current_failed) {
        double want = val_loss * targets / (log(2.0) * text_bytes->valuedouble);
        CHECKF(rel_close(val_bpb, want, 2e-6),
               "val_bpb %.6f, but val_loss %.6f * %.0f targets / (ln 2 * %.0f bytes) = %.6f", val_bpb, val_loss,
               targets, text_bytes->valuedouble, want);
    }
    cJSON_Delete(meta);
}

/* RoPE: the trained context reproduces log.csv; the per-position CSV adds up; 2T and 4T run; BCA. */
static void test_eval_rope(void) {
    char dir[600], extra[800], csv[700];
    whole_split = 1;
    if (train_tiny("rope", "rope", dir, sizeof dir) != 0) return;
    double log_loss = 0, log_bpb = 0;
    CHECK(last_log_row(dir, &log_loss, &log_bpb) == 0);
    check_bits_per_byte(dir, log_loss, log_bpb);
    EvalLine plain;
    snprintf(csv, sizeof csv, "%s/pos.csv", dir);
    snprintf(extra, sizeof extra, "--out %s", csv);
    if (run_eval(dir, extra, &plain) != 0) return;
    CHECKF(rel_close(plain.loss, log_loss, 1e-5) && rel_close(plain.bpb, log_bpb, 1e-5),
           "eval at T: loss %f bpb %f; log.csv: %f %f", plain.loss, plain.bpb, log_loss, log_bpb);
    int finite;
    double nats;
    unsigned long long tokens;
    int rows = read_positions(csv, &finite, &nats, &tokens);
    CHECKF(rows == EVAL_T && finite && tokens == plain.tokens && rel_close(nats / (double)tokens, plain.loss, 1e-5),
           "per position: %d rows, finite %d, %llu tokens (eval: %llu), mean %f (eval: %f)", rows, finite, tokens,
           plain.tokens, tokens ? nats / (double)tokens : 0.0, plain.loss);
    /* the batch size does not change the result */
    EvalLine b1;
    if (run_eval(dir, "--batch-size 1", &b1) == 0)
        CHECKF(b1.tokens == plain.tokens && rel_close(b1.loss, plain.loss, 1e-5), "batch 1: %f vs %f", b1.loss,
               plain.loss);
    /* longer contexts: every val token once, finite losses at every position */
    for (int mult = 2; mult <= 4; mult *= 2) {
        EvalLine r;
        snprintf(extra, sizeof extra, "--block-size %d --out %s", mult * EVAL_T, csv);
        if (run_eval(dir, extra, &r) != 0) continue;
        rows = read_positions(csv, &finite, &nats, &tokens);
        CHECKF(isfinite(r.loss) && rows == mult * EVAL_T && finite && tokens == r.tokens &&
               rel_close(nats / (double)tokens, r.loss, 1e-5),
               "%dT: loss %f, %d rows, finite %d, %llu tokens (eval %llu)", mult, r.loss, rows, finite, tokens, r.tokens);
        if (!eval_cap()) CHECKF(r.tokens == plain.tokens, "%dT evaluated %llu tokens, T %llu", mult, r.tokens, plain.tokens);
    }
    /* BCA with blocks of T/2: within the trained context (N <= T) it is the plain causal mask */
    const int ns[] = {EVAL_T / 2, EVAL_T};
    for (int k = 0; k < 2; k++) {
        char a[1024], b[1024];
        snprintf(extra, sizeof extra, "--block-size %d", ns[k]);
        EvalLine r;
        if (run_eval(dir, extra, &r) != 0) continue;
        snprintf(a, sizeof a, "%s", strstr(out_buf, "val loss"));
        snprintf(extra, sizeof extra, "--block-size %d --bca", ns[k]);
        if (run_eval(dir, extra, &r) != 0) continue;
        snprintf(b, sizeof b, "%s", strstr(out_buf, "val loss"));
        char *cut_a = strstr(a, " tokens"), *cut_b = strstr(b, " tokens");   /* drop the timing */
        if (cut_a) *cut_a = '\0';
        if (cut_b) *cut_b = '\0';
        CHECKF(!strcmp(a, b), "N=%d: plain '%s', --bca '%s'", ns[k], a, b);
    }
    EvalLine bca4;
    snprintf(extra, sizeof extra, "--block-size %d --bca", 4 * EVAL_T);
    if (run_eval(dir, extra, &bca4) == 0) CHECKF(isfinite(bca4.loss), "4T with BCA: %f", bca4.loss);
    whole_split = 0;
}

/* The other relative kinds at 2T and 4T (hddrope's scan and xPos's scales over 4x the positions). */
static void test_eval_other_kinds_extrapolate(void) {
    const char *kinds[] = {"hddrope", "xpos", "none"};
    for (int k = 0; k < (test_small() ? 1 : 3); k++) {
        char dir[600], extra[800], csv[700];
        if (train_tiny(kinds[k], kinds[k], dir, sizeof dir) != 0) continue;
        snprintf(csv, sizeof csv, "%s/pos.csv", dir);
        for (int mult = 2; mult <= 4; mult *= 2) {
            EvalLine r;
            snprintf(extra, sizeof extra, "--block-size %d --out %s%s", mult * EVAL_T, csv, mult == 4 ? " --bca" : "");
            if (run_eval(dir, extra, &r) != 0) continue;
            int finite;
            double nats;
            unsigned long long tokens;
            int rows = read_positions(csv, &finite, &nats, &tokens);
            CHECKF(isfinite(r.loss) && isfinite(r.bpb) && rows == mult * EVAL_T && finite && tokens == r.tokens,
                   "%s at %dT: loss %f, %d rows, finite %d", kinds[k], mult, r.loss, rows, finite);
        }
    }
}

/* learned: within its positions it evaluates; past them, and with --bca, one error line. */
static void test_eval_learned_limit(void) {
    char dir[600], args[1024];
    if (train_tiny("learned", "learned", dir, sizeof dir) != 0) return;
    EvalLine r;
    CHECK(run_eval(dir, "--block-size 16", &r) == 0 && isfinite(r.loss));
    snprintf(args, sizeof args, "eval %s --block-size %d", dir, 2 * EVAL_T);
    CHECKF(run_train(args) == 1 && one_error_line() && strstr(err_buf, "learned positions exist for 32 positions only"),
           "learned at 2T: '%s'", err_buf);
    snprintf(args, sizeof args, "eval %s --bca", dir);
    CHECKF(run_train(args) == 1 && one_error_line() && strstr(err_buf, "--bca") && strstr(err_buf, "learned"),
           "learned with --bca: '%s'", err_buf);
}

/* Bad arguments: one clear error line each, status 1; another run's checkpoint is refused. */
static void test_eval_bad_arguments(void) {
    char dir[600], args[2048];
    CHECKF(run_train("eval /nonexistent/run") == 1 && one_error_line() && strstr(err_buf, "/nonexistent/run"),
           "missing run dir: '%s'", err_buf);
    if (train_tiny("bad", "rope", dir, sizeof dir) != 0) return;
    snprintf(args, sizeof args, "eval %s --block-size 0", dir);
    CHECKF(run_train(args) == 1 && one_error_line() && strstr(err_buf, "--block-size"), "block size 0: '%s'", err_buf);
    /* the checkpoint of another model (n_layer 2) in this run's directory */
    char other[700];
    snprintf(other, sizeof other, "%s_other", dir);
    snprintf(args, sizeof args, "rm -rf %s", other);
    CHECK(system(args) == 0);
    snprintf(args, sizeof args, EVAL_RUN " --set model.n_layer=2 --set train.eval_max_tokens=1000 --set out_dir=%s",
             other);
    CHECKF(run_train(args) == 0, "%s", err_buf);
    snprintf(args, sizeof args, "cp %s/checkpoint.bin %s/checkpoint.bin", other, dir);
    CHECK(system(args) == 0);
    snprintf(args, sizeof args, "eval %s", dir);
    CHECKF(run_train(args) == 1 && one_error_line() && strstr(err_buf, "checkpoint.bin") &&
               strstr(err_buf, "another model"),
           "foreign checkpoint: '%s'", err_buf);
    snprintf(args, sizeof args, "rm %s/checkpoint.bin", dir);
    CHECK(system(args) == 0);
    snprintf(args, sizeof args, "eval %s", dir);
    CHECKF(run_train(args) == 1 && one_error_line() && strstr(err_buf, "checkpoint.bin"), "no checkpoint: '%s'",
           err_buf);
}

int main(void) {
    RUN(test_bca_attention_matches_reference);
    RUN(test_max_positions);
    RUN(test_eval_rope);
    RUN(test_eval_other_kinds_extrapolate);
    RUN(test_eval_learned_limit);
    RUN(test_eval_bad_arguments);
    return test_summary();
}
