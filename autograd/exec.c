/* autograd/exec.c: compiling a graph into an mg_exec and running it.
 *
 * Compile decides which nodes run (those the requested losses/outputs need),
 * which values carry gradients (on a path from a parameter or requested
 * value to a loss), allocates every buffer once, plans gradient
 * accumulation, and calls each op's prepare. Forward runs nodes in insertion
 * order (a topological order); backward walks the same list in reverse. */
#include "internal.h"

#include <string.h>

enum { SLOT_NONE = 0, SLOT_DIRECT, SLOT_SCRATCH, SLOT_PARAM };

typedef struct mg_enode {
    mg_node nd;
    unsigned char *slot;      /* [n_in] SLOT_* for backward */
    mg_tensor **scratch;      /* [n_in] accumulation buffers (SCRATCH/PARAM) */
    unsigned char runs, bwd, prepared;
} mg_enode;

struct mg_exec {
    mg_graph *g;
    mg_ctx *ctx;
    int training;
    int nv, nn;
    mg_tensor *desc;          /* [nv] shapes as compiled */
    mg_tensor **val;          /* [nv] */
    mg_tensor **grad;         /* [nv] */
    mg_tensor **seed;         /* [nv] */
    mg_tensor **zero;         /* [nv] zero gradients for outputs no loss reaches */
    unsigned char *own_val, *own_grad, *needed, *on_path, *written;
    mg_enode *nodes;          /* [nn] */
    int n_fwd, n_bwd;
    int forward_done;
    size_t bytes;
};

static mg_status efail(mg_exec *e, mg_status s, const char *msg, const char *name)
{
    return mg_ctx_fail(e->ctx, s, "compile: %s '%s'", msg, name ? name : "?");
}

/* ---- shapes ---- */

static mg_status apply_shapes(mg_exec *e, const mg_compile_opts *o)
{
    mg_graph *g = e->g;
    for (int i = 0; i < e->nv; i++) e->desc[i] = g->vals[i].desc;
    if (!o->n_shapes) return MG_OK;
    for (int k = 0; k < o->n_shapes; k++) {
        int v = o->shape_inputs[k].id;
        if (v < 0 || v >= e->nv || g->vals[v].kind != MG_VALUE_INPUT)
            return mg_ctx_fail(e->ctx, MG_ERR_ARG, "compile: shape override %d is not a graph input", k);
        const mg_tensor *s = o->shapes[k];
        if (mg_tensor_init(&e->desc[v], s->dtype, s->rank, s->shape, NULL) != MG_OK)
            return efail(e, MG_ERR_ARG, "bad shape override for input", g->vals[v].name);
    }
    for (int k = 0; k < e->nn; k++) {
        const mg_gnode *n = &g->nodes[k];
        const mg_tensor *in[256];
        mg_tensor outs[MG_MAX_OUTPUTS];
        int no = 0;
        for (int i = 0; i < n->n_in; i++) in[i] = &e->desc[n->in[i]];
        mg_status s = mg_op_infer(e->ctx, n->op, n->name, n->attrs, in, n->n_in, outs, &no);
        if (s != MG_OK) return s;
        if (no != n->n_out)
            return efail(e, MG_ERR_SHAPE, "output count changed with the new input shapes at node", n->name);
        for (int i = 0; i < no; i++) e->desc[n->out[i]] = outs[i];
    }
    return MG_OK;
}

/* ---- which nodes run, which values need gradients ---- */

static int is_float(const mg_tensor *d) { return d->dtype == MG_F32 || d->dtype == MG_F64; }

