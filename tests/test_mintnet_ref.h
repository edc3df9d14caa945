/* tests/test_mintnet_ref.h: shared by the MintNet test suites: a plain
 * double-precision reference of spec sections 1-3, written from the spec
 * alone (no code shared with the plugin), random block parameters, and a
 * small runner that compiles one op node and runs it on given tensors.
 *
 * The reference is deliberately naive: masks straight from the spec's
 * definition, convolutions with explicit bounds checks, the Jacobian
 * diagonal as the spec's nested sums. */
#ifndef TEST_MINTNET_REF_H
#define TEST_MINTNET_REF_H

#include "testutil.h"

#include "mintnet.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- the reference ------------------------------------------------------------------ */

typedef struct ref_block {
    int64_t C, L, H, W;
    char mask;                               /* 'A' or 'B' */
    const double *w1, *b1, *w2, *b2, *w3, *b3, *t; /* raw parameters */
    int sign_rule;                           /* 1 as in the spec (0 only to show it matters) */
} ref_block;

/* m(i, j, u, v) of spec section 1. */
static inline int ref_mask(char type, int64_t i, int64_t j, int u, int v)
{
    if (type == 'A') {
        if (j < i) return 1;
        if (j > i) return 0;
        return u < 1 || (u == 1 && v <= 1);
    }
    if (j > i) return 1;
    if (j < i) return 0;
    return u > 1 || (u == 1 && v >= 1);
}

static inline double ref_sgn(double v) { return v > 0 ? 1.0 : v < 0 ? -1.0 : 0.0; }

/* W~ = W (.) M for a [O, I, 3, 3] weight with C x C sub-blocks. */
static inline void ref_masked(char type, int64_t C, int64_t O, int64_t I, const double *W, double *out)
{
    for (int64_t o = 0; o < O; o++)
        for (int64_t i = 0; i < I; i++)
            for (int u = 0; u < 3; u++)
                for (int v = 0; v < 3; v++) {
                    int64_t k = ((o * I + i) * 3 + u) * 3 + v;
                    out[k] = ref_mask(type, o % C, i % C, u, v) ? W[k] : 0.0;
                }
}

/* out[o, y, x] = b[o] + sum W[o, i, u, v] in[i, y+u-1, x+v-1] (zero outside). */
static inline void ref_conv(const double *in, int64_t I, int64_t O, int64_t H, int64_t Wd, const double *W, const double *b,
                     double *out)
{
    for (int64_t o = 0; o < O; o++)
        for (int64_t y = 0; y < H; y++)
            for (int64_t x = 0; x < Wd; x++) {
                double s = b[o];
                for (int64_t i = 0; i < I; i++)
                    for (int u = 0; u < 3; u++)
                        for (int v = 0; v < 3; v++) {
                            int64_t yy = y + u - 1, xx = x + v - 1;
                            if (yy < 0 || yy >= H || xx < 0 || xx >= Wd) continue;
                            s += W[((o * I + i) * 3 + u) * 3 + v] * in[(i * H + yy) * Wd + xx];
                        }
                out[(o * H + y) * Wd + x] = s;
            }
}

static inline double ref_elu(double h) { return h > 0 ? h : exp(h) - 1; }
static inline double ref_delu(double h) { return h > 0 ? 1 : exp(h); }

/* The effective weights of the block (masks, then the sign rule on W2). */
static inline void ref_weights(const ref_block *p, double *W1, double *W2, double *W3)
{
    const int64_t C = p->C, L = p->L, LC = L * C;
    ref_masked(p->mask, C, LC, C, p->w1, W1);
    ref_masked(p->mask, C, LC, LC, p->w2, W2);
    ref_masked(p->mask, C, C, LC, p->w3, W3);
    if (!p->sign_rule) return;
    for (int64_t c = 0; c < C; c++)
        for (int64_t g2 = 0; g2 < L; g2++)
            for (int64_t g1 = 0; g1 < L; g1++) {
                double s1 = ref_sgn(W1[(((g1 * C + c) * C + c) * 3 + 1) * 3 + 1]);
                double s3 = ref_sgn(W3[((c * LC + g2 * C + c) * 3 + 1) * 3 + 1]);
                int64_t k = (((g2 * C + c) * LC + g1 * C + c) * 3 + 1) * 3 + 1;
                W2[k] = s1 * s3 * fabs(p->w2[k]);
            }
}

