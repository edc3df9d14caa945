/* ops/elem.h: helpers shared by the built-in ops that run our own OpenMP
 * kernels (unary.c, binary.c, reduce.c, shape.c, loss.c, flow.c): dtype and
 * attribute checks for infer, a strided row iterator over collapsed shapes,
 * thread work splitting, and the sum-reduction kernel (in reduce.c) that
 * broadcasting backward passes and the bias gradients of conv.c and matmul.c
 * reuse. Private to ops/.
 *
 * Kernels here assume contiguous row-major tensors, as every tensor the
 * engine hands an op is. Element offsets are in elements, not bytes. */
#ifndef MG_OPS_ELEM_H
#define MG_OPS_ELEM_H

#include "internal.h"
#include <math.h>
#include <omp.h>
#include <string.h>

/* Loops over fewer elements than this run on one thread: below it the cost
 * of waking the team exceeds the work. */
#define MG_ELEM_PAR_MIN 32768

/* Operands a row iterator can walk at once. */
#define MG_ELEM_MAX_OPS 3

/* Short buffer for shape strings in messages. */
#define MG_ELEM_SHAPE_LEN 96

/* ---- infer helpers ----------------------------------------------------------- */

/* "[2, 3, 4]" of t into buf. */
static inline const char *mg_elem_shape(const mg_tensor *t, char *buf)
{
    return mg_shape_str(t->rank, t->shape, buf, MG_ELEM_SHAPE_LEN);
}

/* Checks that every input of n is f32 or f64 and that all share one dtype.
 * MG_ERR_DTYPE (message names the offending input) otherwise. */
static inline mg_status mg_elem_check_dtype(mg_node *n)
{
    const mg_tensor *t0 = mg_node_input(n, 0);
    if (t0->dtype != MG_F32 && t0->dtype != MG_F64)
        return mg_node_fail(n, MG_ERR_DTYPE, "input 0 is %s; this op takes f32 or f64",
                            mg_dtype_name(t0->dtype));
    for (int i = 1; i < mg_node_num_inputs(n); i++) {
        const mg_tensor *t = mg_node_input(n, i);
        char b0[MG_ELEM_SHAPE_LEN], b1[MG_ELEM_SHAPE_LEN];
        if (t->dtype != t0->dtype)
            return mg_node_fail(n, MG_ERR_DTYPE,
                                "input %d is %s%s but input 0 is %s%s; inputs must share a dtype",
                                i, mg_dtype_name(t->dtype), mg_elem_shape(t, b1),
                                mg_dtype_name(t0->dtype), mg_elem_shape(t0, b0));
    }
    return MG_OK;
}

/* Reads float attribute `key` (INT or FLOAT, finite) into *out, `dflt` when
 * absent. MG_ERR_ATTR on another kind or a non-finite value. */
static inline mg_status mg_elem_attr_float(mg_node *n, const char *key, double dflt, double *out)
{
    const mg_attrs *a = mg_node_attrs(n);
    mg_attr_kind k = mg_attrs_kind(a, key);
    if (k == MG_ATTR_NONE) {
        *out = dflt;
        return MG_OK;
    }
    if (k != MG_ATTR_INT && k != MG_ATTR_FLOAT)
        return mg_node_fail(n, MG_ERR_ATTR, "attribute '%s' must be a number", key);
    *out = mg_attrs_float(a, key, dflt);
    if (!isfinite(*out))
        return mg_node_fail(n, MG_ERR_ATTR, "attribute '%s' must be finite, got %g", key, *out);
    return MG_OK;
}

/* Reads int attribute `key` into *out (`dflt` when absent; *present says
 * which, may be NULL). MG_ERR_ATTR unless it is an INT (or integral FLOAT). */