static mg_status mark_needed(mg_exec *e, const mg_compile_opts *o)
{
    mg_graph *g = e->g;
    int any = o->n_losses + o->n_outputs;
    for (int k = 0; k < o->n_losses + o->n_outputs; k++) {
        int v = k < o->n_losses ? o->losses[k].id : o->outputs[k - o->n_losses].id;
        if (v < 0 || v >= e->nv) return mg_ctx_fail(e->ctx, MG_ERR_ARG, "compile: loss/output %d is not a value of this graph", k);
        e->needed[v] = 1;
    }
    for (int k = e->nn - 1; k >= 0; k--) {
        const mg_gnode *n = &g->nodes[k];
        int run = !any;
        for (int i = 0; i < n->n_out && !run; i++) run = e->needed[n->out[i]];
        if (!run) continue;
        e->nodes[k].runs = 1;
        e->n_fwd++;
        for (int i = 0; i < n->n_out; i++) e->needed[n->out[i]] = 1;
        for (int i = 0; i < n->n_in; i++) e->needed[n->in[i]] = 1;
    }
    return MG_OK;
}

static int diff_input(const mg_gnode *n, int i)
{
    return !(i < 32 && (n->op->nondiff_inputs >> i) & 1u);
}

static mg_status mark_grad_path(mg_exec *e, const mg_compile_opts *o)
{
    mg_graph *g = e->g;
    unsigned char *from = mg_calloc((size_t)e->nv, 1), *to = mg_calloc((size_t)e->nv, 1);
    if (!from || !to) {
        mg_free(from);
        mg_free(to);
        return mg_ctx_fail(e->ctx, MG_ERR_NOMEM, "compile: out of memory");
    }
    for (int v = 0; v < e->nv; v++)
        from[v] = g->vals[v].kind == MG_VALUE_PARAM && g->vals[v].param->requires_grad;
    for (int k = 0; k < o->n_grad_values; k++) {
        int v = o->grad_values[k].id;
        if (v >= 0 && v < e->nv) from[v] = 1;
    }
    for (int k = 0; k < e->nn; k++) {
        const mg_gnode *n = &g->nodes[k];
        int any = 0;
        for (int i = 0; i < n->n_in; i++) any |= from[n->in[i]] && diff_input(n, i);
        for (int i = 0; i < n->n_out; i++) from[n->out[i]] = (unsigned char)any;
    }
    for (int k = 0; k < o->n_losses; k++) to[o->losses[k].id] = 1;
    for (int k = e->nn - 1; k >= 0; k--) {
        const mg_gnode *n = &g->nodes[k];
        int any = 0;
        for (int i = 0; i < n->n_out; i++) any |= to[n->out[i]];
        for (int i = 0; i < n->n_in && any; i++)
            if (diff_input(n, i)) to[n->in[i]] = 1;
    }
    for (int v = 0; v < e->nv; v++) e->on_path[v] = from[v] && to[v] && is_float(&e->desc[v]);
    mg_free(from);
    mg_free(to);
    return MG_OK;
}

static mg_status mark_backward(mg_exec *e)
{
    mg_graph *g = e->g;
    for (int k = 0; k < e->nn; k++) {
        const mg_gnode *n = &g->nodes[k];
        int any = 0, out = 0;
        for (int i = 0; i < n->n_in; i++) any |= e->on_path[n->in[i]] && diff_input(n, i);
        for (int i = 0; i < n->n_out; i++) out |= e->on_path[n->out[i]];
        /* An input on the path is not enough: some output must reach a loss
         * too, or the backward would only push zeros. */
        if (!any || !out || !e->nodes[k].runs) continue;
        if (!n->op->backward)
            return mg_ctx_fail(e->ctx, MG_ERR_NOGRAD,
                               "compile: node '%s' (op %s) lies on a gradient path but op '%s' has no "
                               "backward; detach its inputs or compile forward-only",
                               n->name, n->op->name, n->op->name);
        e->nodes[k].bwd = 1;
        e->n_bwd++;
    }
    return MG_OK;
}

/* ---- buffers ---- */

static mg_tensor *new_like(mg_exec *e, const mg_tensor *d)
{
    mg_tensor *t = mg_tensor_new(d->dtype, d->rank, d->shape);
    if (t) e->bytes += mg_tensor_nbytes(t);
    return t;
}

