/* tests/test_matmul.c: the matmul (plain and batched) and linear ops against
 * naive double-precision references, their gradients through the gradient
 * checker, and their shape and dtype errors. */
#include "testutil.h"

#include <string.h>

/* Runs one node of `op` on copies of `in` (forward only) and returns a copy
 * of its output, or NULL with *status set when building fails. */
static mg_tensor *run_op(mg_ctx *ctx, const char *op, const mg_tensor *const *in, int n, mg_status *status)
{
    static const char *names[] = {"in0", "in1", "in2"};
    mg_graph *g;
    mg_exec *e = NULL;
    mg_value v[3], y;
    cr_assert_eq(mg_graph_new(ctx, &g), MG_OK);
    for (int i = 0; i < n; i++) v[i] = mg_graph_input(g, names[i], in[i]->dtype, in[i]->rank, in[i]->shape);
    mg_status s = mg_graph_node(g, op, NULL, v, n, NULL, &y, 1, NULL);
    mg_compile_opts o = {.struct_size = sizeof o, .outputs = &y, .n_outputs = 1};
    if (s == MG_OK) s = mg_graph_compile(g, &o, &e);
    for (int i = 0; i < n && s == MG_OK; i++) s = mg_exec_set_input(e, names[i], in[i]);
    if (s == MG_OK) s = mg_exec_forward(e);
    mg_tensor *out = s == MG_OK ? mg_tensor_clone(mg_exec_tensor(e, y)) : NULL;
    mg_exec_free(e);
    mg_graph_free(g);
    *status = s;
    return out;
}

/* c[b] = a[b] op(w[b]) (+ bias) in double; w_t: w holds (n, k) rows. */
static void ref_product(const float *a, const float *w, const float *bias, int64_t batch, int64_t m, int64_t k,
                        int64_t n, int w_t, double *c)
{
    for (int64_t b = 0; b < batch; b++)
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++) {
                double s = bias ? bias[j] : 0;
                for (int64_t l = 0; l < k; l++) {
                    float wv = w_t ? w[(b * n + j) * k + l] : w[(b * k + l) * n + j];
                    s += (double)a[(b * m + i) * k + l] * wv;
                }
                c[(b * m + i) * n + j] = s;
            }
}

static void expect_close(const mg_tensor *got, const double *want, double tol, const char *what)
{
    int64_t n = mg_tensor_numel(got);
    double m = 0;
    for (int64_t i = 0; i < n; i++) {
        double e = fabs(mg_f32(got)[i] - want[i]);
        if (e > m || isnan(e)) m = isnan(e) ? INFINITY : e;
    }
    cr_expect_leq(m, tol, "%s: max error %g", what, m);
}

TestSuite(matmul);

/* ---- forward ---------------------------------------------------------------------- */
static void check_matmul(int64_t batch, int64_t m, int64_t k, int64_t n, uint64_t seed)
{
    mg_ctx *ctx = tu_ctx();
    int r = batch ? 3 : 2;
    int64_t as[3] = {batch, m, k}, bs[3] = {batch, k, n};
    mg_tensor *a = tu_rand(MG_F32, r, as + 3 - r, -1, 1, seed), *b = tu_rand(MG_F32, r, bs + 3 - r, -1, 1, seed + 1);
    const mg_tensor *in[2] = {a, b};
    mg_status s;
    mg_tensor *c = run_op(ctx, "matmul", in, 2, &s);
    cr_assert_eq(s, MG_OK, "%s", mg_ctx_error(ctx));
    cr_assert_eq(c->rank, r);
    cr_assert_eq(c->shape[r - 2], m);
    cr_assert_eq(c->shape[r - 1], n);
    if (batch) cr_assert_eq(c->shape[0], batch);
    double *ref = calloc((size_t)mg_tensor_numel(c), sizeof(double));
    ref_product(mg_f32(a), mg_f32(b), NULL, batch ? batch : 1, m, k, n, 0, ref);
    char what[64];
    snprintf(what, sizeof what, "matmul %lldx[%lld,%lld]x[%lld,%lld]", (long long)batch, (long long)m,
             (long long)k, (long long)k, (long long)n);
    expect_close(c, ref, 1e-5 * (double)(k + 1), what);
    free(ref);
    mg_tensor_free(a);
    mg_tensor_free(b);
    mg_tensor_free(c);
    mg_ctx_free(ctx);
}

