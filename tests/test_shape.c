/* tests/test_shape.c: reshape, permute, slice, concat, split,
 * space_to_depth and depth_to_space against naive references, their
 * gradients through the gradient checker (split with several outputs), the
 * exact space_to_depth / depth_to_space round trip, large inputs with two
 * threads, constructors, and the shape and attribute errors. */
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

static mg_tensor *run1(mg_ctx *ctx, const char *op, const mg_tensor *x, const mg_attrs *attrs)
{
    mg_tensor *y = NULL;
    run_op(ctx, op, &x, 1, attrs, &y, 1);
    return y;
}

/* Forward and backward of a single-output node with d(loss)/dy = seed;
 * clones d(loss)/d(input i) into grads[i]. */
static void run_grad(mg_ctx *ctx, const char *op, const mg_tensor *const *in, int n,
                     const mg_attrs *attrs, const mg_tensor *seed, mg_tensor **grads)
{
    tu_run_grad(ctx, op, in, n, attrs, seed, (1u << n) - 1, grads);
}

/* The status of adding one node of `op` on inputs shaped like in[]. */
static mg_status try_op(mg_ctx *ctx, const char *op, const mg_tensor *const *in, int n,
                        const mg_attrs *attrs)
{
    return tu_try_op(ctx, op, in, n, attrs);
}

/* Fails unless got has exactly `rank` dims `shape`. */
static void expect_shape(const mg_tensor *got, int rank, const int64_t *shape, const char *what)
{
    char bg[64], bw[64];
    mg_shape_str(got->rank, got->shape, bg, sizeof bg);
    mg_shape_str(rank, shape, bw, sizeof bw);
    cr_assert_str_eq(bg, bw, "%s: shape %s, want %s", what, bg, bw);
}

/* Fails unless got[i] == want[i] exactly (data movement is exact). */
static void expect_exact(const mg_tensor *got, const double *want, const char *what)
{
    int64_t n = mg_tensor_numel(got);
    for (int64_t i = 0; i < n; i++)
        cr_assert_eq(mg_tensor_get(got, i), want[i], "%s: element %lld is %.9g, want %.9g", what,
                     (long long)i, mg_tensor_get(got, i), want[i]);
}

static mg_attrs *attrs_ints(const char *k, const int64_t *v, int n)
{
    mg_attrs *a = mg_attrs_new();
    cr_assert_not_null(a);
    cr_assert_eq(mg_attrs_set_ints(a, k, v, n), MG_OK);
    return a;
}

static mg_attrs *attrs_int(const char *k, int64_t v)
{
    mg_attrs *a = mg_attrs_new();
    cr_assert_not_null(a);
    cr_assert_eq(mg_attrs_set_int(a, k, v), MG_OK);
    return a;
}

/* Gradient check of one node in f64 (tight) and f32 (default). */
static void gradcheck_both(const char *op, int n, const int *ranks, const int64_t shapes[][5],
                           const mg_attrs *attrs, uint64_t seed)
{
    for (int f64 = 0; f64 < 2; f64++) {
        mg_ctx *ctx = tu_ctx();
        mg_tensor *t[4];
        for (int i = 0; i < n; i++)
            t[i] = tu_rand(f64 ? MG_F64 : MG_F32, ranks[i], shapes[i], -1, 1, seed + 10 * i + f64);
        mg_gradcheck_opts o = mg_gradcheck_defaults();
        if (f64) {
            o.atol = 1e-8;
            o.rtol = 1e-6;
        }
        tu_gradcheck_op(ctx, op, (const mg_tensor *const *)t, n, attrs, &o);
        for (int i = 0; i < n; i++) mg_tensor_free(t[i]);
        mg_ctx_free(ctx);
    }
}

/* Multi-index of flat index i in shape. */
static void unravel(int64_t i, int rank, const int64_t *shape, int64_t *idx)
{
    for (int d = rank - 1; d >= 0; d--) {
        idx[d] = i % shape[d];
        i /= shape[d];
    }
}

static int64_t ravel(int rank, const int64_t *shape, const int64_t *idx)
{
    int64_t off = 0;
    for (int d = 0; d < rank; d++) off = off * shape[d] + idx[d];
    return off;
}

TestSuite(shape);

/* ---- reshape ---------------------------------------------------------------------- */

