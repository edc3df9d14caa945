/* tests/test_mintnet_logdet.c: mintnet.block's outputs against the plain
 * double-precision reference of spec sections 2-3 (f64 and f32 paths, both
 * masks, several C and L, the sign rule exercised by negative centre
 * entries), and its log-det against a brute-force dense Jacobian: central
 * differences in double, column by column, then LU log |det|. */
#include "test_mintnet_ref.h"

/* Max |op - ref| over y, and the log-dets, for every sample of b. */
typedef struct cmp {
    double y_err, y_scale, ld_err, ld_rel;
} cmp;

static cmp compare_ref(mg_ctx *ctx, tblock *b, mg_dtype dt)
{
    mg_tensor *in[8], *y, *ld;
    memcpy(in, b->in, sizeof in);
    in[0] = tb_as(b->in[0], dt);
    mg_attrs *a = tb_attrs(b->mask);
    tb_run(ctx, "mintnet.block", in, a, &y, &ld);
    ref_block rb = tb_ref(b);
    const int64_t per = b->C * b->H * b->W;
    double *x = malloc(sizeof(double) * per), *yr = malloc(sizeof(double) * per);
    cmp c = {0};
    for (int64_t n = 0; n < b->N; n++) {
        for (int64_t k = 0; k < per; k++) x[k] = mg_tensor_get(in[0], n * per + k);
        double ldr = ref_forward(&rb, x, yr);
        for (int64_t k = 0; k < per; k++) {
            c.y_err = fmax(c.y_err, fabs(mg_tensor_get(y, n * per + k) - yr[k]));
            c.y_scale = fmax(c.y_scale, fabs(yr[k]));
        }
        double e = fabs(mg_tensor_get(ld, n) - ldr);
        c.ld_err = fmax(c.ld_err, e);
        c.ld_rel = fmax(c.ld_rel, e / fmax(1.0, fabs(ldr)));
    }
    free(x);
    free(yr);
    mg_tensor_free(y);
    mg_tensor_free(ld);
    mg_tensor_free(in[0]);
    mg_attrs_free(a);
    return c;
}

typedef struct geo {
    int64_t n, c, l, h, w;
} geo;

/* The last three run W2 on blocked activations (L*C > 16, not a multiple of
 * 16) over more than 16 pixels, so that the layout changes' 16-pixel
 * register transposes, their tails and (72 pixels) a second pixel tile all
 * run; {2, 1, 17, ...} is also a C = 1 block (W2 as a 2x3 kernel). */
static const geo geos[] = {
    {2, 1, 1, 4, 4}, {3, 1, 4, 5, 3}, {2, 2, 3, 4, 5}, {2, 3, 2, 3, 3}, {1, 4, 1, 6, 2}, {2, 2, 70, 3, 3},
    {2, 1, 17, 6, 7}, {2, 2, 9, 8, 9}, {1, 3, 7, 4, 5},
};

Test(mintnet_logdet, f64_path_matches_reference)
{
    mg_ctx *ctx = mn_ctx();
    for (size_t i = 0; i < sizeof geos / sizeof geos[0]; i++)
        for (int m = 0; m < 2; m++) {
            const geo *g = &geos[i];
            tblock b;
            tb_make(&b, g->n, g->c, g->l, g->h, g->w, m ? 'B' : 'A', 0.6, 100 + 10 * i + m, MG_F64);
            cmp c = compare_ref(ctx, &b, MG_F64);
            cr_expect_leq(c.y_err, 1e-12 * fmax(1, c.y_scale), "geo %zu mask %c: y err %g", i, b.mask, c.y_err);
            cr_expect_leq(c.ld_err, 1e-10, "geo %zu mask %c: logdet err %g", i, b.mask, c.ld_err);
            tb_free(&b);
        }
    mg_ctx_free(ctx);
}

Test(mintnet_logdet, f32_path_matches_reference)
{
    mg_ctx *ctx = mn_ctx();
    for (size_t i = 0; i < sizeof geos / sizeof geos[0]; i++)
        for (int m = 0; m < 2; m++) {
            const geo *g = &geos[i];
            tblock b;
            tb_make(&b, g->n, g->c, g->l, g->h, g->w, m ? 'B' : 'A', 0.6, 200 + 10 * i + m, MG_F32);
            cmp c = compare_ref(ctx, &b, MG_F32);
            cr_expect_leq(c.y_err, 2e-5 * fmax(1, c.y_scale), "geo %zu mask %c: y err %g (scale %g)", i, b.mask,
                          c.y_err, c.y_scale);
            cr_expect_leq(c.ld_rel, 1e-5, "geo %zu mask %c: logdet rel err %g", i, b.mask, c.ld_rel);
            tb_free(&b);
        }
    mg_ctx_free(ctx);
}

