/* autograd/optim.c: SGD (momentum, dampening, Nesterov, weight decay) and
 * Adam (AMSGrad, eps, weight decay) with PyTorch's update rules, over the
 * parameters of an mg_params set. State tensors are created zeroed on first
 * use and exposed by name for checkpoints. */
#include "internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

enum { OPT_SGD = 1, OPT_ADAM };

struct mg_optim {
    int kind;
    mg_ctx *ctx;
    mg_params *ps;
    mg_sgd_opts sgd;
    mg_adam_opts adam;
    int64_t steps;
    int slots;                /* state tensors per parameter */
    mg_tensor **state;        /* [n_params * slots], NULL until made */
    int n_params;
};

mg_adam_opts mg_adam_defaults(void)
{
    return (mg_adam_opts){.lr = 1e-3, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8};
}

static const char *slot_name(const mg_optim *o, int s)
{
    static const char *const sgd[] = {"momentum"};
    static const char *const adam[] = {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"};
    return o->kind == OPT_SGD ? sgd[s] : adam[s];
}

static mg_status make(mg_ctx *ctx, mg_params *ps, int kind, int slots, mg_optim **out)
{
    mg_optim *o = mg_calloc(1, sizeof *o);
    if (o) o->state = mg_calloc((size_t)mg_params_count(ps) * (size_t)slots + 1, sizeof *o->state);
    if (!o || !o->state) {
        mg_free(o);
        return mg_ctx_fail(ctx, MG_ERR_NOMEM, "optimizer: out of memory");
    }
    o->kind = kind;
    o->ctx = ctx;
    o->ps = ps;
    o->slots = slots;
    o->n_params = mg_params_count(ps);
    *out = o;
    return MG_OK;
}

mg_status mg_optim_sgd(mg_ctx *ctx, mg_params *ps, const mg_sgd_opts *so, mg_optim **out)
{
    if (!ctx || !ps || !so || !out) return MG_ERR_ARG;
    *out = NULL;
    if (!(so->lr >= 0)) return mg_ctx_fail(ctx, MG_ERR_ARG, "sgd: lr must be >= 0, got %g", so->lr);
    if (!(so->momentum >= 0)) return mg_ctx_fail(ctx, MG_ERR_ARG, "sgd: momentum must be >= 0, got %g", so->momentum);
    if (so->nesterov && (so->momentum <= 0 || so->dampening != 0))
        return mg_ctx_fail(ctx, MG_ERR_ARG, "sgd: nesterov needs momentum > 0 and dampening 0");
    mg_status s = make(ctx, ps, OPT_SGD, 1, out);
    if (s == MG_OK) (*out)->sgd = *so;
    return s;
}

mg_status mg_optim_adam(mg_ctx *ctx, mg_params *ps, const mg_adam_opts *ao, mg_optim **out)
{
    if (!ctx || !ps || !ao || !out) return MG_ERR_ARG;
    *out = NULL;
    if (!(ao->lr >= 0)) return mg_ctx_fail(ctx, MG_ERR_ARG, "adam: lr must be >= 0, got %g", ao->lr);
    if (!(ao->beta1 >= 0 && ao->beta1 < 1)) return mg_ctx_fail(ctx, MG_ERR_ARG, "adam: beta1 must be in [0, 1), got %g", ao->beta1);
    if (!(ao->beta2 >= 0 && ao->beta2 < 1)) return mg_ctx_fail(ctx, MG_ERR_ARG, "adam: beta2 must be in [0, 1), got %g", ao->beta2);
    if (!(ao->eps > 0)) return mg_ctx_fail(ctx, MG_ERR_ARG, "adam: eps must be > 0, got %g", ao->eps);
    if (!(ao->weight_decay >= 0)) return mg_ctx_fail(ctx, MG_ERR_ARG, "adam: weight_decay must be >= 0, got %g", ao->weight_decay);
    mg_status s = make(ctx, ps, OPT_ADAM, ao->amsgrad ? 3 : 2, out);
    if (s == MG_OK) (*out)->adam = *ao;
    return s;
}

void mg_optim_free(mg_optim *o)
{
    if (!o) return;
    for (int i = 0; i < o->n_params * o->slots; i++) mg_tensor_free(o->state[i]);
    mg_free(o->state);
    mg_free(o);
}

/* State slot s of parameter i, created zeroed on first use. */
static mg_tensor *state(mg_optim *o, int i, int s)
{
    mg_tensor **t = &o->state[i * o->slots + s];
    if (*t) return *t;
    const mg_param *p = mg_params_at(o->ps, i);
    char name[512];
    snprintf(name, sizeof name, "%s.%s", p->name, slot_name(o, s));
    *t = mg_tensor_new(p->value->dtype, p->value->rank, p->value->shape);
    if (*t && mg_tensor_set_name(*t, name) != MG_OK) {
        mg_tensor_free(*t);
        *t = NULL;
    }
    return *t;
}

/* Reads/writes element j of an f32 or f64 tensor without a switch per call. */
#define LD(t, j) ((t)->dtype == MG_F64 ? ((double *)(t)->data)[j] : (double)((float *)(t)->data)[j])
#define ST(t, j, x) do { if ((t)->dtype == MG_F64) ((double *)(t)->data)[j] = (x); \
                         else ((float *)(t)->data)[j] = (float)(x); } while (0)

