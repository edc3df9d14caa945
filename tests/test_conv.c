/* tests/test_conv.c: the conv2d op and the convolution kernel API, against
 * naive double-precision references: forward at many geometries (stride,
 * padding, dilation, odd sizes, 1x1 and 5x5 kernels, with and without bias),
 * kernel-level backward_data / backward_weights, gradient checks through the
 * op, and the error cases (shapes, attributes, passes not requested). */
#include "testutil.h"

#include <string.h>

/* ---- naive references (double) ------------------------------------------------ */
static int64_t ref_out(int64_t in, int64_t k, int64_t s, int64_t p0, int64_t p1, int64_t d)
{
    return (in + p0 + p1 - d * (k - 1) - 1) / s + 1;
}

/* Calls fn(n, o, i, j, c, p, q, x_index) for every product term of the
 * convolution with input position inside x; the sums below are built on it. */
typedef struct conv_geom {
    mg_conv2d_shape s;
    int64_t oh, ow;
} conv_geom;

static conv_geom geom(const mg_conv2d_shape *s)
{
    conv_geom g = {.s = *s};
    const int64_t e0 = s->pad_asym ? s->pad_end[0] : s->pad[0], e1 = s->pad_asym ? s->pad_end[1] : s->pad[1];
    g.oh = ref_out(s->h, s->kh, s->stride[0], s->pad[0], e0, s->dilation[0]);
    g.ow = ref_out(s->w, s->kw, s->stride[1], s->pad[1], e1, s->dilation[1]);
    return g;
}

/* Index of the input element under output (i, j), kernel tap (p, q), or -1. */
static int64_t x_at(const conv_geom *g, int64_t n, int64_t c, int64_t i, int64_t j, int64_t p, int64_t q)
{
    const mg_conv2d_shape *s = &g->s;
    int64_t h = i * s->stride[0] - s->pad[0] + p * s->dilation[0];
    int64_t w = j * s->stride[1] - s->pad[1] + q * s->dilation[1];
    if (h < 0 || h >= s->h || w < 0 || w >= s->w) return -1;
    return ((n * s->c + c) * s->h + h) * s->w + w;
}

#define FOR_TERMS(g)                                                            \
    for (int64_t n = 0; n < (g)->s.n; n++)                                      \
        for (int64_t o = 0; o < (g)->s.oc; o++)                                 \
            for (int64_t i = 0; i < (g)->oh; i++)                               \
                for (int64_t j = 0; j < (g)->ow; j++)                           \
                    for (int64_t c = 0; c < (g)->s.c; c++)                      \
                        for (int64_t p = 0; p < (g)->s.kh; p++)                 \
                            for (int64_t q = 0; q < (g)->s.kw; q++)

static int64_t y_idx(const conv_geom *g, int64_t n, int64_t o, int64_t i, int64_t j)
{
    return ((n * g->s.oc + o) * g->oh + i) * g->ow + j;
}

static int64_t w_idx(const conv_geom *g, int64_t o, int64_t c, int64_t p, int64_t q)
{
    return ((o * g->s.c + c) * g->s.kh + p) * g->s.kw + q;
}

/* y (n, oc, oh, ow) = conv(x, w) + b, b may be NULL. */
static void ref_forward(const conv_geom *g, const float *x, const float *w, const float *b, double *y)
{
    int64_t ny = g->s.n * g->s.oc * g->oh * g->ow;
    for (int64_t k = 0; k < ny; k++) y[k] = b ? b[(k / (g->oh * g->ow)) % g->s.oc] : 0;
    FOR_TERMS(g) {
        int64_t xi = x_at(g, n, c, i, j, p, q);
        if (xi >= 0) y[y_idx(g, n, o, i, j)] += (double)x[xi] * w[w_idx(g, o, c, p, q)];
    }
}

/* dx (n, c, h, w) from dy (n, oc, oh, ow). */
static void ref_backward_data(const conv_geom *g, const float *dy, const float *w, double *dx)
{
    memset(dx, 0, sizeof(double) * (size_t)(g->s.n * g->s.c * g->s.h * g->s.w));
    FOR_TERMS(g) {
        int64_t xi = x_at(g, n, c, i, j, p, q);
        if (xi >= 0) dx[xi] += (double)dy[y_idx(g, n, o, i, j)] * w[w_idx(g, o, c, p, q)];
    }
}

/* dw (oc, c, kh, kw) and db (oc) from x and dy. */
static void ref_backward_weights(const conv_geom *g, const float *x, const float *dy, double *dw, double *db)
{
    memset(dw, 0, sizeof(double) * (size_t)(g->s.oc * g->s.c * g->s.kh * g->s.kw));
    memset(db, 0, sizeof(double) * (size_t)g->s.oc);
    FOR_TERMS(g) {
        int64_t xi = x_at(g, n, c, i, j, p, q);
        if (xi >= 0) dw[w_idx(g, o, c, p, q)] += (double)dy[y_idx(g, n, o, i, j)] * x[xi];
    }
    for (int64_t n = 0; n < g->s.n; n++)
        for (int64_t o = 0; o < g->s.oc; o++)
            for (int64_t k = 0; k < g->oh * g->ow; k++) db[o] += dy[y_idx(g, n, o, 0, 0) + k];
}

/* Max |got - want| relative to (1 + |want|). */
static double max_err(const float *got, const double *want, int64_t n)
{
    double m = 0;
    for (int64_t i = 0; i < n; i++) {
        double e = fabs(got[i] - want[i]) / (1 + fabs(want[i]));
        if (e > m || isnan(e)) m = isnan(e) ? INFINITY : e;
    }
    return m;
}

/* ---- the geometries tested ------------------------------------------------------- */
typedef struct conv_case {
    int64_t n, c, h, w, oc, kh, kw;
    int64_t stride[2], pad[2], dil[2];
    int bias;
} conv_case;

