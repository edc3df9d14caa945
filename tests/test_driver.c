/* tests/test_driver.c: the `mintgrad` driver end to end, run as the built
 * binary (MINTGRAD_BIN) on examples/tiny.yaml and on specs the tests write
 * (always `data: {dataset: generated}`, so no dataset package is needed):
 * exit codes and outputs of check, train, eval, sample and ops; resuming
 * gives the same tensors as an uninterrupted run; Ctrl-C writes a
 * checkpoint; training lowers bits/dim. Also unit tests of the driver's
 * picture writers and learning-rate schedules. */
#include "testutil.h"

#include "../examples/idx.h"
#include "../examples/image.h"
#include "../examples/plot.h"
#include "../examples/progress.h"
#include "../examples/train.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef MINTGRAD_BIN
#error "MINTGRAD_BIN must name the built mintgrad binary"
#endif
#ifndef EXAMPLES_DIR
#error "EXAMPLES_DIR must name the examples directory"
#endif

#define TINY EXAMPLES_DIR "/tiny.yaml"

TestSuite(driver, .init = tu_tmpdir_make, .fini = tu_tmpdir_remove, .timeout = 240);

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return strdup("");
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    b[fread(b, 1, (size_t)n, f)] = 0;
    fclose(f);
    return b;
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

/* Output of the last run_mg: stdout and stderr. */
static char *out, *err;

/* Runs `mintgrad ARGS` in the test directory; returns its exit code. */
static int run_mg(const char *args)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' %s >'%s/out.txt' 2>'%s/err.txt' </dev/null", tu_tmpdir(), MINTGRAD_BIN,
             args, tu_tmpdir(), tu_tmpdir());
    int st = system(cmd);
    free(out), free(err);
    out = slurp(tu_path("out.txt"));
    err = slurp(tu_path("err.txt"));
    cr_assert(WIFEXITED(st), "mintgrad %s: killed", args);
    return WEXITSTATUS(st);
}

#define EXPECT_RUN(code, ...)                                                                        \
    do {                                                                                             \
        char a_[2048];                                                                               \
        snprintf(a_, sizeof a_, __VA_ARGS__);                                                        \
        int rc_ = run_mg(a_);                                                                        \
        cr_assert_eq(rc_, code, "mintgrad %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", a_, rc_, code, \
                     out, err);                                                                      \
    } while (0)

#define HAS(s, needle) cr_assert(strstr(s, needle), "'%s' not in:\n%s", needle, s)

/* A small generated-data spec; `extra` is appended to the train section. */
static const char *write_spec(const char *name, int64_t steps, const char *lr, const char *extra)
{
    char text[2048];
    snprintf(text, sizeof text,
             "plugins: [mintnet]\n"
             "model:\n"
             "  input: [1, 8, 8]\n"
             "  preprocess: {dequantize: uniform, logit: {lambda: 1.0e-6}}\n"
             "  prior: normal\n"
             "  layers:\n"
             "    - mintnet.block: {mask: A, latent: 2}\n"
             "    - mintnet.block: {mask: B, latent: 2}\n"
             "    - squeeze: {factor: 2}\n"
             "    - mintnet.block: {mask: A, latent: 1}\n"
             "data: {dataset: generated, train_size: 128, test_size: 32}\n"
             "train:\n"
             "  batch_size: 8\n"
             "  steps: %lld\n"
             "  optimizer: {name: adam, lr: %s, eps: 1.0e-4, amsgrad: true}\n"
             "  seed: 3\n"
             "  checkpoint: {dir: run, every: 4}\n"
             "%s"
             "sample: {count: 6}\n",
             (long long)steps, lr, extra ? extra : "");
    static char paths[4][512]; /* outlive tpath's rotating buffers */
    static int k;
    char *p = paths[k++ % 4];
    snprintf(p, 512, "%s", tu_path(name));
    write_text(p, text);
    return p;
}

/* ---- command line ------------------------------------------------------------------- */

