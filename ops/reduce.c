/* ops/reduce.c: the sum and mean ops over chosen axes (f32, f64), with
 * backward passes and constructors, and mg_elem_reduce_sum, the reduction
 * kernel binary.c reuses to sum gradients over broadcast dims.
 *
 * The kernel collapses the shape into alternating runs of kept and reduced
 * dims and then takes one of two paths:
 *   - the last (contiguous) run is reduced: each output element is a sum of
 *     contiguous row segments (bias gradients: sum over N, H, W of NCHW);
 *   - the last run is kept: output rows are sums of input rows, accumulated
 *     column block by column block (sums over leading axes: [N, D] -> [D]).
 * Either way the work is split across threads over outputs when there are
 * many, else over the summed rows, with per-thread partial sums. Sums are
 * accumulated in double. */
#include "elem.h"

/* Row segments are cut into chunks of this many elements (the unit of work
 * when one output sums a long row). */
#define RED_CHUNK 4096
/* Columns per block when summing rows into an output row. */
#define RED_BLOCK 512

/* ---- per-type primitives ------------------------------------------------------ */

typedef struct red_vt {
    double (*sum)(const void *x, int64_t n);                      /* sum of x[0..n) */
    void (*acc)(double *acc, const void *x, int64_t n);           /* acc[i] += x[i] */
    void (*store)(void *y, const double *acc, int64_t n, double s); /* y[i] = s*acc[i] */
    void (*add)(void *y, const double *acc, int64_t n, double s);   /* y[i] += s*acc[i] */
    void (*scal)(void *y, const void *x, int64_t n, double s);      /* y[i] = s*x[i] */
} red_vt;

#define RED_PRIMS(TY, SFX)                                                                    \
    static double red_sum_##SFX(const void *xv, int64_t n)                                    \
    {                                                                                         \
        const TY *x = xv;                                                                     \
        TY s = 0;                                                                             \
        _Pragma("omp simd reduction(+:s)") for (int64_t i = 0; i < n; i++) s += x[i];         \
        return s;                                                                             \
    }                                                                                         \
    static void red_acc_##SFX(double *acc, const void *xv, int64_t n)                         \
    {                                                                                         \
        const TY *x = xv;                                                                     \
        for (int64_t i = 0; i < n; i++) acc[i] += x[i];                                       \
    }                                                                                         \
    static void red_store_##SFX(void *yv, const double *acc, int64_t n, double s)             \
    {                                                                                         \
        TY *y = yv;                                                                           \
        for (int64_t i = 0; i < n; i++) y[i] = (TY)(s * acc[i]);                              \
    }                                                                                         \
    static void red_add_##SFX(void *yv, const double *acc, int64_t n, double s)               \
    {                                                                                         \
        TY *y = yv;                                                                           \
        for (int64_t i = 0; i < n; i++) y[i] += (TY)(s * acc[i]);                             \
    }                                                                                         \
    static void red_scal_##SFX(void *yv, const void *xv, int64_t n, double s)                 \
    {                                                                                         \
        TY *y = yv;                                                                           \
        const TY *x = xv;                                                                     \
        const TY ts = (TY)s;                                                                  \
        _Pragma("omp parallel for schedule(static) if(mg_elem_par(n))")                      \
        for (int64_t i = 0; i < n; i++) y[i] = ts * x[i];                                     \
    }                                                                                         \
    static const red_vt red_vt_##SFX = {red_sum_##SFX, red_acc_##SFX, red_store_##SFX,        \
                                        red_add_##SFX, red_scal_##SFX};
RED_PRIMS(float, f32)
RED_PRIMS(double, f64)

/* ---- the plan ------------------------------------------------------------------- */

/* A reduction after collapsing: x is walked as (kept rows) x (reduced rows)
 * x (inner run), where the inner run is the last collapsed dim. */
typedef struct red_plan {
    const red_vt *vt;
    size_t es;               /* element size */
    const char *x;
    char *y;
    double scale;
    mg_elem_layout kept;     /* kept dims (but the inner run) + [1]; op 0: x stride */
    mg_elem_layout red;      /* reduced dims (but the inner run) + [1]; op 0: x stride */
    int64_t nkept, nred;     /* rows of each */
    int64_t inner;           /* length of the inner run */
    int inner_red;           /* 1 if the inner run is reduced */
} red_plan;

