/* tests/testutil.h: small helpers shared by the Criterion suites: a context
 * per test, random tensors, and an assertion wrapper around the gradient
 * checker that prints its report on failure. */
#ifndef MG_TESTUTIL_H
#define MG_TESTUTIL_H

#include <criterion/criterion.h>
#include <math.h>
#include <mintgrad/mintgrad.h>
#include <stdio.h>

/* A fresh context; fails the test if it cannot be made. */
static inline mg_ctx *tu_ctx(void)
{
    mg_ctx *ctx = NULL;
    cr_assert_eq(mg_ctx_new(&ctx), MG_OK, "mg_ctx_new failed");
    return ctx;
}

/* A tensor of the given dtype and shape, U(lo, hi) from `seed`. */
static inline mg_tensor *tu_rand(mg_dtype dt, int rank, const int64_t *shape, double lo, double hi,
                                 uint64_t seed)
{
    mg_tensor *t = mg_tensor_new(dt, rank, shape);
    cr_assert_not_null(t);
    mg_rng r;
    mg_rng_seed(&r, seed);
    mg_tensor_rand_uniform(t, &r, lo, hi);
    return t;
}

/* Runs mg_gradcheck_op and fails the test with the report's message unless
 * every element passed. Returns the report for further assertions. */
static inline mg_gradcheck_report tu_gradcheck_op(mg_ctx *ctx, const char *op, const mg_tensor *const *in,
                                                  int n, const mg_attrs *attrs,
                                                  const mg_gradcheck_opts *opts)
{
    mg_gradcheck_report rep;
    mg_gradcheck_opts o = opts ? *opts : mg_gradcheck_defaults();
    mg_status s = mg_gradcheck_op(ctx, op, in, n, attrs, &o, &rep);
    cr_assert_eq(s, MG_OK, "gradcheck %s: %s (%s)", op, rep.message, mg_ctx_error(ctx));
    cr_assert_gt(rep.checked, 0, "gradcheck %s checked nothing", op);
    return rep;
}

/* Max |a - b| over two same-size tensors (read as doubles). */
static inline double tu_max_abs_diff(const mg_tensor *a, const mg_tensor *b)
{
    int64_t n = mg_tensor_numel(a);
    cr_assert_eq(n, mg_tensor_numel(b), "element counts differ");
    double m = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs(mg_tensor_get(a, i) - mg_tensor_get(b, i));
        if (d > m || isnan(d)) m = isnan(d) ? INFINITY : d;
    }
    return m;
}

#endif
