/* tests/test_loss.c: normal_logpdf and mse against double-precision
 * references on several shapes and both dtypes, their gradients through the
 * gradient checker and on large inputs with two threads, constructors, and
 * the shape and dtype errors. */
#include "testutil.h"

#include <omp.h>
#include <string.h>

#define HALF_LOG_2PI 0.91893853320467274178

/* ---- helpers (one node, forward / backward) ------------------------------------- */

/* Runs one node of `op` on copies of in[0..n) (forward only) and returns a
 * clone of its output; fails the test on any failure. */
static mg_tensor *run_op(mg_ctx *ctx, const char *op, const mg_tensor *const *in, int n)
{
    mg_tensor *out = NULL;
    tu_run_op(ctx, op, in, n, NULL, &out, 1);
    return out;
}

/* Forward and backward with d(loss)/dy = seed; clones d(loss)/d(input i)
 * into grads[i]. */
static void run_grad(mg_ctx *ctx, const char *op, const mg_tensor *const *in, int n,
                     const mg_tensor *seed, mg_tensor **grads)
{
    tu_run_grad(ctx, op, in, n, NULL, seed, (1u << n) - 1, grads);
}

/* The status of adding one node of `op` on inputs shaped like in[]. */
static mg_status try_op(mg_ctx *ctx, const char *op, const mg_tensor *const *in, int n)
{
    return tu_try_op(ctx, op, in, n, NULL);
}

/* Fails unless |got[i] - want[i]| <= tol * (1 + |want[i]|) everywhere. */
static void expect_near(const mg_tensor *got, const double *want, double tol, const char *what)
{
    int64_t n = mg_tensor_numel(got);
    for (int64_t i = 0; i < n; i++) {
        double g = mg_tensor_get(got, i);
        cr_assert(fabs(g - want[i]) <= tol * (1 + fabs(want[i])), "%s: element %lld is %.17g, want %.17g",
                  what, (long long)i, g, want[i]);
    }
}

static const int ranks[] = {1, 2, 3, 4, 5};
static const int64_t shapes[][5] = {{5}, {3, 7}, {2, 3, 4}, {2, 1, 3, 3}, {1, 2, 3, 1, 2}};

TestSuite(loss);

/* ---- normal_logpdf ------------------------------------------------------------------ */

/* Forward against the reference and backward (seeded) against -seed[n]*z. */
static void check_nlp(mg_ctx *ctx, mg_dtype dt, int r, const int64_t *s, uint64_t seed, double tol)
{
    mg_tensor *z = tu_rand(dt, r, s, -3, 3, seed), *g;
    mg_tensor *y = run_op(ctx, "normal_logpdf", (const mg_tensor *const *)&z, 1);
    int64_t N = s[0], D = mg_tensor_numel(z) / N;
    cr_assert(y->rank == 1 && y->shape[0] == N, "output must be [N]");
    double *want = malloc(sizeof(double) * (N * D + N));
    for (int64_t n = 0; n < N; n++) {
        double acc = 0;
        for (int64_t k = 0; k < D; k++) {
            double v = mg_tensor_get(z, n * D + k);
            acc += -0.5 * v * v - HALF_LOG_2PI;
        }
        want[n] = acc;
    }
    expect_near(y, want, tol * sqrt((double)D), "normal_logpdf");
    mg_tensor *sd = tu_rand(dt, 1, y->shape, -1, 1, seed + 1);
    run_grad(ctx, "normal_logpdf", (const mg_tensor *const *)&z, 1, sd, &g);
    for (int64_t i = 0; i < N * D; i++) want[i] = -mg_tensor_get(sd, i / D) * mg_tensor_get(z, i);
    expect_near(g, want, tol, "normal_logpdf grad");
    free(want);
    mg_tensor_free(z);
    mg_tensor_free(y);
    mg_tensor_free(sd);
    mg_tensor_free(g);
}

Test(loss, normal_logpdf_forward_backward)
{
    mg_ctx *ctx = tu_ctx();
    for (int k = 0; k < 5; k++) {
        check_nlp(ctx, MG_F32, ranks[k], shapes[k], 10 + k, 3e-7);
        check_nlp(ctx, MG_F64, ranks[k], shapes[k], 20 + k, 1e-15);
    }
    mg_ctx_free(ctx);
}