Test(shape, reshape_forward_and_grad)
{
    mg_ctx *ctx = tu_ctx();
    struct { int r; int64_t s[5]; int tr; int64_t t[5]; int er; int64_t e[5]; } cs[] = {
        {3, {2, 3, 4}, 2, {4, -1}, 2, {4, 6}},
        {1, {6}, 4, {1, 2, 3, 1}, 4, {1, 2, 3, 1}},
        {0, {0}, 1, {-1}, 1, {1}},
        {5, {2, 1, 3, 1, 5}, 2, {-1, 5}, 2, {6, 5}},
        {2, {3, 5}, 3, {5, 1, 3}, 3, {5, 1, 3}},
    };
    for (size_t k = 0; k < sizeof cs / sizeof cs[0]; k++) {
        for (int f64 = 0; f64 < 2; f64++) {
            mg_tensor *x = tu_rand(f64 ? MG_F64 : MG_F32, cs[k].r, cs[k].s, -1, 1, k);
            mg_attrs *a = attrs_ints("shape", cs[k].t, cs[k].tr);
            mg_tensor *y = run1(ctx, "reshape", x, a);
            expect_shape(y, cs[k].er, cs[k].e, "reshape");
            cr_assert_eq(memcmp(x->data, y->data, mg_tensor_nbytes(x)), 0, "reshape changed the data");
            mg_tensor_free(y);
            mg_tensor_free(x);
            mg_attrs_free(a);
        }
        mg_attrs *a = attrs_ints("shape", cs[k].t, cs[k].tr);
        gradcheck_both("reshape", 1, &cs[k].r, (const int64_t(*)[5]) & cs[k].s, a, 100 + k);
        mg_attrs_free(a);
    }
    mg_ctx_free(ctx);
}

Test(shape, reshape_errors)
{
    mg_ctx *ctx = tu_ctx();
    int64_t s[2] = {2, 3};
    mg_tensor *x = mg_tensor_new(MG_F32, 2, s);
    struct { int n; int64_t t[3]; mg_status want; const char *needle; } cs[] = {
        {2, {4, 2}, MG_ERR_SHAPE, "[4, 2]"},
        {2, {4, -1}, MG_ERR_SHAPE, "[4, -1]"},
        {2, {-1, -1}, MG_ERR_ATTR, "-1"},
        {2, {-2, 3}, MG_ERR_ATTR, "[-2, 3]"},
        {3, {0, -1, 2}, MG_ERR_SHAPE, "[0, -1, 2]"},
    };
    for (size_t k = 0; k < sizeof cs / sizeof cs[0]; k++) {
        mg_attrs *a = attrs_ints("shape", cs[k].t, cs[k].n);
        cr_expect_eq(try_op(ctx, "reshape", (const mg_tensor *const *)&x, 1, a), cs[k].want, "case %zu", k);
        cr_expect(strstr(mg_ctx_error(ctx), cs[k].needle) && strstr(mg_ctx_error(ctx), "[2, 3]"),
                  "message: %s", mg_ctx_error(ctx));
        mg_attrs_free(a);
    }
    cr_expect_eq(try_op(ctx, "reshape", (const mg_tensor *const *)&x, 1, NULL), MG_ERR_ATTR);
    mg_tensor_free(x);
    mg_ctx_free(ctx);
}

/* ---- permute ---------------------------------------------------------------------- */

static void check_permute(mg_ctx *ctx, mg_dtype dt, int r, const int64_t *s, const int64_t *perm, uint64_t seed)
{
    mg_tensor *x = tu_rand(dt, r, s, -1, 1, seed);
    mg_attrs *a = attrs_ints("perm", perm, r);
    mg_tensor *y = run1(ctx, "permute", x, a);
    int64_t want_shape[MG_MAX_RANK], n = mg_tensor_numel(x), idx[MG_MAX_RANK], xi[MG_MAX_RANK];
    for (int d = 0; d < r; d++) want_shape[d] = s[(perm[d] + r) % r];
    expect_shape(y, r, want_shape, "permute");
    double *want = malloc(sizeof(double) * n);
    for (int64_t i = 0; i < n; i++) {
        unravel(i, r, want_shape, idx);
        for (int d = 0; d < r; d++) xi[(perm[d] + r) % r] = idx[d];
        want[i] = mg_tensor_get(x, ravel(r, s, xi));
    }
    expect_exact(y, want, "permute");
    free(want);
    mg_attrs_free(a);
    mg_tensor_free(x);
    mg_tensor_free(y);
}

