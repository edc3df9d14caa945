/* ops/shape.c: ops that move data without arithmetic: reshape, permute,
 * slice, concat, split, space_to_depth and depth_to_space, with backward
 * passes (the inverse movement of the gradient) and graph constructors.
 *
 * Kernels copy raw elements (4 or 8 bytes), so one kernel serves f32 and
 * f64. Two copy patterns cover everything but permute and the depth ops:
 * whole-tensor copies (reshape) and block copies over an "outer" index
 * (slice, concat, split: for each index before the axis, one contiguous run). */
#include "elem.h"

/* ---- copy kernels --------------------------------------------------------------- */

/* dst = src, `bytes` long; parallel in large chunks when big. */
static void sh_copy(void *dst, const void *src, size_t bytes)
{
    enum { CHUNK = 1 << 20 };
    int64_t nch = (int64_t)((bytes + CHUNK - 1) / CHUNK);
#pragma omp parallel for schedule(static) if(nch > 1 && mg_elem_par((int64_t)bytes / 4))
    for (int64_t c = 0; c < nch; c++) {
        size_t off = (size_t)c * CHUNK, len = bytes - off < CHUNK ? bytes - off : CHUNK;
        memcpy((char *)dst + off, (const char *)src + off, len);
    }
}

/* A block copy: for o < outer, `len` elements from src + o*src_row +
 * src_off to dst + o*dst_row + dst_off (offsets in elements of size es). */
typedef struct sh_blocks {
    size_t es;
    int64_t outer, len;
    char *dst;
    int64_t dst_row, dst_off;
    const char *src;
    int64_t src_row, src_off;
} sh_blocks;

static void sh_blocks_run(const sh_blocks *b)
{
    if (b->len == 0) return;
    if (b->outer == 1) {
        sh_copy(b->dst + b->es * b->dst_off, b->src + b->es * b->src_off, b->es * b->len);
        return;
    }
#pragma omp parallel for schedule(static) if(mg_elem_par(b->outer * b->len))
    for (int64_t o = 0; o < b->outer; o++)
        memcpy(b->dst + b->es * (o * b->dst_row + b->dst_off),
               b->src + b->es * (o * b->src_row + b->src_off), b->es * b->len);
}

/* Sizes of x before `axis` (outer) and after it (inner). */
static void sh_split_at(const mg_tensor *x, int axis, int64_t *outer, int64_t *inner)
{
    *outer = mg_elem_numel(axis, x->shape);
    *inner = mg_elem_numel(x->rank - axis - 1, x->shape + axis + 1);
}

/* Gathers one row: d[i] = s[i*ss] (elements of type TY). */
#define SH_GATHER(TY)                                                                         \
    static void sh_gather_##TY(void *dv, const void *sv, int64_t ss, int64_t n)               \
    {                                                                                         \
        TY *d = dv;                                                                           \
        const TY *s = sv;                                                                     \
        for (int64_t i = 0; i < n; i++) d[i] = s[i * ss];                                     \
    }                                                                                         \
    static void sh_scatter_##TY(void *dv, int64_t ds, const void *sv, int64_t n)              \
    {                                                                                         \
        TY *d = dv;                                                                           \
        const TY *s = sv;                                                                     \
        for (int64_t i = 0; i < n; i++) d[i * ds] = s[i];                                     \
    }
SH_GATHER(uint32_t)
SH_GATHER(uint64_t)

static void sh_gather(size_t es, void *d, const void *s, int64_t ss, int64_t n)
{
    if (ss == 1)
        memcpy(d, s, es * n);
    else if (es == 8)
        sh_gather_uint64_t(d, s, ss, n);
    else
        sh_gather_uint32_t(d, s, ss, n);
}

static void sh_scatter(size_t es, void *d, int64_t ds, const void *s, int64_t n)
{
    if (es == 8)
        sh_scatter_uint64_t(d, ds, s, n);
    else
        sh_scatter_uint32_t(d, ds, s, n);
}

/* ---- reshape -------------------------------------------------------------------- */

