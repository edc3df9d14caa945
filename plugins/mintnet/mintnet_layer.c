/* plugins/mintnet/mintnet_layer.c: the `mintnet.block` layer type, the
 * builder behind YAML specs such as
 *     - mintnet.block: {mask: A, latent: 16, inverse: {precision: float64}}
 *
 * Flow layer i owns the raw (unmasked) parameters
 *   flow.<i>.w1 [LC, C, 3, 3]  flow.<i>.b1 [LC]
 *   flow.<i>.w2 [LC, LC, 3, 3] flow.<i>.b2 [LC]
 *   flow.<i>.w3 [C, LC, 3, 3]  flow.<i>.b3 [C]   flow.<i>.t [C, H, W]
 * initialised as spec section 7: weights Xavier-normal with gain 0.005 over
 * the full kernel's fans (std = gain sqrt(2 / (fan_in + fan_out)), fan =
 * channels * 9), biases U(-1/sqrt(fan_in), 1/sqrt(fan_in)), t = 1. Forward
 * adds one mintnet.block node; inverse one mintnet.block_inverse node whose
 * settings come from the layer's `inverse` map, else the model's
 * "inverse.*" settings, else the op defaults. */
#include "mintnet.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define MN_INIT_GAIN 0.005

static const char *const mask_choices[] = {"A", "B", NULL};
static const char *const prec_choices[] = {"float32", "float64", NULL};
static const char *const stop_choices[] = {"residual", "fixed", NULL};

static const mg_layer_arg inverse_fields[] = {
    {.name = "tolerance", .type = MG_ARG_FLOAT, .min = 0, .max = 1e30,
     .doc = "stop a sample once max |z - f(x)| <= tolerance (default 1e-5)"},
    {.name = "max_iterations", .type = MG_ARG_INT, .min = 0, .max = 1e9,
     .doc = "iteration limit (default 200; the published model runs 100 with stop: fixed)"},
    {.name = "damping", .type = MG_ARG_FLOAT, .min = 1e-6, .max = 1e6,
     .doc = "beta in x += (z - f(x)) / (beta D(x)) (default 3.5)"},
    {.name = "precision", .type = MG_ARG_ENUM, .choices = prec_choices,
     .doc = "arithmetic of the iteration: float32 (default) or float64"},
    {.name = "stop", .type = MG_ARG_ENUM, .choices = stop_choices,
     .doc = "residual (default): stop on the tolerance; fixed: exactly max_iterations steps"},
    {.name = "adaptive", .type = MG_ARG_BOOL,
     .doc = "per-sample adaptive damping starting at `damping` (default true with stop: residual; "
            "false gives the fixed damping of the published iteration)"},
    {.name = "refine", .type = MG_ARG_BOOL,
     .doc = "float32: finish samples that stall near the tolerance in float64 (default true with "
            "stop: residual)"},
};

static const mg_layer_arg block_args[] = {
    {.name = "mask", .type = MG_ARG_ENUM, .required = 1, .choices = mask_choices,
     .doc = "A: lower-triangular Jacobian; B: upper (a MintNet layer is A then B)"},
    {.name = "latent", .type = MG_ARG_INT, .required = 1, .min = 1, .max = 1e6,
     .doc = "latent factor L: the hidden convolutions have L x channels"},
    {.name = "inverse", .type = MG_ARG_MAP, .fields = inverse_fields,
     .n_fields = (int)(sizeof inverse_fields / sizeof inverse_fields[0]),
     .doc = "per-block inverse settings, overriding the model's inverse settings"},
};

/* The block's C, L, H, W from the build. */
static mn_dims layer_dims(const mg_layer_build *b)
{
    mn_dims d = {.n = 1, .c = b->in_shape[0], .h = b->in_shape[1], .w = b->in_shape[2]};
    d.l = mg_attrs_int(b->args, "latent", 1);
    d.lc = d.l * d.c;
    d.hw = d.h * d.w;
    return d;
}

static mg_status layer_out_shape(const mg_layer_build *b, int64_t out[3])
{
    const mn_dims d = layer_dims(b);
    if (d.c < 1 || d.h < 1 || d.w < 1 || d.l < 1)
        return mg_ctx_fail(b->ctx, MG_ERR_SHAPE, "%s (mintnet.block): needs an input [C, H, W] with sizes >= 1 "
                           "and latent >= 1, got [%" PRId64 ", %" PRId64 ", %" PRId64 "], latent %" PRId64,
                           b->prefix, d.c, d.h, d.w, d.l);
    memcpy(out, b->in_shape, 3 * sizeof(int64_t));
    return MG_OK;
}

/* ---- parameters ------------------------------------------------------------------------ */