static const struct { int r; int64_t s[5]; int64_t p[5]; } perms[] = {
    {2, {3, 5}, {1, 0}},
    {3, {2, 3, 4}, {2, 0, 1}},
    {4, {2, 3, 4, 5}, {0, 2, 3, 1}},
    {5, {2, 3, 1, 4, 3}, {4, 1, 3, 0, 2}},
    {2, {4, 7}, {-1, 0}},
    {3, {3, 1, 5}, {0, 1, 2}},
    {1, {9}, {0}},
};

Test(shape, permute_forward_and_grad)
{
    mg_ctx *ctx = tu_ctx();
    for (size_t k = 0; k < sizeof perms / sizeof perms[0]; k++) {
        check_permute(ctx, MG_F32, perms[k].r, perms[k].s, perms[k].p, k);
        check_permute(ctx, MG_F64, perms[k].r, perms[k].s, perms[k].p, 50 + k);
        mg_attrs *a = attrs_ints("perm", perms[k].p, perms[k].r);
        gradcheck_both("permute", 1, &perms[k].r, (const int64_t(*)[5]) & perms[k].s, a, 200 + k);
        mg_attrs_free(a);
    }
    mg_ctx_free(ctx);
}

Test(shape, permute_errors)
{
    mg_ctx *ctx = tu_ctx();
    int64_t s[3] = {2, 3, 4};
    mg_tensor *x = mg_tensor_new(MG_F32, 3, s);
    struct { int n; int64_t p[4]; } cs[] = {{2, {1, 0}}, {3, {0, 1, 1}}, {3, {0, 1, 3}}, {4, {0, 1, 2, 3}}};
    for (size_t k = 0; k < sizeof cs / sizeof cs[0]; k++) {
        mg_attrs *a = attrs_ints("perm", cs[k].p, cs[k].n);
        cr_expect_eq(try_op(ctx, "permute", (const mg_tensor *const *)&x, 1, a), MG_ERR_ATTR, "case %zu", k);
        cr_expect(strstr(mg_ctx_error(ctx), "[2, 3, 4]") && strstr(mg_ctx_error(ctx), "perm"),
                  "message: %s", mg_ctx_error(ctx));
        mg_attrs_free(a);
    }
    mg_tensor_free(x);
    mg_ctx_free(ctx);
}

/* ---- slice ------------------------------------------------------------------------ */

static mg_attrs *slice_attrs(int axis, int64_t start, int64_t end, int has_end)
{
    mg_attrs *a = attrs_int("axis", axis);
    cr_assert_eq(mg_attrs_set_int(a, "start", start), MG_OK);
    if (has_end) cr_assert_eq(mg_attrs_set_int(a, "end", end), MG_OK);
    return a;
}

static const struct { int r; int64_t s[5]; int axis; int64_t start, end; int has_end; int64_t lo, hi; } slices[] = {
    {1, {5}, 0, 1, 3, 1, 1, 3},
    {2, {4, 6}, 1, -4, -1, 1, 2, 5},
    {2, {4, 6}, -1, -100, 100, 1, 0, 6},
    {3, {2, 3, 4}, 1, 2, 0, 0, 2, 3},
    {4, {2, 3, 4, 5}, 0, 1, 2, 1, 1, 2},
    {5, {2, 3, 1, 4, 3}, 3, 1, -1, 1, 1, 3},
};

Test(shape, slice_forward_and_grad)
{
    mg_ctx *ctx = tu_ctx();
    for (size_t k = 0; k < sizeof slices / sizeof slices[0]; k++) {
        int r = slices[k].r, ax = (slices[k].axis + r) % r;
        mg_attrs *a = slice_attrs(slices[k].axis, slices[k].start, slices[k].end, slices[k].has_end);
        mg_tensor *x = tu_rand(MG_F64, r, slices[k].s, -1, 1, k);
        mg_tensor *y = run1(ctx, "slice", x, a);
        int64_t ws[MG_MAX_RANK], idx[MG_MAX_RANK];
        memcpy(ws, slices[k].s, sizeof(int64_t) * r);
        ws[ax] = slices[k].hi - slices[k].lo;
        expect_shape(y, r, ws, "slice");
        int64_t n = mg_tensor_numel(y);
        double *want = malloc(sizeof(double) * n);
        for (int64_t i = 0; i < n; i++) {
            unravel(i, r, ws, idx);
            idx[ax] += slices[k].lo;
            want[i] = mg_tensor_get(x, ravel(r, slices[k].s, idx));
        }
        expect_exact(y, want, "slice");
        free(want);
        mg_tensor_free(x);
        mg_tensor_free(y);
        gradcheck_both("slice", 1, &slices[k].r, (const int64_t(*)[5]) & slices[k].s, a, 300 + k);
        mg_attrs_free(a);
    }
    mg_ctx_free(ctx);
}