Test(driver, help_and_usage_errors)
{
    EXPECT_RUN(0, "--help");
    HAS(out, "Exit codes");
    const char *cmds[] = {"check", "train", "eval", "sample", "ops"};
    for (int i = 0; i < 5; i++) {
        EXPECT_RUN(0, "%s --help", cmds[i]);
        char u[64];
        snprintf(u, sizeof u, "Usage: mintgrad %s", cmds[i]);
        HAS(out, u);
    }
    EXPECT_RUN(1, "%s", "");
    EXPECT_RUN(1, "frobnicate");
    HAS(err, "unknown command 'frobnicate'");
    EXPECT_RUN(1, "check");
    EXPECT_RUN(1, "train %s --steps zero", TINY);
    EXPECT_RUN(1, "eval %s", TINY);
    HAS(err, "--checkpoint is required");
    EXPECT_RUN(1, "sample %s --checkpoint x.safetensors", TINY);
    EXPECT_RUN(1, "eval %s --checkpoint x --split validation", TINY);
    EXPECT_RUN(1, "check %s --bogus", TINY);
}

/* ---- check, ops ----------------------------------------------------------------------- */

Test(driver, check_prints_the_layer_table)
{
    EXPECT_RUN(0, "check %s", TINY);
    HAS(out, "mintnet.block");
    HAS(out, "squeeze");
    HAS(out, "[4, 4, 4]");
    HAS(out, "total");
    HAS(out, "is valid");
}

Test(driver, check_reports_spec_errors_with_position)
{
    const char *p = tu_path("bad.yaml");
    write_text(p, "plugins: [mintnet]\nmodel:\n  input: [1, 8, 8]\n  layers:\n    - squeeze: {factr: 2}\n"
                  "data: {dataset: generated}\n");
    EXPECT_RUN(2, "check %s", p);
    HAS(err, "bad.yaml:5:");
    HAS(err, "factr");
    EXPECT_RUN(2, "check %s", tu_path("missing.yaml"));
    HAS(err, "missing.yaml");
    const char *odd = tu_path("odd.yaml");
    write_text(odd, "plugins: [mintnet]\nmodel:\n  input: [1, 7, 7]\n  layers:\n    - squeeze: {factor: 2}\n"
                    "data: {dataset: generated}\n");
    EXPECT_RUN(2, "check %s", odd);
    HAS(err, "odd.yaml:5:");
}

Test(driver, ops_lists_ops_and_layers_with_origins)
{
    EXPECT_RUN(0, "ops %s", TINY);
    HAS(out, "mintnet.block");
    HAS(out, "conv2d");
    HAS(out, "builtin");
    HAS(out, "layer types");
    HAS(out, "latent");
}

/* ---- train, eval, sample ------------------------------------------------------------------ */

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

Test(driver, train_writes_run_directory)
{
    const char *spec = write_spec("t.yaml", 6, "1.0e-3", "  eval_every: 3\n");
    EXPECT_RUN(0, "train %s --out run", spec);
    HAS(out, "test bits/dim:");
    HAS(err, "step 3: test bits/dim");
    char *csv = slurp(tu_path("run/metrics.csv"));
    cr_assert_eq(count_lines(csv), 8, "metrics.csv:\n%s", csv); /* header, 6 steps, final test */
    HAS(csv, "step,epoch,lr,loss,train_bpd,test_bpd");
    free(csv);
    char *svg = slurp(tu_path("run/curve.svg"));
    HAS(svg, "<svg");
    HAS(svg, "polyline");
    free(svg);
    char *copy = slurp(tu_path("run/spec.yaml")), *orig = slurp(spec);
    cr_assert_str_eq(copy, orig);
    mg_ctx *ctx = tu_ctx();
    mg_checkpoint *ck;
    cr_assert_eq(mg_checkpoint_load(ctx, tu_path("run/checkpoint.safetensors"), &ck), MG_OK, "%s", mg_ctx_error(ctx));
    int64_t step = 0;
    cr_assert_eq(mg_checkpoint_read_i64(ck, "optim.steps", &step, 1), MG_OK);
    cr_assert_eq(step, 6);
    cr_assert_str_eq(mg_checkpoint_meta(ck, "step"), "6");
    cr_assert_str_eq(mg_checkpoint_meta(ck, "spec"), orig);
    const mg_ckpt_entry *w1 = mg_checkpoint_find(ck, "flow.0.w1");
    cr_assert_not_null(w1);
    cr_assert(w1->rank == 4 && w1->shape[0] == 2 && w1->shape[1] == 1 && w1->shape[2] == 3);
    cr_assert_not_null(mg_checkpoint_find(ck, "optim.flow.0.w1.max_exp_avg_sq"));
    mg_checkpoint_free(ck);
    free(copy), free(orig);
    mg_ctx_free(ctx);
}

