/* tests/plugins/badabi.c: a plugin whose second op table claims another
 * ABI version. Its first op registers fine; the loader must report
 * MG_ERR_ABI, remove the first op again and unload the library. */
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

static const mg_op_def ok_op = {
    .struct_size = sizeof(mg_op_def), .abi_version = MG_ABI_VERSION, .name = "badabi.ok",
    .min_inputs = 1, .max_inputs = 1, .num_outputs = 1, .infer = infer, .forward = forward,
};

static const mg_op_def future_op = {
    .struct_size = sizeof(mg_op_def), .abi_version = MG_ABI_VERSION + 1, .name = "badabi.future",
    .min_inputs = 1, .max_inputs = 1, .num_outputs = 1, .infer = infer, .forward = forward,
};

mg_status mg_plugin_init(mg_registry *reg, const mg_host_api *host);

mg_status mg_plugin_init(mg_registry *reg, const mg_host_api *host)
{
    mg_status s = host->add_op(reg, &ok_op);
    if (s == MG_OK) s = host->add_op(reg, &future_op);
    return s;
}
