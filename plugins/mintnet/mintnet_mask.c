/* plugins/mintnet/mintnet_mask.c: the type-A / type-B masks of spec section
 * 1, and the effective weights of a block (masked, W2's centre diagonal by the
 * sign rule of section 2) with the centre entries the Jacobian diagonal uses.
 *
 * A [O, I, 3, 3] weight is a grid of C x C sub-blocks; entry (o, i, u, v)
 * sits at (o mod C, i mod C) in its sub-block and gets m(o mod C, i mod C, u, v):
 *   A: 1 if j < i; for j = i, 1 when u < 1 or (u = 1 and v <= 1); 0 if j > i
 *   B: 1 if j > i; for j = i, 1 when u > 1 or (u = 1 and v >= 1); 0 if j < i
 * with i the output and j the input channel of the sub-block. */
#include "mintnet.h"

#include <math.h>
#include <string.h>

int mn_mask_parse(const char *s)
{
    if (s && strcmp(s, "A") == 0) return MN_MASK_A;
    if (s && strcmp(s, "B") == 0) return MN_MASK_B;
    return -1;
}

/* The sub-block mask m(i, j, u, v) of the spec. */
static int mask_sub(mn_mask m, int64_t i, int64_t j, int u, int v)
{
    if (m == MN_MASK_B) {
        if (j != i) return j > i;
        return u > 1 || (u == 1 && v >= 1);
    }
    if (j != i) return j < i;
    return u < 1 || (u == 1 && v <= 1);
}

int mn_mask_keep(mn_mask m, int64_t c, int64_t o, int64_t i, int u, int v)
{
    return mask_sub(m, o % c, i % c, u, v);
}

/* The taps entry (o, i) keeps, as bits t = 3u + v; weights are masked a
 * (output, input) pair at a time with it, every forward. */
static inline unsigned pair_taps(mn_mask m, int64_t c, int64_t o, int64_t i)
{
    unsigned bits = 0;
    for (int t = 0; t < 9; t++) bits |= (unsigned)mask_sub(m, o % c, i % c, t / 3, t % 3) << t;
    return bits;
}

int64_t mn_mask_count(mn_mask m, int64_t c, int64_t o, int64_t i)
{
    int64_t k = 0;
    for (int64_t a = 0; a < o; a++)
        for (int64_t b = 0; b < i; b++) k += __builtin_popcount(pair_taps(m, c, a, b));
    return k;
}

void mn_mask_apply(mn_mask m, int64_t c, int64_t o, int64_t i, const float *w, float *out)
{
    for (int64_t a = 0; a < o; a++)
        for (int64_t b = 0; b < i; b++) {
            const int64_t base = (a * i + b) * 9;
            const unsigned bits = pair_taps(m, c, a, b);
            for (int t = 0; t < 9; t++) out[base + t] = bits >> t & 1u ? w[base + t] : 0.0f;
        }
}

void mn_mask_rows(mn_mask m, int64_t c, int *u0, int *u1)
{
    *u0 = 3, *u1 = -1;
    for (int u = 0; u < 3; u++)
        for (int64_t i = 0; i < c; i++)
            for (int64_t j = 0; j < c; j++)
                for (int v = 0; v < 3; v++)
                    if (mask_sub(m, i, j, u, v)) {
                        if (u < *u0) *u0 = u;
                        if (u > *u1) *u1 = u;
                    }
}

/* ---- effective weights ---------------------------------------------------------------- */

static double sgn(double v) { return (v > 0) - (v < 0); }

mg_status mn_wts_init(mn_wts *w, const mn_dims *d, mn_mask mask)
{
    memset(w, 0, sizeof *w);
    w->d = *d;
    w->mask = mask;
    size_t n1 = (size_t)(d->lc * d->c * 9), n2 = (size_t)(d->lc * d->lc * 9);
    size_t nc = (size_t)d->lc, nl = (size_t)(d->c * d->l * d->l);
    w->w1 = mg_malloc(n1 * sizeof(double));
    w->w2 = mg_malloc(n2 * sizeof(double));
    w->w3 = mg_malloc(n1 * sizeof(double));
    w->w1f = mg_malloc_aligned(n1 * sizeof(float));
    w->w2f = mg_malloc_aligned(n2 * sizeof(float));
    w->w3f = mg_malloc_aligned(n1 * sizeof(float));
    w->c1 = mg_malloc(nc * sizeof(double));
    w->c3 = mg_malloc(nc * sizeof(double));
    w->c2 = mg_malloc(nl * sizeof(double));
    w->s2 = mg_malloc(nl * sizeof(double));
    w->c1f = mg_malloc(nc * sizeof(float));
    w->c3f = mg_malloc(nc * sizeof(float));
    w->c2f = mg_malloc(nl * sizeof(float));
    int u1;
    mn_mask_rows(mask, d->c, &w->u0, &u1);
    w->kh2 = u1 - w->u0 + 1;
    w->w2k = w->kh2 < 3 ? mg_malloc_aligned((size_t)(d->lc * d->lc * w->kh2 * 3) * sizeof(float)) : w->w2f;
    if (!w->w1 || !w->w2 || !w->w3 || !w->w1f || !w->w2f || !w->w3f || !w->c1 || !w->c3 || !w->c2 ||
        !w->s2 || !w->c1f || !w->c3f || !w->c2f || !w->w2k)
        return MG_ERR_NOMEM;
    return MG_OK;
}