/* Every tensor of two checkpoints, bit for bit. */
static void same_checkpoints(const char *a, const char *b)
{
    mg_ctx *ctx = tu_ctx();
    mg_checkpoint *x, *y;
    cr_assert_eq(mg_checkpoint_load(ctx, a, &x), MG_OK, "%s", mg_ctx_error(ctx));
    cr_assert_eq(mg_checkpoint_load(ctx, b, &y), MG_OK, "%s", mg_ctx_error(ctx));
    cr_assert_eq(mg_checkpoint_count(x), mg_checkpoint_count(y));
    for (int i = 0; i < mg_checkpoint_count(x); i++) {
        const mg_ckpt_entry *e = mg_checkpoint_at(x, i), *f = mg_checkpoint_find(y, e->name);
        cr_assert_not_null(f, "%s missing", e->name);
        cr_assert(e->nbytes == f->nbytes && memcmp(e->data, f->data, e->nbytes) == 0, "tensor %s differs", e->name);
    }
    mg_checkpoint_free(x);
    mg_checkpoint_free(y);
    mg_ctx_free(ctx);
}

/* The loss column of a metrics file (one line per row). */
static char *losses(const char *csv_path)
{
    char *csv = slurp(csv_path), *o = calloc(1, strlen(csv) + 1);
    for (char *line = strtok(csv, "\n"); line; line = strtok(NULL, "\n")) {
        const char *f = line;
        for (int k = 0; k < 3 && f; k++) f = strchr(f, ',') ? strchr(f, ',') + 1 : NULL;
        if (f) strncat(o, f, strcspn(f, ",")), strcat(o, "\n");
    }
    free(csv);
    return o;
}

Test(driver, resume_matches_an_uninterrupted_run)
{
    const char *spec = write_spec("r.yaml", 10, "2.0e-3", "  ema: 0.9\n  clip_grad_norm: 5.0\n  schedule: {name: cosine, warmup: 2}\n");
    EXPECT_RUN(0, "train %s --out full --no-final-eval", spec);
    /* --until stops early without changing the schedule (which spans train.steps) */
    EXPECT_RUN(0, "train %s --out part --until 5 --no-final-eval", spec);
    HAS(out, "stopped at step 5 of 10");
    EXPECT_RUN(0, "train %s --out part --resume part/checkpoint.safetensors --no-final-eval", spec);
    same_checkpoints(tu_path("full/checkpoint.safetensors"), tu_path("part/checkpoint.safetensors"));
    char *a = losses(tu_path("full/metrics.csv")), *b = losses(tu_path("part/metrics.csv"));
    cr_assert_str_eq(a, b);
    free(a), free(b);
}