static void sgd_param(mg_optim *o, mg_param *p, mg_tensor *buf)
{
    const mg_sgd_opts *s = &o->sgd;
    int64_t n = mg_tensor_numel(p->value);
    int first = o->steps == 0;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t j = 0; j < n; j++) {
        double g = LD(p->grad, j) + s->weight_decay * LD(p->value, j);
        if (s->momentum != 0) {
            double b = first ? g : s->momentum * LD(buf, j) + (1 - s->dampening) * g;
            ST(buf, j, b);
            g = s->nesterov ? g + s->momentum * b : b;
        }
        ST(p->value, j, LD(p->value, j) - s->lr * g);
    }
}

static void adam_param(mg_optim *o, mg_param *p, mg_tensor *m, mg_tensor *v, mg_tensor *vmax)
{
    const mg_adam_opts *a = &o->adam;
    double t = (double)o->steps + 1;
    double bc1 = 1 - pow(a->beta1, t), bc2 = sqrt(1 - pow(a->beta2, t));
    double step = a->lr / bc1;
    int64_t n = mg_tensor_numel(p->value);
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t j = 0; j < n; j++) {
        double g = LD(p->grad, j) + a->weight_decay * LD(p->value, j);
        double mj = a->beta1 * LD(m, j) + (1 - a->beta1) * g;
        double vj = a->beta2 * LD(v, j) + (1 - a->beta2) * g * g;
        ST(m, j, mj);
        ST(v, j, vj);
        if (vmax) {
            double mx = LD(vmax, j);
            vj = vj > mx ? vj : mx;
            ST(vmax, j, vj);
        }
        ST(p->value, j, LD(p->value, j) - step * mj / (sqrt(vj) / bc2 + a->eps));
    }
}

mg_status mg_optim_step(mg_optim *o)
{
    if (!o) return MG_ERR_ARG;
    if (mg_params_count(o->ps) != o->n_params)
        return mg_ctx_fail(o->ctx, MG_ERR_STATE, "optimizer: parameters were added after it was created");
    for (int i = 0; i < o->n_params; i++) {
        mg_param *p = mg_params_at(o->ps, i);
        if (!p->requires_grad) continue;
        mg_tensor *st[3] = {NULL, NULL, NULL};
        for (int s = 0; s < o->slots; s++)
            if (!(st[s] = state(o, i, s)))
                return mg_ctx_fail(o->ctx, MG_ERR_NOMEM, "optimizer: out of memory for the state of '%s'", p->name);
        if (o->kind == OPT_SGD) sgd_param(o, p, st[0]);
        else adam_param(o, p, st[0], st[1], st[2]);
    }
    o->steps++;
    return MG_OK;
}

double mg_optim_lr(const mg_optim *o) { return o->kind == OPT_SGD ? o->sgd.lr : o->adam.lr; }

void mg_optim_set_lr(mg_optim *o, double lr)
{
    if (o->kind == OPT_SGD) o->sgd.lr = lr;
    else o->adam.lr = lr;
}

int64_t mg_optim_steps(const mg_optim *o) { return o->steps; }
void mg_optim_set_steps(mg_optim *o, int64_t steps) { o->steps = steps; }
const char *mg_optim_name(const mg_optim *o) { return o->kind == OPT_SGD ? "sgd" : "adam"; }
int mg_optim_num_state(mg_optim *o) { return o->n_params * o->slots; }

mg_tensor *mg_optim_state(mg_optim *o, int i)
{
    if (!o || i < 0 || i >= o->n_params * o->slots) return NULL;
    return state(o, i / o->slots, i % o->slots);
}