/* log N(0; 0, 1) per element: exactly -log(2 pi)/2 per dim. */
Test(loss, normal_logpdf_at_zero)
{
    mg_ctx *ctx = tu_ctx();
    mg_tensor *z = mg_tensor_new2(MG_F64, 2, 10);
    mg_tensor *y = run_op(ctx, "normal_logpdf", (const mg_tensor *const *)&z, 1);
    for (int n = 0; n < 2; n++) cr_expect_float_eq(mg_tensor_get(y, n), -10 * HALF_LOG_2PI, 1e-13);
    mg_tensor_free(z);
    mg_tensor_free(y);
    mg_ctx_free(ctx);
}

Test(loss, normal_logpdf_gradcheck)
{
    for (int k = 0; k < 5; k++)
        for (int f64 = 0; f64 < 2; f64++) {
            mg_ctx *ctx = tu_ctx();
            mg_tensor *z = tu_rand(f64 ? MG_F64 : MG_F32, ranks[k], shapes[k], -2, 2, 100 + k);
            mg_gradcheck_opts o = mg_gradcheck_defaults();
            if (f64) {
                o.atol = 1e-8;
                o.rtol = 1e-6;
            }
            tu_gradcheck_op(ctx, "normal_logpdf", (const mg_tensor *const *)&z, 1, NULL, &o);
            mg_tensor_free(z);
            mg_ctx_free(ctx);
        }
}

/* ---- mse ------------------------------------------------------------------------------ */

static void check_mse(mg_ctx *ctx, mg_dtype dt, int r, const int64_t *s, uint64_t seed, double tol)
{
    mg_tensor *a = tu_rand(dt, r, s, -2, 2, seed), *b = tu_rand(dt, r, s, -2, 2, seed + 1), *g[2];
    const mg_tensor *in[2] = {a, b};
    mg_tensor *y = run_op(ctx, "mse", in, 2);
    cr_assert_eq(y->rank, 0, "mse must be a scalar");
    int64_t n = mg_tensor_numel(a);
    double acc = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = mg_tensor_get(a, i) - mg_tensor_get(b, i);
        acc += d * d;
    }
    double want = acc / n;
    expect_near(y, &want, tol, "mse");
    mg_tensor *sd = mg_tensor_new(dt, 0, NULL);
    mg_tensor_set(sd, 0, 0.75);
    run_grad(ctx, "mse", in, 2, sd, g);
    double *wa = malloc(sizeof(double) * n), *wb = malloc(sizeof(double) * n);
    for (int64_t i = 0; i < n; i++) {
        wa[i] = 0.75 * 2 * (mg_tensor_get(a, i) - mg_tensor_get(b, i)) / n;
        wb[i] = -wa[i];
    }
    expect_near(g[0], wa, tol, "mse grad a");
    expect_near(g[1], wb, tol, "mse grad b");
    free(wa);
    free(wb);
    mg_tensor_free(a);
    mg_tensor_free(b);
    mg_tensor_free(y);
    mg_tensor_free(sd);
    mg_tensor_free(g[0]);
    mg_tensor_free(g[1]);
}

Test(loss, mse_forward_backward)
{
    mg_ctx *ctx = tu_ctx();
    int64_t none[1] = {0};
    check_mse(ctx, MG_F64, 0, none, 5, 1e-15);
    check_mse(ctx, MG_F32, 0, none, 6, 3e-7);
    for (int k = 0; k < 5; k++) {
        check_mse(ctx, MG_F32, ranks[k], shapes[k], 30 + k, 3e-7);
        check_mse(ctx, MG_F64, ranks[k], shapes[k], 40 + k, 1e-15);
    }
    mg_ctx_free(ctx);
}

