/* plugins/mintnet/mintnet_conv64.c: a double-precision 3x3 convolution
 * (stride 1, zero padding 1) for the f64 inverse and the f64 forward.
 *
 * The input is first copied into zero-bordered planes (H+2) x (W+2). In that
 * layout the nine taps of an output row block are nine constant offsets into
 * one contiguous span, so each (input channel, output channel) pair is one
 * vectorised pass over the block: acc[q] += sum_t w_t pad[q + off_t], where
 * q runs over the padded-width span and the two extra columns per row are
 * dropped when the block is written out. Work is split over (sample, output
 * channel, row block) with OpenMP. */
#include "mintnet.h"

#include <string.h>

/* Doubles in one row-block accumulator (on the stack). */
#define MN_C64_SPAN 4096

/* Copies the samples' planes of x (N, I, H, W) into the interior of pad. */
static void pad_input(const mn_conv64 *s, const double *x, double *pad, const int *act, int na)
{
    const int64_t H = s->h, W = s->w, Wp = W + 2, HWp = (H + 2) * Wp;
#pragma omp parallel for schedule(static)
    for (int64_t u = 0; u < na * s->in; u++) {
        int64_t n = act ? act[u / s->in] : u / s->in, plane = n * s->in + u % s->in;
        const double *src = x + plane * H * W;
        double *dst = pad + plane * HWp + Wp + 1;
        for (int64_t r = 0; r < H; r++) memcpy(dst + r * Wp, src + r * W, (size_t)W * sizeof(double));
    }
}

static int taps_zero(const double *w)
{
    for (int t = 0; t < 9; t++)
        if (w[t] != 0) return 0;
    return 1;
}

/* acc[q] += sum of the nine taps of w over src, for q < len; Wp is the padded width. */
static void conv_taps(double *restrict acc, const double *restrict src, const double *w, int64_t Wp, int64_t len)
{
    const double w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[3], w4 = w[4], w5 = w[5], w6 = w[6], w7 = w[7], w8 = w[8];
    const double *r0 = src, *r1 = src + Wp, *r2 = src + 2 * Wp;
#pragma omp simd
    for (int64_t q = 0; q < len; q++)
        acc[q] += w0 * r0[q] + w1 * r0[q + 1] + w2 * r0[q + 2] + w3 * r1[q] + w4 * r1[q + 1] + w5 * r1[q + 2] +
                  w6 * r2[q] + w7 * r2[q + 1] + w8 * r2[q + 2];
}

/* One (sample n, output channel o, rows r0 .. r0+nr-1) unit. */
static void conv_block(const mn_conv64 *s, const double *pad, const double *w, const float *b, double *y,
                       int64_t n, int64_t o, int64_t r0, int64_t nr)
{
    const int64_t W = s->w, Wp = W + 2, HWp = (s->h + 2) * Wp, len = (nr - 1) * Wp + W;
    double acc[MN_C64_SPAN];
    const double bias = b ? (double)b[o] : 0.0;
    for (int64_t q = 0; q < len; q++) acc[q] = bias;
    for (int64_t i = 0; i < s->in; i++) {
        const double *wt = w + (o * s->in + i) * 9;
        if (taps_zero(wt)) continue;
        conv_taps(acc, pad + (n * s->in + i) * HWp + r0 * Wp, wt, Wp, len);
    }
    double *out = y + ((n * s->out + o) * s->h + r0) * W;
    for (int64_t r = 0; r < nr; r++) memcpy(out + r * W, acc + r * Wp, (size_t)W * sizeof(double));
}

void mn_conv64_forward(const mn_conv64 *s, const double *x, double *pad, const double *w, const float *b,
                       double *y, const int *act, int nact)
{
    const int na = act ? nact : (int)s->n;
    const int64_t Wp = s->w + 2;
    int64_t R = MN_C64_SPAN / Wp;
    if (R < 1) R = 1; /* rows wider than the span: handled one row at a time below */
    if (R > s->h) R = s->h;
    const int64_t nb = (s->h + R - 1) / R, units = na * s->out * nb;
    pad_input(s, x, pad, act, na);
    if (Wp > MN_C64_SPAN) {
        /* A single row does not fit the accumulator: a plain, slower loop. */
#pragma omp parallel for schedule(static)
        for (int64_t u = 0; u < na * s->out; u++) {
            int64_t n = act ? act[u / s->out] : u / s->out, o = u % s->out;
            for (int64_t r = 0; r < s->h; r++)
                for (int64_t x0 = 0; x0 < s->w; x0++) {
                    double a = b ? (double)b[o] : 0.0;
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
        int64_t k = u / (s->out * nb), o = (u / nb) % s->out, r0 = (u % nb) * R;
        int64_t n = act ? act[k] : k;
        conv_block(s, pad, w, b, y, n, o, r0, s->h - r0 < R ? s->h - r0 : R);
    }
}