static mg_status alloc_values(mg_exec *e)
{
    mg_graph *g = e->g;
    for (int v = 0; v < e->nv; v++) {
        const mg_gvalue *gv = &g->vals[v];
        if (gv->kind == MG_VALUE_PARAM) {
            if (!mg_tensor_same_shape(gv->param->value, &e->desc[v]))
                return efail(e, MG_ERR_SHAPE, "parameter changed shape since it was added to the graph:", gv->name);
            e->val[v] = gv->param->value;
            if (e->on_path[v]) e->grad[v] = gv->param->grad;
            continue;
        }
        if (!e->needed[v] && gv->kind != MG_VALUE_INPUT) continue;
        if (!(e->val[v] = new_like(e, &e->desc[v]))) return efail(e, MG_ERR_NOMEM, "out of memory for value", gv->name);
        e->own_val[v] = 1;
        if (gv->kind == MG_VALUE_CONST) mg_tensor_copy(e->val[v], gv->cst);
        mg_tensor_set_name(e->val[v], gv->name);
        if (e->on_path[v] && !(e->grad[v] = new_like(e, &e->desc[v])))
            return efail(e, MG_ERR_NOMEM, "out of memory for the gradient of", gv->name);
        e->own_grad[v] = e->grad[v] != NULL;
    }
    return MG_OK;
}

static mg_status alloc_grad_values(mg_exec *e, const mg_compile_opts *o)
{
    for (int k = 0; k < o->n_grad_values; k++) {
        int v = o->grad_values[k].id;
        if (v < 0 || v >= e->nv) return mg_ctx_fail(e->ctx, MG_ERR_ARG, "compile: grad value %d is not a value of this graph", k);
        if (e->grad[v] || !is_float(&e->desc[v])) continue;
        if (!(e->grad[v] = new_like(e, &e->desc[v]))) return efail(e, MG_ERR_NOMEM, "out of memory for the gradient of", e->g->vals[v].name);
        e->own_grad[v] = 1;
    }
    for (int k = 0; k < o->n_losses; k++) {
        int v = o->losses[k].id;
        if (!(e->seed[v] = new_like(e, &e->desc[v]))) return efail(e, MG_ERR_NOMEM, "out of memory for the seed of", e->g->vals[v].name);
        mg_tensor_fill(e->seed[v], 1.0);
        e->written[v] = 1;
    }
    return MG_OK;
}

/* Plans, for every backward slot, whether it writes straight into the value's
 * gradient (first writer) or into a scratch buffer that is added. */
static mg_status plan_slots(mg_exec *e)
{
    mg_graph *g = e->g;
    for (int k = e->nn - 1; k >= 0; k--) {
        mg_enode *en = &e->nodes[k];
        const mg_gnode *n = &g->nodes[k];
        if (!en->bwd) continue;
        for (int i = 0; i < n->n_in; i++) {
            int v = n->in[i];
            if (!en->nd.needs_grad[i]) continue;
            int param = g->vals[v].kind == MG_VALUE_PARAM;
            en->slot[i] = param ? SLOT_PARAM : e->written[v] ? SLOT_SCRATCH : SLOT_DIRECT;
            e->written[v] = 1;
            if (en->slot[i] != SLOT_DIRECT && !(en->scratch[i] = new_like(e, &e->desc[v])))
                return efail(e, MG_ERR_NOMEM, "out of memory for a gradient buffer of node", n->name);
        }
        for (int i = 0; i < n->n_out; i++) {
            int v = n->out[i];
            if (e->grad[v]) {
                en->nd.gout[i] = e->grad[v];
            } else {
                if (!e->zero[v] && !(e->zero[v] = new_like(e, &e->desc[v])))
                    return efail(e, MG_ERR_NOMEM, "out of memory for a gradient buffer of node", n->name);
                en->nd.gout[i] = e->zero[v];
            }
        }
    }
    return MG_OK;
}

