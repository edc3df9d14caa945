/* autograd/spec.c: loading YAML model specs (mintgrad/spec.h). Parses the
 * text with libyaml (rejecting empty files and extra documents, which
 * libyaml reports only quietly), validates each section against a schema of
 * the same kind layer types use (spec_args.c), loads plugins, expands and
 * checks the layers (spec_layers.c) and fills the public struct view, with
 * defaults, from the validated values. Every error is located
 * "file:line:col" (1-based). */
#include "spec_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define BIG 1e300

/* ---- section schemas ------------------------------------------------------ */
static const char *const DEQUANTS[] = {"uniform", "center", "none", NULL};
static const char *const PRIORS[] = {"normal", NULL};
static const char *const PRECISIONS[] = {"float32", "float64", NULL};
static const char *const STOPS[] = {"residual", "fixed", NULL};
static const char *const DATASETS[] = {"fashion-mnist", "mnist", "generated", NULL};
static const char *const OPTIMS[] = {"adam", "sgd", NULL};
static const char *const SCHEDS[] = {"constant", "step", "cosine", NULL};

#define ARG(n, t, req, lo, hi, ch, d) \
    { .name = n, .type = t, .required = req, .min = lo, .max = hi, .choices = ch, .dflt = d }
#define MAPARG(n, f) \
    { .name = n, .type = MG_ARG_MAP, .fields = f, .n_fields = (int)(sizeof f / sizeof f[0]) }
#define NARGS(a) ((int)(sizeof a / sizeof a[0]))

static const mg_layer_arg LOGIT[] = {ARG("lambda", MG_ARG_FLOAT, 0, 0, 0.5, NULL, "1.0e-6")};
static const mg_layer_arg PREPROCESS[] = {
    ARG("dequantize", MG_ARG_ENUM, 0, 0, 0, DEQUANTS, "uniform"),
    MAPARG("logit", LOGIT),
};
static const mg_layer_arg INVERSE[] = {
    ARG("tolerance", MG_ARG_FLOAT, 0, 0, BIG, NULL, "1.0e-5"),
    ARG("max_iterations", MG_ARG_INT, 0, 1, 1e7, NULL, "200"),
    ARG("damping", MG_ARG_FLOAT, 0, 0, BIG, NULL, "3.5"),
    ARG("precision", MG_ARG_ENUM, 0, 0, 0, PRECISIONS, "float32"),
    ARG("stop", MG_ARG_ENUM, 0, 0, 0, STOPS, "residual"),
    ARG("adaptive", MG_ARG_BOOL, 0, 0, 0, NULL, NULL),
    ARG("refine", MG_ARG_BOOL, 0, 0, 0, NULL, NULL),
};
static const mg_layer_arg MODEL[] = {
    ARG("input", MG_ARG_INTS, 1, 1, 1 << 20, NULL, NULL),
    MAPARG("preprocess", PREPROCESS),
    ARG("prior", MG_ARG_ENUM, 0, 0, 0, PRIORS, "normal"),
    MAPARG("inverse", INVERSE),
};
static const char *const MODEL_SKIP[] = {"layers", NULL};

static const mg_layer_arg DATA[] = {
    ARG("dataset", MG_ARG_ENUM, 1, 0, 0, DATASETS, NULL),
    ARG("path", MG_ARG_STR, 0, 0, 0, NULL, NULL),
    ARG("train", MG_ARG_STR, 0, 0, 0, NULL, NULL),
    ARG("test", MG_ARG_STR, 0, 0, 0, NULL, NULL),
    ARG("train_size", MG_ARG_INT, 0, 0, 1e9, NULL, NULL),
    ARG("test_size", MG_ARG_INT, 0, 0, 1e9, NULL, NULL),
};

