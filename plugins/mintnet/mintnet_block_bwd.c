/* plugins/mintnet/mintnet_block_bwd.c: the analytic backward pass of
 * `mintnet.block` (f32), log-det terms included.
 *
 * With gy = dL/dy and gamma[n] = dL/dlogdet[n], rho = gamma / D is dL/dD.
 * The log-det part (spec section 3), per sample n, channel c and pixel p:
 *   d1[g1] = e1 w1[g1],  d2 = W2c d1 (W2c the channel's L x L centre matrix),
 *   d3[g2] = e2 w3[g2],  D = tau + d3 . d2
 *   dL/de2[g2] = rho d2[g2] w3[g2]      -> dh2 += that * ELU''(h2)
 *   dL/dd1     = W2c^T (rho d3)          -> dh1 += that * w1 * ELU''(h1)
 *   dL/dw3[g2] = sum rho d2 e2,  dL/dW2c = sum (rho d3) d1^T,
 *   dL/dw1[g1] = sum (W2c^T rho d3)[g1] e1,  dL/dtau = rho
 * with ELU''(h) = e^h = ELU'(h) for h <= 0 and 0 for h > 0 (a = ELU(h) > 0
 * exactly when h > 0). The main path is the usual chain through the three
 * masked convolutions; both meet in dh1, dh2. Weight gradients are masked;
 * W2's centre-diagonal entries get (conv gradient + dL/dW2c) times the sign
 * rule's sgn(w1) sgn(w3) sgn(W2); t gets (gy x + rho) sgn(t) where
 * |t| > 1e-12. A zero gradient on either output skips that output's work. */
#include "mintnet.h"

#include <math.h>
#include <string.h>

mg_status mn_bwd_init(mn_bwd *b, const mn_dims *d)
{
    memset(b, 0, sizeof *b);
    size_t big = (size_t)(d->n * d->lc * d->hw) * sizeof(float), k = (size_t)(d->l * d->l + 2 * d->l);
    b->dh1 = mg_malloc_aligned(big);
    b->dh2 = mg_malloc_aligned(big);
    b->tmp = mg_malloc_aligned(big);
    b->rho = mg_malloc_aligned((size_t)(d->n * d->c * d->hw) * sizeof(float));
    b->gacc = mg_malloc((size_t)(d->n * d->c) * k * sizeof(double));
    b->gc = mg_malloc((size_t)d->c * k * sizeof(double));
    return b->dh1 && b->dh2 && b->tmp && b->rho && b->gacc && b->gc ? MG_OK : MG_ERR_NOMEM;
}

void mn_bwd_free(mn_bwd *b)
{
    if (!b) return;
    mg_free_aligned(b->dh1);
    mg_free_aligned(b->dh2);
    mg_free_aligned(b->tmp);
    mg_free_aligned(b->rho);
    mg_free(b->gacc);
    mg_free(b->gc);
    memset(b, 0, sizeof *b);
}

static int all_zero(const float *v, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        if (v[i] != 0) return 0;
    return 1;
}

/* Pixels per tile of the log-det backward (5 scratch rows of L x tile). */
static int64_t bwd_tile(const mn_dims *d)
{
    int64_t p = 2048 / d->l;
    return p < 8 ? 8 : p > 64 ? 64 : p;
}

/* The pointers of one (sample, channel) unit. */
typedef struct ld_unit {
    const mn_wts *w;
    const mn_eval32 *ev;
    mn_bwd *b;
    int64_t n, c, p0, np;
    float gamma;
    double *gc2, *gc1, *gc3;   /* this unit's accumulators */
    float *d1, *d2, *d3, *u, *gd1;
} ld_unit;

/* Row of an [N, LC, HW] buffer for group g of the unit's channel, at the tile. */
static int64_t hrow(const ld_unit *t, int64_t g)
{
    const mn_dims *d = &t->w->d;
    return (t->n * d->lc + g * d->c + t->c) * d->hw + t->p0;
}

/* d1, d3 and d2 = W2c d1 over the tile. */
static void ld_tile_forward(ld_unit *t)
{
    const mn_dims *d = &t->w->d;
    const int64_t L = d->l, C = d->c, np = t->np;
    const float *c2 = t->w->c2f + t->c * L * L;
    for (int64_t g = 0; g < L; g++) {
        const float *e1 = t->ev->e1 + hrow(t, g), *e2 = t->ev->e2 + hrow(t, g);
        const float w1 = t->w->c1f[g * C + t->c], w3 = t->w->c3f[g * C + t->c];
        for (int64_t p = 0; p < np; p++) {
            t->d1[g * np + p] = e1[p] * w1;
            t->d3[g * np + p] = e2[p] * w3;
            t->d2[g * np + p] = 0;
        }
    }
    for (int64_t g2 = 0; g2 < L; g2++)
        for (int64_t g1 = 0; g1 < L; g1++) {
            const float wv = c2[g2 * L + g1];
            if (wv == 0) continue;
#pragma omp simd
            for (int64_t p = 0; p < np; p++) t->d2[g2 * np + p] += wv * t->d1[g1 * np + p];
        }
}

