/* plugins/mintnet/mintnet_blocked.c: the elementwise steps of a block that
 * sit between W2's convolution and the rest, fused with the change of
 * layout (see mn_blocked in mintnet.h).
 *
 * In a blocked block the public kernel runs W2 on nChw16c activations
 * (MG_CONV_LAYOUT_NCHW16C: channel q of pixel p of sample n at
 * ((n * QB + q/16) * HW + p) * 16 + q%16, QB = ceil(LC/16)), while the
 * plugin's own kernels (W1, W3, the Jacobian diagonal and its backward)
 * work on plain [N, LC, HW] rows. Each kernel here reads one layout and
 * writes the other as part of work the step does anyway (ELU, the gradient
 * combination), so the conversions cost no extra pass over memory:
 *
 *   mn_elu_to_blocked:      he: h1 -> ELU'(h1) (plain), ab = ELU(h1) (blocked)
 *   mn_elu_from_blocked:    hb = h2 (blocked) -> a2 = ELU(h2), e2 = ELU'(h2) (plain)
 *   mn_combine_to_blocked:  outb = dh (or 0) + tmp * e   (plain inputs, blocked out)
 *   mn_combine_from_blocked: dh = dh (or 0) + tmpb * e  (tmpb blocked, dh plain)
 *
 * Padding lanes (channels LC .. 16 QB - 1) of blocked outputs are written as
 * zeros; those of blocked inputs are never read. Work units are (sample,
 * channel block, tile of TILE pixels); within a unit, 16 pixels at a time
 * pass through a register transpose. `act` lists the samples (NULL: all). */
#include "mintnet.h"
#include "mintnet_simd.h"

enum { TILE = 64, LANES = 16 };

/* The unit's geometry: sample n, channel block g, pixels [p0, p0 + np). */
typedef struct blk_unit {
    int64_t n, g, p0, np, m; /* m: real channels in the block (<= 16) */
} blk_unit;

static int64_t nblocks(const mn_dims *d) { return (d->lc + LANES - 1) / LANES; }

static blk_unit unit_of(const mn_dims *d, const int *act, int64_t u)
{
    const int64_t QB = nblocks(d), nt = (d->hw + TILE - 1) / TILE;
    blk_unit b;
    int64_t k = u / (QB * nt);
    b.n = act ? act[k] : k;
    b.g = (u / nt) % QB;
    b.p0 = (u % nt) * TILE;
    b.np = d->hw - b.p0 < TILE ? d->hw - b.p0 : TILE;
    b.m = d->lc - b.g * LANES < LANES ? d->lc - b.g * LANES : LANES;
    return b;
}

static int64_t units(const mn_dims *d, const int *act, int nact)
{
    return (act ? nact : d->n) * nblocks(d) * ((d->hw + TILE - 1) / TILE);
}

/* Offsets of the unit's first plain row and of its blocked tile. */
static int64_t plain_off(const mn_dims *d, const blk_unit *b)
{
    return (b->n * d->lc + b->g * LANES) * d->hw + b->p0;
}

static int64_t blocked_off(const mn_dims *d, const blk_unit *b)
{
    return ((b->n * nblocks(d) + b->g) * d->hw + b->p0) * LANES;
}

/* Pixels [q, q + 16) of the unit go through one 16 x 16 register transpose
 * (mn_transpose16); the unit's last pixels (fewer than 16) are copied one by
 * one. r[j] holds channel j of the block (plain side), after the transpose
 * r[p] holds pixel p (blocked side). */

/* r = pixels q .. q+15 of a blocked tile, transposed: r[j] = channel j. */
MN_INLINE void load_transposed(const float *in, int64_t q, mn_v16 r[LANES])
{
    for (int p = 0; p < 16; p++) r[p] = mn_ld16(in + (q + p) * LANES);
    mn_transpose16(r);
}

/* The inverse: r[j] = channel j of pixels q .. q+15 -> the blocked tile. */
MN_INLINE void store_transposed(float *out, int64_t q, mn_v16 r[LANES])
{
    mn_transpose16(r);
    for (int p = 0; p < 16; p++) mn_st16(out + (q + p) * LANES, r[p]);
}

MN_HOT static void elu_to_blocked_unit(const mn_dims *d, blk_unit b, float *he, float *ab)
{
    float *restrict out = ab + blocked_off(d, &b);
    float *h0 = he + plain_off(d, &b);
    int64_t q = 0;
    for (; q + 16 <= b.np; q += 16) {
        mn_v16 r[LANES];
        for (int64_t j = 0; j < LANES; j++) {
            float av[16] = {0};
            if (j < b.m) {
                float *restrict h = h0 + j * d->hw + q;
#pragma omp simd
                for (int k = 0; k < 16; k++) mn_elu_pair_f32(h[k], &av[k], &h[k]);
            }
            r[j] = mn_ld16(av);
        }
        store_transposed(out, q, r);
    }
    for (; q < b.np; q++)
        for (int64_t j = 0; j < LANES; j++) {
            float a = 0.0f;
            if (j < b.m) mn_elu_pair_f32(h0[j * d->hw + q], &a, &h0[j * d->hw + q]);
            out[q * LANES + j] = a;
        }
}

