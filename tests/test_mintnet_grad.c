/* tests/test_mintnet_grad.c: gradients of the MintNet ops.
 *   - mintnet.block's analytic f32 backward against central differences of
 *     the double-precision reference (every element of x and of every
 *     parameter), for a loss on y and the log-det together and for each
 *     alone (a zero gradient on the other output);
 *   - mg_gradcheck_op on mintnet.block and mintnet.masked_conv2d at several
 *     shapes, odd sizes included;
 *   - mg_gradcheck_graph of the total flow loss (prior + log-dets) through
 *     logit, blocks and a squeeze, built with the layer builders. */
#include "test_mintnet_ref.h"

#include <mintgrad/flow.h>

/* ---- analytic backward vs double finite differences ------------------------------------- */

/* L = sum_n [ sum_k r[n,k] y[n,k] + s[n] logdet[n] ] by the reference. */
static double ref_loss(const ref_block *rb, const double *x, int64_t N, const double *r, const double *s)
{
    const int64_t per = rb->C * rb->H * rb->W;
    double *y = malloc(sizeof(double) * per), L = 0;
    for (int64_t n = 0; n < N; n++) {
        double ld = ref_forward(rb, x + n * per, y);
        for (int64_t k = 0; k < per; k++) L += r[n * per + k] * y[k];
        L += s[n] * ld;
    }
    free(y);
    return L;
}

/* The op's gradients of L with respect to all eight inputs (clones in g[]). */
static void op_grads(mg_ctx *ctx, tblock *b, const mg_tensor *r, const mg_tensor *s, mg_tensor **g)
{
    mg_graph *gr;
    mg_value in[8], out[2];
    cr_assert_eq(mg_graph_new(ctx, &gr), MG_OK);
    for (int i = 0; i < 8; i++) {
        char name[8];
        snprintf(name, sizeof name, "in%d", i);
        in[i] = mg_graph_input(gr, name, MG_F32, b->in[i]->rank, b->in[i]->shape);
    }
    mg_attrs *a = tb_attrs(b->mask);
    cr_assert_eq(mg_graph_node(gr, "mintnet.block", "blk", in, 8, a, out, 2, NULL), MG_OK, "%s", mg_ctx_error(ctx));
    mg_compile_opts o = {.struct_size = sizeof o, .training = 1, .losses = out, .n_losses = 2,
                         .grad_values = in, .n_grad_values = 8};
    mg_exec *e;
    cr_assert_eq(mg_graph_compile(gr, &o, &e), MG_OK, "%s", mg_ctx_error(ctx));
    for (int i = 0; i < 8; i++) mg_tensor_copy(mg_exec_tensor(e, in[i]), b->in[i]);
    mg_tensor_copy(mg_exec_seed(e, out[0]), r);
    mg_tensor_copy(mg_exec_seed(e, out[1]), s);
    cr_assert_eq(mg_exec_forward(e), MG_OK, "%s", mg_ctx_error(ctx));
    cr_assert_eq(mg_exec_backward(e), MG_OK, "%s", mg_ctx_error(ctx));
    for (int i = 0; i < 8; i++) g[i] = mg_tensor_clone(mg_exec_grad(e, in[i]));
    mg_exec_free(e);
    mg_graph_free(gr);
    mg_attrs_free(a);
}