/* rho, the e2 / w3 terms, u = rho d3. */
static void ld_tile_e2(ld_unit *t, const float *D)
{
    const mn_dims *d = &t->w->d;
    const int64_t L = d->l, C = d->c, np = t->np, off = (t->n * C + t->c) * d->hw + t->p0;
    float *rho = t->b->rho + off;
    for (int64_t p = 0; p < np; p++) rho[p] = t->gamma / D[off + p];
    for (int64_t g2 = 0; g2 < L; g2++) {
        const float *e2 = t->ev->e2 + hrow(t, g2), *a2 = t->ev->a2 + hrow(t, g2);
        const float w3 = t->w->c3f[g2 * C + t->c];
        float *dh2 = t->b->dh2 + hrow(t, g2);
        double s = 0;
        for (int64_t p = 0; p < np; p++) {
            float r = rho[p] * t->d2[g2 * np + p];
            s += (double)r * e2[p];
            dh2[p] = a2[p] > 0 ? 0.0f : r * w3 * e2[p];
            t->u[g2 * np + p] = rho[p] * t->d3[g2 * np + p];
        }
        t->gc3[g2] += s;
    }
}

/* gd1 = W2c^T u, the W2c gradient, then the e1 / w1 terms. */
static void ld_tile_e1(ld_unit *t)
{
    const mn_dims *d = &t->w->d;
    const int64_t L = d->l, C = d->c, np = t->np;
    const float *c2 = t->w->c2f + t->c * L * L;
    for (int64_t i = 0; i < L * np; i++) t->gd1[i] = 0;
    for (int64_t g2 = 0; g2 < L; g2++)
        for (int64_t g1 = 0; g1 < L; g1++) {
            const float wv = c2[g2 * L + g1], *u = t->u + g2 * np, *d1 = t->d1 + g1 * np;
            float *gd = t->gd1 + g1 * np, s = 0;
#pragma omp simd reduction(+ : s)
            for (int64_t p = 0; p < np; p++) {
                gd[p] += wv * u[p];
                s += u[p] * d1[p];
            }
            t->gc2[g2 * L + g1] += s;
        }
    for (int64_t g1 = 0; g1 < L; g1++) {
        const float *e1 = t->ev->e1 + hrow(t, g1), *a1 = t->ev->a1 + hrow(t, g1);
        const float w1 = t->w->c1f[g1 * C + t->c], *gd = t->gd1 + g1 * np;
        float *dh1 = t->b->dh1 + hrow(t, g1);
        double s = 0;
        for (int64_t p = 0; p < np; p++) {
            s += (double)gd[p] * e1[p];
            dh1[p] = a1[p] > 0 ? 0.0f : gd[p] * w1 * e1[p];
        }
        t->gc1[g1] += s;
    }
}

/* The log-det backward of one (sample, channel): dh1, dh2 (log-det parts),
 * rho and this unit's centre-gradient sums. */
static void ld_run_unit(const mn_wts *w, const mn_eval32 *ev, const float *D, mn_bwd *b, float gamma, int64_t n,
                        int64_t c)
{
    const mn_dims *d = &w->d;
    const int64_t L = d->l, K = L * L + 2 * L, P = bwd_tile(d);
    float d1[L * P], d2[L * P], d3[L * P], u[L * P], gd1[L * P];
    ld_unit t = {.w = w, .ev = ev, .b = b, .n = n, .c = c, .gamma = gamma,
                 .d1 = d1, .d2 = d2, .d3 = d3, .u = u, .gd1 = gd1};
    t.gc2 = b->gacc + (n * d->c + c) * K;
    t.gc1 = t.gc2 + L * L;
    t.gc3 = t.gc1 + L;
    memset(t.gc2, 0, (size_t)K * sizeof(double));
    for (t.p0 = 0; t.p0 < d->hw; t.p0 += P) {
        t.np = d->hw - t.p0 < P ? d->hw - t.p0 : P;
        ld_tile_forward(&t);
        ld_tile_e2(&t, D);
        ld_tile_e1(&t);
    }
}

