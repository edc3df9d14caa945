/* autograd/spec_args.c: validation of a YAML mapping against an argument
 * schema (mg_layer_arg, mintgrad/layer.h) into an mg_attrs map. Used for
 * layer arguments from the registry and for the spec's own sections: types,
 * ranges, enum choices, required keys, defaults (parsed from their YAML
 * text), nested maps flattened as "<name>.<field>". */
#include "spec_internal.h"

#include <stdio.h>
#include <string.h>

/* Checks v against the schema's range (when min < max). */
static mg_status check_range(spec_loader *ld, const mg_layer_arg *a, const yaml_node_t *n,
                             const char *key, double v)
{
    if (a->min < a->max && v < a->min && a->max >= 1e300)
        return spec_fail(ld, n, MG_ERR_PARSE, "'%s' = %.15g must be at least %.15g", key, v, a->min);
    if (a->min < a->max && (v < a->min || v > a->max))
        return spec_fail(ld, n, MG_ERR_PARSE, "'%s' = %.15g is out of range [%.15g, %.15g]", key, v,
                         a->min, a->max);
    return MG_OK;
}

static mg_status store_enum(spec_loader *ld, const mg_layer_arg *a, const yaml_node_t *n,
                            const char *key, mg_attrs *out, const char *full)
{
    const char *s;
    mg_status st = spec_get_str(ld, n, key, &s);
    if (st) return st;
    int nc = 0;
    for (; a->choices && a->choices[nc]; nc++)
        if (!strcmp(a->choices[nc], s)) return mg_attrs_set_str(out, full, s);
    char list[256];
    spec_join_names(a->choices, nc, list, sizeof list);
    const char *hint = spec_suggest(s, a->choices, nc);
    if (hint)
        return spec_fail(ld, n, MG_ERR_PARSE, "'%s': unknown value '%s'; did you mean '%s'? (one of %s)",
                         key, s, hint, list);
    return spec_fail(ld, n, MG_ERR_PARSE, "'%s': unknown value '%s' (expected one of %s)", key, s,
                     list);
}

/* A YAML list of numbers (ints when `ints`), each range-checked. */
static mg_status store_list(spec_loader *ld, const mg_layer_arg *a, const yaml_node_t *n,
                            const char *key, int ints, mg_attrs *out, const char *full)
{
    char buf[96];
    if (n->type != YAML_SEQUENCE_NODE)
        return spec_fail(ld, n, MG_ERR_PARSE, "'%s': expected a list of %s, got %s", key,
                         ints ? "integers" : "numbers", spec_describe(n, buf, sizeof buf));
    int64_t iv[MG_ATTR_MAX_LIST];
    double fv[MG_ATTR_MAX_LIST];
    int k = 0;
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top; it++, k++) {
        yaml_node_t *e = spec_node(ld, *it);
        if (k == MG_ATTR_MAX_LIST)
            return spec_fail(ld, e, MG_ERR_PARSE, "'%s': at most %d values", key, MG_ATTR_MAX_LIST);
        mg_status st = ints ? spec_get_int(ld, e, key, &iv[k]) : spec_get_float(ld, e, key, &fv[k]);
        if (!st) st = check_range(ld, a, e, key, ints ? (double)iv[k] : fv[k]);
        if (st) return st;
    }
    return ints ? mg_attrs_set_ints(out, full, iv, k) : mg_attrs_set_floats(out, full, fv, k);
}

/* Converts one value node by the argument's type and stores it. */
static mg_status store_value(spec_loader *ld, const mg_layer_arg *a, const yaml_node_t *n,
                             const char *key, mg_attrs *out, const char *full)
{
    int64_t i;
    double f;
    int b;
    const char *s;
    mg_status st;
    switch (a->type) {
    case MG_ARG_INT:
        if ((st = spec_get_int(ld, n, key, &i)) || (st = check_range(ld, a, n, key, (double)i))) return st;
        return mg_attrs_set_int(out, full, i);
    case MG_ARG_FLOAT:
        if ((st = spec_get_float(ld, n, key, &f)) || (st = check_range(ld, a, n, key, f))) return st;
        return mg_attrs_set_float(out, full, f);
    case MG_ARG_BOOL:
        if ((st = spec_get_bool(ld, n, key, &b))) return st;
        return mg_attrs_set_int(out, full, b);
    case MG_ARG_STR:
        if ((st = spec_get_str(ld, n, key, &s))) return st;
        return mg_attrs_set_str(out, full, s);
    case MG_ARG_ENUM:
        return store_enum(ld, a, n, key, out, full);
    case MG_ARG_INTS:
    case MG_ARG_FLOATS:
        return store_list(ld, a, n, key, a->type == MG_ARG_INTS, out, full);
    case MG_ARG_MAP:
        break;
    }
    return mg_ctx_fail(ld->ctx, MG_ERR_ARG, "argument '%s' has an unknown type %d in its schema",
                       a->name, (int)a->type);
}