/* Negative w1 / w3 centres: the op must apply the sign rule (it agrees with
 * the reference that does, and not with one that does not), and every
 * diagonal entry stays >= tau, so the log-det is at least sum log tau. */
Test(mintnet_logdet, sign_rule)
{
    mg_ctx *ctx = mn_ctx();
    for (int m = 0; m < 2; m++) {
        tblock b;
        tb_make(&b, 2, 2, 3, 4, 4, m ? 'B' : 'A', 1.5, 300 + m, MG_F64);
        float *w1 = mg_f32(b.in[1]), *w2 = mg_f32(b.in[3]), *w3 = mg_f32(b.in[5]);
        const int64_t C = 2, LC = 6;
        for (int64_t g = 0; g < 3; g++)
            for (int64_t c = 0; c < C; c++) {
                w1[mn_centre(g * C + c, c, C)] = (g + c) % 2 ? -1.2f : 0.9f;
                w3[mn_centre(c, g * C + c, LC)] = g == 1 ? -1.1f : 1.3f;
                for (int64_t g1 = 0; g1 < 3; g1++) w2[mn_centre(g * C + c, g1 * C + c, LC)] = 1.0f;
            }
        cmp c = compare_ref(ctx, &b, MG_F64);
        cr_expect_leq(c.ld_err, 1e-10, "mask %c: logdet err %g with the sign rule", b.mask, c.ld_err);
        /* The rule changes the answer: without it the reference disagrees. */
        ref_block rb = tb_ref(&b);
        rb.sign_rule = 0;
        const int64_t per = 2 * 16;
        double x[32], y[32], ld_no = 0;
        for (int64_t k = 0; k < per; k++) x[k] = mg_tensor_get(b.in[0], k);
        ld_no = ref_forward(&rb, x, y);
        rb.sign_rule = 1;
        double ld_yes = ref_forward(&rb, x, y), floor_ = 0;
        cr_expect(isnan(ld_no) || fabs(ld_no - ld_yes) > 1e-3, "mask %c: the sign rule made no difference", b.mask);
        for (int64_t k = 0; k < per; k++) floor_ += log(fmax(fabs(rb.t[k]), 1e-12));
        cr_expect_geq(ld_yes, floor_, "mask %c: log-det %g below sum log tau %g", b.mask, ld_yes, floor_);
        tb_free(&b);
    }
    mg_ctx_free(ctx);
}

/* ---- dense Jacobian ------------------------------------------------------------------------ */

/* J[i][j] = d y_i / d x_j of sample 0 by central differences of the f64
 * op: one batch holds all 2*D perturbed copies (sample 2j: +h, 2j+1: -h). */
static double *dense_jacobian(mg_ctx *ctx, tblock *b, double h)
{
    const int64_t D = b->C * b->H * b->W;
    const int64_t shape[4] = {2 * D, b->C, b->H, b->W};
    mg_tensor *in[8];
    memcpy(in, b->in, sizeof in);
    in[0] = mg_tensor_new(MG_F64, 4, shape);
    double *x = mg_f64(in[0]);
    for (int64_t j = 0; j < D; j++)
        for (int s = 0; s < 2; s++) {
            for (int64_t k = 0; k < D; k++) x[(2 * j + s) * D + k] = mg_tensor_get(b->in[0], k);
            x[(2 * j + s) * D + j] += s ? -h : h;
        }
    mg_attrs *a = tb_attrs(b->mask);
    mg_tensor *y, *ld;
    tb_run(ctx, "mintnet.block", in, a, &y, &ld);
    double *J = malloc(sizeof(double) * D * D);
    const double *yv = mg_f64(y);
    for (int64_t j = 0; j < D; j++)
        for (int64_t i = 0; i < D; i++) J[i * D + j] = (yv[(2 * j) * D + i] - yv[(2 * j + 1) * D + i]) / (2 * h);
    mg_tensor_free(y);
    mg_tensor_free(ld);
    mg_tensor_free(in[0]);
    mg_attrs_free(a);
    return J;
}

/* The op's log-det of sample 0 of b (f32 or f64). */
static double op_logdet(mg_ctx *ctx, tblock *b, mg_dtype dt)
{
    mg_tensor *in[8], *y, *ld;
    memcpy(in, b->in, sizeof in);
    in[0] = tb_as(b->in[0], dt);
    mg_attrs *a = tb_attrs(b->mask);
    tb_run(ctx, "mintnet.block", in, a, &y, &ld);
    double v = mg_tensor_get(ld, 0);
    mg_tensor_free(y);
    mg_tensor_free(ld);
    mg_tensor_free(in[0]);
    mg_attrs_free(a);
    return v;
}