/* The target shape of a reshape of x, with its -1 resolved. */
static mg_status reshape_target(mg_node *n, const mg_tensor *x, int *rank, int64_t *shape)
{
    int64_t want[MG_ATTR_MAX_LIST];
    int len, neg = -1;
    char bx[MG_ELEM_SHAPE_LEN], bw[MG_ELEM_SHAPE_LEN];
    mg_status s = mg_elem_attr_ints(n, "shape", want, MG_ATTR_MAX_LIST, &len);
    if (s != MG_OK) return s;
    if (len < 0) return mg_node_fail(n, MG_ERR_ATTR, "reshape needs attribute 'shape'");
    if (len > MG_MAX_RANK)
        return mg_node_fail(n, MG_ERR_ATTR, "target rank %d exceeds %d", len, MG_MAX_RANK);
    mg_shape_str(len, want, bw, sizeof bw);
    int64_t known = 1, numel = mg_tensor_numel(x);
    for (int d = 0; d < len; d++) {
        if (want[d] == -1 && neg < 0) {
            neg = d;
            continue;
        }
        if (want[d] < 0)
            return mg_node_fail(n, MG_ERR_ATTR, "bad target shape %s: sizes must be >= 0 with at most one -1", bw);
        known *= want[d];
    }
    if (neg >= 0) want[neg] = known ? numel / known : -1;
    if ((neg >= 0 && (known == 0 || numel % known)) || (neg < 0 && known != numel))
        return mg_node_fail(n, MG_ERR_SHAPE, "cannot reshape %s (%lld elements) to %s",
                            mg_elem_shape(x, bx), (long long)numel, bw);
    *rank = len;
    memcpy(shape, want, sizeof(int64_t) * len);
    return MG_OK;
}

static mg_status reshape_infer(mg_node *n)
{
    mg_status s = mg_elem_check_dtype(n);
    int rank = 0;
    int64_t shape[MG_MAX_RANK];
    if (s == MG_OK) s = reshape_target(n, mg_node_input(n, 0), &rank, shape);
    if (s != MG_OK) return s;
    return mg_node_set_output(n, 0, mg_node_input(n, 0)->dtype, rank, shape);
}

static mg_status reshape_forward(mg_node *n)
{
    const mg_tensor *x = mg_node_input(n, 0);
    sh_copy(mg_node_output(n, 0)->data, x->data, mg_tensor_nbytes(x));
    return MG_OK;
}

static mg_status reshape_backward(mg_node *n)
{
    mg_tensor *dx = mg_node_grad_input(n, 0);
    if (dx) sh_copy(dx->data, mg_node_grad_output(n, 0)->data, mg_tensor_nbytes(dx));
    return MG_OK;
}

/* ---- permute -------------------------------------------------------------------- */

/* dst = src with dims reordered: dst dim d is src dim perm[d]. Rows of dst
 * gather from src with src's stride along dst's last dim. */
static void sh_permute(size_t es, void *dst, const mg_tensor *src, const int *perm)
{
    int64_t total = mg_tensor_numel(src), sstride[MG_MAX_RANK];
    if (total == 0) return;
    mg_elem_layout l = {.rank = src->rank, .nops = 2};
    mg_elem_strides(src->rank, src->shape, sstride);
    for (int d = 0; d < src->rank; d++) {
        l.shape[d] = src->shape[perm[d]];
        l.stride[1][d] = sstride[perm[d]];
    }
    mg_elem_strides(l.rank, l.shape, l.stride[0]);
    mg_elem_collapse(&l);
    int64_t rows = mg_elem_rows(&l), n = l.shape[l.rank - 1], ss = l.stride[1][l.rank - 1];
    const char *s = src->data;
#pragma omp parallel if(mg_elem_par(total))
    {
        int64_t lo, hi;
        mg_elem_share(rows, &lo, &hi);
        mg_elem_iter it;
        mg_elem_iter_seek(&it, &l, lo);
        for (int64_t r = lo; r < hi; r++, mg_elem_iter_next(&it))
            sh_gather(es, (char *)dst + es * it.off[0], s + es * it.off[1], ss, n);
    }
}

