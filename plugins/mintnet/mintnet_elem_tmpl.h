/* plugins/mintnet/mintnet_elem_tmpl.h: the elementwise kernels of a block,
 * written once for a scalar type. mintnet_elem.c includes this file twice,
 * with MN_T = float / MN_SFX = f32 and MN_T = double / MN_SFX = f64.
 *
 * Every kernel takes the list of samples to process (act, nact; NULL: all)
 * and parallelises over (sample, channel, pixel tile) units with OpenMP; none
 * calls a convolution kernel. */
#define MN_CAT2(a, b) a##_##b
#define MN_CAT(a, b) MN_CAT2(a, b)
#define MN_FN(name) MN_CAT(name, MN_SFX)

/* a = ELU(h), he: h -> ELU'(h) over n elements (one work unit), with the
 * vectorised polynomial exponentials of mintnet_simd.h. */
MN_HOT static void MN_FN(elu_chunk)(MN_T *restrict h, MN_T *restrict o, int64_t n)
{
#pragma omp simd
    for (int64_t i = 0; i < n; i++) MN_FN(mn_elu_pair)(h[i], &o[i], &h[i]);
}

/* he, a are [N, per] (per = channels * HW); only the samples in act. */
void MN_FN(mn_elu)(MN_T *he, MN_T *a, int64_t per, const mn_dims *d, const int *act, int nact)
{
    const int na = act ? nact : (int)d->n;
    const int64_t nch = (per + MN_CHUNK - 1) / MN_CHUNK;
#pragma omp parallel for schedule(static)
    for (int64_t u = 0; u < na * nch; u++) {
        int64_t n = act ? act[u / nch] : u / nch, lo = (u % nch) * MN_CHUNK;
        int64_t hi = lo + MN_CHUNK < per ? lo + MN_CHUNK : per;
        MN_FN(elu_chunk)(he + n * per + lo, a + n * per + lo, hi - lo);
    }
}

/* One (sample, channel, tile) unit of the diagonal: D over np pixels from p0,
 * and y += tau x there (y not NULL); returns sum log D (if want_log). d1,
 * d2 are scratch rows of stride P (float: padded to 16 for the small GEMM). */
MN_HOT static double MN_FN(diag_tile)(const mn_wts *w, const MN_T *e1, const MN_T *e2, const MN_T *tau, MN_T *D,
                                      const MN_T *x, MN_T *y, int64_t n, int64_t c, int64_t p0, int64_t np,
                                      int64_t P, MN_T *restrict d1, MN_T *restrict d2, int want_log)
{
    const int64_t C = w->d.c, L = w->d.l, LC = w->d.lc, HW = w->d.hw;
    const MN_T *c1 = MN_WT(w, c1), *c2 = MN_WT(w, c2) + c * L * L, *c3 = MN_WT(w, c3);
    MN_T dsum[MN_TILE_MAX];
    for (int64_t g = 0; g < L; g++) {
        const MN_T *restrict e = e1 + (n * LC + g * C + c) * HW + p0, wc = c1[g * C + c];
        MN_T *restrict dst = d1 + g * P;
#pragma omp simd
        for (int64_t p = 0; p < np; p++) dst[p] = e[p] * wc;
        for (int64_t p = np; p < ((np + 15) & ~(int64_t)15) && p < P; p++) dst[p] = 0;
    }
#if MN_IS_F32
    mn_small_gemm(c2, L, 1, d1, d2, L, L, P, np);
#else
    for (int64_t g2 = 0; g2 < L; g2++) {
        MN_T *restrict acc = d2 + g2 * P;
        for (int64_t p = 0; p < np; p++) acc[p] = 0;
        for (int64_t g1 = 0; g1 < L; g1++) {
            const MN_T wv = c2[g2 * L + g1], *restrict src = d1 + g1 * P;
            if (wv == 0) continue;
#pragma omp simd
            for (int64_t p = 0; p < np; p++) acc[p] += wv * src[p];
        }
    }
#endif
    const int64_t off = (n * C + c) * HW + p0;
    for (int64_t p = 0; p < np; p++) dsum[p] = tau[c * HW + p0 + p];
    for (int64_t g2 = 0; g2 < L; g2++) {
        const MN_T w3 = c3[g2 * C + c], *restrict acc = d2 + g2 * P;
        const MN_T *restrict e = e2 + (n * LC + g2 * C + c) * HW + p0;
#pragma omp simd
        for (int64_t p = 0; p < np; p++) dsum[p] += acc[p] * e[p] * w3;
    }
    if (y) {
#pragma omp simd
        for (int64_t p = 0; p < np; p++) y[off + p] += tau[c * HW + p0 + p] * x[off + p];
    }
    double lsum = 0;
    for (int64_t p = 0; p < np; p++) D[off + p] = dsum[p];
    if (want_log)
        for (int64_t p = 0; p < np; p++) lsum += MN_LOG(dsum[p]);
    return lsum;
}

