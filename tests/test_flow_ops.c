/* tests/test_flow_ops.c: the logit op and its inverse (flow.h) against
 * double-precision references, its log-det against finite differences of
 * the map itself, gradient checks of both outputs, and the helpers:
 * dequantisation, the flow loss and bits/dim on a case computed by hand. */
#include <string.h>

#include "testutil.h"

/* Compiles g forward-only, every node running. */
static mg_status compile_fwd(mg_graph *g, mg_exec **e)
{
    mg_compile_opts o = {.struct_size = sizeof o};
    return mg_graph_compile(g, &o, e);
}

static void quiet(void *user, mg_log_level level, const char *msg)
{
    (void)user, (void)level, (void)msg;
}

static mg_ctx *qctx(void)
{
    mg_ctx *ctx = tu_ctx();
    mg_ctx_set_log(ctx, quiet, NULL);
    return ctx;
}

/* Reference logit of one element in double. */
static double ref_logit(double x, double lam)
{
    double p = lam + (1 - 2 * lam) * x;
    return log(p / (1 - p));
}

/* Reference per-sample log-det: sum_d log dy/dx = sum_d log((1-2 lam) / (p (1-p))). */
static double ref_logdet(const mg_tensor *x, int64_t n, int64_t D, double lam)
{
    double s = 0;
    for (int64_t d = 0; d < D; d++) {
        double p = lam + (1 - 2 * lam) * mg_tensor_get(x, n * D + d);
        s += log(1 - 2 * lam) - log(p) - log(1 - p);
    }
    return s;
}

/* A compiled graph holding one logit node on input "x". */
typedef struct lg {
    mg_ctx *ctx;
    mg_graph *g;
    mg_exec *e;
    mg_value x, y, ld;
} lg;

static lg lg_run(mg_dtype dt, int rank, const int64_t *shape, double lam, const mg_tensor *xv)
{
    lg l = {.ctx = qctx()};
    cr_assert_eq(mg_graph_new(l.ctx, &l.g), MG_OK);
    l.x = mg_graph_input(l.g, "x", dt, rank, shape);
    l.y = mg_logit(l.g, l.x, lam, &l.ld);
    cr_assert(mg_value_ok(l.y) && mg_value_ok(l.ld), "%s", mg_ctx_error(l.ctx));
    cr_assert_eq(compile_fwd(l.g, &l.e), MG_OK, "%s", mg_ctx_error(l.ctx));
    cr_assert_eq(mg_exec_set_input(l.e, "x", xv), MG_OK);
    cr_assert_eq(mg_exec_forward(l.e), MG_OK, "%s", mg_ctx_error(l.ctx));
    return l;
}

static void lg_free(lg *l)
{
    mg_exec_free(l->e);
    mg_graph_free(l->g);
    mg_ctx_free(l->ctx);
}

/* ---- forward -------------------------------------------------------------------- */

static void check_forward(mg_dtype dt, int rank, const int64_t *shape, double lam, double tol)
{
    mg_tensor *x = tu_rand(dt, rank, shape, 0, 1, 5);
    lg l = lg_run(dt, rank, shape, lam, x);
    const mg_tensor *y = mg_exec_tensor(l.e, l.y), *ld = mg_exec_tensor(l.e, l.ld);
    cr_assert(mg_tensor_same_shape(y, x));
    cr_assert_eq(ld->rank, 1);
    cr_assert_eq(ld->shape[0], shape[0]);
    cr_assert_eq(ld->dtype, dt);
    int64_t N = shape[0], D = mg_tensor_numel(x) / N;
    for (int64_t i = 0; i < N * D; i++) {
        double want = ref_logit(mg_tensor_get(x, i), lam);
        cr_assert_leq(fabs(mg_tensor_get(y, i) - want), tol * fmax(1, fabs(want)), "y[%lld] %.10g vs %.10g",
                      (long long)i, mg_tensor_get(y, i), want);
    }
    for (int64_t n = 0; n < N; n++) {
        double want = ref_logdet(x, n, D, lam);
        cr_assert_leq(fabs(mg_tensor_get(ld, n) - want), tol * fmax(1, fabs(want)), "logdet[%lld]",
                      (long long)n);
    }
    mg_tensor_free(x);
    lg_free(&l);
}