static const mg_layer_arg OPTIMIZER[] = {
    ARG("name", MG_ARG_ENUM, 0, 0, 0, OPTIMS, "adam"),
    ARG("lr", MG_ARG_FLOAT, 0, 0, BIG, NULL, "1.0e-3"),
    ARG("betas", MG_ARG_FLOATS, 0, 0, 1, NULL, "[0.9, 0.999]"),
    ARG("eps", MG_ARG_FLOAT, 0, 0, BIG, NULL, "1.0e-8"),
    ARG("amsgrad", MG_ARG_BOOL, 0, 0, 0, NULL, "false"),
    ARG("momentum", MG_ARG_FLOAT, 0, 0, 1, NULL, "0"),
    ARG("nesterov", MG_ARG_BOOL, 0, 0, 0, NULL, "false"),
    ARG("weight_decay", MG_ARG_FLOAT, 0, 0, BIG, NULL, "0"),
};
static const mg_layer_arg CHECKPOINT[] = {
    ARG("dir", MG_ARG_STR, 0, 0, 0, NULL, NULL),
    ARG("every", MG_ARG_INT, 0, 0, 1e15, NULL, "0"),
};
static const mg_layer_arg SCHEDULE[] = {
    ARG("name", MG_ARG_ENUM, 0, 0, 0, SCHEDS, "constant"),
    ARG("step_size", MG_ARG_INT, 0, 1, 1e15, NULL, "1000"),
    ARG("gamma", MG_ARG_FLOAT, 0, 0, BIG, NULL, "0.1"),
    ARG("min_lr", MG_ARG_FLOAT, 0, 0, BIG, NULL, "0"),
    ARG("warmup", MG_ARG_INT, 0, 0, 1e15, NULL, "0"),
};
static const mg_layer_arg TRAIN[] = {
    ARG("batch_size", MG_ARG_INT, 0, 1, 1 << 20, NULL, "32"),
    ARG("steps", MG_ARG_INT, 0, 0, 1e15, NULL, "1000"),
    MAPARG("optimizer", OPTIMIZER),
    ARG("seed", MG_ARG_INT, 0, 0, 9.2e18, NULL, "0"),
    MAPARG("checkpoint", CHECKPOINT),
    ARG("eval_every", MG_ARG_INT, 0, 0, 1e15, NULL, "0"),
    ARG("eval_batches", MG_ARG_INT, 0, 0, 1e15, NULL, "0"),
    MAPARG("schedule", SCHEDULE),
    ARG("clip_grad_norm", MG_ARG_FLOAT, 0, 0, BIG, NULL, "0"),
    ARG("ema", MG_ARG_FLOAT, 0, 0, 1, NULL, "0"),
};
static const mg_layer_arg SAMPLE[] = {
    ARG("count", MG_ARG_INT, 0, 1, 1e6, NULL, "64"),
    ARG("temperature", MG_ARG_FLOAT, 0, 0, BIG, NULL, "1.0"),
    ARG("seed", MG_ARG_INT, 0, 0, 9.2e18, NULL, NULL),
};

static const char *const SECTIONS[] = {"plugins", "model", "data", "train", "sample"};

/* ---- errors ------------------------------------------------------------------ */
static mg_status vfail_lc(mg_ctx *ctx, const char *file, mg_status st, int line, int col,
                          const char *fmt, va_list ap)
{
    char msg[MG_ERR_LEN];
    vsnprintf(msg, sizeof msg, fmt, ap);
    return mg_ctx_fail(ctx, st, "%s:%d:%d: %s", file, line, col, msg);
}

mg_status spec_fail(spec_loader *ld, const yaml_node_t *n, mg_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int line = n ? (int)n->start_mark.line + 1 : 1, col = n ? (int)n->start_mark.column + 1 : 1;
    st = vfail_lc(ld->ctx, ld->file, st, line, col, fmt, ap);
    va_end(ap);
    return st;
}

mg_status spec_fail_prefix(spec_loader *ld, const yaml_node_t *n, mg_status st, const char *what)
{
    char msg[MG_ERR_LEN];
    snprintf(msg, sizeof msg, "%s", mg_ctx_error(ld->ctx));
    return spec_fail(ld, n, st, "%s%s%s", what ? what : "", what ? ": " : "", msg);
}

mg_status mg_spec_fail_at(const mg_spec *s, mg_ctx *ctx, mg_status status, int line, int col,
                          const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    status = vfail_lc(ctx, s && s->filename ? s->filename : "<spec>", status, line, col, fmt, ap);
    va_end(ap);
    return status;
}

static void quiet_log(void *user, mg_log_level level, const char *msg)
{
    spec_quiet *q = user;
    if (level < MG_LOG_ERROR && q->fn) q->fn(q->user, level, msg);
}

void spec_quiet_begin(mg_ctx *ctx, spec_quiet *q)
{
    q->fn = ctx->log, q->user = ctx->log_user;
    ctx->log = quiet_log, ctx->log_user = q;
}

void spec_quiet_end(mg_ctx *ctx, spec_quiet *q)
{
    ctx->log = q->fn, ctx->log_user = q->user;
}

mg_status spec_where_add(spec_loader *ld, const char *key, const yaml_node_t *n)
{
    struct mg_spec_priv *p = ld->spec->priv;
    if (mg_grow((void **)&p->where, &p->cap_where, p->n_where + 1, sizeof *p->where))
        return mg_ctx_fail(ld->ctx, MG_ERR_NOMEM, "out of memory");
    spec_where *w = &p->where[p->n_where];
    if (!(w->key = mg_strdup(key))) return mg_ctx_fail(ld->ctx, MG_ERR_NOMEM, "out of memory");
    w->line = (int)n->start_mark.line + 1;
    w->col = (int)n->start_mark.column + 1;
    p->n_where++;
    return MG_OK;
}

int mg_spec_where(const mg_spec *s, const char *key, int *line, int *col)
{
    if (!s || !key) return 0;
    for (int i = s->priv->n_where - 1; i >= 0; i--) {
        const spec_where *w = &s->priv->where[i];
        if (strcmp(w->key, key)) continue;
        if (line) *line = w->line;
        if (col) *col = w->col;
        return 1;
    }
    return 0;
}

/* A located failure at a recorded key (the section's node if absent). */
static mg_status fail_key(spec_loader *ld, mg_status st, const char *key,
                          const yaml_node_t *dflt, const char *fmt, ...) MG_PRINTF(5, 6);
