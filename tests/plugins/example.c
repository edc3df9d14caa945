/* tests/plugins/example.c: a complete, minimal flow plugin, used by the
 * loader tests and shown in docs/plugins.md. It registers
 *   op    example.scale(x[N,C,H,W], s[C]) -> y[N,C,H,W], logdet[N]
 *         y = x * exp(s[c]) (attr inverse=1: y = x * exp(-s[c])),
 *         logdet[n] = +-H*W*sum_c s[c]
 *   layer example.scale: a per-channel scale with parameter "<prefix>.s" [C],
 *         initialised from U(-init, init) (arg `init`, default 0.1)
 * It includes nothing but installed mintgrad headers. Built as a libtool
 * module it exports mg_plugin_init; compiled with -DMG_PLUGIN_STATIC it only
 * defines example_plugin_init, for mg_plugin_register_static. */
#include <math.h>
#include <mintgrad/mintgrad.h>
#include <stdio.h>

/* ---- the op ------------------------------------------------------------------ */

static const char *const scale_attrs[] = {"inverse", NULL};

/* +1 for the forward map, -1 for the inverse (attr inverse=1). */
static double direction(const mg_node *n)
{
    return mg_attrs_int(mg_node_attrs(n), "inverse", 0) ? -1.0 : 1.0;
}

/* x is f32 [N,C,H,W], s is f32 [C]; outputs y like x and logdet [N]. */
static mg_status scale_infer(mg_node *n)
{
    const mg_tensor *x = mg_node_input(n, 0), *s = mg_node_input(n, 1);
    if (x->dtype != MG_F32 || s->dtype != MG_F32)
        return mg_node_fail(n, MG_ERR_DTYPE, "example.scale takes f32 inputs");
    if (x->rank != 4 || s->rank != 1 || s->shape[0] != x->shape[1])
        return mg_node_fail(n, MG_ERR_SHAPE, "need x [N,C,H,W] and s [C]");
    mg_status st = mg_node_set_output(n, 0, MG_F32, 4, x->shape);
    return st == MG_OK ? mg_node_set_output(n, 1, MG_F32, 1, x->shape) : st;
}

static mg_status scale_forward(mg_node *n)
{
    const mg_tensor *x = mg_node_input(n, 0), *s = mg_node_input(n, 1);
    float *y = mg_f32(mg_node_output(n, 0)), *ld = mg_f32(mg_node_output(n, 1));
    int64_t N = x->shape[0], C = x->shape[1], HW = x->shape[2] * x->shape[3];
    double dir = direction(n), sum = 0;
    for (int64_t c = 0; c < C; c++) sum += mg_f32(s)[c];
    for (int64_t i = 0; i < N * C; i++) {
        float e = (float)exp(dir * mg_f32(s)[i % C]);
        for (int64_t k = 0; k < HW; k++) y[i * HW + k] = mg_f32(x)[i * HW + k] * e;
    }
    for (int64_t b = 0; b < N; b++) ld[b] = (float)(dir * (double)HW * sum);
    return MG_OK;
}

/* dx = gy * e; ds[c] = dir * (sum gy * y over n,h,w + H*W * sum_n gld[n]). */
static mg_status scale_backward(mg_node *n)
{
    const mg_tensor *x = mg_node_input(n, 0), *s = mg_node_input(n, 1);
    const float *y = mg_f32(mg_node_output(n, 0)), *gy = mg_f32(mg_node_grad_output(n, 0));
    const float *gld = mg_f32(mg_node_grad_output(n, 1));
    mg_tensor *dx = mg_node_grad_input(n, 0), *ds = mg_node_grad_input(n, 1);
    int64_t N = x->shape[0], C = x->shape[1], HW = x->shape[2] * x->shape[3];
    double dir = direction(n), gsum = 0;
    for (int64_t b = 0; b < N; b++) gsum += gld[b];
    if (ds)
        for (int64_t c = 0; c < C; c++) mg_f32(ds)[c] = (float)(dir * (double)HW * gsum);
    for (int64_t i = 0; i < N * C; i++) {
        float e = (float)exp(dir * mg_f32(s)[i % C]);
        double acc = 0;
        for (int64_t k = 0; k < HW; k++) {
            if (dx) mg_f32(dx)[i * HW + k] = gy[i * HW + k] * e;
            acc += (double)gy[i * HW + k] * y[i * HW + k];
        }
        if (ds) mg_f32(ds)[i % C] += (float)(dir * acc);
    }
    return MG_OK;
}