/* Compares the op's gradient of input i with central differences of ref_loss. */
static void check_input_grad(tblock *b, int i, const mg_tensor *g, const double *r, const double *s,
                             const char *what)
{
    ref_block rb = tb_ref(b);
    const int64_t per = b->C * b->H * b->W, nx = b->N * per;
    double *x = malloc(sizeof(double) * nx);
    for (int64_t k = 0; k < nx; k++) x[k] = mg_tensor_get(b->in[0], k);
    double *v = i == 0 ? x : b->pd[i];
    int64_t n = mg_tensor_numel(b->in[i]);
    double *num = malloc(sizeof(double) * n), scale = 0, worst = 0;
    int64_t at = 0;
    for (int64_t k = 0; k < n; k++) {
        const double h = 1e-6, v0 = v[k];
        v[k] = v0 + h;
        double lp = ref_loss(&rb, x, b->N, r, s);
        v[k] = v0 - h;
        double lm = ref_loss(&rb, x, b->N, r, s);
        v[k] = v0;
        num[k] = (lp - lm) / (2 * h);
        scale = fmax(scale, fabs(num[k]));
    }
    for (int64_t k = 0; k < n; k++) {
        double e = fabs(mg_tensor_get(g, k) - num[k]);
        if (e > worst) worst = e, at = k;
    }
    cr_expect_leq(worst, 2e-5 * fmax(1.0, scale),
                  "%s, mask %c, input %d [%lld]: analytic %.9g vs numeric %.9g (max |grad| %g)", what, b->mask, i,
                  (long long)at, mg_tensor_get(g, at), num[at], scale);
    cr_expect_gt(scale, 0, "%s: input %d has an all-zero gradient", what, i);
    free(num);
    free(x);
}

/* which: 3 = y and log-det, 1 = y only, 2 = log-det only. */
static void check_block_grads(int64_t N, int64_t C, int64_t L, int64_t H, int64_t W, char mask, int which,
                              uint64_t seed)
{
    static const char *const names[] = {"", "y only", "log-det only", "y and log-det"};
    mg_ctx *ctx = mn_ctx();
    tblock b;
    tb_make(&b, N, C, L, H, W, mask, 0.7, seed, MG_F32);
    const int64_t sy[4] = {N, C, H, W}, sl[1] = {N};
    mg_tensor *r = tu_rand(MG_F64, 4, sy, -1, 1, seed + 50), *s = tu_rand(MG_F64, 1, sl, 0.5, 1.5, seed + 51);
    if (!(which & 1)) mg_tensor_fill(r, 0);
    if (!(which & 2)) mg_tensor_fill(s, 0);
    mg_tensor *g[8];
    op_grads(ctx, &b, r, s, g);
    for (int i = 0; i < 8; i++) {
        /* with the log-det alone, b3 has no influence at all */
        if (which == 2 && i == MN_IN_B3) {
            for (int64_t k = 0; k < C; k++)
                cr_expect_eq(mg_tensor_get(g[i], k), 0.0, "b3 gradient from the log-det alone must be 0");
            continue;
        }
        check_input_grad(&b, i, g[i], mg_f64(r), mg_f64(s), names[which]);
    }
    for (int i = 0; i < 8; i++) mg_tensor_free(g[i]);
    mg_tensor_free(r);
    mg_tensor_free(s);
    tb_free(&b);
    mg_ctx_free(ctx);
}

Test(mintnet_grad, block_vs_double_fd_c1)
{
    check_block_grads(2, 1, 3, 4, 3, 'A', 3, 1000);
    check_block_grads(2, 1, 3, 4, 3, 'B', 3, 1010);
}

Test(mintnet_grad, block_vs_double_fd_c2)
{
    check_block_grads(2, 2, 2, 3, 3, 'A', 3, 1020);
    check_block_grads(2, 2, 2, 3, 3, 'B', 3, 1030);
}

Test(mintnet_grad, block_vs_double_fd_c3_odd)
{
    check_block_grads(1, 3, 1, 3, 5, 'A', 3, 1040);
    check_block_grads(1, 3, 1, 5, 2, 'B', 3, 1050);
}

/* C >= MN_OWN_CONV_BELOW: W1 and W3 run on the public (oneDNN) kernels
 * instead of the plugin's own thin-convolution kernels used above. */
Test(mintnet_grad, block_vs_double_fd_c16_public_kernels)
{
    check_block_grads(1, 16, 1, 3, 3, 'A', 3, 1090);
    check_block_grads(1, 16, 1, 2, 3, 'B', 3, 1100);
}

/* C < 16 and L*C > 16, not a multiple of 16: W2 runs on blocked (nChw16c)
 * activations and the layout changes are fused into the ELU and gradient
 * passes (mn_blocked); the second channel block has padding lanes. */