/* Stores a default: its YAML text is parsed and converted like a value. */
static mg_status store_default(spec_loader *ld, const mg_layer_arg *a, mg_attrs *out,
                               const char *full)
{
    yaml_parser_t p;
    yaml_document_t doc, *saved = ld->doc;
    if (!yaml_parser_initialize(&p)) return mg_ctx_fail(ld->ctx, MG_ERR_NOMEM, "out of memory");
    yaml_parser_set_input_string(&p, (const unsigned char *)a->dflt, strlen(a->dflt));
    int ok = yaml_parser_load(&p, &doc);
    yaml_parser_delete(&p);
    if (!ok) return mg_ctx_fail(ld->ctx, MG_ERR_ARG, "schema default of '%s' is not valid YAML", full);
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    mg_status st;
    if (!root) {
        st = mg_ctx_fail(ld->ctx, MG_ERR_ARG, "schema default of '%s' is empty", full);
    } else {
        ld->doc = &doc;
        st = store_value(ld, a, root, a->name, out, full);
        ld->doc = saved;
        if (st) st = mg_ctx_fail(ld->ctx, MG_ERR_ARG, "invalid schema default '%s' for '%s': %s",
                                 a->dflt, full, mg_ctx_error(ld->ctx));
    }
    yaml_document_delete(&doc);
    return st;
}

static const mg_layer_arg *find_arg(const mg_layer_arg *schema, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(schema[i].name, name)) return &schema[i];
    return NULL;
}

static int in_list(const char *const *list, const char *s)
{
    for (; list && *list; list++)
        if (!strcmp(*list, s)) return 1;
    return 0;
}

/* Validates one present key's value (recursing into maps). */
static mg_status validate_key(spec_loader *ld, const mg_layer_arg *a, const yaml_node_t *v,
                              const yaml_node_t *k, const char *what, const char *prefix,
                              const char *path, mg_attrs *out)
{
    char full[256], sub_path[256], sub_what[320];
    snprintf(full, sizeof full, "%s%s", prefix, a->name);
    if (path) {
        snprintf(sub_path, sizeof sub_path, "%s.%s", path, a->name);
        mg_status st = spec_where_add(ld, sub_path, v);
        if (st) return st;
    }
    if (a->type != MG_ARG_MAP) {
        if (spec_is_null(v))
            return spec_fail(ld, v, MG_ERR_PARSE, "'%s' has no value", a->name);
        return store_value(ld, a, v, a->name, out, full);
    }
    char sub_prefix[272];
    snprintf(sub_prefix, sizeof sub_prefix, "%s.", full);
    snprintf(sub_what, sizeof sub_what, "'%s' of %s", a->name, what);
    return spec_validate(ld, a->fields, a->n_fields, v, k, sub_what, sub_prefix,
                         path ? sub_path : NULL, NULL, out);
}

/* Fills in defaults for keys m does not have, and reports missing required
 * keys when check_required (not inside a map that is absent altogether). */
static mg_status fill_missing(spec_loader *ld, const mg_layer_arg *schema, int n,
                              const yaml_node_t *m, const yaml_node_t *owner, const char *what,
                              const char *prefix, int check_required, mg_attrs *out)
{
    char full[256];
    for (int i = 0; i < n; i++) {
        const mg_layer_arg *a = &schema[i];
        if (spec_map_get(ld, m, a->name)) continue;
        snprintf(full, sizeof full, "%s%s", prefix, a->name);
        mg_status st = MG_OK;
        if (a->required && check_required)
            return spec_fail(ld, owner, MG_ERR_PARSE, "missing required key '%s' in %s", a->name, what);
        if (a->type == MG_ARG_MAP) {
            char sub_prefix[272];
            snprintf(sub_prefix, sizeof sub_prefix, "%s.", full);
            st = fill_missing(ld, a->fields, a->n_fields, NULL, owner, what, sub_prefix, 0, out);
        } else if (a->dflt) {
            st = store_default(ld, a, out, full);
        }
        if (st) return st;
    }
    return MG_OK;
}

mg_status spec_validate(spec_loader *ld, const mg_layer_arg *schema, int n, const yaml_node_t *m,
                        const yaml_node_t *owner, const char *what, const char *prefix,
                        const char *path, const char *const *skip, mg_attrs *out)
{
    mg_status st = spec_check_map(ld, m, what);
    if (st) return st;
    if (m && spec_is_null(m)) m = NULL;
    const char *names[64];
    int nn = 0;
    for (int i = 0; i < n && nn < 60; i++) names[nn++] = schema[i].name;
    for (int i = 0; skip && skip[i] && nn < 64; i++) names[nn++] = skip[i];
    for (yaml_node_pair_t *p = m ? m->data.mapping.pairs.start : NULL; m && p < m->data.mapping.pairs.top; p++) {
        yaml_node_t *k = spec_node(ld, p->key), *v = spec_node(ld, p->value);
        const char *name = spec_scalar(k);
        if (in_list(skip, name)) continue;
        const mg_layer_arg *a = find_arg(schema, n, name);
        if (!a) return spec_unknown_key(ld, k, what, names, nn);
        if ((st = validate_key(ld, a, v, k, what, prefix, path, out))) return st;
    }
    return fill_missing(ld, schema, n, m, m ? m : owner, what, prefix, 1, out);
}
