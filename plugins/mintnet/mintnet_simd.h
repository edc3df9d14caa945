/* plugins/mintnet/mintnet_simd.h: what makes the plugin's own kernels fast
 * without special build flags.
 *
 * MN_HOT marks a kernel for function multiversioning: GCC compiles it for
 * x86-64-v4 (AVX-512), v3 (AVX2) and the baseline, and picks one at load
 * time from the CPU, so a default (-O2, SSE2) build still runs AVX-512 code
 * where available. Kernels marked MN_HOT keep their OpenMP loops outside
 * (they are called per work unit).
 *
 * mn_elu_pair_f32 / _f64 compute ELU and its derivative with polynomial
 * exponentials that vectorise (libm's exp/expm1 do not): in float one
 * polynomial for both (see there), in float and in double, within 1 ulp
 * of libm's expm1 / exp (tests/test_mintnet_logdet.c checks 2). */
#ifndef MINTNET_SIMD_H
#define MINTNET_SIMD_H

#include <stdint.h>
#include <string.h>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(MN_NO_CLONES)
#define MN_HOT __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define MN_HOT
#endif

/* For helpers of MN_HOT kernels: inlined, so each clone gets its own copy. */
#define MN_INLINE static inline __attribute__((always_inline))

/* *a = ELU(h), *e = ELU'(h). Branch-free, so loops over it vectorise. One
 * polynomial for both: h = k ln2 + r with |r| <= ln2/2, q = expm1(r) by its
 * Taylor series to r^8 (relative error < 6e-10), then with s = 2^k
 *   ELU'(h) = s (1 + q),   ELU(h) = s q + (s - 1)
 * which for k = 0 (|h| < 0.35) is q itself, so ELU keeps its relative
 * accuracy near 0, and for k < 0 sums terms of one sign. */
MN_INLINE void mn_elu_pair_f32(float h, float *a, float *e)
{
    const float log2e = 1.44269504089f, ln2_hi = 0.693145751953125f, ln2_lo = 1.428606765330187e-06f;
    const float magic = 12582912.0f;
    float hc = h > 0 ? 0.0f : (h >= -87.3f ? h : -87.3f);
    float k = (hc * log2e + magic) - magic;
    float r = (hc - k * ln2_hi) - k * ln2_lo;
    float p = 1.0f / 40320;
    p = p * r + 1.0f / 5040;
    p = p * r + 1.0f / 720;
    p = p * r + 1.0f / 120;
    p = p * r + 1.0f / 24;
    p = p * r + 1.0f / 6;
    p = p * r + 0.5f;
    float q = (p * r) * r + r;
    int32_t bits = ((int32_t)k + 127) << 23;
    float s;
    memcpy(&s, &bits, sizeof s);
    float an = s * q + (s - 1.0f), en = s * q + s;
    int under = h < -87.3f;
    *a = h > 0 || h != h ? h : (under ? -1.0f : an);
    *e = h > 0 ? 1.0f : (h != h ? h : (under ? 0.0f : en));
}

/* The same in double, with expm1(r) by its Taylor series to r^14 (relative
 * error < 2e-17 for |r| <= ln2/2). */
MN_INLINE void mn_elu_pair_f64(double h, double *a, double *e)
{
    const double log2e = 1.4426950408889634, ln2_hi = 6.93147180369123816490e-01,
                 ln2_lo = 1.90821492927058770002e-10, magic = 6755399441055744.0; /* 1.5 * 2^52 */
    double hc = h > 0 ? 0.0 : (h >= -708.0 ? h : -708.0);
    double k = (hc * log2e + magic) - magic;
    double r = (hc - k * ln2_hi) - k * ln2_lo;
    double p = 1.0 / 87178291200.0;
    p = p * r + 1.0 / 6227020800.0;
    p = p * r + 1.0 / 479001600.0;
    p = p * r + 1.0 / 39916800.0;
    p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    double q = (p * r) * r + r;
    int64_t bits = ((int64_t)k + 1023) << 52;
    double s;
    memcpy(&s, &bits, sizeof s);
    double an = s * q + (s - 1.0), en = s * q + s;
    int under = h < -708.0;
    *a = h > 0 || h != h ? h : (under ? -1.0 : an);
    *e = h > 0 ? 1.0 : (h != h ? h : (under ? 0.0 : en));
}

/* ---- small GEMMs of the Jacobian diagonal (float) --------------------------------------
 * Register-blocked with GCC vector extensions: 16 floats per vector, four
 * output rows by two vectors in flight. Rows of `in` and `out` have stride st;
 * np is padded up to a multiple of 16 (the padding of `in` must hold finite
 * values; the padding of `out` gets garbage). */
typedef float mn_v16 __attribute__((vector_size(64), aligned(4)));
/* The helpers below are always inlined, so their vector-passing ABI never
 * shows; GCC would warn about it in the baseline clone. */
