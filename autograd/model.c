/* autograd/model.c: flow models from a loaded spec (mintgrad/model.h).
 * Drives the layer builders of mintgrad/layer.h in order: init_params for
 * parameters, forward (in graph scope "flow.<i>") for the training graph,
 * inverse in reverse order for the sampling graph; adds the logit, the
 * prior and the loss/bits-per-dimension accounting of spec section 6; and
 * counts parameters for `mintgrad check`. */
#include "spec_internal.h"

#include <math.h>
#include <mintgrad/flow.h>
#include <stdio.h>
#include <string.h>

struct mg_model {
    mg_ctx *ctx;
    const mg_spec *spec;
    mg_params *params;
};

mg_status mg_model_new(mg_ctx *ctx, const mg_spec *spec, mg_params *params, mg_model **out)
{
    if (out) *out = NULL;
    if (!ctx || !spec || !params || !out)
        return ctx ? mg_ctx_fail(ctx, MG_ERR_ARG, "mg_model_new: NULL argument") : MG_ERR_ARG;
    mg_model *m = mg_calloc(1, sizeof *m);
    if (!m) return mg_ctx_fail(ctx, MG_ERR_NOMEM, "out of memory creating a model");
    m->ctx = ctx, m->spec = spec, m->params = params;
    *out = m;
    return MG_OK;
}

void mg_model_free(mg_model *m) { mg_free(m); }
const mg_spec *mg_model_spec(const mg_model *m) { return m ? m->spec : NULL; }
mg_params *mg_model_params(const mg_model *m) { return m ? m->params : NULL; }
int mg_model_num_layers(const mg_model *m) { return m ? m->spec->model.n_layers : 0; }

int64_t mg_model_dims(const mg_model *m)
{
    const int64_t *in = m->spec->model.input;
    return in[0] * in[1] * in[2];
}

/* ---- per-layer plumbing ------------------------------------------------------ */
typedef struct layer_ctx {
    mg_layer_build b;
    char prefix[32];
} layer_ctx;

/* Fills the builder argument for layer i. */
static void layer_setup(const mg_model *m, int i, mg_graph *g, mg_rng *rng, layer_ctx *lc)
{
    const mg_spec_layer *l = &m->spec->model.layers[i];
    snprintf(lc->prefix, sizeof lc->prefix, "flow.%d", i);
    memset(&lc->b, 0, sizeof lc->b);
    lc->b.struct_size = sizeof lc->b;
    lc->b.ctx = m->ctx, lc->b.g = g, lc->b.params = m->params;
    lc->b.index = i, lc->b.prefix = lc->prefix, lc->b.type = l->type;
    lc->b.args = l->args, lc->b.model = m->spec->model.attrs, lc->b.rng = rng;
    memcpy(lc->b.in_shape, l->in_shape, sizeof lc->b.in_shape);
    memcpy(lc->b.out_shape, l->out_shape, sizeof lc->b.out_shape);
}

/* Prefixes the context's message with layer i's location and name. */
static mg_status layer_fail(const mg_model *m, int i, mg_status st, const char *stage)
{
    const mg_spec_layer *l = &m->spec->model.layers[i];
    char msg[MG_ERR_LEN];
    snprintf(msg, sizeof msg, "%s", mg_ctx_error(m->ctx));
    if (!msg[0]) return mg_spec_fail_at(m->spec, m->ctx, st, l->line, l->col, "layer %d (%s), %s: %s", i,
                                        l->type, stage, mg_status_name(st));
    return mg_spec_fail_at(m->spec, m->ctx, st, l->line, l->col, "layer %d (%s), %s: %s", i, l->type,
                           stage, msg);
}

/* The status of a builder call, taking the graph's sticky error into account. */
static mg_status built(mg_graph *g, mg_status st)
{
    return st != MG_OK ? st : (g ? mg_graph_status(g) : MG_OK);
}