/* Copies the dims of collapsed layout l (but its last) whose reduced-ness
 * is `want` into sub, with op 0 = x's stride, then a closing [1]. */
static void red_sub_layout(const mg_elem_layout *l, int want, mg_elem_layout *sub)
{
    sub->nops = 1;
    sub->rank = 0;
    for (int d = 0; d < l->rank - 1; d++) {
        if ((l->stride[1][d] == 0) != want) continue;
        sub->shape[sub->rank] = l->shape[d];
        sub->stride[0][sub->rank++] = l->stride[0][d];
    }
    sub->shape[sub->rank] = 1;
    sub->stride[0][sub->rank++] = 0;
}

/* Builds the plan: layout op 0 is x (contiguous), op 1 is y (contiguous over
 * the kept dims, stride 0 over the reduced ones). */
static void red_plan_init(red_plan *p, int rank, const int64_t *shape, const int *red)
{
    mg_elem_layout l = {.rank = rank, .nops = 2};
    memcpy(l.shape, shape, sizeof(int64_t) * rank);
    mg_elem_strides(rank, shape, l.stride[0]);
    int64_t s = 1;
    for (int d = rank - 1; d >= 0; d--) {
        l.stride[1][d] = red[d] ? 0 : s;
        s *= red[d] ? 1 : shape[d];
    }
    mg_elem_collapse(&l);
    p->inner = l.shape[l.rank - 1];
    p->inner_red = l.stride[1][l.rank - 1] == 0;
    red_sub_layout(&l, 0, &p->kept);
    red_sub_layout(&l, 1, &p->red);
    p->nkept = mg_elem_numel(p->kept.rank, p->kept.shape);
    p->nred = mg_elem_numel(p->red.rank, p->red.shape);
}

/* ---- inner run reduced: y[j] = sum of row segments ------------------------------- */

/* Sum over work items [lo, hi) of output j (x offset xoff of its kept
 * row); item = reduced row * chunks + chunk. */
static double red_items(const red_plan *p, int64_t xoff, int64_t lo, int64_t hi)
{
    int64_t nch = (p->inner + RED_CHUNK - 1) / RED_CHUNK;
    if (lo >= hi) return 0;
    mg_elem_iter ri;
    mg_elem_iter_seek(&ri, &p->red, lo / nch);
    int64_t c = lo % nch;
    double acc = 0;
    for (int64_t it = lo; it < hi; it++) {
        int64_t c0 = c * RED_CHUNK, len = p->inner - c0 < RED_CHUNK ? p->inner - c0 : RED_CHUNK;
        acc += p->vt->sum(p->x + p->es * (xoff + ri.off[0] + c0), len);
        if (++c == nch) {
            c = 0;
            mg_elem_iter_next(&ri);
        }
    }
    return acc;
}

/* Outputs [lo, hi), each summed by one thread. */
static void red_outputs_serial(const red_plan *p, int64_t lo, int64_t hi)
{
    int64_t items = p->nred * ((p->inner + RED_CHUNK - 1) / RED_CHUNK);
    if (lo >= hi) return;
    mg_elem_iter ki;
    mg_elem_iter_seek(&ki, &p->kept, lo);
    for (int64_t j = lo; j < hi; j++, mg_elem_iter_next(&ki)) {
        double acc = red_items(p, ki.off[0], 0, items);
        p->vt->store(p->y + p->es * j, &acc, 1, p->scale);
    }
}

static void red_inner_reduced(const red_plan *p, int par)
{
    int nt = omp_get_max_threads();
    if (!par) {
        red_outputs_serial(p, 0, p->nkept);
    } else if (p->nkept >= 4 * nt) {
#pragma omp parallel
        {
            int64_t lo, hi;
            mg_elem_share(p->nkept, &lo, &hi);
            red_outputs_serial(p, lo, hi);
        }
    } else {
        int64_t items = p->nred * ((p->inner + RED_CHUNK - 1) / RED_CHUNK);
        mg_elem_iter ki;
        mg_elem_iter_seek(&ki, &p->kept, 0);
        for (int64_t j = 0; j < p->nkept; j++, mg_elem_iter_next(&ki)) {
            double acc = 0;
#pragma omp parallel reduction(+ : acc)
            {
                int64_t lo, hi;
                mg_elem_share(items, &lo, &hi);
                acc += red_items(p, ki.off[0], lo, hi);
            }
            p->vt->store(p->y + p->es * j, &acc, 1, p->scale);
        }
    }
}

