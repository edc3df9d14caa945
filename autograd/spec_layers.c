/* autograd/spec_layers.c: the `model.layers` list of a spec. Expands
 * `repeat` items (nesting allowed), resolves each layer type in the
 * context's registry, validates its arguments against the type's schema and
 * runs its out_shape to infer per-sample shapes layer by layer. Layers are
 * numbered 0, 1, 2, ... in expansion order. */
#include "spec_internal.h"

#include <stdio.h>
#include <string.h>

static const char *const REPEAT_KEYS[] = {"repeat", "layers"};

static mg_status grow_layers(spec_loader *ld, const yaml_node_t *at)
{
    struct mg_spec_priv *p = ld->spec->priv;
    if (p->n_layers >= SPEC_MAX_LAYERS)
        return spec_fail(ld, at, MG_ERR_PARSE, "more than %d layers after expanding repeats",
                         SPEC_MAX_LAYERS);
    if (mg_grow((void **)&p->layers, &p->cap_layers, p->n_layers + 1, sizeof *p->layers))
        return mg_ctx_fail(ld->ctx, MG_ERR_NOMEM, "out of memory expanding layers");
    return MG_OK;
}

/* Runs the layer's out_shape on its input shape. */
static mg_status layer_shape(spec_loader *ld, mg_spec_layer *l, const yaml_node_t *key)
{
    char prefix[32], what[160], shape[64];
    snprintf(prefix, sizeof prefix, "flow.%d", l->index);
    mg_layer_build b = {.struct_size = sizeof b, .ctx = ld->ctx, .index = l->index,
                        .prefix = prefix, .type = l->type, .args = l->args,
                        .model = ld->spec->model.attrs};
    memcpy(b.in_shape, l->in_shape, sizeof b.in_shape);
    snprintf(what, sizeof what, "layer %d (%s) on input %s", l->index, l->type,
             mg_shape_str(3, l->in_shape, shape, sizeof shape));
    mg_ctx_clear_error(ld->ctx);
    spec_quiet q;
    spec_quiet_begin(ld->ctx, &q);
    mg_status st = l->def->out_shape(&b, l->out_shape);
    spec_quiet_end(ld->ctx, &q);
    if (st) return spec_fail_prefix(ld, key, st, what);
    for (int i = 0; i < 3; i++)
        if (l->out_shape[i] < 1)
            return spec_fail(ld, key, MG_ERR_SHAPE, "%s: empty output shape %s", what,
                             mg_shape_str(3, l->out_shape, shape, sizeof shape));
    return MG_OK;
}

static mg_status add_layer(spec_loader *ld, const mg_layer_def *def, const yaml_node_t *key,
                           const yaml_node_t *args)
{
    mg_status st = grow_layers(ld, key);
    if (st) return st;
    struct mg_spec_priv *p = ld->spec->priv;
    int idx = p->n_layers;
    mg_spec_layer *l = &p->layers[idx];
    memset(l, 0, sizeof *l);
    mg_attrs *a = mg_attrs_new();
    if (!a) return mg_ctx_fail(ld->ctx, MG_ERR_NOMEM, "out of memory");
    l->args = a;
    p->n_layers++; /* owns a from here on */
    ld->spec->model.layers = p->layers;
    ld->spec->model.n_layers = p->n_layers;
    l->index = idx, l->type = def->name, l->def = def;
    l->line = (int)key->start_mark.line + 1, l->col = (int)key->start_mark.column + 1;
    memcpy(l->in_shape, idx ? p->layers[idx - 1].out_shape : ld->spec->model.input, sizeof l->in_shape);
    char what[160], path[48];
    snprintf(what, sizeof what, "the arguments of layer %d (%s)", idx, def->name);
    snprintf(path, sizeof path, "model.layers.%d", idx);
    if ((st = spec_where_add(ld, path, key))) return st;
    if ((st = spec_validate(ld, def->args, def->n_args, args, key, what, "", NULL, NULL, a))) return st;
    if ((st = layer_shape(ld, l, key))) return st;
    memcpy(ld->spec->model.output, l->out_shape, sizeof l->out_shape);
    return MG_OK;
}

/* 1 when the spec lists plugin `name` (given "abc.xyz", the part "abc"). */
static int plugin_listed(spec_loader *ld, const char *type, size_t n)
{
    for (int i = 0; i < ld->spec->n_plugins; i++)
        if (strlen(ld->spec->plugins[i]) == n && !strncmp(ld->spec->plugins[i], type, n)) return 1;
    return 0;
}

static mg_status unknown_type(spec_loader *ld, const yaml_node_t *key)
{
    const char *type = spec_scalar(key);
    mg_registry *r = mg_ctx_registry(ld->ctx);
    const char *hint = mg_registry_suggest_layer(r, type);
    const char *dot = strchr(type, '.');
    char extra[160] = "";
    if (dot && !plugin_listed(ld, type, (size_t)(dot - type)))
        snprintf(extra, sizeof extra, " (layer types named '%.*s.*' come from plugin '%.*s': list it under 'plugins')",
                 (int)(dot - type), type, (int)(dot - type), type);
    if (hint)
        return spec_fail(ld, key, MG_ERR_NOTFOUND, "unknown layer type '%s'; did you mean '%s'?%s",
                         type, hint, extra);
    char list[512] = "";
    size_t len = 0;
    for (int i = 0; i < mg_registry_num_layers(r) && len + 2 < sizeof list; i++)
        len += (size_t)snprintf(list + len, sizeof list - len, "%s%s", i ? ", " : "",
                                mg_registry_layer_at(r, i)->name);
    return spec_fail(ld, key, MG_ERR_NOTFOUND, "unknown layer type '%s' (known types: %s)%s", type,
                     len ? list : "none", extra);
}

