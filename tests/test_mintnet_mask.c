/* tests/test_mintnet_mask.c: the masks of spec section 1 and the
 * dependency structure they give: perturbing input element j of a type-A
 * block (or masked convolution) changes no output that precedes j in NCHW
 * flat order, and of a type-B one none that follows it — exact zeros, in
 * both the f32 (oneDNN) and f64 paths; samples stay independent. */
#include "test_mintnet_ref.h"

/* The spec's worked example: C = 2, type A. */
Test(mintnet_mask, spec_example)
{
    static const int diag[9] = {1, 1, 1, 1, 1, 0, 0, 0, 0};
    for (int t = 0; t < 9; t++) {
        cr_expect_eq(mn_mask_keep(MN_MASK_A, 2, 0, 0, t / 3, t % 3), diag[t], "(i0,j0) tap %d", t);
        cr_expect_eq(mn_mask_keep(MN_MASK_A, 2, 0, 1, t / 3, t % 3), 0, "(i0,j1) tap %d", t);
        cr_expect_eq(mn_mask_keep(MN_MASK_A, 2, 1, 0, t / 3, t % 3), 1, "(i1,j0) tap %d", t);
        cr_expect_eq(mn_mask_keep(MN_MASK_A, 2, 1, 1, t / 3, t % 3), diag[t], "(i1,j1) tap %d", t);
    }
}

/* The plugin's masks equal the reference's, B mirrors A, and the centre is
 * always kept; sub-blocks repeat with period C. */
Test(mintnet_mask, matches_reference_and_mirrors)
{
    for (int64_t C = 1; C <= 4; C++)
        for (int64_t o = 0; o < 3 * C; o++)
            for (int64_t i = 0; i < 2 * C; i++)
                for (int u = 0; u < 3; u++)
                    for (int v = 0; v < 3; v++) {
                        int a = mn_mask_keep(MN_MASK_A, C, o, i, u, v), b = mn_mask_keep(MN_MASK_B, C, o, i, u, v);
                        cr_assert_eq(a, ref_mask('A', o % C, i % C, u, v));
                        cr_assert_eq(b, ref_mask('B', o % C, i % C, u, v));
                        cr_assert_eq(b, mn_mask_keep(MN_MASK_A, C, i, o, 2 - u, 2 - v));
                        if (o % C == i % C && u == 1 && v == 1) cr_assert(a && b);
                    }
}

Test(mintnet_mask, counts)
{
    /* C = 1: 5 of 9 taps; C = 2: 2 diagonal (5 each) + 1 full (9) + 1 empty per grid */
    cr_expect_eq(mn_mask_count(MN_MASK_A, 1, 1, 1), 5);
    cr_expect_eq(mn_mask_count(MN_MASK_B, 2, 2, 2), 2 * 5 + 9);
    cr_expect_eq(mn_mask_count(MN_MASK_A, 2, 4, 2), 2 * (2 * 5 + 9));
    cr_expect_eq(mn_mask_count(MN_MASK_A, 3, 3, 3), 3 * 5 + 3 * 9);
}

