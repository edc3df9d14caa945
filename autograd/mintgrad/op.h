/* mintgrad/op.h: the op ABI. An op is a versioned table of callbacks
 * (mg_op_def) registered by name; built-in ops and plugin ops register the
 * same way. The engine calls an op only through its table, handing it an
 * mg_node that gives access to the node's inputs, outputs, gradients,
 * attributes and private state.
 *
 * Life of a node:
 *   infer     when the node is added to a graph (and again at compile if
 *             input shapes change): validate attributes and input
 *             shapes/dtypes, declare every output with mg_node_set_output.
 *             No data is available. Must not keep state.
 *   prepare   once per compiled graph: create kernels/primitives, allocate
 *             workspaces, store them with mg_node_set_state. Optional.
 *   forward   compute outputs from inputs. Called every step.
 *   backward  given gradients of every output (never NULL: an output no loss
 *             reaches gets a zero tensor), write the gradient of each input
 *             for which mg_node_grad_input is not NULL. Always overwrite;
 *             the engine accumulates when a value feeds several nodes.
 *             NULL in the table: the op is not differentiable, and a node of
 *             it on a gradient path is a compile error.
 *   release   free whatever prepare stored. Optional.
 * Callbacks report failures through mg_node_fail, which prefixes the node's
 * name, op and input shapes to the message. */
#ifndef MINTGRAD_OP_H
#define MINTGRAD_OP_H

#include <mintgrad/tensor.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped when a struct or callback changes incompatibly. Structs only grow
 * at the end (their first member is their size), so a newer library reads an
 * older op table. 2: mg_conv2d_shape (mintgrad/ops.h) grew `layout`,
 * `pad_asym` and `pad_end`; it has no size member, so a plugin built against
 * version 1 would pass a shorter struct. */
#define MG_ABI_VERSION 2

/* ---- attributes -----------------------------------------------------------
 * A small ordered map from keys to ints, int lists, floats, float lists or
 * strings. Ops declare the keys they accept; unknown keys are an error at
 * graph-building time. */
typedef struct mg_attrs mg_attrs;

typedef enum mg_attr_kind {
    MG_ATTR_NONE = 0,
    MG_ATTR_INT,
    MG_ATTR_INTS,
    MG_ATTR_FLOAT,
    MG_ATTR_FLOATS,
    MG_ATTR_STR
} mg_attr_kind;

#define MG_ATTR_MAX_LIST 16

mg_attrs *mg_attrs_new(void);                    /* NULL on failure */
mg_attrs *mg_attrs_clone(const mg_attrs *a);     /* NULL if a is NULL or on failure */
void mg_attrs_free(mg_attrs *a);
/* Setters replace an existing key. MG_ERR_NOMEM or MG_ERR_ARG (list longer
 * than MG_ATTR_MAX_LIST) on failure. */
mg_status mg_attrs_set_int(mg_attrs *a, const char *key, int64_t v);
mg_status mg_attrs_set_ints(mg_attrs *a, const char *key, const int64_t *v, int n);
mg_status mg_attrs_set_float(mg_attrs *a, const char *key, double v);
mg_status mg_attrs_set_floats(mg_attrs *a, const char *key, const double *v, int n);
mg_status mg_attrs_set_str(mg_attrs *a, const char *key, const char *s);
/* Getters accept a NULL map. */
int mg_attrs_count(const mg_attrs *a);
const char *mg_attrs_key(const mg_attrs *a, int i);
mg_attr_kind mg_attrs_kind(const mg_attrs *a, const char *key); /* NONE if absent */
int mg_attrs_has(const mg_attrs *a, const char *key);
/* Int getter: an INT, or a FLOAT with an integral value. `dflt` if absent. */
int64_t mg_attrs_int(const mg_attrs *a, const char *key, int64_t dflt);
double mg_attrs_float(const mg_attrs *a, const char *key, double dflt); /* INT or FLOAT */
const char *mg_attrs_str(const mg_attrs *a, const char *key, const char *dflt);
/* List getters copy up to `max` values and return the list's length; a
 * scalar reads as a list of one; -1 if absent. */
int mg_attrs_ints(const mg_attrs *a, const char *key, int64_t *out, int max);
int mg_attrs_floats(const mg_attrs *a, const char *key, double *out, int max);
/* Writes "stride=[1, 1], mode=\"A\"" into buf; returns buf. */
char *mg_attrs_str_all(const mg_attrs *a, char *buf, size_t n);

