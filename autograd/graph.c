/* autograd/graph.c: building graphs. Values and nodes are appended; each
 * node's op validates its attributes and infers its output shapes as it is
 * added, so shape errors surface at the line that made them. The first
 * failure sticks to the graph. Also the node view (mg_node_*) op callbacks
 * use, and read-only inspection for DOT export and the driver. */
#include "internal.h"

#include <stdio.h>
#include <string.h>

mg_status mg_graph_new(mg_ctx *ctx, mg_graph **out)
{
    if (!ctx || !out) return MG_ERR_ARG;
    *out = mg_calloc(1, sizeof **out);
    if (!*out) return mg_ctx_fail(ctx, MG_ERR_NOMEM, "out of memory creating a graph");
    (*out)->ctx = ctx;
    return MG_OK;
}

void mg_graph_free(mg_graph *g)
{
    if (!g) return;
    for (int i = 0; i < g->n_vals; i++) {
        mg_free(g->vals[i].name);
        mg_free(g->vals[i].scope);
        mg_tensor_free(g->vals[i].cst);
    }
    for (int i = 0; i < g->n_nodes; i++) {
        mg_gnode *n = &g->nodes[i];
        mg_free(n->name);
        mg_attrs_free(n->attrs);
        mg_free(n->in);
        mg_free(n->out);
        mg_free(n->scope);
        mg_free(n->scope_type);
    }
    for (int i = 0; i < g->scope_depth; i++) {
        mg_free(g->scope_names[i]);
        mg_free(g->scope_types[i]);
    }
    mg_free(g->scope_names);
    mg_free(g->scope_types);
    mg_free(g->scope_path);
    mg_free(g->vals);
    mg_free(g->nodes);
    mg_free(g);
}

mg_ctx *mg_graph_ctx(const mg_graph *g) { return g->ctx; }
mg_status mg_graph_status(const mg_graph *g) { return g ? g->status : MG_ERR_ARG; }

mg_status mg_graph_fail(mg_graph *g, mg_status s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    mg_ctx_vfail(g->ctx, s, fmt, ap);
    va_end(ap);
    if (g->status == MG_OK) g->status = s;
    return s;
}


/* Marks a failure already reported to the context. */
static mg_status gkeep(mg_graph *g, mg_status s)
{
    if (g->status == MG_OK) g->status = s;
    return s;
}

static int name_taken(const mg_graph *g, const char *name)
{
    for (int i = 0; i < g->n_vals; i++)
        if (g->vals[i].name && strcmp(g->vals[i].name, name) == 0) return 1;
    return 0;
}

/* Appends a value; returns its index or -1 (error recorded). */
static int add_value(mg_graph *g, mg_value_kind kind, const char *name, const mg_tensor *desc)
{
    if (mg_grow((void **)&g->vals, &g->cap_vals, g->n_vals + 1, sizeof *g->vals) != MG_OK) {
        mg_graph_fail(g, MG_ERR_NOMEM, "out of memory adding value '%s'", name);
        return -1;
    }
    mg_gvalue *v = &g->vals[g->n_vals];
    memset(v, 0, sizeof *v);
    v->kind = kind;
    v->node = -1;
    v->desc = *desc;
    v->desc.data = NULL;
    v->desc.name = NULL;
    v->desc.flags = 0;
    v->name = mg_strdup(name);
    v->scope = g->scope_path ? mg_strdup(g->scope_path) : NULL;
    if (!v->name || (g->scope_path && !v->scope)) {
        mg_free(v->name);
        mg_free(v->scope);
        mg_graph_fail(g, MG_ERR_NOMEM, "out of memory adding value '%s'", name);
        return -1;
    }
    return g->n_vals++;
}

