/* examples/train.c: training-state helpers for `mintgrad train` (see
 * train.h). */
#include "train.h"

#include "plot.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

double train_lr(const mg_spec *spec, int64_t step)
{
    const mg_spec_schedule *s = &spec->train.schedule;
    double lr = spec->train.optimizer.lr;
    if (step < s->warmup) return lr * (double)(step + 1) / (double)s->warmup;
    int64_t t = step - s->warmup, T = spec->train.steps - s->warmup;
    switch (s->kind) {
    case MG_SPEC_SCHED_STEP:
        return s->step_size > 0 ? lr * pow(s->gamma, (double)(t / s->step_size)) : lr;
    case MG_SPEC_SCHED_COSINE:
        if (T <= 0) return s->min_lr;
        if (t > T) t = T;
        return s->min_lr + (lr - s->min_lr) * 0.5 * (1 + cos(M_PI * (double)t / (double)T));
    default:
        return lr;
    }
}

/* ---- EMA ----------------------------------------------------------------------- */

mg_status train_ema_init(trainer *t)
{
    int n = mg_params_count(t->S->ps);
    t->ema = mg_calloc((size_t)n + 1, sizeof *t->ema);
    if (!t->ema) return mg_ctx_fail(t->S->ctx, MG_ERR_NOMEM, "EMA: out of memory");
    for (int i = 0; i < n; i++)
        if (!(t->ema[i] = mg_tensor_clone(mg_params_at(t->S->ps, i)->value)))
            return mg_ctx_fail(t->S->ctx, MG_ERR_NOMEM, "EMA: out of memory");
    return MG_OK;
}

void train_ema_update(trainer *t, double d)
{
    for (int i = 0; t->ema && i < mg_params_count(t->S->ps); i++) {
        const mg_tensor *p = mg_params_at(t->S->ps, i)->value;
        mg_tensor *e = t->ema[i];
        for (int64_t j = 0; j < mg_tensor_numel(p); j++)
            mg_tensor_set(e, j, d * mg_tensor_get(e, j) + (1 - d) * mg_tensor_get(p, j));
    }
}

void train_ema_swap(trainer *t)
{
    /* by value: compiled graphs keep pointers to the parameters' buffers */
    for (int i = 0; t->ema && i < mg_params_count(t->S->ps); i++) {
        mg_tensor *p = mg_params_at(t->S->ps, i)->value, *e = t->ema[i];
        unsigned char *a = p->data, *b = e->data, tmp[4096];
        for (size_t off = 0, n = mg_tensor_nbytes(p); off < n; off += sizeof tmp) {
            size_t k = n - off < sizeof tmp ? n - off : sizeof tmp;
            memcpy(tmp, a + off, k);
            memcpy(a + off, b + off, k);
            memcpy(b + off, tmp, k);
        }
    }
}

void train_ema_free(trainer *t)
{
    for (int i = 0; t->ema && i < mg_params_count(t->S->ps); i++) mg_tensor_free(t->ema[i]);
    mg_free(t->ema);
    t->ema = NULL;
}

/* ---- checkpoints ------------------------------------------------------------------ */

static mg_status add_ema(trainer *t, mg_checkpoint *ck)
{
    char name[512];
    for (int i = 0; t->ema && i < mg_params_count(t->S->ps); i++) {
        snprintf(name, sizeof name, "ema.%s", mg_params_at(t->S->ps, i)->name);
        mg_status s = mg_checkpoint_add(ck, name, t->ema[i]);
        if (s != MG_OK) return s;
    }
    return MG_OK;
}

static mg_status add_meta(trainer *t, mg_checkpoint *ck, double elapsed)
{
    char buf[64];
    const mg_spec *sp = t->S->spec;
    mg_status s = mg_checkpoint_set_meta(ck, "mintgrad.version", mg_version());
    if (s == MG_OK) s = mg_checkpoint_set_meta(ck, "spec", sp->text);
    if (s == MG_OK) s = mg_checkpoint_set_meta(ck, "spec.file", sp->filename);
    snprintf(buf, sizeof buf, "%" PRId64, t->step);
    if (s == MG_OK) s = mg_checkpoint_set_meta(ck, "step", buf);
    snprintf(buf, sizeof buf, "%.3f", elapsed);
    if (s == MG_OK) s = mg_checkpoint_set_meta(ck, "elapsed_s", buf);
    snprintf(buf, sizeof buf, "%.6f", t->last_bpd);
    if (s == MG_OK && isfinite(t->last_bpd)) s = mg_checkpoint_set_meta(ck, "train_bpd", buf);
    snprintf(buf, sizeof buf, "%.6f", t->test_bpd);
    if (s == MG_OK && isfinite(t->test_bpd)) s = mg_checkpoint_set_meta(ck, "test_bpd", buf);
    return s;
}

