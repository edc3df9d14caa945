/* autograd/layer.c: the layer-type registry (layer.h). Layer types are the
 * builders behind YAML model specs; built-in ones and plugin ones register
 * the same way and, like ops, remember their origin ("builtin" or the
 * plugin's name). The table lives in r->layers and is freed through
 * r->layers_free when the registry goes. */
#include "internal.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct reg_layer {
    mg_layer_def def;    /* copied; unknown tail of a newer table zeroed */
    char *origin;        /* "builtin" or the plugin's name */
} reg_layer;

typedef struct layer_table {
    reg_layer **v;
    int n, cap;
} layer_table;

static void layer_free(reg_layer *l)
{
    mg_free(l->origin);
    mg_free(l);
}

static void table_free(mg_registry *r)
{
    layer_table *t = r->layers;
    for (int i = 0; t && i < t->n; i++) layer_free(t->v[i]);
    if (t) mg_free(t->v);
    mg_free(t);
    r->layers = NULL;
}

/* The registry's table, created on first use; NULL when out of memory. */
static layer_table *table(mg_registry *r)
{
    if (!r->layers) {
        r->layers = mg_calloc(1, sizeof(layer_table));
        if (r->layers) r->layers_free = table_free;
    }
    return r->layers;
}

static reg_layer *find(const mg_registry *r, const char *name)
{
    const layer_table *t = r ? r->layers : NULL;
    for (int i = 0; t && name && i < t->n; i++)
        if (strcmp(t->v[i]->def.name, name) == 0) return t->v[i];
    return NULL;
}

/* ---- schema checks -------------------------------------------------------- */

/* 1 if `s` parses completely as a number (strtod), value in *v. */
static int parse_number(const char *s, double *v)
{
    char *end;
    errno = 0;
    *v = strtod(s, &end);
    return end != s && *end == 0 && errno == 0 && isfinite(*v);
}

static int in_choices(const char *const *choices, const char *s)
{
    for (int i = 0; choices && choices[i]; i++)
        if (strcmp(choices[i], s) == 0) return 1;
    return 0;
}

/* Checks a scalar argument's default text against its type and range. */
static mg_status check_default(mg_ctx *ctx, const char *layer, const mg_layer_arg *a)
{
    double v;
    const char *d = a->dflt;
    int ok = 1;
    if (a->type == MG_ARG_INT || a->type == MG_ARG_FLOAT) {
        ok = parse_number(d, &v) && (a->type == MG_ARG_FLOAT || v == floor(v)) &&
             (a->min >= a->max || (v >= a->min && v <= a->max));
    } else if (a->type == MG_ARG_BOOL) {
        ok = strcasecmp(d, "true") == 0 || strcasecmp(d, "false") == 0 || strcmp(d, "0") == 0 ||
             strcmp(d, "1") == 0;
    } else if (a->type == MG_ARG_ENUM) {
        ok = in_choices(a->choices, d);
    }
    if (ok) return MG_OK;
    return mg_ctx_fail(ctx, MG_ERR_ARG,
                       "layer type '%s': default '%s' of argument '%s' does not fit its type or range",
                       layer, d, a->name);
}

static mg_status check_args(mg_ctx *ctx, const char *layer, const mg_layer_arg *args, int n, int depth);

/* One schema entry: a name, a known type, choices for ENUM, fields for MAP. */
static mg_status check_arg(mg_ctx *ctx, const char *layer, const mg_layer_arg *a, int depth)
{
    if (!a->name || !a->name[0])
        return mg_ctx_fail(ctx, MG_ERR_ARG, "layer type '%s': an argument has no name", layer);
    if (a->type < MG_ARG_INT || a->type > MG_ARG_MAP)
        return mg_ctx_fail(ctx, MG_ERR_ARG, "layer type '%s': argument '%s' has unknown type %d", layer,
                           a->name, (int)a->type);
    if (a->type == MG_ARG_ENUM && (!a->choices || !a->choices[0]))
        return mg_ctx_fail(ctx, MG_ERR_ARG, "layer type '%s': enum argument '%s' lists no choices", layer,
                           a->name);
    if (a->type == MG_ARG_MAP) {
        if (depth > 0 || a->n_fields <= 0 || !a->fields)
            return mg_ctx_fail(ctx, MG_ERR_ARG,
                               "layer type '%s': map argument '%s' needs fields (one level deep)", layer,
                               a->name);
        return check_args(ctx, layer, a->fields, a->n_fields, depth + 1);
    }
    return a->dflt ? check_default(ctx, layer, a) : MG_OK;
}