/* ---- inner run kept: y row j = sum of x rows ----------------------------------- */

/* acc[0..kb) += columns [k0, k0+kb) of reduced rows [lo, hi) of the kept
 * row at x offset xoff. */
static void red_rows(const red_plan *p, int64_t xoff, int64_t lo, int64_t hi, int64_t k0,
                     int64_t kb, double *acc)
{
    if (lo >= hi) return;
    mg_elem_iter ri;
    mg_elem_iter_seek(&ri, &p->red, lo);
    for (int64_t r = lo; r < hi; r++, mg_elem_iter_next(&ri))
        p->vt->acc(acc, p->x + p->es * (xoff + ri.off[0] + k0), kb);
}

/* Columns [k0, k0+kb) of y row j: all reduced rows, stored. */
static void red_block(const red_plan *p, int64_t j, int64_t xoff, int64_t k0, int64_t kb)
{
    double acc[RED_BLOCK] = {0};
    red_rows(p, xoff, 0, p->nred, k0, kb, acc);
    p->vt->store(p->y + p->es * (j * p->inner + k0), acc, kb, p->scale);
}

/* y rows [lo, hi), each by one thread. */
static void red_yrows_serial(const red_plan *p, int64_t lo, int64_t hi)
{
    if (lo >= hi) return;
    mg_elem_iter ki;
    mg_elem_iter_seek(&ki, &p->kept, lo);
    for (int64_t j = lo; j < hi; j++, mg_elem_iter_next(&ki))
        for (int64_t k0 = 0; k0 < p->inner; k0 += RED_BLOCK)
            red_block(p, j, ki.off[0], k0, p->inner - k0 < RED_BLOCK ? p->inner - k0 : RED_BLOCK);
}

/* One y row (x offset xoff) whose columns are too few to split: each
 * thread sums a share of the rows; partial sums are added under a lock. */
static void red_yrow_partials(const red_plan *p, int64_t j, int64_t xoff)
{
    char *yrow = p->y + p->es * j * p->inner;
    memset(yrow, 0, p->es * p->inner);
#pragma omp parallel
    {
        int64_t lo, hi;
        mg_elem_share(p->nred, &lo, &hi);
        for (int64_t k0 = 0; k0 < p->inner; k0 += RED_BLOCK) {
            int64_t kb = p->inner - k0 < RED_BLOCK ? p->inner - k0 : RED_BLOCK;
            double acc[RED_BLOCK] = {0};
            red_rows(p, xoff, lo, hi, k0, kb, acc);
#pragma omp critical(mg_reduce_partials)
            p->vt->add(yrow + p->es * k0, acc, kb, p->scale);
        }
    }
}

static void red_inner_kept(const red_plan *p, int par)
{
    int nt = omp_get_max_threads();
    int64_t nblocks = (p->inner + RED_BLOCK - 1) / RED_BLOCK;
    if (!par) {
        red_yrows_serial(p, 0, p->nkept);
    } else if (p->nkept >= 4 * nt) {
#pragma omp parallel
        {
            int64_t lo, hi;
            mg_elem_share(p->nkept, &lo, &hi);
            red_yrows_serial(p, lo, hi);
        }
    } else {
        mg_elem_iter ki;
        mg_elem_iter_seek(&ki, &p->kept, 0);
        for (int64_t j = 0; j < p->nkept; j++, mg_elem_iter_next(&ki)) {
            if (nblocks < 2 * nt) {
                red_yrow_partials(p, j, ki.off[0]);
                continue;
            }
            int64_t xoff = ki.off[0];
#pragma omp parallel for schedule(static)
            for (int64_t b = 0; b < nblocks; b++) {
                int64_t k0 = b * RED_BLOCK;
                red_block(p, j, xoff, k0, p->inner - k0 < RED_BLOCK ? p->inner - k0 : RED_BLOCK);
            }
        }
    }
}

