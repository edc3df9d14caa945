/* ops/binary.c: add, sub, mul and div with NumPy broadcasting (ranks aligned
 * at the right, size-1 dims stretched), f32 and f64, with backward passes
 * that sum the gradient over broadcast dims, and their graph constructors.
 *
 * Every elementwise pass is one "apply": o = u OP v over the output shape,
 * where u and v are read through strides (0 along a broadcast dim). The
 * layout is collapsed first (mg_elem_collapse), so the common cases become
 * one long row: same shapes, a scalar, a row vector, a per-channel vector.
 * Innermost loops are specialised for unit and zero strides. */
#include "elem.h"

typedef mg_elem_binop bin_kind;
#define BIN_NKINDS 4

/* o[i] = u[i*su] OP v[i*sv] for i < n. */
typedef void (*bin_row_fn)(void *o, const void *u, int64_t su, const void *v, int64_t sv,
                           int64_t n);

/* One row loop per (op, type), specialised on the strides the compiler can
 * vectorise: (1,1), (1,0), (0,1); anything else takes the strided loop. */
#define BIN_ROW(NAME, TY, SFX, OP)                                                            \
    static void NAME##_row_##SFX(void *ov, const void *uv, int64_t su, const void *vv,        \
                                 int64_t sv, int64_t n)                                       \
    {                                                                                         \
        TY *o = ov;                                                                           \
        const TY *u = uv, *v = vv;                                                            \
        if (su == 1 && sv == 1) {                                                             \
            for (int64_t i = 0; i < n; i++) o[i] = u[i] OP v[i];                              \
        } else if (su == 1 && sv == 0) {                                                      \
            const TY b = v[0];                                                                \
            for (int64_t i = 0; i < n; i++) o[i] = u[i] OP b;                                 \
        } else if (su == 0 && sv == 1) {                                                      \
            const TY a = u[0];                                                                \
            for (int64_t i = 0; i < n; i++) o[i] = a OP v[i];                                 \
        } else {                                                                              \
            for (int64_t i = 0; i < n; i++) o[i] = u[i * su] OP v[i * sv];                    \
        }                                                                                     \
    }
#define BIN_ROWS(NAME, OP) BIN_ROW(NAME, float, f32, OP) BIN_ROW(NAME, double, f64, OP)
BIN_ROWS(add, +)
BIN_ROWS(sub, -)
BIN_ROWS(mul, *)
BIN_ROWS(div, /)

/* [kind][0 = f32, 1 = f64] */
static const bin_row_fn bin_rows[BIN_NKINDS][2] = {
    {add_row_f32, add_row_f64},
    {sub_row_f32, sub_row_f64},
    {mul_row_f32, mul_row_f64},
    {div_row_f32, div_row_f64},
};

static const char *const bin_names[BIN_NKINDS] = {"add", "sub", "mul", "div"};

/* ---- broadcasting ------------------------------------------------------------ */

/* The layout of out = u OP v: operand 0 is the (contiguous) output, 1 and 2
 * are u and v read with stride 0 along the dims they broadcast. u and v are
 * aligned to out's rank at the right. */
static void bin_layout(mg_elem_layout *l, const mg_tensor *out, const mg_tensor *u,
                       const mg_tensor *v)
{
    const mg_tensor *ops[3] = {out, u, v};
    l->rank = out->rank;
    l->nops = 3;
    memcpy(l->shape, out->shape, sizeof(int64_t) * out->rank);
    for (int k = 0; k < 3; k++) {
        int64_t s = 1;
        for (int d = out->rank - 1; d >= 0; d--) {
            int dk = d - (out->rank - ops[k]->rank);
            int64_t size = dk >= 0 ? ops[k]->shape[dk] : 1;
            l->stride[k][d] = size == 1 ? 0 : s;
            s *= size;
        }
    }
    mg_elem_collapse(l);
}

/* Runs `row` over rows [r0, r1) of a collapsed layout. */
static void bin_run_rows(const mg_elem_layout *l, bin_row_fn row, size_t es, char *o,
                         const char *u, const char *v, int64_t r0, int64_t r1)
{
    int last = l->rank - 1;
    int64_t n = l->shape[last];
    mg_elem_iter it;
    mg_elem_iter_seek(&it, l, r0);
    for (int64_t r = r0; r < r1; r++, mg_elem_iter_next(&it))
        row(o + es * it.off[0], u + es * it.off[1], l->stride[1][last], v + es * it.off[2],
            l->stride[2][last], n);
}