void mn_elu_to_blocked(const mn_dims *d, float *he, float *ab, const int *act, int nact)
{
    const int64_t nu = units(d, act, nact);
#pragma omp parallel for schedule(static)
    for (int64_t u = 0; u < nu; u++) elu_to_blocked_unit(d, unit_of(d, act, u), he, ab);
}

MN_HOT static void elu_from_blocked_unit(const mn_dims *d, blk_unit b, const float *hb, float *a, float *e)
{
    const float *restrict in = hb + blocked_off(d, &b);
    float *a0 = a + plain_off(d, &b), *e0 = e + plain_off(d, &b);
    int64_t q = 0;
    for (; q + 16 <= b.np; q += 16) {
        mn_v16 r[LANES];
        load_transposed(in, q, r);
        for (int64_t j = 0; j < b.m; j++) {
            float hv[16];
            mn_st16(hv, r[j]);
            float *restrict ao = a0 + j * d->hw + q, *restrict eo = e0 + j * d->hw + q;
#pragma omp simd
            for (int k = 0; k < 16; k++) mn_elu_pair_f32(hv[k], &ao[k], &eo[k]);
        }
    }
    for (; q < b.np; q++)
        for (int64_t j = 0; j < b.m; j++) mn_elu_pair_f32(in[q * LANES + j], &a0[j * d->hw + q], &e0[j * d->hw + q]);
}

void mn_elu_from_blocked(const mn_dims *d, const float *hb, float *a, float *e, const int *act, int nact)
{
    const int64_t nu = units(d, act, nact);
#pragma omp parallel for schedule(static)
    for (int64_t u = 0; u < nu; u++) elu_from_blocked_unit(d, unit_of(d, act, u), hb, a, e);
}

/* (dh or 0) + (tmp or 0) * e at plain offset i, 16 pixels. */
MN_INLINE mn_v16 combined16(const float *dh, const float *tmp, const float *e, int64_t i)
{
    mn_v16 v = {0};
    if (dh) v = mn_ld16(dh + i);
    if (tmp) v += mn_ld16(tmp + i) * mn_ld16(e + i);
    return v;
}

MN_HOT static void combine_to_blocked_unit(const mn_dims *d, blk_unit b, const float *dh, const float *tmp,
                                           const float *e, float *outb)
{
    float *restrict out = outb + blocked_off(d, &b);
    const int64_t base = plain_off(d, &b);
    int64_t q = 0;
    for (; q + 16 <= b.np; q += 16) {
        mn_v16 r[LANES];
        for (int64_t j = 0; j < LANES; j++) {
            mn_v16 z = {0};
            r[j] = j < b.m ? combined16(dh, tmp, e, base + j * d->hw + q) : z;
        }
        store_transposed(out, q, r);
    }
    for (; q < b.np; q++)
        for (int64_t j = 0; j < LANES; j++) {
            const int64_t i = base + j * d->hw + q;
            out[q * LANES + j] = j < b.m ? (dh ? dh[i] : 0.0f) + (tmp ? tmp[i] * e[i] : 0.0f) : 0.0f;
        }
}

void mn_combine_to_blocked(const mn_dims *d, const float *dh, const float *tmp, const float *e, float *outb)
{
    const int64_t nu = units(d, NULL, 0);
#pragma omp parallel for schedule(static)
    for (int64_t u = 0; u < nu; u++) combine_to_blocked_unit(d, unit_of(d, NULL, u), dh, tmp, e, outb);
}

MN_HOT static void combine_from_blocked_unit(const mn_dims *d, blk_unit b, float *dh, int has_dh, const float *tmpb,
                                             const float *e)
{
    const float *restrict in = tmpb + blocked_off(d, &b);
    const int64_t base = plain_off(d, &b);
    int64_t q = 0;
    for (; q + 16 <= b.np; q += 16) {
        mn_v16 r[LANES];
        load_transposed(in, q, r);
        for (int64_t j = 0; j < b.m; j++) {
            const int64_t i = base + j * d->hw + q;
            mn_v16 v = r[j] * mn_ld16(e + i);
            if (has_dh) v += mn_ld16(dh + i);
            mn_st16(dh + i, v);
        }
    }
    for (; q < b.np; q++)
        for (int64_t j = 0; j < b.m; j++) {
            const int64_t i = base + j * d->hw + q;
            dh[i] = (has_dh ? dh[i] : 0.0f) + in[q * LANES + j] * e[i];
        }
}

void mn_combine_from_blocked(const mn_dims *d, float *dh, int has_dh, const float *tmpb, const float *e)
{
    const int64_t nu = units(d, NULL, 0);
#pragma omp parallel for schedule(static)
    for (int64_t u = 0; u < nu; u++) combine_from_blocked_unit(d, unit_of(d, NULL, u), dh, has_dh, tmpb, e);
}