void mg_elem_reduce_sum(mg_dtype dt, const void *x, void *y, int rank, const int64_t *shape,
                        const int *red, double scale)
{
    red_plan p = {.vt = dt == MG_F64 ? &red_vt_f64 : &red_vt_f32, .es = mg_dtype_size(dt),
                  .x = x, .y = y, .scale = scale};
    int64_t nx = mg_elem_numel(rank, shape), ny = 1;
    for (int d = 0; d < rank; d++) ny *= red[d] ? 1 : shape[d];
    if (ny == 0) return;
    if (nx == 0) {
        memset(y, 0, p.es * ny);
        return;
    }
    if (nx == ny) {
        p.vt->scal(y, x, nx, scale);
        return;
    }
    red_plan_init(&p, rank, shape, red);
    if (p.inner_red)
        red_inner_reduced(&p, mg_elem_par(nx));
    else
        red_inner_kept(&p, mg_elem_par(nx));
}

/* ---- the ops -------------------------------------------------------------------- */

/* The reduced axes of node n as flags over x's dims, the count of summed
 * elements and the output shape. Validates axes and keepdims. */
typedef struct red_axes {
    int red[MG_MAX_RANK];
    int keepdims;
    int64_t count;           /* elements summed into each output */
    int out_rank;
    int64_t out_shape[MG_MAX_RANK];
} red_axes;

static mg_status red_read_axes(mg_node *n, const mg_tensor *x, red_axes *ra)
{
    int64_t axes[MG_ATTR_MAX_LIST], kd;
    int len;
    mg_status s = mg_elem_attr_ints(n, "axes", axes, MG_ATTR_MAX_LIST, &len);
    if (s == MG_OK) s = mg_elem_attr_int(n, "keepdims", 0, &kd, NULL);
    if (s != MG_OK) return s;
    if (kd != 0 && kd != 1)
        return mg_node_fail(n, MG_ERR_ATTR, "keepdims must be 0 or 1, got %lld", (long long)kd);
    ra->keepdims = (int)kd;
    for (int d = 0; d < x->rank; d++) ra->red[d] = len <= 0;
    char b[MG_ELEM_SHAPE_LEN];
    for (int i = 0; i < len; i++) {
        int ax;
        if (!mg_elem_axis(axes[i], x->rank, &ax))
            return mg_node_fail(n, MG_ERR_ATTR, "axis %lld is out of range for input %s (rank %d)",
                                (long long)axes[i], mg_elem_shape(x, b), x->rank);
        if (ra->red[ax])
            return mg_node_fail(n, MG_ERR_ATTR, "axis %lld repeats dim %d of input %s",
                                (long long)axes[i], ax, mg_elem_shape(x, b));
        ra->red[ax] = 1;
    }
    ra->count = 1;
    ra->out_rank = 0;
    for (int d = 0; d < x->rank; d++) {
        if (ra->red[d]) ra->count *= x->shape[d];
        if (!ra->red[d] || ra->keepdims) ra->out_shape[ra->out_rank++] = ra->red[d] ? 1 : x->shape[d];
    }
    return MG_OK;
}

static mg_status red_infer(mg_node *n)
{
    mg_status s = mg_elem_check_dtype(n);
    if (s != MG_OK) return s;
    const mg_tensor *x = mg_node_input(n, 0);
    red_axes ra;
    s = red_read_axes(n, x, &ra);
    if (s != MG_OK) return s;
    return mg_node_set_output(n, 0, x->dtype, ra.out_rank, ra.out_shape);
}

/* 1/count for mean (NaN for an empty mean, like NumPy), 1 for sum. */
static double red_scale(const red_axes *ra, int mean)
{
    return mean ? (ra->count ? 1.0 / (double)ra->count : NAN) : 1.0;
}