void mn_wts_free(mn_wts *w)
{
    if (!w) return;
    mg_free(w->w1);
    mg_free(w->w2);
    mg_free(w->w3);
    mg_free_aligned(w->w1f);
    if (w->w2k != w->w2f) mg_free_aligned(w->w2k);
    mg_free_aligned(w->w2f);
    mg_free_aligned(w->w3f);
    mg_free(w->c1);
    mg_free(w->c3);
    mg_free(w->c2);
    mg_free(w->s2);
    mg_free(w->c1f);
    mg_free(w->c3f);
    mg_free(w->c2f);
    memset(w, 0, sizeof *w);
}

/* out = W (.) M in double for a [o, i, 3, 3] weight. */
static void mask_to_double(mn_mask m, int64_t c, int64_t o, int64_t i, const float *W, double *out)
{
    for (int64_t a = 0; a < o; a++)
        for (int64_t b = 0; b < i; b++) {
            const int64_t base = (a * i + b) * 9;
            const unsigned bits = pair_taps(m, c, a, b);
            for (int t = 0; t < 9; t++) out[base + t] = bits >> t & 1u ? W[base + t] : 0.0;
        }
}

/* The centres w1[g, c], w3[g, c], then W2's centre diagonal by the sign rule. */
static void apply_sign_rule(mn_wts *w, const float *W2)
{
    const int64_t C = w->d.c, L = w->d.l, LC = w->d.lc;
    for (int64_t g = 0; g < L; g++)
        for (int64_t c = 0; c < C; c++) {
            w->c1[g * C + c] = w->w1[mn_centre(g * C + c, c, C)];
            w->c3[g * C + c] = w->w3[mn_centre(c, g * C + c, LC)];
        }
    for (int64_t c = 0; c < C; c++)
        for (int64_t g2 = 0; g2 < L; g2++)
            for (int64_t g1 = 0; g1 < L; g1++) {
                int64_t at = mn_centre(g2 * C + c, g1 * C + c, LC), k = (c * L + g2) * L + g1;
                double s = sgn(w->c1[g1 * C + c]) * sgn(w->c3[g2 * C + c]);
                w->w2[at] = s * fabs((double)W2[at]);
                w->c2[k] = w->w2[at];
                w->s2[k] = s * sgn(W2[at]);
            }
}

static void to_float(const double *src, float *dst, int64_t n)
{
    for (int64_t i = 0; i < n; i++) dst[i] = (float)src[i];
}

void mn_wts_update(mn_wts *w, const float *W1, const float *W2, const float *W3)
{
    const int64_t C = w->d.c, L = w->d.l, LC = w->d.lc;
    mask_to_double(w->mask, C, LC, C, W1, w->w1);
    mask_to_double(w->mask, C, LC, LC, W2, w->w2);
    mask_to_double(w->mask, C, C, LC, W3, w->w3);
    apply_sign_rule(w, W2);
    to_float(w->w1, w->w1f, LC * C * 9);
    to_float(w->w2, w->w2f, LC * LC * 9);
    to_float(w->w3, w->w3f, C * LC * 9);
    to_float(w->c1, w->c1f, LC);
    to_float(w->c3, w->c3f, LC);
    to_float(w->c2, w->c2f, C * L * L);
    if (w->kh2 < 3)
        for (int64_t k = 0; k < LC * LC; k++)
            memcpy(w->w2k + k * w->kh2 * 3, w->w2f + k * 9 + w->u0 * 3, (size_t)(w->kh2 * 3) * sizeof(float));
}