/* One sample: y = f(x) ([C, H, W]); returns log |det J| from the spec's diagonal. */
static inline double ref_forward(const ref_block *p, const double *x, double *y)
{
    const int64_t C = p->C, L = p->L, LC = L * C, H = p->H, Wd = p->W, HW = H * Wd;
    double *W1 = malloc(sizeof(double) * LC * C * 9), *W2 = malloc(sizeof(double) * LC * LC * 9);
    double *W3 = malloc(sizeof(double) * C * LC * 9);
    double *h1 = calloc((size_t)(LC * HW), sizeof(double)), *a1 = calloc((size_t)(LC * HW), sizeof(double));
    double *h2 = calloc((size_t)(LC * HW), sizeof(double)), *a2 = calloc((size_t)(LC * HW), sizeof(double));
    ref_weights(p, W1, W2, W3);
    ref_conv(x, C, LC, H, Wd, W1, p->b1, h1);
    for (int64_t i = 0; i < LC * HW; i++) a1[i] = ref_elu(h1[i]);
    ref_conv(a1, LC, LC, H, Wd, W2, p->b2, h2);
    for (int64_t i = 0; i < LC * HW; i++) a2[i] = ref_elu(h2[i]);
    ref_conv(a2, LC, C, H, Wd, W3, p->b3, y);
    double logdet = 0;
    for (int64_t c = 0; c < C; c++)
        for (int64_t q = 0; q < HW; q++) {
            double tau = fmax(fabs(p->t[c * HW + q]), 1e-12), D = tau;
            y[c * HW + q] += tau * x[c * HW + q];
            for (int64_t g2 = 0; g2 < L; g2++) {
                double d2 = 0;
                for (int64_t g1 = 0; g1 < L; g1++) {
                    double d1 = ref_delu(h1[(g1 * C + c) * HW + q]) * W1[(((g1 * C + c) * C + c) * 3 + 1) * 3 + 1];
                    d2 += W2[(((g2 * C + c) * LC + g1 * C + c) * 3 + 1) * 3 + 1] * d1;
                }
                double d3 = ref_delu(h2[(g2 * C + c) * HW + q]) * W3[((c * LC + g2 * C + c) * 3 + 1) * 3 + 1];
                D += d2 * d3;
            }
            logdet += log(D);
        }
    free(W1);
    free(W2);
    free(W3);
    free(h1);
    free(a1);
    free(h2);
    free(a2);
    return logdet;
}

/* log |det A| of a dense n x n matrix (row-major, destroyed) by LU with
 * partial pivoting; -INFINITY if singular. */
static inline double ref_logabsdet(double *A, int64_t n)
{
    double s = 0;
    for (int64_t k = 0; k < n; k++) {
        int64_t piv = k;
        for (int64_t i = k + 1; i < n; i++)
            if (fabs(A[i * n + k]) > fabs(A[piv * n + k])) piv = i;
        if (A[piv * n + k] == 0) return -INFINITY;
        if (piv != k)
            for (int64_t j = 0; j < n; j++) {
                double t = A[k * n + j];
                A[k * n + j] = A[piv * n + j];
                A[piv * n + j] = t;
            }
        s += log(fabs(A[k * n + k]));
        for (int64_t i = k + 1; i < n; i++) {
            double f = A[i * n + k] / A[k * n + k];
            for (int64_t j = k; j < n; j++) A[i * n + j] -= f * A[k * n + j];
        }
    }
    return s;
}

/* ---- random blocks ---------------------------------------------------------------------- */

