/* autograd/gradcheck.c: finite-difference gradient checks of whole graphs
 * or single ops against their analytic backward. See gradcheck.h. */
#include "internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

mg_gradcheck_opts mg_gradcheck_defaults(void)
{
    return (mg_gradcheck_opts){.struct_size = sizeof(mg_gradcheck_opts), .kink_aware = 1,
                               .seed = 42, .random_seed_grads = 1};
}

typedef struct gc_run {
    mg_exec *e;
    const mg_value *losses;
    int n_losses;
    const mg_value *inputs;
    const mg_tensor *const *data;
    int n_inputs;
} gc_run;

/* Forward, then L = sum_k <seed_k, loss_k> in double. NAN on failure. */
static double eval_loss(gc_run *r)
{
    if (mg_exec_forward(r->e) != MG_OK) return NAN;
    double L = 0;
    for (int k = 0; k < r->n_losses; k++) {
        const mg_tensor *y = mg_exec_tensor(r->e, r->losses[k]);
        const mg_tensor *s = mg_exec_seed(r->e, r->losses[k]);
        int64_t n = mg_tensor_numel(y);
        for (int64_t j = 0; j < n; j++) L += mg_tensor_get(s, j) * mg_tensor_get(y, j);
    }
    return L;
}

static mg_status setup(gc_run *r, const mg_gradcheck_opts *o)
{
    mg_rng rng;
    mg_rng_seed(&rng, o->seed);
    for (int k = 0; k < r->n_losses; k++) {
        mg_tensor *s = mg_exec_seed(r->e, r->losses[k]);
        if (o->random_seed_grads) mg_tensor_rand_uniform(s, &rng, -1, 1);
    }
    for (int i = 0; i < r->n_inputs; i++) {
        mg_tensor *t = mg_exec_tensor(r->e, r->inputs[i]);
        if (!t || mg_tensor_copy(t, r->data[i]) != MG_OK) return MG_ERR_SHAPE;
    }
    return MG_OK;
}

typedef struct gc_tol {
    double eps, atol, rtol;
} gc_tol;

static gc_tol tolerances(const mg_gradcheck_opts *o, mg_dtype dt)
{
    int f64 = dt == MG_F64;
    gc_tol t = {o->eps, o->atol, o->rtol};
    if (t.eps <= 0) t.eps = f64 ? 1e-6 : 5e-3;
    if (t.atol <= 0) t.atol = f64 ? 1e-7 : 2e-3;
    if (t.rtol <= 0) t.rtol = f64 ? 1e-5 : 2e-2;
    return t;
}

/* Sets element j of t to x + d and returns the step actually stored. */
static double nudge(mg_tensor *t, int64_t j, double x, double d)
{
    mg_tensor_set(t, j, x + d);
    return mg_tensor_get(t, j) - x;
}

typedef struct gc_elem {
    double analytic, numeric;
    int kink, bad;
} gc_elem;

static gc_elem check_elem(gc_run *r, mg_tensor *t, int64_t j, double a, double L0, gc_tol tol, int kink_aware)
{
    gc_elem el = {.analytic = a};
    double x = mg_tensor_get(t, j), h = tol.eps * fmax(1.0, fabs(x));
    double hp = nudge(t, j, x, h);
    double Lp = eval_loss(r);
    double hm = -nudge(t, j, x, -h);
    double Lm = eval_loss(r);
    mg_tensor_set(t, j, x);
    el.numeric = (Lp - Lm) / (hp + hm);
    double err = fabs(a - el.numeric), lim = tol.atol + tol.rtol * fmax(fabs(a), fabs(el.numeric));
    el.bad = !(err <= lim);
    if (el.bad && kink_aware) {
        double dp = (Lp - L0) / hp, dm = (L0 - Lm) / hm;
        double gap = fabs(dp - dm), scale = fmax(fabs(dp), fabs(dm));
        double slack = tol.atol + tol.rtol * scale;
        if (gap > 10 * slack && a >= fmin(dp, dm) - slack && a <= fmax(dp, dm) + slack) {
            el.kink = 1;
            el.bad = 0;
        }
    }
    return el;
}

static void note(mg_gradcheck_report *rep, int w, int64_t j, gc_elem el)
{
    double err = fabs(el.analytic - el.numeric);
    double rel = err / fmax(1e-12, fmax(fabs(el.analytic), fabs(el.numeric)));
    rep->checked++;
    rep->failed += el.bad;
    rep->skipped_kinks += el.kink;
    if (el.kink) return;
    if (rel > rep->max_rel_err) rep->max_rel_err = rel;
    if (err > rep->max_abs_err || (el.bad && rep->failed == 1)) {
        if (err > rep->max_abs_err) rep->max_abs_err = err;
        if (el.bad || rep->failed == 0) {
            rep->worst_value = w;
            rep->worst_index = j;
            rep->worst_analytic = el.analytic;
            rep->worst_numeric = el.numeric;
        }
    }
}

static mg_status check_value(gc_run *r, mg_graph *g, mg_value v, int w, double L0, const mg_gradcheck_opts *o,
                             mg_gradcheck_report *rep)
{
    mg_tensor *t = mg_exec_tensor(r->e, v);
    const mg_tensor *gr = mg_exec_grad(r->e, v);
    if (!t) return mg_ctx_fail(g->ctx, MG_ERR_ARG, "gradcheck: value '%s' is not computed", mg_graph_value_name(g, v));
    int64_t n = mg_tensor_numel(t);
    mg_tensor *ga = gr ? mg_tensor_clone(gr) : mg_tensor_new(t->dtype, t->rank, t->shape);
    if (!ga) return mg_ctx_fail(g->ctx, MG_ERR_NOMEM, "gradcheck: out of memory");
    gc_tol tol = tolerances(o, t->dtype);
    int64_t max = o->max_per_value > 0 ? o->max_per_value : 4096;
    int64_t step = n > max ? (n + max - 1) / max : 1;
    for (int64_t j = 0; j < n; j += step) {
        gc_elem el = check_elem(r, t, j, mg_tensor_get(ga, j), L0, tol, o->kink_aware);
        note(rep, w, j, el);
    }
    mg_tensor_free(ga);
    return MG_OK;
}

