/* ops/layers.c: the built-in layer types, registered through the same
 * registry call a plugin uses. For now one: `squeeze`, space-to-depth by a
 * factor f (spec §5): a per-sample (C, H, W) becomes (f*f*C, H/f, W/f),
 * exactly invertible, log-det 0, no parameters. */
#include "internal.h"

#include <mintgrad/layer.h>
#include <stdio.h>

#define SQUEEZE_MIN 2
#define SQUEEZE_MAX 8

static const mg_layer_arg squeeze_args[] = {
    {.name = "factor", .type = MG_ARG_INT, .min = SQUEEZE_MIN, .max = SQUEEZE_MAX, .dflt = "2",
     .doc = "block size f: (C, H, W) -> (f*f*C, H/f, W/f)"},
};

/* The validated factor of b (default 2); MG_ERR_ARG outside 2..8. */
static mg_status squeeze_factor(const mg_layer_build *b, int *f)
{
    int64_t v = mg_attrs_int(b->args, "factor", 2);
    if (v < SQUEEZE_MIN || v > SQUEEZE_MAX)
        return mg_ctx_fail(b->ctx, MG_ERR_ARG, "squeeze factor must be %d..%d, got %lld", SQUEEZE_MIN,
                           SQUEEZE_MAX, (long long)v);
    *f = (int)v;
    return MG_OK;
}

/* out = (f*f*C, H/f, W/f); H and W must be multiples of f. */
static mg_status squeeze_out_shape(const mg_layer_build *b, int64_t out[3])
{
    int f = 2;
    mg_status s = squeeze_factor(b, &f);
    if (s != MG_OK) return s;
    const int64_t *in = b->in_shape;
    if (in[1] % f || in[2] % f) {
        char need[64];
        if (f == 2)
            snprintf(need, sizeof need, "even height and width");
        else
            snprintf(need, sizeof need, "height and width divisible by %d", f);
        return mg_ctx_fail(b->ctx, MG_ERR_SHAPE, "squeeze factor %d needs %s, got %lldx%lldx%lld", f, need,
                           (long long)in[0], (long long)in[1], (long long)in[2]);
    }
    out[0] = in[0] * f * f;
    out[1] = in[1] / f;
    out[2] = in[2] / f;
    return MG_OK;
}

/* MG_OK if building v succeeded, else the graph's sticky failure. */
static mg_status built(const mg_layer_build *b, mg_value v)
{
    if (mg_value_ok(v)) return MG_OK;
    mg_status s = mg_graph_status(b->g);
    return s != MG_OK ? s : mg_ctx_fail(b->ctx, MG_ERR_STATE, "squeeze: no graph node was added");
}

/* y = space_to_depth(x); the log-det is identically zero. */
static mg_status squeeze_forward(mg_layer_build *b, mg_value x, mg_value *y, mg_value *logdet)
{
    int f = 2;
    mg_status s = squeeze_factor(b, &f);
    if (s != MG_OK) return s;
    *logdet = MG_VALUE_NONE;
    *y = b->g ? mg_space_to_depth(b->g, x, f) : MG_VALUE_NONE;
    return built(b, *y);
}

/* x = depth_to_space(y), exact: no diagnostics. */
static mg_status squeeze_inverse(mg_layer_build *b, mg_value y, mg_value *x, mg_value *diag)
{
    int f = 2;
    mg_status s = squeeze_factor(b, &f);
    if (s != MG_OK) return s;
    *diag = MG_VALUE_NONE;
    *x = b->g ? mg_depth_to_space(b->g, y, f) : MG_VALUE_NONE;
    return built(b, *x);
}

static const mg_layer_def squeeze_def = {
    .struct_size = sizeof(mg_layer_def),
    .abi_version = MG_ABI_VERSION,
    .name = "squeeze",
    .summary = "space-to-depth by `factor`: (C, H, W) -> (f*f*C, H/f, W/f); log-det 0",
    .args = squeeze_args,
    .n_args = (int)(sizeof squeeze_args / sizeof squeeze_args[0]),
    .out_shape = squeeze_out_shape,
    .forward = squeeze_forward,
    .inverse = squeeze_inverse,
};

mg_status mg_ops_register_layers(mg_registry *r)
{
    return mg_registry_add_layer(r, &squeeze_def);
}