mg_status mg_model_init_params(mg_model *m, uint64_t seed)
{
    mg_rng rng;
    mg_rng_seed(&rng, seed);
    for (int i = 0; i < m->spec->model.n_layers; i++) {
        const mg_layer_def *def = m->spec->model.layers[i].def;
        if (!def->init_params) continue;
        layer_ctx lc;
        layer_setup(m, i, NULL, &rng, &lc);
        spec_quiet q;
        spec_quiet_begin(m->ctx, &q);
        mg_status st = def->init_params(&lc.b);
        spec_quiet_end(m->ctx, &q);
        if (st) return layer_fail(m, i, st, "initialising parameters");
    }
    return MG_OK;
}

/* ---- graphs ------------------------------------------------------------------- */
void mg_model_graph_free(mg_model_graph *mg)
{
    if (!mg) return;
    mg_graph_free(mg->g);
    mg_free(mg->layer_in), mg_free(mg->layer_out), mg_free(mg->layer_logdet);
    mg_free(mg->layer_rec), mg_free(mg->layer_diag);
    mg_free(mg);
}

static mg_status graph_alloc(mg_model *m, int64_t batch, mg_model_graph **out)
{
    *out = NULL;
    if (batch < 1) return mg_ctx_fail(m->ctx, MG_ERR_ARG, "model batch size must be >= 1, got %lld", (long long)batch);
    int n = m->spec->model.n_layers, k = n ? n : 1;
    mg_model_graph *mg = mg_calloc(1, sizeof *mg);
    if (!mg) return mg_ctx_fail(m->ctx, MG_ERR_NOMEM, "out of memory building the model");
    mg->layer_in = mg_malloc(sizeof(mg_value) * (size_t)k);
    mg->layer_out = mg_malloc(sizeof(mg_value) * (size_t)k);
    mg->layer_logdet = mg_malloc(sizeof(mg_value) * (size_t)k);
    mg->layer_rec = mg_malloc(sizeof(mg_value) * (size_t)k);
    mg->layer_diag = mg_malloc(sizeof(mg_value) * (size_t)k);
    mg_status st = mg->layer_in && mg->layer_out && mg->layer_logdet && mg->layer_rec && mg->layer_diag
                       ? mg_graph_new(m->ctx, &mg->g) : MG_ERR_NOMEM;
    if (st) {
        mg_model_graph_free(mg);
        return st == MG_ERR_NOMEM ? mg_ctx_fail(m->ctx, st, "out of memory building the model") : st;
    }
    for (int i = 0; i < k; i++)
        mg->layer_in[i] = mg->layer_out[i] = mg->layer_logdet[i] = mg->layer_rec[i] =
            mg->layer_diag[i] = MG_VALUE_NONE;
    mg->x = mg->z = mg->logit_logdet = mg->logdet = mg->nll = mg->bpd = mg->loss = MG_VALUE_NONE;
    mg->z_in = mg->x_out = MG_VALUE_NONE;
    mg->batch = batch, mg->n_layers = n;
    *out = mg;
    return MG_OK;
}

/* A named single-output node (names make graphs and DOT renders readable). */
static mg_value named(mg_graph *g, const char *op, const char *name, const mg_value *in, int n,
                      const mg_attrs *attrs)
{
    mg_value v = MG_VALUE_NONE;
    if (mg_graph_node(g, op, name, in, n, attrs, &v, 1, NULL) != MG_OK) return MG_VALUE_NONE;
    return v;
}

/* y = scale * x + shift, as a node called `name`. */
static mg_value named_scale(mg_graph *g, const char *name, mg_value x, double scale, double shift)
{
    mg_attrs *a = mg_attrs_new();
    if (!a || mg_attrs_set_float(a, "scale", scale) || mg_attrs_set_float(a, "shift", shift)) {
        mg_attrs_free(a);
        mg_graph_fail(g, MG_ERR_NOMEM, "out of memory");
        return MG_VALUE_NONE;
    }
    mg_value v = named(g, "scale", name, &x, 1, a);
    mg_attrs_free(a);
    return v;
}