/* Splits one long row into chunks across threads. */
static void bin_run_split(const mg_elem_layout *l, bin_row_fn row, size_t es, char *o,
                          const char *u, const char *v, int64_t r)
{
    enum { CHUNK = 4096 };
    int last = l->rank - 1;
    int64_t n = l->shape[last], su = l->stride[1][last], sv = l->stride[2][last];
    int64_t nchunks = (n + CHUNK - 1) / CHUNK;
    mg_elem_iter it;
    mg_elem_iter_seek(&it, l, r);
#pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < nchunks; c++) {
        int64_t i0 = c * CHUNK, len = n - i0 < CHUNK ? n - i0 : CHUNK;
        row(o + es * (it.off[0] + i0), u + es * (it.off[1] + i0 * su), su,
            v + es * (it.off[2] + i0 * sv), sv, len);
    }
}

/* out = u OP v with broadcasting; out has the broadcast shape. Parallel over
 * rows when there are enough of them, else inside each row. */
static void bin_apply(bin_kind kind, mg_tensor *out, const mg_tensor *u, const mg_tensor *v)
{
    int64_t total = mg_tensor_numel(out);
    if (total == 0) return;
    mg_elem_layout l;
    bin_layout(&l, out, u, v);
    bin_row_fn row = bin_rows[kind][out->dtype == MG_F64];
    size_t es = mg_dtype_size(out->dtype);
    int64_t rows = mg_elem_rows(&l);
    if (!mg_elem_par(total)) {
        bin_run_rows(&l, row, es, out->data, u->data, v->data, 0, rows);
    } else if (rows >= 4 * omp_get_max_threads()) {
#pragma omp parallel
        {
            int64_t lo, hi;
            mg_elem_share(rows, &lo, &hi);
            bin_run_rows(&l, row, es, out->data, u->data, v->data, lo, hi);
        }
    } else {
        for (int64_t r = 0; r < rows; r++) bin_run_split(&l, row, es, out->data, u->data, v->data, r);
    }
}

void mg_elem_binary(mg_elem_binop op, mg_tensor *out, const mg_tensor *u, const mg_tensor *v)
{
    bin_apply(op, out, u, v);
}

/* ---- infer -------------------------------------------------------------------- */

/* The broadcast shape of a and b into out (rank max of both); 0 and a
 * message naming both shapes if they do not broadcast. */
static mg_status bin_broadcast_shape(mg_node *n, const mg_tensor *a, const mg_tensor *b,
                                     int *rank, int64_t *shape)
{
    int r = a->rank > b->rank ? a->rank : b->rank;
    for (int d = 0; d < r; d++) {
        int da = d - (r - a->rank), db = d - (r - b->rank);
        int64_t sa = da >= 0 ? a->shape[da] : 1, sb = db >= 0 ? b->shape[db] : 1;
        if (sa != sb && sa != 1 && sb != 1) {
            char ba[MG_ELEM_SHAPE_LEN], bb[MG_ELEM_SHAPE_LEN];
            return mg_node_fail(n, MG_ERR_SHAPE,
                                "cannot broadcast a%s with b%s: dim %d (from the right) is %lld vs %lld",
                                mg_elem_shape(a, ba), mg_elem_shape(b, bb), r - d,
                                (long long)sa, (long long)sb);
        }
        shape[d] = sa == 1 ? sb : sa;
    }
    *rank = r;
    return MG_OK;
}

static mg_status bin_infer(mg_node *n)
{
    mg_status s = mg_elem_check_dtype(n);
    if (s != MG_OK) return s;
    const mg_tensor *a = mg_node_input(n, 0), *b = mg_node_input(n, 1);
    int rank = 0;
    int64_t shape[MG_MAX_RANK];
    s = bin_broadcast_shape(n, a, b, &rank, shape);
    if (s != MG_OK) return s;
    return mg_node_set_output(n, 0, a->dtype, rank, shape);
}

/* ---- forward and backward ---------------------------------------------------- */

