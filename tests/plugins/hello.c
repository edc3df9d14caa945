/* hello.c: the smallest complete mintgrad flow plugin (the listing in
 * docs/plugins.md; built and loaded by tests/test_plugin.c).
 *   op    hello.double(x[N,...] f32) -> y = 2x, logdet[N] = D log 2
 *   layer hello.double: y = 2x; inverse x = y/2 (the built-in scale op) */
#include <math.h>
#include <mintgrad/mintgrad.h>

/* x is f32 [N, ...]: y has x's shape, logdet is [N]. */
static mg_status double_infer(mg_node *n)
{
    const mg_tensor *x = mg_node_input(n, 0);
    if (x->dtype != MG_F32 || x->rank < 1)
        return mg_node_fail(n, MG_ERR_SHAPE, "hello.double needs an f32 [N, ...] input");
    mg_status s = mg_node_set_output(n, 0, MG_F32, x->rank, x->shape);
    return s == MG_OK ? mg_node_set_output(n, 1, MG_F32, 1, x->shape) : s;
}

static mg_status double_forward(mg_node *n)
{
    const mg_tensor *x = mg_node_input(n, 0);
    float *y = mg_f32(mg_node_output(n, 0)), *ld = mg_f32(mg_node_output(n, 1));
    int64_t N = x->shape[0], D = N ? mg_tensor_numel(x) / N : 0;
    for (int64_t i = 0; i < N * D; i++) y[i] = 2 * mg_f32(x)[i];
    for (int64_t k = 0; k < N; k++) ld[k] = (float)(D * log(2.0));
    return MG_OK;
}

/* The log-det does not depend on x, so only dy/dx = 2 contributes. */
static mg_status double_backward(mg_node *n)
{
    mg_tensor *dx = mg_node_grad_input(n, 0);
    const float *gy = mg_f32(mg_node_grad_output(n, 0));
    for (int64_t i = 0; dx && i < mg_tensor_numel(dx); i++) mg_f32(dx)[i] = 2 * gy[i];
    return MG_OK;
}

static const mg_op_def double_op = {
    .struct_size = sizeof(mg_op_def), .abi_version = MG_ABI_VERSION,
    .name = "hello.double", .summary = "y = 2x with its log-det",
    .min_inputs = 1, .max_inputs = 1, .num_outputs = 2,
    .infer = double_infer, .forward = double_forward, .backward = double_backward,
};

static mg_status layer_out_shape(const mg_layer_build *b, int64_t out[3])
{
    for (int i = 0; i < 3; i++) out[i] = b->in_shape[i];
    return MG_OK;
}

static mg_status layer_forward(mg_layer_build *b, mg_value x, mg_value *y, mg_value *logdet)
{
    mg_value out[2];
    mg_status s = mg_graph_node(b->g, "hello.double", NULL, &x, 1, NULL, out, 2, NULL);
    *y = out[0];
    *logdet = out[1];
    return s;
}

static mg_status layer_inverse(mg_layer_build *b, mg_value y, mg_value *x, mg_value *diag)
{
    *x = mg_scale(b->g, y, 0.5, 0.0);
    *diag = MG_VALUE_NONE;
    return mg_graph_status(b->g);
}

static const mg_layer_def double_layer = {
    .struct_size = sizeof(mg_layer_def), .abi_version = MG_ABI_VERSION,
    .name = "hello.double", .summary = "doubles its input",
    .out_shape = layer_out_shape, .forward = layer_forward, .inverse = layer_inverse,
};

mg_status mg_plugin_init(mg_registry *reg, const mg_host_api *host);

mg_status mg_plugin_init(mg_registry *reg, const mg_host_api *host)
{
    if (host->struct_size < sizeof(mg_host_api) || host->abi_version != MG_ABI_VERSION)
        return MG_ERR_ABI;
    mg_status s = host->add_op(reg, &double_op);
    return s == MG_OK ? host->add_layer(reg, &double_layer) : s;
}
