/* mintgrad/layer.h: layer types, the builders behind YAML model specs.
 *
 * A layer type (`mintnet.block`, `squeeze`) is registered by name with an
 * argument schema. The spec loader validates a layer's YAML arguments
 * against the schema (types, ranges, choices, required keys; defaults filled
 * in) and hands them over as an mg_attrs map. The model builder then calls,
 * for every layer in order: out_shape (shape checking), init_params (create
 * and initialise its parameters), forward (add its nodes to the graph) and,
 * for sampling, inverse (add nodes computing the input from the output).
 *
 * Layers of a flow are numbered 0, 1, 2, ... after `repeat` expansion (every
 * layer, squeezes included); layer i names its parameters "flow.<i>.<name>"
 * and builds its nodes inside a graph scope "flow.<i>" of its type. */
#ifndef MINTGRAD_LAYER_H
#define MINTGRAD_LAYER_H

#include <mintgrad/graph.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum mg_arg_type {
    MG_ARG_INT = 1,  /* stored with mg_attrs_set_int */
    MG_ARG_FLOAT,    /* mg_attrs_set_float (an integer in YAML is accepted) */
    MG_ARG_BOOL,     /* mg_attrs_set_int, 0 or 1 (YAML true/false) */
    MG_ARG_STR,      /* mg_attrs_set_str */
    MG_ARG_ENUM,     /* mg_attrs_set_str, one of `choices` */
    MG_ARG_INTS,     /* mg_attrs_set_ints (a YAML sequence) */
    MG_ARG_FLOATS,   /* mg_attrs_set_floats */
    MG_ARG_MAP       /* a nested mapping described by `fields`; its entries are
                        stored flattened as "<name>.<field>" */
} mg_arg_type;

typedef struct mg_layer_arg {
    const char *name;
    mg_arg_type type;
    int required;
    double min, max;                  /* numeric range, checked when min < max */
    const char *const *choices;       /* ENUM: NULL-terminated */
    const char *dflt;                 /* default, as YAML text; NULL: none */
    const char *doc;                  /* one line, for `mintgrad ops` */
    const struct mg_layer_arg *fields;/* MAP: nested schema */
    int n_fields;
} mg_layer_arg;

/* What a layer builder is given. */
typedef struct mg_layer_build {
    size_t struct_size;
    mg_ctx *ctx;
    mg_graph *g;             /* forward/inverse: the graph to add nodes to */
    mg_params *params;       /* where the layer's parameters live */
    int index;               /* flow layer number */
    const char *prefix;      /* "flow.<index>" */
    const char *type;        /* the layer type's name */
    const mg_attrs *args;    /* validated arguments, defaults filled in */
    const mg_attrs *model;   /* model-level settings (e.g. "inverse.tolerance") */
    mg_rng *rng;             /* init_params: initialisation randomness */
    int64_t in_shape[3];     /* per-sample input (C, H, W) */
    int64_t out_shape[3];    /* per-sample output, as out_shape computed */
} mg_layer_build;

typedef struct mg_layer_def {
    size_t struct_size;      /* sizeof(mg_layer_def) as built */
    uint32_t abi_version;    /* MG_ABI_VERSION as built */
    const char *name;
    const char *summary;
    const mg_layer_arg *args;
    int n_args;
    /* Per-sample output shape from b->in_shape and b->args. A shape that does
     * not fit (a squeeze on an odd size) fails with MG_ERR_SHAPE and a message
     * via mg_ctx_fail (the loader adds the file:line:col). Required. */
    mg_status (*out_shape)(const mg_layer_build *b, int64_t out[3]);
    /* Adds and initialises the layer's parameters in b->params (names
     * "<prefix>.<name>"). If they already exist (loaded from a checkpoint),
     * checks their shapes instead. Optional (parameter-free layers). */
    mg_status (*init_params)(mg_layer_build *b);
    /* Adds nodes mapping x (N, C, H, W) to *y; *logdet gets a per-sample [N]
     * log|det J| value, or MG_VALUE_NONE when it is identically zero.
     * Required. */
    mg_status (*forward)(mg_layer_build *b, mg_value x, mg_value *y, mg_value *logdet);
    /* Adds nodes computing x from y. *diag gets a per-sample f64 [N, 3]
     * value (iterations, final max |residual|, converged 0/1) for iterative
     * inverses, MG_VALUE_NONE for exact ones. Optional (not invertible). */
    mg_status (*inverse)(mg_layer_build *b, mg_value y, mg_value *x, mg_value *diag);
    /* Parameter counts: raw (stored) and effective (entries masks keep).
     * Optional: then both are the stored counts of "<prefix>.*". */
    void (*count_params)(const mg_layer_build *b, int64_t *raw, int64_t *effective);
} mg_layer_def;

/* Registers a layer type (copied; strings and schema must outlive the
 * registry). Fails with MG_ERR_ABI, MG_ERR_EXISTS or MG_ERR_ARG. */
mg_status mg_registry_add_layer(mg_registry *r, const mg_layer_def *def);
const mg_layer_def *mg_registry_find_layer(const mg_registry *r, const char *name);
int mg_registry_num_layers(const mg_registry *r);
const mg_layer_def *mg_registry_layer_at(const mg_registry *r, int i);
const char *mg_registry_layer_origin(const mg_registry *r, const char *name);
const char *mg_registry_suggest_layer(const mg_registry *r, const char *name);

#ifdef __cplusplus
}
#endif
#endif