typedef struct pspec {
    const char *name;
    int rank;
    int64_t shape[4];
} pspec;

/* The seven tensors of a block, in creation order. */
static void layer_pspecs(const mn_dims *d, pspec p[7])
{
    const int64_t C = d->c, LC = d->lc;
    p[0] = (pspec){"w1", 4, {LC, C, 3, 3}};
    p[1] = (pspec){"b1", 1, {LC}};
    p[2] = (pspec){"w2", 4, {LC, LC, 3, 3}};
    p[3] = (pspec){"b2", 1, {LC}};
    p[4] = (pspec){"w3", 4, {C, LC, 3, 3}};
    p[5] = (pspec){"b3", 1, {C}};
    p[6] = (pspec){"t", 3, {C, d->h, d->w}};
}

/* Initialises a fresh parameter by its role (spec section 7). */
static void layer_init_value(mg_tensor *v, const pspec *p, mg_rng *rng)
{
    if (p->name[0] == 't') {
        mg_tensor_fill(v, 1.0);
    } else if (p->name[0] == 'w') {
        double fan_in = (double)p->shape[1] * 9, fan_out = (double)p->shape[0] * 9;
        mg_tensor_rand_normal(v, rng, 0.0, MN_INIT_GAIN * sqrt(2.0 / (fan_in + fan_out)));
    }
}

/* The bias bound 1/sqrt(fan_in) uses the fan of the weight before it. */
static void layer_init_bias(mg_tensor *v, const pspec *w, mg_rng *rng)
{
    double bound = 1.0 / sqrt((double)w->shape[1] * 9);
    mg_tensor_rand_uniform(v, rng, -bound, bound);
}

/* Checks an existing (loaded) parameter against its expected shape. */
static mg_status layer_check_existing(const mg_layer_build *b, const mg_param *p, const pspec *s)
{
    int ok = p->value->dtype == MG_F32 && p->value->rank == s->rank;
    for (int k = 0; ok && k < s->rank; k++) ok = p->value->shape[k] == s->shape[k];
    if (ok) return MG_OK;
    char want[96], got[128];
    return mg_ctx_fail(b->ctx, MG_ERR_SHAPE, "parameter '%s' exists as %s but layer %s (mintnet.block, latent %"
                       PRId64 ") needs f32%s", p->name, mg_tensor_str(p->value, got, sizeof got), b->prefix,
                       mg_attrs_int(b->args, "latent", 0), mg_shape_str(s->rank, s->shape, want, sizeof want));
}

static mg_status layer_init_params(mg_layer_build *b)
{
    const mn_dims d = layer_dims(b);
    pspec ps[7];
    layer_pspecs(&d, ps);
    for (int i = 0; i < 7; i++) {
        char name[256];
        snprintf(name, sizeof name, "%s.%s", b->prefix, ps[i].name);
        mg_param *p = mg_params_find(b->params, name);
        if (p) {
            mg_status s = layer_check_existing(b, p, &ps[i]);
            if (s != MG_OK) return s;
            continue;
        }
        mg_status s = mg_params_add(b->params, name, MG_F32, ps[i].rank, ps[i].shape, &p);
        if (s != MG_OK) return mg_ctx_fail(b->ctx, s, "%s: cannot add parameter '%s'", b->prefix, name);
        if (ps[i].name[0] == 'b')
            layer_init_bias(p->value, &ps[i - 1], b->rng);
        else
            layer_init_value(p->value, &ps[i], b->rng);
    }
    return MG_OK;
}

/* ---- nodes ------------------------------------------------------------------------------- */

/* Fills in[1..7] with the layer's parameters as graph values. */
static mg_status layer_param_values(mg_layer_build *b, mg_value *in)
{
    static const char *const names[7] = {"w1", "b1", "w2", "b2", "w3", "b3", "t"};
    for (int i = 0; i < 7; i++) {
        char name[256];
        snprintf(name, sizeof name, "%s.%s", b->prefix, names[i]);
        mg_param *p = mg_params_find(b->params, name);
        if (!p)
            return mg_ctx_fail(b->ctx, MG_ERR_NOTFOUND, "%s (mintnet.block): parameter '%s' does not exist "
                               "(init_params was not called)", b->prefix, name);
        in[1 + i] = mg_graph_param(b->g, p);
        if (!mg_value_ok(in[1 + i])) return mg_graph_status(b->g);
    }
    return MG_OK;
}

static mg_attrs *layer_block_attrs(const mg_layer_build *b)
{
    mg_attrs *a = mg_attrs_new();
    if (!a) return NULL;
    if (mg_attrs_set_str(a, "mask", mg_attrs_str(b->args, "mask", "A")) != MG_OK ||
        mg_attrs_set_int(a, "latent", mg_attrs_int(b->args, "latent", 1)) != MG_OK) {
        mg_attrs_free(a);
        return NULL;
    }
    return a;
}