/* The op's output equals the reference convolution with the masked weight. */
Test(mintnet_mask, masked_conv_forward_matches_reference)
{
    /* {N, Cin, Cout, H, W, C} */
    static const int64_t cases[][6] = {{2, 2, 4, 3, 5, 2}, {1, 3, 3, 4, 4, 3}, {2, 1, 5, 2, 3, 1}};
    mg_ctx *ctx = mn_ctx();
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++)
        for (int m = 0; m < 2; m++) {
            const int64_t *c = cases[k], N = c[0], I = c[1], O = c[2], H = c[3], W = c[4];
            const int64_t sx[4] = {N, I, H, W}, sw[4] = {O, I, 3, 3}, sb[1] = {O};
            mg_tensor *in[3] = {tu_rand(MG_F32, 4, sx, -1, 1, 70 + k), tu_rand(MG_F32, 4, sw, -1, 1, 80 + k),
                                tu_rand(MG_F32, 1, sb, -1, 1, 90 + k)};
            char mask = m ? 'B' : 'A';
            mg_attrs *a = tb_attrs(mask);
            mg_attrs_set_int(a, "channels", c[5]);
            trun r;
            tr_open(&r, ctx, "mintnet.masked_conv2d", in, 3, a);
            tr_forward(&r);
            double *w = malloc(sizeof(double) * O * I * 9), *wm = malloc(sizeof(double) * O * I * 9);
            double *x = malloc(sizeof(double) * I * H * W), *y = malloc(sizeof(double) * O * H * W), b[8];
            for (int64_t i = 0; i < O * I * 9; i++) w[i] = mg_tensor_get(in[1], i);
            for (int64_t i = 0; i < O; i++) b[i] = mg_tensor_get(in[2], i);
            ref_masked(mask, c[5], O, I, w, wm);
            double err = 0;
            for (int64_t n = 0; n < N; n++) {
                for (int64_t i = 0; i < I * H * W; i++) x[i] = mg_tensor_get(in[0], n * I * H * W + i);
                ref_conv(x, I, O, H, W, wm, b, y);
                for (int64_t i = 0; i < O * H * W; i++)
                    err = fmax(err, fabs(mg_tensor_get(tr_out(&r, 0), n * O * H * W + i) - y[i]));
            }
            cr_expect_leq(err, 1e-5, "case %zu mask %c: error %g", k, mask, err);
            free(w);
            free(wm);
            free(x);
            free(y);
            tr_close(&r);
            mg_attrs_free(a);
            for (int i = 0; i < 3; i++) mg_tensor_free(in[i]);
        }
    mg_ctx_free(ctx);
}

/* Order key of channel q, pixel p for sub-blocks of C: (q mod C) HW + p. */
static int64_t key(int64_t q, int64_t p, int64_t C, int64_t HW) { return (q % C) * HW + p; }

/* Perturbs every input element of one sample in turn and counts outputs on
 * the forbidden side that changed (must be 0) and diagonal outputs that did
 * not (should be 0 for non-degenerate weights). Runs the compiled exec r
 * whose input 0 is x and output 0 is y. */
static void dependency_scan(trun *r, const mg_tensor *x0, int64_t Cin, int64_t Cout, int64_t C, int64_t HW, char mask,
                            int64_t *forbidden, int64_t *diag_same)
{
    mg_tensor *x = mg_tensor_clone(x0);
    tr_set(r, 0, x);
    tr_forward(r);
    mg_tensor *y0 = mg_tensor_clone(tr_out(r, 0));
    *forbidden = *diag_same = 0;
    for (int64_t j = 0; j < Cin * HW; j++) {
        mg_tensor_set(x, j, mg_tensor_get(x0, j) + 0.37);
        tr_set(r, 0, x);
        tr_forward(r);
        const mg_tensor *y = tr_out(r, 0);
        int64_t kj = key(j / HW, j % HW, C, HW);
        for (int64_t i = 0; i < Cout * HW; i++) {
            int64_t ki = key(i / HW, i % HW, C, HW);
            int same = mg_tensor_get(y, i) == mg_tensor_get(y0, i);
            if ((mask == 'A' && ki < kj) || (mask == 'B' && ki > kj)) *forbidden += !same;
            if (Cin == Cout && i == j) *diag_same += same;
        }
        mg_tensor_set(x, j, mg_tensor_get(x0, j));
    }
    mg_tensor_free(y0);
    mg_tensor_free(x);
}

Test(mintnet_mask, masked_conv_dependency)
{
    /* {Cin, Cout, C, H, W} */
    static const int64_t cases[][5] = {{1, 1, 1, 4, 5}, {3, 3, 3, 3, 4}, {2, 6, 2, 4, 3}, {4, 2, 2, 3, 3}};
    mg_ctx *ctx = mn_ctx();
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++)
        for (int m = 0; m < 2; m++) {
            const int64_t *c = cases[k];
            const int64_t sx[4] = {1, c[0], c[3], c[4]}, sw[4] = {c[1], c[0], 3, 3};
            mg_tensor *in[2] = {tu_rand(MG_F32, 4, sx, -1, 1, 10 + k), tu_rand(MG_F32, 4, sw, -1, 1, 20 + k)};
            char mask = m ? 'B' : 'A';
            mg_attrs *a = tb_attrs(mask);
            mg_attrs_set_int(a, "channels", c[2]);
            trun r;
            tr_open(&r, ctx, "mintnet.masked_conv2d", in, 2, a);
            int64_t forbidden, same;
            dependency_scan(&r, in[0], c[0], c[1], c[2], c[3] * c[4], mask, &forbidden, &same);
            cr_expect_eq(forbidden, 0, "case %zu mask %c: %lld outputs on the masked side changed", k, mask,
                         (long long)forbidden);
            cr_expect_eq(same, 0, "case %zu mask %c: %lld diagonal outputs did not change", k, mask, (long long)same);
            tr_close(&r);
            mg_attrs_free(a);
            mg_tensor_free(in[0]);
            mg_tensor_free(in[1]);
        }
    mg_ctx_free(ctx);
}