static mg_value leaf(mg_graph *g, mg_value_kind kind, const char *name, const mg_tensor *desc)
{
    if (g->status != MG_OK) return MG_VALUE_NONE;
    if (!name || !name[0]) {
        mg_graph_fail(g, MG_ERR_ARG, "graph inputs, parameters and constants need a name");
        return MG_VALUE_NONE;
    }
    if (name_taken(g, name)) {
        mg_graph_fail(g, MG_ERR_EXISTS, "the graph already has a value named '%s'", name);
        return MG_VALUE_NONE;
    }
    int id = add_value(g, kind, name, desc);
    return (mg_value){id};
}

mg_value mg_graph_input(mg_graph *g, const char *name, mg_dtype dt, int rank, const int64_t *shape)
{
    mg_tensor d;
    if (g->status != MG_OK) return MG_VALUE_NONE;
    if (mg_tensor_init(&d, dt, rank, shape, NULL) != MG_OK) {
        mg_graph_fail(g, MG_ERR_ARG, "input '%s': bad dtype, rank %d or negative size", name ? name : "?", rank);
        return MG_VALUE_NONE;
    }
    return leaf(g, MG_VALUE_INPUT, name, &d);
}

mg_value mg_graph_param(mg_graph *g, mg_param *p)
{
    if (g->status != MG_OK) return MG_VALUE_NONE;
    if (!p || !p->value) {
        mg_graph_fail(g, MG_ERR_ARG, "mg_graph_param: NULL parameter");
        return MG_VALUE_NONE;
    }
    for (int i = 0; i < g->n_vals; i++)
        if (g->vals[i].param == p) return (mg_value){i};
    mg_value v = leaf(g, MG_VALUE_PARAM, p->name, p->value);
    if (mg_value_ok(v)) g->vals[v.id].param = p;
    return v;
}

mg_value mg_graph_const(mg_graph *g, const char *name, const mg_tensor *t)
{
    if (g->status != MG_OK) return MG_VALUE_NONE;
    if (!t) {
        mg_graph_fail(g, MG_ERR_ARG, "constant '%s': NULL tensor", name ? name : "?");
        return MG_VALUE_NONE;
    }
    mg_tensor *c = mg_tensor_clone(t);
    if (!c) {
        mg_graph_fail(g, MG_ERR_NOMEM, "out of memory copying constant '%s'", name ? name : "?");
        return MG_VALUE_NONE;
    }
    mg_value v = leaf(g, MG_VALUE_CONST, name, c);
    if (mg_value_ok(v)) g->vals[v.id].cst = c;
    else mg_tensor_free(c);
    return v;
}

mg_value mg_graph_scalar(mg_graph *g, double x)
{
    char name[48];
    float f = (float)x;
    mg_tensor t;
    mg_tensor_init(&t, MG_F32, 0, NULL, &f);
    snprintf(name, sizeof name, "const_%d", g->auto_id++);
    return mg_graph_const(g, name, &t);
}

/* ---- nodes ---- */

static mg_status check_attrs(mg_graph *g, const mg_op_def *op, const char *node, const mg_attrs *a)
{
    for (int i = 0; i < mg_attrs_count(a); i++) {
        const char *key = mg_attrs_key(a, i);
        const char *best = NULL;
        int bd = 1000, ok = 0;
        for (const char *const *k = op->attr_names; k && *k && !ok; k++) {
            int d = mg_edit_distance(key, *k);
            ok = d == 0;
            if (d < bd) bd = d, best = *k;
        }
        if (ok) continue;
        if (best && bd <= 2)
            return mg_graph_fail(g, MG_ERR_ATTR, "node '%s' (%s): unknown attribute '%s' (did you mean '%s'?)",
                         node, op->name, key, best);
        return mg_graph_fail(g, MG_ERR_ATTR, "node '%s' (%s): unknown attribute '%s'", node, op->name, key);
    }
    return MG_OK;
}

