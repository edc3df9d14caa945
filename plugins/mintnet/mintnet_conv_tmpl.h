/* plugins/mintnet/mintnet_conv_tmpl.h: the plugin's own 3x3 convolution
 * (stride 1, zero padding 1) over a list of samples, written once for a
 * scalar type; mintnet_conv.c includes it for float and double (MN_T,
 * MN_SFX). See mintnet_conv.c for the method. */
#define MN_CAT2(a, b) a##_##b
#define MN_CAT(a, b) MN_CAT2(a, b)
#define MN_FN(name) MN_CAT(name, MN_SFX)

/* Copies the samples' planes of x (N, I, H, W) into the interior of pad. */
static void MN_FN(pad_input)(const mn_conv3 *s, const MN_T *x, MN_T *pad, const int *act, int na)
{
    const int64_t H = s->h, W = s->w, Wp = W + 2, HWp = (H + 2) * Wp;
#pragma omp parallel for schedule(static)
    for (int64_t u = 0; u < na * s->in; u++) {
        int64_t n = act ? act[u / s->in] : u / s->in, plane = n * s->in + u % s->in;
        const MN_T *src = x + plane * H * W;
        MN_T *dst = pad + plane * HWp + Wp + 1;
        for (int64_t r = 0; r < H; r++) memcpy(dst + r * Wp, src + r * W, (size_t)W * sizeof(MN_T));
    }
}

/* 1 if the 3x3 taps of output channels o .. o+no-1 for input channel i are all zero. */
static int MN_FN(taps_zero)(const mn_conv3 *s, const MN_T *w, int64_t o, int64_t no, int64_t i)
{
    for (int64_t k = 0; k < no; k++)
        for (int t = 0; t < 9; t++)
            if (w[((o + k) * s->in + i) * 9 + t] != 0) return 0;
    return 1;
}

/* acc_k[q] += sum_t w_k[t] src[q + off_t] for two output channels at once
 * (the nine source loads are shared; 18 weights, 9 sources and 2 sums fit
 * the 32 vector registers), q < len; Wp is the padded width. */
MN_INLINE void MN_FN(conv_taps2)(MN_T *restrict a0, MN_T *restrict a1, const MN_T *restrict src, const MN_T *w0,
                                 const MN_T *w1, int64_t Wp, int64_t len)
{
    const MN_T *r0 = src, *r1 = src + Wp, *r2 = src + 2 * Wp;
    const MN_T p0 = w0[0], p1 = w0[1], p2 = w0[2], p3 = w0[3], p4 = w0[4], p5 = w0[5], p6 = w0[6], p7 = w0[7],
                 p8 = w0[8];
    const MN_T q0 = w1[0], q1 = w1[1], q2 = w1[2], q3 = w1[3], q4 = w1[4], q5 = w1[5], q6 = w1[6], q7 = w1[7],
                 q8 = w1[8];
#pragma omp simd
    for (int64_t q = 0; q < len; q++) {
        const MN_T s0 = r0[q], s1 = r0[q + 1], s2 = r0[q + 2], s3 = r1[q], s4 = r1[q + 1], s5 = r1[q + 2],
                     s6 = r2[q], s7 = r2[q + 1], s8 = r2[q + 2];
        a0[q] += p0 * s0 + p1 * s1 + p2 * s2 + p3 * s3 + p4 * s4 + p5 * s5 + p6 * s6 + p7 * s7 + p8 * s8;
        a1[q] += q0 * s0 + q1 * s1 + q2 * s2 + q3 * s3 + q4 * s4 + q5 * s5 + q6 * s6 + q7 * s7 + q8 * s8;
    }
}

/* The same for two consecutive kernel rows (6 taps), w0 / w1 / src already
 * at the first of them: for pairs whose top or bottom kernel row the mask
 * zeroes (C = 1 blocks), a third fewer operations. */
MN_INLINE void MN_FN(conv_taps2_rows2)(MN_T *restrict a0, MN_T *restrict a1, const MN_T *restrict src,
                                       const MN_T *w0, const MN_T *w1, int64_t Wp, int64_t len)
{
    const MN_T *r0 = src, *r1 = src + Wp;
    const MN_T p0 = w0[0], p1 = w0[1], p2 = w0[2], p3 = w0[3], p4 = w0[4], p5 = w0[5];
    const MN_T q0 = w1[0], q1 = w1[1], q2 = w1[2], q3 = w1[3], q4 = w1[4], q5 = w1[5];
#pragma omp simd
    for (int64_t q = 0; q < len; q++) {
        const MN_T s0 = r0[q], s1 = r0[q + 1], s2 = r0[q + 2], s3 = r1[q], s4 = r1[q + 1], s5 = r1[q + 2];
        a0[q] += p0 * s0 + p1 * s1 + p2 * s2 + p3 * s3 + p4 * s4 + p5 * s5;
        a1[q] += q0 * s0 + q1 * s1 + q2 * s2 + q3 * s3 + q4 * s4 + q5 * s5;
    }
}