/* The permutation of node n, checked against x's rank. */
static mg_status permute_read(mg_node *n, const mg_tensor *x, int *perm)
{
    int64_t p[MG_ATTR_MAX_LIST];
    int len, seen[MG_MAX_RANK] = {0};
    char bx[MG_ELEM_SHAPE_LEN], bp[MG_ELEM_SHAPE_LEN];
    mg_status s = mg_elem_attr_ints(n, "perm", p, MG_ATTR_MAX_LIST, &len);
    if (s != MG_OK) return s;
    if (len < 0) return mg_node_fail(n, MG_ERR_ATTR, "permute needs attribute 'perm'");
    mg_shape_str(len < MG_MAX_RANK ? len : MG_MAX_RANK, p, bp, sizeof bp);
    if (len != x->rank)
        return mg_node_fail(n, MG_ERR_ATTR, "perm %s has %d entries but input %s has rank %d", bp,
                            len, mg_elem_shape(x, bx), x->rank);
    for (int d = 0; d < len; d++) {
        if (!mg_elem_axis(p[d], x->rank, &perm[d]) || seen[perm[d]]++)
            return mg_node_fail(n, MG_ERR_ATTR, "perm %s is not a permutation of the %d dims of %s",
                                bp, x->rank, mg_elem_shape(x, bx));
    }
    return MG_OK;
}

static mg_status permute_infer(mg_node *n)
{
    const mg_tensor *x = mg_node_input(n, 0);
    int perm[MG_MAX_RANK];
    int64_t shape[MG_MAX_RANK];
    mg_status s = mg_elem_check_dtype(n);
    if (s == MG_OK) s = permute_read(n, x, perm);
    if (s != MG_OK) return s;
    for (int d = 0; d < x->rank; d++) shape[d] = x->shape[perm[d]];
    return mg_node_set_output(n, 0, x->dtype, x->rank, shape);
}

static mg_status permute_forward(mg_node *n)
{
    const mg_tensor *x = mg_node_input(n, 0);
    int perm[MG_MAX_RANK];
    mg_status s = permute_read(n, x, perm);
    if (s == MG_OK) sh_permute(mg_dtype_size(x->dtype), mg_node_output(n, 0)->data, x, perm);
    return s;
}

/* dx = dy permuted by the inverse permutation. */
static mg_status permute_backward(mg_node *n)
{
    mg_tensor *dx = mg_node_grad_input(n, 0);
    if (!dx) return MG_OK;
    int perm[MG_MAX_RANK], inv[MG_MAX_RANK];
    mg_status s = permute_read(n, mg_node_input(n, 0), perm);
    if (s != MG_OK) return s;
    for (int d = 0; d < dx->rank; d++) inv[perm[d]] = d;
    sh_permute(mg_dtype_size(dx->dtype), dx->data, mg_node_grad_output(n, 0), inv);
    return MG_OK;
}

/* Copies `part` (whole's shape but `size` long along axis, at offset `at`
 * there) to or from `whole` (to_whole 1: part -> whole). Serves slice,
 * concat and split. */
static void sh_part(const mg_tensor *whole, int axis, void *part, int64_t size, int64_t at,
                    int to_whole)
{
    int64_t outer, inner;
    sh_split_at(whole, axis, &outer, &inner);
    int64_t wrow = whole->shape[axis] * inner, len = size * inner;
    sh_blocks b = {.es = mg_dtype_size(whole->dtype), .outer = outer, .len = len};
    b.dst = to_whole ? whole->data : part;
    b.dst_row = to_whole ? wrow : len;
    b.dst_off = to_whole ? at * inner : 0;
    b.src = to_whole ? part : whole->data;
    b.src_row = to_whole ? len : wrow;
    b.src_off = to_whole ? 0 : at * inner;
    sh_blocks_run(&b);
}

/* ---- slice ---------------------------------------------------------------------- */

/* A slice [start, end) along one axis, clamped like Python. */
typedef struct sh_slice {
    int axis;
    int64_t start, end;
} sh_slice;