static mg_status check_inputs(mg_graph *g, const mg_op_def *op, const char *node, const mg_value *in,
                              int n_in)
{
    if (n_in < op->min_inputs || (op->max_inputs >= 0 && n_in > op->max_inputs)) {
        if (op->max_inputs == op->min_inputs)
            return mg_graph_fail(g, MG_ERR_ARG, "node '%s' (%s): takes %d input(s), got %d", node, op->name,
                         op->min_inputs, n_in);
        return mg_graph_fail(g, MG_ERR_ARG, "node '%s' (%s): takes %d to %d inputs, got %d", node, op->name,
                     op->min_inputs, op->max_inputs, n_in);
    }
    for (int i = 0; i < n_in; i++)
        if (in[i].id < 0 || in[i].id >= g->n_vals)
            return mg_graph_fail(g, MG_ERR_ARG, "node '%s' (%s): input %d is not a value of this graph", node,
                         op->name, i);
    return MG_OK;
}

mg_status mg_op_infer(mg_ctx *ctx, const mg_op_def *op, const char *name, const mg_attrs *attrs,
                      const mg_tensor **in, int n_in, mg_tensor *outs, int *n_out)
{
    mg_tensor *outp[MG_MAX_OUTPUTS];
    for (int i = 0; i < MG_MAX_OUTPUTS; i++) {
        memset(&outs[i], 0, sizeof outs[i]);
        outp[i] = &outs[i];
    }
    mg_node nd = {.ctx = ctx, .op = op, .name = name, .attrs = attrs, .n_in = n_in, .in = in,
                  .n_out = op->num_outputs > 0 ? op->num_outputs : MG_MAX_OUTPUTS, .out = outp,
                  .inferring = 1};
    mg_status s = op->infer(&nd);
    if (s != MG_OK) return s;
    int n = op->num_outputs > 0 ? op->num_outputs : nd.n_declared;
    for (int i = 0; i < n; i++)
        if (outs[i].dtype == 0)
            return mg_ctx_fail(ctx, MG_ERR_STATE, "node '%s' (%s): infer did not declare output %d",
                               name, op->name, i);
    if (n < 1)
        return mg_ctx_fail(ctx, MG_ERR_STATE, "node '%s' (%s): infer declared no output", name, op->name);
    *n_out = n;
    return MG_OK;
}

/* Makes the node's name: given, or "<op>_<k>", prefixed by the scope path. */
static char *node_name(mg_graph *g, const char *op, const char *name)
{
    char buf[512];
    char auto_name[160];
    if (!name) {
        snprintf(auto_name, sizeof auto_name, "%s_%d", op, g->auto_id++);
        name = auto_name;
    }
    if (g->scope_path)
        snprintf(buf, sizeof buf, "%s.%s", g->scope_path, name);
    else
        snprintf(buf, sizeof buf, "%s", name);
    return mg_strdup(buf);
}

static mg_status append_node(mg_graph *g, const mg_op_def *op, char *name, const mg_value *in, int n_in,
                             const mg_attrs *attrs, const mg_tensor *outs, int n_out)
{
    if (mg_grow((void **)&g->nodes, &g->cap_nodes, g->n_nodes + 1, sizeof *g->nodes) != MG_OK)
        return MG_ERR_NOMEM;
    mg_gnode *n = &g->nodes[g->n_nodes];
    memset(n, 0, sizeof *n);
    n->op = op;
    n->name = name;
    n->in = mg_calloc((size_t)n_in + 1, sizeof(int));
    n->out = mg_calloc((size_t)n_out, sizeof(int));
    n->attrs = attrs ? mg_attrs_clone(attrs) : NULL;
    if (g->scope_depth) {
        n->scope = mg_strdup(g->scope_path);
        n->scope_type = mg_strdup(g->scope_types[g->scope_depth - 1]);
    }
    if (!n->in || !n->out || (attrs && !n->attrs) || (g->scope_depth && (!n->scope || !n->scope_type)))
        goto nomem;
    n->n_in = n_in;
    for (int i = 0; i < n_in; i++) n->in[i] = in[i].id;
    for (int i = 0; i < n_out; i++) {
        char vname[600];
        if (n_out == 1) snprintf(vname, sizeof vname, "%s", name);
        else snprintf(vname, sizeof vname, "%s:%d", name, i);
        int id = add_value(g, MG_VALUE_NODE, vname, &outs[i]);
        if (id < 0) goto nomem;
        g->vals[id].node = g->n_nodes;
        g->vals[id].out_index = i;
        n->out[i] = id;
        n->n_out = i + 1;
    }
    g->n_nodes++;
    return MG_OK;
nomem:
    mg_free(n->in);
    mg_free(n->out);
    mg_attrs_free(n->attrs);
    mg_free(n->scope);
    mg_free(n->scope_type);
    return MG_ERR_NOMEM;
}