Test(driver, eval_and_its_options)
{
    const char *spec = write_spec("e.yaml", 4, "1.0e-3", NULL);
    EXPECT_RUN(0, "train %s --out run --no-final-eval", spec);
    EXPECT_RUN(0, "eval %s --checkpoint run/checkpoint.safetensors --per-sample ps.csv", spec);
    HAS(out, "test bits/dim:");
    HAS(out, "32 images");
    char *ps = slurp(tu_path("ps.csv"));
    cr_assert_eq(count_lines(ps), 33);
    HAS(ps, "index,bpd\n0,");
    free(ps);
    EXPECT_RUN(0, "eval %s --checkpoint run/checkpoint.safetensors --split train --limit 20 --dequantize center", spec);
    HAS(out, "train bits/dim:");
    HAS(out, "20 images");
    /* the same call twice gives the same number (seeded noise) */
    EXPECT_RUN(0, "eval %s --checkpoint run/checkpoint.safetensors", spec);
    char *first = strdup(out);
    EXPECT_RUN(0, "eval %s --checkpoint run/checkpoint.safetensors", spec);
    cr_assert_str_eq(first, out);
    free(first);
    EXPECT_RUN(0, "eval %s --checkpoint run/checkpoint.safetensors --check-inverse", spec);
    HAS(out, "whole flow");
    HAS(out, "mintnet.block");
    HAS(out, "exact");
}

Test(driver, eval_on_idx_files)
{
    const char *spec = write_spec("i.yaml", 2, "1.0e-3", NULL);
    EXPECT_RUN(0, "train %s --out run --no-final-eval", spec);
    mg_ctx *ctx = tu_ctx();
    uint8_t px[5 * 64];
    for (int i = 0; i < 5 * 64; i++) px[i] = (uint8_t)(i * 7);
    int64_t dims[3] = {5, 8, 8}, wrong[3] = {2, 10, 10};
    cr_assert_eq(idx_write(ctx, tu_path("imgs.gz"), 1, 3, dims, px), MG_OK);
    cr_assert_eq(idx_write(ctx, tu_path("imgs"), 0, 3, dims, px), MG_OK);
    cr_assert_eq(idx_write(ctx, tu_path("big.gz"), 1, 3, wrong, px), MG_OK);
    mg_ctx_free(ctx);
    EXPECT_RUN(0, "eval %s --checkpoint run/checkpoint.safetensors --images imgs.gz", spec);
    HAS(out, "5 images of imgs.gz");
    char *gz = strdup(out);
    EXPECT_RUN(0, "eval %s --checkpoint run/checkpoint.safetensors --images imgs", spec);
    cr_assert_eq(strncmp(gz, out, 24), 0, "gzip and plain files disagree:\n%s%s", gz, out);
    free(gz);
    EXPECT_RUN(2, "eval %s --checkpoint run/checkpoint.safetensors --images big.gz", spec);
    HAS(err, "big.gz: images are 1x10x10");
    EXPECT_RUN(2, "eval %s --checkpoint run/checkpoint.safetensors --images nothere.gz", spec);
    HAS(err, "nothere.gz");
}

Test(driver, bad_checkpoints_are_input_errors)
{
    const char *spec = write_spec("b.yaml", 2, "1.0e-3", NULL);
    EXPECT_RUN(2, "eval %s --checkpoint none.safetensors", spec);
    HAS(err, "none.safetensors");
    write_text(tu_path("junk.safetensors"), "this is not a checkpoint at all");
    EXPECT_RUN(2, "eval %s --checkpoint junk.safetensors", spec);
    HAS(err, "junk.safetensors");
    /* a checkpoint of the tiny example has other shapes */
    EXPECT_RUN(0, "train %s --out tiny --steps 1 --no-final-eval", TINY);
    EXPECT_RUN(2, "sample %s --checkpoint tiny/checkpoint.safetensors -o x.png", spec);
    HAS(err, "flow.");
    EXPECT_RUN(2, "train %s --out run --resume tiny/checkpoint.safetensors", spec);
}