#pragma GCC diagnostic ignored "-Wpsabi"

MN_INLINE mn_v16 mn_ld16(const float *p)
{
    mn_v16 v;
    memcpy(&v, p, sizeof v);
    return v;
}

MN_INLINE void mn_st16(float *p, mn_v16 v) { memcpy(p, &v, sizeof v); }

/* out[r][p] = sum_k M[r*ms + k*ks] in[k][p], r < R, k < K, p < np (padded).
 * (ms, ks) = (K, 1) multiplies by M, (1, R) by M transposed. */
MN_INLINE void mn_small_gemm(const float *M, int64_t ms, int64_t ks, const float *in, float *out, int64_t R,
                             int64_t K, int64_t st, int64_t np)
{
    const int64_t npad = (np + 15) & ~(int64_t)15;
    for (int64_t r = 0; r < R; r += 4) {
        const int64_t nr = R - r < 4 ? R - r : 4;
        const float *m0 = M + r * ms, *m1 = M + (r + (nr > 1)) * ms, *m2 = M + (r + (nr > 2) * 2) * ms,
                    *m3 = M + (r + (nr > 3) * 3) * ms;
        for (int64_t p = 0; p < npad; p += 32) {
            const int two = p + 16 < npad;
            mn_v16 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}, b0 = {0}, b1 = {0}, b2 = {0}, b3 = {0};
            for (int64_t k = 0; k < K; k++) {
                const float *src = in + k * st + p;
                const float w0 = m0[k * ks], w1 = m1[k * ks], w2 = m2[k * ks], w3 = m3[k * ks];
                mn_v16 v = mn_ld16(src);
                a0 += w0 * v, a1 += w1 * v, a2 += w2 * v, a3 += w3 * v;
                if (two) {
                    mn_v16 u = mn_ld16(src + 16);
                    b0 += w0 * u, b1 += w1 * u, b2 += w2 * u, b3 += w3 * u;
                }
            }
            mn_v16 av[4] = {a0, a1, a2, a3}, bv[4] = {b0, b1, b2, b3};
            for (int64_t j = 0; j < nr; j++) {
                mn_st16(out + (r + j) * st + p, av[j]);
                if (two) mn_st16(out + (r + j) * st + p + 16, bv[j]);
            }
        }
    }
}

/* acc[r][c] += sum_p u[r][p] t[p][c] for r < R, c < Kp (a multiple of 16),
 * p < np; u rows have stride st, t rows (pixel-major) and acc rows Kp. */
MN_INLINE void mn_outer_acc(float *acc, const float *u, int64_t st, const float *t, int64_t Kp, int64_t R, int64_t np)
{
    for (int64_t r = 0; r < R; r += 4) {
        const int64_t nr = R - r < 4 ? R - r : 4;
        const float *u0 = u + r * st, *u1 = u + (r + (nr > 1)) * st, *u2 = u + (r + (nr > 2) * 2) * st,
                    *u3 = u + (r + (nr > 3) * 3) * st;
        for (int64_t c = 0; c < Kp; c += 16) {
            mn_v16 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
            for (int64_t p = 0; p < np; p++) {
                mn_v16 v = mn_ld16(t + p * Kp + c);
                a0 += u0[p] * v, a1 += u1[p] * v, a2 += u2[p] * v, a3 += u3[p] * v;
            }
            mn_v16 av[4] = {a0, a1, a2, a3};
            for (int64_t j = 0; j < nr; j++) mn_st16(acc + (r + j) * Kp + c, mn_ld16(acc + (r + j) * Kp + c) + av[j]);
        }
    }
}

/* ---- 16 x 16 transpose in registers ----------------------------------------------------
 * r[i][c] -> r[c][i] by four butterfly stages: at stage b (8, 4, 2, 1) rows
 * i and i + b (bit b of i clear) swap their off-diagonal b x b blocks. Each
 * step is one two-source permute (vpermt2ps with AVX-512). */
typedef int32_t mn_i16 __attribute__((vector_size(64)));

MN_INLINE void mn_transpose16(mn_v16 r[16])
{
    static const mn_i16 lo8 = {0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23},
                        hi8 = {8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31},
                        lo4 = {0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27},
                        hi4 = {4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31},
                        lo2 = {0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29},
                        hi2 = {2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31},
                        lo1 = {0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30},
                        hi1 = {1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31};
    const mn_i16 *lo[4] = {&lo8, &lo4, &lo2, &lo1}, *hi[4] = {&hi8, &hi4, &hi2, &hi1};
    for (int s = 0, b = 8; s < 4; s++, b >>= 1)
        for (int i = 0; i < 16; i++) {
            if (i & b) continue;
            mn_v16 a = r[i], c = r[i + b];
            r[i] = __builtin_shuffle(a, c, *lo[s]);
            r[i + b] = __builtin_shuffle(a, c, *hi[s]);
        }
}

#endif