/* The first kernel row (0 or 1) of a pair (w0, w1) when one of its outer
 * rows is all zero, or -1. */
static int MN_FN(two_rows)(const MN_T *w0, const MN_T *w1)
{
    int z0 = 1, z2 = 1;
    for (int v = 0; v < 3; v++) {
        z0 = z0 && w0[v] == 0 && w1[v] == 0;
        z2 = z2 && w0[6 + v] == 0 && w1[6 + v] == 0;
    }
    return z2 ? 0 : z0 ? 1 : -1;
}

/* One unit: sample n, output channels o .. o+no-1 (no <= 2), rows r0 .. r0+nr-1. */
MN_HOT static void MN_FN(conv_block)(const mn_conv3 *s, const MN_T *pad, const MN_T *w, const float *b, MN_T *y,
                                     int64_t n, int64_t o, int64_t no, int64_t r0, int64_t nr)
{
    static const MN_T zero[9];
    const int64_t W = s->w, Wp = W + 2, HWp = (s->h + 2) * Wp, len = (nr - 1) * Wp + W;
    MN_T acc[2][MN_CONV_SPAN];
    for (int64_t k = 0; k < 2; k++) {
        const MN_T bias = b && k < no ? (MN_T)b[o + k] : 0;
        for (int64_t q = 0; q < len; q++) acc[k][q] = bias;
    }
    for (int64_t i = 0; i < s->in; i++) {
        if (MN_FN(taps_zero)(s, w, o, no, i)) continue;
        const MN_T *w0 = w + (o * s->in + i) * 9, *w1 = no > 1 ? w + ((o + 1) * s->in + i) * 9 : zero;
        const MN_T *src = pad + (n * s->in + i) * HWp + r0 * Wp;
        const int u0 = MN_FN(two_rows)(w0, w1);
        if (u0 >= 0)
            MN_FN(conv_taps2_rows2)(acc[0], acc[1], src + u0 * Wp, w0 + 3 * u0, w1 + 3 * u0, Wp, len);
        else
            MN_FN(conv_taps2)(acc[0], acc[1], src, w0, w1, Wp, len);
    }
    for (int64_t k = 0; k < no; k++) {
        MN_T *out = y + ((n * s->out + o + k) * s->h + r0) * W;
        for (int64_t r = 0; r < nr; r++) memcpy(out + r * W, acc[k] + r * Wp, (size_t)W * sizeof(MN_T));
    }
}

void MN_FN(mn_conv3)(const mn_conv3 *s, const MN_T *x, MN_T *pad, const MN_T *w, const float *b, MN_T *y,
                    const int *act, int nact)
{
    const int na = act ? nact : (int)s->n;
    const int64_t Wp = s->w + 2;
    int64_t R = MN_CONV_SPAN / Wp;
    if (R < 1) R = 1; /* rows wider than the span: handled one row at a time below */
    if (R > s->h) R = s->h;
    const int64_t nb = (s->h + R - 1) / R, ob = (s->out + 1) / 2, units = na * ob * nb;
    MN_FN(pad_input)(s, x, pad, act, na);
    if (Wp > MN_CONV_SPAN) {
        /* A single row does not fit the accumulator: a plain, slower loop. */
#pragma omp parallel for schedule(static)
        for (int64_t u = 0; u < na * s->out; u++) {
            int64_t n = act ? act[u / s->out] : u / s->out, o = u % s->out;
            for (int64_t r = 0; r < s->h; r++)
                for (int64_t x0 = 0; x0 < s->w; x0++) {
                    MN_T a = b ? (MN_T)b[o] : 0;
                    for (int64_t i = 0; i < s->in; i++)
                        for (int t = 0; t < 9; t++)
                            a += w[(o * s->in + i) * 9 + t] *
                                 pad[((n * s->in + i) * (s->h + 2) + r + t / 3) * Wp + x0 + t % 3];
                    y[((n * s->out + o) * s->h + r) * s->w + x0] = a;
                }
        }
        return;
    }
#pragma omp parallel for schedule(static)
    for (int64_t u = 0; u < units; u++) {
        int64_t k = u / (ob * nb), o = ((u / nb) % ob) * 2, r0 = (u % nb) * R;
        int64_t n = act ? act[k] : k;
        MN_FN(conv_block)(s, pad, w, b, y, n, o, s->out - o < 2 ? s->out - o : 2, r0, s->h - r0 < R ? s->h - r0 : R);
    }
}

#undef MN_FN
#undef MN_CAT
#undef MN_CAT2