/* Runs every (sample, channel) unit, then sums the centre gradients over
 * samples in a fixed order (deterministic). */
static void ld_backward(const mn_wts *w, const mn_eval32 *ev, const float *D, const float *gl, mn_bwd *b)
{
    const mn_dims *d = &w->d;
    const int64_t K = d->l * d->l + 2 * d->l;
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t u = 0; u < d->n * d->c; u++) ld_run_unit(w, ev, D, b, gl[u / d->c], u / d->c, u % d->c);
    for (int64_t c = 0; c < d->c; c++)
        for (int64_t k = 0; k < K; k++) {
            double s = 0;
            for (int64_t n = 0; n < d->n; n++) s += b->gacc[(n * d->c + c) * K + k];
            b->gc[c * K + k] = s;
        }
}

/* dh = (has_ld ? dh : 0) + (has_tmp ? tmp * e : 0) over n elements. */
static void combine(float *dh, const float *tmp, const float *e, int64_t n, int has_ld, int has_tmp)
{
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; i++) dh[i] = (has_ld ? dh[i] : 0.0f) + (has_tmp ? tmp[i] * e[i] : 0.0f);
}

/* ---- weight gradients ---------------------------------------------------------------- */

typedef struct bwd_ctx {
    mg_node *nd;
    const mn_wts *w;
    mn_eval32 *ev;
    mn_bwd *b;
    const mn_dims *d;
    const float *gy, *gl, *x;
    mg_tensor *g[MN_NUM_IN];
    int ld_on, y_on;
} bwd_ctx;

static float *gptr(const bwd_ctx *k, int i) { return k->g[i] ? mg_f32(k->g[i]) : NULL; }

/* Masks g = dL/dW~ into dL/dW for W1 (which = 1) or W3 (3), adding the
 * log-det centre terms. */
static void finish_w13(const bwd_ctx *k, int which)
{
    const mn_dims *d = k->d;
    const int64_t C = d->c, L = d->l, K = L * L + 2 * L;
    float *g = gptr(k, which == 1 ? MN_IN_W1 : MN_IN_W3);
    if (which == 1)
        mn_mask_apply(k->w->mask, C, d->lc, C, g, g);
    else
        mn_mask_apply(k->w->mask, C, C, d->lc, g, g);
    if (!k->ld_on) return;
    for (int64_t c = 0; c < C; c++)
        for (int64_t q = 0; q < L; q++) {
            double v = k->b->gc[c * K + L * L + (which == 1 ? q : L + q)];
            int64_t at = which == 1 ? mn_centre(q * C + c, c, C) : mn_centre(c, q * C + c, d->lc);
            g[at] = (float)(g[at] + v);
        }
}

/* Masks W2's gradient; its centre diagonal goes through the sign rule. */
static void finish_w2(const bwd_ctx *k)
{
    const mn_dims *d = k->d;
    const int64_t C = d->c, L = d->l, K = L * L + 2 * L;
    float *g = gptr(k, MN_IN_W2);
    mn_mask_apply(k->w->mask, C, d->lc, d->lc, g, g);
    for (int64_t c = 0; c < C; c++)
        for (int64_t g2 = 0; g2 < L; g2++)
            for (int64_t g1 = 0; g1 < L; g1++) {
                int64_t at = mn_centre(g2 * C + c, g1 * C + c, d->lc);
                double v = g[at] + (k->ld_on ? k->b->gc[c * K + g2 * L + g1] : 0.0);
                g[at] = (float)(v * k->w->s2[(c * L + g2) * L + g1]);
            }
}

/* dL/dW3, dL/db3 (main path only: the centre terms come in finish_w13). */
static mg_status grads_3(bwd_ctx *k)
{
    float *gw = gptr(k, MN_IN_W3), *gb = gptr(k, MN_IN_B3);
    if (!gw && !gb) return MG_OK;
    if (!k->y_on) {
        if (gw) memset(gw, 0, (size_t)(k->d->c * k->d->lc * 9) * sizeof(float));
        if (gb) memset(gb, 0, (size_t)k->d->c * sizeof(float));
    } else {
        mg_status s = mg_conv2d_kernel_backward_weights(k->ev->k3, k->ev->a2, k->gy, gw, gb);
        if (s != MG_OK) return s;
    }
    if (gw) finish_w13(k, 3);
    return MG_OK;
}