static int64_t sh_clamp(int64_t i, int64_t dim)
{
    if (i < 0) i += dim;
    return i < 0 ? 0 : (i > dim ? dim : i);
}

static mg_status slice_read(mg_node *n, const mg_tensor *x, sh_slice *sl)
{
    int64_t ax, st, en;
    char bx[MG_ELEM_SHAPE_LEN];
    mg_status s = mg_elem_attr_int(n, "axis", 0, &ax, NULL);
    if (s == MG_OK) s = mg_elem_attr_int(n, "start", 0, &st, NULL);
    if (s == MG_OK) s = mg_elem_attr_int(n, "end", INT64_MAX, &en, NULL);
    if (s != MG_OK) return s;
    if (!mg_elem_axis(ax, x->rank, &sl->axis))
        return mg_node_fail(n, MG_ERR_ATTR, "axis %lld is out of range for input %s (rank %d)",
                            (long long)ax, mg_elem_shape(x, bx), x->rank);
    int64_t dim = x->shape[sl->axis];
    sl->start = sh_clamp(st, dim);
    sl->end = sh_clamp(en, dim);
    if (sl->end <= sl->start)
        return mg_node_fail(n, MG_ERR_SHAPE,
                            "slice [%lld, %lld) of axis %d (size %lld) of input %s is empty",
                            (long long)st, (long long)en, sl->axis, (long long)dim,
                            mg_elem_shape(x, bx));
    return MG_OK;
}

static mg_status slice_infer(mg_node *n)
{
    const mg_tensor *x = mg_node_input(n, 0);
    sh_slice sl;
    mg_status s = mg_elem_check_dtype(n);
    if (s == MG_OK) s = slice_read(n, x, &sl);
    if (s != MG_OK) return s;
    int64_t shape[MG_MAX_RANK];
    memcpy(shape, x->shape, sizeof(int64_t) * x->rank);
    shape[sl.axis] = sl.end - sl.start;
    return mg_node_set_output(n, 0, x->dtype, x->rank, shape);
}

static mg_status slice_forward(mg_node *n)
{
    const mg_tensor *x = mg_node_input(n, 0);
    sh_slice sl;
    mg_status s = slice_read(n, x, &sl);
    if (s != MG_OK) return s;
    sh_part(x, sl.axis, mg_node_output(n, 0)->data, sl.end - sl.start, sl.start, 0);
    return MG_OK;
}

/* dx is zero outside the slice and dy inside it. */
static mg_status slice_backward(mg_node *n)
{
    mg_tensor *dx = mg_node_grad_input(n, 0);
    if (!dx) return MG_OK;
    sh_slice sl;
    mg_status s = slice_read(n, mg_node_input(n, 0), &sl);
    if (s != MG_OK) return s;
    memset(dx->data, 0, mg_tensor_nbytes(dx));
    sh_part(dx, sl.axis, mg_node_grad_output(n, 0)->data, sl.end - sl.start, sl.start, 1);
    return MG_OK;
}

/* ---- concat and split ----------------------------------------------------------- */

/* The concat axis of node n, normalised against x (input 0). */
static mg_status sh_read_axis(mg_node *n, const mg_tensor *x, int *axis)
{
    int64_t ax;
    char bx[MG_ELEM_SHAPE_LEN];
    mg_status s = mg_elem_attr_int(n, "axis", 0, &ax, NULL);
    if (s != MG_OK) return s;
    if (!mg_elem_axis(ax, x->rank, axis))
        return mg_node_fail(n, MG_ERR_ATTR, "axis %lld is out of range for input %s (rank %d)",
                            (long long)ax, mg_elem_shape(x, bx), x->rank);
    return MG_OK;
}