static const conv_case cases[] = {
    {2, 3, 8, 8, 4, 3, 3, {1, 1}, {1, 1}, {1, 1}, 1},     /* 3x3 same */
    {2, 3, 9, 7, 5, 3, 3, {2, 2}, {0, 0}, {1, 1}, 1},     /* stride 2, odd sizes */
    {1, 4, 10, 11, 6, 3, 3, {1, 1}, {2, 2}, {2, 2}, 0},   /* dilation 2, pad 2, no bias */
    {3, 5, 7, 9, 2, 1, 1, {1, 1}, {0, 0}, {1, 1}, 1},     /* 1x1 */
    {2, 2, 11, 11, 3, 5, 5, {2, 2}, {2, 2}, {1, 1}, 1},   /* 5x5 stride 2 */
    {1, 3, 5, 5, 4, 5, 5, {1, 1}, {0, 0}, {1, 1}, 0},     /* kernel covers the input */
    {2, 16, 6, 6, 16, 3, 3, {1, 1}, {1, 1}, {1, 1}, 1},   /* blocked layout */
    {2, 32, 7, 5, 48, 3, 3, {1, 1}, {1, 1}, {1, 1}, 1},   /* blocked, odd spatial */
    {2, 3, 9, 8, 4, 3, 2, {1, 2}, {0, 1}, {2, 1}, 1},     /* per-axis attributes */
    {1, 1, 1, 1, 1, 1, 1, {1, 1}, {0, 0}, {1, 1}, 1},     /* smallest */
};
#define N_CASES ((int)(sizeof cases / sizeof cases[0]))

static mg_conv2d_shape case_shape(const conv_case *k)
{
    return (mg_conv2d_shape){.n = k->n, .c = k->c, .h = k->h, .w = k->w, .oc = k->oc, .kh = k->kh, .kw = k->kw,
                             .stride = {k->stride[0], k->stride[1]}, .pad = {k->pad[0], k->pad[1]},
                             .dilation = {k->dil[0], k->dil[1]}, .has_bias = k->bias};
}

/* Random tensors for one case: x, w, b, dy (b NULL without bias). */
typedef struct conv_data {
    conv_geom g;
    mg_tensor *x, *w, *b, *dy;
} conv_data;

static conv_data make_data(const conv_case *k, uint64_t seed)
{
    mg_conv2d_shape s = case_shape(k);
    conv_data d = {.g = geom(&s)};
    d.x = tu_rand(MG_F32, 4, (int64_t[]){k->n, k->c, k->h, k->w}, -1, 1, seed);
    d.w = tu_rand(MG_F32, 4, (int64_t[]){k->oc, k->c, k->kh, k->kw}, -1, 1, seed + 1);
    d.b = k->bias ? tu_rand(MG_F32, 1, (int64_t[]){k->oc}, -1, 1, seed + 2) : NULL;
    d.dy = tu_rand(MG_F32, 4, (int64_t[]){k->n, k->oc, d.g.oh, d.g.ow}, -1, 1, seed + 3);
    return d;
}

static void free_data(conv_data *d)
{
    mg_tensor_free(d->x);
    mg_tensor_free(d->w);
    mg_tensor_free(d->b);
    mg_tensor_free(d->dy);
}

/* The attributes of a case. */
static mg_attrs *case_attrs(const conv_case *k)
{
    mg_attrs *a = mg_attrs_new();
    cr_assert_not_null(a);
    cr_assert_eq(mg_attrs_set_ints(a, "stride", k->stride, 2), MG_OK);
    cr_assert_eq(mg_attrs_set_ints(a, "padding", k->pad, 2), MG_OK);
    cr_assert_eq(mg_attrs_set_ints(a, "dilation", k->dil, 2), MG_OK);
    return a;
}

TestSuite(conv);

/* ---- kernel level ----------------------------------------------------------------- */
Test(conv, out_hw)
{
    mg_conv2d_shape s = {.n = 1, .c = 1, .h = 28, .w = 27, .oc = 1, .kh = 3, .kw = 3,
                         .stride = {2, 1}, .pad = {1, 0}, .dilation = {1, 2}};
    int64_t oh = 0, ow = 0;
    cr_assert_eq(mg_conv2d_out_hw(&s, &oh, &ow), MG_OK);
    cr_assert_eq(oh, 14);
    cr_assert_eq(ow, 23);
    s.kw = 15; /* dilated extent 29 > 27 */
    cr_assert_eq(mg_conv2d_out_hw(&s, &oh, &ow), MG_ERR_SHAPE);
    s.kw = 3;
    s.stride[0] = 0;
    cr_assert_eq(mg_conv2d_out_hw(&s, &oh, &ow), MG_ERR_ARG);
}

Test(conv, kernel_matches_reference)
{
    mg_ctx *ctx = tu_ctx();
    for (int ci = 0; ci < N_CASES; ci++) {
        const conv_case *k = &cases[ci];
        conv_data d = make_data(k, 100 + 10 * (uint64_t)ci);
        mg_conv2d_shape s = case_shape(k);
        mg_conv2d_kernel *ker = NULL;
        cr_assert_eq(mg_conv2d_kernel_new(ctx, &s, MG_CONV_FWD | MG_CONV_BWD_DATA | MG_CONV_BWD_WEIGHTS, &ker),
                     MG_OK, "case %d: %s", ci, mg_ctx_error(ctx));
        int64_t ny = mg_tensor_numel(d.dy), nx = mg_tensor_numel(d.x), nw = mg_tensor_numel(d.w);
        double *ref = calloc((size_t)(ny + nx + nw + k->oc), sizeof(double));
        float *out = calloc((size_t)(ny + nx + nw + k->oc), sizeof(float));
        const float *b = d.b ? mg_f32(d.b) : NULL;
        double tol = 1e-5 * (double)(k->c * k->kh * k->kw + 1);

        cr_assert_eq(mg_conv2d_kernel_forward(ker, mg_f32(d.x), mg_f32(d.w), b, out), MG_OK, "%s", mg_ctx_error(ctx));
        ref_forward(&d.g, mg_f32(d.x), mg_f32(d.w), b, ref);
        cr_expect_leq(max_err(out, ref, ny), tol, "case %d forward: err %g", ci, max_err(out, ref, ny));

        cr_assert_eq(mg_conv2d_kernel_backward_data(ker, mg_f32(d.dy), mg_f32(d.w), out), MG_OK);
        ref_backward_data(&d.g, mg_f32(d.dy), mg_f32(d.w), ref);
        tol = 1e-5 * (double)(k->oc * k->kh * k->kw + 1);
        cr_expect_leq(max_err(out, ref, nx), tol, "case %d backward_data: err %g", ci, max_err(out, ref, nx));

        cr_assert_eq(mg_conv2d_kernel_backward_weights(ker, mg_f32(d.x), mg_f32(d.dy), out, out + nw), MG_OK);
        ref_backward_weights(&d.g, mg_f32(d.x), mg_f32(d.dy), ref, ref + nw);
        tol = 1e-5 * (double)(k->n * d.g.oh * d.g.ow + 1);
        cr_expect_leq(max_err(out, ref, nw), tol, "case %d backward_weights: err %g", ci, max_err(out, ref, nw));
        cr_expect_leq(max_err(out + nw, ref + nw, k->oc), tol, "case %d bias grad", ci);

        free(ref);
        free(out);
        mg_conv2d_kernel_free(ker);
        free_data(&d);
    }
    mg_ctx_free(ctx);
}