static void block_dependency(mg_dtype dt)
{
    /* {C, L, H, W} */
    static const int64_t cases[][4] = {{1, 2, 4, 4}, {2, 2, 3, 4}, {3, 1, 3, 3}, {4, 3, 2, 3}};
    mg_ctx *ctx = mn_ctx();
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++)
        for (int m = 0; m < 2; m++) {
            const int64_t *c = cases[k];
            tblock b;
            tb_make(&b, 1, c[0], c[1], c[2], c[3], m ? 'B' : 'A', 0.8, 30 + 10 * k + m, dt);
            mg_attrs *a = tb_attrs(b.mask);
            trun r;
            tr_open(&r, ctx, "mintnet.block", b.in, 8, a);
            int64_t forbidden, same;
            dependency_scan(&r, b.in[0], c[0], c[0], c[0], c[2] * c[3], b.mask, &forbidden, &same);
            cr_expect_eq(forbidden, 0, "%s case %zu mask %c: %lld outputs on the masked side changed",
                         mg_dtype_name(dt), k, b.mask, (long long)forbidden);
            cr_expect_eq(same, 0, "%s case %zu mask %c: %lld diagonal outputs did not change", mg_dtype_name(dt), k,
                         b.mask, (long long)same);
            tr_close(&r);
            mg_attrs_free(a);
            tb_free(&b);
        }
    mg_ctx_free(ctx);
}

Test(mintnet_mask, block_dependency_f32) { block_dependency(MG_F32); }
Test(mintnet_mask, block_dependency_f64) { block_dependency(MG_F64); }

/* Changing one sample of a batch leaves the other samples' y and log-det
 * bit-identical. */
Test(mintnet_mask, samples_are_independent)
{
    mg_ctx *ctx = mn_ctx();
    tblock b;
    tb_make(&b, 3, 2, 2, 4, 4, 'A', 0.8, 60, MG_F32);
    mg_attrs *a = tb_attrs('A');
    trun r;
    tr_open(&r, ctx, "mintnet.block", b.in, 8, a);
    tr_forward(&r);
    mg_tensor *y0 = mg_tensor_clone(tr_out(&r, 0)), *l0 = mg_tensor_clone(tr_out(&r, 1));
    mg_tensor *x = mg_tensor_clone(b.in[0]);
    for (int64_t i = 32; i < 64; i++) mg_tensor_set(x, i, 2.0 - mg_tensor_get(x, i));
    tr_set(&r, 0, x);
    tr_forward(&r);
    for (int64_t i = 0; i < 96; i++)
        if (i < 32 || i >= 64) cr_expect_eq(mg_tensor_get(tr_out(&r, 0), i), mg_tensor_get(y0, i), "y[%lld]", (long long)i);
    cr_expect_eq(mg_tensor_get(tr_out(&r, 1), 0), mg_tensor_get(l0, 0));
    cr_expect_eq(mg_tensor_get(tr_out(&r, 1), 2), mg_tensor_get(l0, 2));
    cr_expect_neq(mg_tensor_get(tr_out(&r, 1), 1), mg_tensor_get(l0, 1));
    tr_close(&r);
    mg_tensor_free(x);
    mg_tensor_free(y0);
    mg_tensor_free(l0);
    mg_attrs_free(a);
    tb_free(&b);
    mg_ctx_free(ctx);
}
