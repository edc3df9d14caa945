/* mintgrad/graph.h: parameters, computation graphs, and compiled graphs.
 *
 * Build once, run many: a graph (mg_graph) is a list of nodes built once, from
 * C calls or a YAML spec; shapes are inferred and checked as nodes are added.
 * Compiling it (mg_graph_compile) makes an mg_exec: execution order, pruning,
 * buffers and op kernels (oneDNN primitives) created once. Each step then
 * fills inputs and calls mg_exec_forward, mg_exec_backward and an optimizer
 * step. One graph may be compiled several times (training, evaluation).
 *
 * Values are handles (mg_value) to a graph input, a parameter, a constant or
 * one output of a node. Graph-building calls never crash on bad input: the
 * first failure is kept on the graph ("sticky"), later building calls do
 * nothing and return an invalid value, and mg_graph_status / compile report
 * it. */
#ifndef MINTGRAD_GRAPH_H
#define MINTGRAD_GRAPH_H

#include <mintgrad/op.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- parameters --------------------------------------------------------------
 * Long-lived named tensors with gradients, separate from any graph. Gradients
 * accumulate across backward calls until mg_params_zero_grad. */
typedef struct mg_param {
    char *name;          /* owned */
    mg_tensor *value;    /* owned, contiguous */
    mg_tensor *grad;     /* owned, same shape; valid after backward */
    int requires_grad;   /* default 1 */
    int grad_is_zero;    /* engine bookkeeping: next backward sets, not adds */
    const mg_tensor *mask; /* optional, borrowed: effective-parameter counting */
} mg_param;

typedef struct mg_params mg_params;

mg_status mg_params_new(mg_params **out);
void mg_params_free(mg_params *ps);        /* frees every parameter */
/* Adds a zero-filled parameter. MG_ERR_EXISTS if the name is taken. The
 * returned pointer stays valid until mg_params_free. */
mg_status mg_params_add(mg_params *ps, const char *name, mg_dtype dt, int rank,
                        const int64_t *shape, mg_param **out);
mg_param *mg_params_find(const mg_params *ps, const char *name); /* NULL if absent */
int mg_params_count(const mg_params *ps);
mg_param *mg_params_at(const mg_params *ps, int i);
int64_t mg_params_numel(const mg_params *ps);      /* total element count */
void mg_params_zero_grad(mg_params *ps);
/* Scales all gradients so their global L2 norm is at most max_norm; returns
 * the norm before clipping. */
double mg_params_clip_grad_norm(mg_params *ps, double max_norm);

/* ---- graphs ----------------------------------------------------------------- */
typedef struct mg_graph mg_graph;
typedef struct mg_value { int32_t id; } mg_value;
#define MG_VALUE_NONE ((mg_value){-1})
static inline int mg_value_ok(mg_value v) { return v.id >= 0; }

typedef enum mg_value_kind {
    MG_VALUE_INPUT = 1,
    MG_VALUE_PARAM,
    MG_VALUE_CONST,
    MG_VALUE_NODE
} mg_value_kind;

/* A new empty graph on ctx. */
mg_status mg_graph_new(mg_ctx *ctx, mg_graph **out);
/* Frees the graph (not its parameters, which belong to their mg_params). Any
 * mg_exec compiled from it must be freed first. */
void mg_graph_free(mg_graph *g);
mg_ctx *mg_graph_ctx(const mg_graph *g);
/* MG_OK, or the first building failure (message on the context). */
mg_status mg_graph_status(const mg_graph *g);
/* Records a building failure: the message goes to the context, and the
 * graph keeps the status if it is its first failure (so compile reports it).
 * For graph constructors and layer builders; returns status. */
mg_status mg_graph_fail(mg_graph *g, mg_status status, const char *fmt, ...) MG_PRINTF(3, 4);

/* A placeholder filled before each forward. Names must be unique. */
mg_value mg_graph_input(mg_graph *g, const char *name, mg_dtype dt, int rank, const int64_t *shape);
/* A parameter (borrowed: must outlive the graph and its execs). */
mg_value mg_graph_param(mg_graph *g, mg_param *p);
/* A constant; the tensor is copied. */
mg_value mg_graph_const(mg_graph *g, const char *name, const mg_tensor *t);
/* A scalar f32 constant. */
mg_value mg_graph_scalar(mg_graph *g, double v);

/* Adds a node running `op` on n_in inputs. `name` may be NULL (then
 * "<op>_<k>"); `attrs` may be NULL and is copied. Up to max_out output
 * handles are written to out; *n_out (if not NULL) gets the output count.
 * Returns the status; on failure the graph keeps it (sticky). */
mg_status mg_graph_node(mg_graph *g, const char *op, const char *name,
                        const mg_value *in, int n_in, const mg_attrs *attrs,
                        mg_value *out, int max_out, int *n_out);
/* Single-output convenience: the node's first output, or MG_VALUE_NONE. */
mg_value mg_graph_op(mg_graph *g, const char *op, const mg_value *in, int n_in,
                     const mg_attrs *attrs);

/* Layer scopes: nodes and parameters added between push and pop are tagged
 * with the scope's name and type (used by DOT export to draw clusters, and
 * by error messages). Scopes nest; names join with '.'. */