/* Scratch of the output's size, made by prepare when a backward will need
 * to reduce a product over broadcast dims. */
typedef struct bin_state {
    mg_tensor scratch; /* header over `buf`, output's dtype and shape */
    void *buf;
} bin_state;

static int bin_is_full(const mg_tensor *in, const mg_tensor *out)
{
    return mg_tensor_numel(in) == mg_tensor_numel(out);
}

/* mul and div: a scratch is needed when some input that takes a gradient
 * is smaller than the output (its product must be summed down). */
static mg_status bin_prepare(mg_node *n)
{
    const mg_tensor *y = mg_node_output(n, 0);
    int need = 0;
    for (int i = 0; i < 2; i++)
        need |= mg_node_needs_grad(n, i) && !bin_is_full(mg_node_input(n, i), y);
    if (!mg_node_training(n) || !need) return MG_OK;
    bin_state *st = mg_calloc(1, sizeof *st);
    if (st) st->buf = mg_malloc_aligned(mg_tensor_nbytes(y) ? mg_tensor_nbytes(y) : 1);
    if (!st || !st->buf) {
        mg_free(st);
        return mg_node_fail(n, MG_ERR_NOMEM, "out of memory for a %zu-byte gradient scratch",
                            mg_tensor_nbytes(y));
    }
    mg_tensor_init(&st->scratch, y->dtype, y->rank, y->shape, st->buf);
    mg_node_set_state(n, st);
    return MG_OK;
}

static void bin_release(mg_node *n)
{
    bin_state *st = mg_node_state(n);
    if (!st) return;
    mg_free_aligned(st->buf);
    mg_free(st);
    mg_node_set_state(n, NULL);
}

static mg_status bin_forward_kind(mg_node *n, bin_kind kind)
{
    bin_apply(kind, mg_node_output(n, 0), mg_node_input(n, 0), mg_node_input(n, 1));
    return MG_OK;
}

/* g = scale * full summed down to g's shape (full has the output's shape). */
static void bin_reduce_to(const mg_tensor *full, mg_tensor *g, double scale)
{
    int red[MG_MAX_RANK];
    for (int d = 0; d < full->rank; d++) {
        int dg = d - (full->rank - g->rank);
        red[d] = (dg < 0 || g->shape[dg] == 1) && full->shape[d] != 1;
    }
    mg_elem_reduce_sum(full->dtype, full->data, g->data, full->rank, full->shape, red, scale);
}

/* Writes `full` (the output's shape) into gradient g: a copy, or a sum
 * over the dims g broadcasts, times scale. Skips a NULL g. */
static void bin_emit(const mg_tensor *full, mg_tensor *g, double scale)
{
    if (!g) return;
    if (bin_is_full(g, full) && full->data == g->data && scale == 1) return;
    bin_reduce_to(full, g, scale);
}

/* The full-size buffer to compute input i's unreduced gradient in: the
 * gradient itself when it is full size, else the scratch (NULL if absent). */
static mg_tensor *bin_target(mg_node *n, int i, mg_tensor *hdr)
{
    mg_tensor *g = mg_node_grad_input(n, i);
    const mg_tensor *y = mg_node_output(n, 0);
    if (bin_is_full(g, y)) {
        mg_tensor_init(hdr, y->dtype, y->rank, y->shape, g->data);
        return hdr;
    }
    bin_state *st = mg_node_state(n);
    return st ? &st->scratch : NULL;
}

/* Backward asked for a gradient prepare did not expect. */
static mg_status bin_no_scratch(mg_node *n)
{
    return mg_node_fail(n, MG_ERR_STATE, "no gradient scratch: prepare saw no need for one");
}

/* add, sub: da = dy, db = +-dy, each summed over its broadcast dims. */
static mg_status bin_backward_addsub(mg_node *n, double sign_b)
{
    const mg_tensor *dy = mg_node_grad_output(n, 0);
    bin_emit(dy, mg_node_grad_input(n, 0), 1.0);
    bin_emit(dy, mg_node_grad_input(n, 1), sign_b);
    return MG_OK;
}