Test(flow, logit_forward_matches_reference)
{
    int64_t s4[4] = {3, 2, 5, 5}, s2[2] = {4, 7}, s1[1] = {5};
    check_forward(MG_F64, 4, s4, 1e-6, 1e-12);
    check_forward(MG_F64, 2, s2, 0.05, 1e-12);
    check_forward(MG_F64, 1, s1, 0, 1e-12);
    check_forward(MG_F32, 4, s4, 1e-6, 1e-6);
    check_forward(MG_F32, 2, s2, 0.05, 1e-6);
}

/* The log-det is sum_d log|dy_d/dx_d| (the Jacobian is diagonal): compare
 * with central differences of y itself, in double. */
Test(flow, logdet_matches_finite_differences)
{
    int64_t shape[4] = {3, 1, 3, 3};
    double lam = 0.05, h = 1e-6;
    mg_tensor *x = tu_rand(MG_F64, 4, shape, 0.02, 0.98, 8);
    lg l = lg_run(MG_F64, 4, shape, lam, x);
    mg_tensor *xp = mg_tensor_clone(x);
    for (int64_t n = 0; n < 3; n++) {
        double fd = 0;
        for (int64_t d = 0; d < 9; d++) {
            int64_t i = n * 9 + d;
            double xi = mg_tensor_get(x, i), yp, ym;
            mg_tensor_set(xp, i, xi + h);
            cr_assert_eq(mg_exec_set_input(l.e, "x", xp), MG_OK);
            cr_assert_eq(mg_exec_forward(l.e), MG_OK);
            yp = mg_tensor_get(mg_exec_tensor(l.e, l.y), i);
            mg_tensor_set(xp, i, xi - h);
            cr_assert_eq(mg_exec_set_input(l.e, "x", xp), MG_OK);
            cr_assert_eq(mg_exec_forward(l.e), MG_OK);
            ym = mg_tensor_get(mg_exec_tensor(l.e, l.y), i);
            mg_tensor_set(xp, i, xi);
            fd += log(fabs((yp - ym) / (2 * h)));
        }
        cr_assert_eq(mg_exec_set_input(l.e, "x", x), MG_OK);
        cr_assert_eq(mg_exec_forward(l.e), MG_OK);
        double got = mg_tensor_get(mg_exec_tensor(l.e, l.ld), n);
        cr_assert_leq(fabs(got - fd), 1e-6, "sample %lld: logdet %.12g, finite differences %.12g", (long long)n,
                      got, fd);
    }
    mg_tensor_free(xp);
    mg_tensor_free(x);
    lg_free(&l);
}

Test(flow, logit_does_not_clamp)
{
    int64_t shape[2] = {1, 3};
    mg_tensor *x = mg_tensor_new(MG_F64, 2, shape);
    double v[3] = {1.5, 0.0, 1.0};
    memcpy(x->data, v, sizeof v);
    lg l = lg_run(MG_F64, 2, shape, 0, x);
    const mg_tensor *y = mg_exec_tensor(l.e, l.y);
    cr_assert(isnan(mg_tensor_get(y, 0)), "x = 1.5 must give NaN, got %g", mg_tensor_get(y, 0));
    cr_assert(isinf(mg_tensor_get(y, 1)) && mg_tensor_get(y, 1) < 0);
    cr_assert(isinf(mg_tensor_get(y, 2)) && mg_tensor_get(y, 2) > 0);
    cr_assert(!isfinite(mg_tensor_get(mg_exec_tensor(l.e, l.ld), 0)));
    mg_tensor_free(x);
    lg_free(&l);
}

