/* tests/plugins/failinit.c: a plugin whose init registers an op and a
 * layer type, then fails (as one would when a resource it needs is
 * missing). The loader must return MG_ERR_PLUGIN with the plugin's message
 * and leave the registry as it was. */
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
    *y = x;
    *logdet = MG_VALUE_NONE;
    return MG_OK;
}

static const mg_op_def copy_op = {
    .struct_size = sizeof(mg_op_def), .abi_version = MG_ABI_VERSION, .name = "failinit.copy",
    .min_inputs = 1, .max_inputs = 1, .num_outputs = 1, .infer = infer, .forward = forward,
};

static const mg_layer_def id_layer = {
    .struct_size = sizeof(mg_layer_def), .abi_version = MG_ABI_VERSION, .name = "failinit.identity",
    .out_shape = out_shape, .forward = layer_forward,
};

mg_status mg_plugin_init(mg_registry *reg, const mg_host_api *host);

mg_status mg_plugin_init(mg_registry *reg, const mg_host_api *host)
{
    mg_status s = host->add_op(reg, &copy_op);
    if (s == MG_OK) s = host->add_layer(reg, &id_layer);
    if (s != MG_OK) return s;
    return host->fail(host->ctx, MG_ERR_IO, "failinit: cannot open its lookup table /nonexistent/table.bin");
}