/* Checks input i fits input 0 for a concat along axis. */
static mg_status concat_check(mg_node *n, int i, int axis)
{
    const mg_tensor *x0 = mg_node_input(n, 0), *xi = mg_node_input(n, i);
    int ok = xi->rank == x0->rank;
    for (int d = 0; ok && d < x0->rank; d++) ok = d == axis || xi->shape[d] == x0->shape[d];
    if (ok) return MG_OK;
    char b0[MG_ELEM_SHAPE_LEN], bi[MG_ELEM_SHAPE_LEN];
    return mg_node_fail(n, MG_ERR_SHAPE,
                        "cannot concat input %d %s with input 0 %s along axis %d: "
                        "ranks and all other dims must match",
                        i, mg_elem_shape(xi, bi), mg_elem_shape(x0, b0), axis);
}

static mg_status concat_infer(mg_node *n)
{
    const mg_tensor *x0 = mg_node_input(n, 0);
    int axis;
    mg_status s = mg_elem_check_dtype(n);
    if (s == MG_OK) s = sh_read_axis(n, x0, &axis);
    if (s != MG_OK) return s;
    int64_t shape[MG_MAX_RANK];
    memcpy(shape, x0->shape, sizeof(int64_t) * x0->rank);
    for (int i = 1; i < mg_node_num_inputs(n); i++) {
        if ((s = concat_check(n, i, axis)) != MG_OK) return s;
        shape[axis] += mg_node_input(n, i)->shape[axis];
    }
    return mg_node_set_output(n, 0, x0->dtype, x0->rank, shape);
}

static mg_status concat_forward(mg_node *n)
{
    int axis;
    mg_status s = sh_read_axis(n, mg_node_input(n, 0), &axis);
    if (s != MG_OK) return s;
    int64_t at = 0;
    for (int i = 0; i < mg_node_num_inputs(n); i++) {
        const mg_tensor *xi = mg_node_input(n, i);
        sh_part(mg_node_output(n, 0), axis, xi->data, xi->shape[axis], at, 1);
        at += xi->shape[axis];
    }
    return MG_OK;
}

/* Each input's gradient is its part of dy. */
static mg_status concat_backward(mg_node *n)
{
    int axis;
    mg_status s = sh_read_axis(n, mg_node_input(n, 0), &axis);
    if (s != MG_OK) return s;
    int64_t at = 0;
    for (int i = 0; i < mg_node_num_inputs(n); i++) {
        mg_tensor *dxi = mg_node_grad_input(n, i);
        int64_t size = mg_node_input(n, i)->shape[axis];
        if (dxi) sh_part(mg_node_grad_output(n, 0), axis, dxi->data, size, at, 0);
        at += size;
    }
    return MG_OK;
}

/* The split axis and sizes of node n, checked against x. */
static mg_status split_read(mg_node *n, const mg_tensor *x, int *axis, int64_t *sizes, int *count)
{
    mg_status s = sh_read_axis(n, x, axis);
    if (s == MG_OK) s = mg_elem_attr_ints(n, "sizes", sizes, MG_ATTR_MAX_LIST, count);
    if (s != MG_OK) return s;
    if (*count < 1) return mg_node_fail(n, MG_ERR_ATTR, "split needs attribute 'sizes' (1 or more)");
    int64_t total = 0;
    char bx[MG_ELEM_SHAPE_LEN], bs[MG_ELEM_SHAPE_LEN];
    for (int i = 0; i < *count; i++) total += sizes[i] > 0 ? sizes[i] : 0;
    for (int i = 0; i < *count; i++)
        if (sizes[i] <= 0) total = -1;
    if (total != x->shape[*axis])
        return mg_node_fail(n, MG_ERR_SHAPE,
                            "sizes %s must be positive and add up to dim %d (%lld) of input %s",
                            mg_shape_str(*count < MG_MAX_RANK ? *count : MG_MAX_RANK, sizes, bs,
                                         sizeof bs),
                            *axis, (long long)x->shape[*axis], mg_elem_shape(x, bx));
    return MG_OK;
}

