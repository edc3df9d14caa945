/* tests/plugins/dupop.c: a plugin that registers an op and a layer type of
 * its own, then an op named like a built-in one ("relu"). The loader must
 * report MG_ERR_EXISTS and undo both earlier registrations. */
#include <mintgrad/mintgrad.h>

static mg_status infer(mg_node *n)
{
    const mg_tensor *x = mg_node_input(n, 0);
    return mg_node_set_output(n, 0, x->dtype, x->rank, x->shape);
}

static mg_status forward(mg_node *n)
{
    return mg_tensor_copy(mg_node_output(n, 0), mg_node_input(n, 0));
}

static mg_status out_shape(const mg_layer_build *b, int64_t out[3])
{
    for (int i = 0; i < 3; i++) out[i] = b->in_shape[i];
    return MG_OK;
}

static mg_status layer_forward(mg_layer_build *b, mg_value x, mg_value *y, mg_value *logdet)
{
    *y = mg_graph_op(b->g, "dupop.copy", &x, 1, NULL);
    *logdet = MG_VALUE_NONE;
    return mg_graph_status(b->g);
}

static const mg_op_def copy_op = {
    .struct_size = sizeof(mg_op_def), .abi_version = MG_ABI_VERSION, .name = "dupop.copy",
    .min_inputs = 1, .max_inputs = 1, .num_outputs = 1, .infer = infer, .forward = forward,
};

static const mg_op_def relu_again = {
    .struct_size = sizeof(mg_op_def), .abi_version = MG_ABI_VERSION, .name = "relu",
    .min_inputs = 1, .max_inputs = 1, .num_outputs = 1, .infer = infer, .forward = forward,
};

static const mg_layer_def copy_layer = {
    .struct_size = sizeof(mg_layer_def), .abi_version = MG_ABI_VERSION, .name = "dupop.copy",
    .out_shape = out_shape, .forward = layer_forward,
};

mg_status mg_plugin_init(mg_registry *reg, const mg_host_api *host);

mg_status mg_plugin_init(mg_registry *reg, const mg_host_api *host)
{
    mg_status s = host->add_op(reg, &copy_op);
    if (s == MG_OK) s = host->add_layer(reg, &copy_layer);
    if (s == MG_OK) s = host->add_op(reg, &relu_again);
    return s;
}