static mg_status setup_node(mg_exec *e, int k)
{
    const mg_gnode *n = &e->g->nodes[k];
    mg_enode *en = &e->nodes[k];
    mg_node *nd = &en->nd;
    nd->ctx = e->ctx;
    nd->op = n->op;
    nd->name = n->name;
    nd->attrs = n->attrs;
    nd->n_in = n->n_in;
    nd->n_out = n->n_out;
    nd->training = e->training;
    nd->in = mg_calloc((size_t)n->n_in + 1, sizeof *nd->in);
    nd->gin = mg_calloc((size_t)n->n_in + 1, sizeof *nd->gin);
    nd->needs_grad = mg_calloc((size_t)n->n_in + 1, 1);
    en->slot = mg_calloc((size_t)n->n_in + 1, 1);
    en->scratch = mg_calloc((size_t)n->n_in + 1, sizeof *en->scratch);
    nd->out = mg_calloc((size_t)n->n_out, sizeof *nd->out);
    nd->gout = mg_calloc((size_t)n->n_out, sizeof *nd->gout);
    if (!nd->in || !nd->gin || !nd->needs_grad || !en->slot || !en->scratch || !nd->out || !nd->gout)
        return efail(e, MG_ERR_NOMEM, "out of memory setting up node", n->name);
    for (int i = 0; i < n->n_in; i++) {
        nd->in[i] = e->val[n->in[i]];
        nd->needs_grad[i] = en->bwd && e->on_path[n->in[i]] && diff_input(n, i);
    }
    for (int i = 0; i < n->n_out; i++) nd->out[i] = e->val[n->out[i]];
    return MG_OK;
}

static mg_status prepare_nodes(mg_exec *e)
{
    for (int k = 0; k < e->nn; k++) {
        mg_enode *en = &e->nodes[k];
        if (!en->runs) continue;
        if (en->nd.op->prepare) {
            mg_status s = en->nd.op->prepare(&en->nd);
            if (s != MG_OK) return s;
        }
        en->prepared = 1;
    }
    return MG_OK;
}

static mg_status check_opts(mg_graph *g, const mg_compile_opts *o)
{
    if (!o || o->struct_size < sizeof(size_t))
        return mg_ctx_fail(g->ctx, MG_ERR_ARG, "compile: missing options (set struct_size)");
    if (g->status != MG_OK)
        return mg_ctx_fail(g->ctx, g->status, "compile: the graph has an earlier building error (%s)",
                           mg_status_name(g->status));
    if (o->training && o->n_losses < 1)
        return mg_ctx_fail(g->ctx, MG_ERR_ARG, "compile: training needs at least one loss value");
    if ((o->n_losses && !o->losses) || (o->n_outputs && !o->outputs) ||
        (o->n_grad_values && !o->grad_values) || (o->n_shapes && (!o->shapes || !o->shape_inputs)))
        return mg_ctx_fail(g->ctx, MG_ERR_ARG, "compile: a count is set but its array is NULL");
    return MG_OK;
}

