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
 * with ELU''(h) = e^h = ELU'(h) for h <= 0 and 0 for h > 0, taken as
 * "e = ELU'(h) < 1 ? e : 0" from the stored e alone (in float, e^h rounds to
 * 1 only for -6e-8 < h <= 0: the jump of ELU'' at 0 moves by that much).
 * The main path is the usual chain through the three
 * masked convolutions; both meet in dh1, dh2. Weight gradients are masked;
 * W2's centre-diagonal entries get (conv gradient + dL/dW2c) times the sign
 * rule's sgn(w1) sgn(w3) sgn(W2); t gets (gy x + rho) sgn(t) where
 * |t| > 1e-12. A zero gradient on either output skips that output's work. */
#include "mintnet.h"
#include "mintnet_simd.h"

#include <math.h>
#include <string.h>

/* L rounded up to a multiple of 16: the row stride of W2c-gradient accumulators. */
static int64_t lpad(const mn_dims *d) { return (d->l + 15) & ~(int64_t)15; }

/* Floats of one (sample, channel) unit's accumulators. */
static int64_t unit_acc(const mn_dims *d) { return d->l * lpad(d) + 32 * d->l; }

mg_status mn_bwd_init(mn_bwd *b, const mn_wts *w)
{
    const mn_dims *d = &w->d;
    memset(b, 0, sizeof *b);
    size_t big = (size_t)(d->n * d->lc * d->hw) * sizeof(float);
    b->dh1 = mg_malloc_aligned(big);
    b->dh2 = mg_malloc_aligned(big);
    b->tmp = mg_malloc_aligned(mn_blocked(d) ? (size_t)mn_blocked_floats(d) * sizeof(float) : big);
    b->rho = mg_malloc_aligned((size_t)(d->n * d->c * d->hw) * sizeof(float));
    b->gacc = mg_malloc_aligned((size_t)(d->n * d->c * unit_acc(d)) * sizeof(float));
    b->gc = mg_malloc((size_t)(d->c * (d->l * d->l + 2 * d->l)) * sizeof(double));
    int ok = b->dh1 && b->dh2 && b->tmp && b->rho && b->gacc && b->gc;
    if (mn_own_conv(d->c)) {
        b->w1t = mg_malloc((size_t)(d->c * d->lc * 9) * sizeof(float));
        b->w3t = mg_malloc((size_t)(d->c * d->lc * 9) * sizeof(float));
        b->rows = mg_malloc_aligned((size_t)(d->lc * d->h * (d->w + 2)) * sizeof(float));
        ok = ok && b->w1t && b->w3t && b->rows;
    }
    if (w->kh2 < 3) {
        b->gw2k = mg_malloc((size_t)(d->lc * d->lc * w->kh2 * 3) * sizeof(float));
        ok = ok && b->gw2k;
    }
    return ok ? MG_OK : MG_ERR_NOMEM;
}

void mn_bwd_free(mn_bwd *b)
{
    if (!b) return;
    mg_free_aligned(b->dh1);
    mg_free_aligned(b->dh2);
    mg_free_aligned(b->tmp);
    mg_free_aligned(b->rho);
    mg_free_aligned(b->gacc);
    mg_free(b->gc);
    mg_free(b->w1t);
    mg_free(b->w3t);
    mg_free_aligned(b->rows);
    mg_free(b->gw2k);
    memset(b, 0, sizeof *b);
}

static int all_zero(const float *v, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        if (v[i] != 0) return 0;
    return 1;
}

/* The state of one (sample, channel) unit, on the forward's pixel tiles
 * (mn_diag_tile: 6 scratch rows of L x tile on the stack, under 200 KB).
 * Scratch rows (d1, d2, d3, u, gd1) have stride P (the tile size, a
 * multiple of 16) and are zero-padded past np, for the register-blocked
 * small GEMMs of mintnet_simd.h. Sums over pixels never end in a horizontal
 * vector reduction per tile (that costs more than the tile's arithmetic): the
 * W2c gradient accumulates with the vector across g1 from d1 stored
 * pixel-major (d1t, rows of lpad, filled by 16x16 register transposes), and
 * the w1 / w3 centre gradients in 16 lanes. */
