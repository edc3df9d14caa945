/* ops/matmul.c: matrix products through oneDNN matmul primitives:
 *   matmul(a[M,K], b[K,N]) -> [M,N], or batched a[B,M,K] x b[B,K,N] -> [B,M,N]
 *   linear(x[N,I], w[O,I], b[O]?) -> [N,O],  y = x w^T + b
 * Every product (forward and each gradient) is one primitive created in
 * prepare; transposed operands are strided views, never copies:
 *   matmul: da = dc b^T,  db = a^T dc
 *   linear: dx = dy w,    dw = dy^T x,   db = column sums of dy (our loop) */
#include "elem.h"

#include "dnnl.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* Per node: the forward product and the gradient products it needs. */
typedef struct mm_state {
    mg_dnnl_matmul *fwd, *grad0, *grad1;
} mm_state;

/* Geometry of one node: batch (0 = none), and the three sizes. */
typedef struct mm_dims {
    int64_t batch, m, k, n;
} mm_dims;

static mg_status mm_check_f32(mg_node *n, int i, const char *name)
{
    const mg_tensor *t = mg_node_input(n, i);
    char buf[96];
    if (t->dtype == MG_F32) return MG_OK;
    return mg_node_fail(n, MG_ERR_DTYPE, "%s must be f32, got %s", name, mg_tensor_str(t, buf, sizeof buf));
}

static int mm_any_empty(const mg_tensor *t)
{
    for (int i = 0; i < t->rank; i++)
        if (t->shape[i] < 1) return 1;
    return 0;
}

/* matmul: a[M,K] b[K,N] or a[B,M,K] b[B,K,N]. */
static mg_status matmul_dims(mg_node *n, mm_dims *d)
{
    const mg_tensor *a = mg_node_input(n, 0), *b = mg_node_input(n, 1);
    char as[64], bs[64];
    mg_status st = mm_check_f32(n, 0, "a");
    if (st == MG_OK) st = mm_check_f32(n, 1, "b");
    if (st != MG_OK) return st;
    mg_shape_str(a->rank, a->shape, as, sizeof as);
    mg_shape_str(b->rank, b->shape, bs, sizeof bs);
    if (a->rank != b->rank || (a->rank != 2 && a->rank != 3))
        return mg_node_fail(n, MG_ERR_SHAPE, "matmul needs a[M,K] x b[K,N] or a[B,M,K] x b[B,K,N]; got a%s x b%s", as, bs);
    int o = a->rank - 2;
    *d = (mm_dims){.batch = o ? a->shape[0] : 0, .m = a->shape[o], .k = a->shape[o + 1], .n = b->shape[o + 1]};
    if (b->shape[o] != d->k || (o && b->shape[0] != d->batch))
        return mg_node_fail(n, MG_ERR_SHAPE, "matmul: a%s and b%s do not fit (%s)", as, bs,
                            b->shape[o] != d->k ? "inner sizes K differ" : "batch sizes differ");
    if (mm_any_empty(a) || mm_any_empty(b)) return mg_node_fail(n, MG_ERR_SHAPE, "matmul: empty dimension");
    return MG_OK;
}

/* linear: x[N,I] w[O,I] b[O]?, as m = N, k = I, n = O. */
static mg_status linear_dims(mg_node *n, mm_dims *d)
{
    const mg_tensor *x = mg_node_input(n, 0), *w = mg_node_input(n, 1);
    const mg_tensor *b = mg_node_num_inputs(n) > 2 ? mg_node_input(n, 2) : NULL;
    char xs[64], ws[64];
    mg_status st = mm_check_f32(n, 0, "x");
    if (st == MG_OK) st = mm_check_f32(n, 1, "w");
    if (st == MG_OK && b) st = mm_check_f32(n, 2, "b");
    if (st != MG_OK) return st;
    mg_shape_str(x->rank, x->shape, xs, sizeof xs);
    mg_shape_str(w->rank, w->shape, ws, sizeof ws);
    if (x->rank != 2 || w->rank != 2 || x->shape[1] != w->shape[1])
        return mg_node_fail(n, MG_ERR_SHAPE, "linear needs x[N,I] and w[O,I] with the same I; got x%s, w%s", xs, ws);
    if (b && (b->rank != 1 || b->shape[0] != w->shape[0]))
        return mg_node_fail(n, MG_ERR_SHAPE, "linear: bias must be b[O] with O=%" PRId64 " (rows of w%s)",
                            w->shape[0], ws);
    if (mm_any_empty(x) || mm_any_empty(w)) return mg_node_fail(n, MG_ERR_SHAPE, "linear: empty dimension");
    *d = (mm_dims){.batch = 0, .m = x->shape[0], .k = x->shape[1], .n = w->shape[0]};
    return MG_OK;
}