static mg_status fail_key(spec_loader *ld, mg_status st, const char *key,
                          const yaml_node_t *dflt, const char *fmt, ...)
{
    int line = dflt ? (int)dflt->start_mark.line + 1 : 1;
    int col = dflt ? (int)dflt->start_mark.column + 1 : 1;
    mg_spec_where(ld->spec, key, &line, &col);
    va_list ap;
    va_start(ap, fmt);
    st = vfail_lc(ld->ctx, ld->file, st, line, col, fmt, ap);
    va_end(ap);
    return st;
}

/* ---- names ------------------------------------------------------------------- */
const char *mg_spec_dequant_name(mg_spec_dequant d)
{
    return d >= MG_SPEC_DEQUANT_UNIFORM && d <= MG_SPEC_DEQUANT_NONE ? DEQUANTS[d - 1] : "?";
}

const char *mg_spec_stop_name(mg_spec_stop s)
{
    return s >= MG_SPEC_STOP_RESIDUAL && s <= MG_SPEC_STOP_FIXED ? STOPS[s - 1] : "?";
}

static int choice_index(const char *const *choices, const char *s)
{
    for (int i = 0; choices[i]; i++)
        if (!strcmp(choices[i], s)) return i;
    return -1;
}

/* ---- sections ---------------------------------------------------------------- */
static mg_status nomem(spec_loader *ld)
{
    return mg_ctx_fail(ld->ctx, MG_ERR_NOMEM, "out of memory while loading %s", ld->file);
}

static mg_status load_plugins(spec_loader *ld, const yaml_node_t *n)
{
    char buf[96];
    if (!n || spec_is_null(n)) return MG_OK;
    if (n->type != YAML_SEQUENCE_NODE)
        return spec_fail(ld, n, MG_ERR_PARSE, "'plugins' must be a list of plugin names, got %s",
                         spec_describe(n, buf, sizeof buf));
    int count = (int)(n->data.sequence.items.top - n->data.sequence.items.start);
    struct mg_spec_priv *p = ld->spec->priv;
    if (!(p->plugins = mg_calloc((size_t)count + 1, sizeof *p->plugins))) return nomem(ld);
    for (int i = 0; i < count; i++) {
        yaml_node_t *e = spec_node(ld, n->data.sequence.items.start[i]);
        const char *name;
        mg_status st = spec_get_str(ld, e, "plugins", &name);
        if (st) return st;
        if (!(p->plugins[i] = mg_strdup(name))) return nomem(ld);
        ld->spec->n_plugins = i + 1;
        if (ld->flags & MG_SPEC_NO_PLUGINS) continue;
        spec_quiet q;
        spec_quiet_begin(ld->ctx, &q);
        st = mg_plugin_load(ld->ctx, name);
        spec_quiet_end(ld->ctx, &q);
        if (st) return spec_fail_prefix(ld, e, st, NULL);
    }
    ld->spec->plugins = (const char *const *)p->plugins;
    return MG_OK;
}

mg_status mg_spec_set_inverse(mg_spec *s, const mg_spec_inverse *inv)
{
    if (!s || !inv || !(inv->tolerance > 0) || inv->max_iterations < 1 || !(inv->damping > 0.5) ||
        (inv->precision != MG_F32 && inv->precision != MG_F64))
        return MG_ERR_ARG;
    mg_attrs *m = s->priv->model_attrs;
    mg_status st = mg_attrs_set_float(m, "inverse.tolerance", inv->tolerance);
    if (!st) st = mg_attrs_set_int(m, "inverse.max_iterations", inv->max_iterations);
    if (!st) st = mg_attrs_set_float(m, "inverse.damping", inv->damping);
    if (!st) st = mg_attrs_set_str(m, "inverse.precision", inv->precision == MG_F64 ? "float64" : "float32");
    if (!st) st = mg_attrs_set_str(m, "inverse.stop", mg_spec_stop_name(inv->stop));
    if (!st && inv->adaptive >= 0) st = mg_attrs_set_int(m, "inverse.adaptive", inv->adaptive != 0);
    if (!st && inv->refine >= 0) st = mg_attrs_set_int(m, "inverse.refine", inv->refine != 0);
    if (!st) s->model.inverse = *inv;
    return st;
}

/* The model-level attributes layer builders see (mg_layer_build.model). */
static mg_status model_attrs(spec_loader *ld, const mg_attrs *a, int logit)
{
    static const char *const keys[] = {"inverse.tolerance", "inverse.max_iterations",
                                       "inverse.damping", "inverse.precision", "inverse.stop",
                                       "inverse.adaptive", "inverse.refine", "input"};
    mg_attrs *m = mg_attrs_new();
    if (!m) return nomem(ld);
    ld->spec->priv->model_attrs = m;
    for (int i = 0; i < (int)(sizeof keys / sizeof keys[0]); i++) {
        const mg_attr *src = NULL;
        for (int k = 0; k < a->n; k++)
            if (!strcmp(a->v[k].key, keys[i])) src = &a->v[k];
        mg_status st = MG_OK;
        if (!src) continue;
        if (src->kind == MG_ATTR_INT) st = mg_attrs_set_int(m, keys[i], src->i[0]);
        else if (src->kind == MG_ATTR_INTS) st = mg_attrs_set_ints(m, keys[i], src->i, src->n);
        else if (src->kind == MG_ATTR_FLOAT) st = mg_attrs_set_float(m, keys[i], src->f[0]);
        else if (src->kind == MG_ATTR_STR) st = mg_attrs_set_str(m, keys[i], src->s);
        if (st) return nomem(ld);
    }
    if (logit && mg_attrs_set_float(m, "logit.lambda", mg_attrs_float(a, "preprocess.logit.lambda", 1e-6)))
        return nomem(ld);
    ld->spec->model.attrs = m;
    return MG_OK;
}