/* Layer i's inverse applied to y, inside the current scope. */
static mg_status layer_inverse(mg_model *m, mg_model_graph *mg, int i, mg_value y, mg_value *x)
{
    const mg_layer_def *def = m->spec->model.layers[i].def;
    if (!def->inverse) {
        mg_ctx_clear_error(m->ctx);
        return layer_fail(m, i, MG_ERR_UNSUPPORTED, "building its inverse: the layer type has no inverse");
    }
    layer_ctx lc;
    layer_setup(m, i, mg->g, NULL, &lc);
    spec_quiet q;
    spec_quiet_begin(m->ctx, &q);
    mg_status st = built(mg->g, def->inverse(&lc.b, y, x, &mg->layer_diag[i]));
    if (!st && !mg_value_ok(*x)) st = mg_ctx_fail(m->ctx, MG_ERR_STATE, "the inverse builder returned no value");
    spec_quiet_end(m->ctx, &q);
    return st ? layer_fail(m, i, st, "building its inverse") : MG_OK;
}

/* Layer i's forward on h (and, for round trips, its inverse on the result). */
static mg_status layer_forward(mg_model *m, mg_model_graph *mg, int i, mg_value *h, int roundtrip)
{
    const mg_spec_layer *l = &m->spec->model.layers[i];
    layer_ctx lc;
    layer_setup(m, i, mg->g, NULL, &lc);
    mg_status st = mg_graph_push_scope(mg->g, lc.prefix, l->type);
    if (st) return layer_fail(m, i, st, "opening its graph scope");
    mg_value y = MG_VALUE_NONE, ld = MG_VALUE_NONE;
    mg->layer_in[i] = *h;
    spec_quiet q;
    spec_quiet_begin(m->ctx, &q);
    st = built(mg->g, l->def->forward(&lc.b, *h, &y, &ld));
    if (!st && !mg_value_ok(y)) st = mg_ctx_fail(m->ctx, MG_ERR_STATE, "the forward builder returned no value");
    spec_quiet_end(m->ctx, &q);
    if (st) st = layer_fail(m, i, st, "building its forward pass");
    if (!st && roundtrip && !(st = mg_graph_push_scope(mg->g, "inverse", l->type))) {
        st = layer_inverse(m, mg, i, y, &mg->layer_rec[i]);
        mg_graph_pop_scope(mg->g);
    }
    mg_graph_pop_scope(mg->g);
    mg->layer_out[i] = *h = y;
    mg->layer_logdet[i] = ld;
    return st;
}

/* The prior and the accounting: nll, loss, bpd (spec section 6). */
static mg_status add_loss(mg_model *m, mg_model_graph *mg, mg_value total)
{
    mg_graph *g = mg->g;
    mg_value logp = mg_normal_logpdf(g, mg->z);
    mg_value in2[2] = {logp, total};
    mg_value s = mg_value_ok(total) ? named(g, "add", "log_likelihood", in2, 2, NULL) : logp;
    mg->nll = named_scale(g, "nll", s, -1.0, 0.0);
    mg->loss = named(g, "mean", "loss", &mg->nll, 1, NULL);
    mg_value nats = mg->nll;
    if (mg_value_ok(mg->logit_logdet)) {
        mg_value d2[2] = {mg->nll, mg->logit_logdet};
        nats = named(g, "sub", "nll_pixels", d2, 2, NULL);
    }
    mg->bpd = named_scale(g, "bpd", nats, 1.0 / ((double)mg_model_dims(m) * log(2.0)), 8.0);
    if (mg_value_ok(total)) {
        mg->logdet = total;
    } else {
        mg_tensor *zero = mg_tensor_new1(MG_F32, mg->batch);
        if (!zero) return mg_ctx_fail(m->ctx, MG_ERR_NOMEM, "out of memory");
        mg->logdet = mg_graph_const(g, "logdet_zero", zero);
        mg_tensor_free(zero);
    }
    return mg_graph_status(g);
}

