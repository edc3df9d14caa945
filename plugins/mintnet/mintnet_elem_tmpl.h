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

/* a = ELU(h), he: h -> ELU'(h); he, a are [N, per] (per = channels * HW).
 * One exp per element: expm1 near 0 for accuracy, exp - 1 further out. */
void MN_FN(mn_elu)(MN_T *he, MN_T *a, int64_t per, const mn_dims *d, const int *act, int nact)
{
    const int na = act ? nact : (int)d->n;
    const int64_t nch = (per + MN_CHUNK - 1) / MN_CHUNK;
#pragma omp parallel for schedule(static)
    for (int64_t u = 0; u < na * nch; u++) {
        int64_t n = act ? act[u / nch] : u / nch, lo = (u % nch) * MN_CHUNK;
        int64_t hi = lo + MN_CHUNK < per ? lo + MN_CHUNK : per;
        MN_T *h = he + n * per, *o = a + n * per;
        for (int64_t i = lo; i < hi; i++) {
            MN_T v = h[i];
            if (v > 0) {
                o[i] = v;
                h[i] = 1;
            } else if (v > (MN_T)-0.25) {
                o[i] = MN_EXPM1(v);
                h[i] = o[i] + 1;
            } else {
                MN_T e = MN_EXP(v);
                o[i] = e - 1;
                h[i] = e;
            }
        }
    }
}

/* One (sample, channel, tile) unit of the diagonal: D over np pixels from p0,
 * returns sum log D. d1 is scratch of L * np. */
static double MN_FN(diag_tile)(const mn_wts *w, const MN_T *c1, const MN_T *c2, const MN_T *c3,
                               const MN_T *e1, const MN_T *e2, const MN_T *tau, MN_T *D, int64_t n,
                               int64_t c, int64_t p0, int64_t np, MN_T *d1)
{
    const int64_t C = w->d.c, L = w->d.l, LC = w->d.lc, HW = w->d.hw;
    MN_T acc[MN_TILE_MAX], dsum[MN_TILE_MAX];
    for (int64_t g = 0; g < L; g++) {
        const MN_T *e = e1 + (n * LC + g * C + c) * HW + p0, wc = c1[g * C + c];
        for (int64_t p = 0; p < np; p++) d1[g * np + p] = e[p] * wc;
    }
    for (int64_t p = 0; p < np; p++) dsum[p] = tau[c * HW + p0 + p];
    for (int64_t g2 = 0; g2 < L; g2++) {
        const MN_T *row = c2 + (c * L + g2) * L, w3 = c3[g2 * C + c];
        const MN_T *e = e2 + (n * LC + g2 * C + c) * HW + p0;
        if (w3 == 0) continue;
        for (int64_t p = 0; p < np; p++) acc[p] = 0;
        for (int64_t g1 = 0; g1 < L; g1++) {
            const MN_T wv = row[g1], *src = d1 + g1 * np;
            if (wv == 0) continue;
#pragma omp simd
            for (int64_t p = 0; p < np; p++) acc[p] += wv * src[p];
        }
        for (int64_t p = 0; p < np; p++) dsum[p] += acc[p] * e[p] * w3;
    }
    double lsum = 0;
    MN_T *out = D + (n * C + c) * HW + p0;
    for (int64_t p = 0; p < np; p++) {
        out[p] = dsum[p];
        lsum += MN_LOG(dsum[p]);
    }
    return lsum;
}

void MN_FN(mn_diag)(const mn_wts *w, const MN_T *e1, const MN_T *e2, const MN_T *tau, MN_T *D,
                    double *part, const int *act, int nact)
{
    const mn_dims *d = &w->d;
    const int na = act ? nact : (int)d->n;
    const int64_t P = mn_diag_tile(d), nt = (d->hw + P - 1) / P, units = na * d->c * nt;
    const MN_T *c1 = MN_WT(w, c1), *c2 = MN_WT(w, c2), *c3 = MN_WT(w, c3);
#pragma omp parallel for schedule(static)
    for (int64_t u = 0; u < units; u++) {
        MN_T d1[d->l * P];
        int64_t k = u / (d->c * nt), c = (u / nt) % d->c, t = u % nt;
        int64_t n = act ? act[k] : k, p0 = t * P, np = d->hw - p0 < P ? d->hw - p0 : P;
        double s = MN_FN(diag_tile)(w, c1, c2, c3, e1, e2, tau, D, n, c, p0, np, d1);
        if (part) part[(n * d->c + c) * nt + t] = s;
    }
}

/* y += tau (.) x; y, x are [N, C, HW], tau is [C, HW]. */
void MN_FN(mn_add_tau_x)(const mn_dims *d, const MN_T *tau, const MN_T *x, MN_T *y, const int *act,
                         int nact)
{
    const int na = act ? nact : (int)d->n;
    const int64_t per = d->c * d->hw;
#pragma omp parallel for schedule(static)
    for (int64_t u = 0; u < na * d->c; u++) {
        int64_t n = act ? act[u / d->c] : u / d->c, c = u % d->c;
        const MN_T *xs = x + n * per + c * d->hw, *ts = tau + c * d->hw;
        MN_T *ys = y + n * per + c * d->hw;
#pragma omp simd
        for (int64_t p = 0; p < d->hw; p++) ys[p] += ts[p] * xs[p];
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

/* res[n] = max |z - y| over sample n, NaN if any difference is NaN; part is
 * scratch of [N * C]. */
void MN_FN(mn_inv_resid)(const mn_dims *d, const MN_T *z, const MN_T *y, double *part, double *res,
                         const int *act, int nact)
{
    const int64_t per = d->c * d->hw;
#pragma omp parallel for schedule(static)
    for (int64_t u = 0; u < nact * d->c; u++) {
        int64_t n = act[u / d->c], off = n * per + (u % d->c) * d->hw;
        double m = 0;
        for (int64_t p = 0; p < d->hw; p++) {
            double r = MN_FABS(z[off + p] - y[off + p]);
            if (r > m || r != r) m = r;
            if (m != m) break;
        }
        part[n * d->c + u % d->c] = m;
    }
    for (int k = 0; k < nact; k++) {
        int64_t n = act[k];
        double m = 0;
        for (int64_t c = 0; c < d->c; c++) {
            double r = part[n * d->c + c];
            if (r > m || r != r) m = r;
            if (m != m) break;
        }
        res[n] = m;
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

#undef MN_FN
#undef MN_CAT
#undef MN_CAT2