static mg_status split_infer(mg_node *n)
{
    const mg_tensor *x = mg_node_input(n, 0);
    int axis, count;
    int64_t sizes[MG_ATTR_MAX_LIST], shape[MG_MAX_RANK];
    mg_status s = mg_elem_check_dtype(n);
    if (s == MG_OK) s = split_read(n, x, &axis, sizes, &count);
    if (s != MG_OK) return s;
    memcpy(shape, x->shape, sizeof(int64_t) * x->rank);
    for (int i = 0; i < count && s == MG_OK; i++) {
        shape[axis] = sizes[i];
        s = mg_node_set_output(n, i, x->dtype, x->rank, shape);
    }
    return s;
}

static mg_status split_forward(mg_node *n)
{
    const mg_tensor *x = mg_node_input(n, 0);
    int axis, count;
    int64_t sizes[MG_ATTR_MAX_LIST], at = 0;
    mg_status s = split_read(n, x, &axis, sizes, &count);
    for (int i = 0; s == MG_OK && i < count; at += sizes[i++])
        sh_part(x, axis, mg_node_output(n, i)->data, sizes[i], at, 0);
    return s;
}

/* dx is the concatenation of the outputs' gradients. */
static mg_status split_backward(mg_node *n)
{
    mg_tensor *dx = mg_node_grad_input(n, 0);
    if (!dx) return MG_OK;
    int axis, count;
    int64_t sizes[MG_ATTR_MAX_LIST], at = 0;
    mg_status s = split_read(n, mg_node_input(n, 0), &axis, sizes, &count);
    for (int i = 0; s == MG_OK && i < count; at += sizes[i++])
        sh_part(dx, axis, mg_node_grad_output(n, i)->data, sizes[i], at, 1);
    return s;
}

/* ---- space_to_depth and depth_to_space ------------------------------------------ */

/* Moves data between `big` [N, C, H, W] and `deep` [N, f*f*C, H/f, W/f]:
 *   deep[n, dy*f*C + dx*C + c, i, j] = big[n, c, f*i+dy, f*j+dx].
 * to_deep 1 fills deep from big (space_to_depth), 0 the reverse. */
static void sh_depth(size_t es, const int64_t big_shape[4], int64_t f, char *big, char *deep,
                     int to_deep)
{
    const int64_t N = big_shape[0], C = big_shape[1], H = big_shape[2], W = big_shape[3];
    const int64_t Ho = H / f, Wo = W / f;
#pragma omp parallel for collapse(4) schedule(static) if(mg_elem_par(N * C * H * W))
    for (int64_t n = 0; n < N; n++)
        for (int64_t c = 0; c < C; c++)
            for (int64_t dy = 0; dy < f; dy++)
                for (int64_t dx = 0; dx < f; dx++)
                    for (int64_t i = 0; i < Ho; i++) {
                        int64_t drow = ((n * f * f * C + dy * f * C + dx * C + c) * Ho + i) * Wo;
                        int64_t brow = ((n * C + c) * H + f * i + dy) * W + dx;
                        if (to_deep)
                            sh_gather(es, deep + es * drow, big + es * brow, f, Wo);
                        else
                            sh_scatter(es, big + es * brow, f, deep + es * drow, Wo);
                    }
}

/* The factor of node n (default 2). */
static mg_status depth_factor(mg_node *n, int64_t *f)
{
    mg_status s = mg_elem_attr_int(n, "factor", 2, f, NULL);
    if (s == MG_OK && *f < 1)
        return mg_node_fail(n, MG_ERR_ATTR, "factor must be >= 1, got %lld", (long long)*f);
    return s;
}