/* Checks what the schema's inclusive ranges cannot say. */
static mg_status check_model(spec_loader *ld, const mg_attrs *a, const yaml_node_t *sec)
{
    mg_spec_model *m = &ld->spec->model;
    if (mg_attrs_ints(a, "input", m->input, 3) != 3)
        return fail_key(ld, MG_ERR_PARSE, "model.input", sec, "'input' must be [C, H, W] (3 integers)");
    if (m->logit_lambda >= 0.5)
        return fail_key(ld, MG_ERR_PARSE, "model.preprocess.logit.lambda", sec, "'lambda' must be below 0.5");
    if (!(m->inverse.tolerance > 0))
        return fail_key(ld, MG_ERR_PARSE, "model.inverse.tolerance", sec, "'tolerance' must be positive");
    if (!(m->inverse.damping > 0.5))
        return fail_key(ld, MG_ERR_PARSE, "model.inverse.damping", sec,
                        "'damping' must be above 0.5 (the iteration converges for 1/damping in (0, 2))");
    if (m->inverse.adaptive == 1 && m->inverse.stop == MG_SPEC_STOP_FIXED)
        return fail_key(ld, MG_ERR_PARSE, "model.inverse.adaptive", sec,
                        "'adaptive: true' needs 'stop: residual' ('stop: fixed' runs the published iteration "
                        "with the fixed damping)");
    if (m->inverse.refine == 1 && (m->inverse.stop == MG_SPEC_STOP_FIXED || m->inverse.precision == MG_F64))
        return fail_key(ld, MG_ERR_PARSE, "model.inverse.refine", sec,
                        "'refine: true' needs 'precision: float32' and 'stop: residual' (it finishes float32 "
                        "samples that stall in float64)");
    return MG_OK;
}

static mg_status load_model(spec_loader *ld, const yaml_node_t *sec, const yaml_node_t *key)
{
    mg_attrs *a = mg_attrs_new();
    if (!a) return nomem(ld);
    mg_status st = spec_validate(ld, MODEL, NARGS(MODEL), sec, key, "section 'model'", "", "model",
                                 MODEL_SKIP, a);
    mg_spec_model *m = &ld->spec->model;
    const yaml_node_t *pre = spec_map_get(ld, sec, "preprocess");
    m->logit = spec_map_get(ld, pre, "logit") != NULL;
    if (!st) {
        m->logit_lambda = m->logit ? mg_attrs_float(a, "preprocess.logit.lambda", 1e-6) : 0;
        m->dequantize = choice_index(DEQUANTS, mg_attrs_str(a, "preprocess.dequantize", "uniform")) + 1;
        m->prior = "normal";
        m->inverse.tolerance = mg_attrs_float(a, "inverse.tolerance", 1e-5);
        m->inverse.max_iterations = (int)mg_attrs_int(a, "inverse.max_iterations", 200);
        m->inverse.damping = mg_attrs_float(a, "inverse.damping", 3.5);
        m->inverse.precision = strcmp(mg_attrs_str(a, "inverse.precision", "float32"), "float64") ? MG_F32 : MG_F64;
        m->inverse.stop = choice_index(STOPS, mg_attrs_str(a, "inverse.stop", "residual")) + 1;
        m->inverse.adaptive = mg_attrs_has(a, "inverse.adaptive") ? (int)mg_attrs_int(a, "inverse.adaptive", 0) : -1;
        m->inverse.refine = mg_attrs_has(a, "inverse.refine") ? (int)mg_attrs_int(a, "inverse.refine", 0) : -1;
        st = check_model(ld, a, sec);
    }
    if (!st) st = model_attrs(ld, a, m->logit);
    mg_attrs_free(a);
    if (st) return st;
    const yaml_node_t *layers = spec_map_get(ld, sec, "layers");
    if (layers && (st = spec_where_add(ld, "model.layers", layers))) return st;
    return spec_load_layers(ld, layers, key);
}

/* dir/name, or name alone when it is absolute; NULL when out of memory. */
static char *join_path(const char *dir, const char *name)
{
    size_t len = strlen(dir) + strlen(name) + 2;
    char *full = mg_malloc(len);
    if (full && name[0] == '/') snprintf(full, len, "%s", name);
    else if (full) snprintf(full, len, "%s/%s", dir, name);
    return full;
}

static int file_exists(const char *dir, const char *name)
{
    struct stat sb;
    char *full = join_path(dir, name);
    int ok = full && stat(full, &sb) == 0 && !S_ISDIR(sb.st_mode);
    mg_free(full);
    return ok;
}