/* ---- the blocked activation layout (MG_CONV_LAYOUT_NCHW16C) ------------------------ */

/* [n, c, hw] plain -> [n, ceil(c/16), hw, 16] (padding lanes: pad). */
static float *to_blocked(const float *x, int64_t n, int64_t c, int64_t hw, float pad)
{
    const int64_t cb = (c + 15) / 16;
    float *b = malloc((size_t)(mg_conv2d_act_floats(MG_CONV_LAYOUT_NCHW16C, n, c, 1, hw)) * sizeof(float));
    cr_assert_not_null(b);
    for (int64_t i = 0; i < n * cb * hw * 16; i++) b[i] = pad;
    for (int64_t s = 0; s < n; s++)
        for (int64_t k = 0; k < c; k++)
            for (int64_t p = 0; p < hw; p++) b[((s * cb + k / 16) * hw + p) * 16 + k % 16] = x[(s * c + k) * hw + p];
    return b;
}

/* The plain value of blocked channel k of sample s at pixel p. */
static float blocked_at(const float *b, int64_t c, int64_t hw, int64_t s, int64_t k, int64_t p)
{
    return b[((s * ((c + 15) / 16) + k / 16) * hw + p) * 16 + k % 16];
}

static double blocked_err(const float *b, const double *want, int64_t n, int64_t c, int64_t hw)
{
    double m = 0;
    for (int64_t s = 0; s < n; s++)
        for (int64_t k = 0; k < c; k++)
            for (int64_t p = 0; p < hw; p++) {
                double w = want[(s * c + k) * hw + p], e = fabs(blocked_at(b, c, hw, s, k, p) - w) / (1 + fabs(w));
                if (!(e <= m)) m = e;
            }
    return m;
}

/* Every pass on nChw16c activations, channel counts that are and are not
 * multiples of 16, against the double references. Padding lanes of the
 * inputs hold zeros; the outputs' are ignored. */
Test(conv, kernel_blocked_layout)
{
    static const conv_case bc[] = {
        {2, 45, 6, 5, 45, 3, 3, {1, 1}, {1, 1}, {1, 1}, 1},
        {2, 16, 4, 4, 33, 3, 3, {1, 1}, {1, 1}, {1, 1}, 1},
        {1, 5, 7, 7, 20, 3, 3, {2, 2}, {1, 1}, {1, 1}, 0},
    };
    mg_ctx *ctx = tu_ctx();
    for (int ci = 0; ci < 3; ci++) {
        const conv_case *k = &bc[ci];
        conv_data d = make_data(k, 700 + 10 * (uint64_t)ci);
        mg_conv2d_shape s = case_shape(k);
        s.layout = MG_CONV_LAYOUT_NCHW16C;
        mg_conv2d_kernel *ker = NULL;
        cr_assert_eq(mg_conv2d_kernel_new(ctx, &s, MG_CONV_FWD | MG_CONV_BWD_DATA | MG_CONV_BWD_WEIGHTS, &ker),
                     MG_OK, "case %d: %s", ci, mg_ctx_error(ctx));
        const int64_t hw = k->h * k->w, ohw = d.g.oh * d.g.ow, nw = mg_tensor_numel(d.w);
        float *xb = to_blocked(mg_f32(d.x), k->n, k->c, hw, 0), *dyb = to_blocked(mg_f32(d.dy), k->n, k->oc, ohw, 0);
        float *yb = malloc((size_t)mg_conv2d_act_floats(s.layout, k->n, k->oc, d.g.oh, d.g.ow) * sizeof(float));
        float *dxb = malloc((size_t)mg_conv2d_act_floats(s.layout, k->n, k->c, k->h, k->w) * sizeof(float));
        float *dw = malloc((size_t)(nw + k->oc) * sizeof(float));
        double *ref = calloc((size_t)(k->n * (k->oc * ohw + k->c * hw) + nw + k->oc), sizeof(double));
        const float *b = d.b ? mg_f32(d.b) : NULL;

        cr_assert_eq(mg_conv2d_kernel_forward(ker, xb, mg_f32(d.w), b, yb), MG_OK, "%s", mg_ctx_error(ctx));
        ref_forward(&d.g, mg_f32(d.x), mg_f32(d.w), b, ref);
        double e = blocked_err(yb, ref, k->n, k->oc, ohw);
        cr_expect_leq(e, 1e-5 * (double)(k->c * 9 + 1), "case %d forward: err %g", ci, e);

        cr_assert_eq(mg_conv2d_kernel_backward(ker, xb, dyb, mg_f32(d.w), dxb, dw, d.b ? dw + nw : NULL), MG_OK);
        ref_backward_data(&d.g, mg_f32(d.dy), mg_f32(d.w), ref);
        e = blocked_err(dxb, ref, k->n, k->c, hw);
        cr_expect_leq(e, 1e-5 * (double)(k->oc * 9 + 1), "case %d backward_data: err %g", ci, e);
        ref_backward_weights(&d.g, mg_f32(d.x), mg_f32(d.dy), ref, ref + nw);
        double tol = 1e-5 * (double)(k->n * ohw + 1);
        cr_expect_leq(max_err(dw, ref, nw), tol, "case %d backward_weights: err %g", ci, max_err(dw, ref, nw));
        if (d.b) {
            cr_expect_leq(max_err(dw + nw, ref + nw, k->oc), tol, "case %d bias grad", ci);
            /* the bias gradient alone (no weights pass) reads the blocked dy too */
            float *db = malloc((size_t)k->oc * sizeof(float));
            cr_assert_eq(mg_conv2d_kernel_backward_weights(ker, NULL, dyb, NULL, db), MG_OK);
            cr_expect_leq(max_err(db, ref + nw, k->oc), tol, "case %d bias grad alone", ci);
            free(db);
        }
        free(xb), free(dyb), free(yb), free(dxb), free(dw), free(ref);
        mg_conv2d_kernel_free(ker);
        free_data(&d);
    }
    mg_conv2d_shape bad = case_shape(&bc[0]);
    bad.layout = 7;
    mg_conv2d_kernel *ker = NULL;
    cr_expect_eq(mg_conv2d_kernel_new(ctx, &bad, MG_CONV_FWD, &ker), MG_ERR_ARG);
    cr_expect(strstr(mg_ctx_error(ctx), "layout"), "%s", mg_ctx_error(ctx));
    mg_ctx_free(ctx);
}