mg_status mg_graph_push_scope(mg_graph *g, const char *name, const char *type);
void mg_graph_pop_scope(mg_graph *g);

/* ---- inspection ----------------------------------------------------------- */
int mg_graph_num_values(const mg_graph *g);
int mg_graph_num_nodes(const mg_graph *g);
mg_value_kind mg_graph_value_kind(const mg_graph *g, mg_value v);
const char *mg_graph_value_name(const mg_graph *g, mg_value v);
/* dtype/rank/shape of a value as inferred (data NULL). NULL if invalid. */
const mg_tensor *mg_graph_value_desc(const mg_graph *g, mg_value v);
mg_param *mg_graph_value_param(const mg_graph *g, mg_value v);   /* NULL unless PARAM */
mg_value mg_graph_find_value(const mg_graph *g, const char *name); /* NONE if absent */
/* Node k (0 <= k < num_nodes), in insertion order (a valid topological order). */
const char *mg_graph_node_name(const mg_graph *g, int k);
const mg_op_def *mg_graph_node_op(const mg_graph *g, int k);
const mg_attrs *mg_graph_node_attrs(const mg_graph *g, int k);
int mg_graph_node_num_inputs(const mg_graph *g, int k);
mg_value mg_graph_node_input(const mg_graph *g, int k, int i);
int mg_graph_node_num_outputs(const mg_graph *g, int k);
mg_value mg_graph_node_output(const mg_graph *g, int k, int i);
/* The scope path ("flow.3") and type ("mintnet.block") a node or value was
 * created under; NULL when outside any scope. */
const char *mg_graph_node_scope(const mg_graph *g, int k);
const char *mg_graph_node_scope_type(const mg_graph *g, int k);
const char *mg_graph_value_scope(const mg_graph *g, mg_value v);
/* The node producing v (-1 for inputs, params, consts). */
int mg_graph_value_node(const mg_graph *g, mg_value v);

/* ---- compiling -------------------------------------------------------------- */
typedef struct mg_compile_opts {
    size_t struct_size;        /* sizeof(mg_compile_opts) */
    int training;              /* 1: backward is available */
    /* Values whose gradient seeds backward. Each gets a seed tensor of its own
     * shape filled with ones (so a scalar loss gets d/dloss = 1); the caller
     * may change it through mg_exec_seed. Required when training. */
    const mg_value *losses;
    int n_losses;
    /* Values the caller wants after forward. With losses, they decide which
     * nodes run; with none of either, every node runs. */
    const mg_value *outputs;
    int n_outputs;
    /* Inputs (or constants) whose gradient the caller wants, besides the
     * parameters that require one. */
    const mg_value *grad_values;
    int n_grad_values;
    /* Override input shapes (e.g. another batch size): shapes are
     * re-inferred through the graph. NULL: as declared. */
    const mg_value *shape_inputs;
    const mg_tensor *const *shapes; /* only dtype/rank/shape are read */
    int n_shapes;
} mg_compile_opts;

typedef struct mg_exec mg_exec;

/* Compiles g. Fails with MG_ERR_NOGRAD (an op without backward on a gradient
 * path: message names node and op), MG_ERR_SHAPE, MG_ERR_NOMEM, or whatever
 * an op's prepare returns. *out is NULL on failure. */
mg_status mg_graph_compile(mg_graph *g, const mg_compile_opts *opts, mg_exec **out);
void mg_exec_free(mg_exec *e);
mg_graph *mg_exec_graph(const mg_exec *e);

/* The buffer of value v in this exec: fill inputs before forward; read
 * outputs after. Parameters give the parameter's tensor. NULL if v was pruned
 * or is invalid. Owned by the exec (or the parameter). */
mg_tensor *mg_exec_tensor(mg_exec *e, mg_value v);
/* Looks an input up by name and copies `src` into it (dtype converted). */
mg_status mg_exec_set_input(mg_exec *e, const char *name, const mg_tensor *src);
/* The seed gradient of a loss value (ones by default). NULL if v is not one
 * of the losses. */
mg_tensor *mg_exec_seed(mg_exec *e, mg_value v);
/* After backward: d(sum of seeded losses)/dv for grad_values, parameters
 * (their accumulated grad) and intermediate values on the gradient path.
 * NULL where no gradient was computed. */
mg_tensor *mg_exec_grad(mg_exec *e, mg_value v);

mg_status mg_exec_forward(mg_exec *e);
/* Reverse walk; needs a training compile and a forward since the last
 * input change. Parameter gradients accumulate (see mg_params_zero_grad). */
mg_status mg_exec_backward(mg_exec *e);

/* Number of nodes that run in forward / backward (after pruning). */
int mg_exec_num_forward_nodes(const mg_exec *e);
int mg_exec_num_backward_nodes(const mg_exec *e);
/* 1 if graph node k runs in forward / has its backward called. */
int mg_exec_node_runs(const mg_exec *e, int k);
int mg_exec_node_backward_runs(const mg_exec *e, int k);
/* Bytes of activation and gradient buffers this exec allocated. */
size_t mg_exec_bytes(const mg_exec *e);

#ifdef __cplusplus
}
#endif
#endif