/* A block's tensors: in[0] = x [N, C, H, W], in[1..7] = w1, b1, w2, b2, w3, b3, t. */
typedef struct tblock {
    int64_t N, C, L, H, W;
    char mask;
    mg_tensor *in[8];
    double *pd[8]; /* double copies of the parameters for the reference */
} tblock;

/* Random parameters: weights U(-ws, ws), biases U(-0.5, 0.5), t = +-U(0.5, 1.5);
 * x U(-1, 1) of dtype xdt. */
static inline void tb_make(tblock *b, int64_t N, int64_t C, int64_t L, int64_t H, int64_t W, char mask, double ws,
                    uint64_t seed, mg_dtype xdt)
{
    const int64_t LC = L * C;
    *b = (tblock){.N = N, .C = C, .L = L, .H = H, .W = W, .mask = mask};
    const int64_t sx[4] = {N, C, H, W}, s1[4] = {LC, C, 3, 3}, s2[4] = {LC, LC, 3, 3}, s3[4] = {C, LC, 3, 3};
    const int64_t sb1[1] = {LC}, sb3[1] = {C}, st[3] = {C, H, W};
    b->in[0] = tu_rand(xdt, 4, sx, -1, 1, seed);
    b->in[1] = tu_rand(MG_F32, 4, s1, -ws, ws, seed + 1);
    b->in[2] = tu_rand(MG_F32, 1, sb1, -0.5, 0.5, seed + 2);
    b->in[3] = tu_rand(MG_F32, 4, s2, -ws, ws, seed + 3);
    b->in[4] = tu_rand(MG_F32, 1, sb1, -0.5, 0.5, seed + 4);
    b->in[5] = tu_rand(MG_F32, 4, s3, -ws, ws, seed + 5);
    b->in[6] = tu_rand(MG_F32, 1, sb3, -0.5, 0.5, seed + 6);
    b->in[7] = tu_rand(MG_F32, 3, st, 0.5, 1.5, seed + 7);
    float *t = mg_f32(b->in[7]);
    for (int64_t i = 0; i < C * H * W; i += 3) t[i] = -t[i];
    /* Centre entries away from 0: sgn and |.| have kinks there that finite
     * differences would straddle. */
    float *w1 = mg_f32(b->in[1]), *w2 = mg_f32(b->in[3]), *w3 = mg_f32(b->in[5]);
    for (int64_t g = 0; g < L; g++)
        for (int64_t c = 0; c < C; c++) {
            float *e[2] = {&w1[mn_centre(g * C + c, c, C)], &w3[mn_centre(c, g * C + c, LC)]};
            for (int k = 0; k < 2; k++)
                if (fabsf(*e[k]) < 0.1f * (float)ws) *e[k] = *e[k] < 0 ? -0.1f * (float)ws : 0.1f * (float)ws;
            for (int64_t g1 = 0; g1 < L; g1++) {
                float *v = &w2[mn_centre(g * C + c, g1 * C + c, LC)];
                if (fabsf(*v) < 0.1f * (float)ws) *v = *v < 0 ? -0.1f * (float)ws : 0.1f * (float)ws;
            }
        }
}

/* Refreshes the double copies of the parameters from the f32 tensors. */
static inline void tb_sync(tblock *b)
{
    for (int i = 1; i < 8; i++) {
        int64_t n = mg_tensor_numel(b->in[i]);
        free(b->pd[i]);
        b->pd[i] = malloc(sizeof(double) * (size_t)n);
        for (int64_t k = 0; k < n; k++) b->pd[i][k] = mg_tensor_get(b->in[i], k);
    }
}

static inline ref_block tb_ref(tblock *b)
{
    tb_sync(b);
    return (ref_block){.C = b->C, .L = b->L, .H = b->H, .W = b->W, .mask = b->mask, .w1 = b->pd[1], .b1 = b->pd[2],
                       .w2 = b->pd[3], .b2 = b->pd[4], .w3 = b->pd[5], .b3 = b->pd[6], .t = b->pd[7],
                       .sign_rule = 1};
}

