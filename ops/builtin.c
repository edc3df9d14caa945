/* ops/builtin.c: registers every built-in op family, through the same
 * registry calls a plugin uses. */
#include "internal.h"

mg_status mg_ops_register_builtin(mg_registry *r)
{
    mg_status (*const fam[])(mg_registry *) = {
        mg_ops_register_conv,  mg_ops_register_matmul, mg_ops_register_unary,
        mg_ops_register_binary, mg_ops_register_reduce, mg_ops_register_shape,
        mg_ops_register_loss,  mg_ops_register_flow,   mg_ops_register_layers,
    };
    for (size_t i = 0; i < sizeof fam / sizeof fam[0]; i++) {
        mg_status s = fam[i](r);
        if (s != MG_OK) return s;
    }
    return MG_OK;
}

mg_status mg_ops_register_table(mg_registry *r, const mg_op_def *defs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        mg_status s = mg_registry_add_op(r, &defs[i]);
        if (s != MG_OK) return s;
    }
    return MG_OK;
}

mg_value mg_ops_add1(mg_graph *g, const char *op, const mg_value *in, int n_in, mg_attrs *attrs)
{
    mg_value out = MG_VALUE_NONE;
    mg_graph_node(g, op, NULL, in, n_in, attrs, &out, 1, NULL);
    mg_attrs_free(attrs);
    return out;
}