/* Padding that differs before and after (pad_asym), plain and blocked,
 * against the references: e.g. the top two rows of a 3x3 kernel as a 2x3
 * kernel with the output size of the 3x3 one. */
Test(conv, kernel_asymmetric_padding)
{
    static const conv_case ac[] = {
        {2, 3, 7, 6, 5, 2, 3, {1, 1}, {1, 1}, {1, 1}, 1},  /* pad_end {0, 1}: rows u = 0, 1 of a 3x3 */
        {1, 4, 6, 8, 3, 2, 3, {1, 1}, {0, 1}, {1, 1}, 0},  /* pad_end {1, 1}: rows u = 1, 2 */
        {2, 2, 9, 7, 4, 3, 3, {2, 1}, {0, 2}, {1, 1}, 1},  /* pad_end {2, 0} */
    };
    static const int64_t ends[3][2] = {{0, 1}, {1, 1}, {2, 0}};
    mg_ctx *ctx = tu_ctx();
    for (int ci = 0; ci < 3; ci++)
        for (int lay = 0; lay < 2; lay++) {
            const conv_case *k = &ac[ci];
            mg_conv2d_shape s = case_shape(k);
            s.pad_asym = 1;
            s.pad_end[0] = ends[ci][0], s.pad_end[1] = ends[ci][1];
            s.layout = lay ? MG_CONV_LAYOUT_NCHW16C : MG_CONV_LAYOUT_NCHW;
            conv_data d = make_data(k, 800 + 10 * (uint64_t)ci);
            d.g = geom(&s);
            mg_tensor_free(d.dy);
            d.dy = tu_rand(MG_F32, 4, (int64_t[]){k->n, k->oc, d.g.oh, d.g.ow}, -1, 1, 801 + 10 * (uint64_t)ci);
            int64_t oh = 0, ow = 0;
            cr_assert_eq(mg_conv2d_out_hw(&s, &oh, &ow), MG_OK);
            cr_expect(oh == d.g.oh && ow == d.g.ow, "case %d: %lldx%lld", ci, (long long)oh, (long long)ow);
            mg_conv2d_kernel *ker = NULL;
            cr_assert_eq(mg_conv2d_kernel_new(ctx, &s, MG_CONV_FWD | MG_CONV_BWD_DATA | MG_CONV_BWD_WEIGHTS, &ker),
                         MG_OK, "case %d: %s", ci, mg_ctx_error(ctx));
            const int64_t hw = k->h * k->w, ohw = oh * ow, nw = mg_tensor_numel(d.w);
            const int64_t nx = mg_conv2d_act_floats(s.layout, k->n, k->c, k->h, k->w);
            const int64_t ny = mg_conv2d_act_floats(s.layout, k->n, k->oc, oh, ow);
            float *xb = lay ? to_blocked(mg_f32(d.x), k->n, k->c, hw, 0) : mg_f32(d.x);
            float *dyb = lay ? to_blocked(mg_f32(d.dy), k->n, k->oc, ohw, 0) : mg_f32(d.dy);
            float *y = malloc((size_t)ny * sizeof(float)), *dx = malloc((size_t)nx * sizeof(float));
            float *dw = malloc((size_t)(nw + k->oc) * sizeof(float));
            double *ref = calloc((size_t)(k->n * (k->oc * ohw + k->c * hw) + nw + k->oc), sizeof(double));
            const float *b = d.b ? mg_f32(d.b) : NULL;
            cr_assert_eq(mg_conv2d_kernel_forward(ker, xb, mg_f32(d.w), b, y), MG_OK, "%s", mg_ctx_error(ctx));
            ref_forward(&d.g, mg_f32(d.x), mg_f32(d.w), b, ref);
            double e = lay ? blocked_err(y, ref, k->n, k->oc, ohw) : max_err(y, ref, k->n * k->oc * ohw);
            cr_expect_leq(e, 1e-5 * (double)(k->c * 9 + 1), "case %d layout %d forward: err %g", ci, lay, e);
            cr_assert_eq(mg_conv2d_kernel_backward(ker, xb, dyb, mg_f32(d.w), dx, dw, d.b ? dw + nw : NULL), MG_OK);
            ref_backward_data(&d.g, mg_f32(d.dy), mg_f32(d.w), ref);
            e = lay ? blocked_err(dx, ref, k->n, k->c, hw) : max_err(dx, ref, k->n * k->c * hw);
            cr_expect_leq(e, 1e-5 * (double)(k->oc * 9 + 1), "case %d layout %d backward_data: err %g", ci, lay, e);
            ref_backward_weights(&d.g, mg_f32(d.x), mg_f32(d.dy), ref, ref + nw);
            e = max_err(dw, ref, nw);
            cr_expect_leq(e, 1e-5 * (double)(k->n * ohw + 1), "case %d layout %d backward_weights: err %g", ci, lay, e);
            if (lay) free(xb), free(dyb);
            free(y), free(dx), free(dw), free(ref);
            mg_conv2d_kernel_free(ker);
            free_data(&d);
        }
    mg_ctx_free(ctx);
}