/* Shared infer; to_deep 1 for space_to_depth. */
static mg_status depth_infer(mg_node *n, int to_deep)
{
    const mg_tensor *x = mg_node_input(n, 0);
    int64_t f;
    char bx[MG_ELEM_SHAPE_LEN];
    mg_status s = mg_elem_check_dtype(n);
    if (s == MG_OK) s = depth_factor(n, &f);
    if (s != MG_OK) return s;
    if (x->rank != 4)
        return mg_node_fail(n, MG_ERR_SHAPE, "input %s must be [N, C, H, W] (rank 4)",
                            mg_elem_shape(x, bx));
    const int64_t *d = x->shape;
    if (to_deep && (d[2] % f || d[3] % f))
        return mg_node_fail(n, MG_ERR_SHAPE, "factor %lld must divide H and W of input %s",
                            (long long)f, mg_elem_shape(x, bx));
    if (!to_deep && d[1] % (f * f))
        return mg_node_fail(n, MG_ERR_SHAPE, "factor^2 = %lld must divide C of input %s",
                            (long long)(f * f), mg_elem_shape(x, bx));
    int64_t shape[4] = {d[0], to_deep ? d[1] * f * f : d[1] / (f * f),
                        to_deep ? d[2] / f : d[2] * f, to_deep ? d[3] / f : d[3] * f};
    return mg_node_set_output(n, 0, x->dtype, 4, shape);
}

/* Moves src to dst; to_deep 1 when src is the big (spatial) side. */
static mg_status depth_move(mg_node *n, const mg_tensor *src, mg_tensor *dst, int to_deep)
{
    int64_t f;
    mg_status s = depth_factor(n, &f);
    if (s != MG_OK) return s;
    const mg_tensor *big = to_deep ? src : dst;
    sh_depth(mg_dtype_size(src->dtype), big->shape, f, big->data,
             to_deep ? dst->data : src->data, to_deep);
    return MG_OK;
}

static mg_status s2d_infer(mg_node *n) { return depth_infer(n, 1); }
static mg_status d2s_infer(mg_node *n) { return depth_infer(n, 0); }

static mg_status s2d_forward(mg_node *n)
{
    return depth_move(n, mg_node_input(n, 0), mg_node_output(n, 0), 1);
}

static mg_status d2s_forward(mg_node *n)
{
    return depth_move(n, mg_node_input(n, 0), mg_node_output(n, 0), 0);
}

/* The backward of each is the other's forward on the gradient. */
static mg_status s2d_backward(mg_node *n)
{
    mg_tensor *dx = mg_node_grad_input(n, 0);
    return dx ? depth_move(n, mg_node_grad_output(n, 0), dx, 0) : MG_OK;
}

static mg_status d2s_backward(mg_node *n)
{
    mg_tensor *dx = mg_node_grad_input(n, 0);
    return dx ? depth_move(n, mg_node_grad_output(n, 0), dx, 1) : MG_OK;
}

/* ---- registration --------------------------------------------------------------- */

static const char *const a_shape[] = {"shape", NULL};
static const char *const a_perm[] = {"perm", NULL};
static const char *const a_slice[] = {"axis", "start", "end", NULL};
static const char *const a_axis[] = {"axis", NULL};
static const char *const a_split[] = {"axis", "sizes", NULL};
static const char *const a_factor[] = {"factor", NULL};

