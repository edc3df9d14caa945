/* tests/test_reduce.c: sum and mean over axes (default all, negative axes,
 * keepdims) against double-precision references on ranks 0..5, their
 * gradients through the gradient checker, every kernel path on large inputs
 * with two threads (all axes, leading axes, bias-gradient axes, trailing
 * axes, few and many outputs), constructors and attribute errors. */
#include "testutil.h"

#include <omp.h>
#include <string.h>

/* ---- helpers (one node, forward / backward) ------------------------------------- */

/* Runs one node of `op` on a copy of x (forward only) and returns a clone
 * of its output; fails the test on any failure. */
static mg_tensor *run_op(mg_ctx *ctx, const char *op, const mg_tensor *x, const mg_attrs *attrs)
{
    mg_tensor *out = NULL;
    tu_run_op(ctx, op, &x, 1, attrs, &out, 1);
    return out;
}

/* Forward and backward with d(loss)/dy = seed; returns a clone of dx. */
static mg_tensor *run_grad(mg_ctx *ctx, const char *op, const mg_tensor *x, const mg_attrs *attrs,
                           const mg_tensor *seed)
{
    mg_tensor *dx = NULL;
    tu_run_grad(ctx, op, &x, 1, attrs, seed, 1u, &dx);
    return dx;
}