static mg_status build_forward(mg_model *m, mg_model_graph *mg, int roundtrip)
{
    const mg_spec_model *sm = &m->spec->model;
    int64_t shape[4] = {mg->batch, sm->input[0], sm->input[1], sm->input[2]};
    mg_value h = mg->x = mg_graph_input(mg->g, "x", MG_F32, 4, shape);
    if (sm->logit) h = mg_logit(mg->g, mg->x, sm->logit_lambda, &mg->logit_logdet);
    mg_status st = mg_graph_status(mg->g);
    if (st) return st;
    mg_value total = MG_VALUE_NONE;
    for (int i = 0; i < sm->n_layers; i++) {
        if ((st = layer_forward(m, mg, i, &h, roundtrip))) return st;
        mg_value ld = mg->layer_logdet[i];
        if (!mg_value_ok(ld)) continue;
        if (mg_value_ok(total)) {
            char name[40];
            snprintf(name, sizeof name, "logdet_sum.%d", i);
            mg_value in2[2] = {total, ld};
            total = named(mg->g, "add", name, in2, 2, NULL);
        } else {
            total = ld;
        }
    }
    mg->z = h;
    return add_loss(m, mg, total);
}

static mg_status finish(mg_model_graph *mg, mg_status st, mg_model_graph **out)
{
    if (st) mg_model_graph_free(mg);
    else *out = mg;
    return st;
}

mg_status mg_model_build_forward(mg_model *m, int64_t batch, mg_model_graph **out)
{
    mg_model_graph *mg;
    if (!m || !out) return m ? mg_ctx_fail(m->ctx, MG_ERR_ARG, "mg_model_build_forward: NULL argument") : MG_ERR_ARG;
    *out = NULL;
    mg_status st = graph_alloc(m, batch, &mg);
    return st ? st : finish(mg, build_forward(m, mg, 0), out);
}

mg_status mg_model_build_roundtrip(mg_model *m, int64_t batch, mg_model_graph **out)
{
    mg_model_graph *mg;
    if (!m || !out) return m ? mg_ctx_fail(m->ctx, MG_ERR_ARG, "mg_model_build_roundtrip: NULL argument") : MG_ERR_ARG;
    *out = NULL;
    mg_status st = graph_alloc(m, batch, &mg);
    return st ? st : finish(mg, build_forward(m, mg, 1), out);
}

static mg_status build_inverse(mg_model *m, mg_model_graph *mg)
{
    const mg_spec_model *sm = &m->spec->model;
    int64_t shape[4] = {mg->batch, sm->output[0], sm->output[1], sm->output[2]};
    mg_value h = mg->z_in = mg_graph_input(mg->g, "z", MG_F32, 4, shape);
    mg_status st = mg_graph_status(mg->g);
    for (int i = sm->n_layers - 1; i >= 0 && !st; i--) {
        const mg_spec_layer *l = &sm->layers[i];
        char scope[32];
        snprintf(scope, sizeof scope, "flow.%d", i);
        if ((st = mg_graph_push_scope(mg->g, scope, l->type))) return layer_fail(m, i, st, "opening its graph scope");
        mg->layer_out[i] = h;
        st = layer_inverse(m, mg, i, h, &mg->layer_in[i]);
        mg_graph_pop_scope(mg->g);
        h = mg->layer_in[i];
    }
    if (st) return st;
    if (sm->logit) h = mg_logit_inverse(mg->g, h, sm->logit_lambda);
    mg->x_out = h;
    return mg_graph_status(mg->g);
}

mg_status mg_model_build_inverse(mg_model *m, int64_t batch, mg_model_graph **out)
{
    mg_model_graph *mg;
    if (!m || !out) return m ? mg_ctx_fail(m->ctx, MG_ERR_ARG, "mg_model_build_inverse: NULL argument") : MG_ERR_ARG;
    *out = NULL;
    mg_status st = graph_alloc(m, batch, &mg);
    return st ? st : finish(mg, build_inverse(m, mg), out);
}

/* ---- parameter counts ---------------------------------------------------------- */
mg_status mg_model_layer_params(const mg_model *m, int i, int64_t *raw, int64_t *effective)
{
    int64_t r = 0, e = 0;
    if (!m || i < 0 || i >= m->spec->model.n_layers)
        return m ? mg_ctx_fail(m->ctx, MG_ERR_ARG, "layer index %d out of range", i) : MG_ERR_ARG;
    const mg_layer_def *def = m->spec->model.layers[i].def;
    layer_ctx lc;
    layer_setup(m, i, NULL, NULL, &lc);
    if (def->count_params) {
        def->count_params(&lc.b, &r, &e);
    } else {
        size_t n = strlen(lc.prefix);
        for (int k = 0; k < mg_params_count(m->params); k++) {
            const mg_param *p = mg_params_at(m->params, k);
            if (!strncmp(p->name, lc.prefix, n) && p->name[n] == '.') r += mg_tensor_numel(p->value);
        }
        e = r;
    }
    if (raw) *raw = r;
    if (effective) *effective = e;
    return MG_OK;
}