Test(flow, logit_checks_attributes_and_inputs)
{
    mg_ctx *ctx = qctx();
    mg_graph *g = NULL;
    int64_t s2[2] = {2, 3};
    cr_assert_eq(mg_graph_new(ctx, &g), MG_OK);
    mg_value x = mg_graph_input(g, "x", MG_F32, 2, s2);
    cr_assert_not(mg_value_ok(mg_logit(g, x, 0.5, NULL)));
    cr_assert_eq(mg_graph_status(g), MG_ERR_ATTR);
    cr_assert(strstr(mg_ctx_error(ctx), "lambda must be in [0, 0.5), got 0.5"), "%s", mg_ctx_error(ctx));
    mg_graph_free(g);
    cr_assert_eq(mg_graph_new(ctx, &g), MG_OK);
    mg_value xi = mg_graph_input(g, "xi", MG_I32, 2, s2);
    cr_assert_not(mg_value_ok(mg_logit(g, xi, 1e-6, NULL)));
    cr_assert_eq(mg_graph_status(g), MG_ERR_DTYPE);
    mg_graph_free(g);
    cr_assert_eq(mg_graph_new(ctx, &g), MG_OK);
    mg_value xs = mg_graph_input(g, "xs", MG_F64, 0, NULL);
    cr_assert_not(mg_value_ok(mg_logit_inverse(g, xs, -0.1)));
    cr_assert_eq(mg_graph_status(g), MG_ERR_SHAPE);
    mg_graph_free(g);
    mg_ctx_free(ctx);
}

/* ---- gradients ------------------------------------------------------------------------ */

/* Gradient check of d(<r, out>)/dx for one output (which = 0: y, 1: logdet)
 * or both (which = 2). */
static void grad_logit(mg_dtype dt, int rank, const int64_t *shape, double lam, int which)
{
    mg_ctx *ctx = qctx();
    mg_graph *g = NULL;
    cr_assert_eq(mg_graph_new(ctx, &g), MG_OK);
    mg_value x = mg_graph_input(g, "x", dt, rank, shape), ld;
    mg_value y = mg_logit(g, x, lam, &ld);
    mg_value losses[2] = {which == 1 ? ld : y, ld};
    mg_tensor *xv = tu_rand(dt, rank, shape, 0.1, 0.9, 21 + which);
    const mg_tensor *data[1] = {xv};
    mg_gradcheck_opts o = mg_gradcheck_defaults();
    mg_gradcheck_report rep;
    mg_status s = mg_gradcheck_graph(g, losses, which == 2 ? 2 : 1, &x, 1, &x, data, 1, &o, &rep);
    cr_assert_eq(s, MG_OK, "gradcheck logit (%s, output %d): %s %s", mg_dtype_name(dt), which, rep.message,
                 mg_ctx_error(ctx));
    cr_assert_eq(rep.checked, mg_tensor_numel(xv));
    if (dt == MG_F64) cr_assert_lt(rep.max_rel_err, 1e-6, "%s", rep.message);
    mg_tensor_free(xv);
    mg_graph_free(g);
    mg_ctx_free(ctx);
}

Test(flow, logit_gradcheck_each_output)
{
    int64_t s4[4] = {2, 3, 3, 5}, s2[2] = {3, 7};
    for (int which = 0; which < 3; which++) {
        grad_logit(MG_F64, 4, s4, 1e-6, which);
        grad_logit(MG_F64, 2, s2, 0.05, which);
        grad_logit(MG_F32, 4, s4, 0.05, which);
        grad_logit(MG_F32, 2, s2, 1e-6, which);
    }
}

Test(flow, logit_gradcheck_op)
{
    mg_ctx *ctx = qctx();
    int64_t s3[3] = {3, 5, 1};
    mg_attrs *a = mg_attrs_new();
    mg_attrs_set_float(a, "lambda", 0.05);
    for (int k = 0; k < 2; k++) {
        mg_dtype dt = k ? MG_F32 : MG_F64;
        mg_tensor *x = tu_rand(dt, 3, s3, 0.1, 0.9, 4);
        mg_tensor *y = tu_rand(dt, 3, s3, -4, 4, 5);
        tu_gradcheck_op(ctx, "logit", (const mg_tensor *const *)&x, 1, a, NULL);
        tu_gradcheck_op(ctx, "logit", (const mg_tensor *const *)&x, 1, NULL, NULL);
        tu_gradcheck_op(ctx, "logit_inverse", (const mg_tensor *const *)&y, 1, a, NULL);
        tu_gradcheck_op(ctx, "logit_inverse", (const mg_tensor *const *)&y, 1, NULL, NULL);
        mg_tensor_free(x);
        mg_tensor_free(y);
    }
    mg_attrs_free(a);
    mg_ctx_free(ctx);
}