/* A file with only the model tensors: eval and sample work, resume does not. */
Test(driver, model_only_checkpoint)
{
    const char *spec = write_spec("m.yaml", 3, "1.0e-3", NULL);
    EXPECT_RUN(0, "train %s --out run --no-final-eval", spec);
    mg_ctx *ctx = tu_ctx();
    mg_checkpoint *full, *model;
    cr_assert_eq(mg_checkpoint_load(ctx, tu_path("run/checkpoint.safetensors"), &full), MG_OK);
    cr_assert_eq(mg_checkpoint_new(ctx, &model), MG_OK);
    mg_tensor *ts[64];
    int n = 0;
    for (int i = 0; i < mg_checkpoint_count(full); i++) {
        const mg_ckpt_entry *e = mg_checkpoint_at(full, i);
        if (strncmp(e->name, "flow.", 5) != 0) continue;
        cr_assert_eq(e->dtype, MG_CKPT_F32);
        ts[n] = mg_tensor_new(MG_F32, e->rank, e->shape);
        memcpy(ts[n]->data, e->data, e->nbytes);
        cr_assert_eq(mg_checkpoint_add(model, e->name, ts[n]), MG_OK);
        n++;
    }
    cr_assert_gt(n, 3);
    cr_assert_eq(mg_checkpoint_save(model, tu_path("model.safetensors")), MG_OK);
    mg_checkpoint_free(model);
    mg_checkpoint_free(full);
    for (int i = 0; i < n; i++) mg_tensor_free(ts[i]);
    mg_ctx_free(ctx);
    EXPECT_RUN(0, "eval %s --checkpoint run/checkpoint.safetensors", spec);
    char *a = strdup(out);
    EXPECT_RUN(0, "eval %s --checkpoint model.safetensors", spec);
    cr_assert_str_eq(a, out);
    free(a);
    EXPECT_RUN(0, "sample %s --checkpoint model.safetensors -o s.png", spec);
    EXPECT_RUN(2, "train %s --out run2 --resume model.safetensors", spec);
    HAS(err, "no optimizer state");
}

/* PNG size from its IHDR chunk. */
static void png_size(const char *path, uint32_t *w, uint32_t *h)
{
    unsigned char b[24];
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s missing", path);
    cr_assert_eq(fread(b, 1, 24, f), 24);
    fclose(f);
    cr_assert_eq(memcmp(b, "\x89PNG\r\n\x1a\n", 8), 0);
    cr_assert_eq(memcmp(b + 12, "IHDR", 4), 0);
    *w = (uint32_t)b[16] << 24 | (uint32_t)b[17] << 16 | (uint32_t)b[18] << 8 | b[19];
    *h = (uint32_t)b[20] << 24 | (uint32_t)b[21] << 16 | (uint32_t)b[22] << 8 | b[23];
}

Test(driver, sample_writes_a_grid)
{
    const char *spec = write_spec("s.yaml", 2, "1.0e-3", NULL);
    EXPECT_RUN(0, "train %s --out run --no-final-eval", spec);
    EXPECT_RUN(0, "sample %s --checkpoint run/checkpoint.safetensors -o grid.png", spec);
    HAS(out, "wrote 6 samples");
    uint32_t w, h;
    png_size(tu_path("grid.png"), &w, &h);
    cr_assert(w == 3 * 12 && h == 2 * 12, "grid is %ux%u", w, h); /* 8x8 images, 2-pixel borders */
    EXPECT_RUN(0, "sample %s --checkpoint run/checkpoint.safetensors -o g2.png --count 10 --cols 5 --temperature 0.5 "
                  "--seed 9 --batch 4", spec);
    png_size(tu_path("g2.png"), &w, &h);
    cr_assert(w == 5 * 12 && h == 2 * 12, "grid is %ux%u", w, h);
    EXPECT_RUN(3, "sample %s --checkpoint run/checkpoint.safetensors -o /nonexistent/dir/g.png", spec);
}