Test(mintnet_logdet, dense_jacobian)
{
    static const geo gs[] = {{1, 1, 2, 3, 3}, {1, 2, 2, 3, 4}, {1, 3, 1, 3, 3}, {1, 2, 4, 2, 3}, {1, 4, 3, 2, 2}};
    mg_ctx *ctx = mn_ctx();
    for (size_t i = 0; i < sizeof gs / sizeof gs[0]; i++)
        for (int m = 0; m < 2; m++) {
            tblock b;
            tb_make(&b, 1, gs[i].c, gs[i].l, gs[i].h, gs[i].w, m ? 'B' : 'A', 1.0, 400 + 10 * i + m, MG_F64);
            const int64_t D = b.C * b.H * b.W;
            double *J = dense_jacobian(ctx, &b, 1e-5);
            /* strictly triangular in NCHW order: exact zeros on the other side */
            int64_t nonzero_off = 0;
            double min_diag = INFINITY;
            for (int64_t r = 0; r < D; r++) {
                min_diag = fmin(min_diag, J[r * D + r]);
                for (int64_t c = 0; c < D; c++)
                    if ((m == 0 && c > r) || (m == 1 && c < r)) nonzero_off += J[r * D + c] != 0.0;
            }
            cr_expect_eq(nonzero_off, 0, "geo %zu mask %c: %lld entries on the wrong side of the diagonal", i,
                         b.mask, (long long)nonzero_off);
            cr_expect_gt(min_diag, 0, "geo %zu mask %c: diagonal entry %g <= 0", i, b.mask, min_diag);
            double lu = ref_logabsdet(J, D);
            double ld64 = op_logdet(ctx, &b, MG_F64), ld32 = op_logdet(ctx, &b, MG_F32);
            cr_expect_leq(fabs(ld64 - lu), 1e-6, "geo %zu mask %c: f64 logdet %.12g vs LU %.12g", i, b.mask, ld64, lu);
            cr_expect_leq(fabs(ld32 - lu), 1e-3 * fmax(1, fabs(lu)), "geo %zu mask %c: f32 logdet %.8g vs LU %.8g", i,
                          b.mask, ld32, lu);
            /* non-trivial: the Jacobian is far from tau alone */
            double tau_only = 0;
            for (int64_t k = 0; k < D; k++) tau_only += log(fabs(mg_tensor_get(b.in[7], k)));
            cr_expect_gt(fabs(lu - tau_only), 0.1, "geo %zu mask %c: weights too small to test anything", i, b.mask);
            free(J);
            tb_free(&b);
        }
    mg_ctx_free(ctx);
}

/* The plugin's own convolution (f64 and f32) against the reference, with
 * several row blocks, a width beyond the accumulator (the fallback loop),
 * zero (masked) taps, and a sample list: unlisted samples are not written. */
Test(mintnet_logdet, own_convolution)
{
    /* {N, I, O, H, W} */
    static const int64_t cases[][5] = {{3, 3, 5, 45, 100}, {2, 2, 3, 3, 2100}, {2, 4, 1, 7, 7}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        const int64_t *c = cases[k], N = c[0], I = c[1], O = c[2], H = c[3], W = c[4];
        const mn_conv3 cs = {N, I, O, H, W};
        double *x = malloc(sizeof(double) * N * I * H * W), *y = malloc(sizeof(double) * N * O * H * W);
        double *w = malloc(sizeof(double) * O * I * 9), *pad = calloc((size_t)(N * I * (H + 2) * (W + 2)), 8);
        float *xf = malloc(sizeof(float) * N * I * H * W), *yf = malloc(sizeof(float) * N * O * H * W);
        float *wf = malloc(sizeof(float) * O * I * 9), *padf = calloc((size_t)(N * I * (H + 2) * (W + 2)), 4);
        double *yr = malloc(sizeof(double) * O * H * W), bd[8];
        float b[8];
        mg_rng r;
        mg_rng_seed(&r, 600 + k);
        for (int64_t i = 0; i < N * I * H * W; i++) xf[i] = (float)(x[i] = mg_rng_uniform(&r) * 2 - 1);
        for (int64_t i = 0; i < O * I * 9; i++) wf[i] = (float)(w[i] = (i / 9) % 3 == 1 ? 0 : mg_rng_uniform(&r) - 0.5);
        for (int64_t i = 0; i < O; i++) bd[i] = b[i] = (float)(mg_rng_uniform(&r) - 0.5);
        for (int64_t i = 0; i < N * O * H * W; i++) y[i] = yf[i] = -7;
        const int act[1] = {N - 1};
        mn_conv3_f64(&cs, x, pad, w, b, y, act, 1);
        mn_conv3_f32(&cs, xf, padf, wf, b, yf, act, 1);
        ref_conv(x + (N - 1) * I * H * W, I, O, H, W, w, bd, yr);
        double e64 = 0, e32 = 0;
        int64_t untouched = 0;
        for (int64_t i = 0; i < O * H * W; i++) {
            e64 = fmax(e64, fabs(y[(N - 1) * O * H * W + i] - yr[i]));
            e32 = fmax(e32, fabs(yf[(N - 1) * O * H * W + i] - yr[i]));
        }
        for (int64_t i = 0; i < (N - 1) * O * H * W; i++) untouched += y[i] == -7 && yf[i] == -7;
        cr_expect_leq(e64, 1e-13, "case %zu: f64 error %g", k, e64);
        cr_expect_leq(e32, 1e-5, "case %zu: f32 error %g", k, e32);
        cr_expect_eq(untouched, (N - 1) * O * H * W, "case %zu: unlisted samples were written", k);
        free(x), free(y), free(w), free(pad), free(xf), free(yf), free(wf), free(padf), free(yr);
    }
}