mg_status mg_graph_compile(mg_graph *g, const mg_compile_opts *opts, mg_exec **out)
{
    if (!g || !out) return MG_ERR_ARG;
    *out = NULL;
    mg_compile_opts o = {0};
    if (opts) memcpy(&o, opts, opts->struct_size < sizeof o ? opts->struct_size : sizeof o);
    mg_status s = check_opts(g, opts ? &o : NULL);
    if (s != MG_OK) return s;
    mg_exec *e = mg_calloc(1, sizeof *e);
    if (!e) return mg_ctx_fail(g->ctx, MG_ERR_NOMEM, "compile: out of memory");
    e->g = g;
    e->ctx = g->ctx;
    e->training = o.training;
    e->nv = g->n_vals;
    e->nn = g->n_nodes;
    size_t nv = (size_t)e->nv + 1;
    e->desc = mg_calloc(nv, sizeof *e->desc);
    e->val = mg_calloc(nv, sizeof *e->val);
    e->grad = mg_calloc(nv, sizeof *e->grad);
    e->seed = mg_calloc(nv, sizeof *e->seed);
    e->zero = mg_calloc(nv, sizeof *e->zero);
    e->own_val = mg_calloc(nv, 1);
    e->own_grad = mg_calloc(nv, 1);
    e->needed = mg_calloc(nv, 1);
    e->on_path = mg_calloc(nv, 1);
    e->written = mg_calloc(nv, 1);
    e->nodes = mg_calloc((size_t)e->nn + 1, sizeof *e->nodes);
    if (!e->desc || !e->val || !e->grad || !e->seed || !e->zero || !e->own_val || !e->own_grad ||
        !e->needed || !e->on_path || !e->written || !e->nodes)
        s = mg_ctx_fail(g->ctx, MG_ERR_NOMEM, "compile: out of memory");
    if (s == MG_OK) s = apply_shapes(e, &o);
    if (s == MG_OK) s = mark_needed(e, &o);
    if (s == MG_OK && e->training) s = mark_grad_path(e, &o);
    if (s == MG_OK && e->training) s = mark_backward(e);
    if (s == MG_OK) s = alloc_values(e);
    if (s == MG_OK && e->training) s = alloc_grad_values(e, &o);
    for (int k = 0; s == MG_OK && k < e->nn; k++)
        if (e->nodes[k].runs) s = setup_node(e, k);
    if (s == MG_OK && e->training) s = plan_slots(e);
    if (s == MG_OK) s = prepare_nodes(e);
    if (s != MG_OK) {
        mg_exec_free(e);
        return s;
    }
    *out = e;
    return MG_OK;
}

void mg_exec_free(mg_exec *e)
{
    if (!e) return;
    for (int k = 0; e->nodes && k < e->nn; k++) {
        mg_enode *en = &e->nodes[k];
        if (en->prepared && en->nd.op->release) en->nd.op->release(&en->nd);
        for (int i = 0; en->scratch && i < en->nd.n_in; i++) mg_tensor_free(en->scratch[i]);
        mg_free(en->scratch);
        mg_free(en->slot);
        mg_free(en->nd.in);
        mg_free(en->nd.gin);
        mg_free(en->nd.needs_grad);
        mg_free(en->nd.out);
        mg_free(en->nd.gout);
    }
    for (int v = 0; v < e->nv; v++) {
        if (e->own_val && e->own_val[v]) mg_tensor_free(e->val[v]);
        if (e->own_grad && e->own_grad[v]) mg_tensor_free(e->grad[v]);
        if (e->seed) mg_tensor_free(e->seed[v]);
        if (e->zero) mg_tensor_free(e->zero[v]);
    }
    mg_free(e->desc);
    mg_free(e->val);
    mg_free(e->grad);
    mg_free(e->seed);
    mg_free(e->zero);
    mg_free(e->own_val);
    mg_free(e->own_grad);
    mg_free(e->needed);
    mg_free(e->on_path);
    mg_free(e->written);
    mg_free(e->nodes);
    mg_free(e);
}

/* ---- running ---- */

mg_status mg_exec_forward(mg_exec *e)
{
    if (!e) return MG_ERR_ARG;
    e->forward_done = 0;
    for (int k = 0; k < e->nn; k++) {
        mg_enode *en = &e->nodes[k];
        if (!en->runs) continue;
        mg_status s = en->nd.op->forward(&en->nd);
        if (s != MG_OK) return s;
    }
    e->forward_done = 1;
    return MG_OK;
}

/* Picks where slot i of a node writes its gradient for this backward. */
static mg_tensor *slot_target(mg_exec *e, mg_enode *en, int i, int v)
{
    switch (en->slot[i]) {
    case SLOT_DIRECT: return e->grad[v];
    case SLOT_PARAM: {
        mg_param *p = e->g->vals[v].param;
        if (p->grad_is_zero) { /* first contribution since zeroing: write directly */
            p->grad_is_zero = 0;
            return p->grad;
        }
        return en->scratch[i];
    }
    default: return en->scratch[i];
    }
}