/* An inverse that cannot converge in one iteration is reported, not hidden. */
Test(driver, sample_reports_non_converged)
{
    const char *spec = write_spec("n.yaml", 2, "1.0e-3", NULL);
    EXPECT_RUN(0, "train %s --out run --no-final-eval", spec);
    char *text = slurp(spec);
    char *p = strstr(text, "  prior: normal\n");
    cr_assert_not_null(p);
    char buf[4096];
    snprintf(buf, sizeof buf, "%.*s  prior: normal\n  inverse: {max_iterations: 1, tolerance: 1.0e-9}\n%s",
             (int)(p - text), text, p + strlen("  prior: normal\n"));
    const char *spec1 = tu_path("n1.yaml");
    write_text(spec1, buf);
    free(text);
    EXPECT_RUN(0, "sample %s --checkpoint run/checkpoint.safetensors -o g.png", spec1);
    HAS(err, "did not converge");
    EXPECT_RUN(3, "sample %s --checkpoint run/checkpoint.safetensors -o g.png --strict", spec1);
    EXPECT_RUN(3, "eval %s --checkpoint run/checkpoint.safetensors --check-inverse", spec1);
    HAS(err, "did not converge");
}

/* A tolerance below float32's floor converges only with --precision float64. */
Test(driver, precision_override_for_the_inverse)
{
    const char *spec = write_spec("p.yaml", 2, "1.0e-3", NULL);
    EXPECT_RUN(0, "train %s --out run --no-final-eval", spec);
    char *text = slurp(spec);
    char *p = strstr(text, "  prior: normal\n");
    cr_assert_not_null(p);
    char buf[4096];
    snprintf(buf, sizeof buf, "%.*s  prior: normal\n  inverse: {max_iterations: 300, tolerance: 1.0e-10}\n%s",
             (int)(p - text), text, p + strlen("  prior: normal\n"));
    char spec1[512]; /* tu_path's buffers rotate: keep a copy */
    snprintf(spec1, sizeof spec1, "%s", tu_path("p1.yaml"));
    write_text(spec1, buf);
    free(text);
    EXPECT_RUN(3, "sample %s --checkpoint run/checkpoint.safetensors -o g.png --strict", spec1);
    EXPECT_RUN(0, "sample %s --checkpoint run/checkpoint.safetensors -o g.png --strict --precision float64", spec1);
    EXPECT_RUN(0, "eval %s --checkpoint run/checkpoint.safetensors --check-inverse --precision float64 --limit 8", spec1);
    EXPECT_RUN(1, "sample %s --checkpoint run/checkpoint.safetensors -o g.png --precision float16", spec1);
    HAS(err, "float32 or float64");
    /* one iteration cannot reach any tolerance; the override reaches the layers */
    EXPECT_RUN(3, "sample %s --checkpoint run/checkpoint.safetensors -o g.png --strict --precision float64 "
                  "--max-iterations 1", spec1);
    EXPECT_RUN(1, "eval %s --checkpoint run/checkpoint.safetensors --check-inverse --max-iterations 0", spec1);
}

/* ---- training behaviour ------------------------------------------------------------------- */

static double mean_col(const char *csv_path, int col, int first, int last)
{
    char *csv = slurp(csv_path);
    double sum = 0;
    int n = 0, row = 0;
    for (char *line = strtok(csv, "\n"); line; line = strtok(NULL, "\n")) {
        if (line[0] < '0' || line[0] > '9') continue;
        row++;
        if (row < first || row > last) continue;
        const char *f = line;
        for (int k = 0; k < col && f; k++) f = strchr(f, ',') ? strchr(f, ',') + 1 : NULL;
        if (f && *f != ',') sum += atof(f), n++;
    }
    free(csv);
    cr_assert_gt(n, 0);
    return sum / n;
}