/* Compares the combined backward of case ci with the references, for x. */
static void check_combined(mg_ctx *ctx, mg_conv2d_kernel *ker, const conv_data *d, const mg_tensor *x, int ci, const char *what)
{
    int64_t nx = mg_tensor_numel(x), nw = mg_tensor_numel(d->w), oc = d->g.s.oc;
    float *dx = calloc((size_t)nx, sizeof(float)), *dw = calloc((size_t)(nw + oc), sizeof(float));
    double *rdx = calloc((size_t)nx, sizeof(double)), *rdw = calloc((size_t)(nw + oc), sizeof(double));
    cr_assert_eq(mg_conv2d_kernel_backward(ker, mg_f32(x), mg_f32(d->dy), mg_f32(d->w), dx, dw, dw + nw), MG_OK,
                 "%s", mg_ctx_error(ctx));
    ref_backward_data(&d->g, mg_f32(d->dy), mg_f32(d->w), rdx);
    ref_backward_weights(&d->g, mg_f32(x), mg_f32(d->dy), rdw, rdw + nw);
    const conv_case *k = &cases[ci];
    double tol = 1e-5 * (double)(k->oc * k->kh * k->kw + k->n * d->g.oh * d->g.ow + 1);
    cr_expect_leq(max_err(dx, rdx, nx), tol, "case %d %s: dx err %g", ci, what, max_err(dx, rdx, nx));
    cr_expect_leq(max_err(dw, rdw, nw + oc), tol, "case %d %s: dw/db err %g", ci, what, max_err(dw, rdw, nw + oc));
    free(dx);
    free(dw);
    free(rdx);
    free(rdw);
}

/* The one-call backward: after a forward on the same x (converted x reused),
 * on another x buffer (converted afresh), and after x was overwritten and
 * run forward again. */
Test(conv, kernel_combined_backward)
{
    mg_ctx *ctx = tu_ctx();
    for (int ci = 0; ci < N_CASES; ci++) {
        const conv_case *k = &cases[ci];
        conv_data d = make_data(k, 500 + 10 * (uint64_t)ci);
        mg_conv2d_shape s = case_shape(k);
        s.has_bias = 1;
        mg_conv2d_kernel *ker = NULL;
        cr_assert_eq(mg_conv2d_kernel_new(ctx, &s, MG_CONV_FWD | MG_CONV_BWD_DATA | MG_CONV_BWD_WEIGHTS, &ker), MG_OK);
        float *y = calloc((size_t)mg_tensor_numel(d.dy), sizeof(float));
        float *b = calloc((size_t)k->oc, sizeof(float));
        mg_tensor *x2 = tu_rand(MG_F32, 4, d.x->shape, -1, 1, 77 + (uint64_t)ci);
        cr_assert_eq(mg_conv2d_kernel_forward(ker, mg_f32(d.x), mg_f32(d.w), b, y), MG_OK);
        check_combined(ctx, ker, &d, d.x, ci, "after forward");
        check_combined(ctx, ker, &d, x2, ci, "other x");
        check_combined(ctx, ker, &d, d.x, ci, "back to the first x");
        mg_tensor_rand_uniform(x2, &(mg_rng){{1, 2, 3, 4}, 0, 0}, -1, 1);
        cr_assert_eq(mg_conv2d_kernel_forward(ker, mg_f32(x2), mg_f32(d.w), b, y), MG_OK);
        check_combined(ctx, ker, &d, x2, ci, "x refreshed by forward");
        free(y);
        free(b);
        mg_tensor_free(x2);
        mg_conv2d_kernel_free(ker);
        free_data(&d);
    }
    mg_ctx_free(ctx);
}

/* Kernels run many times on changing buffers give fresh results each time. */
Test(conv, kernel_reuse_rebinds_buffers)
{
    mg_ctx *ctx = tu_ctx();
    const conv_case *k = &cases[6];
    mg_conv2d_shape s = case_shape(k);
    mg_conv2d_kernel *ker = NULL;
    cr_assert_eq(mg_conv2d_kernel_new(ctx, &s, MG_CONV_FWD, &ker), MG_OK);
    for (int rep = 0; rep < 3; rep++) {
        conv_data d = make_data(k, 7 + (uint64_t)rep * 5);
        int64_t ny = mg_tensor_numel(d.dy);
        float *out = calloc((size_t)ny, sizeof(float));
        double *ref = calloc((size_t)ny, sizeof(double));
        cr_assert_eq(mg_conv2d_kernel_forward(ker, mg_f32(d.x), mg_f32(d.w), mg_f32(d.b), out), MG_OK);
        ref_forward(&d.g, mg_f32(d.x), mg_f32(d.w), mg_f32(d.b), ref);
        cr_expect_leq(max_err(out, ref, ny), 1e-3, "rep %d", rep);
        free(out);
        free(ref);
        free_data(&d);
    }
    mg_conv2d_kernel_free(ker);
    mg_ctx_free(ctx);
}

/* A bias gradient needs no backward-weights pass; dw may be NULL. */
Test(conv, kernel_bias_grad_only)
{
    mg_ctx *ctx = tu_ctx();
    const conv_case *k = &cases[1];
    conv_data d = make_data(k, 3);
    mg_conv2d_shape s = case_shape(k);
    mg_conv2d_kernel *ker = NULL;
    cr_assert_eq(mg_conv2d_kernel_new(ctx, &s, MG_CONV_FWD, &ker), MG_OK);
    float db[5];
    double rdb[5], *rdw = calloc((size_t)mg_tensor_numel(d.w), sizeof(double));
    cr_assert_eq(mg_conv2d_kernel_backward_weights(ker, NULL, mg_f32(d.dy), NULL, db), MG_OK, "%s",
                 mg_ctx_error(ctx));
    ref_backward_weights(&d.g, mg_f32(d.x), mg_f32(d.dy), rdw, rdb);
    cr_expect_leq(max_err(db, rdb, 5), 1e-4);
    free(rdw);
    mg_conv2d_kernel_free(ker);
    free_data(&d);
    mg_ctx_free(ctx);
}