/* The status of adding one node of `op` on an input shaped like x. */
static mg_status try_op(mg_ctx *ctx, const char *op, const mg_tensor *x, const mg_attrs *attrs)
{
    return tu_try_op(ctx, op, &x, 1, attrs);
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

/* ---- cases and references ------------------------------------------------------------ */

typedef struct rcase {
    int rank;
    int64_t shape[5];
    int n_axes;             /* 0: attribute absent (all axes) */
    int64_t axes[5];
    int keepdims;
} rcase;

static const rcase cases[] = {
    {0, {0}, 0, {0}, 0},
    {1, {7}, 0, {0}, 0},
    {1, {7}, 1, {0}, 1},
    {1, {7}, 1, {-1}, 0},
    {2, {3, 5}, 1, {0}, 0},
    {2, {3, 5}, 1, {1}, 1},
    {2, {3, 5}, 2, {0, 1}, 0},
    {2, {3, 5}, 1, {-2}, 0},
    {3, {2, 3, 4}, 2, {0, 2}, 0},
    {3, {2, 3, 4}, 1, {1}, 1},
    {3, {2, 3, 4}, 0, {0}, 1},
    {4, {2, 3, 4, 5}, 3, {0, 2, 3}, 0},
    {4, {2, 3, 4, 5}, 3, {3, 0, 2}, 1},
    {5, {2, 3, 1, 4, 3}, 2, {1, 3}, 0},
    {5, {2, 3, 1, 4, 3}, 2, {0, -1}, 1},
    {5, {2, 3, 1, 4, 3}, 1, {2}, 0},
    {3, {4, 1, 3}, 1, {1}, 0},
};
#define N_CASES ((int)(sizeof cases / sizeof cases[0]))

static mg_attrs *case_attrs(const rcase *c)
{
    mg_attrs *a = mg_attrs_new();
    cr_assert_not_null(a);
    if (c->n_axes) cr_assert_eq(mg_attrs_set_ints(a, "axes", c->axes, c->n_axes), MG_OK);
    cr_assert_eq(mg_attrs_set_int(a, "keepdims", c->keepdims), MG_OK);
    return a;
}

/* red[d] for case c. */
static void case_red(const rcase *c, int *red)
{
    for (int d = 0; d < c->rank; d++) red[d] = c->n_axes == 0;
    for (int i = 0; i < c->n_axes; i++) red[(c->axes[i] + c->rank) % c->rank] = 1;
}

/* Flat output index of input element `flat`. */
static int64_t out_index(const rcase *c, const int *red, int64_t flat)
{
    int64_t idx[5], off = 0;
    for (int d = c->rank - 1; d >= 0; d--) {
        idx[d] = flat % c->shape[d];
        flat /= c->shape[d];
    }
    for (int d = 0; d < c->rank; d++)
        if (!red[d]) off = off * c->shape[d] + idx[d];
    return off;
}

/* Expected output shape into shape[]; returns its rank. */
static int case_out_shape(const rcase *c, const int *red, int64_t *shape)
{
    int r = 0;
    for (int d = 0; d < c->rank; d++)
        if (!red[d] || c->keepdims) shape[r++] = red[d] ? 1 : c->shape[d];
    return r;
}

/* Checks forward and backward (seeded) of sum or mean for case c. */
static void check_case(const rcase *c, int mean, mg_dtype dt, uint64_t seed, double tol)
{
    const char *op = mean ? "mean" : "sum";
    mg_ctx *ctx = tu_ctx();
    mg_tensor *x = tu_rand(dt, c->rank, c->shape, -1, 1, seed);
    mg_attrs *a = case_attrs(c);
    mg_tensor *y = run_op(ctx, op, x, a);
    int red[5], r;
    int64_t oshape[5], nx = mg_tensor_numel(x), ny = 1, cnt;
    case_red(c, red);
    r = case_out_shape(c, red, oshape);
    cr_assert_eq(y->rank, r, "%s: rank %d, want %d", op, y->rank, r);
    for (int d = 0; d < r; d++) cr_assert_eq(y->shape[d], oshape[d], "%s: dim %d", op, d);
    for (int d = 0; d < r; d++) ny *= oshape[d];
    cnt = nx / ny;
    double *want = calloc(ny, sizeof(double)), *wdx = malloc(sizeof(double) * nx);
    for (int64_t i = 0; i < nx; i++) want[out_index(c, red, i)] += mg_tensor_get(x, i);
    for (int64_t j = 0; mean && j < ny; j++) want[j] /= cnt;
    char what[64];
    snprintf(what, sizeof what, "%s %s case rank %d axes %d", op, mg_dtype_name(dt), c->rank, c->n_axes);
    expect_near(y, want, tol * sqrt((double)cnt), what);
    mg_tensor *sd = tu_rand(dt, y->rank, y->shape, -1, 1, seed + 1);
    mg_tensor *dx = run_grad(ctx, op, x, a, sd);
    for (int64_t i = 0; i < nx; i++) wdx[i] = mg_tensor_get(sd, out_index(c, red, i)) / (mean ? cnt : 1);
    expect_near(dx, wdx, tol, what);
    free(want);
    free(wdx);
    mg_attrs_free(a);
    mg_tensor_free(x);
    mg_tensor_free(y);
    mg_tensor_free(sd);
    mg_tensor_free(dx);
    mg_ctx_free(ctx);
}

TestSuite(reduce);

Test(reduce, forward_backward_cases)
{
    for (int k = 0; k < N_CASES; k++)
        for (int mean = 0; mean < 2; mean++) {
            check_case(&cases[k], mean, MG_F64, 10 + 4 * k + mean, 1e-15);
            check_case(&cases[k], mean, MG_F32, 200 + 4 * k + mean, 3e-7);
        }
}

static void check_grad(const rcase *c, const char *op, mg_dtype dt, uint64_t seed)
{
    mg_ctx *ctx = tu_ctx();
    mg_tensor *x = tu_rand(dt, c->rank, c->shape, -1, 1, seed);
    mg_attrs *a = case_attrs(c);
    mg_gradcheck_opts o = mg_gradcheck_defaults();
    if (dt == MG_F64) {
        o.atol = 1e-8;
        o.rtol = 1e-6;
    }
    tu_gradcheck_op(ctx, op, (const mg_tensor *const *)&x, 1, a, &o);
    mg_attrs_free(a);
    mg_tensor_free(x);
    mg_ctx_free(ctx);
}

Test(reduce, gradcheck)
{
    for (int k = 0; k < N_CASES; k++) {
        check_grad(&cases[k], "sum", MG_F64, 500 + k);
        check_grad(&cases[k], "mean", MG_F64, 600 + k);
        check_grad(&cases[k], "sum", MG_F32, 700 + k);
        check_grad(&cases[k], "mean", MG_F32, 800 + k);
    }
}

/* Large inputs with two threads, one per kernel path. */
Test(reduce, parallel_paths)
{
    omp_set_num_threads(2);
    static const rcase big[] = {
        {1, {100003}, 0, {0}, 0},                  /* everything: chunks across threads */
        {2, {4096, 37}, 1, {0}, 0},                /* leading axis, few columns: partial sums */
        {2, {64, 3000}, 1, {0}, 1},                /* leading axis, many columns: column blocks */
        {4, {32, 64, 28, 28}, 3, {0, 2, 3}, 0},    /* bias gradient: one output per channel */
        {2, {3, 50000}, 1, {1}, 0},                /* trailing axis, few outputs: split rows */
        {2, {200, 300}, 1, {-1}, 0},               /* trailing axis, many outputs */
        {3, {40, 50, 60}, 1, {1}, 0},              /* middle axis, many output rows */
        {4, {5, 40, 3, 300}, 2, {0, 2}, 1},        /* alternating, inner kept */
        {3, {2, 3, 40000}, 2, {0, 1}, 0},          /* leading axes collapse to one */
    };
    for (size_t k = 0; k < sizeof big / sizeof big[0]; k++) {
        check_case(&big[k], 0, MG_F32, 1000 + k, 3e-7);
        check_case(&big[k], 1, MG_F64, 2000 + k, 1e-15);
    }
}

/* ---- constructors and errors ------------------------------------------------------ */

Test(reduce, constructors)
{
    mg_ctx *ctx = tu_ctx();
    mg_graph *g;
    cr_assert_eq(mg_graph_new(ctx, &g), MG_OK);
    int64_t s[4] = {2, 3, 4, 5};
    mg_value x = mg_graph_input(g, "x", MG_F32, 4, s);
    mg_value a = mg_sum(g, x, (const int[]){0, 2, 3}, 3, 0);
    mg_value b = mg_mean(g, x, NULL, 0, 1);
    mg_value c = mg_sum(g, x, NULL, 0, 0);
    mg_value d = mg_mean(g, x, (const int[]){-1}, 1, 1);
    cr_assert_eq(mg_graph_status(g), MG_OK, "%s", mg_ctx_error(ctx));
    const mg_tensor *da = mg_graph_value_desc(g, a), *db = mg_graph_value_desc(g, b);
    const mg_tensor *dc = mg_graph_value_desc(g, c), *dd = mg_graph_value_desc(g, d);
    cr_expect(da->rank == 1 && da->shape[0] == 3);
    cr_expect(db->rank == 4 && db->shape[0] == 1 && db->shape[3] == 1);
    cr_expect_eq(dc->rank, 0);
    cr_expect(dd->rank == 4 && dd->shape[2] == 4 && dd->shape[3] == 1);
    mg_graph_free(g);
    mg_ctx_free(ctx);
}

/* Sums of a constant: exact values, mean of a scalar is itself. */
Test(reduce, exact_small)
{
    mg_ctx *ctx = tu_ctx();
    int64_t s[2] = {3, 4};
    mg_tensor *x = mg_tensor_new(MG_F32, 2, s);
    for (int i = 0; i < 12; i++) mg_tensor_set(x, i, i);
    mg_attrs *a = mg_attrs_new();
    mg_attrs_set_ints(a, "axes", (const int64_t[]){0}, 1);
    mg_tensor *y = run_op(ctx, "sum", x, a);
    for (int j = 0; j < 4; j++) cr_expect_eq(mg_tensor_get(y, j), 12.0 + 3 * j);
    mg_tensor_free(y);
    y = run_op(ctx, "mean", x, NULL);
    cr_expect_eq(y->rank, 0);
    cr_expect_eq(mg_tensor_get(y, 0), 5.5);
    mg_tensor_free(y);
    mg_attrs_free(a);
    mg_tensor_free(x);
    mg_ctx_free(ctx);
}

Test(reduce, errors)
{
    mg_ctx *ctx = tu_ctx();
    int64_t s[3] = {2, 3, 4};
    mg_tensor *x = mg_tensor_new(MG_F32, 3, s), *xi = mg_tensor_new(MG_I32, 3, s);
    mg_attrs *a = mg_attrs_new();
    const int64_t bad[][2] = {{3, 0}, {-4, 0}, {1, -2}};
    const int nbad[] = {1, 1, 2};
    for (int k = 0; k < 3; k++) {
        mg_attrs_set_ints(a, "axes", bad[k], nbad[k]);
        cr_expect_eq(try_op(ctx, k % 2 ? "mean" : "sum", x, a), MG_ERR_ATTR, "case %d", k);
        cr_expect(strstr(mg_ctx_error(ctx), "[2, 3, 4]"), "message: %s", mg_ctx_error(ctx));
    }
    mg_attrs_set_ints(a, "axes", (const int64_t[]){0}, 1);
    mg_attrs_set_int(a, "keepdims", 2);
    cr_expect_eq(try_op(ctx, "sum", x, a), MG_ERR_ATTR);
    cr_expect(strstr(mg_ctx_error(ctx), "keepdims"), "message: %s", mg_ctx_error(ctx));
    mg_attrs_set_int(a, "keepdims", 0);
    mg_attrs_set_floats(a, "axes", (const double[]){0.5}, 1);
    cr_expect_eq(try_op(ctx, "sum", x, a), MG_ERR_ATTR);
    cr_expect_eq(try_op(ctx, "sum", xi, NULL), MG_ERR_DTYPE);
    cr_expect(strstr(mg_ctx_error(ctx), "i32"), "message: %s", mg_ctx_error(ctx));
    mg_attrs_free(a);
    mg_tensor_free(x);
    mg_tensor_free(xi);
    mg_ctx_free(ctx);
}