Test(shape, slice_errors)
{
    mg_ctx *ctx = tu_ctx();
    int64_t s[2] = {4, 5};
    mg_tensor *x = mg_tensor_new(MG_F32, 2, s);
    mg_attrs *a = slice_attrs(1, 10, 20, 1);
    cr_expect_eq(try_op(ctx, "slice", (const mg_tensor *const *)&x, 1, a), MG_ERR_SHAPE);
    cr_expect(strstr(mg_ctx_error(ctx), "[4, 5]") && strstr(mg_ctx_error(ctx), "empty"), "message: %s",
              mg_ctx_error(ctx));
    mg_attrs_free(a);
    a = slice_attrs(0, 3, 2, 1);
    cr_expect_eq(try_op(ctx, "slice", (const mg_tensor *const *)&x, 1, a), MG_ERR_SHAPE);
    mg_attrs_free(a);
    a = slice_attrs(2, 0, 1, 1);
    cr_expect_eq(try_op(ctx, "slice", (const mg_tensor *const *)&x, 1, a), MG_ERR_ATTR);
    cr_expect(strstr(mg_ctx_error(ctx), "[4, 5]") && strstr(mg_ctx_error(ctx), "axis 2"), "message: %s",
              mg_ctx_error(ctx));
    mg_attrs_free(a);
    mg_tensor_free(x);
    mg_ctx_free(ctx);
}

/* ---- concat and split -------------------------------------------------------------- */

/* Expected concat of xs[0..n) along axis, element by element. */
static double *concat_ref(const mg_tensor *const *xs, int n, int axis, int64_t *oshape)
{
    int r = xs[0]->rank;
    memcpy(oshape, xs[0]->shape, sizeof(int64_t) * r);
    for (int i = 1; i < n; i++) oshape[axis] += xs[i]->shape[axis];
    int64_t total = 1, idx[MG_MAX_RANK];
    for (int d = 0; d < r; d++) total *= oshape[d];
    double *want = malloc(sizeof(double) * total);
    for (int64_t j = 0; j < total; j++) {
        unravel(j, r, oshape, idx);
        int i = 0;
        while (idx[axis] >= xs[i]->shape[axis]) idx[axis] -= xs[i++]->shape[axis];
        want[j] = mg_tensor_get(xs[i], ravel(r, xs[i]->shape, idx));
    }
    return want;
}

static const struct { int n, axis, r; int64_t s[3][5]; } concats[] = {
    {1, 0, 2, {{2, 3}}},
    {2, 1, 2, {{2, 3}, {2, 5}}},
    {3, 0, 3, {{1, 3, 4}, {2, 3, 4}, {3, 3, 4}}},
    {2, -1, 3, {{2, 3, 4}, {2, 3, 1}}},
    {2, 2, 5, {{2, 1, 3, 2, 2}, {2, 1, 1, 2, 2}}},
};

Test(shape, concat_forward_and_grad)
{
    mg_ctx *ctx = tu_ctx();
    for (size_t k = 0; k < sizeof concats / sizeof concats[0]; k++) {
        int n = concats[k].n, r = concats[k].r, ax = (concats[k].axis + r) % r;
        mg_tensor *xs[3], *y;
        int ranks[3] = {r, r, r};
        for (int i = 0; i < n; i++) xs[i] = tu_rand(MG_F32, r, concats[k].s[i], -1, 1, 10 * k + i);
        mg_attrs *a = attrs_int("axis", concats[k].axis);
        run_op(ctx, "concat", (const mg_tensor *const *)xs, n, a, &y, 1);
        int64_t os[MG_MAX_RANK];
        double *want = concat_ref((const mg_tensor *const *)xs, n, ax, os);
        expect_shape(y, r, os, "concat");
        expect_exact(y, want, "concat");
        free(want);
        mg_tensor_free(y);
        for (int i = 0; i < n; i++) mg_tensor_free(xs[i]);
        gradcheck_both("concat", n, ranks, concats[k].s, a, 400 + 10 * k);
        mg_attrs_free(a);
    }
    mg_ctx_free(ctx);
}