static inline void tb_free(tblock *b)
{
    for (int i = 0; i < 8; i++) {
        mg_tensor_free(b->in[i]);
        free(b->pd[i]);
    }
}

/* x converted to dtype dt (a new tensor). */
static inline mg_tensor *tb_as(const mg_tensor *x, mg_dtype dt)
{
    mg_tensor *y = mg_tensor_new(dt, x->rank, x->shape);
    cr_assert_not_null(y);
    cr_assert_eq(mg_tensor_copy(y, x), MG_OK);
    return y;
}

static inline mg_attrs *tb_attrs(char mask)
{
    mg_attrs *a = mg_attrs_new();
    char m[2] = {mask, 0};
    cr_assert_eq(mg_attrs_set_str(a, "mask", m), MG_OK);
    return a;
}

/* ---- one-node runner ---------------------------------------------------------------------- */

typedef struct trun {
    mg_graph *g;
    mg_exec *e;
    mg_value in[8], out[4];
    int n_in, n_out;
} trun;

/* A context with the plugin registered statically. */
static inline mg_ctx *mn_ctx(void)
{
    mg_ctx *ctx = tu_ctx();
    mg_status s = mg_plugin_register_static(ctx, "mintnet", mg_mintnet_plugin_init);
    cr_assert_eq(s, MG_OK, "registering the mintnet plugin: %s", mg_ctx_error(ctx));
    return ctx;
}

/* Builds and compiles (forward only) a graph with one node of `op` whose
 * inputs are graph inputs shaped like in[0..n-1], then copies the data in. */
static inline void tr_open(trun *r, mg_ctx *ctx, const char *op, mg_tensor *const *in, int n, const mg_attrs *a)
{
    memset(r, 0, sizeof *r);
    cr_assert_eq(mg_graph_new(ctx, &r->g), MG_OK);
    r->n_in = n;
    for (int i = 0; i < n; i++) {
        char name[16];
        snprintf(name, sizeof name, "in%d", i);
        r->in[i] = mg_graph_input(r->g, name, in[i]->dtype, in[i]->rank, in[i]->shape);
    }
    mg_status s = mg_graph_node(r->g, op, "node", r->in, n, a, r->out, 4, &r->n_out);
    cr_assert_eq(s, MG_OK, "adding %s: %s", op, mg_ctx_error(ctx));
    mg_compile_opts o = {.struct_size = sizeof o, .outputs = r->out, .n_outputs = r->n_out};
    s = mg_graph_compile(r->g, &o, &r->e);
    cr_assert_eq(s, MG_OK, "compiling %s: %s", op, mg_ctx_error(ctx));
    for (int i = 0; i < n; i++) cr_assert_eq(mg_tensor_copy(mg_exec_tensor(r->e, r->in[i]), in[i]), MG_OK);
}

static inline void tr_set(trun *r, int i, const mg_tensor *t)
{
    cr_assert_eq(mg_tensor_copy(mg_exec_tensor(r->e, r->in[i]), t), MG_OK);
}

static inline void tr_forward(trun *r)
{
    mg_status s = mg_exec_forward(r->e);
    cr_assert_eq(s, MG_OK, "forward: %s", mg_ctx_error(mg_graph_ctx(r->g)));
}

static inline mg_tensor *tr_out(trun *r, int i) { return mg_exec_tensor(r->e, r->out[i]); }

static inline void tr_close(trun *r)
{
    mg_exec_free(r->e);
    mg_graph_free(r->g);
}

/* Runs `op` once on in[0..7] and returns clones of its two outputs. */
static inline void tb_run(mg_ctx *ctx, const char *op, mg_tensor *const *in, const mg_attrs *a, mg_tensor **o0,
                   mg_tensor **o1)
{
    trun r;
    tr_open(&r, ctx, op, in, 8, a);
    tr_forward(&r);
    *o0 = mg_tensor_clone(tr_out(&r, 0));
    if (o1) *o1 = mg_tensor_clone(tr_out(&r, 1));
    tr_close(&r);
}

#endif