#define SH_DEF(NAME, PFX, SUM, MINI, MAXI, NOUT, ATTRS)                                         \
    {MG_OP_HEADER, .name = NAME, .summary = SUM, .min_inputs = MINI, .max_inputs = MAXI,       \
     .num_outputs = NOUT, .attr_names = ATTRS, .infer = PFX##_infer, .forward = PFX##_forward, \
     .backward = PFX##_backward}

static const mg_op_def sh_defs[] = {
    SH_DEF("reshape", reshape, "same data, new shape (one -1 inferred)", 1, 1, 1, a_shape),
    SH_DEF("permute", permute, "reorder dims: out dim d is input dim perm[d]", 1, 1, 1, a_perm),
    SH_DEF("slice", slice, "[start, end) along axis (Python clamping)", 1, 1, 1, a_slice),
    SH_DEF("concat", concat, "join inputs along axis", 1, -1, 1, a_axis),
    SH_DEF("split", split, "cut along axis into parts of the given sizes", 1, 1, -1, a_split),
    SH_DEF("space_to_depth", s2d, "[N,C,H,W] -> [N,f*f*C,H/f,W/f]", 1, 1, 1, a_factor),
    SH_DEF("depth_to_space", d2s, "[N,f*f*C,H,W] -> [N,C,H*f,W*f]", 1, 1, 1, a_factor),
};

mg_status mg_ops_register_shape(mg_registry *r)
{
    return MG_OPS_REGISTER_TABLE(r, sh_defs);
}

/* ---- constructors ------------------------------------------------------------- */

/* Fails on the graph's context for a bad constructor argument. */
static mg_value sh_bad_arg(mg_graph *g, const char *op, const char *what)
{
    mg_graph_fail(g, MG_ERR_ARG, "%s: %s", op, what);
    return MG_VALUE_NONE;
}

mg_value mg_reshape(mg_graph *g, mg_value x, int rank, const int64_t *shape)
{
    if (rank < 0 || rank > MG_MAX_RANK || (rank > 0 && !shape))
        return sh_bad_arg(g, "reshape", "rank must be 0..6 with a shape");
    mg_attrs *a = mg_attrs_new();
    int ok = a && mg_attrs_set_ints(a, "shape", shape, rank) == MG_OK;
    return mg_elem_add1(g, "reshape", &x, 1, a, ok);
}

mg_value mg_permute(mg_graph *g, mg_value x, int rank, const int *perm)
{
    int64_t p[MG_MAX_RANK];
    if (rank < 0 || rank > MG_MAX_RANK || (rank > 0 && !perm))
        return sh_bad_arg(g, "permute", "rank must be 0..6 with a perm");
    for (int d = 0; d < rank; d++) p[d] = perm[d];
    mg_attrs *a = mg_attrs_new();
    int ok = a && mg_attrs_set_ints(a, "perm", p, rank) == MG_OK;
    return mg_elem_add1(g, "permute", &x, 1, a, ok);
}

mg_value mg_slice(mg_graph *g, mg_value x, int axis, int64_t start, int64_t end)
{
    mg_attrs *a = mg_attrs_new();
    int ok = a && mg_attrs_set_int(a, "axis", axis) == MG_OK &&
             mg_attrs_set_int(a, "start", start) == MG_OK && mg_attrs_set_int(a, "end", end) == MG_OK;
    return mg_elem_add1(g, "slice", &x, 1, a, ok);
}

mg_value mg_concat(mg_graph *g, const mg_value *xs, int n, int axis)
{
    if (n < 1 || !xs) return sh_bad_arg(g, "concat", "needs 1 or more inputs");
    mg_attrs *a = mg_attrs_new();
    int ok = a && mg_attrs_set_int(a, "axis", axis) == MG_OK;
    return mg_elem_add1(g, "concat", xs, n, a, ok);
}

mg_status mg_split(mg_graph *g, mg_value x, int axis, const int64_t *sizes, int n, mg_value *out)
{
    if (n < 1 || n > MG_ATTR_MAX_LIST || !sizes || !out)
        return mg_graph_fail(g, MG_ERR_ARG, "split: needs 1 to %d sizes and outputs",
                           MG_ATTR_MAX_LIST);
    for (int i = 0; i < n; i++) out[i] = MG_VALUE_NONE;
    mg_attrs *a = mg_attrs_new();
    if (!a || mg_attrs_set_int(a, "axis", axis) != MG_OK ||
        mg_attrs_set_ints(a, "sizes", sizes, n) != MG_OK) {
        mg_attrs_free(a);
        return mg_graph_fail(g, MG_ERR_NOMEM, "split: out of memory");
    }
    mg_status s = mg_graph_node(g, "split", NULL, &x, 1, a, out, n, NULL);
    mg_attrs_free(a);
    return s;
}

static mg_value depth_node(mg_graph *g, const char *op, mg_value x, int factor)
{
    mg_attrs *a = mg_attrs_new();
    int ok = a && mg_attrs_set_int(a, "factor", factor) == MG_OK;
    return mg_elem_add1(g, op, &x, 1, a, ok);
}

mg_value mg_space_to_depth(mg_graph *g, mg_value x, int factor)
{
    return depth_node(g, "space_to_depth", x, factor);
}

mg_value mg_depth_to_space(mg_graph *g, mg_value x, int factor)
{
    return depth_node(g, "depth_to_space", x, factor);
}