Test(conv, kernel_errors)
{
    mg_ctx *ctx = tu_ctx();
    mg_conv2d_shape s = {.n = 1, .c = 2, .h = 3, .w = 3, .oc = 2, .kh = 5, .kw = 5,
                         .stride = {1, 1}, .pad = {0, 0}, .dilation = {1, 1}};
    mg_conv2d_kernel *ker = (mg_conv2d_kernel *)&s;
    cr_assert_eq(mg_conv2d_kernel_new(ctx, &s, MG_CONV_FWD, &ker), MG_ERR_SHAPE);
    cr_assert_null(ker);
    cr_expect_not_null(strstr(mg_ctx_error(ctx), "5x5"), "message: %s", mg_ctx_error(ctx));
    s.pad[0] = s.pad[1] = 1;
    cr_assert_eq(mg_conv2d_kernel_new(ctx, &s, 0, &ker), MG_ERR_ARG);
    cr_assert_eq(mg_conv2d_kernel_new(ctx, &s, MG_CONV_FWD, &ker), MG_OK, "%s", mg_ctx_error(ctx));
    float buf[64] = {0};
    cr_assert_eq(mg_conv2d_kernel_backward_data(ker, buf, buf, buf), MG_ERR_STATE);
    cr_expect_not_null(strstr(mg_ctx_error(ctx), "BWD_DATA"), "message: %s", mg_ctx_error(ctx));
    cr_assert_eq(mg_conv2d_kernel_backward_weights(ker, buf, buf, buf, NULL), MG_ERR_STATE);
    cr_assert_eq(mg_conv2d_kernel_forward(ker, NULL, buf, NULL, buf), MG_ERR_ARG);
    mg_conv2d_kernel_free(ker);
    mg_conv2d_kernel_free(NULL);
    mg_ctx_free(ctx);
}

/* ---- the op --------------------------------------------------------------------------- */

/* Builds x, w(, b) -> conv2d(attrs) and compiles it forward-only; returns the
 * graph status (the graph and exec are freed on failure). */
static mg_status build_conv(mg_ctx *ctx, const int64_t *xs, const int64_t *ws, int bias, const mg_attrs *a,
                            mg_graph **g, mg_exec **e, mg_value *y)
{
    cr_assert_eq(mg_graph_new(ctx, g), MG_OK);
    mg_value in[3] = {mg_graph_input(*g, "x", MG_F32, 4, xs), mg_graph_input(*g, "w", MG_F32, 4, ws),
                      MG_VALUE_NONE};
    if (bias) in[2] = mg_graph_input(*g, "b", MG_F32, 1, ws);
    mg_status s = mg_graph_node(*g, "conv2d", "conv", in, bias ? 3 : 2, a, y, 1, NULL);
    if (s == MG_OK) {
        mg_compile_opts o = {.struct_size = sizeof o, .outputs = y, .n_outputs = 1};
        s = mg_graph_compile(*g, &o, e);
    }
    if (s != MG_OK) {
        mg_graph_free(*g);
        *g = NULL;
    }
    return s;
}

Test(conv, op_forward_matches_reference)
{
    mg_ctx *ctx = tu_ctx();
    for (int ci = 0; ci < N_CASES; ci++) {
        const conv_case *k = &cases[ci];
        conv_data d = make_data(k, 900 + (uint64_t)ci);
        mg_attrs *a = case_attrs(k);
        mg_graph *g;
        mg_exec *e = NULL;
        mg_value y;
        cr_assert_eq(build_conv(ctx, d.x->shape, d.w->shape, k->bias, a, &g, &e, &y), MG_OK, "case %d: %s", ci,
                     mg_ctx_error(ctx));
        cr_assert_eq(mg_exec_set_input(e, "x", d.x), MG_OK);
        cr_assert_eq(mg_exec_set_input(e, "w", d.w), MG_OK);
        if (k->bias) cr_assert_eq(mg_exec_set_input(e, "b", d.b), MG_OK);
        cr_assert_eq(mg_exec_forward(e), MG_OK, "%s", mg_ctx_error(ctx));
        const mg_tensor *out = mg_exec_tensor(e, y);
        cr_assert(mg_tensor_same_shape(out, d.dy), "case %d: output shape", ci);
        double *ref = calloc((size_t)mg_tensor_numel(out), sizeof(double));
        ref_forward(&d.g, mg_f32(d.x), mg_f32(d.w), d.b ? mg_f32(d.b) : NULL, ref);
        cr_expect_leq(max_err(mg_f32(out), ref, mg_tensor_numel(out)), 1e-4 * (k->c * k->kh * k->kw), "case %d", ci);
        free(ref);
        mg_exec_free(e);
        mg_graph_free(g);
        mg_attrs_free(a);
        free_data(&d);
    }
    mg_ctx_free(ctx);
}

/* The constructors produce the same node as explicit attributes. */
Test(conv, constructors)
{
    mg_ctx *ctx = tu_ctx();
    mg_graph *g;
    cr_assert_eq(mg_graph_new(ctx, &g), MG_OK);
    mg_value x = mg_graph_input(g, "x", MG_F32, 4, (int64_t[]){2, 3, 9, 9});
    mg_value w = mg_graph_input(g, "w", MG_F32, 4, (int64_t[]){4, 3, 3, 3});
    mg_value b = mg_graph_input(g, "b", MG_F32, 1, (int64_t[]){4});
    mg_value y1 = mg_conv2d(g, x, w, b, 2, 1);
    mg_value y2 = mg_conv2d_ex(g, x, w, MG_VALUE_NONE, (int[]){1, 2}, (int[]){0, 1}, (int[]){2, 1});
    cr_assert_eq(mg_graph_status(g), MG_OK, "%s", mg_ctx_error(ctx));
    const mg_tensor *d1 = mg_graph_value_desc(g, y1), *d2 = mg_graph_value_desc(g, y2);
    cr_assert_eq(d1->rank, 4);
    cr_expect_eq(d1->shape[1], 4);
    cr_expect_eq(d1->shape[2], 5);
    cr_expect_eq(d1->shape[3], 5);
    cr_expect_eq(d2->shape[2], 5); /* (9 - 5) / 1 + 1 */
    cr_expect_eq(d2->shape[3], 5); /* (9 + 2 - 3) / 2 + 1 */
    cr_expect_eq(mg_graph_node_num_inputs(g, mg_graph_value_node(g, y2)), 2);
    mg_graph_free(g);
    mg_ctx_free(ctx);
}

/* Training with x an input that wants no gradient: only the weights pass is
 * made, and the parameter gradients match the references for a given dy. */