/* Large weights push h far into both ELU branches; the log-det must still
 * match the reference and stay finite. */
Test(mintnet_logdet, large_weights)
{
    mg_ctx *ctx = mn_ctx();
    for (int m = 0; m < 2; m++) {
        tblock b;
        tb_make(&b, 3, 2, 5, 5, 5, m ? 'B' : 'A', 4.0, 500 + m, MG_F64);
        cmp c = compare_ref(ctx, &b, MG_F64);
        cr_expect_leq(c.ld_rel, 1e-12, "mask %c: logdet rel err %g", b.mask, c.ld_rel);
        cr_expect_leq(c.y_err, 1e-11 * fmax(1, c.y_scale), "mask %c: y err %g", b.mask, c.y_err);
        tb_free(&b);
    }
    mg_ctx_free(ctx);
}

/* ---- the vectorisable ELU of mintnet_simd.h ---------------------------------------------- */
#include "mintnet_simd.h"

/* ELU and ELU' against libm in double, over [-100, 10] densely (and the
 * band near 0 where expm1 matters): float within 2.4e-7 relative (2 ulp;
 * ELU(h) near 0 keeps its relative accuracy, it is not exp(h) - 1
 * cancelling), double within 4.5e-16 (2 ulp); h > 0 exact; NaN stays NaN; below the
 * float exponent range ELU' is 0 and ELU -1. */
Test(mintnet_logdet, elu_polynomials_match_libm)
{
    double worst_a = 0, worst_e = 0, worst_a64 = 0, worst_e64 = 0;
    for (int band = 0; band < 2; band++)
        for (int64_t k = 0; k <= 2000000; k++) {
            const double h = band ? -1e-3 * (double)k / 2000000.0 : -100.0 + 110.0 * (double)k / 2000000.0;
            const float hf = (float)h;
            float a, e;
            mn_elu_pair_f32(hf, &a, &e);
            const double ra = hf > 0 ? hf : expm1((double)hf), re = hf > 0 ? 1.0 : exp((double)hf);
            if (hf > 0) {
                cr_assert(a == hf && e == 1.0f, "h = %g: ELU %g, ELU' %g", hf, a, e);
                continue;
            }
            if (re < 1e-37) { /* below float's normal range: flushed */
                cr_assert(fabs(a + 1.0) <= 1e-7 && e <= 1e-37f, "h = %g: ELU %g, ELU' %g", hf, a, e);
                continue;
            }
            double ea = fabs(a - ra) / fmax(fabs(ra), 1e-38), ee = fabs(e - re) / re;
            if (ea > worst_a) worst_a = ea;
            if (ee > worst_e) worst_e = ee;
            double a64, e64;
            mn_elu_pair_f64(h, &a64, &e64);
            const double ra64 = h > 0 ? h : expm1(h), re64 = h > 0 ? 1.0 : exp(h);
            if (h <= 0 && ra64 != 0) {
                double x = fabs(a64 - ra64) / fabs(ra64), y = fabs(e64 - re64) / re64;
                if (x > worst_a64) worst_a64 = x;
                if (y > worst_e64) worst_e64 = y;
            }
        }
    cr_expect_leq(worst_a, 2.4e-7, "float ELU: worst relative error %g", worst_a);
    cr_expect_leq(worst_e, 2.4e-7, "float ELU': worst relative error %g", worst_e);
    cr_expect_leq(worst_a64, 4.5e-16, "double ELU: worst relative error %g", worst_a64);
    cr_expect_leq(worst_e64, 4.5e-16, "double ELU': worst relative error %g", worst_e64);
    float a, e;
    mn_elu_pair_f32(NAN, &a, &e);
    cr_expect(isnan(a) && isnan(e), "NaN in, NaN out");
    mn_elu_pair_f32(-200.0f, &a, &e);
    cr_expect(a == -1.0f && e == 0.0f, "h = -200: ELU %g, ELU' %g", a, e);
}