Test(driver, training_lowers_bits_per_dim)
{
    const char *spec = write_spec("l.yaml", 300, "5.0e-3", "  eval_every: 150\n");
    EXPECT_RUN(0, "train %s --out run", spec);
    double early = mean_col(tu_path("run/metrics.csv"), 4, 1, 20);
    double late = mean_col(tu_path("run/metrics.csv"), 4, 281, 300);
    double test_mid = mean_col(tu_path("run/metrics.csv"), 5, 150, 150);
    cr_assert_lt(late, early - 0.5, "train bits/dim %.3f -> %.3f", early, late);
    const char *t = strstr(out, "test bits/dim: ");
    cr_assert_not_null(t);
    double test_end = atof(t + 15);
    cr_assert(isfinite(test_mid) && test_end < early - 0.5, "test bits/dim %.3f (early train %.3f)", test_end, early);
}

/* Ctrl-C: a checkpoint is written, exit 130, and the run resumes from it. */
Test(driver, sigint_writes_a_checkpoint)
{
    const char *spec = write_spec("c.yaml", 1000000, "1.0e-3", NULL);
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        if (chdir(tu_tmpdir()) != 0) _exit(99);
        freopen("/dev/null", "w", stdout);
        freopen(tu_path("int.txt"), "w", stderr);
        execl(MINTGRAD_BIN, MINTGRAD_BIN, "train", spec, "--out", "run", (char *)NULL);
        _exit(98);
    }
    /* wait until it trains (metrics rows appear), then interrupt */
    for (int i = 0; i < 600; i++) {
        usleep(50000);
        char *csv = slurp(tu_path("run/metrics.csv"));
        int rows = count_lines(csv);
        free(csv);
        if (rows > 5) break;
    }
    cr_assert_eq(kill(pid, SIGINT), 0);
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st), "killed by a signal");
    char *e = slurp(tu_path("int.txt"));
    cr_assert_eq(WEXITSTATUS(st), 130, "exit %d\n%s", WEXITSTATUS(st), e);
    HAS(e, "--resume");
    free(e);
    mg_ctx *ctx = tu_ctx();
    mg_checkpoint *ck;
    cr_assert_eq(mg_checkpoint_load(ctx, tu_path("run/checkpoint.safetensors"), &ck), MG_OK, "%s", mg_ctx_error(ctx));
    int64_t step = 0;
    cr_assert_eq(mg_checkpoint_read_i64(ck, "train.step", &step, 1), MG_OK);
    cr_assert_gt(step, 0);
    mg_checkpoint_free(ck);
    mg_ctx_free(ctx);
    EXPECT_RUN(0, "train %s --out run --resume run/checkpoint.safetensors --steps %lld --no-final-eval", spec,
               (long long)step + 2);
}

Test(driver, train_on_a_missing_dataset_names_the_package)
{
    const char *p = tu_path("f.yaml");
    write_text(p, "plugins: [mintnet]\nmodel:\n  input: [1, 28, 28]\n  layers:\n    - squeeze: {factor: 2}\n"
                  "data: {dataset: fashion-mnist, path: /nonexistent/fashion}\n");
    EXPECT_RUN(2, "train %s --out run", p);
    HAS(err, "f.yaml:");
    HAS(err, "dataset-fashion-mnist");
}

/* ---- unit tests of the driver's helpers ---------------------------------------------------------- */

Test(driver, image_grid_marks_and_sizes)
{
    mg_ctx *ctx = tu_ctx();
    float x[5 * 3 * 4 * 6];
    for (int i = 0; i < 5 * 3 * 4 * 6; i++) x[i] = (float)(i % 7) / 6.0f;
    x[3] = NAN;
    uint8_t mark[5] = {0, 1, 0, 0, 1};
    cr_assert_eq(image_write_grid(ctx, tu_path("g.png"), x, 5, 3, 4, 6, 0, mark), MG_OK, "%s", mg_ctx_error(ctx));
    uint32_t w, h;
    png_size(tu_path("g.png"), &w, &h);
    cr_assert(w == 3 * 10 && h == 2 * 8, "%ux%u", w, h); /* ceil(sqrt(5)) = 3 columns */
    cr_assert_eq(image_write_grid(ctx, tu_path("g1.png"), x, 5, 1, 4, 6, 5, NULL), MG_OK);
    png_size(tu_path("g1.png"), &w, &h);
    cr_assert(w == 5 * 10 && h == 8, "%ux%u", w, h);
    cr_assert_eq(image_write_grid(ctx, tu_path("none/g.png"), x, 5, 1, 4, 6, 5, NULL), MG_ERR_IO);
    cr_assert(strstr(mg_ctx_error(ctx), "none/g.png"));
    struct stat st;
    cr_assert_neq(stat(tu_path("none/g.png.tmp"), &st), 0);
    mg_ctx_free(ctx);
}