Test(shape, concat_errors)
{
    mg_ctx *ctx = tu_ctx();
    mg_tensor *a = mg_tensor_new2(MG_F32, 2, 3), *b = mg_tensor_new2(MG_F32, 3, 3);
    mg_tensor *c = mg_tensor_new1(MG_F32, 3), *d = mg_tensor_new2(MG_F64, 2, 3);
    mg_attrs *at = attrs_int("axis", 1);
    const mg_tensor *ab[2] = {a, b}, *ac[2] = {a, c}, *ad[2] = {a, d};
    cr_expect_eq(try_op(ctx, "concat", ab, 2, at), MG_ERR_SHAPE);
    cr_expect(strstr(mg_ctx_error(ctx), "[2, 3]") && strstr(mg_ctx_error(ctx), "[3, 3]"), "message: %s",
              mg_ctx_error(ctx));
    cr_expect_eq(try_op(ctx, "concat", ac, 2, at), MG_ERR_SHAPE);
    cr_expect(strstr(mg_ctx_error(ctx), "[3]"), "message: %s", mg_ctx_error(ctx));
    cr_expect_eq(try_op(ctx, "concat", ad, 2, at), MG_ERR_DTYPE);
    cr_expect(strstr(mg_ctx_error(ctx), "f64") && strstr(mg_ctx_error(ctx), "[2, 3]"), "message: %s",
              mg_ctx_error(ctx));
    mg_attrs_set_int(at, "axis", 2);
    cr_expect_eq(try_op(ctx, "concat", ab, 2, at), MG_ERR_ATTR);
    mg_attrs_free(at);
    mg_tensor_free(a);
    mg_tensor_free(b);
    mg_tensor_free(c);
    mg_tensor_free(d);
    mg_ctx_free(ctx);
}

static mg_attrs *split_attrs(int axis, const int64_t *sizes, int n)
{
    mg_attrs *a = attrs_ints("sizes", sizes, n);
    cr_assert_eq(mg_attrs_set_int(a, "axis", axis), MG_OK);
    return a;
}

static const struct { int r; int64_t s[5]; int axis, n; int64_t sizes[4]; } splits[] = {
    {3, {2, 7, 3}, 1, 3, {2, 4, 1}},
    {1, {6}, 0, 1, {6}},
    {2, {4, 5}, -1, 2, {1, 4}},
    {4, {3, 2, 2, 2}, 0, 3, {1, 1, 1}},
};

Test(shape, split_forward_and_grad)
{
    mg_ctx *ctx = tu_ctx();
    for (size_t k = 0; k < sizeof splits / sizeof splits[0]; k++) {
        int r = splits[k].r, ax = (splits[k].axis + r) % r, n = splits[k].n;
        mg_tensor *x = tu_rand(MG_F64, r, splits[k].s, -1, 1, k), *ys[4];
        mg_attrs *a = split_attrs(splits[k].axis, splits[k].sizes, n);
        cr_assert_eq(run_op(ctx, "split", (const mg_tensor *const *)&x, 1, a, ys, 4), n);
        /* concatenating the parts back gives x */
        int64_t os[MG_MAX_RANK];
        double *joined = concat_ref((const mg_tensor *const *)ys, n, ax, os);
        expect_shape(x, r, os, "split parts joined");
        double *want = malloc(sizeof(double) * mg_tensor_numel(x));
        for (int64_t i = 0; i < mg_tensor_numel(x); i++) want[i] = joined[i];
        for (int i = 0; i < n; i++) {
            cr_expect_eq(ys[i]->shape[ax], splits[k].sizes[i], "part %d size", i);
            mg_tensor_free(ys[i]);
        }
        expect_exact(x, want, "split");
        free(want);
        free(joined);
        mg_tensor_free(x);
        gradcheck_both("split", 1, &splits[k].r, (const int64_t(*)[5]) & splits[k].s, a, 500 + k);
        mg_attrs_free(a);
    }
    mg_ctx_free(ctx);
}