static const mg_op_def scale_op = {
    .struct_size = sizeof(mg_op_def),
    .abi_version = MG_ABI_VERSION,
    .name = "example.scale",
    .summary = "y = x * exp(+-s[c]), per-sample log-det",
    .min_inputs = 2,
    .max_inputs = 2,
    .num_outputs = 2,
    .attr_names = scale_attrs,
    .infer = scale_infer,
    .forward = scale_forward,
    .backward = scale_backward,
};

/* ---- the layer type --------------------------------------------------------------- */

static const mg_layer_arg scale_args[] = {
    {.name = "init", .type = MG_ARG_FLOAT, .min = 0, .max = 10, .dflt = "0.1",
     .doc = "initial scales are U(-init, init)"},
};

static mg_status layer_out_shape(const mg_layer_build *b, int64_t out[3])
{
    for (int i = 0; i < 3; i++) out[i] = b->in_shape[i];
    return MG_OK;
}

/* "<prefix>.s" [C]: created and initialised, or checked if it exists. */
static mg_status layer_init_params(mg_layer_build *b)
{
    char name[256];
    snprintf(name, sizeof name, "%s.s", b->prefix);
    mg_param *p = mg_params_find(b->params, name);
    if (p)
        return p->value->rank == 1 && p->value->shape[0] == b->in_shape[0]
                   ? MG_OK
                   : mg_ctx_fail(b->ctx, MG_ERR_SHAPE, "parameter %s has the wrong shape", name);
    mg_status s = mg_params_add(b->params, name, MG_F32, 1, b->in_shape, &p);
    double r = mg_attrs_float(b->args, "init", 0.1);
    if (s == MG_OK && b->rng) mg_tensor_rand_uniform(p->value, b->rng, -r, r);
    return s;
}

/* One example.scale node; inverse selects the direction. */
static mg_status layer_node(mg_layer_build *b, mg_value in, int inverse, mg_value out[2])
{
    char name[256];
    snprintf(name, sizeof name, "%s.s", b->prefix);
    mg_param *p = mg_params_find(b->params, name);
    if (!p) return mg_ctx_fail(b->ctx, MG_ERR_NOTFOUND, "parameter %s is missing", name);
    mg_attrs *a = mg_attrs_new();
    if (!a || mg_attrs_set_int(a, "inverse", inverse) != MG_OK) {
        mg_attrs_free(a);
        return mg_ctx_fail(b->ctx, MG_ERR_NOMEM, "out of memory");
    }
    mg_value ins[2] = {in, mg_graph_param(b->g, p)};
    mg_status s = mg_graph_node(b->g, "example.scale", NULL, ins, 2, a, out, 2, NULL);
    mg_attrs_free(a);
    return s;
}

static mg_status layer_forward(mg_layer_build *b, mg_value x, mg_value *y, mg_value *logdet)
{
    mg_value out[2];
    mg_status s = layer_node(b, x, 0, out);
    *y = out[0];
    *logdet = out[1];
    return s;
}

static mg_status layer_inverse(mg_layer_build *b, mg_value y, mg_value *x, mg_value *diag)
{
    mg_value out[2];
    mg_status s = layer_node(b, y, 1, out);
    *x = out[0];
    *diag = MG_VALUE_NONE; /* exact inverse: no diagnostics */
    return s;
}

static const mg_layer_def scale_layer = {
    .struct_size = sizeof(mg_layer_def),
    .abi_version = MG_ABI_VERSION,
    .name = "example.scale",
    .summary = "per-channel scale y = x * exp(s)",
    .args = scale_args,
    .n_args = 1,
    .out_shape = layer_out_shape,
    .init_params = layer_init_params,
    .forward = layer_forward,
    .inverse = layer_inverse,
};

/* ---- entry point -------------------------------------------------------------------- */

mg_status example_plugin_init(mg_registry *reg, const mg_host_api *host);

mg_status example_plugin_init(mg_registry *reg, const mg_host_api *host)
{
    if (host->struct_size < sizeof(mg_host_api) || host->abi_version != MG_ABI_VERSION)
        return MG_ERR_ABI; /* an older host: its table cannot be trusted, not even fail() */
    mg_status s = host->add_op(reg, &scale_op);
    if (s == MG_OK) s = host->add_layer(reg, &scale_layer);
    return s;
}

#ifndef MG_PLUGIN_STATIC
mg_status mg_plugin_init(mg_registry *reg, const mg_host_api *host);

mg_status mg_plugin_init(mg_registry *reg, const mg_host_api *host)
{
    return example_plugin_init(reg, host);
}
#endif
