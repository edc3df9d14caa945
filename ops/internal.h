/* ops/internal.h: what the built-in op files share and nothing else needs:
 * each family's registration function, and small helpers for op tables. */
#ifndef MG_OPS_INTERNAL_H
#define MG_OPS_INTERNAL_H

#include <mintgrad/mintgrad.h>

/* Each registers its family's ops; called in this order by
 * mg_ops_register_builtin. */
mg_status mg_ops_register_conv(mg_registry *r);    /* conv.c */
mg_status mg_ops_register_matmul(mg_registry *r);  /* matmul.c: matmul, linear */
mg_status mg_ops_register_unary(mg_registry *r);   /* unary.c */
mg_status mg_ops_register_binary(mg_registry *r);  /* binary.c */
mg_status mg_ops_register_reduce(mg_registry *r);  /* reduce.c: sum, mean */
mg_status mg_ops_register_shape(mg_registry *r);   /* shape.c */
mg_status mg_ops_register_loss(mg_registry *r);    /* loss.c: normal_logpdf, mse */
mg_status mg_ops_register_flow(mg_registry *r);    /* flow.c: logit, logit_inverse */
mg_status mg_ops_register_layers(mg_registry *r);  /* layers.c: layer types (squeeze) */

/* Starts an op table with the size/version header filled in. */
#define MG_OP_HEADER .struct_size = sizeof(mg_op_def), .abi_version = MG_ABI_VERSION

/* Registers the n ops of table defs in order; stops at the first failure. */
mg_status mg_ops_register_table(mg_registry *r, const mg_op_def *defs, size_t n);
#define MG_OPS_REGISTER_TABLE(r, defs) mg_ops_register_table(r, defs, sizeof defs / sizeof defs[0])

/* Adds a single-output node; takes ownership of attrs (NULL allowed) and
 * frees it. Returns the output, or MG_VALUE_NONE (error kept on the graph). */
mg_value mg_ops_add1(mg_graph *g, const char *op, const mg_value *in, int n_in, mg_attrs *attrs);

#endif