Test(shape, split_errors)
{
    mg_ctx *ctx = tu_ctx();
    int64_t s[2] = {4, 5};
    mg_tensor *x = mg_tensor_new(MG_F32, 2, s);
    const int64_t bad[][3] = {{2, 2, 2}, {5, 0, 0}, {6, -1, 0}};
    const int nb[] = {3, 2, 2};
    for (int k = 0; k < 3; k++) {
        mg_attrs *a = split_attrs(1, bad[k], nb[k]);
        cr_expect_eq(try_op(ctx, "split", (const mg_tensor *const *)&x, 1, a), MG_ERR_SHAPE, "case %d", k);
        cr_expect(strstr(mg_ctx_error(ctx), "[4, 5]"), "message: %s", mg_ctx_error(ctx));
        mg_attrs_free(a);
    }
    mg_attrs *a = attrs_int("axis", 0);
    cr_expect_eq(try_op(ctx, "split", (const mg_tensor *const *)&x, 1, a), MG_ERR_ATTR);
    mg_attrs_free(a);
    mg_tensor_free(x);
    mg_ctx_free(ctx);
}

/* ---- space_to_depth and depth_to_space --------------------------------------------- */

/* deep[n, dy*f*C + dx*C + c, i, j] = big[n, c, f*i+dy, f*j+dx], checked for
 * every element of deep. */
static void expect_depth_map(const mg_tensor *big, const mg_tensor *deep, int64_t f)
{
    const int64_t N = big->shape[0], C = big->shape[1], H = big->shape[2], W = big->shape[3];
    int64_t ds[4] = {N, C * f * f, H / f, W / f};
    expect_shape(deep, 4, ds, "depth shape");
    for (int64_t n = 0; n < N; n++)
        for (int64_t c = 0; c < C; c++)
            for (int64_t dy = 0; dy < f; dy++)
                for (int64_t dx = 0; dx < f; dx++)
                    for (int64_t i = 0; i < H / f; i++)
                        for (int64_t j = 0; j < W / f; j++) {
                            int64_t di[4] = {n, dy * f * C + dx * C + c, i, j};
                            int64_t bi[4] = {n, c, f * i + dy, f * j + dx};
                            double dv = mg_tensor_get(deep, ravel(4, ds, di));
                            double bv = mg_tensor_get(big, ravel(4, big->shape, bi));
                            cr_assert_eq(dv, bv, "deep[%lld,%lld,%lld,%lld] = %g, want %g", (long long)n,
                                         (long long)di[1], (long long)i, (long long)j, dv, bv);
                        }
}

static const struct { int64_t s[5]; int64_t f; } depths[] = {
    {{2, 3, 4, 6}, 2}, {{1, 2, 6, 3}, 3}, {{2, 1, 2, 2}, 2}, {{1, 2, 3, 5}, 1}, {{1, 1, 8, 4}, 4},
};

Test(shape, depth_forward_roundtrip_and_grad)
{
    mg_ctx *ctx = tu_ctx();
    int four = 4;
    for (size_t k = 0; k < sizeof depths / sizeof depths[0]; k++) {
        for (int f64 = 0; f64 < 2; f64++) {
            mg_tensor *x = tu_rand(f64 ? MG_F64 : MG_F32, 4, depths[k].s, -1, 1, k + 10 * f64);
            mg_attrs *a = attrs_int("factor", depths[k].f);
            mg_tensor *deep = run1(ctx, "space_to_depth", x, a);
            expect_depth_map(x, deep, depths[k].f);
            mg_tensor *back = run1(ctx, "depth_to_space", deep, a);
            expect_shape(back, 4, x->shape, "round trip");
            cr_assert_eq(memcmp(back->data, x->data, mg_tensor_nbytes(x)), 0, "round trip not exact");
            mg_tensor_free(back);
            mg_tensor_free(deep);
            mg_tensor_free(x);
            mg_attrs_free(a);
        }
        mg_attrs *a = attrs_int("factor", depths[k].f);
        gradcheck_both("space_to_depth", 1, &four, (const int64_t(*)[5]) & depths[k].s, a, 600 + k);
        const int64_t *s = depths[k].s, f = depths[k].f;
        int64_t ds[1][5] = {{s[0], s[1] * f * f, s[2] / f, s[3] / f}};
        gradcheck_both("depth_to_space", 1, &four, ds, a, 700 + k);
        mg_attrs_free(a);
    }
    mg_ctx_free(ctx);
}