static void summarise(mg_graph *g, const mg_value *wrt, mg_gradcheck_report *rep)
{
    const char *name = rep->checked ? mg_graph_value_name(g, wrt[rep->worst_value]) : "-";
    snprintf(rep->message, sizeof rep->message,
             "%d of %d elements failed (%d kinks skipped); worst: %s[%lld] analytic %.8g numeric %.8g; "
             "max abs err %.3g, max rel err %.3g",
             rep->failed, rep->checked, rep->skipped_kinks, name, (long long)rep->worst_index,
             rep->worst_analytic, rep->worst_numeric, rep->max_abs_err, rep->max_rel_err);
}

/* Clears the gradients of parameters being checked, so backward sets them. */
static void zero_param_grads(mg_graph *g, const mg_value *wrt, int n_wrt)
{
    for (int i = 0; i < n_wrt; i++) {
        mg_param *p = mg_graph_value_param(g, wrt[i]);
        if (p) {
            mg_tensor_fill(p->grad, 0);
            p->grad_is_zero = 1;
        }
    }
}

mg_status mg_gradcheck_graph(mg_graph *g, const mg_value *losses, int n_losses, const mg_value *wrt, int n_wrt,
                             const mg_value *inputs, const mg_tensor *const *input_data, int n_inputs,
                             const mg_gradcheck_opts *opts, mg_gradcheck_report *report)
{
    mg_gradcheck_report dummy;
    mg_gradcheck_report *rep = report ? report : &dummy;
    memset(rep, 0, sizeof *rep);
    mg_gradcheck_opts o = mg_gradcheck_defaults();
    if (opts) memcpy(&o, opts, opts->struct_size < sizeof o ? opts->struct_size : sizeof o);
    mg_compile_opts co = {.struct_size = sizeof co, .training = 1, .losses = losses, .n_losses = n_losses,
                          .grad_values = wrt, .n_grad_values = n_wrt};
    gc_run r = {.losses = losses, .n_losses = n_losses, .inputs = inputs, .data = input_data, .n_inputs = n_inputs};
    mg_status s = mg_graph_compile(g, &co, &r.e);
    if (s != MG_OK) return s;
    s = setup(&r, &o);
    if (s != MG_OK) {
        mg_exec_free(r.e);
        return mg_ctx_fail(g->ctx, s, "gradcheck: input data does not match the graph's inputs");
    }
    zero_param_grads(g, wrt, n_wrt);
    double L0 = eval_loss(&r);
    s = isnan(L0) ? MG_ERR_NUMERIC : mg_exec_backward(r.e);
    for (int i = 0; s == MG_OK && i < n_wrt; i++) s = check_value(&r, g, wrt[i], i, L0, &o, rep);
    mg_exec_free(r.e);
    if (s != MG_OK) return s;
    summarise(g, wrt, rep);
    return rep->failed ? MG_ERR_NUMERIC : MG_OK;
}

mg_status mg_gradcheck_op(mg_ctx *ctx, const char *op, const mg_tensor *const *inputs, int n_inputs,
                          const mg_attrs *attrs, const mg_gradcheck_opts *opts, mg_gradcheck_report *report)
{
    if (n_inputs < 0 || n_inputs > 64) return mg_ctx_fail(ctx, MG_ERR_ARG, "gradcheck: 0..64 inputs");
    const mg_op_def *def = mg_registry_find_op(ctx->reg, op);
    if (!def) return mg_ctx_fail(ctx, MG_ERR_NOTFOUND, "gradcheck: unknown op '%s'", op);
    mg_graph *g = NULL;
    mg_status s = mg_graph_new(ctx, &g);
    if (s != MG_OK) return s;
    mg_value in[64], wrt[64], outs[MG_MAX_OUTPUTS];
    int n_wrt = 0, n_out = 0;
    for (int i = 0; i < n_inputs; i++) {
        char name[16];
        snprintf(name, sizeof name, "in%d", i);
        in[i] = mg_graph_input(g, name, inputs[i]->dtype, inputs[i]->rank, inputs[i]->shape);
        int fl = inputs[i]->dtype == MG_F32 || inputs[i]->dtype == MG_F64;
        if (fl && !(i < 32 && (def->nondiff_inputs >> i) & 1u)) wrt[n_wrt++] = in[i];
    }
    s = mg_graph_node(g, op, op, in, n_inputs, attrs, outs, MG_MAX_OUTPUTS, &n_out);
    mg_value losses[MG_MAX_OUTPUTS];
    int n_losses = 0;
    for (int i = 0; s == MG_OK && i < n_out; i++) {
        mg_dtype dt = mg_graph_value_desc(g, outs[i])->dtype;
        if (dt == MG_F32 || dt == MG_F64) losses[n_losses++] = outs[i];
    }
    if (s == MG_OK)
        s = mg_gradcheck_graph(g, losses, n_losses, wrt, n_wrt, in, inputs, n_inputs, opts, report);
    mg_graph_free(g);
    return s;
}