Test(mintnet_grad, block_vs_double_fd_blocked_layout)
{
    check_block_grads(1, 1, 17, 3, 3, 'A', 3, 1110);
    check_block_grads(2, 3, 6, 2, 3, 'B', 3, 1120);
    check_block_grads(1, 2, 9, 3, 2, 'A', 2, 1130);
    /* more than 16 pixels: the 16-pixel register transposes and their tails */
    check_block_grads(1, 1, 17, 5, 7, 'B', 3, 1140);
}

Test(mintnet_grad, block_y_only_and_logdet_only)
{
    check_block_grads(2, 2, 2, 3, 3, 'A', 1, 1060);
    check_block_grads(2, 2, 2, 3, 3, 'B', 2, 1070);
    check_block_grads(2, 1, 2, 3, 4, 'A', 2, 1080);
}

/* ---- the library's gradient checker ----------------------------------------------------- */

Test(mintnet_grad, gradcheck_op_block)
{
    static const int64_t shapes[][5] = {{2, 1, 2, 3, 3}, {1, 2, 2, 3, 4}, {2, 3, 1, 2, 3}, {1, 1, 5, 5, 1}};
    mg_ctx *ctx = mn_ctx();
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        for (int m = 0; m < 2; m++) {
            const int64_t *s = shapes[i];
            tblock b;
            tb_make(&b, s[0], s[1], s[2], s[3], s[4], m ? 'B' : 'A', 0.5, 1100 + 10 * i + m, MG_F32);
            mg_attrs *a = tb_attrs(b.mask);
            mg_gradcheck_opts o = mg_gradcheck_defaults();
            o.eps = 1e-2;
            mg_gradcheck_report rep = tu_gradcheck_op(ctx, "mintnet.block", (const mg_tensor *const *)b.in, 8, a, &o);
            cr_expect_lt(rep.skipped_kinks, rep.checked / 10 + 1, "shape %zu: too many kinks skipped (%d of %d)", i,
                         rep.skipped_kinks, rep.checked);
            mg_attrs_free(a);
            tb_free(&b);
        }
    mg_ctx_free(ctx);
}

Test(mintnet_grad, gradcheck_op_masked_conv)
{
    /* {N, Cin, Cout, H, W, C, bias} */
    static const int64_t cases[][7] = {{2, 2, 2, 3, 3, 2, 1}, {1, 3, 6, 4, 3, 3, 0}, {2, 4, 2, 5, 2, 2, 1},
                                       {1, 1, 3, 3, 3, 1, 1}};
    mg_ctx *ctx = mn_ctx();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        for (int m = 0; m < 2; m++) {
            const int64_t *c = cases[i];
            const int64_t sx[4] = {c[0], c[1], c[3], c[4]}, sw[4] = {c[2], c[1], 3, 3}, sb[1] = {c[2]};
            mg_tensor *in[3] = {tu_rand(MG_F32, 4, sx, -1, 1, 1200 + i), tu_rand(MG_F32, 4, sw, -1, 1, 1210 + i),
                                tu_rand(MG_F32, 1, sb, -1, 1, 1220 + i)};
            mg_attrs *a = tb_attrs(m ? 'B' : 'A');
            mg_attrs_set_int(a, "channels", c[5]);
            tu_gradcheck_op(ctx, "mintnet.masked_conv2d", (const mg_tensor *const *)in, c[6] ? 3 : 2, a, NULL);
            mg_attrs_free(a);
            for (int k = 0; k < 3; k++) mg_tensor_free(in[k]);
        }
    mg_ctx_free(ctx);
}