typedef struct ld_unit {
    const mn_wts *w;
    const mn_eval32 *ev;
    mn_bwd *b;
    int64_t n, c, p0, np, st, lp;
    float gamma;
    float *gc2, *l1, *l3;       /* accumulators: [L][lp], [L][16], [L][16] */
    float *d1, *d2, *d3, *u, *gd1, *d1t;
} ld_unit;

/* Row of an [N, LC, HW] buffer for group g of the unit's channel, at the tile. */
MN_INLINE int64_t hrow(const ld_unit *t, int64_t g)
{
    const mn_dims *d = &t->w->d;
    return (t->n * d->lc + g * d->c + t->c) * d->hw + t->p0;
}

/* d1 (both layouts), d3 and d2 = W2c d1 over the tile. */
MN_INLINE void ld_tile_forward(ld_unit *t)
{
    const mn_dims *d = &t->w->d;
    const int64_t L = d->l, C = d->c, np = t->np, st = t->st, npad = (np + 15) & ~(int64_t)15;
    for (int64_t g = 0; g < L; g++) {
        const float *restrict e1 = t->ev->e1 + hrow(t, g), *restrict e2 = t->ev->e2 + hrow(t, g);
        const float w1 = t->w->c1f[g * C + t->c], w3 = t->w->c3f[g * C + t->c];
        float *restrict d1 = t->d1 + g * st, *restrict d3 = t->d3 + g * st;
#pragma omp simd
        for (int64_t p = 0; p < np; p++) {
            d1[p] = e1[p] * w1;
            d3[p] = e2[p] * w3;
        }
        for (int64_t p = np; p < npad; p++) d1[p] = 0;
    }
    /* d1t = d1 transposed, 16 x 16 blocks at a time (rows past L are zero) */
    for (int64_t g0 = 0; g0 < t->lp; g0 += 16)
        for (int64_t p0 = 0; p0 < npad; p0 += 16) {
            mn_v16 r[16];
            for (int64_t j = 0; j < 16; j++) {
                mn_v16 z = {0};
                r[j] = g0 + j < L ? mn_ld16(t->d1 + (g0 + j) * st + p0) : z;
            }
            mn_transpose16(r);
            for (int64_t k = 0; k < 16; k++) mn_st16(t->d1t + (p0 + k) * t->lp + g0, r[k]);
        }
    mn_small_gemm(t->w->c2f + t->c * L * L, L, 1, t->d1, t->d2, L, L, st, np);
}

/* rho, the e2 / w3 terms, u = rho d3. Pixels in blocks of 16 lanes. */
MN_INLINE void ld_tile_e2(ld_unit *t, const float *D)
{
    const mn_dims *d = &t->w->d;
    const int64_t L = d->l, C = d->c, np = t->np, off = (t->n * C + t->c) * d->hw + t->p0;
    const int64_t npad = (np + 15) & ~(int64_t)15;
    float *restrict rho = t->b->rho + off;
    const float gamma = t->gamma, *restrict Dp = D + off;
#pragma omp simd
    for (int64_t p = 0; p < np; p++) rho[p] = gamma / Dp[p];
    for (int64_t g2 = 0; g2 < L; g2++) {
        const float *restrict e2 = t->ev->e2 + hrow(t, g2);
        const float *restrict d2 = t->d2 + g2 * t->st, *restrict d3 = t->d3 + g2 * t->st;
        const float w3 = t->w->c3f[g2 * C + t->c];
        float *restrict dh2 = t->b->dh2 + hrow(t, g2), *restrict u = t->u + g2 * t->st, *restrict lane = t->l3 + g2 * 16;
        for (int64_t p0 = 0; p0 < np; p0 += 16) {
            const int64_t m = np - p0 < 16 ? np - p0 : 16;
#pragma omp simd
            for (int64_t k = 0; k < m; k++) {
                const int64_t p = p0 + k;
                float r = rho[p] * d2[p];
                lane[k] += r * e2[p];
                dh2[p] = e2[p] < 1.0f ? r * w3 * e2[p] : 0.0f;
                u[p] = rho[p] * d3[p];
            }
        }
        for (int64_t p = np; p < npad; p++) u[p] = 0;
    }
}