/* depth_to_space first, then space_to_depth: also the identity. */
Test(shape, depth_roundtrip_constructors)
{
    mg_ctx *ctx = tu_ctx();
    mg_graph *g;
    cr_assert_eq(mg_graph_new(ctx, &g), MG_OK);
    int64_t s[4] = {2, 8, 3, 5};
    mg_value x = mg_graph_input(g, "x", MG_F32, 4, s);
    mg_value big = mg_depth_to_space(g, x, 2);
    mg_value y = mg_space_to_depth(g, big, 2);
    cr_assert_eq(mg_graph_status(g), MG_OK, "%s", mg_ctx_error(ctx));
    const mg_tensor *bd = mg_graph_value_desc(g, big);
    int64_t bs[4] = {2, 2, 6, 10};
    expect_shape(bd, 4, bs, "depth_to_space");
    mg_exec *e;
    mg_compile_opts o = {.struct_size = sizeof o, .outputs = &y, .n_outputs = 1};
    cr_assert_eq(mg_graph_compile(g, &o, &e), MG_OK, "%s", mg_ctx_error(ctx));
    mg_tensor *xd = tu_rand(MG_F32, 4, s, -1, 1, 3);
    cr_assert_eq(mg_exec_set_input(e, "x", xd), MG_OK);
    cr_assert_eq(mg_exec_forward(e), MG_OK);
    cr_assert_eq(memcmp(mg_exec_tensor(e, y)->data, xd->data, mg_tensor_nbytes(xd)), 0);
    mg_tensor_free(xd);
    mg_exec_free(e);
    mg_graph_free(g);
    mg_ctx_free(ctx);
}

Test(shape, depth_errors)
{
    mg_ctx *ctx = tu_ctx();
    int64_t odd[4] = {1, 3, 5, 4}, oddw[4] = {1, 3, 4, 7}, r3[3] = {3, 4, 4}, c3[4] = {1, 3, 2, 2};
    mg_tensor *a = mg_tensor_new(MG_F32, 4, odd), *b = mg_tensor_new(MG_F32, 4, oddw);
    mg_tensor *c = mg_tensor_new(MG_F32, 3, r3), *d = mg_tensor_new(MG_F32, 4, c3);
    mg_attrs *f2 = attrs_int("factor", 2);
    cr_expect_eq(try_op(ctx, "space_to_depth", (const mg_tensor *const *)&a, 1, f2), MG_ERR_SHAPE);
    cr_expect(strstr(mg_ctx_error(ctx), "[1, 3, 5, 4]"), "message: %s", mg_ctx_error(ctx));
    cr_expect_eq(try_op(ctx, "space_to_depth", (const mg_tensor *const *)&b, 1, f2), MG_ERR_SHAPE);
    cr_expect(strstr(mg_ctx_error(ctx), "[1, 3, 4, 7]"), "message: %s", mg_ctx_error(ctx));
    cr_expect_eq(try_op(ctx, "space_to_depth", (const mg_tensor *const *)&c, 1, f2), MG_ERR_SHAPE);
    cr_expect(strstr(mg_ctx_error(ctx), "[3, 4, 4]"), "message: %s", mg_ctx_error(ctx));
    cr_expect_eq(try_op(ctx, "depth_to_space", (const mg_tensor *const *)&d, 1, f2), MG_ERR_SHAPE);
    cr_expect(strstr(mg_ctx_error(ctx), "[1, 3, 2, 2]"), "message: %s", mg_ctx_error(ctx));
    mg_attrs *f0 = attrs_int("factor", 0);
    cr_expect_eq(try_op(ctx, "space_to_depth", (const mg_tensor *const *)&d, 1, f0), MG_ERR_ATTR);
    mg_attrs_free(f0);
    mg_attrs_free(f2);
    mg_tensor_free(a);
    mg_tensor_free(b);
    mg_tensor_free(c);
    mg_tensor_free(d);
    mg_ctx_free(ctx);
}

/* ---- large inputs with two threads ---------------------------------------------------- */

