/* plugins/mintnet/mintnet_wgrad.c: weight and bias gradients of a block's
 * thin convolutions (W1: C -> LC and W3: LC -> C when mn_own_conv(C)) on the
 * plugin's own kernels.
 *
 * oneDNN handles these shapes poorly: at the MNIST model's first stage
 * (C = 1, LC = 45, 28x28, batch 32) its backward-weights and backward-data
 * of W3 take about 1.6 ms each, plus 1 ms layout conversions of the
 * 45-channel operand before and after, where one pass over that operand
 * suffices.
 *
 * A weight gradient of a 3x3 convolution is, for every (output channel,
 * input channel, tap), a sum over samples and pixels of the output gradient
 * times the shifted input. Here one operand is thick (LC channels: dh1 for
 * W1, a2 for W3) and the other thin (C channels: x for W1, gy for W3). The
 * thin one is copied into zero-bordered planes (H+2) x (W+2); each plane of
 * the thick one is copied once into a row stride of W+2 (zeros in the two
 * extra columns), so that all nine taps are constant offsets into the thin
 * plane and one vectorised pass per (thick, thin) plane pair gives all nine
 * sums:
 *     acc[t] = sum_q thick[q] thin_pad[q + (t/3)(W+2) + t%3].
 * For W1 (thick = dy) that is dW1[b, s, t] directly. For W3 (thick = the
 * input) the shift runs the other way: with the input at (y', x') and
 * dy at (y'+1-u, x'+1-v), padded (y'+2-u, x'+2-v), dW3[s, b, (u, v)] is
 * acc[8 - (3u + v)].
 *
 * Threads split the thick channels; each (thick, thin) pair sums its
 * samples in order, in float within a plane and in double across planes,
 * so results do not depend on the thread count. Pairs whose sub-block the
 * mask zeroes entirely are skipped (their gradient is 0). */
#include "mintnet.h"
#include "mintnet_simd.h"

#include <string.h>

/* acc[s * 9 + t] += the nine sums of one thick plane against the ns thin
 * planes of one sample (stride `plane` floats); tmp holds H rows of W+2. */
MN_HOT static void corr_plane(const float *thick, const float *thin_pad, int64_t ns, int64_t plane, int64_t H,
                              int64_t W, const unsigned char *skip, float *tmp, double *acc)
{
    const int64_t Wp = W + 2, len = (H - 1) * Wp + W;
    for (int64_t r = 0; r < H; r++) {
        memcpy(tmp + r * Wp, thick + r * W, (size_t)W * sizeof(float));
        if (r + 1 < H) tmp[r * Wp + W] = tmp[r * Wp + W + 1] = 0.0f;
    }
    for (int64_t s = 0; s < ns; s++) {
        if (skip[s]) continue;
        const float *restrict p = thin_pad + s * plane, *restrict v = tmp;
        const float *restrict p1 = p + Wp, *restrict p2 = p + 2 * Wp;
        float a0 = 0, a1 = 0, a2 = 0, a3 = 0, a4 = 0, a5 = 0, a6 = 0, a7 = 0, a8 = 0;
#pragma omp simd reduction(+ : a0, a1, a2, a3, a4, a5, a6, a7, a8)
        for (int64_t q = 0; q < len; q++) {
            const float t = v[q];
            a0 += t * p[q], a1 += t * p[q + 1], a2 += t * p[q + 2];
            a3 += t * p1[q], a4 += t * p1[q + 1], a5 += t * p1[q + 2];
            a6 += t * p2[q], a7 += t * p2[q + 1], a8 += t * p2[q + 2];
        }
        double *o = acc + s * 9;
        o[0] += a0, o[1] += a1, o[2] += a2, o[3] += a3, o[4] += a4, o[5] += a5, o[6] += a6, o[7] += a7, o[8] += a8;
    }
}

void mn_wgrad_thin_f32(const mn_dims *d, mn_mask mask, const float *thick, const float *thin_pad, int thick_is_dy,
                       float *rows, float *dw)
{
    const int64_t C = d->c, LC = d->lc, H = d->h, W = d->w, plane = (H + 2) * (W + 2);
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t b = 0; b < LC; b++) {
        float *tmp = rows + b * H * (W + 2);
        double acc[C * 9];
        unsigned char skip[C];
        memset(acc, 0, sizeof acc);
        for (int64_t s = 0; s < C; s++) {
            /* the (output, input) entry of this pair: (b, s) for W1, (s, b) for W3 */
            int keep = 0;
            for (int t = 0; t < 9 && !keep; t++)
                keep = thick_is_dy ? mn_mask_keep(mask, C, b, s, t / 3, t % 3) : mn_mask_keep(mask, C, s, b, t / 3, t % 3);
            skip[s] = !keep;
        }
        for (int64_t n = 0; n < d->n; n++)
            corr_plane(thick + (n * LC + b) * d->hw, thin_pad + n * C * plane, C, plane, H, W, skip, tmp, acc);
        for (int64_t s = 0; s < C; s++)
            for (int t = 0; t < 9; t++) {
                if (thick_is_dy)
                    dw[(b * C + s) * 9 + t] = (float)acc[s * 9 + t];
                else
                    dw[(s * LC + b) * 9 + 8 - t] = (float)acc[s * 9 + t];
            }
    }
}

void mn_channel_sum_f32(const mn_dims *d, int64_t ch, const float *x, float *out)
{
#pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < ch; c++) {
        double s = 0;
        for (int64_t n = 0; n < d->n; n++) {
            const float *p = x + (n * ch + c) * d->hw;
            float a = 0;
#pragma omp simd reduction(+ : a)
            for (int64_t i = 0; i < d->hw; i++) a += p[i];
            s += a;
        }
        out[c] = (float)s;
    }
}