Test(loss, mse_gradcheck)
{
    for (int k = 0; k < 5; k++)
        for (int f64 = 0; f64 < 2; f64++) {
            mg_ctx *ctx = tu_ctx();
            mg_dtype dt = f64 ? MG_F64 : MG_F32;
            mg_tensor *a = tu_rand(dt, ranks[k], shapes[k], -2, 2, 200 + k);
            mg_tensor *b = tu_rand(dt, ranks[k], shapes[k], -2, 2, 300 + k);
            const mg_tensor *in[2] = {a, b};
            mg_gradcheck_opts o = mg_gradcheck_defaults();
            if (f64) {
                o.atol = 1e-8;
                o.rtol = 1e-6;
            }
            tu_gradcheck_op(ctx, "mse", in, 2, NULL, &o);
            mg_tensor_free(a);
            mg_tensor_free(b);
            mg_ctx_free(ctx);
        }
}

/* ---- large inputs, constructors, errors ------------------------------------------------- */

Test(loss, parallel_large)
{
    omp_set_num_threads(2);
    mg_ctx *ctx = tu_ctx();
    check_nlp(ctx, MG_F32, 4, (const int64_t[]){16, 3, 40, 40}, 1, 3e-7);
    check_nlp(ctx, MG_F64, 2, (const int64_t[]){1, 100000}, 2, 1e-15);
    check_mse(ctx, MG_F32, 2, (const int64_t[]){300, 301}, 3, 1e-6);
    check_mse(ctx, MG_F64, 1, (const int64_t[]){100001}, 4, 1e-14);
    mg_ctx_free(ctx);
}

Test(loss, constructors)
{
    mg_ctx *ctx = tu_ctx();
    mg_graph *g;
    cr_assert_eq(mg_graph_new(ctx, &g), MG_OK);
    int64_t s[4] = {4, 1, 3, 3};
    mg_value z = mg_graph_input(g, "z", MG_F32, 4, s), t = mg_graph_input(g, "t", MG_F32, 4, s);
    mg_value lp = mg_normal_logpdf(g, z), m = mg_mse(g, z, t);
    cr_assert_eq(mg_graph_status(g), MG_OK, "%s", mg_ctx_error(ctx));
    const mg_tensor *dl = mg_graph_value_desc(g, lp), *dm = mg_graph_value_desc(g, m);
    cr_expect(dl->rank == 1 && dl->shape[0] == 4);
    cr_expect_eq(dm->rank, 0);
    mg_graph_free(g);
    mg_ctx_free(ctx);
}

Test(loss, errors)
{
    mg_ctx *ctx = tu_ctx();
    mg_tensor *a = mg_tensor_new2(MG_F32, 2, 3), *b = mg_tensor_new2(MG_F32, 3, 2);
    mg_tensor *c = mg_tensor_new2(MG_F64, 2, 3), *sc = mg_tensor_new(MG_F32, 0, NULL);
    mg_tensor *i = mg_tensor_new2(MG_I32, 2, 3);
    const mg_tensor *ab[2] = {a, b}, *ac[2] = {a, c};
    cr_expect_eq(try_op(ctx, "mse", ab, 2), MG_ERR_SHAPE);
    cr_expect(strstr(mg_ctx_error(ctx), "[2, 3]") && strstr(mg_ctx_error(ctx), "[3, 2]"), "message: %s",
              mg_ctx_error(ctx));
    cr_expect_eq(try_op(ctx, "mse", ac, 2), MG_ERR_DTYPE);
    cr_expect(strstr(mg_ctx_error(ctx), "f64") && strstr(mg_ctx_error(ctx), "[2, 3]"), "message: %s",
              mg_ctx_error(ctx));
    cr_expect_eq(try_op(ctx, "normal_logpdf", (const mg_tensor *const *)&sc, 1), MG_ERR_SHAPE);
    cr_expect(strstr(mg_ctx_error(ctx), "[]"), "message: %s", mg_ctx_error(ctx));
    cr_expect_eq(try_op(ctx, "normal_logpdf", (const mg_tensor *const *)&i, 1), MG_ERR_DTYPE);
    mg_tensor_free(a);
    mg_tensor_free(b);
    mg_tensor_free(c);
    mg_tensor_free(sc);
    mg_tensor_free(i);
    mg_ctx_free(ctx);
}