/* gd1 = W2c^T u and the W2c gradient u d1^T, then the e1 / w1 terms. */
MN_INLINE void ld_tile_e1(ld_unit *t)
{
    const mn_dims *d = &t->w->d;
    const int64_t L = d->l, C = d->c, np = t->np;
    mn_small_gemm(t->w->c2f + t->c * L * L, 1, L, t->u, t->gd1, L, L, t->st, np);
    mn_outer_acc(t->gc2, t->u, t->st, t->d1t, t->lp, L, np);
    for (int64_t g1 = 0; g1 < L; g1++) {
        const float *restrict e1 = t->ev->e1 + hrow(t, g1);
        const float w1 = t->w->c1f[g1 * C + t->c], *restrict gd = t->gd1 + g1 * t->st;
        float *restrict dh1 = t->b->dh1 + hrow(t, g1), *restrict lane = t->l1 + g1 * 16;
        for (int64_t p0 = 0; p0 < np; p0 += 16) {
            const int64_t m = np - p0 < 16 ? np - p0 : 16;
#pragma omp simd
            for (int64_t k = 0; k < m; k++) {
                const int64_t p = p0 + k;
                lane[k] += gd[p] * e1[p];
                dh1[p] = e1[p] < 1.0f ? gd[p] * w1 * e1[p] : 0.0f;
            }
        }
    }
}

/* The log-det backward of one (sample, channel): dh1, dh2 (log-det parts),
 * rho and this unit's centre-gradient accumulators. */
MN_HOT static void ld_run_unit(const mn_wts *w, const mn_eval32 *ev, const float *D, mn_bwd *b, float gamma,
                               int64_t n, int64_t c)
{
    const mn_dims *d = &w->d;
    const int64_t L = d->l, P = mn_diag_tile(d), LP = lpad(d);
    float d1[L * P], d2[L * P], d3[L * P], u[L * P], gd1[L * P], d1t[LP * P];
    ld_unit t = {.w = w, .ev = ev, .b = b, .n = n, .c = c, .gamma = gamma, .st = P, .lp = LP,
                 .d1 = d1, .d2 = d2, .d3 = d3, .u = u, .gd1 = gd1, .d1t = d1t};
    t.gc2 = b->gacc + (n * d->c + c) * unit_acc(d);
    t.l1 = t.gc2 + L * LP;
    t.l3 = t.l1 + 16 * L;
    memset(t.gc2, 0, (size_t)unit_acc(d) * sizeof(float));
    for (t.p0 = 0; t.p0 < d->hw; t.p0 += P) {
        t.np = d->hw - t.p0 < P ? d->hw - t.p0 : P;
        ld_tile_forward(&t);
        ld_tile_e2(&t, D);
        ld_tile_e1(&t);
    }
}

/* Sums the units' accumulators over samples (and lanes) in a fixed order:
 * gc[c] = [W2c gradient (L*L), w1 centre gradients (L), w3 (L)]. */
static void ld_reduce(const mn_dims *d, mn_bwd *b)
{
    const int64_t L = d->l, K = L * L + 2 * L, U = unit_acc(d), LP = lpad(d);
    for (int64_t c = 0; c < d->c; c++)
        for (int64_t k = 0; k < K; k++) {
            double s = 0;
            for (int64_t n = 0; n < d->n; n++) {
                const float *a = b->gacc + (n * d->c + c) * U;
                if (k < L * L) {
                    s += a[(k / L) * LP + k % L];
                } else {
                    const float *lane = a + L * LP + (k - L * L) * 16;
                    for (int j = 0; j < 16; j++) s += lane[j];
                }
            }
            b->gc[c * K + k] = s;
        }
}

/* Runs every (sample, channel) unit, then reduces (deterministic). */
static void ld_backward(const mn_wts *w, const mn_eval32 *ev, const float *D, const float *gl, mn_bwd *b)
{
    const mn_dims *d = &w->d;
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t u = 0; u < d->n * d->c; u++) ld_run_unit(w, ev, D, b, gl[u / d->c], u / d->c, u % d->c);
    ld_reduce(d, b);
}