Test(driver, svg_plot)
{
    mg_ctx *ctx = tu_ctx();
    double x[4] = {1, 2, 3, 4}, y[4] = {5.5, 4.25, NAN, 3.0};
    plot_series s = {"train", "#123456", x, y, 4, 1};
    cr_assert_eq(plot_write_svg(ctx, tu_path("p.svg"), "title", "step", "bits/dim", &s, 1, NAN, NAN), MG_OK);
    char *svg = slurp(tu_path("p.svg"));
    HAS(svg, "<svg");
    HAS(svg, "</svg>");
    HAS(svg, "#123456");
    HAS(svg, ">train<");
    cr_assert_null(strstr(svg, "nan"));
    free(svg);
    cr_assert_eq(plot_write_svg(ctx, tu_path("none/p.svg"), "t", "x", "y", &s, 1, 0, 10), MG_ERR_IO);
    mg_ctx_free(ctx);
}

Test(driver, time_format)
{
    char b[32];
    cr_assert_str_eq(progress_fmt_time(12.4, b, sizeof b), "12s");
    cr_assert_str_eq(progress_fmt_time(185, b, sizeof b), "3m05s");
    cr_assert_str_eq(progress_fmt_time(3720, b, sizeof b), "1h02m");
    cr_assert_str_eq(progress_fmt_time(NAN, b, sizeof b), "0s");
}

Test(driver, learning_rate_schedules)
{
    mg_ctx *ctx = tu_ctx();
    const char *base = "model:\n  input: [1, 4, 4]\n  layers: []\ndata: {dataset: generated}\n"
                       "train:\n  steps: 100\n  optimizer: {name: adam, lr: 0.1}\n  schedule: ";
    const char *kinds[] = {"{name: constant}", "{name: step, step_size: 30, gamma: 0.5}",
                           "{name: cosine, min_lr: 0.01}", "{name: cosine, warmup: 10}"};
    double want[4][4] = {{0.1, 0.1, 0.1, 0.1},
                         {0.1, 0.1, 0.05, 0.0125},
                         {0.1, 0.1 - 0.09 * (1 - cos(M_PI * 0.29)) / 2, 0.055, 0.01 + 0.09 * (1 + cos(M_PI * 0.99)) / 2},
                         {0.01, 0.1 * (1 + cos(M_PI * 19.0 / 90)) / 2, 0.1 * (1 + cos(M_PI * 40.0 / 90)) / 2,
                          0.1 * (1 + cos(M_PI * 89.0 / 90)) / 2}};
    int64_t steps[4] = {0, 29, 50, 99};
    for (int k = 0; k < 4; k++) {
        char text[512];
        snprintf(text, sizeof text, "%s%s\n", base, kinds[k]);
        mg_spec *sp;
        cr_assert_eq(mg_spec_load_string(ctx, text, strlen(text), "lr.yaml", MG_SPEC_NO_PLUGINS, &sp), MG_OK, "%s",
                     mg_ctx_error(ctx));
        for (int i = 0; i < 4; i++) {
            double lr = train_lr(sp, steps[i]);
            cr_assert_float_eq(lr, want[k][i], 1e-12, "%s at step %lld: %.10g, want %.10g", kinds[k],
                               (long long)steps[i], lr, want[k][i]);
        }
        mg_spec_free(sp);
    }
    mg_ctx_free(ctx);
}