mg_status mg_model_total_params(const mg_model *m, int64_t *raw, int64_t *effective)
{
    int64_t tr = 0, te = 0;
    for (int i = 0; m && i < m->spec->model.n_layers; i++) {
        int64_t r, e;
        mg_status st = mg_model_layer_params(m, i, &r, &e);
        if (st) return st;
        tr += r, te += e;
    }
    if (raw) *raw = tr;
    if (effective) *effective = te;
    return m ? MG_OK : MG_ERR_ARG;
}

/* ---- the table ------------------------------------------------------------------ */
/* "61,716" */
static char *thousands(int64_t v, char *buf, size_t n)
{
    char digits[32];
    int len = snprintf(digits, sizeof digits, "%lld", (long long)(v < 0 ? -v : v));
    size_t k = 0;
    if (v < 0 && k + 1 < n) buf[k++] = '-';
    for (int i = 0; i < len && k + 1 < n; i++) {
        if (i && (len - i) % 3 == 0 && k + 1 < n) buf[k++] = ',';
        if (k + 1 < n) buf[k++] = digits[i];
    }
    buf[k] = 0;
    return buf;
}

typedef struct sbuf {
    char *s;
    size_t len, cap;
    int oom;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) MG_PRINTF(2, 3);
static void sb_printf(sbuf *b, const char *fmt, ...)
{
    for (int tries = 0; tries < 2 && !b->oom; tries++) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) return;
        if (b->s && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = (b->cap + (size_t)n + 1) * 2;
        char *ns = mg_realloc(b->s, cap);
        if (!ns) b->oom = 1;
        else b->s = ns, b->cap = cap;
    }
}

static void table_row(const mg_model *m, int i, sbuf *sb)
{
    const mg_spec_layer *l = &m->spec->model.layers[i];
    char args[256], shape[64], r[32], e[32];
    int64_t raw = 0, eff = 0;
    mg_model_layer_params(m, i, &raw, &eff);
    mg_spec_layer_args_str(l, args, sizeof args);
    sb_printf(sb, "%5d  %-16s %-28s %-14s %12s %12s\n", i, l->type, args,
              mg_shape_str(3, l->out_shape, shape, sizeof shape), thousands(raw, r, sizeof r),
              thousands(eff, e, sizeof e));
}

mg_status mg_model_table(const mg_model *m, char **out)
{
    if (!m || !out) return m ? mg_ctx_fail(m->ctx, MG_ERR_ARG, "mg_model_table: NULL argument") : MG_ERR_ARG;
    *out = NULL;
    sbuf sb = {0};
    char shape[64], r[32], e[32];
    const mg_spec_model *sm = &m->spec->model;
    sb_printf(&sb, "%5s  %-16s %-28s %-14s %12s %12s\n", "layer", "type", "arguments", "output",
              "params", "effective");
    sb_printf(&sb, "%5s  %-16s %-28s %s\n", "", "input", "", mg_shape_str(3, sm->input, shape, sizeof shape));
    for (int i = 0; i < sm->n_layers; i++) table_row(m, i, &sb);
    int64_t raw = 0, eff = 0;
    mg_status st = mg_model_total_params(m, &raw, &eff);
    if (st) return mg_free(sb.s), st;
    char count[32];
    snprintf(count, sizeof count, "%d layer%s", sm->n_layers, sm->n_layers == 1 ? "" : "s");
    sb_printf(&sb, "%5s  %-16s %-28s %-14s %12s %12s\n", "", "total", count, "",
              thousands(raw, r, sizeof r), thousands(eff, e, sizeof e));
    if (sb.oom) return mg_free(sb.s), mg_ctx_fail(m->ctx, MG_ERR_NOMEM, "out of memory formatting the table");
    *out = sb.s;
    return MG_OK;
}