Test(matmul, forward_2d)
{
    check_matmul(0, 3, 4, 5, 1);
    check_matmul(0, 1, 7, 1, 2);
    check_matmul(0, 17, 33, 9, 3);
    check_matmul(0, 64, 128, 48, 4);
}

Test(matmul, forward_batched)
{
    check_matmul(2, 3, 4, 5, 5);
    check_matmul(5, 7, 1, 3, 6);
    check_matmul(3, 16, 31, 17, 7);
}

static void check_linear(int64_t n, int64_t i, int64_t o, int bias, uint64_t seed)
{
    mg_ctx *ctx = tu_ctx();
    mg_tensor *x = tu_rand(MG_F32, 2, (int64_t[]){n, i}, -1, 1, seed);
    mg_tensor *w = tu_rand(MG_F32, 2, (int64_t[]){o, i}, -1, 1, seed + 1);
    mg_tensor *b = tu_rand(MG_F32, 1, (int64_t[]){o}, -1, 1, seed + 2);
    const mg_tensor *in[3] = {x, w, b};
    mg_status s;
    mg_tensor *y = run_op(ctx, "linear", in, bias ? 3 : 2, &s);
    cr_assert_eq(s, MG_OK, "%s", mg_ctx_error(ctx));
    cr_assert_eq(y->rank, 2);
    cr_assert_eq(y->shape[0], n);
    cr_assert_eq(y->shape[1], o);
    double *ref = calloc((size_t)(n * o), sizeof(double));
    ref_product(mg_f32(x), mg_f32(w), bias ? mg_f32(b) : NULL, 1, n, i, o, 1, ref);
    expect_close(y, ref, 1e-5 * (double)(i + 1), bias ? "linear with bias" : "linear");
    free(ref);
    mg_tensor_free(x);
    mg_tensor_free(w);
    mg_tensor_free(b);
    mg_tensor_free(y);
    mg_ctx_free(ctx);
}

Test(matmul, linear_forward)
{
    check_linear(4, 6, 3, 1, 10);
    check_linear(4, 6, 3, 0, 11);
    check_linear(1, 1, 1, 1, 12);
    check_linear(33, 17, 65, 1, 13);
    check_linear(64, 784, 100, 0, 14);
}

/* The constructors build the same nodes. */
Test(matmul, constructors)
{
    mg_ctx *ctx = tu_ctx();
    mg_graph *g;
    cr_assert_eq(mg_graph_new(ctx, &g), MG_OK);
    mg_value a = mg_graph_input(g, "a", MG_F32, 3, (int64_t[]){2, 3, 4});
    mg_value b = mg_graph_input(g, "b", MG_F32, 3, (int64_t[]){2, 4, 5});
    mg_value x = mg_graph_input(g, "x", MG_F32, 2, (int64_t[]){7, 4});
    mg_value w = mg_graph_input(g, "w", MG_F32, 2, (int64_t[]){6, 4});
    mg_value c = mg_matmul(g, a, b), y = mg_linear(g, x, w, MG_VALUE_NONE);
    cr_assert_eq(mg_graph_status(g), MG_OK, "%s", mg_ctx_error(ctx));
    const mg_tensor *cd = mg_graph_value_desc(g, c), *yd = mg_graph_value_desc(g, y);
    cr_expect(cd->rank == 3 && cd->shape[0] == 2 && cd->shape[1] == 3 && cd->shape[2] == 5);
    cr_expect(yd->rank == 2 && yd->shape[0] == 7 && yd->shape[1] == 6);
    mg_graph_free(g);
    mg_ctx_free(ctx);
}

/* ---- gradients ---------------------------------------------------------------------- */

/* Bilinear ops: a large step is exact and keeps f32 rounding small. */
static void gradcheck(const char *op, int n, const int *ranks, const int64_t shapes[][3], uint64_t seed)
{
    mg_ctx *ctx = tu_ctx();
    mg_tensor *t[3] = {NULL, NULL, NULL};
    for (int i = 0; i < n; i++) t[i] = tu_rand(MG_F32, ranks[i], shapes[i], -1, 1, seed + (uint64_t)i);
    mg_gradcheck_opts o = mg_gradcheck_defaults();
    o.eps = 0.05;
    tu_gradcheck_op(ctx, op, (const mg_tensor *const *)t, n, NULL, &o);
    for (int i = 0; i < n; i++) mg_tensor_free(t[i]);
    mg_ctx_free(ctx);
}