mg_status mg_graph_node(mg_graph *g, const char *opname, const char *name, const mg_value *in, int n_in,
                        const mg_attrs *attrs, mg_value *out, int max_out, int *n_out)
{
    for (int i = 0; out && i < max_out; i++) out[i] = MG_VALUE_NONE;
    if (!g) return MG_ERR_ARG;
    if (g->status != MG_OK) return g->status;
    const mg_op_def *op = mg_registry_find_op(g->ctx->reg, opname);
    if (!op) {
        const char *sug = mg_registry_suggest_op(g->ctx->reg, opname);
        return mg_graph_fail(g, MG_ERR_NOTFOUND, "unknown op '%s'%s%s%s", opname ? opname : "(null)",
                     sug ? " (did you mean '" : "", sug ? sug : "", sug ? "'?)" : "");
    }
    char *full = node_name(g, op->name, name);
    if (!full) return mg_graph_fail(g, MG_ERR_NOMEM, "out of memory adding a %s node", op->name);
    mg_status s = check_inputs(g, op, full, in, n_in);
    if (s == MG_OK) s = check_attrs(g, op, full, attrs);
    const mg_tensor *descs[256];
    mg_tensor named[256]; /* descriptions carrying the value names, for messages */
    if (s == MG_OK && n_in > 256) s = mg_graph_fail(g, MG_ERR_ARG, "node '%s': more than 256 inputs", full);
    mg_tensor outs[MG_MAX_OUTPUTS];
    int no = 0;
    if (s == MG_OK) {
        for (int i = 0; i < n_in; i++) {
            named[i] = g->vals[in[i].id].desc;
            named[i].name = g->vals[in[i].id].name;
            descs[i] = &named[i];
        }
        s = mg_op_infer(g->ctx, op, full, attrs, descs, n_in, outs, &no);
        if (s != MG_OK) gkeep(g, s);
    }
    if (s == MG_OK && (s = append_node(g, op, full, in, n_in, attrs, outs, no)) != MG_OK)
        mg_graph_fail(g, s, "out of memory adding node '%s'", name ? name : op->name);
    if (s != MG_OK) {
        mg_free(full);
        return s;
    }
    const mg_gnode *n = &g->nodes[g->n_nodes - 1];
    for (int i = 0; out && i < max_out && i < no; i++) out[i] = (mg_value){n->out[i]};
    if (n_out) *n_out = no;
    return MG_OK;
}

mg_value mg_graph_op(mg_graph *g, const char *op, const mg_value *in, int n_in, const mg_attrs *attrs)
{
    mg_value v = MG_VALUE_NONE;
    mg_graph_node(g, op, NULL, in, n_in, attrs, &v, 1, NULL);
    return v;
}

/* ---- scopes ---- */

static mg_status rebuild_scope_path(mg_graph *g)
{
    size_t len = 1;
    for (int i = 0; i < g->scope_depth; i++) len += strlen(g->scope_names[i]) + 1;
    char *p = NULL;
    if (g->scope_depth) {
        if (!(p = mg_malloc(len))) return MG_ERR_NOMEM;
        p[0] = 0;
        for (int i = 0; i < g->scope_depth; i++) {
            if (i) strcat(p, ".");
            strcat(p, g->scope_names[i]);
        }
    }
    mg_free(g->scope_path);
    g->scope_path = p;
    return MG_OK;
}