mg_status train_save(trainer *t)
{
    mg_checkpoint *ck;
    mg_status s = mg_checkpoint_new(t->S->ctx, &ck);
    if (s != MG_OK) return s;
    double elapsed = t->elapsed + progress_now() - t->pr.t0;
    int64_t step = t->step;
    s = mg_checkpoint_add_params(ck, t->S->ps, NULL);
    if (s == MG_OK) s = mg_checkpoint_add_optim(ck, t->opt, NULL);
    if (s == MG_OK) s = add_ema(t, ck);
    if (s == MG_OK) s = mg_checkpoint_add_rng(ck, "train.rng", &t->noise);
    if (s == MG_OK) s = batcher_save(&t->bt, ck);
    if (s == MG_OK) s = mg_checkpoint_add_i64(ck, "train.step", &step, 1);
    if (s == MG_OK) s = add_meta(t, ck, elapsed);
    if (s == MG_OK) s = mg_checkpoint_save(ck, t->ckpt_path);
    mg_checkpoint_free(ck);
    return s;
}

static mg_status restore_ema(trainer *t, const mg_checkpoint *ck)
{
    char name[512];
    for (int i = 0; t->ema && i < mg_params_count(t->S->ps); i++) {
        snprintf(name, sizeof name, "ema.%s", mg_params_at(t->S->ps, i)->name);
        if (!mg_checkpoint_find(ck, name)) {
            mg_ctx_log(t->S->ctx, MG_LOG_WARN, "checkpoint '%s' has no EMA weights: starting them from the "
                       "current weights", mg_checkpoint_path(ck));
            for (int j = 0; j < mg_params_count(t->S->ps); j++)
                mg_tensor_copy(t->ema[j], mg_params_at(t->S->ps, j)->value);
            return MG_OK;
        }
        mg_status s = mg_checkpoint_read(ck, name, t->ema[i]);
        if (s != MG_OK) return s;
    }
    return MG_OK;
}

mg_status train_resume(trainer *t, const char *path)
{
    mg_checkpoint *ck;
    mg_status s = mg_checkpoint_load(t->S->ctx, path, &ck);
    if (s != MG_OK) return s;
    const char *spec = mg_checkpoint_meta(ck, "spec"), *el = mg_checkpoint_meta(ck, "elapsed_s");
    if (spec && strcmp(spec, t->S->spec->text) != 0)
        mg_ctx_log(t->S->ctx, MG_LOG_WARN, "checkpoint '%s' was trained with a different spec text than '%s'", path,
                   t->S->spec->filename);
    int64_t step = 0;
    s = mg_checkpoint_load_params(ck, t->S->ps, NULL, 1);
    if (s == MG_OK) s = mg_checkpoint_load_optim(ck, t->opt, NULL);
    if (s == MG_OK) s = mg_checkpoint_read_i64(ck, "train.step", &step, 1);
    if (s == MG_OK) s = mg_checkpoint_read_rng(ck, "train.rng", &t->noise);
    if (s == MG_OK) s = batcher_restore(t->S->ctx, &t->bt, ck);
    if (s == MG_OK) s = restore_ema(t, ck);
    if (s == MG_OK) {
        t->step = step;
        t->elapsed = el ? atof(el) : 0;
        const char *tb = mg_checkpoint_meta(ck, "test_bpd");
        if (tb) t->test_bpd = atof(tb);
    }
    mg_checkpoint_free(ck);
    return s;
}

/* ---- metrics ------------------------------------------------------------------------ */

static const char csv_header[] = "step,epoch,lr,loss,train_bpd,test_bpd,grad_norm,images_per_s,elapsed_s\n";

/* Keeps the header and the rows with step <= t->step of an existing CSV. */
static mg_status csv_trim(trainer *t)
{
    FILE *in = fopen(t->csv_path, "r");
    if (!in) return MG_ERR_NOTFOUND;
    char *keep = NULL, line[1024];
    size_t len = 0;
    FILE *mem = open_memstream(&keep, &len);
    while (mem && fgets(line, sizeof line, in))
        if (line[0] < '0' || line[0] > '9' || strtoll(line, NULL, 10) <= t->step) fputs(line, mem);
    fclose(in);
    if (!mem) return mg_ctx_fail(t->S->ctx, MG_ERR_NOMEM, "out of memory");
    fclose(mem);
    t->csv = fopen(t->csv_path, "w");
    if (t->csv) fwrite(keep, 1, len, t->csv);
    free(keep);
    return t->csv ? MG_OK : mg_ctx_fail(t->S->ctx, MG_ERR_IO, "%s: cannot write", t->csv_path);
}

mg_status train_csv_open(trainer *t, int resume)
{
    if (resume && csv_trim(t) == MG_OK) return MG_OK;
    t->csv = fopen(t->csv_path, "w");
    if (!t->csv) return mg_ctx_fail(t->S->ctx, MG_ERR_IO, "%s: cannot create", t->csv_path);
    fputs(csv_header, t->csv);
    return MG_OK;
}

