/* tests/test_unary.c: the elementwise unary ops (relu ... scale) against
 * double-precision references on several shapes and both dtypes, their
 * gradients through the gradient checker (f64 tight, f32 default), extreme
 * inputs (no overflow, no NaN), attribute defaults, constructors and errors. */
#include "testutil.h"

#include <omp.h>
#include <string.h>

/* ---- helpers (one node, forward / backward) ------------------------------------- */

/* Runs one node of `op` on copies of in[0..n) (forward only) and clones its
 * outputs into out[0..max). Returns the output count; fails the test when
 * building, compiling or running fails. */
static int run_op(mg_ctx *ctx, const char *op, const mg_tensor *const *in, int n,
                  const mg_attrs *attrs, mg_tensor **out, int max)
{
    return tu_run_op(ctx, op, in, n, attrs, out, max);
}

/* Forward and backward of a one-input node with d(loss)/dy = seed; returns
 * a clone of d(loss)/dx. */
static mg_tensor *run_grad1(mg_ctx *ctx, const char *op, const mg_tensor *x, const mg_attrs *attrs,
                            const mg_tensor *seed)
{
    mg_tensor *dx = NULL;
    tu_run_grad(ctx, op, &x, 1, attrs, seed, 1u, &dx);
    return dx;
}

/* The status of adding one node of `op` on inputs shaped like in[]. */
static mg_status try_op(mg_ctx *ctx, const char *op, const mg_tensor *const *in, int n,
                        const mg_attrs *attrs)
{
    return tu_try_op(ctx, op, in, n, attrs);
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

/* ---- the ops and their references ---------------------------------------------- */

typedef struct uop {
    const char *name;
    double lo, hi;          /* input range for tests */
    const char *k1;         /* attribute set by the tests, or NULL */
    double v1;
    const char *k2;
    double v2;
} uop;

static const uop uops[] = {
    {"relu", -3, 3, NULL, 0, NULL, 0},
    {"leaky_relu", -3, 3, "alpha", 0.2, NULL, 0},
    {"elu", -3, 3, "alpha", 1.5, NULL, 0},
    {"tanh", -3, 3, NULL, 0, NULL, 0},
    {"sigmoid", -4, 4, NULL, 0, NULL, 0},
    {"softplus", -4, 4, NULL, 0, NULL, 0},
    {"exp", -2, 2, NULL, 0, NULL, 0},
    {"log", 0.2, 3, NULL, 0, NULL, 0},
    {"abs", -3, 3, NULL, 0, NULL, 0},
    {"square", -3, 3, NULL, 0, NULL, 0},
    {"sqrt", 0.2, 3, NULL, 0, NULL, 0},
    {"scale", -3, 3, "scale", -1.5, "shift", 0.25},
};
#define N_UOPS ((int)(sizeof uops / sizeof uops[0]))

/* f(x) in double; a = alpha (or scale), b = shift. */
static double uref(const char *op, double x, double a, double b)
{
    if (!strcmp(op, "relu")) return x > 0 ? x : 0;
    if (!strcmp(op, "leaky_relu")) return x > 0 ? x : a * x;
    if (!strcmp(op, "elu")) return x > 0 ? x : a * (exp(x) - 1);
    if (!strcmp(op, "tanh")) return tanh(x);
    if (!strcmp(op, "sigmoid")) return 1 / (1 + exp(-x));
    if (!strcmp(op, "softplus")) return log1p(exp(x));
    if (!strcmp(op, "exp")) return exp(x);
    if (!strcmp(op, "log")) return log(x);
    if (!strcmp(op, "abs")) return fabs(x);
    if (!strcmp(op, "square")) return x * x;
    if (!strcmp(op, "sqrt")) return sqrt(x);
    if (!strcmp(op, "scale")) return a * x + b;
    cr_assert_fail("no reference for %s", op);
    return 0;
}

/* f'(x) in double (0 at the kinks). */
static double uref_d(const char *op, double x, double a, double b)
{
    (void)b;
    if (!strcmp(op, "relu")) return x > 0;
    if (!strcmp(op, "leaky_relu")) return x > 0 ? 1 : a;
    if (!strcmp(op, "elu")) return x > 0 ? 1 : a * exp(x);
    if (!strcmp(op, "tanh")) return 1 - tanh(x) * tanh(x);
    if (!strcmp(op, "sigmoid")) return exp(-x) / ((1 + exp(-x)) * (1 + exp(-x)));
    if (!strcmp(op, "softplus")) return 1 / (1 + exp(-x));
    if (!strcmp(op, "exp")) return exp(x);
    if (!strcmp(op, "log")) return 1 / x;
    if (!strcmp(op, "abs")) return x > 0 ? 1 : (x < 0 ? -1 : 0);
    if (!strcmp(op, "square")) return 2 * x;
    if (!strcmp(op, "sqrt")) return 0.5 / sqrt(x);
    if (!strcmp(op, "scale")) return a;
    cr_assert_fail("no derivative for %s", op);
    return 0;
}

static mg_attrs *uop_attrs(const uop *u)
{
    mg_attrs *a = mg_attrs_new();
    cr_assert_not_null(a);
    if (u->k1) cr_assert_eq(mg_attrs_set_float(a, u->k1, u->v1), MG_OK);
    if (u->k2) cr_assert_eq(mg_attrs_set_float(a, u->k2, u->v2), MG_OK);
    return a;
}

static const int ranks[] = {0, 1, 2, 3, 5};
static const int64_t shapes[][5] = {{0}, {7}, {3, 5}, {2, 3, 4}, {2, 1, 3, 1, 5}};

TestSuite(unary);

/* ---- forward --------------------------------------------------------------------- */

static void check_forward(const uop *u, mg_dtype dt, int si, uint64_t seed)
{
    mg_ctx *ctx = tu_ctx();
    mg_tensor *x = tu_rand(dt, ranks[si], shapes[si], u->lo, u->hi, seed), *y;
    mg_attrs *a = uop_attrs(u);
    run_op(ctx, u->name, (const mg_tensor *const *)&x, 1, a, &y, 1);
    cr_assert(mg_tensor_same_shape(x, y), "%s: output shape differs from input", u->name);
    int64_t n = mg_tensor_numel(x);
    double *want = malloc(sizeof(double) * n);
    for (int64_t i = 0; i < n; i++) want[i] = uref(u->name, mg_tensor_get(x, i), u->v1, u->v2);
    char what[64];
    snprintf(what, sizeof what, "%s %s rank %d", u->name, mg_dtype_name(dt), ranks[si]);
    expect_near(y, want, dt == MG_F64 ? 1e-13 : 2e-6, what);
    free(want);
    mg_attrs_free(a);
    mg_tensor_free(x);
    mg_tensor_free(y);
    mg_ctx_free(ctx);
}

Test(unary, forward_all_ops_shapes_dtypes)
{
    for (int k = 0; k < N_UOPS; k++)
        for (int si = 0; si < 5; si++) {
            check_forward(&uops[k], MG_F32, si, 100 + k * 10 + si);
            check_forward(&uops[k], MG_F64, si, 200 + k * 10 + si);
        }
}

/* Default attributes: leaky_relu 0.01, elu 1, scale identity. */
Test(unary, attribute_defaults)
{
    mg_ctx *ctx = tu_ctx();
    mg_tensor *x = mg_tensor_new1(MG_F64, 4), *y;
    const double xs[4] = {-2, -0.5, 0.5, 3};
    for (int i = 0; i < 4; i++) mg_tensor_set(x, i, xs[i]);
    const char *ops[3] = {"leaky_relu", "elu", "scale"};
    for (int k = 0; k < 3; k++) {
        run_op(ctx, ops[k], (const mg_tensor *const *)&x, 1, NULL, &y, 1);
        for (int i = 0; i < 4; i++) {
            double want = k == 0 ? uref("leaky_relu", xs[i], 0.01, 0)
                                 : k == 1 ? uref("elu", xs[i], 1, 0) : xs[i];
            cr_expect_float_eq(mg_tensor_get(y, i), want, 1e-14, "%s(%g)", ops[k], xs[i]);
        }
        mg_tensor_free(y);
    }
    mg_tensor_free(x);
    mg_ctx_free(ctx);
}

/* Large |x| must not overflow into inf or NaN, forward or backward. */
static void check_extremes(const char *op, mg_dtype dt)
{
    mg_ctx *ctx = tu_ctx();
    const double xs[6] = {-100, -30, -1e-3, 0, 30, 100};
    mg_tensor *x = mg_tensor_new1(dt, 6), *seed = mg_tensor_new1(dt, 6), *y;
    for (int i = 0; i < 6; i++) mg_tensor_set(x, i, xs[i]);
    mg_tensor_fill(seed, 1);
    run_op(ctx, op, (const mg_tensor *const *)&x, 1, NULL, &y, 1);
    mg_tensor *dx = run_grad1(ctx, op, x, NULL, seed);
    for (int i = 0; i < 6; i++) {
        double alpha = strcmp(op, "leaky_relu") ? 1 : 0.01;
        double want = uref(op, xs[i], alpha, 0), got = mg_tensor_get(y, i);
        cr_assert(isfinite(got) && isfinite(mg_tensor_get(dx, i)), "%s %s(%g): y %g dx %g", op,
                  mg_dtype_name(dt), xs[i], got, mg_tensor_get(dx, i));
        cr_assert(fabs(got - want) <= 1e-6 * (1 + fabs(want)) || fabs(got - want) < 1e-30,
                  "%s %s(%g) = %.9g, want %.9g", op, mg_dtype_name(dt), xs[i], got, want);
    }
    mg_tensor_free(x);
    mg_tensor_free(seed);
    mg_tensor_free(y);
    mg_tensor_free(dx);
    mg_ctx_free(ctx);
}

Test(unary, extremes_stay_finite)
{
    const char *ops[] = {"softplus", "sigmoid", "elu", "tanh", "relu", "leaky_relu", "abs"};
    for (int k = 0; k < 7; k++) {
        check_extremes(ops[k], MG_F32);
        check_extremes(ops[k], MG_F64);
    }
}

/* softplus(100) is exactly 100 and sigmoid's backward at -100 is ~0. */
Test(unary, softplus_large_exact)
{
    mg_ctx *ctx = tu_ctx();
    mg_tensor *x = mg_tensor_new1(MG_F32, 2), *y;
    mg_tensor_set(x, 0, 100);
    mg_tensor_set(x, 1, -100);
    run_op(ctx, "softplus", (const mg_tensor *const *)&x, 1, NULL, &y, 1);
    cr_expect_eq(mg_tensor_get(y, 0), 100.0);
    cr_expect(mg_tensor_get(y, 1) >= 0 && mg_tensor_get(y, 1) < 1e-40);
    mg_tensor_free(x);
    mg_tensor_free(y);
    mg_ctx_free(ctx);
}

/* A large input runs the parallel loops; results match element by element. */
Test(unary, parallel_matches_reference)
{
    omp_set_num_threads(2);
    mg_ctx *ctx = tu_ctx();
    int64_t shape[2] = {301, 257};
    for (int k = 0; k < N_UOPS; k++) {
        mg_tensor *x = tu_rand(MG_F32, 2, shape, uops[k].lo, uops[k].hi, 900 + k), *y;
        mg_tensor *seed = tu_rand(MG_F32, 2, shape, -1, 1, 950 + k);
        mg_attrs *a = uop_attrs(&uops[k]);
        run_op(ctx, uops[k].name, (const mg_tensor *const *)&x, 1, a, &y, 1);
        mg_tensor *dx = run_grad1(ctx, uops[k].name, x, a, seed);
        int64_t n = mg_tensor_numel(x);
        double *want = malloc(sizeof(double) * n);
        for (int64_t i = 0; i < n; i++) want[i] = uref(uops[k].name, mg_tensor_get(x, i), uops[k].v1, uops[k].v2);
        expect_near(y, want, 2e-6, uops[k].name);
        for (int64_t i = 0; i < n; i++)
            want[i] = uref_d(uops[k].name, mg_tensor_get(x, i), uops[k].v1, uops[k].v2) *
                      mg_tensor_get(seed, i);
        expect_near(dx, want, 1e-5, uops[k].name);
        free(want);
        mg_attrs_free(a);
        mg_tensor_free(x);
        mg_tensor_free(y);
        mg_tensor_free(seed);
        mg_tensor_free(dx);
    }
    mg_ctx_free(ctx);
}

/* ---- gradients ------------------------------------------------------------------ */

static void check_grad(const uop *u, mg_dtype dt, int si, uint64_t seed)
{
    mg_ctx *ctx = tu_ctx();
    mg_tensor *x = tu_rand(dt, ranks[si], shapes[si], u->lo, u->hi, seed);
    mg_attrs *a = uop_attrs(u);
    mg_gradcheck_opts o = mg_gradcheck_defaults();
    if (dt == MG_F64) {
        o.atol = 1e-8;
        o.rtol = 1e-6;
    }
    tu_gradcheck_op(ctx, u->name, (const mg_tensor *const *)&x, 1, a, &o);
    mg_attrs_free(a);
    mg_tensor_free(x);
    mg_ctx_free(ctx);
}

Test(unary, gradcheck_f64)
{
    for (int k = 0; k < N_UOPS; k++)
        for (int si = 0; si < 5; si++) check_grad(&uops[k], MG_F64, si, 300 + k * 10 + si);
}

Test(unary, gradcheck_f32)
{
    for (int k = 0; k < N_UOPS; k++)
        for (int si = 0; si < 5; si++) check_grad(&uops[k], MG_F32, si, 400 + k * 10 + si);
}

/* relu, abs and leaky_relu are flagged as kinked; the others are not. */
Test(unary, kink_flags)
{
    mg_ctx *ctx = tu_ctx();
    for (int k = 0; k < N_UOPS; k++) {
        const mg_op_def *d = mg_registry_find_op(mg_ctx_registry(ctx), uops[k].name);
        cr_assert_not_null(d, "%s not registered", uops[k].name);
        int kinked = !strcmp(uops[k].name, "relu") || !strcmp(uops[k].name, "abs") ||
                     !strcmp(uops[k].name, "leaky_relu");
        cr_expect_eq(!!(d->flags & MG_OP_KINKS), kinked, "%s kink flag", uops[k].name);
        cr_expect_not_null(d->backward, "%s has no backward", uops[k].name);
    }
    mg_ctx_free(ctx);
}

/* ---- constructors and errors ------------------------------------------------------ */

Test(unary, constructors)
{
    mg_ctx *ctx = tu_ctx();
    mg_graph *g;
    cr_assert_eq(mg_graph_new(ctx, &g), MG_OK);
    int64_t s[2] = {2, 3};
    mg_value x = mg_graph_input(g, "x", MG_F32, 2, s);
    mg_value vs[] = {mg_relu(g, x),    mg_leaky_relu(g, x, 0.1), mg_elu(g, x, 1), mg_tanh(g, x),
                     mg_sigmoid(g, x), mg_softplus(g, x),        mg_exp(g, x),    mg_log(g, x),
                     mg_abs(g, x),     mg_square(g, x),          mg_sqrt(g, x),   mg_scale(g, x, 2, 1)};
    cr_assert_eq(mg_graph_status(g), MG_OK, "%s", mg_ctx_error(ctx));
    for (size_t i = 0; i < sizeof vs / sizeof vs[0]; i++) {
        const mg_tensor *d = mg_graph_value_desc(g, vs[i]);
        cr_assert_not_null(d);
        cr_expect_eq(d->rank, 2);
        cr_expect_eq(d->shape[1], 3);
    }
    const mg_attrs *a = mg_graph_node_attrs(g, mg_graph_value_node(g, vs[11]));
    cr_expect_float_eq(mg_attrs_float(a, "scale", 0), 2.0, 1e-15);
    cr_expect_float_eq(mg_attrs_float(a, "shift", 0), 1.0, 1e-15);
    mg_graph_free(g);
    mg_ctx_free(ctx);
}

Test(unary, errors)
{
    mg_ctx *ctx = tu_ctx();
    int64_t s[2] = {2, 3};
    mg_tensor *xi = mg_tensor_new(MG_I32, 2, s), *xf = mg_tensor_new(MG_F32, 2, s);
    cr_expect_eq(try_op(ctx, "relu", (const mg_tensor *const *)&xi, 1, NULL), MG_ERR_DTYPE);
    cr_expect(strstr(mg_ctx_error(ctx), "i32"), "message: %s", mg_ctx_error(ctx));
    mg_attrs *a = mg_attrs_new();
    mg_attrs_set_str(a, "alpha", "big");
    cr_expect_eq(try_op(ctx, "leaky_relu", (const mg_tensor *const *)&xf, 1, a), MG_ERR_ATTR);
    cr_expect(strstr(mg_ctx_error(ctx), "alpha"), "message: %s", mg_ctx_error(ctx));
    mg_attrs_set_float(a, "alpha", INFINITY);
    cr_expect_eq(try_op(ctx, "elu", (const mg_tensor *const *)&xf, 1, a), MG_ERR_ATTR);
    cr_expect_neq(try_op(ctx, "tanh", (const mg_tensor *const *)&xf, 1, a), MG_OK,
                  "tanh accepted an alpha");
    mg_attrs_free(a);
    mg_tensor_free(xi);
    mg_tensor_free(xf);
    mg_ctx_free(ctx);
}