/* y = sum (or mean) of x over the axes. */
static mg_status red_forward(mg_node *n, int mean)
{
    const mg_tensor *x = mg_node_input(n, 0);
    mg_tensor *y = mg_node_output(n, 0);
    red_axes ra;
    mg_status s = red_read_axes(n, x, &ra);
    if (s != MG_OK) return s;
    if (mean && ra.count == 0) {
        mg_tensor_fill(y, NAN);
        return MG_OK;
    }
    mg_elem_reduce_sum(x->dtype, x->data, y->data, x->rank, x->shape, ra.red, red_scale(&ra, mean));
    return MG_OK;
}

/* dx = dy (or dy / count) broadcast back over the reduced axes. */
static mg_status red_backward(mg_node *n, int mean)
{
    mg_tensor *dx = mg_node_grad_input(n, 0);
    if (!dx) return MG_OK;
    const mg_tensor *x = mg_node_input(n, 0), *dy = mg_node_grad_output(n, 0);
    red_axes ra;
    mg_status s = red_read_axes(n, x, &ra);
    if (s != MG_OK) return s;
    int64_t kshape[MG_MAX_RANK], one[1] = {1};
    for (int d = 0; d < x->rank; d++) kshape[d] = ra.red[d] ? 1 : x->shape[d];
    double sd = red_scale(&ra, mean);
    float sf = (float)sd;
    mg_tensor dyk, sc;
    mg_tensor_init(&dyk, dy->dtype, x->rank, kshape, dy->data);
    mg_tensor_init(&sc, dy->dtype, 0, one, dy->dtype == MG_F64 ? (void *)&sd : (void *)&sf);
    mg_elem_binary(MG_ELEM_MUL, dx, &dyk, &sc);
    return MG_OK;
}

static mg_status sum_forward(mg_node *n) { return red_forward(n, 0); }
static mg_status mean_forward(mg_node *n) { return red_forward(n, 1); }
static mg_status sum_backward(mg_node *n) { return red_backward(n, 0); }
static mg_status mean_backward(mg_node *n) { return red_backward(n, 1); }

static const char *const red_attr_names[] = {"axes", "keepdims", NULL};

static const mg_op_def red_defs[] = {
    {MG_OP_HEADER, .name = "sum", .summary = "sum over axes (default all)", .min_inputs = 1,
     .max_inputs = 1, .num_outputs = 1, .attr_names = red_attr_names, .infer = red_infer,
     .forward = sum_forward, .backward = sum_backward},
    {MG_OP_HEADER, .name = "mean", .summary = "mean over axes (default all)", .min_inputs = 1,
     .max_inputs = 1, .num_outputs = 1, .attr_names = red_attr_names, .infer = red_infer,
     .forward = mean_forward, .backward = mean_backward},
};

mg_status mg_ops_register_reduce(mg_registry *r)
{
    return MG_OPS_REGISTER_TABLE(r, red_defs);
}

/* ---- constructors ------------------------------------------------------------- */

static mg_value red_node(mg_graph *g, const char *op, mg_value x, const int *axes, int n_axes,
                         int keepdims)
{
    int64_t ax[MG_ATTR_MAX_LIST];
    if (n_axes < 0 || n_axes > MG_ATTR_MAX_LIST || (n_axes > 0 && !axes)) {
        mg_graph_fail(g, MG_ERR_ARG, "%s: bad axes list (%d entries)", op, n_axes);
        return MG_VALUE_NONE;
    }
    for (int i = 0; i < n_axes; i++) ax[i] = axes[i];
    mg_attrs *a = mg_attrs_new();
    int ok = a && mg_attrs_set_int(a, "keepdims", keepdims) == MG_OK;
    if (ok && n_axes > 0) ok = mg_attrs_set_ints(a, "axes", ax, n_axes) == MG_OK;
    return mg_elem_add1(g, op, &x, 1, a, ok);
}

mg_value mg_sum(mg_graph *g, mg_value x, const int *axes, int n_axes, int keepdims)
{
    return red_node(g, "sum", x, axes, n_axes, keepdims);
}

mg_value mg_mean(mg_graph *g, mg_value x, const int *axes, int n_axes, int keepdims)
{
    return red_node(g, "mean", x, axes, n_axes, keepdims);
}