static int mm_is_linear(const mg_node *n)
{
    return strcmp(mg_node_op_name(n), "linear") == 0;
}

static mg_status mm_dims_of(mg_node *n, mm_dims *d)
{
    return mm_is_linear(n) ? linear_dims(n, d) : matmul_dims(n, d);
}

static mg_status mm_infer(mg_node *n)
{
    mm_dims d;
    mg_status st = mm_dims_of(n, &d);
    if (st != MG_OK) return st;
    int64_t y[3] = {d.batch, d.m, d.n};
    return d.batch ? mg_node_set_output(n, 0, MG_F32, 3, y) : mg_node_set_output(n, 0, MG_F32, 2, y + 1);
}

/* ---- prepare: the products ----------------------------------------------------- */
static mg_dnnl_view mm_rows(int64_t r, int64_t c) { return mg_dnnl_view_rows(r, c); }
static mg_dnnl_view mm_trans(int64_t r, int64_t c) { return mg_dnnl_view_transposed(r, c); }

/* Creates out = a b with a (m, k), b (k, n) the given views. */
static mg_status mm_make(mg_node *n, int64_t batch, int64_t m, int64_t k, int64_t nn, mg_dnnl_view a,
                         mg_dnnl_view b, int bias, mg_dnnl_matmul **out)
{
    mg_dnnl_matmul_shape s = {.batch = batch, .m = m, .k = k, .n = nn, .a = a, .b = b,
                              .c = mm_rows(m, nn), .has_bias = bias};
    mg_status st = mg_dnnl_matmul_new(mg_node_ctx(n), &s, out);
    if (st == MG_OK) return MG_OK;
    char why[256];
    snprintf(why, sizeof why, "%s", mg_ctx_error(mg_node_ctx(n)));
    return mg_node_fail(n, st, "cannot create a matmul primitive: %s", why);
}

/* matmul: c = a b; da (m,k) = dc (m,n) b^T; db (k,n) = a^T dc (m,n). */
static mg_status matmul_plan(mg_node *n, const mm_dims *d, int g0, int g1, mm_state *s)
{
    int64_t B = d->batch, m = d->m, k = d->k, nn = d->n;
    mg_status st = mm_make(n, B, m, k, nn, mm_rows(m, k), mm_rows(k, nn), 0, &s->fwd);
    if (st == MG_OK && g0) st = mm_make(n, B, m, nn, k, mm_rows(m, nn), mm_trans(k, nn), 0, &s->grad0);
    if (st == MG_OK && g1) st = mm_make(n, B, k, m, nn, mm_trans(m, k), mm_rows(m, nn), 0, &s->grad1);
    return st;
}

/* linear (m = N, k = I, n = O): y = x w^T + b; dx (N,I) = dy (N,O) w (O,I);
 * dw (O,I) = dy^T (O,N) x (N,I). */
static mg_status linear_plan(mg_node *n, const mm_dims *d, int g0, int g1, mm_state *s)
{
    int64_t N = d->m, I = d->k, O = d->n;
    int bias = mg_node_num_inputs(n) > 2;
    mg_status st = mm_make(n, 0, N, I, O, mm_rows(N, I), mm_trans(O, I), bias, &s->fwd);
    if (st == MG_OK && g0) st = mm_make(n, 0, N, O, I, mm_rows(N, O), mm_rows(O, I), 0, &s->grad0);
    if (st == MG_OK && g1) st = mm_make(n, 0, O, N, I, mm_trans(N, O), mm_rows(N, I), 0, &s->grad1);
    return st;
}

static void mm_state_free(mm_state *s)
{
    if (!s) return;
    mg_dnnl_matmul_free(s->fwd);
    mg_dnnl_matmul_free(s->grad0);
    mg_dnnl_matmul_free(s->grad1);
    mg_free(s);
}

static mg_status mm_prepare(mg_node *n)
{
    mm_dims d;
    mg_status st = mm_dims_of(n, &d);
    if (st != MG_OK) return st;
    mm_state *s = mg_calloc(1, sizeof *s);
    if (!s) return mg_node_fail(n, MG_ERR_NOMEM, "out of memory");
    int train = mg_node_training(n);
    int g0 = train && mg_node_needs_grad(n, 0), g1 = train && mg_node_needs_grad(n, 1);
    st = mm_is_linear(n) ? linear_plan(n, &d, g0, g1, s) : matmul_plan(n, &d, g0, g1, s);
    if (st != MG_OK) {
        mm_state_free(s);
        return st;
    }
    mg_node_set_state(n, s);
    return MG_OK;
}