static inline mg_status mg_elem_attr_int(mg_node *n, const char *key, int64_t dflt, int64_t *out,
                                         int *present)
{
    const mg_attrs *a = mg_node_attrs(n);
    mg_attr_kind k = mg_attrs_kind(a, key);
    if (present) *present = k != MG_ATTR_NONE;
    *out = dflt;
    if (k == MG_ATTR_NONE) return MG_OK;
    double f = mg_attrs_float(a, key, 0.5);
    if ((k != MG_ATTR_INT && k != MG_ATTR_FLOAT) || f != floor(f))
        return mg_node_fail(n, MG_ERR_ATTR, "attribute '%s' must be an integer", key);
    *out = mg_attrs_int(a, key, dflt);
    return MG_OK;
}

/* Reads int-list attribute `key` (an INT reads as a list of one) into out;
 * *len gets its length, -1 when absent. MG_ERR_ATTR on another kind. */
static inline mg_status mg_elem_attr_ints(mg_node *n, const char *key, int64_t *out, int max,
                                          int *len)
{
    const mg_attrs *a = mg_node_attrs(n);
    mg_attr_kind k = mg_attrs_kind(a, key);
    *len = -1;
    if (k == MG_ATTR_NONE) return MG_OK;
    if (k != MG_ATTR_INT && k != MG_ATTR_INTS)
        return mg_node_fail(n, MG_ERR_ATTR, "attribute '%s' must be a list of integers", key);
    *len = mg_attrs_ints(a, key, out, max);
    return MG_OK;
}

/* Normalises axis `ax` (negative counts from the end) of a rank-`rank`
 * tensor into *out; 0 if it is out of range. */
static inline int mg_elem_axis(int64_t ax, int rank, int *out)
{
    if (ax < 0) ax += rank;
    if (ax < 0 || ax >= rank) return 0;
    *out = (int)ax;
    return 1;
}

/* Adds a single-output node whose attrs were being built; when building the
 * map failed (ok is 0) the failure goes to the context instead. */
static inline mg_value mg_elem_add1(mg_graph *g, const char *op, const mg_value *in, int n_in,
                                    mg_attrs *attrs, int ok)
{
    if (!ok || !attrs) {
        mg_attrs_free(attrs);
        mg_graph_fail(g, MG_ERR_NOMEM, "%s: out of memory building attributes", op);
        return MG_VALUE_NONE;
    }
    return mg_ops_add1(g, op, in, n_in, attrs);
}

/* ---- shapes and iteration ------------------------------------------------------ */

static inline int64_t mg_elem_numel(int rank, const int64_t *shape)
{
    int64_t n = 1;
    for (int d = 0; d < rank; d++) n *= shape[d];
    return n;
}

/* Row-major strides (in elements) of a contiguous shape. */
static inline void mg_elem_strides(int rank, const int64_t *shape, int64_t *stride)
{
    int64_t s = 1;
    for (int d = rank - 1; d >= 0; d--) {
        stride[d] = s;
        s *= shape[d];
    }
}

/* A view of `nops` operands over one index space: dims and, per operand, a
 * stride per dim (0 for a broadcast dim). */
typedef struct mg_elem_layout {
    int rank, nops;
    int64_t shape[MG_MAX_RANK];
    int64_t stride[MG_ELEM_MAX_OPS][MG_MAX_RANK];
} mg_elem_layout;

/* Simplifies a layout without changing what it addresses: drops size-1
 * dims and merges neighbours that every operand walks contiguously. Always
 * leaves at least one dim (a [1] for a scalar). */
static inline void mg_elem_collapse(mg_elem_layout *l)
{
    int r = 0;
    for (int d = 0; d < l->rank; d++) {
        if (l->shape[d] == 1) continue;
        int merge = r > 0;
        for (int k = 0; k < l->nops && merge; k++)
            merge = l->stride[k][r - 1] == l->stride[k][d] * l->shape[d];
        if (merge) {
            l->shape[r - 1] *= l->shape[d];
            for (int k = 0; k < l->nops; k++) l->stride[k][r - 1] = l->stride[k][d];
            continue;
        }
        l->shape[r] = l->shape[d];
        for (int k = 0; k < l->nops; k++) l->stride[k][r] = l->stride[k][d];
        r++;
    }
    if (r == 0) {
        l->shape[0] = 1;
        for (int k = 0; k < l->nops; k++) l->stride[k][0] = 0;
        r = 1;
    }
    l->rank = r;
}