static mg_status backward_node(mg_exec *e, int k)
{
    mg_enode *en = &e->nodes[k];
    const mg_gnode *n = &e->g->nodes[k];
    for (int i = 0; i < n->n_in; i++)
        en->nd.gin[i] = en->nd.needs_grad[i] ? slot_target(e, en, i, n->in[i]) : NULL;
    mg_status s = en->nd.op->backward(&en->nd);
    /* A slot that wrote into scratch is added to the value's gradient. */
    for (int i = 0; s == MG_OK && i < n->n_in; i++)
        if (en->nd.gin[i] && en->nd.gin[i] == en->scratch[i])
            mg_add_inplace(e->desc[n->in[i]].dtype, e->grad[n->in[i]]->data, en->scratch[i]->data,
                           mg_tensor_numel(en->scratch[i]));
    return s;
}

mg_status mg_exec_backward(mg_exec *e)
{
    if (!e) return MG_ERR_ARG;
    if (!e->training)
        return mg_ctx_fail(e->ctx, MG_ERR_STATE, "backward: this graph was compiled forward-only");
    if (!e->forward_done)
        return mg_ctx_fail(e->ctx, MG_ERR_STATE, "backward: call mg_exec_forward first");
    for (int v = 0; v < e->nv; v++) {
        if (e->seed[v] && e->grad[v]) mg_tensor_copy(e->grad[v], e->seed[v]);
        else if (e->own_grad[v] && !e->written[v]) mg_tensor_fill(e->grad[v], 0);
    }
    for (int k = e->nn - 1; k >= 0; k--) {
        if (!e->nodes[k].bwd) continue;
        mg_status s = backward_node(e, k);
        if (s != MG_OK) return s;
    }
    return MG_OK;
}

/* ---- access ---- */

static int vok(const mg_exec *e, mg_value v) { return e && v.id >= 0 && v.id < e->nv; }

mg_tensor *mg_exec_tensor(mg_exec *e, mg_value v) { return vok(e, v) ? e->val[v.id] : NULL; }
mg_tensor *mg_exec_grad(mg_exec *e, mg_value v) { return vok(e, v) ? e->grad[v.id] : NULL; }
mg_tensor *mg_exec_seed(mg_exec *e, mg_value v) { return vok(e, v) ? e->seed[v.id] : NULL; }
mg_graph *mg_exec_graph(const mg_exec *e) { return e->g; }

mg_status mg_exec_set_input(mg_exec *e, const char *name, const mg_tensor *src)
{
    mg_value v = mg_graph_find_value(e->g, name);
    if (!mg_value_ok(v) || e->g->vals[v.id].kind != MG_VALUE_INPUT)
        return mg_ctx_fail(e->ctx, MG_ERR_NOTFOUND, "set_input: the graph has no input named '%s'", name ? name : "(null)");
    mg_tensor *dst = e->val[v.id];
    if (mg_tensor_numel(dst) != mg_tensor_numel(src)) {
        char a[200], b[200];
        return mg_ctx_fail(e->ctx, MG_ERR_SHAPE, "set_input '%s': expects %s, got %s", name,
                           mg_tensor_str(dst, a, sizeof a), mg_tensor_str(src, b, sizeof b));
    }
    e->forward_done = 0;
    return mg_tensor_copy(dst, src);
}

int mg_exec_num_forward_nodes(const mg_exec *e) { return e->n_fwd; }
int mg_exec_num_backward_nodes(const mg_exec *e) { return e->n_bwd; }
int mg_exec_node_runs(const mg_exec *e, int k) { return k >= 0 && k < e->nn && e->nodes[k].runs; }
int mg_exec_node_backward_runs(const mg_exec *e, int k) { return k >= 0 && k < e->nn && e->nodes[k].bwd; }
size_t mg_exec_bytes(const mg_exec *e) { return e->bytes; }