/* dL/dt = sum_n (gy x + rho) dtau/dt. */
static void grad_t(const bwd_ctx *k)
{
    const mn_dims *d = k->d;
    const int64_t per = d->c * d->hw;
    const float *t = mg_f32(mg_node_input(k->nd, MN_IN_T));
    float *gt = gptr(k, MN_IN_T);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < per; i++) {
        double s = 0;
        for (int64_t n = 0; n < d->n; n++) {
            if (k->y_on) s += (double)k->gy[n * per + i] * k->x[n * per + i];
            if (k->ld_on) s += k->b->rho[n * per + i];
        }
        float sg = fabsf(t[i]) > (float)MN_TAU_MIN ? (float)((t[i] > 0) - (t[i] < 0)) : 0.0f;
        gt[i] = (float)s * sg;
    }
}

/* dx = conv_transpose(dh1, W~1) + gy tau. */
static mg_status grad_x(bwd_ctx *k)
{
    float *gx = gptr(k, MN_IN_X);
    mg_status s = mg_conv2d_kernel_backward_data(k->ev->k1, k->b->dh1, k->w->w1f, gx);
    if (s != MG_OK || !k->y_on) return s;
    const mn_dims *d = k->d;
    const int64_t per = d->c * d->hw;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < d->n * per; i++) gx[i] += k->gy[i] * k->ev->tau[i % per];
    return MG_OK;
}

static void zero_all(bwd_ctx *k)
{
    for (int i = 0; i < MN_NUM_IN; i++)
        if (k->g[i]) mg_tensor_fill(k->g[i], 0);
}

/* dh2, then W3/b3, dh1, W2/b2, W1/b1, x. */
static mg_status main_path(bwd_ctx *k, int need_dh1, int need_dh2)
{
    const mn_dims *d = k->d;
    const int64_t big = d->n * d->lc * d->hw;
    mg_status s = MG_OK;
    if (need_dh2) {
        if (k->y_on) s = mg_conv2d_kernel_backward_data(k->ev->k3, k->gy, k->w->w3f, k->b->tmp);
        if (s != MG_OK) return s;
        combine(k->b->dh2, k->b->tmp, k->ev->e2, big, k->ld_on, k->y_on);
    }
    if ((s = grads_3(k)) != MG_OK) return s;
    if (need_dh1) {
        if ((s = mg_conv2d_kernel_backward_data(k->ev->k2, k->b->dh2, k->w->w2f, k->b->tmp)) != MG_OK) return s;
        combine(k->b->dh1, k->b->tmp, k->ev->e1, big, k->ld_on, 1);
    }
    float *gw2 = gptr(k, MN_IN_W2), *gb2 = gptr(k, MN_IN_B2), *gw1 = gptr(k, MN_IN_W1), *gb1 = gptr(k, MN_IN_B1);
    if ((gw2 || gb2) && (s = mg_conv2d_kernel_backward_weights(k->ev->k2, k->ev->a1, k->b->dh2, gw2, gb2)) != MG_OK)
        return s;
    if (gw2) finish_w2(k);
    if ((gw1 || gb1) && (s = mg_conv2d_kernel_backward_weights(k->ev->k1, k->x, k->b->dh1, gw1, gb1)) != MG_OK)
        return s;
    if (gw1) finish_w13(k, 1);
    if (gptr(k, MN_IN_X)) s = grad_x(k);
    return s;
}

mg_status mn_block_backward32(mg_node *nd, const mn_wts *w, mn_eval32 *ev, const float *D, mn_bwd *b)
{
    bwd_ctx k = {.nd = nd, .w = w, .ev = ev, .b = b, .d = &w->d};
    const mn_dims *d = k.d;
    k.gy = mg_f32(mg_node_grad_output(nd, 0));
    k.gl = mg_f32(mg_node_grad_output(nd, 1));
    k.x = mg_f32(mg_node_input(nd, MN_IN_X));
    for (int i = 0; i < MN_NUM_IN; i++) k.g[i] = mg_node_grad_input(nd, i);
    k.ld_on = !all_zero(k.gl, d->n);
    k.y_on = !all_zero(k.gy, d->n * d->c * d->hw);
    if (!k.ld_on && !k.y_on) {
        zero_all(&k);
        return MG_OK;
    }
    int need_dh1 = k.g[MN_IN_X] || k.g[MN_IN_W1] || k.g[MN_IN_B1];
    int need_dh2 = need_dh1 || k.g[MN_IN_W2] || k.g[MN_IN_B2];
    if (k.ld_on) ld_backward(w, ev, D, k.gl, b);
    mg_status s = main_path(&k, need_dh1, need_dh2);
    if (s == MG_OK && k.g[MN_IN_T]) grad_t(&k);
    return s;
}
