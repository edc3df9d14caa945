/* tests/specs/stub_layers.h: test-only layer types, so the spec loader and
 * the model builder are tested without the MintNet plugin.
 *
 *   mintnet.block  the real type's argument schema (mask: A|B, latent: L),
 *                  an elementwise flow: y = x * t with one trainable scale
 *                  t (C, H, W) per layer ("flow.<i>.t"), log-det
 *                  sum log|t| per sample, inverse y / t.
 *   test.args      every argument type of the schema (int, float, bool,
 *                  str, enum, ints, floats, a nested map) with defaults;
 *                  the identity.
 *   test.fail      a forward builder that always fails.
 *   test.noinv     the identity without an inverse builder. */
#ifndef MG_TEST_STUB_LAYERS_H
#define MG_TEST_STUB_LAYERS_H

#include <mintgrad/mintgrad.h>
#include <mintgrad/layer.h>
#include <stdio.h>
#include <string.h>

static const char *const stub_masks[] = {"A", "B", NULL};
static const mg_layer_arg stub_block_args[] = {
    {.name = "mask", .type = MG_ARG_ENUM, .required = 1, .choices = stub_masks, .doc = "A or B"},
    {.name = "latent", .type = MG_ARG_INT, .required = 1, .min = 1, .max = 4096, .doc = "L"},
};

static mg_status stub_same_shape(const mg_layer_build *b, int64_t out[3])
{
    memcpy(out, b->in_shape, 3 * sizeof out[0]);
    return MG_OK;
}

/* t = 1 + 0.1 N(0, 1): far from zero, so log|t| and 1/t are tame. */
static mg_status stub_block_init(mg_layer_build *b)
{
    char name[64];
    snprintf(name, sizeof name, "%s.t", b->prefix);
    mg_param *p = mg_params_find(b->params, name);
    if (p) return p->value->rank == 3 ? MG_OK : mg_ctx_fail(b->ctx, MG_ERR_SHAPE, "%s: bad shape", name);
    mg_status st = mg_params_add(b->params, name, MG_F32, 3, b->in_shape, &p);
    if (st) return st;
    mg_tensor_rand_normal(p->value, b->rng, 1.0, 0.1);
    return MG_OK;
}

static mg_param *stub_t(const mg_layer_build *b)
{
    char name[64];
    snprintf(name, sizeof name, "%s.t", b->prefix);
    mg_param *p = mg_params_find(b->params, name);
    if (!p) mg_ctx_fail(b->ctx, MG_ERR_NOTFOUND, "parameter %s missing", name);
    return p;
}

/* y = x * t; logdet[n] = sum log|t| (built from x so that it is [N]). */
static mg_status stub_block_forward(mg_layer_build *b, mg_value x, mg_value *y, mg_value *logdet)
{
    mg_param *p = stub_t(b);
    if (!p) return MG_ERR_NOTFOUND;
    mg_value t = mg_graph_param(b->g, p);
    *y = mg_mul(b->g, x, t);
    mg_value lt = mg_log(b->g, mg_abs(b->g, t));
    mg_value per = mg_add(b->g, mg_scale(b->g, x, 0.0, 0.0), lt);
    int axes[3] = {1, 2, 3};
    *logdet = mg_sum(b->g, per, axes, 3, 0);
    return mg_graph_status(b->g);
}

static mg_status stub_block_inverse(mg_layer_build *b, mg_value y, mg_value *x, mg_value *diag)
{
    mg_param *p = stub_t(b);
    if (!p) return MG_ERR_NOTFOUND;
    *x = mg_div(b->g, y, mg_graph_param(b->g, p));
    *diag = MG_VALUE_NONE;
    return mg_graph_status(b->g);
}

static const mg_layer_def stub_block_def = {
    .struct_size = sizeof(mg_layer_def),
    .abi_version = MG_ABI_VERSION,
    .name = "mintnet.block",
    .summary = "test stub: y = x * t",
    .args = stub_block_args,
    .n_args = 2,
    .out_shape = stub_same_shape,
    .init_params = stub_block_init,
    .forward = stub_block_forward,
    .inverse = stub_block_inverse,
};

static const char *const stub_modes[] = {"fast", "exact", NULL};
static const mg_layer_arg stub_sub_fields[] = {
    {.name = "k", .type = MG_ARG_INT, .min = 0, .max = 9, .dflt = "3"},
    {.name = "name", .type = MG_ARG_STR, .dflt = "sub"},
};
static const mg_layer_arg stub_all_args[] = {
    {.name = "count", .type = MG_ARG_INT, .min = -5, .max = 5, .dflt = "1"},
    {.name = "rate", .type = MG_ARG_FLOAT, .min = 0, .max = 1, .dflt = "0.5"},
    {.name = "flag", .type = MG_ARG_BOOL, .dflt = "false"},
    {.name = "label", .type = MG_ARG_STR},
    {.name = "mode", .type = MG_ARG_ENUM, .choices = stub_modes, .dflt = "fast"},
    {.name = "sizes", .type = MG_ARG_INTS, .min = 1, .max = 100, .dflt = "[2, 3]"},
    {.name = "weights", .type = MG_ARG_FLOATS, .dflt = "[0.25]"},
    {.name = "sub", .type = MG_ARG_MAP, .fields = stub_sub_fields, .n_fields = 2},
};

static mg_status stub_identity(mg_layer_build *b, mg_value x, mg_value *y, mg_value *logdet)
{
    *y = x;
    *logdet = MG_VALUE_NONE;
    return MG_OK;
}

static mg_status stub_identity_inv(mg_layer_build *b, mg_value y, mg_value *x, mg_value *diag)
{
    *x = y;
    *diag = MG_VALUE_NONE;
    return MG_OK;
}

static const mg_layer_def stub_all_def = {
    .struct_size = sizeof(mg_layer_def),
    .abi_version = MG_ABI_VERSION,
    .name = "test.args",
    .summary = "test stub: every argument type",
    .args = stub_all_args,
    .n_args = 8,
    .out_shape = stub_same_shape,
    .forward = stub_identity,
    .inverse = stub_identity_inv,
};

static mg_status stub_fail_forward(mg_layer_build *b, mg_value x, mg_value *y, mg_value *logdet)
{
    return mg_ctx_fail(b->ctx, MG_ERR_NUMERIC, "stub forward refuses input of %lld channels",
                       (long long)b->in_shape[0]);
}

static const mg_layer_def stub_fail_def = {
    .struct_size = sizeof(mg_layer_def),
    .abi_version = MG_ABI_VERSION,
    .name = "test.fail",
    .out_shape = stub_same_shape,
    .forward = stub_fail_forward,
};

static const mg_layer_def stub_noinv_def = {
    .struct_size = sizeof(mg_layer_def),
    .abi_version = MG_ABI_VERSION,
    .name = "test.noinv",
    .out_shape = stub_same_shape,
    .forward = stub_identity,
};

/* Registers the stubs on ctx (mintnet.block only if no real one is there). */
static inline mg_status stub_register(mg_ctx *ctx)
{
    mg_registry *r = mg_ctx_registry(ctx);
    mg_status st = MG_OK;
    if (!mg_registry_find_layer(r, "mintnet.block")) st = mg_registry_add_layer(r, &stub_block_def);
    if (!st) st = mg_registry_add_layer(r, &stub_all_def);
    if (!st) st = mg_registry_add_layer(r, &stub_fail_def);
    if (!st) st = mg_registry_add_layer(r, &stub_noinv_def);
    return st;
}

#endif