/* A file of the dataset: as named, else with ".gz" added or removed (then
 * *name becomes the name found). */
static mg_status resolve_data_file(spec_loader *ld, const char *dir, char **name, const char *key,
                                   const yaml_node_t *sec)
{
    if (file_exists(dir, *name)) return MG_OK;
    size_t n = strlen(*name);
    char *alt = mg_malloc(n + 4);
    if (!alt) return nomem(ld);
    if (n > 3 && !strcmp(*name + n - 3, ".gz")) snprintf(alt, n - 2, "%s", *name);
    else snprintf(alt, n + 4, "%s.gz", *name);
    if (file_exists(dir, alt)) {
        mg_free(*name);
        *name = alt;
        return MG_OK;
    }
    char *full = join_path(dir, *name);
    mg_status st = full ? fail_key(ld, MG_ERR_NOTFOUND, key, sec, "data file '%s' not found (nor '%s' beside it)",
                                   full, alt)
                        : nomem(ld);
    mg_free(full);
    mg_free(alt);
    return st;
}

static mg_status check_data_dir(spec_loader *ld, const yaml_node_t *sec)
{
    mg_spec_data *d = &ld->spec->data;
    struct stat sb;
    if (stat(d->path, &sb) == 0 && S_ISDIR(sb.st_mode)) return MG_OK;
    const char *hint = d->dataset == MG_SPEC_DATA_FASHION_MNIST
        ? "install the Debian package dataset-fashion-mnist (apt-get install dataset-fashion-mnist),"
          " which puts the files in /usr/share/datasets/fashion-mnist"
        : "Debian ships no MNIST package: put the IDX files (train-images-idx3-ubyte.gz,"
          " t10k-images-idx3-ubyte.gz) there";
    return fail_key(ld, MG_ERR_NOTFOUND, "data.path", sec, "dataset directory '%s' not found; %s",
                    d->path, hint);
}

static mg_status copy_str(spec_loader *ld, const mg_attrs *a, const char *key, const char *dflt,
                          char **out)
{
    const char *s = mg_attrs_str(a, key, dflt);
    if (s && !(*out = mg_strdup(s))) return nomem(ld);
    return MG_OK;
}

static mg_status fill_data(spec_loader *ld, const mg_attrs *a, const yaml_node_t *sec)
{
    mg_spec_data *d = &ld->spec->data;
    struct mg_spec_priv *p = ld->spec->priv;
    d->dataset = choice_index(DATASETS, mg_attrs_str(a, "dataset", "generated")) + 1;
    d->dataset_name = DATASETS[d->dataset - 1];
    int gen = d->dataset == MG_SPEC_DATA_GENERATED;
    d->train_size = mg_attrs_int(a, "train_size", gen ? 1024 : 0);
    d->test_size = mg_attrs_int(a, "test_size", gen ? 256 : 0);
    if (gen) {
        if (mg_attrs_has(a, "path"))
            return fail_key(ld, MG_ERR_PARSE, "data.path", sec, "dataset 'generated' takes no 'path'");
        return MG_OK;
    }
    if (!mg_attrs_has(a, "path"))
        return fail_key(ld, MG_ERR_PARSE, "data.dataset", sec, "dataset '%s' needs 'path', the directory of its IDX files%s",
                        d->dataset_name, d->dataset == MG_SPEC_DATA_FASHION_MNIST
                        ? " (/usr/share/datasets/fashion-mnist from the Debian package dataset-fashion-mnist)" : "");
    mg_status st;
    if ((st = copy_str(ld, a, "path", NULL, &p->path)) ||
        (st = copy_str(ld, a, "train", "train-images-idx3-ubyte.gz", &p->train_file)) ||
        (st = copy_str(ld, a, "test", "t10k-images-idx3-ubyte.gz", &p->test_file)))
        return st;
    d->path = p->path;
    if (!(ld->flags & MG_SPEC_NO_DATA_CHECK)) {
        if ((st = check_data_dir(ld, sec)) ||
            (st = resolve_data_file(ld, p->path, &p->train_file, mg_attrs_has(a, "train") ? "data.train" : "data.path", sec)) ||
            (st = resolve_data_file(ld, p->path, &p->test_file, mg_attrs_has(a, "test") ? "data.test" : "data.path", sec)))
            return st;
    }
    d->train_file = p->train_file;
    d->test_file = p->test_file;
    return MG_OK;
}

static mg_status load_data(spec_loader *ld, const yaml_node_t *sec, const yaml_node_t *key)
{
    mg_attrs *a = mg_attrs_new();
    if (!a) return nomem(ld);
    mg_status st = spec_validate(ld, DATA, NARGS(DATA), sec, key, "section 'data'", "", "data", NULL, a);
    if (!st) st = fill_data(ld, a, sec ? sec : key);
    mg_attrs_free(a);
    return st;
}