static void csv_num(FILE *f, double v, const char *fmt)
{
    if (isfinite(v)) fprintf(f, fmt, v);
    fputc(',', f);
}

void train_csv_row(trainer *t, double lr, double loss, double bpd, double test_bpd, double gnorm, double ips)
{
    FILE *f = t->csv;
    fprintf(f, "%" PRId64 ",%" PRId64 ",", t->step, t->bt.epoch);
    csv_num(f, lr, "%.6g");
    csv_num(f, loss, "%.6f");
    csv_num(f, bpd, "%.6f");
    csv_num(f, test_bpd, "%.6f");
    csv_num(f, gnorm, "%.6g");
    csv_num(f, ips, "%.2f");
    fprintf(f, "%.3f\n", t->elapsed + progress_now() - t->pr.t0);
    fflush(f);
}

/* Parses field k (0-based) of a CSV line; NAN when empty. */
static double csv_field(const char *line, int k)
{
    for (; k > 0 && line; k--) {
        line = strchr(line, ',');
        if (line) line++;
    }
    if (!line || *line == ',' || *line == '\n' || !*line) return NAN;
    return strtod(line, NULL);
}

typedef struct curve { double *x, *y, *tx, *ty; int64_t n, tn, cap; } curve;

static int curve_push(curve *c, double step, double bpd, double test)
{
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 1024;
        double **v[4] = {&c->x, &c->y, &c->tx, &c->ty};
        for (int i = 0; i < 4; i++) {
            double *p = mg_realloc(*v[i], (size_t)c->cap * sizeof(double));
            if (!p) return -1;
            *v[i] = p;
        }
    }
    if (isfinite(bpd)) c->x[c->n] = step, c->y[c->n++] = bpd;
    if (isfinite(test)) c->tx[c->tn] = step, c->ty[c->tn++] = test;
    return 0;
}

/* Running mean over a window of w points, in place. */
static void smooth(double *y, int64_t n, int64_t w)
{
    double *c = mg_malloc((size_t)(n + 1) * sizeof *c);
    if (!c || w <= 1) {
        mg_free(c);
        return;
    }
    c[0] = 0;
    for (int64_t i = 0; i < n; i++) c[i + 1] = c[i] + y[i];
    for (int64_t i = 0; i < n; i++) {
        int64_t lo = i - w + 1 < 0 ? 0 : i - w + 1;
        y[i] = (c[i + 1] - c[lo]) / (double)(i + 1 - lo);
    }
    mg_free(c);
}

/* The y range worth showing: everything but the first 5% of the steps,
 * whose values from the untrained model would squash the rest. */
static void curve_yrange(const curve *c, double *lo, double *hi)
{
    *lo = INFINITY, *hi = -INFINITY;
    double x0 = c->n ? c->x[0] : 0, x1 = c->n ? c->x[c->n - 1] : 0, skip = x0 + 0.05 * (x1 - x0);
    for (int64_t i = 0; i < c->n; i++)
        if (c->x[i] >= skip) *lo = fmin(*lo, c->y[i]), *hi = fmax(*hi, c->y[i]);
    for (int64_t i = 0; i < c->tn; i++) *lo = fmin(*lo, c->ty[i]), *hi = fmax(*hi, c->ty[i]);
    if (!(*lo <= *hi)) *lo = *hi = NAN;
}

mg_status train_curve(trainer *t)
{
    FILE *f = fopen(t->csv_path, "r");
    if (!f) return mg_ctx_fail(t->S->ctx, MG_ERR_IO, "%s: cannot read", t->csv_path);
    curve c = {0};
    char line[1024];
    int bad = 0;
    while (!bad && fgets(line, sizeof line, f))
        if (line[0] >= '0' && line[0] <= '9') bad = curve_push(&c, csv_field(line, 0), csv_field(line, 4), csv_field(line, 5));
    fclose(f);
    mg_status s = MG_OK;
    if (bad) s = mg_ctx_fail(t->S->ctx, MG_ERR_NOMEM, "out of memory");
    smooth(c.y, c.n, c.n / 50 > 1 ? c.n / 50 : 1);
    plot_series ser[2] = {{"train (running mean)", "#1f77b4", c.x, c.y, c.n, 0},
                          {"test", "#d62728", c.tx, c.ty, c.tn, 1}};
    char title[512];
    const char *base = strrchr(t->S->spec->filename, '/');
    snprintf(title, sizeof title, "%s: bits/dim", base ? base + 1 : t->S->spec->filename);
    double ylo, yhi;
    curve_yrange(&c, &ylo, &yhi);
    if (s == MG_OK)
        s = plot_write_svg(t->S->ctx, t->curve_path, title, "step", "bits/dim", ser, c.tn ? 2 : 1, ylo, yhi);
    mg_free(c.x), mg_free(c.y), mg_free(c.tx), mg_free(c.ty);
    return s;
}
