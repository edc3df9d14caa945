/* autograd/spec_internal.h: what the spec loader's files share: the loader
 * state (context, file name, the libyaml document being read), located
 * error reporting, scalar conversion and schema validation of mappings. */
#ifndef MG_AUTOGRAD_SPEC_INTERNAL_H
#define MG_AUTOGRAD_SPEC_INTERNAL_H

#include "internal.h"
#include <mintgrad/plugin.h>
#include <yaml.h>

#define SPEC_MAX_DEPTH 64       /* nesting (also stops alias cycles) */
#define SPEC_MAX_LAYERS 100000  /* after repeat expansion */

/* Where a key's value was written ("train.optimizer.lr" -> line, col). */
typedef struct spec_where {
    char *key;
    int line, col;
} spec_where;

/* Storage behind the public mg_spec fields. */
struct mg_spec_priv {
    mg_ctx *ctx;
    char *filename, *text;
    char **plugins;
    mg_spec_layer *layers;
    int n_layers, cap_layers;
    mg_attrs *model_attrs;
    char *path, *train_file, *test_file, *checkpoint_dir;
    spec_where *where;
    int n_where, cap_where;
};

/* The loader's state while reading one file. */
typedef struct spec_loader {
    mg_ctx *ctx;
    mg_spec *spec;
    const char *file;          /* display name */
    yaml_document_t *doc;
    unsigned flags;
    long visits;               /* layer items expanded, against blow-ups */
} spec_loader;

#define SPEC_MAX_VISITS 1000000

/* ---- errors (spec.c) ---- */
/* Silences error messages logged by code called between begin and end
 * (plugin loading, layer builders), whose failures the caller reports
 * again with a location: the user sees each error once. Other levels pass
 * on to the saved callback. */
typedef struct spec_quiet {
    mg_log_fn fn;
    void *user;
} spec_quiet;
void spec_quiet_begin(mg_ctx *ctx, spec_quiet *q);
void spec_quiet_end(mg_ctx *ctx, spec_quiet *q);

/* Fails with "<file>:<line>:<col>: <message>" at node n (1-based). */
mg_status spec_fail(spec_loader *ld, const yaml_node_t *n, mg_status st, const char *fmt, ...)
    MG_PRINTF(4, 5);
/* Prefixes the context's current message with n's location, keeping st. */
mg_status spec_fail_prefix(spec_loader *ld, const yaml_node_t *n, mg_status st, const char *what);
/* Records where `key` (dotted) was written; MG_ERR_NOMEM on failure. */
mg_status spec_where_add(spec_loader *ld, const char *key, const yaml_node_t *n);

/* ---- YAML helpers (spec_yaml.c) ---- */
yaml_node_t *spec_node(spec_loader *ld, int id);
int spec_is_null(const yaml_node_t *n);            /* ~, null, empty plain scalar */
const char *spec_scalar(const yaml_node_t *n);     /* NULL unless a scalar */
/* "a mapping", "a list", "the string 'x'", "the number 12"... for messages. */
const char *spec_describe(const yaml_node_t *n, char *buf, size_t len);
/* The value node of `key` in mapping m (NULL if m is NULL/null or absent). */
yaml_node_t *spec_map_get(spec_loader *ld, const yaml_node_t *m, const char *key);
/* Checks m is a mapping (or null), its keys are scalars and unique. */
mg_status spec_check_map(spec_loader *ld, const yaml_node_t *m, const char *what);
/* Conversions of a node, failing at the node with "expected ..., got ...". */
mg_status spec_get_int(spec_loader *ld, const yaml_node_t *n, const char *key, int64_t *out);
mg_status spec_get_float(spec_loader *ld, const yaml_node_t *n, const char *key, double *out);
mg_status spec_get_bool(spec_loader *ld, const yaml_node_t *n, const char *key, int *out);
mg_status spec_get_str(spec_loader *ld, const yaml_node_t *n, const char *key, const char **out);
/* Unknown key `name` among `cands` (n of them): a located MG_ERR_PARSE with
 * a "did you mean" or the list of valid keys. */
mg_status spec_unknown_key(spec_loader *ld, const yaml_node_t *key, const char *where,
                           const char *const *cands, int n);
/* "a, b, c" (cut short to fit len) into buf. */
const char *spec_join_names(const char *const *names, int n, char *buf, size_t len);
/* The closest of cands to name, or NULL when nothing is close. */
const char *spec_suggest(const char *name, const char *const *cands, int n);

/* ---- schema validation (spec_args.c) ---- */
/* Validates mapping `m` (NULL or null: absent) against a schema and stores
 * the values, defaults filled in, under "<prefix><name>" in out. `owner` is
 * where a missing required key is reported; `what` names the mapping in
 * messages ("layer 3 (mintnet.block)"); `path` (dotted, may be NULL) is
 * recorded for mg_spec_where. Keys in `skip` (NULL-terminated, may be NULL)
 * are accepted and left to the caller. */
mg_status spec_validate(spec_loader *ld, const mg_layer_arg *schema, int n, const yaml_node_t *m,
                        const yaml_node_t *owner, const char *what, const char *prefix,
                        const char *path, const char *const *skip, mg_attrs *out);

/* ---- layers (spec_layers.c) ---- */
/* Expands, validates and shape-checks model.layers (node may be NULL). */
mg_status spec_load_layers(spec_loader *ld, const yaml_node_t *layers, const yaml_node_t *owner);

#endif