static mg_status check_train(spec_loader *ld, const mg_attrs *a, const yaml_node_t *sec)
{
    mg_spec_optimizer *o = &ld->spec->train.optimizer;
    if (mg_attrs_floats(a, "optimizer.betas", o->betas, 2) != 2)
        return fail_key(ld, MG_ERR_PARSE, "train.optimizer.betas", sec, "'betas' must be two numbers [beta1, beta2]");
    if (o->betas[0] >= 1 || o->betas[1] >= 1)
        return fail_key(ld, MG_ERR_PARSE, "train.optimizer.betas", sec, "'betas' must be below 1");
    if (!(o->lr > 0)) return fail_key(ld, MG_ERR_PARSE, "train.optimizer.lr", sec, "'lr' must be positive");
    if (!(o->eps > 0)) return fail_key(ld, MG_ERR_PARSE, "train.optimizer.eps", sec, "'eps' must be positive");
    if (ld->spec->train.ema >= 1) return fail_key(ld, MG_ERR_PARSE, "train.ema", sec, "'ema' must be below 1");
    return MG_OK;
}

static mg_status fill_train(spec_loader *ld, const mg_attrs *a, const yaml_node_t *sec)
{
    mg_spec_train *t = &ld->spec->train;
    t->batch_size = mg_attrs_int(a, "batch_size", 32);
    t->steps = mg_attrs_int(a, "steps", 1000);
    t->seed = (uint64_t)mg_attrs_int(a, "seed", 0);
    t->checkpoint_every = mg_attrs_int(a, "checkpoint.every", 0);
    t->eval_every = mg_attrs_int(a, "eval_every", 0);
    t->eval_batches = mg_attrs_int(a, "eval_batches", 0);
    t->clip_grad_norm = mg_attrs_float(a, "clip_grad_norm", 0);
    t->ema = mg_attrs_float(a, "ema", 0);
    mg_spec_optimizer *o = &t->optimizer;
    o->kind = choice_index(OPTIMS, mg_attrs_str(a, "optimizer.name", "adam")) + 1;
    o->name = OPTIMS[o->kind - 1];
    o->lr = mg_attrs_float(a, "optimizer.lr", 1e-3);
    o->eps = mg_attrs_float(a, "optimizer.eps", 1e-8);
    o->amsgrad = (int)mg_attrs_int(a, "optimizer.amsgrad", 0);
    o->momentum = mg_attrs_float(a, "optimizer.momentum", 0);
    o->nesterov = (int)mg_attrs_int(a, "optimizer.nesterov", 0);
    o->weight_decay = mg_attrs_float(a, "optimizer.weight_decay", 0);
    mg_spec_schedule *s = &t->schedule;
    s->kind = choice_index(SCHEDS, mg_attrs_str(a, "schedule.name", "constant")) + 1;
    s->name = SCHEDS[s->kind - 1];
    s->step_size = mg_attrs_int(a, "schedule.step_size", 1000);
    s->gamma = mg_attrs_float(a, "schedule.gamma", 0.1);
    s->min_lr = mg_attrs_float(a, "schedule.min_lr", 0);
    s->warmup = mg_attrs_int(a, "schedule.warmup", 0);
    return check_train(ld, a, sec);
}

/* "runs/<file stem>" */
static mg_status default_ckpt_dir(spec_loader *ld, char **out)
{
    const char *base = strrchr(ld->file, '/');
    base = base ? base + 1 : ld->file;
    size_t n = strlen(base);
    if (n > 5 && !strcmp(base + n - 5, ".yaml")) n -= 5;
    else if (n > 4 && !strcmp(base + n - 4, ".yml")) n -= 4;
    if (!n || *base == '<') base = "spec", n = 4;
    if (!(*out = mg_malloc(n + 6))) return nomem(ld);
    snprintf(*out, n + 6, "runs/%.*s", (int)n, base);
    return MG_OK;
}

static mg_status load_train(spec_loader *ld, const yaml_node_t *sec, const yaml_node_t *key)
{
    mg_attrs *a = mg_attrs_new();
    if (!a) return nomem(ld);
    struct mg_spec_priv *p = ld->spec->priv;
    mg_status st = spec_validate(ld, TRAIN, NARGS(TRAIN), sec, key, "section 'train'", "", "train", NULL, a);
    if (!st) st = fill_train(ld, a, sec ? sec : key);
    if (!st) st = mg_attrs_has(a, "checkpoint.dir") ? copy_str(ld, a, "checkpoint.dir", NULL, &p->checkpoint_dir)
                                                    : default_ckpt_dir(ld, &p->checkpoint_dir);
    ld->spec->train.checkpoint_dir = p->checkpoint_dir;
    mg_attrs_free(a);
    return st;
}

static mg_status load_sample(spec_loader *ld, const yaml_node_t *sec, const yaml_node_t *key)
{
    mg_attrs *a = mg_attrs_new();
    if (!a) return nomem(ld);
    mg_status st = spec_validate(ld, SAMPLE, NARGS(SAMPLE), sec, key, "section 'sample'", "", "sample", NULL, a);
    mg_spec_sample *s = &ld->spec->sample;
    s->count = mg_attrs_int(a, "count", 64);
    s->temperature = mg_attrs_float(a, "temperature", 1.0);
    s->seed = (uint64_t)mg_attrs_int(a, "seed", (int64_t)ld->spec->train.seed);
    if (!st && !(s->temperature > 0))
        st = fail_key(ld, MG_ERR_PARSE, "sample.temperature", sec ? sec : key, "'temperature' must be positive");
    mg_attrs_free(a);
    return st;
}