Test(flow, logit_inverse_round_trip)
{
    mg_ctx *ctx = qctx();
    int64_t shape[4] = {2, 3, 4, 4};
    for (int k = 0; k < 2; k++) {
        mg_dtype dt = k ? MG_F32 : MG_F64;
        double lam = k ? 0.05 : 1e-6;
        mg_graph *g = NULL;
        cr_assert_eq(mg_graph_new(ctx, &g), MG_OK);
        mg_value x = mg_graph_input(g, "x", dt, 4, shape);
        mg_value x2 = mg_logit_inverse(g, mg_logit(g, x, lam, NULL), lam);
        mg_exec *e = NULL;
        cr_assert_eq(compile_fwd(g, &e), MG_OK, "%s", mg_ctx_error(ctx));
        mg_tensor *xv = tu_rand(dt, 4, shape, 0, 1, 3);
        cr_assert_eq(mg_exec_set_input(e, "x", xv), MG_OK);
        cr_assert_eq(mg_exec_forward(e), MG_OK);
        double err = tu_max_abs_diff(mg_exec_tensor(e, x2), xv);
        cr_assert_lt(err, k ? 2e-6 : 1e-10, "%s round trip error %g", mg_dtype_name(dt), err);
        mg_tensor_free(xv);
        mg_exec_free(e);
        mg_graph_free(g);
    }
    mg_ctx_free(ctx);
}

/* The total loss through the logit (prior + logit log-det) has the right
 * gradient with respect to the data. */
Test(flow, loss_through_logit_gradcheck)
{
    mg_ctx *ctx = qctx();
    mg_graph *g = NULL;
    int64_t shape[4] = {3, 2, 3, 3};
    cr_assert_eq(mg_graph_new(ctx, &g), MG_OK);
    mg_value x = mg_graph_input(g, "x", MG_F64, 4, shape), ld;
    mg_value y = mg_logit(g, x, 1e-6, &ld);
    mg_value loss = mg_normal_nll(g, y, ld);
    cr_assert(mg_value_ok(loss), "%s", mg_ctx_error(ctx));
    cr_assert_eq(mg_graph_value_desc(g, loss)->rank, 0, "the loss is a scalar");
    mg_tensor *xv = tu_rand(MG_F64, 4, shape, 0.05, 0.95, 17);
    const mg_tensor *data[1] = {xv};
    mg_gradcheck_opts o = mg_gradcheck_defaults();
    mg_gradcheck_report rep;
    cr_assert_eq(mg_gradcheck_graph(g, &loss, 1, &x, 1, &x, data, 1, &o, &rep), MG_OK, "%s %s", rep.message,
                 mg_ctx_error(ctx));
    mg_tensor_free(xv);
    mg_graph_free(g);
    mg_ctx_free(ctx);
}

/* ---- helpers ---------------------------------------------------------------------------- */

Test(flow, dequantize_deterministic_and_random)
{
    mg_ctx *ctx = qctx();
    int64_t shape[2] = {2, 3};
    mg_tensor *px = mg_tensor_new(MG_U8, 2, shape), *out = mg_tensor_new(MG_F32, 2, shape);
    mg_tensor *out64 = mg_tensor_new(MG_F64, 2, shape);
    const uint8_t v[6] = {0, 1, 127, 128, 254, 255};
    memcpy(px->data, v, sizeof v);
    cr_assert_eq(mg_dequantize(ctx, px, out, NULL), MG_OK);
    for (int i = 0; i < 6; i++) cr_assert_eq(mg_tensor_get(out, i), (v[i] + 0.5) / 256.0);
    mg_rng a, b;
    mg_rng_seed(&a, 99);
    mg_rng_seed(&b, 99);
    cr_assert_eq(mg_dequantize(ctx, px, out64, &a), MG_OK);
    double spread = 0;
    for (int i = 0; i < 6; i++) {
        double got = mg_tensor_get(out64, i), u = mg_rng_uniform(&b);
        cr_assert_eq(got, (v[i] + u) / 256.0, "element %d draws u in element order", i);
        cr_assert(got >= v[i] / 256.0 && got < (v[i] + 1) / 256.0);
        spread += fabs(u - 0.5);
    }
    cr_assert_gt(spread, 0.01, "the noise is not constant");
    mg_tensor_free(px);
    mg_tensor_free(out);
    mg_tensor_free(out64);
    mg_ctx_free(ctx);
}