static void mm_release(mg_node *n)
{
    mm_state_free(mg_node_state(n));
    mg_node_set_state(n, NULL);
}

/* ---- forward and backward --------------------------------------------------------- */
static const float *mm_in(const mg_node *n, int i) { return mg_f32(mg_node_input(n, i)); }

static mg_status mm_forward(mg_node *n)
{
    mm_state *s = mg_node_state(n);
    const float *bias = mm_is_linear(n) && mg_node_num_inputs(n) > 2 ? mm_in(n, 2) : NULL;
    return mg_dnnl_matmul_run(s->fwd, mm_in(n, 0), mm_in(n, 1), bias, mg_f32(mg_node_output(n, 0)));
}

/* Runs a gradient product that prepare should have made. */
static mg_status mm_run_grad(mg_node *n, mg_dnnl_matmul *mm, const float *a, const float *b, mg_tensor *out)
{
    if (!mm) return mg_node_fail(n, MG_ERR_STATE, "gradient requested that prepare did not plan for");
    return mg_dnnl_matmul_run(mm, a, b, NULL, mg_f32(out));
}

/* db[o] = sum_i dy[i, o]; dy is (rows, cols). */
static void linear_bias_grad(const float *dy, int64_t rows, int64_t cols, float *db)
{
    const int64_t shape[2] = {rows, cols};
    const int red[2] = {1, 0};
    mg_elem_reduce_sum(MG_F32, dy, db, 2, shape, red, 1.0);
}

static mg_status mm_backward(mg_node *n)
{
    mm_state *s = mg_node_state(n);
    const float *dy = mg_f32(mg_node_grad_output(n, 0));
    mg_tensor *g0 = mg_node_grad_input(n, 0), *g1 = mg_node_grad_input(n, 1);
    mg_tensor *g2 = mg_node_num_inputs(n) > 2 ? mg_node_grad_input(n, 2) : NULL;
    int lin = mm_is_linear(n);
    mg_status st = MG_OK;
    /* matmul: da = dc b^T, db = a^T dc; linear: dx = dy w, dw = dy^T x */
    if (g0) st = mm_run_grad(n, s->grad0, dy, mm_in(n, 1), g0);
    if (st == MG_OK && g1) st = lin ? mm_run_grad(n, s->grad1, dy, mm_in(n, 0), g1)
                                    : mm_run_grad(n, s->grad1, mm_in(n, 0), dy, g1);
    if (st == MG_OK && g2) {
        const mg_tensor *y = mg_node_output(n, 0);
        linear_bias_grad(dy, y->shape[0], y->shape[1], mg_f32(g2));
    }
    return st;
}

/* ---- constructors and registration ---------------------------------------------------- */
mg_value mg_matmul(mg_graph *g, mg_value a, mg_value b)
{
    mg_value in[2] = {a, b};
    return mg_ops_add1(g, "matmul", in, 2, NULL);
}

mg_value mg_linear(mg_graph *g, mg_value x, mg_value w, mg_value b)
{
    mg_value in[3] = {x, w, b};
    return mg_ops_add1(g, "linear", in, mg_value_ok(b) ? 3 : 2, NULL);
}

mg_status mg_ops_register_matmul(mg_registry *r)
{
    static const mg_op_def matmul = {
        MG_OP_HEADER,
        .name = "matmul",
        .summary = "matrix product a[M,K] b[K,N], or batched a[B,M,K] b[B,K,N] (oneDNN)",
        .min_inputs = 2, .max_inputs = 2, .num_outputs = 1,
        .infer = mm_infer, .prepare = mm_prepare, .forward = mm_forward,
        .backward = mm_backward, .release = mm_release,
    };
    static const mg_op_def linear = {
        MG_OP_HEADER,
        .name = "linear",
        .summary = "fully connected layer x[N,I] w[O,I]^T + b[O] (oneDNN)",
        .min_inputs = 2, .max_inputs = 3, .num_outputs = 1,
        .infer = mm_infer, .prepare = mm_prepare, .forward = mm_forward,
        .backward = mm_backward, .release = mm_release,
    };
    mg_status st = mg_registry_add_op(r, &matmul);
    return st == MG_OK ? mg_registry_add_op(r, &linear) : st;
}
