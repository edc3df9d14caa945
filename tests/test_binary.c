/* tests/test_binary.c: add, sub, mul, div with NumPy broadcasting against
 * double-precision references (same shapes, [3,1,5]+[4,1], [2,3,4]+[4],
 * scalars, rank 5, outer products), their gradients (summed over broadcast
 * dims) through the gradient checker and against references on large
 * tensors with two threads, and the shape and dtype errors. */
#include "testutil.h"

#include <omp.h>
#include <string.h>

/* ---- helpers (one node, forward / backward) ------------------------------------- */

/* Runs one node of `op` on copies of in[0..n) (forward only) and returns a
 * clone of its first output; fails the test on any failure. */
static mg_tensor *run_op(mg_ctx *ctx, const char *op, const mg_tensor *const *in, int n,
                         const mg_attrs *attrs)
{
    mg_tensor *out = NULL;
    tu_run_op(ctx, op, in, n, attrs, &out, 1);
    return out;
}

/* Forward and backward of one node with d(loss)/dy = seed, asking for the
 * gradients of the inputs in bitmask `which`; clones d(loss)/d(input i)
 * into grads[i] (NULL for the others). */
static void run_grad_of(mg_ctx *ctx, const char *op, const mg_tensor *const *in, int n,
                        const mg_tensor *seed, unsigned which, mg_tensor **grads)
{
    tu_run_grad(ctx, op, in, n, NULL, seed, which, grads);
}