Test(flow, dequantize_errors)
{
    mg_ctx *ctx = qctx();
    int64_t s2[2] = {2, 3}, s1[1] = {5};
    mg_tensor *px = mg_tensor_new(MG_U8, 2, s2), *f = mg_tensor_new(MG_F32, 2, s2);
    mg_tensor *small = mg_tensor_new(MG_F32, 1, s1), *i32 = mg_tensor_new(MG_I32, 2, s2);
    cr_assert_eq(mg_dequantize(ctx, px, small, NULL), MG_ERR_SHAPE);
    cr_assert(strstr(mg_ctx_error(ctx), "6 elements"), "%s", mg_ctx_error(ctx));
    cr_assert_eq(mg_dequantize(ctx, f, f, NULL), MG_ERR_DTYPE);
    cr_assert_eq(mg_dequantize(ctx, px, i32, NULL), MG_ERR_DTYPE);
    cr_assert_eq(mg_dequantize(ctx, NULL, f, NULL), MG_ERR_ARG);
    cr_assert_eq(mg_dequantize(NULL, px, small, NULL), MG_ERR_SHAPE, "a NULL context is allowed");
    mg_tensor_free(px);
    mg_tensor_free(f);
    mg_tensor_free(small);
    mg_tensor_free(i32);
    mg_ctx_free(ctx);
}

Test(flow, bits_per_dim_formula)
{
    /* A loss of 3 bits/dim in nats with no logit: 3 + 8. */
    cr_assert_float_eq(mg_bits_per_dim(784 * 3 * log(2.0), 0, 784), 11.0, 1e-12);
    /* The logit's log-det is subtracted. */
    cr_assert_float_eq(mg_bits_per_dim(10 * log(2.0), -20 * log(2.0), 10), 8.0 + 3.0, 1e-12);
    cr_assert(isnan(mg_bits_per_dim(1, 0, 0)));
}

/* By hand: x = 1/2 everywhere gives p = 1/2 and y = 0 for every lambda. With
 * an identity flow z = y = 0, so the loss is D/2 log(2 pi) nats, and the
 * logit's log-det is D (2 log 2 + log(1 - 2 lambda)). Hence
 * bits/dim = log2(2 pi)/2 - 2 - log2(1 - 2 lambda) + 8. */
static void bits_by_hand(double lam)
{
    mg_ctx *ctx = qctx();
    mg_graph *g = NULL;
    int64_t shape[4] = {4, 1, 2, 3};
    const int64_t D = 6;
    cr_assert_eq(mg_graph_new(ctx, &g), MG_OK);
    mg_value x = mg_graph_input(g, "x", MG_F32, 4, shape), ld;
    mg_value z = mg_logit(g, x, lam, &ld);
    mg_value loss = mg_normal_nll(g, z, MG_VALUE_NONE);
    mg_exec *e = NULL;
    cr_assert_eq(compile_fwd(g, &e), MG_OK, "%s", mg_ctx_error(ctx));
    mg_tensor_fill(mg_exec_tensor(e, x), 0.5);
    cr_assert_eq(mg_exec_forward(e), MG_OK, "%s", mg_ctx_error(ctx));
    cr_assert_float_eq(mg_tensor_get(mg_exec_tensor(e, loss), 0), D * 0.5 * log(2 * M_PI), 1e-5);
    double mean_ld = 0;
    for (int n = 0; n < 4; n++) mean_ld += mg_tensor_get(mg_exec_tensor(e, ld), n) / 4;
    cr_assert_float_eq(mean_ld, D * (2 * log(2.0) + log(1 - 2 * lam)), 1e-5);
    double bpd = mg_bits_per_dim(mg_tensor_get(mg_exec_tensor(e, loss), 0), mean_ld, D);
    double want = 0.5 * log2(2 * M_PI) - 2 - log2(1 - 2 * lam) + 8;
    cr_assert_float_eq(bpd, want, 1e-6, "bits/dim %.9f, by hand %.9f", bpd, want);
    mg_exec_free(e);
    mg_graph_free(g);
    mg_ctx_free(ctx);
}

Test(flow, bits_per_dim_by_hand)
{
    bits_by_hand(0);      /* 6 + log2(2 pi)/2 = 7.32574806... */
    bits_by_hand(1e-6);
    bits_by_hand(0.05);
    cr_assert_float_eq(0.5 * log2(2 * M_PI) + 6, 7.325748064736159, 1e-12);
}