Test(conv, op_training_params_only)
{
    mg_ctx *ctx = tu_ctx();
    const conv_case *k = &cases[7];
    conv_data d = make_data(k, 4242);
    mg_params *ps;
    mg_param *pw, *pb;
    cr_assert_eq(mg_params_new(&ps), MG_OK);
    cr_assert_eq(mg_params_add(ps, "w", MG_F32, 4, d.w->shape, &pw), MG_OK);
    cr_assert_eq(mg_params_add(ps, "b", MG_F32, 1, d.b->shape, &pb), MG_OK);
    cr_assert_eq(mg_tensor_copy(pw->value, d.w), MG_OK);
    cr_assert_eq(mg_tensor_copy(pb->value, d.b), MG_OK);
    mg_graph *g;
    cr_assert_eq(mg_graph_new(ctx, &g), MG_OK);
    mg_value x = mg_graph_input(g, "x", MG_F32, 4, d.x->shape);
    mg_value y = mg_conv2d(g, x, mg_graph_param(g, pw), mg_graph_param(g, pb), 1, 1);
    mg_compile_opts o = {.struct_size = sizeof o, .training = 1, .losses = &y, .n_losses = 1};
    mg_exec *e;
    cr_assert_eq(mg_graph_compile(g, &o, &e), MG_OK, "%s", mg_ctx_error(ctx));
    cr_assert_eq(mg_exec_set_input(e, "x", d.x), MG_OK);
    cr_assert_eq(mg_tensor_copy(mg_exec_seed(e, y), d.dy), MG_OK);
    cr_assert_eq(mg_exec_forward(e), MG_OK, "%s", mg_ctx_error(ctx));
    cr_assert_eq(mg_exec_backward(e), MG_OK, "%s", mg_ctx_error(ctx));
    cr_expect_null(mg_exec_grad(e, x));
    int64_t nw = mg_tensor_numel(d.w);
    double *rdw = calloc((size_t)(nw + k->oc), sizeof(double));
    ref_backward_weights(&d.g, mg_f32(d.x), mg_f32(d.dy), rdw, rdw + nw);
    double tol = 1e-5 * (double)(k->n * d.g.oh * d.g.ow);
    cr_expect_leq(max_err(mg_f32(pw->grad), rdw, nw), tol, "dw err %g", max_err(mg_f32(pw->grad), rdw, nw));
    cr_expect_leq(max_err(mg_f32(pb->grad), rdw + nw, k->oc), tol, "db err");
    free(rdw);
    mg_exec_free(e);
    mg_graph_free(g);
    mg_params_free(ps);
    free_data(&d);
    mg_ctx_free(ctx);
}

/* Training for dx only (w and b plain inputs): only the data pass is made. */
Test(conv, op_training_input_only)
{
    mg_ctx *ctx = tu_ctx();
    const conv_case *k = &cases[1];
    conv_data d = make_data(k, 4343);
    mg_graph *g;
    cr_assert_eq(mg_graph_new(ctx, &g), MG_OK);
    mg_value x = mg_graph_input(g, "x", MG_F32, 4, d.x->shape);
    mg_value w = mg_graph_input(g, "w", MG_F32, 4, d.w->shape);
    mg_value b = mg_graph_input(g, "b", MG_F32, 1, d.b->shape);
    mg_value y = mg_conv2d_ex(g, x, w, b, (int[]){2, 2}, (int[]){0, 0}, NULL);
    mg_compile_opts o = {.struct_size = sizeof o, .training = 1, .losses = &y, .n_losses = 1,
                         .grad_values = &x, .n_grad_values = 1};
    mg_exec *e;
    cr_assert_eq(mg_graph_compile(g, &o, &e), MG_OK, "%s", mg_ctx_error(ctx));
    cr_assert_eq(mg_exec_set_input(e, "x", d.x), MG_OK);
    cr_assert_eq(mg_exec_set_input(e, "w", d.w), MG_OK);
    cr_assert_eq(mg_exec_set_input(e, "b", d.b), MG_OK);
    cr_assert_eq(mg_tensor_copy(mg_exec_seed(e, y), d.dy), MG_OK);
    cr_assert_eq(mg_exec_forward(e), MG_OK, "%s", mg_ctx_error(ctx));
    cr_assert_eq(mg_exec_backward(e), MG_OK, "%s", mg_ctx_error(ctx));
    const mg_tensor *dx = mg_exec_grad(e, x);
    cr_assert_not_null(dx);
    cr_expect_null(mg_exec_grad(e, w));
    double *rdx = calloc((size_t)mg_tensor_numel(d.x), sizeof(double));
    ref_backward_data(&d.g, mg_f32(d.dy), mg_f32(d.w), rdx);
    cr_expect_leq(max_err(mg_f32(dx), rdx, mg_tensor_numel(d.x)), 1e-4, "dx err");
    free(rdx);
    mg_exec_free(e);
    mg_graph_free(g);
    free_data(&d);
    mg_ctx_free(ctx);
}

/* ---- gradients through the op ------------------------------------------------------------ */

/* Conv is linear in each input, so a large step is exact and keeps f32
 * rounding out of the finite differences. */
static mg_gradcheck_opts lin_opts(void)
{
    mg_gradcheck_opts o = mg_gradcheck_defaults();
    o.eps = 0.05;
    return o;
}

static void gradcheck_case(const conv_case *k, uint64_t seed)
{
    mg_ctx *ctx = tu_ctx();
    conv_data d = make_data(k, seed);
    mg_attrs *a = case_attrs(k);
    const mg_tensor *in[3] = {d.x, d.w, d.b};
    mg_gradcheck_opts o = lin_opts();
    tu_gradcheck_op(ctx, "conv2d", in, k->bias ? 3 : 2, a, &o);
    mg_attrs_free(a);
    free_data(&d);
    mg_ctx_free(ctx);
}

Test(conv, gradcheck_3x3_same) { gradcheck_case(&(conv_case){2, 3, 5, 5, 4, 3, 3, {1, 1}, {1, 1}, {1, 1}, 1}, 11); }
Test(conv, gradcheck_stride2_odd) { gradcheck_case(&(conv_case){2, 2, 7, 6, 3, 3, 3, {2, 2}, {0, 0}, {1, 1}, 1}, 12); }
Test(conv, gradcheck_dilated_nobias) { gradcheck_case(&(conv_case){1, 3, 7, 7, 2, 3, 3, {1, 1}, {2, 2}, {2, 2}, 0}, 13); }
Test(conv, gradcheck_1x1) { gradcheck_case(&(conv_case){3, 4, 3, 5, 2, 1, 1, {1, 1}, {0, 0}, {1, 1}, 1}, 14); }
Test(conv, gradcheck_5x5) { gradcheck_case(&(conv_case){1, 2, 6, 7, 2, 5, 5, {2, 1}, {2, 1}, {1, 1}, 1}, 15); }
Test(conv, gradcheck_blocked) { gradcheck_case(&(conv_case){1, 16, 4, 4, 16, 3, 3, {1, 1}, {1, 1}, {1, 1}, 1}, 16); }