/* mul: da = dy * b, db = dy * a. */
static mg_status bin_backward_mul(mg_node *n)
{
    const mg_tensor *dy = mg_node_grad_output(n, 0);
    for (int i = 0; i < 2; i++) {
        if (!mg_node_grad_input(n, i)) continue;
        mg_tensor hdr, *t = bin_target(n, i, &hdr);
        if (!t) return bin_no_scratch(n);
        bin_apply(MG_ELEM_MUL, t, dy, mg_node_input(n, 1 - i));
        bin_emit(t, mg_node_grad_input(n, i), 1.0);
    }
    return MG_OK;
}

/* div: da = dy / b; db = -dy * a / b^2 = -(dy / b) * y. t = dy / b is
 * computed once, in ga when it is full size; db's product may overwrite t
 * in place when t is not ga. */
static mg_status bin_backward_div(mg_node *n)
{
    const mg_tensor *dy = mg_node_grad_output(n, 0), *b = mg_node_input(n, 1);
    mg_tensor *ga = mg_node_grad_input(n, 0), *gb = mg_node_grad_input(n, 1);
    if (!ga && !gb) return MG_OK;
    mg_tensor ht, ht2;
    mg_tensor *t = bin_target(n, ga ? 0 : 1, &ht);
    if (!t) return bin_no_scratch(n);
    bin_apply(MG_ELEM_DIV, t, dy, b);
    bin_emit(t, ga, 1.0);
    if (!gb) return MG_OK;
    mg_tensor *t2 = bin_target(n, 1, &ht2);
    if (!t2) return bin_no_scratch(n);
    bin_apply(MG_ELEM_MUL, t2, t, mg_node_output(n, 0));
    bin_emit(t2, gb, -1.0);
    return MG_OK;
}

static mg_status add_forward(mg_node *n) { return bin_forward_kind(n, MG_ELEM_ADD); }
static mg_status sub_forward(mg_node *n) { return bin_forward_kind(n, MG_ELEM_SUB); }
static mg_status mul_forward(mg_node *n) { return bin_forward_kind(n, MG_ELEM_MUL); }
static mg_status div_forward(mg_node *n) { return bin_forward_kind(n, MG_ELEM_DIV); }
static mg_status add_backward(mg_node *n) { return bin_backward_addsub(n, 1.0); }
static mg_status sub_backward(mg_node *n) { return bin_backward_addsub(n, -1.0); }
static mg_status mul_backward(mg_node *n) { return bin_backward_mul(n); }
static mg_status div_backward(mg_node *n) { return bin_backward_div(n); }

/* add and sub reduce dy directly; mul and div keep a scratch (prepare). */
#define BIN_DEF(NAME, SUM, PREP, REL)                                                         \
    {MG_OP_HEADER, .name = #NAME, .summary = SUM, .min_inputs = 2, .max_inputs = 2,          \
     .num_outputs = 1, .infer = bin_infer, .prepare = PREP, .forward = NAME##_forward,        \
     .backward = NAME##_backward, .release = REL}

static const mg_op_def bin_defs[] = {
    BIN_DEF(add, "a + b (broadcasting)", NULL, NULL),
    BIN_DEF(sub, "a - b (broadcasting)", NULL, NULL),
    BIN_DEF(mul, "a * b (broadcasting)", bin_prepare, bin_release),
    BIN_DEF(div, "a / b (broadcasting)", bin_prepare, bin_release),
};

mg_status mg_ops_register_binary(mg_registry *r)
{
    return MG_OPS_REGISTER_TABLE(r, bin_defs);
}

/* ---- constructors ------------------------------------------------------------- */

static mg_value bin_node(mg_graph *g, bin_kind kind, mg_value a, mg_value b)
{
    mg_value in[2] = {a, b};
    return mg_ops_add1(g, bin_names[kind], in, 2, NULL);
}

mg_value mg_add(mg_graph *g, mg_value a, mg_value b) { return bin_node(g, MG_ELEM_ADD, a, b); }
mg_value mg_sub(mg_graph *g, mg_value a, mg_value b) { return bin_node(g, MG_ELEM_SUB, a, b); }
mg_value mg_mul(mg_graph *g, mg_value a, mg_value b) { return bin_node(g, MG_ELEM_MUL, a, b); }
mg_value mg_div(mg_graph *g, mg_value a, mg_value b) { return bin_node(g, MG_ELEM_DIV, a, b); }