/* A list of arguments: each valid, names unique. */
static mg_status check_args(mg_ctx *ctx, const char *layer, const mg_layer_arg *args, int n, int depth)
{
    if (n < 0 || (n > 0 && !args))
        return mg_ctx_fail(ctx, MG_ERR_ARG, "layer type '%s': %d arguments but no schema", layer, n);
    for (int i = 0; i < n; i++) {
        mg_status s = check_arg(ctx, layer, &args[i], depth);
        if (s != MG_OK) return s;
        for (int j = 0; j < i; j++)
            if (strcmp(args[j].name, args[i].name) == 0)
                return mg_ctx_fail(ctx, MG_ERR_ARG, "layer type '%s': argument '%s' appears twice",
                                   layer, args[i].name);
    }
    return MG_OK;
}

static mg_status check_def(mg_registry *r, const mg_layer_def *d)
{
    mg_ctx *ctx = r->ctx;
    const char *name = d->name ? d->name : "(unnamed)";
    size_t need = offsetof(mg_layer_def, count_params) + sizeof d->count_params;
    if (d->struct_size < need)
        return mg_ctx_fail(ctx, MG_ERR_ABI,
                           "layer type '%s': table size %zu is smaller than ABI 1's %zu", name,
                           d->struct_size, need);
    if (d->abi_version != MG_ABI_VERSION)
        return mg_ctx_fail(ctx, MG_ERR_ABI,
                           "layer type '%s' was built for ABI %u; this library speaks %u", name,
                           d->abi_version, MG_ABI_VERSION);
    if (!d->name || !d->name[0] || !d->out_shape || !d->forward)
        return mg_ctx_fail(ctx, MG_ERR_ARG, "layer type '%s': name, out_shape and forward are required",
                           name);
    if (find(r, d->name))
        return mg_ctx_fail(ctx, MG_ERR_EXISTS, "layer type '%s' is already registered (by %s)", name,
                           mg_registry_layer_origin(r, d->name));
    return check_args(ctx, name, d->args, d->n_args, 0);
}

/* ---- public API ------------------------------------------------------------ */

mg_status mg_registry_add_layer(mg_registry *r, const mg_layer_def *def)
{
    if (!r || !def) return MG_ERR_ARG;
    mg_status s = check_def(r, def);
    if (s != MG_OK) return s;
    layer_table *t = table(r);
    reg_layer *l = mg_calloc(1, sizeof *l);
    char *origin = mg_strdup(r->origin ? r->origin : "builtin");
    if (!t || !l || !origin || mg_grow((void **)&t->v, &t->cap, t->n + 1, sizeof *t->v) != MG_OK) {
        mg_free(l);
        mg_free(origin);
        return mg_ctx_fail(r->ctx, MG_ERR_NOMEM, "out of memory registering layer type '%s'", def->name);
    }
    /* An older, smaller table keeps zeroes for the fields it lacks. */
    size_t n = def->struct_size < sizeof l->def ? def->struct_size : sizeof l->def;
    memcpy(&l->def, def, n);
    l->def.struct_size = sizeof l->def;
    l->origin = origin;
    t->v[t->n++] = l;
    return MG_OK;
}

const mg_layer_def *mg_registry_find_layer(const mg_registry *r, const char *name)
{
    reg_layer *l = find(r, name);
    return l ? &l->def : NULL;
}

int mg_registry_num_layers(const mg_registry *r)
{
    const layer_table *t = r ? r->layers : NULL;
    return t ? t->n : 0;
}

const mg_layer_def *mg_registry_layer_at(const mg_registry *r, int i)
{
    const layer_table *t = r ? r->layers : NULL;
    return t && i >= 0 && i < t->n ? &t->v[i]->def : NULL;
}

const char *mg_registry_layer_origin(const mg_registry *r, const char *name)
{
    reg_layer *l = find(r, name);
    return l ? l->origin : NULL;
}

static const char *layer_name_at(const mg_registry *r, int i)
{
    return ((const layer_table *)r->layers)->v[i]->def.name;
}

const char *mg_registry_suggest_layer(const mg_registry *r, const char *name)
{
    return mg_suggest_name(r, mg_registry_num_layers(r), layer_name_at, name);
}

void mg_registry_remove_layers(mg_registry *r, const char *origin)
{
    layer_table *t = r ? r->layers : NULL;
    int k = 0;
    for (int i = 0; t && origin && i < t->n; i++) {
        if (strcmp(t->v[i]->origin, origin) == 0) layer_free(t->v[i]);
        else t->v[k++] = t->v[i];
    }
    if (t) t->n = k;
}