/* ---- errors ------------------------------------------------------------------------------- */

/* Adds conv2d over inputs of the given shapes with attrs; returns the status
 * and leaves the message on ctx. */
static mg_status try_conv(mg_ctx *ctx, const int64_t *xs, const int64_t *ws, const int64_t *bs,
                          const mg_attrs *a)
{
    mg_graph *g;
    cr_assert_eq(mg_graph_new(ctx, &g), MG_OK);
    mg_value in[3] = {mg_graph_input(g, "x", MG_F32, 4, xs), mg_graph_input(g, "w", MG_F32, 4, ws),
                      bs ? mg_graph_input(g, "b", MG_F32, 1, bs) : MG_VALUE_NONE};
    mg_value y;
    mg_status s = mg_graph_node(g, "conv2d", "c1", in, bs ? 3 : 2, a, &y, 1, NULL);
    cr_assert_eq(mg_graph_status(g), s);
    mg_graph_free(g);
    return s;
}

static void expect_msg(mg_ctx *ctx, const char *part)
{
    cr_expect_not_null(strstr(mg_ctx_error(ctx), part), "message lacks \"%s\": %s", part, mg_ctx_error(ctx));
}

Test(conv, error_channel_mismatch)
{
    mg_ctx *ctx = tu_ctx();
    cr_assert_eq(try_conv(ctx, (int64_t[]){2, 3, 8, 8}, (int64_t[]){4, 5, 3, 3}, NULL, NULL), MG_ERR_SHAPE);
    expect_msg(ctx, "C=3");
    expect_msg(ctx, "[4, 5, 3, 3]");
    cr_assert_eq(try_conv(ctx, (int64_t[]){2, 3, 8, 8}, (int64_t[]){4, 3, 3, 3}, (int64_t[]){5}, NULL), MG_ERR_SHAPE);
    expect_msg(ctx, "bias");
    mg_ctx_free(ctx);
}

Test(conv, error_kernel_too_large)
{
    mg_ctx *ctx = tu_ctx();
    cr_assert_eq(try_conv(ctx, (int64_t[]){1, 1, 3, 4}, (int64_t[]){1, 1, 5, 5}, NULL, NULL), MG_ERR_SHAPE);
    expect_msg(ctx, "5x5");
    expect_msg(ctx, "3x4");
    mg_attrs *a = mg_attrs_new();
    mg_attrs_set_int(a, "padding", 1); /* padded 5x6 fits a 5x5 kernel */
    cr_assert_eq(try_conv(ctx, (int64_t[]){1, 1, 3, 4}, (int64_t[]){1, 1, 5, 5}, NULL, a), MG_OK, "%s",
                 mg_ctx_error(ctx));
    mg_attrs_set_int(a, "dilation", 2); /* extent 9 > 5 */
    cr_assert_eq(try_conv(ctx, (int64_t[]){1, 1, 3, 4}, (int64_t[]){1, 1, 5, 5}, NULL, a), MG_ERR_SHAPE);
    expect_msg(ctx, "dilation 2,2");
    mg_attrs_free(a);
    mg_ctx_free(ctx);
}

Test(conv, error_bad_attrs)
{
    mg_ctx *ctx = tu_ctx();
    const int64_t xs[] = {1, 2, 6, 6}, ws[] = {2, 2, 3, 3};
    mg_attrs *a = mg_attrs_new();
    mg_attrs_set_int(a, "stride", 0);
    cr_assert_eq(try_conv(ctx, xs, ws, NULL, a), MG_ERR_ATTR);
    expect_msg(ctx, "stride");
    mg_attrs_set_ints(a, "stride", (int64_t[]){1, 1, 1}, 3);
    cr_assert_eq(try_conv(ctx, xs, ws, NULL, a), MG_ERR_ATTR);
    mg_attrs_set_int(a, "stride", 1);
    mg_attrs_set_ints(a, "padding", (int64_t[]){1, -1}, 2);
    cr_assert_eq(try_conv(ctx, xs, ws, NULL, a), MG_ERR_ATTR);
    expect_msg(ctx, "padding");
    mg_attrs_set_int(a, "padding", 1);
    mg_attrs_set_str(a, "dilation", "two");
    cr_assert_eq(try_conv(ctx, xs, ws, NULL, a), MG_ERR_ATTR);
    expect_msg(ctx, "dilation");
    mg_attrs_free(a);
    a = mg_attrs_new();
    mg_attrs_set_int(a, "strides", 2); /* unknown key */
    cr_assert_neq(try_conv(ctx, xs, ws, NULL, a), MG_OK);
    mg_attrs_free(a);
    mg_ctx_free(ctx);
}

Test(conv, error_rank_and_dtype)
{
    mg_ctx *ctx = tu_ctx();
    mg_graph *g;
    cr_assert_eq(mg_graph_new(ctx, &g), MG_OK);
    mg_value x = mg_graph_input(g, "x", MG_F32, 3, (int64_t[]){3, 8, 8});
    mg_value w = mg_graph_input(g, "w", MG_F32, 4, (int64_t[]){4, 3, 3, 3});
    cr_assert_not(mg_value_ok(mg_conv2d(g, x, w, MG_VALUE_NONE, 1, 1)));
    cr_assert_eq(mg_graph_status(g), MG_ERR_SHAPE);
    expect_msg(ctx, "[N, C, H, W]");
    mg_graph_free(g);
    cr_assert_eq(mg_graph_new(ctx, &g), MG_OK);
    x = mg_graph_input(g, "x", MG_F64, 4, (int64_t[]){1, 3, 8, 8});
    w = mg_graph_input(g, "w", MG_F32, 4, (int64_t[]){4, 3, 3, 3});
    cr_assert_not(mg_value_ok(mg_conv2d(g, x, w, MG_VALUE_NONE, 1, 1)));
    cr_assert_eq(mg_graph_status(g), MG_ERR_DTYPE);
    mg_graph_free(g);
    mg_ctx_free(ctx);
}
