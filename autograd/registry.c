/* autograd/registry.c: the op registry. Built-in ops and plugin ops
 * register the same way; each op remembers its origin ("builtin" or the
 * plugin's name). */
#include "internal.h"

#include <string.h>

static mg_status check_def(mg_registry *r, const mg_op_def *d)
{
    mg_ctx *ctx = r->ctx;
    const char *name = d->name ? d->name : "(unnamed)";
    if (d->struct_size < offsetof(mg_op_def, release) + sizeof d->release)
        return mg_ctx_fail(ctx, MG_ERR_ABI, "op '%s': op table size %zu is smaller than ABI 1's %zu",
                           name, d->struct_size, offsetof(mg_op_def, release) + sizeof d->release);
    if (d->abi_version != MG_ABI_VERSION)
        return mg_ctx_fail(ctx, MG_ERR_ABI, "op '%s' was built for op ABI %u; this library speaks %u",
                           name, d->abi_version, MG_ABI_VERSION);
    if (!d->name || !d->name[0] || !d->infer || !d->forward)
        return mg_ctx_fail(ctx, MG_ERR_ARG, "op '%s': name, infer and forward are required", name);
    if (d->min_inputs < 0 || (d->max_inputs >= 0 && d->max_inputs < d->min_inputs) ||
        d->num_outputs == 0 || d->num_outputs > MG_MAX_OUTPUTS || d->num_outputs < -1)
        return mg_ctx_fail(ctx, MG_ERR_ARG, "op '%s': bad arity (inputs %d..%d, outputs %d)", name,
                           d->min_inputs, d->max_inputs, d->num_outputs);
    if (mg_registry_find_op(r, d->name))
        return mg_ctx_fail(ctx, MG_ERR_EXISTS, "op '%s' is already registered (by %s)", name,
                           mg_registry_op_origin(r, d->name));
    return MG_OK;
}

mg_status mg_registry_add_op(mg_registry *r, const mg_op_def *def)
{
    if (!r || !def) return MG_ERR_ARG;
    mg_status s = check_def(r, def);
    if (s != MG_OK) return s;
    if (mg_grow((void **)&r->ops, &r->cap_ops, r->n_ops + 1, sizeof *r->ops) != MG_OK)
        return mg_ctx_fail(r->ctx, MG_ERR_NOMEM, "out of memory registering op '%s'", def->name);
    mg_reg_op *op = mg_calloc(1, sizeof *op);
    char *origin = mg_strdup(r->origin ? r->origin : "builtin");
    if (!op || !origin) {
        mg_free(op);
        mg_free(origin);
        return mg_ctx_fail(r->ctx, MG_ERR_NOMEM, "out of memory registering op '%s'", def->name);
    }
    /* An older, smaller table keeps zeroes for the fields it lacks. */
    size_t n = def->struct_size < sizeof op->def ? def->struct_size : sizeof op->def;
    memcpy(&op->def, def, n);
    op->def.struct_size = sizeof op->def;
    op->origin = origin;
    r->ops[r->n_ops++] = op;
    return MG_OK;
}

static mg_reg_op *find(const mg_registry *r, const char *name)
{
    if (!r || !name) return NULL;
    for (int i = 0; i < r->n_ops; i++)
        if (strcmp(r->ops[i]->def.name, name) == 0) return r->ops[i];
    return NULL;
}

const mg_op_def *mg_registry_find_op(const mg_registry *r, const char *name)
{
    mg_reg_op *op = find(r, name);
    return op ? &op->def : NULL;
}

int mg_registry_num_ops(const mg_registry *r) { return r ? r->n_ops : 0; }

const mg_op_def *mg_registry_op_at(const mg_registry *r, int i)
{
    return r && i >= 0 && i < r->n_ops ? &r->ops[i]->def : NULL;
}

const char *mg_registry_op_origin(const mg_registry *r, const char *name)
{
    mg_reg_op *op = find(r, name);
    return op ? op->origin : NULL;
}

static const char *op_name_at(const mg_registry *r, int i) { return r->ops[i]->def.name; }

const char *mg_registry_suggest_op(const mg_registry *r, const char *name)
{
    return mg_suggest_name(r, mg_registry_num_ops(r), op_name_at, name);
}

static void op_free(mg_reg_op *op)
{
    mg_free(op->origin);
    mg_free(op);
}

void mg_registry_remove_ops(mg_registry *r, const char *origin)
{
    int k = 0;
    for (int i = 0; r && origin && i < r->n_ops; i++) {
        if (strcmp(r->ops[i]->origin, origin) == 0) op_free(r->ops[i]);
        else r->ops[k++] = r->ops[i];
    }
    if (r) r->n_ops = k;
}

void mg_registry_free(mg_registry *r)
{
    if (!r) return;
    if (r->layers_free) r->layers_free(r);
    for (int i = 0; i < r->n_ops; i++) op_free(r->ops[i]);
    mg_free(r->ops);
    mg_free(r->origin);
    mg_free(r);
}