/* The masked weight's gradient is zero wherever the mask is. */
Test(mintnet_grad, masked_conv_weight_gradient_is_masked)
{
    mg_ctx *ctx = mn_ctx();
    const int64_t C = 2, sx[4] = {2, 4, 4, 4}, sw[4] = {6, 4, 3, 3};
    for (int m = 0; m < 2; m++) {
        mg_tensor *x = tu_rand(MG_F32, 4, sx, -1, 1, 1300), *w = tu_rand(MG_F32, 4, sw, -1, 1, 1301);
        mg_graph *g;
        mg_graph_new(ctx, &g);
        mg_value in[2] = {mg_graph_input(g, "x", MG_F32, 4, sx), mg_graph_input(g, "w", MG_F32, 4, sw)}, y;
        mg_attrs *a = tb_attrs(m ? 'B' : 'A');
        mg_attrs_set_int(a, "channels", C);
        cr_assert_eq(mg_graph_node(g, "mintnet.masked_conv2d", "mc", in, 2, a, &y, 1, NULL), MG_OK);
        mg_compile_opts o = {.struct_size = sizeof o, .training = 1, .losses = &y, .n_losses = 1,
                             .grad_values = in, .n_grad_values = 2};
        mg_exec *e;
        cr_assert_eq(mg_graph_compile(g, &o, &e), MG_OK, "%s", mg_ctx_error(ctx));
        mg_tensor_copy(mg_exec_tensor(e, in[0]), x);
        mg_tensor_copy(mg_exec_tensor(e, in[1]), w);
        cr_assert_eq(mg_exec_forward(e), MG_OK);
        cr_assert_eq(mg_exec_backward(e), MG_OK);
        const mg_tensor *gw = mg_exec_grad(e, in[1]);
        int64_t bad = 0, kept_nonzero = 0;
        for (int64_t o_ = 0; o_ < 6; o_++)
            for (int64_t i = 0; i < 4; i++)
                for (int t = 0; t < 9; t++) {
                    double v = mg_tensor_get(gw, (o_ * 4 + i) * 9 + t);
                    if (ref_mask(m ? 'B' : 'A', o_ % C, i % C, t / 3, t % 3))
                        kept_nonzero += v != 0;
                    else
                        bad += v != 0;
                }
        cr_expect_eq(bad, 0, "mask %c: %lld masked entries got a gradient", m ? 'B' : 'A', (long long)bad);
        cr_expect_gt(kept_nonzero, 100, "mask %c: kept entries got no gradient", m ? 'B' : 'A');
        mg_exec_free(e);
        mg_graph_free(g);
        mg_attrs_free(a);
        mg_tensor_free(x);
        mg_tensor_free(w);
    }
    mg_ctx_free(ctx);
}

/* ---- the total loss through logit, blocks and a squeeze --------------------------------- */

/* Builds layer `type` as flow layer `index` on x, through the registry's
 * layer definition; returns y and adds its log-det (if any) to *ld. */
static mg_value add_layer(mg_ctx *ctx, mg_graph *g, mg_params *ps, mg_rng *rng, const char *type, int index,
                          const mg_attrs *args, mg_value x, mg_value *ld)
{
    const mg_layer_def *def = mg_registry_find_layer(mg_ctx_registry(ctx), type);
    cr_assert_not_null(def, "layer type %s not registered", type);
    char prefix[32];
    snprintf(prefix, sizeof prefix, "flow.%d", index);
    const mg_tensor *xd = mg_graph_value_desc(g, x);
    mg_layer_build b = {.struct_size = sizeof b, .ctx = ctx, .g = g, .params = ps, .index = index, .prefix = prefix,
                        .type = type, .args = args, .rng = rng};
    memcpy(b.in_shape, xd->shape + 1, 3 * sizeof(int64_t));
    cr_assert_eq(def->out_shape(&b, b.out_shape), MG_OK, "%s", mg_ctx_error(ctx));
    if (def->init_params) cr_assert_eq(def->init_params(&b), MG_OK, "%s", mg_ctx_error(ctx));
    mg_value y, l;
    cr_assert_eq(mg_graph_push_scope(g, prefix, type), MG_OK);
    cr_assert_eq(def->forward(&b, x, &y, &l), MG_OK, "%s", mg_ctx_error(ctx));
    mg_graph_pop_scope(g);
    if (mg_value_ok(l)) *ld = mg_value_ok(*ld) ? mg_add(g, *ld, l) : l;
    return y;
}