void MN_FN(mn_diag)(const mn_wts *w, const MN_T *e1, const MN_T *e2, const MN_T *tau, MN_T *D, const MN_T *x,
                    MN_T *y, double *part, const int *act, int nact)
{
    const mn_dims *d = &w->d;
    const int na = act ? nact : (int)d->n;
    const int64_t P = mn_diag_tile(d), nt = (d->hw + P - 1) / P, units = na * d->c * nt;
#pragma omp parallel for schedule(static)
    for (int64_t u = 0; u < units; u++) {
        MN_T d1[d->l * P], d2[d->l * P];
        int64_t k = u / (d->c * nt), c = (u / nt) % d->c, t = u % nt;
        int64_t n = act ? act[k] : k, p0 = t * P, np = d->hw - p0 < P ? d->hw - p0 : P;
        double s = MN_FN(diag_tile)(w, e1, e2, tau, D, x, y, n, c, p0, np, P, d1, d2, part != NULL);
        if (part) part[(n * d->c + c) * nt + t] = s;
    }
}

void MN_FN(mn_tau)(const float *t, MN_T *tau, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        MN_T a = MN_FABS((MN_T)t[i]);
        tau[i] = a > (MN_T)MN_TAU_MIN ? a : (MN_T)MN_TAU_MIN;
    }
}

/* ---- the inverse iteration (spec section 4) ---------------------------------------------
 * z, y, x, D are [N, C, HW]. */

/* x = z / tau for every sample. */
void MN_FN(mn_inv_start)(const mn_dims *d, const MN_T *z, const MN_T *tau, MN_T *x)
{
    const int64_t per = d->c * d->hw;
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < d->n; n++)
        for (int64_t i = 0; i < per; i++) x[n * per + i] = z[n * per + i] / tau[i];
}

/* res[n] = max |z - y| over sample n, NaN if any difference is NaN; when
 * ss is not NULL, ss[n] = sum of (z - y)^2; part is scratch of [2 N C]. */
void MN_FN(mn_inv_resid)(const mn_dims *d, const MN_T *z, const MN_T *y, double *part, double *res, double *ss,
                         const int *act, int nact)
{
    const int64_t per = d->c * d->hw, nc = d->n * d->c;
#pragma omp parallel for schedule(static)
    for (int64_t u = 0; u < nact * d->c; u++) {
        int64_t n = act[u / d->c], off = n * per + (u % d->c) * d->hw;
        double m = 0, q = 0;
        for (int64_t p = 0; p < d->hw; p++) {
            double r = MN_FABS(z[off + p] - y[off + p]);
            q += r * r;
            if (r > m || r != r) m = r;
            if (m != m) break;
        }
        part[n * d->c + u % d->c] = m;
        part[nc + n * d->c + u % d->c] = q;
    }
    for (int k = 0; k < nact; k++) {
        int64_t n = act[k];
        double m = 0, q = 0;
        for (int64_t c = 0; c < d->c; c++) {
            double r = part[n * d->c + c];
            q += part[nc + n * d->c + c];
            if (r > m || r != r) m = r;
            if (m != m) break;
        }
        res[n] = m;
        if (ss) ss[n] = m != m ? m : q;
    }
}

/* x += (z - y) / (beta D) for the samples in act. */
void MN_FN(mn_inv_step)(const mn_dims *d, const MN_T *z, const MN_T *y, const MN_T *D, MN_T beta, MN_T *x,
                        const int *act, int nact)
{
    const int64_t per = d->c * d->hw;
#pragma omp parallel for schedule(static)
    for (int64_t u = 0; u < nact * d->c; u++) {
        int64_t off = act[u / d->c] * per + (u % d->c) * d->hw;
#pragma omp simd
        for (int64_t p = 0; p < d->hw; p++) x[off + p] += (z[off + p] - y[off + p]) / (beta * D[off + p]);
    }
}

/* Adaptive damping (mintnet_inverse.c): for the samples in act,
 * step = (z - y) / D and xprev = x (the accepted point). */
void MN_FN(mn_inv_accept)(const mn_dims *d, const MN_T *z, const MN_T *y, const MN_T *D, MN_T *step, MN_T *xprev,
                          const MN_T *x, const int *act, int nact)
{
    const int64_t per = d->c * d->hw;
#pragma omp parallel for schedule(static)
    for (int64_t u = 0; u < nact * d->c; u++) {
        int64_t off = act[u / d->c] * per + (u % d->c) * d->hw;
#pragma omp simd
        for (int64_t p = 0; p < d->hw; p++) {
            step[off + p] = (z[off + p] - y[off + p]) / D[off + p];
            xprev[off + p] = x[off + p];
        }
    }
}

/* x = xprev + step / beta[n] for the samples n in act. */
void MN_FN(mn_inv_trial)(const mn_dims *d, const MN_T *step, const MN_T *xprev, const double *beta, MN_T *x,
                         const int *act, int nact)
{
    const int64_t per = d->c * d->hw;
#pragma omp parallel for schedule(static)
    for (int64_t u = 0; u < nact * d->c; u++) {
        int64_t n = act[u / d->c], off = n * per + (u % d->c) * d->hw;
        const MN_T ib = (MN_T)(1.0 / beta[n]);
#pragma omp simd
        for (int64_t p = 0; p < d->hw; p++) x[off + p] = xprev[off + p] + step[off + p] * ib;
    }
}

#undef MN_FN
#undef MN_CAT
#undef MN_CAT2