/* Validates the root mapping's keys, then loads the sections in order. */
static mg_status load_root(spec_loader *ld, const yaml_node_t *root)
{
    char buf[96];
    if (root->type != YAML_MAPPING_NODE)
        return spec_fail(ld, root, MG_ERR_PARSE,
                         "a spec is a mapping with sections plugins, model, data, train, sample; got %s",
                         spec_describe(root, buf, sizeof buf));
    mg_status st = spec_check_map(ld, root, "the spec");
    const yaml_node_t *keys[5] = {0}, *vals[5] = {0};
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; !st && p < root->data.mapping.pairs.top; p++) {
        yaml_node_t *k = spec_node(ld, p->key);
        int i = 0;
        while (i < 5 && strcmp(SECTIONS[i], spec_scalar(k))) i++;
        if (i == 5) return spec_unknown_key(ld, k, "the spec", SECTIONS, 5);
        keys[i] = k, vals[i] = spec_node(ld, p->value);
        st = spec_where_add(ld, SECTIONS[i], vals[i]);
    }
    if (st) return st;
    if (!vals[1]) return spec_fail(ld, root, MG_ERR_PARSE, "the spec has no 'model' section");
    if (!vals[2])
        return spec_fail(ld, root, MG_ERR_PARSE,
                         "the spec has no 'data' section (e.g. data: {dataset: generated})");
    if ((st = load_plugins(ld, vals[0]))) return st;
    if ((st = load_model(ld, vals[1], keys[1]))) return st;
    if ((st = load_data(ld, vals[2], keys[2]))) return st;
    if ((st = load_train(ld, vals[3], keys[3] ? keys[3] : root))) return st;
    return load_sample(ld, vals[4], keys[4] ? keys[4] : root);
}

/* ---- parsing ----------------------------------------------------------------- */
/* 1-based line and column of byte `off` in text. */
static void offset_lc(const char *text, size_t len, size_t off, int *line, int *col)
{
    *line = 1, *col = 1;
    for (size_t i = 0; i < off && i < len; i++) {
        if (text[i] == '\n') (*line)++, *col = 1;
        else if (((unsigned char)text[i] & 0xC0) != 0x80) (*col)++;
    }
}

static mg_status syntax_error(spec_loader *ld, const yaml_parser_t *p, const mg_spec *s)
{
    int line = (int)p->problem_mark.line + 1, col = (int)p->problem_mark.column + 1;
    if (p->error == YAML_READER_ERROR) {
        offset_lc(s->text, s->text_len, p->problem_offset, &line, &col);
        return mg_spec_fail_at(s, ld->ctx, MG_ERR_PARSE, line, col, "unreadable text: %s",
                               p->problem ? p->problem : "invalid input");
    }
    if (p->error == YAML_MEMORY_ERROR) return nomem(ld);
    if (p->context)
        return mg_spec_fail_at(s, ld->ctx, MG_ERR_PARSE, line, col,
                               "YAML syntax error: %s (%s at line %d, column %d)",
                               p->problem ? p->problem : "?", p->context,
                               (int)p->context_mark.line + 1, (int)p->context_mark.column + 1);
    return mg_spec_fail_at(s, ld->ctx, MG_ERR_PARSE, line, col, "YAML syntax error: %s",
                           p->problem ? p->problem : "?");
}

/* Loads the one document of the text, rejecting empty text and more
 * documents. On success *doc must be deleted by the caller. */
static mg_status parse_doc(spec_loader *ld, yaml_parser_t *p, yaml_document_t *doc)
{
    const mg_spec *s = ld->spec;
    if (!yaml_parser_load(p, doc)) return syntax_error(ld, p, s);
    if (!yaml_document_get_root_node(doc)) {
        yaml_document_delete(doc);
        return mg_spec_fail_at(s, ld->ctx, MG_ERR_PARSE, 1, 1,
                               "the spec is empty (expected a mapping with 'model' and 'data' sections)");
    }
    yaml_document_t next;
    mg_status st = MG_OK;
    if (!yaml_parser_load(p, &next)) {
        st = syntax_error(ld, p, s);
    } else {
        if (yaml_document_get_root_node(&next))
            st = mg_spec_fail_at(s, ld->ctx, MG_ERR_PARSE, (int)next.start_mark.line + 1,
                                 (int)next.start_mark.column + 1,
                                 "a second YAML document starts here; a spec is one document");
        yaml_document_delete(&next);
    }
    if (st) yaml_document_delete(doc);
    return st;
}

static mg_status spec_alloc(mg_ctx *ctx, const char *text, size_t len, const char *filename,
                            mg_spec **out)
{
    mg_spec *s = mg_calloc(1, sizeof *s);
    struct mg_spec_priv *p = s ? mg_calloc(1, sizeof *p) : NULL;
    char *t = mg_malloc(len + 1), *f = mg_strdup(filename ? filename : "<string>");
    if (!s || !p || !t || !f) {
        mg_free(s), mg_free(p), mg_free(t), mg_free(f);
        return mg_ctx_fail(ctx, MG_ERR_NOMEM, "out of memory loading a spec");
    }
    memcpy(t, text, len);
    t[len] = 0;
    p->ctx = ctx, p->text = t, p->filename = f;
    s->priv = p, s->text = t, s->text_len = len, s->filename = f;
    *out = s;
    return MG_OK;
}