mg_status mg_graph_push_scope(mg_graph *g, const char *name, const char *type)
{
    if (g->status != MG_OK) return g->status;
    if (!name || !name[0]) return mg_graph_fail(g, MG_ERR_ARG, "a scope needs a name");
    int cap = g->scope_cap;
    if (mg_grow((void **)&g->scope_names, &cap, g->scope_depth + 1, sizeof(char *)) != MG_OK ||
        mg_grow((void **)&g->scope_types, &g->scope_cap, g->scope_depth + 1, sizeof(char *)) != MG_OK)
        return mg_graph_fail(g, MG_ERR_NOMEM, "out of memory opening scope '%s'", name);
    g->scope_names[g->scope_depth] = mg_strdup(name);
    g->scope_types[g->scope_depth] = mg_strdup(type ? type : "");
    g->scope_depth++;
    if (!g->scope_names[g->scope_depth - 1] || !g->scope_types[g->scope_depth - 1] ||
        rebuild_scope_path(g) != MG_OK) {
        mg_graph_pop_scope(g);
        return mg_graph_fail(g, MG_ERR_NOMEM, "out of memory opening scope '%s'", name);
    }
    return MG_OK;
}

void mg_graph_pop_scope(mg_graph *g)
{
    if (!g->scope_depth) return;
    g->scope_depth--;
    mg_free(g->scope_names[g->scope_depth]);
    mg_free(g->scope_types[g->scope_depth]);
    if (rebuild_scope_path(g) != MG_OK) mg_graph_fail(g, MG_ERR_NOMEM, "out of memory closing a scope");
}

/* ---- inspection ---- */

static const mg_gvalue *val(const mg_graph *g, mg_value v)
{
    return g && v.id >= 0 && v.id < g->n_vals ? &g->vals[v.id] : NULL;
}

static const mg_gnode *node(const mg_graph *g, int k)
{
    return g && k >= 0 && k < g->n_nodes ? &g->nodes[k] : NULL;
}

int mg_graph_num_values(const mg_graph *g) { return g->n_vals; }
int mg_graph_num_nodes(const mg_graph *g) { return g->n_nodes; }
mg_value_kind mg_graph_value_kind(const mg_graph *g, mg_value v) { return val(g, v) ? val(g, v)->kind : 0; }
const char *mg_graph_value_name(const mg_graph *g, mg_value v) { return val(g, v) ? val(g, v)->name : NULL; }
const mg_tensor *mg_graph_value_desc(const mg_graph *g, mg_value v) { return val(g, v) ? &val(g, v)->desc : NULL; }
mg_param *mg_graph_value_param(const mg_graph *g, mg_value v) { return val(g, v) ? val(g, v)->param : NULL; }
const char *mg_graph_value_scope(const mg_graph *g, mg_value v) { return val(g, v) ? val(g, v)->scope : NULL; }
int mg_graph_value_node(const mg_graph *g, mg_value v) { return val(g, v) ? val(g, v)->node : -1; }

mg_value mg_graph_find_value(const mg_graph *g, const char *name)
{
    for (int i = 0; g && name && i < g->n_vals; i++)
        if (strcmp(g->vals[i].name, name) == 0) return (mg_value){i};
    return MG_VALUE_NONE;
}