Test(matmul, gradcheck_matmul)
{
    gradcheck("matmul", 2, (int[]){2, 2}, (const int64_t[][3]){{3, 4}, {4, 5}}, 20);
    gradcheck("matmul", 2, (int[]){2, 2}, (const int64_t[][3]){{1, 7}, {7, 1}}, 21);
    gradcheck("matmul", 2, (int[]){2, 2}, (const int64_t[][3]){{9, 1}, {1, 6}}, 22);
    gradcheck("matmul", 2, (int[]){2, 2}, (const int64_t[][3]){{17, 13}, {13, 11}}, 23);
}

Test(matmul, gradcheck_batched)
{
    gradcheck("matmul", 2, (int[]){3, 3}, (const int64_t[][3]){{2, 3, 4}, {2, 4, 5}}, 30);
    gradcheck("matmul", 2, (int[]){3, 3}, (const int64_t[][3]){{3, 1, 5}, {3, 5, 2}}, 31);
}

Test(matmul, gradcheck_linear)
{
    gradcheck("linear", 3, (int[]){2, 2, 1}, (const int64_t[][3]){{5, 7}, {3, 7}, {3}}, 40);
    gradcheck("linear", 2, (int[]){2, 2}, (const int64_t[][3]){{4, 6}, {5, 6}}, 41);
    gradcheck("linear", 3, (int[]){2, 2, 1}, (const int64_t[][3]){{1, 9}, {1, 9}, {1}}, 42);
    gradcheck("linear", 3, (int[]){2, 2, 1}, (const int64_t[][3]){{11, 16}, {17, 16}, {17}}, 43);
}

/* ---- errors ---------------------------------------------------------------------------- */
static mg_status try_op(mg_ctx *ctx, const char *op, int n, const mg_dtype *dt, const int *ranks,
                        const int64_t shapes[][3])
{
    static const char *names[] = {"in0", "in1", "in2"};
    mg_graph *g;
    mg_value v[3], y;
    cr_assert_eq(mg_graph_new(ctx, &g), MG_OK);
    for (int i = 0; i < n; i++) v[i] = mg_graph_input(g, names[i], dt[i], ranks[i], shapes[i]);
    mg_status s = mg_graph_node(g, op, "mm", v, n, NULL, &y, 1, NULL);
    mg_graph_free(g);
    return s;
}

static void expect_msg(mg_ctx *ctx, const char *part)
{
    cr_expect_not_null(strstr(mg_ctx_error(ctx), part), "message lacks \"%s\": %s", part, mg_ctx_error(ctx));
}

Test(matmul, errors)
{
    mg_ctx *ctx = tu_ctx();
    const mg_dtype f = MG_F32;
    cr_assert_eq(try_op(ctx, "matmul", 2, (mg_dtype[]){f, f}, (int[]){2, 2}, (const int64_t[][3]){{3, 4}, {5, 6}}),
                 MG_ERR_SHAPE);
    expect_msg(ctx, "[3, 4]");
    expect_msg(ctx, "[5, 6]");
    cr_assert_eq(try_op(ctx, "matmul", 2, (mg_dtype[]){f, f}, (int[]){3, 2}, (const int64_t[][3]){{2, 3, 4}, {4, 6}}),
                 MG_ERR_SHAPE);
    cr_assert_eq(try_op(ctx, "matmul", 2, (mg_dtype[]){f, f}, (int[]){3, 3},
                        (const int64_t[][3]){{2, 3, 4}, {3, 4, 6}}), MG_ERR_SHAPE);
    expect_msg(ctx, "batch");
    cr_assert_eq(try_op(ctx, "matmul", 2, (mg_dtype[]){MG_F64, MG_F64}, (int[]){2, 2},
                        (const int64_t[][3]){{3, 4}, {4, 6}}), MG_ERR_DTYPE);
    cr_assert_eq(try_op(ctx, "linear", 2, (mg_dtype[]){f, f}, (int[]){2, 2}, (const int64_t[][3]){{3, 4}, {5, 6}}),
                 MG_ERR_SHAPE);
    expect_msg(ctx, "w[5, 6]");
    cr_assert_eq(try_op(ctx, "linear", 3, (mg_dtype[]){f, f, f}, (int[]){2, 2, 1},
                        (const int64_t[][3]){{3, 4}, {5, 4}, {4}}), MG_ERR_SHAPE);
    expect_msg(ctx, "bias");
    mg_ctx_free(ctx);
}