/* Adds a two-output node of `op` on in[0..7]. */
static mg_status layer_add_node(mg_layer_build *b, const char *op, const char *name, mg_value *in,
                                const mg_attrs *a, mg_value *o0, mg_value *o1)
{
    mg_value out[2] = {MG_VALUE_NONE, MG_VALUE_NONE};
    mg_status s = mg_graph_node(b->g, op, name, in, MN_NUM_IN, a, out, 2, NULL);
    *o0 = out[0];
    *o1 = out[1];
    return s;
}

static mg_status layer_forward(mg_layer_build *b, mg_value x, mg_value *y, mg_value *logdet)
{
    mg_value in[MN_NUM_IN] = {x};
    *y = *logdet = MG_VALUE_NONE;
    mg_status s = layer_param_values(b, in);
    if (s != MG_OK) return s;
    mg_attrs *a = layer_block_attrs(b);
    if (!a) return mg_ctx_fail(b->ctx, MG_ERR_NOMEM, "%s: out of memory", b->prefix);
    s = layer_add_node(b, "mintnet.block", "block", in, a, y, logdet);
    mg_attrs_free(a);
    return s;
}

/* Copies inverse setting `key` from the layer's map, else the model's. */
static mg_status layer_inverse_setting(const mg_layer_build *b, mg_attrs *a, const char *key)
{
    char full[64];
    snprintf(full, sizeof full, "inverse.%s", key);
    const mg_attrs *src = mg_attrs_has(b->args, full) ? b->args : mg_attrs_has(b->model, full) ? b->model : NULL;
    if (!src) return MG_OK;
    switch (mg_attrs_kind(src, full)) {
    case MG_ATTR_STR: return mg_attrs_set_str(a, key, mg_attrs_str(src, full, ""));
    case MG_ATTR_INT: return mg_attrs_set_int(a, key, mg_attrs_int(src, full, 0));
    case MG_ATTR_FLOAT: return mg_attrs_set_float(a, key, mg_attrs_float(src, full, 0));
    default:
        return mg_ctx_fail(b->ctx, MG_ERR_ATTR, "%s: inverse setting '%s' must be a number or a string",
                           b->prefix, full);
    }
}

static mg_status layer_inverse(mg_layer_build *b, mg_value y, mg_value *x, mg_value *diag)
{
    static const char *const keys[] = {"tolerance", "max_iterations", "damping", "precision", "stop", "adaptive",
                                       "refine"};
    mg_value in[MN_NUM_IN] = {y};
    *x = *diag = MG_VALUE_NONE;
    mg_status s = layer_param_values(b, in);
    if (s != MG_OK) return s;
    mg_attrs *a = layer_block_attrs(b);
    if (!a) return mg_ctx_fail(b->ctx, MG_ERR_NOMEM, "%s: out of memory", b->prefix);
    for (size_t i = 0; s == MG_OK && i < sizeof keys / sizeof keys[0]; i++) s = layer_inverse_setting(b, a, keys[i]);
    if (s == MG_OK) s = layer_add_node(b, "mintnet.block_inverse", "inverse", in, a, x, diag);
    mg_attrs_free(a);
    return s;
}

static void layer_count(const mg_layer_build *b, int64_t *raw, int64_t *effective)
{
    const mn_dims d = layer_dims(b);
    int m = mn_mask_parse(mg_attrs_str(b->args, "mask", "A"));
    const int64_t C = d.c, LC = d.lc, free_ = 2 * LC + C + C * d.hw;
    mn_mask mask = m < 0 ? MN_MASK_A : (mn_mask)m;
    if (raw) *raw = 2 * LC * C * 9 + LC * LC * 9 + free_;
    if (effective)
        *effective = mn_mask_count(mask, C, LC, C) + mn_mask_count(mask, C, LC, LC) + mn_mask_count(mask, C, C, LC) +
                     free_;
}

const mg_layer_def mn_block_layer_def = {
    .struct_size = sizeof(mg_layer_def),
    .abi_version = MG_ABI_VERSION,
    .name = "mintnet.block",
    .summary = "MintNet block: masked 3x3 convolutions with a triangular Jacobian; iterative inverse",
    .args = block_args,
    .n_args = (int)(sizeof block_args / sizeof block_args[0]),
    .out_shape = layer_out_shape,
    .init_params = layer_init_params,
    .forward = layer_forward,
    .inverse = layer_inverse,
    .count_params = layer_count,
};
