/* autograd/params.c: the parameter store: named long-lived tensors with
 * their gradients, gradient zeroing and global-norm clipping. */
#include "internal.h"

#include <math.h>
#include <string.h>

struct mg_params {
    mg_param **v;
    int n, cap;
};

mg_status mg_params_new(mg_params **out)
{
    if (!out) return MG_ERR_ARG;
    *out = mg_calloc(1, sizeof **out);
    return *out ? MG_OK : MG_ERR_NOMEM;
}

static void param_free(mg_param *p)
{
    if (!p) return;
    mg_free(p->name);
    mg_tensor_free(p->value);
    mg_tensor_free(p->grad);
    mg_free(p);
}

void mg_params_free(mg_params *ps)
{
    if (!ps) return;
    for (int i = 0; i < ps->n; i++) param_free(ps->v[i]);
    mg_free(ps->v);
    mg_free(ps);
}

mg_status mg_params_add(mg_params *ps, const char *name, mg_dtype dt, int rank, const int64_t *shape,
                        mg_param **out)
{
    if (out) *out = NULL;
    if (!ps || !name || !name[0]) return MG_ERR_ARG;
    if (mg_params_find(ps, name)) return MG_ERR_EXISTS;
    if (mg_grow((void **)&ps->v, &ps->cap, ps->n + 1, sizeof *ps->v) != MG_OK) return MG_ERR_NOMEM;
    mg_param *p = mg_calloc(1, sizeof *p);
    if (!p) return MG_ERR_NOMEM;
    p->name = mg_strdup(name);
    p->value = mg_tensor_new(dt, rank, shape);
    p->grad = mg_tensor_new(dt, rank, shape);
    if (!p->name || !p->value || !p->grad || mg_tensor_set_name(p->value, name) != MG_OK) {
        int bad = !p->value && p->name;
        param_free(p);
        return bad && (rank < 0 || rank > MG_MAX_RANK || !mg_dtype_size(dt)) ? MG_ERR_ARG : MG_ERR_NOMEM;
    }
    p->requires_grad = 1;
    p->grad_is_zero = 1;
    ps->v[ps->n++] = p;
    if (out) *out = p;
    return MG_OK;
}

mg_param *mg_params_find(const mg_params *ps, const char *name)
{
    for (int i = 0; ps && name && i < ps->n; i++)
        if (strcmp(ps->v[i]->name, name) == 0) return ps->v[i];
    return NULL;
}

int mg_params_count(const mg_params *ps) { return ps ? ps->n : 0; }
mg_param *mg_params_at(const mg_params *ps, int i) { return ps && i >= 0 && i < ps->n ? ps->v[i] : NULL; }

int64_t mg_params_numel(const mg_params *ps)
{
    int64_t n = 0;
    for (int i = 0; ps && i < ps->n; i++) n += mg_tensor_numel(ps->v[i]->value);
    return n;
}

void mg_params_zero_grad(mg_params *ps)
{
    for (int i = 0; ps && i < ps->n; i++) {
        memset(ps->v[i]->grad->data, 0, mg_tensor_nbytes(ps->v[i]->grad));
        ps->v[i]->grad_is_zero = 1;
    }
}

/* Sum of squares of a gradient; typed loops for f32/f64 (the per-step
 * case), element access for anything else. */
static double sum_sq(const mg_tensor *g)
{
    int64_t n = mg_tensor_numel(g);
    double ss = 0;
    if (g->dtype == MG_F32) {
        const float *x = g->data;
        for (int64_t j = 0; j < n; j++) ss += (double)x[j] * x[j];
    } else if (g->dtype == MG_F64) {
        const double *x = g->data;
        for (int64_t j = 0; j < n; j++) ss += x[j] * x[j];
    } else {
        for (int64_t j = 0; j < n; j++) ss += mg_tensor_get(g, j) * mg_tensor_get(g, j);
    }
    return ss;
}

static void scale(mg_tensor *g, double k)
{
    int64_t n = mg_tensor_numel(g);
    if (g->dtype == MG_F32) {
        float *x = g->data;
        for (int64_t j = 0; j < n; j++) x[j] = (float)(x[j] * k);
    } else if (g->dtype == MG_F64) {
        double *x = g->data;
        for (int64_t j = 0; j < n; j++) x[j] *= k;
    } else {
        for (int64_t j = 0; j < n; j++) mg_tensor_set(g, j, mg_tensor_get(g, j) * k);
    }
}

double mg_params_clip_grad_norm(mg_params *ps, double max_norm)
{
    double ss = 0;
    for (int i = 0; ps && i < ps->n; i++) ss += sum_sq(ps->v[i]->grad);
    double norm = sqrt(ss);
    if (!(norm > max_norm) || max_norm <= 0) return norm;
    double k = max_norm / (norm + 1e-6);
    for (int i = 0; i < ps->n; i++) scale(ps->v[i]->grad, k);
    return norm;
}
