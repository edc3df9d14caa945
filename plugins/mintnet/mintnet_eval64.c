/* plugins/mintnet/mintnet_eval64.c: f(x) and the Jacobian diagonal D(x) of a
 * block in double precision (spec sections 2-3), on the double-precision
 * masked convolution. Used by the f64 forward and the float64 inverse. */
#include "mintnet.h"

#include <string.h>

mg_status mn_eval64_init(mn_eval64 *e, const mn_dims *d)
{
    memset(e, 0, sizeof *e);
    e->d = *d;
    int64_t ch = d->lc > d->c ? d->lc : d->c, big = d->n * d->lc * d->hw;
    e->pad = mg_calloc((size_t)(d->n * ch * (d->h + 2) * (d->w + 2)), sizeof(double));
    e->e1 = mg_malloc_aligned((size_t)big * sizeof(double));
    e->a1 = mg_malloc_aligned((size_t)big * sizeof(double));
    e->e2 = mg_malloc_aligned((size_t)big * sizeof(double));
    e->a2 = mg_malloc_aligned((size_t)big * sizeof(double));
    e->tau = mg_malloc_aligned((size_t)(d->c * d->hw) * sizeof(double));
    return e->pad && e->e1 && e->a1 && e->e2 && e->a2 && e->tau ? MG_OK : MG_ERR_NOMEM;
}

void mn_eval64_free(mn_eval64 *e)
{
    if (!e) return;
    mg_free(e->pad);
    mg_free_aligned(e->e1);
    mg_free_aligned(e->a1);
    mg_free_aligned(e->e2);
    mg_free_aligned(e->a2);
    mg_free_aligned(e->tau);
    memset(e, 0, sizeof *e);
}

void mn_eval64_set_t(mn_eval64 *e, const float *t) { mn_tau_f64(t, e->tau, e->d.c * e->d.hw); }

void mn_eval64_run(mn_eval64 *e, const mn_wts *w, const float *b1, const float *b2, const float *b3,
                   const double *x, double *y, double *D, double *part, const int *act, int nact)
{
    const mn_dims *d = &e->d;
    const mn_conv3 s1 = {d->n, d->c, d->lc, d->h, d->w}, s2 = {d->n, d->lc, d->lc, d->h, d->w},
                    s3 = {d->n, d->lc, d->c, d->h, d->w};
    mn_conv3_f64(&s1, x, e->pad, w->w1, b1, e->e1, act, nact);
    mn_elu_f64(e->e1, e->a1, d->lc * d->hw, d, act, nact);
    mn_conv3_f64(&s2, e->a1, e->pad, w->w2, b2, e->e2, act, nact);
    mn_elu_f64(e->e2, e->a2, d->lc * d->hw, d, act, nact);
    mn_conv3_f64(&s3, e->a2, e->pad, w->w3, b3, y, act, nact);
    mn_diag_f64(w, e->e1, e->e2, e->tau, D, x, y, part, act, nact);
}