const char *mg_graph_node_name(const mg_graph *g, int k) { return node(g, k) ? node(g, k)->name : NULL; }
const mg_op_def *mg_graph_node_op(const mg_graph *g, int k) { return node(g, k) ? node(g, k)->op : NULL; }
const mg_attrs *mg_graph_node_attrs(const mg_graph *g, int k) { return node(g, k) ? node(g, k)->attrs : NULL; }
int mg_graph_node_num_inputs(const mg_graph *g, int k) { return node(g, k) ? node(g, k)->n_in : 0; }
int mg_graph_node_num_outputs(const mg_graph *g, int k) { return node(g, k) ? node(g, k)->n_out : 0; }
const char *mg_graph_node_scope(const mg_graph *g, int k) { return node(g, k) ? node(g, k)->scope : NULL; }
const char *mg_graph_node_scope_type(const mg_graph *g, int k) { return node(g, k) ? node(g, k)->scope_type : NULL; }

mg_value mg_graph_node_input(const mg_graph *g, int k, int i)
{
    const mg_gnode *n = node(g, k);
    return n && i >= 0 && i < n->n_in ? (mg_value){n->in[i]} : MG_VALUE_NONE;
}

mg_value mg_graph_node_output(const mg_graph *g, int k, int i)
{
    const mg_gnode *n = node(g, k);
    return n && i >= 0 && i < n->n_out ? (mg_value){n->out[i]} : MG_VALUE_NONE;
}

/* ---- the node view for op callbacks ---- */

int mg_node_num_inputs(const mg_node *n) { return n->n_in; }
int mg_node_num_outputs(const mg_node *n) { return n->inferring ? n->n_declared : n->n_out; }
const mg_tensor *mg_node_input(const mg_node *n, int i) { return i >= 0 && i < n->n_in ? n->in[i] : NULL; }
mg_tensor *mg_node_output(const mg_node *n, int i) { return i >= 0 && i < n->n_out ? n->out[i] : NULL; }
const mg_tensor *mg_node_grad_output(const mg_node *n, int i)
{
    return n->gout && i >= 0 && i < n->n_out ? n->gout[i] : NULL;
}
mg_tensor *mg_node_grad_input(const mg_node *n, int i) { return n->gin && i >= 0 && i < n->n_in ? n->gin[i] : NULL; }
int mg_node_needs_grad(const mg_node *n, int i) { return n->needs_grad && i >= 0 && i < n->n_in && n->needs_grad[i]; }
int mg_node_training(const mg_node *n) { return n->training; }
const mg_attrs *mg_node_attrs(const mg_node *n) { return n->attrs; }
const char *mg_node_name(const mg_node *n) { return n->name; }
const char *mg_node_op_name(const mg_node *n) { return n->op->name; }
mg_ctx *mg_node_ctx(const mg_node *n) { return n->ctx; }
void *mg_node_state(const mg_node *n) { return n->state; }
void mg_node_set_state(mg_node *n, void *state) { n->state = state; }

mg_status mg_node_set_output(mg_node *n, int i, mg_dtype dt, int rank, const int64_t *shape)
{
    if (!n->inferring)
        return mg_node_fail(n, MG_ERR_STATE, "mg_node_set_output is only allowed in infer");
    if (i < 0 || i >= n->n_out)
        return mg_node_fail(n, MG_ERR_ARG, "output index %d out of range (op declares %d)", i, n->n_out);
    if (mg_tensor_init(n->out[i], dt, rank, shape, NULL) != MG_OK)
        return mg_node_fail(n, MG_ERR_SHAPE, "output %d: bad dtype, rank %d or negative size", i, rank);
    if (i + 1 > n->n_declared) n->n_declared = i + 1;
    return MG_OK;
}

mg_status mg_node_fail(mg_node *n, mg_status status, const char *fmt, ...)
{
    char msg[1024], ins[768];
    size_t k = 0;
    ins[0] = 0;
    for (int i = 0; i < n->n_in && k < sizeof ins; i++) {
        char t[200];
        k += (size_t)snprintf(ins + k, sizeof ins - k, "%s%s", i ? ", " : "",
                              n->in[i] ? mg_tensor_str(n->in[i], t, sizeof t) : "?");
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return mg_ctx_fail(n->ctx, status, "node '%s' (%s) inputs [%s]: %s", n->name, n->op->name, ins, msg);
}