static void run_grad(mg_ctx *ctx, const char *op, const mg_tensor *const *in, int n,
                     const mg_tensor *seed, mg_tensor **grads)
{
    run_grad_of(ctx, op, in, n, seed, (1u << n) - 1, grads);
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

/* Fails unless |got[i] - want[i]| <= tol * (1 + mag[i]) everywhere, where
 * mag[i] is the sum of the magnitudes of the terms that make want[i]. */
static void expect_near_mag(const mg_tensor *got, const double *want, const double *mag, double tol,
                            const char *what)
{
    int64_t n = mg_tensor_numel(got);
    for (int64_t i = 0; i < n; i++) {
        double g = mg_tensor_get(got, i);
        cr_assert(fabs(g - want[i]) <= tol * (1 + mag[i]), "%s: element %lld is %.17g, want %.17g",
                  what, (long long)i, g, want[i]);
    }
}

/* ---- references ------------------------------------------------------------------- */

static const char *const ops[4] = {"add", "sub", "mul", "div"};

static double bref(int op, double a, double b)
{
    return op == 0 ? a + b : op == 1 ? a - b : op == 2 ? a * b : a / b;
}

/* d(op)/da and d(op)/db. */
static double bref_da(int op, double a, double b)
{
    (void)a;
    return op == 0 ? 1 : op == 1 ? 1 : op == 2 ? b : 1 / b;
}

static double bref_db(int op, double a, double b)
{
    return op == 0 ? 1 : op == 1 ? -1 : op == 2 ? a : -a / (b * b);
}

/* The broadcast shape of a and b (assumed compatible). */
static int bshape(const mg_tensor *a, const mg_tensor *b, int64_t *shape)
{
    int r = a->rank > b->rank ? a->rank : b->rank;
    for (int d = 0; d < r; d++) {
        int da = d - (r - a->rank), db = d - (r - b->rank);
        int64_t sa = da >= 0 ? a->shape[da] : 1, sb = db >= 0 ? b->shape[db] : 1;
        shape[d] = sa == 1 ? sb : sa;
    }
    return r;
}

/* Flat index into t of the element out-index `flat` reads (t aligned at the
 * right into an output of rank r and shape `shape`). */
static int64_t bindex(const mg_tensor *t, int r, const int64_t *shape, int64_t flat)
{
    int64_t idx[MG_MAX_RANK];
    for (int d = r - 1; d >= 0; d--) {
        idx[d] = flat % shape[d];
        flat /= shape[d];
    }
    int64_t off = 0;
    for (int d = 0; d < t->rank; d++) {
        int od = d + r - t->rank;
        off = off * t->shape[d] + (t->shape[d] == 1 ? 0 : idx[od]);
    }
    return off;
}

typedef struct pair {
    int ra;
    int64_t sa[5];
    int rb;
    int64_t sb[5];
} pair;

static const pair pairs[] = {
    {3, {2, 3, 4}, 3, {2, 3, 4}},
    {3, {3, 1, 5}, 2, {4, 1}},
    {3, {2, 3, 4}, 1, {4}},
    {0, {0}, 2, {2, 3}},
    {2, {2, 3}, 0, {0}},
    {1, {7}, 1, {1}},
    {5, {2, 1, 3, 1, 5}, 3, {3, 4, 1}},
    {3, {1, 3, 1}, 3, {2, 1, 4}},
    {2, {5, 1}, 2, {1, 6}},
    {0, {0}, 0, {0}},
    {4, {2, 3, 4, 5}, 4, {1, 3, 1, 1}},
    {2, {4, 1}, 3, {3, 1, 5}},
};
#define N_PAIRS ((int)(sizeof pairs / sizeof pairs[0]))

/* Random a and b for pair p; b is kept away from 0 for div. */
static void make_pair(const pair *p, mg_dtype dt, uint64_t seed, mg_tensor **a, mg_tensor **b)
{
    *a = tu_rand(dt, p->ra, p->sa, -2, 2, seed);
    *b = tu_rand(dt, p->rb, p->sb, 0.5, 2, seed + 1);
    int64_t n = mg_tensor_numel(*b);
    for (int64_t i = 0; i < n; i += 2) mg_tensor_set(*b, i, -mg_tensor_get(*b, i));
}

TestSuite(binary);

/* ---- forward ---------------------------------------------------------------------- */

static void check_forward(int op, const pair *p, mg_dtype dt, uint64_t seed)
{
    mg_ctx *ctx = tu_ctx();
    mg_tensor *a, *b;
    make_pair(p, dt, seed, &a, &b);
    const mg_tensor *in[2] = {a, b};
    mg_tensor *y = run_op(ctx, ops[op], in, 2, NULL);
    int64_t shape[MG_MAX_RANK];
    int r = bshape(a, b, shape);
    cr_assert_eq(y->rank, r, "%s: rank %d, want %d", ops[op], y->rank, r);
    for (int d = 0; d < r; d++) cr_assert_eq(y->shape[d], shape[d], "%s: dim %d", ops[op], d);
    int64_t n = mg_tensor_numel(y);
    double *want = malloc(sizeof(double) * (n ? n : 1));
    for (int64_t i = 0; i < n; i++)
        want[i] = bref(op, mg_tensor_get(a, bindex(a, r, shape, i)), mg_tensor_get(b, bindex(b, r, shape, i)));
    char what[96], ba[48], bb[48];
    snprintf(what, sizeof what, "%s %s %s %s", ops[op], mg_dtype_name(dt),
             mg_shape_str(a->rank, a->shape, ba, sizeof ba), mg_shape_str(b->rank, b->shape, bb, sizeof bb));
    expect_near(y, want, dt == MG_F64 ? 1e-15 : 1e-7, what);
    free(want);
    mg_tensor_free(a);
    mg_tensor_free(b);
    mg_tensor_free(y);
    mg_ctx_free(ctx);
}

Test(binary, forward_broadcasting)
{
    for (int op = 0; op < 4; op++)
        for (int k = 0; k < N_PAIRS; k++) {
            check_forward(op, &pairs[k], MG_F32, 10 + 100 * op + 2 * k);
            check_forward(op, &pairs[k], MG_F64, 50 + 100 * op + 2 * k);
        }
}

/* ---- gradients ------------------------------------------------------------------ */

static void check_grad(int op, const pair *p, mg_dtype dt, uint64_t seed)
{
    mg_ctx *ctx = tu_ctx();
    mg_tensor *a, *b;
    make_pair(p, dt, seed, &a, &b);
    const mg_tensor *in[2] = {a, b};
    mg_gradcheck_opts o = mg_gradcheck_defaults();
    if (dt == MG_F64) {
        o.atol = 1e-8;
        o.rtol = 1e-6;
    }
    tu_gradcheck_op(ctx, ops[op], in, 2, NULL, &o);
    mg_tensor_free(a);
    mg_tensor_free(b);
    mg_ctx_free(ctx);
}

Test(binary, gradcheck_f64)
{
    for (int op = 0; op < 4; op++)
        for (int k = 0; k < N_PAIRS; k++) check_grad(op, &pairs[k], MG_F64, 1000 + 100 * op + 2 * k);
}

Test(binary, gradcheck_f32)
{
    for (int op = 0; op < 4; op++)
        for (int k = 0; k < N_PAIRS; k++) check_grad(op, &pairs[k], MG_F32, 2000 + 100 * op + 2 * k);
}

/* The same input on both sides: gradients of both inputs accumulate. */
Test(binary, gradcheck_same_value_twice)
{
    mg_ctx *ctx = tu_ctx();
    mg_graph *g;
    cr_assert_eq(mg_graph_new(ctx, &g), MG_OK);
    int64_t s[2] = {3, 4};
    mg_value x = mg_graph_input(g, "x", MG_F64, 2, s);
    mg_value y = mg_mul(g, x, x);
    cr_assert_eq(mg_graph_status(g), MG_OK, "%s", mg_ctx_error(ctx));
    mg_tensor *xd = tu_rand(MG_F64, 2, s, -1, 1, 7);
    mg_gradcheck_opts o = mg_gradcheck_defaults();
    mg_gradcheck_report rep;
    mg_status st = mg_gradcheck_graph(g, &y, 1, &x, 1, &x, (const mg_tensor *const *)&xd, 1, &o, &rep);
    cr_assert_eq(st, MG_OK, "%s (%s)", rep.message, mg_ctx_error(ctx));
    cr_assert_gt(rep.checked, 0);
    mg_tensor_free(xd);
    mg_graph_free(g);
    mg_ctx_free(ctx);
}

/* Large operands with two threads: forward and both gradients against
 * references, over the row, split-row and channel paths. */
static void check_parallel(int op, int ra, const int64_t *sa, int rb, const int64_t *sb, uint64_t seed)
{
    mg_ctx *ctx = tu_ctx();
    pair p = {.ra = ra, .rb = rb};
    memcpy(p.sa, sa, sizeof(int64_t) * ra);
    memcpy(p.sb, sb, sizeof(int64_t) * rb);
    mg_tensor *a, *b, *g[2];
    make_pair(&p, MG_F32, seed, &a, &b);
    const mg_tensor *in[2] = {a, b};
    mg_tensor *y = run_op(ctx, ops[op], in, 2, NULL);
    mg_tensor *seedt = tu_rand(MG_F32, y->rank, y->shape, -1, 1, seed + 7);
    run_grad(ctx, ops[op], in, 2, seedt, g);
    int64_t shape[MG_MAX_RANK], n = mg_tensor_numel(y);
    int r = bshape(a, b, shape);
    double *want = malloc(sizeof(double) * n);
    int64_t na = mg_tensor_numel(a), nb = mg_tensor_numel(b);
    double *ga = calloc(na, sizeof(double)), *gb = calloc(nb, sizeof(double));
    double *ma = calloc(na, sizeof(double)), *mb = calloc(nb, sizeof(double));
    for (int64_t i = 0; i < n; i++) {
        int64_t ia = bindex(a, r, shape, i), ib = bindex(b, r, shape, i);
        double av = mg_tensor_get(a, ia), bv = mg_tensor_get(b, ib), s = mg_tensor_get(seedt, i);
        want[i] = bref(op, av, bv);
        ga[ia] += s * bref_da(op, av, bv);
        gb[ib] += s * bref_db(op, av, bv);
        ma[ia] += fabs(s * bref_da(op, av, bv));
        mb[ib] += fabs(s * bref_db(op, av, bv));
    }
    expect_near(y, want, 1e-7, ops[op]);
    /* f32 sums of many terms that cancel: the error scales with sum |term| */
    expect_near_mag(g[0], ga, ma, 1e-6, "grad a");
    expect_near_mag(g[1], gb, mb, 1e-6, "grad b");
    free(want);
    free(ga);
    free(gb);
    free(ma);
    free(mb);
    mg_tensor_free(a);
    mg_tensor_free(b);
    mg_tensor_free(y);
    mg_tensor_free(seedt);
    mg_tensor_free(g[0]);
    mg_tensor_free(g[1]);
    mg_ctx_free(ctx);
}

Test(binary, parallel_large)
{
    omp_set_num_threads(2);
    for (int op = 0; op < 4; op++) {
        check_parallel(op, 3, (int64_t[]){64, 40, 50}, 2, (int64_t[]){40, 1}, 10 + op);
        check_parallel(op, 1, (int64_t[]){200003}, 0, (int64_t[]){0}, 20 + op);
        check_parallel(op, 2, (int64_t[]){3, 70001}, 2, (int64_t[]){3, 1}, 30 + op);
        check_parallel(op, 4, (int64_t[]){32, 16, 20, 20}, 4, (int64_t[]){1, 16, 1, 1}, 40 + op);
        check_parallel(op, 2, (int64_t[]){300, 257}, 2, (int64_t[]){300, 257}, 50 + op);
        check_parallel(op, 2, (int64_t[]){1, 301}, 2, (int64_t[]){257, 1}, 60 + op);
        check_parallel(op, 0, (int64_t[]){0}, 1, (int64_t[]){200003}, 70 + op);
        check_parallel(op, 2, (int64_t[]){3, 1}, 2, (int64_t[]){3, 70001}, 80 + op);
    }
}

/* Only one input takes a gradient (the other is a constant): the scratch
 * and pruning logic must still give the right gradient. */
Test(binary, gradient_of_one_input)
{
    mg_ctx *ctx = tu_ctx();
    const pair ps[3] = {pairs[1], pairs[2], pairs[11]};
    for (int op = 0; op < 4; op++)
        for (int k = 0; k < 3; k++)
            for (int which = 1; which <= 2; which++) {
                mg_tensor *a, *b, *g[2];
                make_pair(&ps[k], MG_F64, 3000 + k, &a, &b);
                const mg_tensor *in[2] = {a, b};
                int64_t shape[MG_MAX_RANK];
                int r = bshape(a, b, shape);
                mg_tensor *seedt = tu_rand(MG_F64, r, shape, -1, 1, 77);
                run_grad_of(ctx, ops[op], in, 2, seedt, (unsigned)which, g);
                const mg_tensor *t = which == 1 ? a : b;
                double *want = calloc(mg_tensor_numel(t), sizeof(double));
                for (int64_t i = 0; i < mg_tensor_numel(seedt); i++) {
                    int64_t ia = bindex(a, r, shape, i), ib = bindex(b, r, shape, i);
                    double av = mg_tensor_get(a, ia), bv = mg_tensor_get(b, ib), s = mg_tensor_get(seedt, i);
                    if (which == 1) want[ia] += s * bref_da(op, av, bv);
                    else want[ib] += s * bref_db(op, av, bv);
                }
                expect_near(g[which - 1], want, 1e-14, ops[op]);
                cr_assert_null(g[2 - which]);
                free(want);
                mg_tensor_free(g[which - 1]);
                mg_tensor_free(seedt);
                mg_tensor_free(a);
                mg_tensor_free(b);
            }
    mg_ctx_free(ctx);
}

/* ---- constructors and errors ------------------------------------------------------ */

Test(binary, constructors)
{
    mg_ctx *ctx = tu_ctx();
    mg_graph *g;
    cr_assert_eq(mg_graph_new(ctx, &g), MG_OK);
    int64_t s1[3] = {3, 1, 5}, s2[2] = {4, 1};
    mg_value a = mg_graph_input(g, "a", MG_F32, 3, s1), b = mg_graph_input(g, "b", MG_F32, 2, s2);
    mg_value vs[4] = {mg_add(g, a, b), mg_sub(g, a, b), mg_mul(g, a, b), mg_div(g, a, b)};
    cr_assert_eq(mg_graph_status(g), MG_OK, "%s", mg_ctx_error(ctx));
    for (int i = 0; i < 4; i++) {
        const mg_tensor *d = mg_graph_value_desc(g, vs[i]);
        cr_assert_eq(d->rank, 3);
        cr_expect(d->shape[0] == 3 && d->shape[1] == 4 && d->shape[2] == 5, "%s shape", ops[i]);
        cr_expect_str_eq(mg_graph_node_op(g, mg_graph_value_node(g, vs[i]))->name, ops[i]);
    }
    mg_graph_free(g);
    mg_ctx_free(ctx);
}

Test(binary, errors)
{
    mg_ctx *ctx = tu_ctx();
    int64_t s34[2] = {3, 4}, s5[1] = {5}, s23[2] = {2, 3}, s32[2] = {3, 2};
    mg_tensor *a = mg_tensor_new(MG_F32, 2, s34), *b = mg_tensor_new(MG_F32, 1, s5);
    const mg_tensor *in[2] = {a, b};
    for (int op = 0; op < 4; op++) {
        cr_expect_eq(try_op(ctx, ops[op], in, 2), MG_ERR_SHAPE, "%s", ops[op]);
        cr_expect(strstr(mg_ctx_error(ctx), "[3, 4]") && strstr(mg_ctx_error(ctx), "[5]"),
                  "message: %s", mg_ctx_error(ctx));
    }
    mg_tensor *c = mg_tensor_new(MG_F32, 2, s23), *d = mg_tensor_new(MG_F32, 2, s32);
    const mg_tensor *in2[2] = {c, d};
    cr_expect_eq(try_op(ctx, "add", in2, 2), MG_ERR_SHAPE);
    cr_expect(strstr(mg_ctx_error(ctx), "[2, 3]") && strstr(mg_ctx_error(ctx), "[3, 2]"),
              "message: %s", mg_ctx_error(ctx));
    mg_tensor *e = mg_tensor_new(MG_F64, 2, s34);
    const mg_tensor *in3[2] = {a, e};
    cr_expect_eq(try_op(ctx, "mul", in3, 2), MG_ERR_DTYPE);
    cr_expect(strstr(mg_ctx_error(ctx), "f64") && strstr(mg_ctx_error(ctx), "f32") &&
                  strstr(mg_ctx_error(ctx), "[3, 4]"),
              "message: %s", mg_ctx_error(ctx));
    mg_tensor *f = mg_tensor_new(MG_I32, 2, s34), *h = mg_tensor_new(MG_I32, 2, s34);
    const mg_tensor *in4[2] = {f, h};
    cr_expect_eq(try_op(ctx, "sub", in4, 2), MG_ERR_DTYPE);
    mg_tensor_free(a);
    mg_tensor_free(b);
    mg_tensor_free(c);
    mg_tensor_free(d);
    mg_tensor_free(e);
    mg_tensor_free(f);
    mg_tensor_free(h);
    mg_ctx_free(ctx);
}