mg_status mg_spec_load_string(mg_ctx *ctx, const char *text, size_t len, const char *filename,
                              unsigned flags, mg_spec **out)
{
    if (!out) return mg_ctx_fail(ctx, MG_ERR_ARG, "mg_spec_load_string: out is NULL");
    *out = NULL;
    if (!ctx || (!text && len)) return ctx ? mg_ctx_fail(ctx, MG_ERR_ARG, "mg_spec_load_string: no text") : MG_ERR_ARG;
    mg_spec *s = NULL;
    mg_status st = spec_alloc(ctx, text ? text : "", len, filename, &s);
    if (st) return st;
    spec_loader ld = {.ctx = ctx, .spec = s, .file = s->filename, .flags = flags};
    yaml_parser_t p;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&p)) {
        mg_spec_free(s);
        return mg_ctx_fail(ctx, MG_ERR_NOMEM, "out of memory starting the YAML parser");
    }
    yaml_parser_set_input_string(&p, (const unsigned char *)s->text, s->text_len);
    st = parse_doc(&ld, &p, &doc);
    yaml_parser_delete(&p);
    if (!st) {
        ld.doc = &doc;
        st = load_root(&ld, yaml_document_get_root_node(&doc));
        yaml_document_delete(&doc);
    }
    if (st) mg_spec_free(s);
    else *out = s;
    return st;
}

mg_status mg_spec_load_file(mg_ctx *ctx, const char *path, unsigned flags, mg_spec **out)
{
    if (out) *out = NULL;
    if (!ctx || !path || !out) return ctx ? mg_ctx_fail(ctx, MG_ERR_ARG, "mg_spec_load_file: NULL argument") : MG_ERR_ARG;
    FILE *f = fopen(path, "rb");
    if (!f) return mg_ctx_fail(ctx, MG_ERR_NOTFOUND, "%s: cannot open the spec file", path);
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 4096 > cap) {
            char *nb = mg_realloc(buf, cap = cap ? 2 * cap : 8192);
            if (!nb) return fclose(f), mg_free(buf), mg_ctx_fail(ctx, MG_ERR_NOMEM, "%s: out of memory", path);
            buf = nb;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) break;
    }
    int err = ferror(f);
    fclose(f);
    mg_status st = err ? mg_ctx_fail(ctx, MG_ERR_IO, "%s: read error", path)
                       : mg_spec_load_string(ctx, buf ? buf : "", len, path, flags, out);
    mg_free(buf);
    return st;
}

void mg_spec_free(mg_spec *s)
{
    if (!s) return;
    struct mg_spec_priv *p = s->priv;
    for (int i = 0; p->plugins && p->plugins[i]; i++) mg_free(p->plugins[i]);
    mg_free(p->plugins);
    for (int i = 0; i < p->n_layers; i++) mg_attrs_free((mg_attrs *)p->layers[i].args);
    mg_free(p->layers);
    mg_attrs_free(p->model_attrs);
    for (int i = 0; i < p->n_where; i++) mg_free(p->where[i].key);
    mg_free(p->where);
    mg_free(p->path), mg_free(p->train_file), mg_free(p->test_file), mg_free(p->checkpoint_dir);
    mg_free(p->filename), mg_free(p->text);
    mg_free(p);
    mg_free(s);
}

/* ---- formatting -------------------------------------------------------------- */
static size_t put_attr(char *buf, size_t n, size_t len, const mg_attr *a)
{
    if (len >= n) return len;
    len += (size_t)snprintf(buf + len, n - len, "%s%s=", len ? ", " : "", a->key);
    for (int k = 0; k < a->n && len < n; k++) {
        const char *sep = k ? ", " : (a->kind == MG_ATTR_INTS || a->kind == MG_ATTR_FLOATS ? "[" : "");
        if (a->kind == MG_ATTR_INT || a->kind == MG_ATTR_INTS)
            len += (size_t)snprintf(buf + len, n - len, "%s%lld", sep, (long long)a->i[k]);
        else if (a->kind == MG_ATTR_FLOAT || a->kind == MG_ATTR_FLOATS)
            len += (size_t)snprintf(buf + len, n - len, "%s%g", sep, a->f[k]);
    }
    if (a->kind == MG_ATTR_STR && len < n) len += (size_t)snprintf(buf + len, n - len, "%s", a->s);
    if ((a->kind == MG_ATTR_INTS || a->kind == MG_ATTR_FLOATS) && len < n)
        len += (size_t)snprintf(buf + len, n - len, "%s]", a->n ? "" : "[");
    return len;
}

char *mg_spec_layer_args_str(const mg_spec_layer *l, char *buf, size_t n)
{
    if (!buf || !n) return buf;
    buf[0] = 0;
    size_t len = 0;
    for (int i = 0; l && l->args && i < l->args->n; i++) len = put_attr(buf, n, len, &l->args->v[i]);
    return buf;
}