Test(shape, parallel_large)
{
    omp_set_num_threads(2);
    mg_ctx *ctx = tu_ctx();
    check_permute(ctx, MG_F32, 3, (const int64_t[]){64, 32, 33}, (const int64_t[]){2, 0, 1}, 1);
    check_permute(ctx, MG_F64, 4, (const int64_t[]){8, 16, 20, 20}, (const int64_t[]){0, 2, 3, 1}, 2);
    /* space_to_depth forward and its gradient (= depth_to_space of the seed) */
    int64_t s[4] = {4, 16, 32, 32};
    mg_tensor *x = tu_rand(MG_F32, 4, s, -1, 1, 5), *g;
    mg_attrs *a = attrs_int("factor", 2);
    mg_tensor *deep = run1(ctx, "space_to_depth", x, a);
    expect_depth_map(x, deep, 2);
    run_grad(ctx, "space_to_depth", (const mg_tensor *const *)&x, 1, a, deep, &g);
    cr_assert_eq(memcmp(g->data, x->data, mg_tensor_nbytes(x)), 0, "s2d backward is not d2s");
    mg_tensor_free(g);
    mg_tensor_free(deep);
    mg_attrs_free(a);
    /* concat of two large blocks and its gradient */
    mg_tensor *x2 = tu_rand(MG_F32, 4, s, -1, 1, 6), *y, *gs[2];
    const mg_tensor *xs[2] = {x, x2};
    a = attrs_int("axis", 1);
    run_op(ctx, "concat", xs, 2, a, &y, 1);
    int64_t os[MG_MAX_RANK];
    double *want = concat_ref(xs, 2, 1, os);
    expect_exact(y, want, "concat");
    run_grad(ctx, "concat", xs, 2, a, y, gs);
    cr_assert_eq(memcmp(gs[0]->data, x->data, mg_tensor_nbytes(x)), 0);
    cr_assert_eq(memcmp(gs[1]->data, x2->data, mg_tensor_nbytes(x)), 0);
    free(want);
    mg_attrs_free(a);
    mg_tensor_free(y);
    mg_tensor_free(gs[0]);
    mg_tensor_free(gs[1]);
    mg_tensor_free(x);
    mg_tensor_free(x2);
    mg_ctx_free(ctx);
}

/* ---- constructors ------------------------------------------------------------------- */

Test(shape, constructors)
{
    mg_ctx *ctx = tu_ctx();
    mg_graph *g;
    cr_assert_eq(mg_graph_new(ctx, &g), MG_OK);
    int64_t s[4] = {2, 3, 4, 6};
    mg_value x = mg_graph_input(g, "x", MG_F32, 4, s);
    mg_value r = mg_reshape(g, x, 2, (const int64_t[]){-1, 24});
    mg_value p = mg_permute(g, x, 4, (const int[]){0, 2, 3, 1});
    mg_value sl = mg_slice(g, x, -1, 1, -1);
    mg_value cat = mg_concat(g, (const mg_value[]){x, x}, 2, 1);
    mg_value parts[3];
    cr_assert_eq(mg_split(g, x, 3, (const int64_t[]){1, 2, 3}, 3, parts), MG_OK, "%s", mg_ctx_error(ctx));
    mg_value sd = mg_space_to_depth(g, x, 2);
    cr_assert_eq(mg_graph_status(g), MG_OK, "%s", mg_ctx_error(ctx));
    expect_shape(mg_graph_value_desc(g, r), 2, (const int64_t[]){6, 24}, "mg_reshape");
    expect_shape(mg_graph_value_desc(g, p), 4, (const int64_t[]){2, 4, 6, 3}, "mg_permute");
    expect_shape(mg_graph_value_desc(g, sl), 4, (const int64_t[]){2, 3, 4, 4}, "mg_slice");
    expect_shape(mg_graph_value_desc(g, cat), 4, (const int64_t[]){2, 6, 4, 6}, "mg_concat");
    for (int i = 0; i < 3; i++)
        expect_shape(mg_graph_value_desc(g, parts[i]), 4, (const int64_t[]){2, 3, 4, i + 1}, "mg_split");
    expect_shape(mg_graph_value_desc(g, sd), 4, (const int64_t[]){2, 12, 2, 3}, "mg_space_to_depth");
    mg_graph_free(g);
    mg_ctx_free(ctx);
}