static mg_status expand(spec_loader *ld, const yaml_node_t *seq, int depth);

static mg_status expand_repeat(spec_loader *ld, const yaml_node_t *item, int depth)
{
    const yaml_node_pair_t *pr = item->data.mapping.pairs.start;
    for (; pr < item->data.mapping.pairs.top; pr++) {
        const yaml_node_t *k = spec_node(ld, pr->key);
        if (strcmp(spec_scalar(k), "repeat") && strcmp(spec_scalar(k), "layers"))
            return spec_unknown_key(ld, k, "a repeat item", REPEAT_KEYS, 2);
    }
    const yaml_node_t *rn = spec_map_get(ld, item, "repeat"), *body = spec_map_get(ld, item, "layers");
    int64_t n;
    mg_status st = spec_get_int(ld, rn, "repeat", &n);
    if (st) return st;
    if (n < 1 || n > SPEC_MAX_LAYERS)
        return spec_fail(ld, rn, MG_ERR_PARSE, "'repeat' = %lld is out of range [1, %d]", (long long)n,
                         SPEC_MAX_LAYERS);
    if (!body)
        return spec_fail(ld, item, MG_ERR_PARSE, "a repeat item needs 'layers', the list to repeat");
    for (int64_t r = 0; r < n && !st; r++) st = expand(ld, body, depth + 1);
    return st;
}

static mg_status expand_item(spec_loader *ld, const yaml_node_t *item, int depth)
{
    char buf[96];
    if (++ld->visits > SPEC_MAX_VISITS)
        return spec_fail(ld, item, MG_ERR_PARSE, "more than %d layer items to expand (check the repeats)",
                         SPEC_MAX_VISITS);
    if (item->type != YAML_MAPPING_NODE)
        return spec_fail(ld, item, MG_ERR_PARSE,
                         "a layer is a one-key mapping 'type: {arguments}' (e.g. '- squeeze: {factor: 2}'), got %s",
                         spec_describe(item, buf, sizeof buf));
    mg_status st = spec_check_map(ld, item, "a layer item");
    if (st) return st;
    if (spec_map_get(ld, item, "repeat")) return expand_repeat(ld, item, depth);
    const yaml_node_pair_t *p0 = item->data.mapping.pairs.start;
    int npairs = (int)(item->data.mapping.pairs.top - p0);
    if (npairs == 0) return spec_fail(ld, item, MG_ERR_PARSE, "an empty layer item");
    if (npairs > 1) {
        const yaml_node_t *k0 = spec_node(ld, p0[0].key), *k1 = spec_node(ld, p0[1].key);
        if (!strcmp(spec_scalar(k0), "layers") || !strcmp(spec_scalar(k1), "layers"))
            return spec_unknown_key(ld, strcmp(spec_scalar(k0), "layers") ? k0 : k1, "a repeat item",
                                    REPEAT_KEYS, 2);
        return spec_fail(ld, k1, MG_ERR_PARSE,
                         "a layer item has one key, its type ('%s'); '%s' is a second key: put the "
                         "arguments under the type, as in '- %s: {%s: ...}'",
                         spec_scalar(k0), spec_scalar(k1), spec_scalar(k0), spec_scalar(k1));
    }
    const yaml_node_t *key = spec_node(ld, p0->key);
    const mg_layer_def *def = mg_registry_find_layer(mg_ctx_registry(ld->ctx), spec_scalar(key));
    if (!def) return unknown_type(ld, key);
    return add_layer(ld, def, key, spec_node(ld, p0->value));
}

static mg_status expand(spec_loader *ld, const yaml_node_t *seq, int depth)
{
    char buf[96];
    if (++ld->visits > SPEC_MAX_VISITS)
        return spec_fail(ld, seq, MG_ERR_PARSE, "more than %d layer lists to expand (check the repeats)",
                         SPEC_MAX_VISITS);
    if (depth > SPEC_MAX_DEPTH)
        return spec_fail(ld, seq, MG_ERR_PARSE, "layers nested more than %d deep", SPEC_MAX_DEPTH);
    if (spec_is_null(seq)) return MG_OK;
    if (seq->type != YAML_SEQUENCE_NODE)
        return spec_fail(ld, seq, MG_ERR_PARSE, "'layers' must be a list of layers, got %s",
                         spec_describe(seq, buf, sizeof buf));
    for (yaml_node_item_t *it = seq->data.sequence.items.start; it < seq->data.sequence.items.top; it++) {
        mg_status st = expand_item(ld, spec_node(ld, *it), depth);
        if (st) return st;
    }
    return MG_OK;
}

mg_status spec_load_layers(spec_loader *ld, const yaml_node_t *layers, const yaml_node_t *owner)
{
    memcpy(ld->spec->model.output, ld->spec->model.input, sizeof ld->spec->model.output);
    if (!layers) return MG_OK;
    return expand(ld, layers, 0);
}