static mg_attrs *block_args(const char *mask, int latent)
{
    mg_attrs *a = mg_attrs_new();
    mg_attrs_set_str(a, "mask", mask);
    mg_attrs_set_int(a, "latent", latent);
    return a;
}

/* Replaces the layer initialisation's tiny weights by larger random ones. */
static void scale_up(mg_params *ps, mg_rng *rng)
{
    for (int i = 0; i < mg_params_count(ps); i++) {
        mg_param *p = mg_params_at(ps, i);
        const char *leaf = strrchr(p->name, '.') + 1;
        if (leaf[0] == 'w') mg_tensor_rand_uniform(p->value, rng, -0.4, 0.4);
        if (leaf[0] == 'b') mg_tensor_rand_uniform(p->value, rng, -0.3, 0.3);
        if (leaf[0] == 't') mg_tensor_rand_uniform(p->value, rng, 0.6, 1.4);
    }
}

Test(mintnet_grad, total_loss_through_logit_blocks_squeeze)
{
    mg_ctx *ctx = mn_ctx();
    mg_graph *g;
    mg_params *ps;
    mg_rng rng;
    mg_rng_seed(&rng, 77);
    cr_assert_eq(mg_graph_new(ctx, &g), MG_OK);
    cr_assert_eq(mg_params_new(&ps), MG_OK);
    const int64_t sx[4] = {2, 1, 4, 4};
    mg_value x = mg_graph_input(g, "x", MG_F32, 4, sx), ld = MG_VALUE_NONE, lld;
    mg_value h = mg_logit(g, x, 0.05, &lld);
    mg_attrs *a2 = block_args("A", 2), *b2 = block_args("B", 2), *a1 = block_args("A", 1), *b1 = block_args("B", 1);
    mg_attrs *sq = mg_attrs_new();
    mg_attrs_set_int(sq, "factor", 2);
    h = add_layer(ctx, g, ps, &rng, "mintnet.block", 0, a2, h, &ld);
    h = add_layer(ctx, g, ps, &rng, "mintnet.block", 1, b2, h, &ld);
    h = add_layer(ctx, g, ps, &rng, "squeeze", 2, sq, h, &ld);
    h = add_layer(ctx, g, ps, &rng, "mintnet.block", 3, a1, h, &ld);
    h = add_layer(ctx, g, ps, &rng, "mintnet.block", 4, b1, h, &ld);
    mg_value loss = mg_normal_nll(g, h, mg_add(g, ld, lld));
    cr_assert_eq(mg_graph_status(g), MG_OK, "%s", mg_ctx_error(ctx));
    scale_up(ps, &rng);
    mg_value wrt[40];
    int nw = 0;
    wrt[nw++] = x;
    for (int i = 0; i < mg_params_count(ps); i++) wrt[nw++] = mg_graph_param(g, mg_params_at(ps, i));
    cr_assert_eq(nw, 1 + 4 * 7);
    mg_tensor *xd = tu_rand(MG_F32, 4, sx, 0.1, 0.9, 78);
    const mg_tensor *data[1] = {xd};
    mg_gradcheck_opts o = mg_gradcheck_defaults();
    o.eps = 2e-3;
    o.max_per_value = 64;
    mg_gradcheck_report rep;
    mg_status s = mg_gradcheck_graph(g, &loss, 1, wrt, nw, &x, data, 1, &o, &rep);
    cr_expect_eq(s, MG_OK, "total loss: %s (%s)", rep.message, mg_ctx_error(ctx));
    cr_expect_gt(rep.checked, 500);
    mg_tensor_free(xd);
    mg_attrs_free(a2);
    mg_attrs_free(b2);
    mg_attrs_free(a1);
    mg_attrs_free(b1);
    mg_attrs_free(sq);
    mg_graph_free(g);
    mg_params_free(ps);
    mg_ctx_free(ctx);
}