/* dh = (has_ld ? dh : 0) + (has_tmp ? tmp * e : 0) over n elements. */
MN_HOT static void combine_chunk(float *restrict dh, const float *restrict tmp, const float *restrict e, int64_t n,
                                 int has_ld, int has_tmp)
{
    if (!has_tmp) return;
    if (has_ld) {
#pragma omp simd
        for (int64_t i = 0; i < n; i++) dh[i] += tmp[i] * e[i];
    } else {
#pragma omp simd
        for (int64_t i = 0; i < n; i++) dh[i] = tmp[i] * e[i];
    }
}

static void combine(float *dh, const float *tmp, const float *e, int64_t n, int has_ld, int has_tmp)
{
    enum { CH = 8192 };
#pragma omp parallel for schedule(static)
    for (int64_t lo = 0; lo < n; lo += CH)
        combine_chunk(dh + lo, tmp + lo, e + lo, n - lo < CH ? n - lo : CH, has_ld, has_tmp);
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

/* t[i, o, u, v] = w[o, i, 2-u, 2-v]: the weight of conv_transpose(., w) as
 * a plain convolution. w is [O, I, 3, 3], t is [I, O, 3, 3]. */
static void transpose_flip(const float *w, float *t, int64_t O, int64_t I)
{
    for (int64_t o = 0; o < O; o++)
        for (int64_t i = 0; i < I; i++)
            for (int k = 0; k < 9; k++) t[(i * O + o) * 9 + 8 - k] = w[(o * I + i) * 9 + k];
}

/* dL/dW3, dL/db3 (main path only: the centre terms come in finish_w13). */
static mg_status grads_3(bwd_ctx *k)
{
    float *gw = gptr(k, MN_IN_W3), *gb = gptr(k, MN_IN_B3);
    if (!gw && !gb) return MG_OK;
    if (!k->y_on) {
        if (gw) memset(gw, 0, (size_t)(k->d->c * k->d->lc * 9) * sizeof(float));
        if (gb) memset(gb, 0, (size_t)k->d->c * sizeof(float));
    } else if (mn_own_conv(k->d->c)) {
        const mn_conv3 s = {k->d->n, k->d->c, k->d->lc, k->d->h, k->d->w};
        mn_pad_f32(&s, k->gy, k->ev->pad);
        if (gw) mn_wgrad_thin_f32(k->d, k->w->mask, k->ev->a2, k->ev->pad, 0, k->b->rows, gw);
        if (gb) mn_channel_sum_f32(k->d, k->d->c, k->gy, gb);
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

/* gx = conv_transpose(dh1, W~1): with few input channels (mn_own_conv) on
 * the plugin's own kernel as a convolution LC -> C with the flipped,
 * transposed weight; otherwise on the public kernel. */
static mg_status grad_x_conv(bwd_ctx *k, float *gx)
{
    const mn_dims *d = k->d;
    if (!mn_own_conv(d->c)) return mg_conv2d_kernel_backward_data(k->ev->k1, k->b->dh1, k->w->w1f, gx);
    const mn_conv3 s = {d->n, d->lc, d->c, d->h, d->w};
    transpose_flip(k->w->w1f, k->b->w1t, d->lc, d->c);
    mn_conv3_f32(&s, k->b->dh1, k->ev->pad, k->b->w1t, NULL, gx, NULL, 0);
    return MG_OK;
}

/* dx = conv_transpose(dh1, W~1) + gy tau. */
static mg_status grad_x(bwd_ctx *k)
{
    float *gx = gptr(k, MN_IN_X);
    mg_status s = grad_x_conv(k, gx);
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

/* tmp = conv_transpose(gy, W~3), on the plugin's own kernel as a
 * convolution C -> LC with the flipped, transposed weight when C is small
 * (mn_own_conv). */
static mg_status grad_h2_conv(bwd_ctx *k)
{
    const mn_dims *d = k->d;
    if (!mn_own_conv(d->c)) return mg_conv2d_kernel_backward_data(k->ev->k3, k->gy, k->w->w3f, k->b->tmp);
    const mn_conv3 s = {d->n, d->c, d->lc, d->h, d->w};
    transpose_flip(k->w->w3f, k->b->w3t, d->c, d->lc);
    mn_conv3_f32(&s, k->gy, k->ev->pad, k->b->w3t, NULL, k->b->tmp, NULL, 0);
    return MG_OK;
}

/* dL/dW~1 (before masking) and dL/db1 from dh1 and x. */
static mg_status grads_1(bwd_ctx *k, float *gw, float *gb)
{
    const mn_dims *d = k->d;
    if (!mn_own_conv(d->c)) return mg_conv2d_kernel_backward_weights(k->ev->k1, k->x, k->b->dh1, gw, gb);
    const mn_conv3 s = {d->n, d->c, d->lc, d->h, d->w};
    if (gw) {
        mn_pad_f32(&s, k->x, k->ev->pad);
        mn_wgrad_thin_f32(d, k->w->mask, k->b->dh1, k->ev->pad, 1, k->b->rows, gw);
    }
    if (gb) mn_channel_sum_f32(d, d->lc, k->b->dh1, gb);
    return MG_OK;
}

/* dL/dW~2 (before masking) and dL/db2; with a kh2-row kernel (mn_wts) its
 * gradient goes to rows u0 .. of the 3x3 one, the others get 0 (the mask
 * zeroes them anyway). */
static mg_status grads_2(bwd_ctx *k, const float *dh2, float *gw, float *gb)
{
    const mn_wts *w = k->w;
    if (w->kh2 == 3 || !gw) return mg_conv2d_kernel_backward_weights(k->ev->k2, k->ev->a1, dh2, gw, gb);
    mg_status s = mg_conv2d_kernel_backward_weights(k->ev->k2, k->ev->a1, dh2, k->b->gw2k, gb);
    if (s != MG_OK) return s;
    const int64_t n = w->d.lc * w->d.lc, r = w->kh2 * 3;
    memset(gw, 0, (size_t)(n * 9) * sizeof(float));
    for (int64_t i = 0; i < n; i++) memcpy(gw + i * 9 + w->u0 * 3, k->b->gw2k + i * r, (size_t)r * sizeof(float));
    return MG_OK;
}

/* dh2, then W3/b3, dh1, W2/b2, W1/b1, x. */
static mg_status main_path(bwd_ctx *k, int need_dh1, int need_dh2)
{
    const mn_dims *d = k->d;
    const int64_t big = d->n * d->lc * d->hw;
    mg_status s = MG_OK;
    /* dL/dh2 as W2's kernel takes it: blocked (in the forward's h2 buffer) or b->dh2 */
    const int blk = mn_blocked(d);
    float *dh2 = blk ? k->ev->hb : k->b->dh2;
    if (need_dh2) {
        if (k->y_on) s = grad_h2_conv(k);
        if (s != MG_OK) return s;
        if (blk)
            mn_combine_to_blocked(d, k->ld_on ? k->b->dh2 : NULL, k->y_on ? k->b->tmp : NULL, k->ev->e2, dh2);
        else
            combine(k->b->dh2, k->b->tmp, k->ev->e2, big, k->ld_on, k->y_on);
    }
    if ((s = grads_3(k)) != MG_OK) return s;
    if (need_dh1) {
        if ((s = mg_conv2d_kernel_backward_data(k->ev->k2, dh2, k->w->w2k, k->b->tmp)) != MG_OK) return s;
        if (blk)
            mn_combine_from_blocked(d, k->b->dh1, k->ld_on, k->b->tmp, k->ev->e1);
        else
            combine(k->b->dh1, k->b->tmp, k->ev->e1, big, k->ld_on, 1);
    }
    float *gw2 = gptr(k, MN_IN_W2), *gb2 = gptr(k, MN_IN_B2), *gw1 = gptr(k, MN_IN_W1), *gb1 = gptr(k, MN_IN_B1);
    if ((gw2 || gb2) && (s = grads_2(k, dh2, gw2, gb2)) != MG_OK) return s;
    if (gw2) finish_w2(k);
    if ((gw1 || gb1) && (s = grads_1(k, gw1, gb1)) != MG_OK) return s;
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