/* Walks the rows (all dims but the last) of a layout, keeping each
 * operand's element offset. */
typedef struct mg_elem_iter {
    const mg_elem_layout *l;
    int nd;                       /* outer dims: l->rank - 1 */
    int64_t idx[MG_MAX_RANK];
    int64_t off[MG_ELEM_MAX_OPS];
} mg_elem_iter;

/* Positions it at outer row `row` (0 <= row < rows). */
static inline void mg_elem_iter_seek(mg_elem_iter *it, const mg_elem_layout *l, int64_t row)
{
    it->l = l;
    it->nd = l->rank - 1;
    for (int k = 0; k < l->nops; k++) it->off[k] = 0;
    for (int d = it->nd - 1; d >= 0; d--) {
        it->idx[d] = row % l->shape[d];
        row /= l->shape[d];
        for (int k = 0; k < l->nops; k++) it->off[k] += it->idx[d] * l->stride[k][d];
    }
}

/* Advances to the next row (wraps after the last). */
static inline void mg_elem_iter_next(mg_elem_iter *it)
{
    const mg_elem_layout *l = it->l;
    for (int d = it->nd - 1; d >= 0; d--) {
        for (int k = 0; k < l->nops; k++) it->off[k] += l->stride[k][d];
        if (++it->idx[d] < l->shape[d]) return;
        for (int k = 0; k < l->nops; k++) it->off[k] -= l->stride[k][d] * l->shape[d];
        it->idx[d] = 0;
    }
}

/* Rows of a layout: the product of all dims but the last. */
static inline int64_t mg_elem_rows(const mg_elem_layout *l)
{
    return mg_elem_numel(l->rank - 1, l->shape);
}

/* The share [*lo, *hi) of `total` items of the calling thread in the
 * current team (static split, as schedule(static) does). */
static inline void mg_elem_share(int64_t total, int64_t *lo, int64_t *hi)
{
    int64_t nt = omp_get_num_threads(), t = omp_get_thread_num();
    *lo = total * t / nt;
    *hi = total * (t + 1) / nt;
}

/* 1 when a loop touching `work` elements is worth a parallel region (and we
 * are not already inside one). */
static inline int mg_elem_par(int64_t work)
{
    return work >= MG_ELEM_PAR_MIN && !omp_in_parallel() && omp_get_max_threads() > 1;
}

/* ---- kernels shared across files ------------------------------------------------ */

/* y = scale * (x summed over every dim d with red[d] != 0). x is contiguous
 * of `rank` dims `shape`, f32 or f64 (dt); y is contiguous and holds the
 * kept dims in order (keepdims or not: the layout is the same). An empty
 * reduction gives 0. Parallel when large. Defined in reduce.c. */
void mg_elem_reduce_sum(mg_dtype dt, const void *x, void *y, int rank, const int64_t *shape,
                        const int *red, double scale);

/* Binary elementwise operations with NumPy broadcasting. */
typedef enum mg_elem_binop { MG_ELEM_ADD, MG_ELEM_SUB, MG_ELEM_MUL, MG_ELEM_DIV } mg_elem_binop;

/* out = u OP v, u and v broadcast against each other (aligned at the
 * right). out must be contiguous with the broadcast shape and share the
 * f32/f64 dtype of u and v; it may alias u or v when that operand has
 * out's size. Parallel when large. Defined in binary.c. */
void mg_elem_binary(mg_elem_binop op, mg_tensor *out, const mg_tensor *u, const mg_tensor *v);

#endif
