/* autograd/internal.h: engine-private structures shared by the autograd
 * files: the context, registry, attribute map, graph and node layouts. */
#ifndef MG_AUTOGRAD_INTERNAL_H
#define MG_AUTOGRAD_INTERNAL_H

#include <mintgrad/mintgrad.h>

#define MG_ERR_LEN 2048
#define MG_MAX_OUTPUTS 64

struct mg_ctx {
    mg_registry *reg;
    mg_log_fn log;
    void *log_user;
    mg_log_level level;
    char err[MG_ERR_LEN];
    void *plugins;       /* loader-owned list, see plugin.c */
    void (*plugins_free)(mg_ctx *ctx);
};

typedef struct mg_reg_op {
    mg_op_def def;       /* copied; unknown tail of a newer table zeroed */
    char *origin;        /* "builtin" or the plugin's name */
} mg_reg_op;

struct mg_registry {
    mg_ctx *ctx;
    mg_reg_op **ops;
    int n_ops, cap_ops;
    char *origin;        /* origin stamped on ops registered now */
    void *layers;        /* layer registry, see layer.c */
    void (*layers_free)(mg_registry *r);
};

typedef struct mg_attr {
    char *key;
    mg_attr_kind kind;
    int n;
    int64_t i[MG_ATTR_MAX_LIST];
    double f[MG_ATTR_MAX_LIST];
    char *s;
} mg_attr;

struct mg_attrs {
    mg_attr *v;
    int n, cap;
};

/* The view an op callback gets of a node, at infer time (graph) or in a
 * compiled exec. */
struct mg_node {
    mg_ctx *ctx;
    const mg_op_def *op;
    const char *name;
    const mg_attrs *attrs;
    int n_in, n_out;
    const mg_tensor **in;       /* [n_in] */
    mg_tensor **out;            /* [n_out] */
    const mg_tensor **gout;     /* [n_out], backward */
    mg_tensor **gin;            /* [n_in], backward; NULL entries: no grad */
    unsigned char *needs_grad;  /* [n_in] */
    int training;
    int inferring;              /* 1 inside infer: set_output allowed */
    int n_declared;             /* infer: highest declared output + 1 */
    void *state;
};

typedef struct mg_gvalue {
    mg_value_kind kind;
    char *name;
    mg_tensor desc;             /* data NULL, name NULL */
    int node;                   /* producing node, -1 otherwise */
    int out_index;
    mg_param *param;            /* PARAM */
    mg_tensor *cst;             /* CONST, owned */
    char *scope;                /* owned or NULL */
} mg_gvalue;

typedef struct mg_gnode {
    const mg_op_def *op;
    char *name;
    mg_attrs *attrs;            /* owned, may be NULL */
    int *in, n_in;
    int *out, n_out;
    char *scope, *scope_type;   /* owned or NULL */
} mg_gnode;

struct mg_graph {
    mg_ctx *ctx;
    mg_gvalue *vals;
    int n_vals, cap_vals;
    mg_gnode *nodes;
    int n_nodes, cap_nodes;
    mg_status status;           /* first building failure */
    char **scope_names, **scope_types;
    int scope_depth, scope_cap;
    char *scope_path;           /* joined names, NULL at depth 0 */
    int auto_id;
};

/* ---- helpers shared by engine files ---- */
/* Grows *arr (element size esz) to hold at least need elements. */
mg_status mg_grow(void **arr, int *cap, int need, size_t esz);
/* Levenshtein distance, for "did you mean" hints. */
int mg_edit_distance(const char *a, const char *b);
/* The "did you mean" hint among n names (name_at(r, i)): the closest one if
 * within distance 2 or a third of name's length, else NULL. */
const char *mg_suggest_name(const mg_registry *r, int n, const char *(*name_at)(const mg_registry *, int),
                            const char *name);
/* Frees the registry with its ops and layer types (ctx teardown). */
void mg_registry_free(mg_registry *r);
/* Runs an op's infer on described inputs. outs must hold MG_MAX_OUTPUTS
 * tensors; *n_out gets the output count. Errors go to ctx. */
mg_status mg_op_infer(mg_ctx *ctx, const mg_op_def *op, const char *name, const mg_attrs *attrs,
                      const mg_tensor **in, int n_in, mg_tensor *outs, int *n_out);
/* a[i] += b[i] over n elements of dtype dt (f32/f64), OpenMP for large n. */
void mg_add_inplace(mg_dtype dt, void *a, const void *b, int64_t n);
/* Plugin rollback: remove every op (registry.c) or layer type (layer.c)
 * whose origin is `origin`, keeping the others in order. */
void mg_registry_remove_ops(mg_registry *r, const char *origin);
void mg_registry_remove_layers(mg_registry *r, const char *origin);

#endif