/* ---- nodes (as seen by op callbacks) -------------------------------------- */
typedef struct mg_node mg_node;

int mg_node_num_inputs(const mg_node *n);
int mg_node_num_outputs(const mg_node *n);
/* Input i. In infer only dtype and shape are meaningful (data is NULL). */
const mg_tensor *mg_node_input(const mg_node *n, int i);
/* Output i (allocated by the engine after infer). */
mg_tensor *mg_node_output(const mg_node *n, int i);
/* Backward only: d(loss)/d(output i). Never NULL. */
const mg_tensor *mg_node_grad_output(const mg_node *n, int i);
/* Backward only: where to write d(loss)/d(input i); NULL when input i needs
 * no gradient. The op overwrites it. */
mg_tensor *mg_node_grad_input(const mg_node *n, int i);
/* 1 when this compile will ask for input i's gradient (usable in prepare). */
int mg_node_needs_grad(const mg_node *n, int i);
/* 1 when the node was compiled for training (backward may be called). */
int mg_node_training(const mg_node *n);
const mg_attrs *mg_node_attrs(const mg_node *n);
const char *mg_node_name(const mg_node *n);
const char *mg_node_op_name(const mg_node *n);
mg_ctx *mg_node_ctx(const mg_node *n);
void *mg_node_state(const mg_node *n);
void mg_node_set_state(mg_node *n, void *state);
/* Infer only: declares output i. For ops whose table says num_outputs = -1,
 * the number of outputs is the highest index declared plus one. */
mg_status mg_node_set_output(mg_node *n, int i, mg_dtype dt, int rank, const int64_t *shape);
/* Records a failure on the context, message prefixed with
 * "node '<name>' (<op>) inputs [f32[...], ...]: ", and returns status. */
mg_status mg_node_fail(mg_node *n, mg_status status, const char *fmt, ...) MG_PRINTF(3, 4);

/* ---- op definitions --------------------------------------------------------- */
enum {
    MG_OP_KINKS = 1u << 0,     /* piecewise derivative (relu, abs): gradcheck skips kinks */
    MG_OP_INPLACE_OK = 1u << 1 /* reserved */
};

typedef struct mg_op_def {
    size_t struct_size;      /* sizeof(mg_op_def) as the op was built */
    uint32_t abi_version;    /* MG_ABI_VERSION as the op was built */
    const char *name;        /* unique, namespaced for plugins: "mintnet.block" */
    const char *summary;     /* one line, for listings */
    int min_inputs;
    int max_inputs;          /* -1: unbounded */
    int num_outputs;         /* -1: declared by infer */
    const char *const *attr_names; /* accepted keys, NULL-terminated; NULL: none */
    uint32_t nondiff_inputs; /* bitmask: inputs that never take a gradient */
    uint32_t flags;          /* MG_OP_* */
    mg_status (*infer)(mg_node *n);
    mg_status (*prepare)(mg_node *n);  /* optional */
    mg_status (*forward)(mg_node *n);
    mg_status (*backward)(mg_node *n); /* NULL: not differentiable */
    void (*release)(mg_node *n);       /* optional */
} mg_op_def;

/* Registers an op. The definition is copied; the strings it points to must
 * outlive the registry (static strings, or a plugin kept loaded). Fails with
 * MG_ERR_ABI (struct_size/abi_version), MG_ERR_EXISTS (duplicate name) or
 * MG_ERR_ARG (missing name, infer or forward; bad arity). */
mg_status mg_registry_add_op(mg_registry *r, const mg_op_def *def);
/* NULL if absent. */
const mg_op_def *mg_registry_find_op(const mg_registry *r, const char *name);
/* Registered ops in registration order. */
int mg_registry_num_ops(const mg_registry *r);
const mg_op_def *mg_registry_op_at(const mg_registry *r, int i);
/* The plugin an op came from ("builtin" for built-in ops). */
const char *mg_registry_op_origin(const mg_registry *r, const char *name);
/* The closest registered op name to `name` (edit distance), or NULL. */
const char *mg_registry_suggest_op(const mg_registry *r, const char *name);

#ifdef __cplusplus
}
#endif
#endif
