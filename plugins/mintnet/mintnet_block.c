/* plugins/mintnet/mintnet_block.c: the `mintnet.block` op (spec sections
 * 2-3) and the f32 block evaluation it shares with the inverse.
 *
 * mintnet.block(x[N,C,H,W], w1[LC,C,3,3], b1[LC], w2[LC,LC,3,3], b2[LC],
 *               w3[C,LC,3,3], b3[C], t[C,H,W]) -> (y[N,C,H,W], logdet[N])
 * attributes: mask "A" | "B" (required), latent L (optional: checked against
 * w1). x may be f32 (forward and backward, on the public convolution
 * kernels) or f64 (forward only, in double throughout, for accuracy checks);
 * parameters are f32. Outputs have x's dtype. Everything a step needs is
 * allocated in prepare and kept in the node state. */
#include "mintnet.h"

#include <inttypes.h>
#include <string.h>

/* ---- input checking (shared with the inverse) ---------------------------------------- */

/* Checks input i: f32, rank 4 or less, with the expected sizes. */
static mg_status check_param(mg_node *nd, int i, const char *name, int rank, const int64_t *want)
{
    const mg_tensor *t = mg_node_input(nd, i);
    char got[96], exp[96];
    if (t->dtype != MG_F32)
        return mg_node_fail(nd, MG_ERR_DTYPE, "%s must be f32, got %s", name, mg_dtype_name(t->dtype));
    int ok = t->rank == rank;
    for (int k = 0; ok && k < rank; k++) ok = t->shape[k] == want[k];
    if (ok) return MG_OK;
    return mg_node_fail(nd, MG_ERR_SHAPE, "%s must be %s, got %s", name, mg_shape_str(rank, want, exp, sizeof exp),
                        mg_shape_str(t->rank, t->shape, got, sizeof got));
}

/* Reads C, L and the spatial size from x and w1. */
static mg_status check_dims(mg_node *nd, mn_dims *d)
{
    const mg_tensor *x = mg_node_input(nd, MN_IN_X), *w1 = mg_node_input(nd, MN_IN_W1);
    char b[96];
    if (x->dtype != MG_F32 && x->dtype != MG_F64)
        return mg_node_fail(nd, MG_ERR_DTYPE, "x must be f32 or f64, got %s", mg_dtype_name(x->dtype));
    if (x->rank != 4 || x->shape[0] < 1 || x->shape[1] < 1 || x->shape[2] < 1 || x->shape[3] < 1)
        return mg_node_fail(nd, MG_ERR_SHAPE, "x must be [N, C, H, W] with every size >= 1, got %s",
                            mg_shape_str(x->rank, x->shape, b, sizeof b));
    *d = (mn_dims){.n = x->shape[0], .c = x->shape[1], .h = x->shape[2], .w = x->shape[3]};
    d->hw = d->h * d->w;
    if (w1->rank != 4 || w1->shape[0] < d->c || w1->shape[0] % d->c)
        return mg_node_fail(nd, MG_ERR_SHAPE,
                            "w1 must be [L*C, C, 3, 3] with L >= 1 and C = %" PRId64 " (x's channels), got %s",
                            d->c, mg_shape_str(w1->rank, w1->shape, b, sizeof b));
    d->lc = w1->shape[0];
    d->l = d->lc / d->c;
    return MG_OK;
}

/* Checks the mask and latent attributes. */
static mg_status check_attrs(mg_node *nd, const mn_dims *d, mn_mask *mask)
{
    const mg_attrs *a = mg_node_attrs(nd);
    int m = mn_mask_parse(mg_attrs_str(a, "mask", NULL));
    if (m < 0)
        return mg_node_fail(nd, MG_ERR_ATTR, "attribute 'mask' must be \"A\" or \"B\" (got %s%s%s)",
                            mg_attrs_has(a, "mask") ? "\"" : "", mg_attrs_str(a, "mask", "nothing"),
                            mg_attrs_has(a, "mask") ? "\"" : "");
    *mask = (mn_mask)m;
    int64_t l = mg_attrs_int(a, "latent", d->l);
    if (l != d->l)
        return mg_node_fail(nd, MG_ERR_ATTR, "attribute latent = %" PRId64 " but w1 has %" PRId64 " = %" PRId64
                            " x %" PRId64 " rows (latent x channels)", l, d->lc, d->l, d->c);
    return MG_OK;
}

mg_status mn_block_check(mg_node *nd, mn_dims *d, mn_mask *mask)
{
    mg_status s = check_dims(nd, d);
    if (s != MG_OK) return s;
    const int64_t C = d->c, LC = d->lc;
    const int64_t sw1[4] = {LC, C, 3, 3}, sw2[4] = {LC, LC, 3, 3}, sw3[4] = {C, LC, 3, 3};
    const int64_t sb1[1] = {LC}, sb3[1] = {C}, st[3] = {C, d->h, d->w};
    if ((s = check_param(nd, MN_IN_W1, "w1", 4, sw1)) != MG_OK) return s;
    if ((s = check_param(nd, MN_IN_B1, "b1", 1, sb1)) != MG_OK) return s;
    if ((s = check_param(nd, MN_IN_W2, "w2", 4, sw2)) != MG_OK) return s;
    if ((s = check_param(nd, MN_IN_B2, "b2", 1, sb1)) != MG_OK) return s;
    if ((s = check_param(nd, MN_IN_W3, "w3", 4, sw3)) != MG_OK) return s;
    if ((s = check_param(nd, MN_IN_B3, "b3", 1, sb3)) != MG_OK) return s;
    if ((s = check_param(nd, MN_IN_T, "t", 3, st)) != MG_OK) return s;
    return check_attrs(nd, d, mask);
}

/* ---- f32 evaluation --------------------------------------------------------------------- */

/* A 3x3 convolution, or with u0 / kh given (W2, mn_wts) only kernel rows
 * u0 .. u0 + kh - 1 of one, with the padding that keeps the output size. */
static mg_status new_kernel(mg_ctx *ctx, const mn_dims *d, int64_t in, int64_t out, unsigned passes, int layout,
                            int u0, int kh, mg_conv2d_kernel **k)
{
    mg_conv2d_shape s = {.n = d->n, .c = in, .h = d->h, .w = d->w, .oc = out, .kh = kh, .kw = 3,
                         .stride = {1, 1}, .pad = {1 - u0, 1}, .dilation = {1, 1}, .has_bias = 1, .layout = layout,
                         .pad_asym = 1, .pad_end = {u0 + kh - 2, 1}};
    return mg_conv2d_kernel_new(ctx, &s, passes | MG_CONV_FWD, k);
}

mg_status mn_eval32_init(mn_eval32 *e, mg_ctx *ctx, const mn_wts *w, const unsigned passes[3])
{
    const mn_dims *d = &w->d;
    memset(e, 0, sizeof *e);
    e->d = *d;
    const int own = mn_own_conv(d->c); /* then W1 and W3 never use k1, k3 */
    const int blocked = mn_blocked(d);
    mg_status s = own ? MG_OK : new_kernel(ctx, d, d->c, d->lc, passes[0], MG_CONV_LAYOUT_NCHW, 0, 3, &e->k1);
    if (s == MG_OK)
        s = new_kernel(ctx, d, d->lc, d->lc, passes[1], blocked ? MG_CONV_LAYOUT_NCHW16C : MG_CONV_LAYOUT_NCHW,
                       w->u0, w->kh2, &e->k2);
    if (s == MG_OK && !own) s = new_kernel(ctx, d, d->lc, d->c, passes[2], MG_CONV_LAYOUT_NCHW, 0, 3, &e->k3);
    if (s != MG_OK) return s;
    size_t big = (size_t)(d->n * d->lc * d->hw) * sizeof(float), blk = (size_t)mn_blocked_floats(d) * sizeof(float);
    e->e1 = mg_malloc_aligned(big);
    e->a1 = mg_malloc_aligned(blocked ? blk : big);
    e->e2 = mg_malloc_aligned(big);
    e->a2 = mg_malloc_aligned(big);
    e->tau = mg_malloc_aligned((size_t)(d->c * d->hw) * sizeof(float));
    int blk_ok = 1;
    if (blocked) { /* finite padding lanes from the start (mn_elu_to_blocked writes only active samples) */
        e->hb = mg_malloc_aligned(blk);
        blk_ok = e->a1 && e->hb;
        if (blk_ok) memset(e->a1, 0, blk), memset(e->hb, 0, blk);
    }
    int pad_ok = !mn_own_conv(d->c) || mn_eval32_direct_init(e) == MG_OK;
    if (!e->e1 || !e->a1 || !e->e2 || !e->a2 || !e->tau || !pad_ok || !blk_ok)
        return mg_ctx_fail(ctx, MG_ERR_NOMEM, "mintnet block: out of memory for %" PRId64 "x%" PRId64
                           "x%" PRId64 "x%" PRId64 " activations", d->n, d->lc, d->h, d->w);
    return MG_OK;
}

void mn_eval32_free(mn_eval32 *e)
{
    if (!e) return;
    mg_conv2d_kernel_free(e->k1);
    mg_conv2d_kernel_free(e->k2);
    mg_conv2d_kernel_free(e->k3);
    mg_free_aligned(e->e1);
    mg_free_aligned(e->a1);
    mg_free_aligned(e->e2);
    mg_free_aligned(e->a2);
    mg_free_aligned(e->hb);
    mg_free_aligned(e->tau);
    mg_free(e->pad);
    memset(e, 0, sizeof *e);
}

mg_status mn_eval32_direct_init(mn_eval32 *e)
{
    const mn_dims *d = &e->d;
    if (e->pad) return MG_OK;
    int64_t ch = d->lc > d->c ? d->lc : d->c;
    e->pad = mg_calloc((size_t)(d->n * ch * (d->h + 2) * (d->w + 2)), sizeof(float));
    return e->pad ? MG_OK : MG_ERR_NOMEM;
}

void mn_eval32_set_t(mn_eval32 *e, const float *t) { mn_tau_f32(t, e->tau, e->d.c * e->d.hw); }

mg_status mn_eval32_run(mn_eval32 *e, const mn_wts *w, const float *b1, const float *b2, const float *b3,
                        const float *x, float *y, float *D, double *part, const int *act, int nact)
{
    const mn_dims *d = &e->d;
    const int own = mn_own_conv(d->c);
    const mn_conv3 s1 = {d->n, d->c, d->lc, d->h, d->w}, s3 = {d->n, d->lc, d->c, d->h, d->w};
    mg_status s = MG_OK;
    if (own)
        mn_conv3_f32(&s1, x, e->pad, w->w1f, b1, e->e1, NULL, 0);
    else if ((s = mg_conv2d_kernel_forward(e->k1, x, w->w1f, b1, e->e1)) != MG_OK)
        return s;
    if (mn_blocked(d)) {
        mn_elu_to_blocked(d, e->e1, e->a1, act, nact);
        if ((s = mg_conv2d_kernel_forward(e->k2, e->a1, w->w2k, b2, e->hb)) != MG_OK) return s;
        mn_elu_from_blocked(d, e->hb, e->a2, e->e2, act, nact);
    } else {
        mn_elu_f32(e->e1, e->a1, d->lc * d->hw, d, act, nact);
        if ((s = mg_conv2d_kernel_forward(e->k2, e->a1, w->w2k, b2, e->e2)) != MG_OK) return s;
        mn_elu_f32(e->e2, e->a2, d->lc * d->hw, d, act, nact);
    }
    if (own)
        mn_conv3_f32(&s3, e->a2, e->pad, w->w3f, b3, y, NULL, 0);
    else if ((s = mg_conv2d_kernel_forward(e->k3, e->a2, w->w3f, b3, y)) != MG_OK)
        return s;
    mn_diag_f32(w, e->e1, e->e2, e->tau, D, x, y, part, act, nact);
    return MG_OK;
}

void mn_eval32_run_direct(mn_eval32 *e, const mn_wts *w, const float *b1, const float *b2, const float *b3,
                          const float *x, float *y, float *D, double *part, const int *act, int nact)
{
    const mn_dims *d = &e->d;
    const mn_conv3 s1 = {d->n, d->c, d->lc, d->h, d->w}, s2 = {d->n, d->lc, d->lc, d->h, d->w},
                   s3 = {d->n, d->lc, d->c, d->h, d->w};
    mn_conv3_f32(&s1, x, e->pad, w->w1f, b1, e->e1, act, nact);
    mn_elu_f32(e->e1, e->a1, d->lc * d->hw, d, act, nact);
    mn_conv3_f32(&s2, e->a1, e->pad, w->w2f, b2, e->e2, act, nact);
    mn_elu_f32(e->e2, e->a2, d->lc * d->hw, d, act, nact);
    mn_conv3_f32(&s3, e->a2, e->pad, w->w3f, b3, y, act, nact);
    mn_diag_f32(w, e->e1, e->e2, e->tau, D, x, y, part, act, nact);
}

/* ---- the op ----------------------------------------------------------------------------- */

typedef struct blk_state {
    mn_dims d;
    mn_mask mask;
    int f64, backward;
    mn_wts w;
    mn_eval32 ev;      /* f32 */
    mn_eval64 ev64;    /* f64 */
    void *D;           /* [N, C, HW] Jacobian diagonal, x's dtype */
    double *part;      /* log-det parts */
    mn_bwd bwd;
} blk_state;

static mg_status blk_infer(mg_node *nd)
{
    mn_dims d;
    mn_mask mask;
    mg_status s = mn_block_check(nd, &d, &mask);
    if (s != MG_OK) return s;
    const mg_tensor *x = mg_node_input(nd, MN_IN_X);
    s = mg_node_set_output(nd, 0, x->dtype, 4, x->shape);
    if (s == MG_OK) s = mg_node_set_output(nd, 1, x->dtype, 1, x->shape);
    return s;
}

static void blk_release(mg_node *nd)
{
    blk_state *st = mg_node_state(nd);
    if (!st) return;
    mn_wts_free(&st->w);
    mn_eval32_free(&st->ev);
    mn_eval64_free(&st->ev64);
    mg_free_aligned(st->D);
    mg_free(st->part);
    mn_bwd_free(&st->bwd);
    mg_free(st);
    mg_node_set_state(nd, NULL);
}

/* The oneDNN passes each convolution needs for the gradients this compile asks for. */
static void blk_passes(mg_node *nd, unsigned p[3], int *any)
{
    int need[MN_NUM_IN];
    for (int i = 0; i < MN_NUM_IN; i++) need[i] = mg_node_training(nd) && mg_node_needs_grad(nd, i);
    int dh1 = need[MN_IN_X] || need[MN_IN_W1] || need[MN_IN_B1];
    int dh2 = dh1 || need[MN_IN_W2] || need[MN_IN_B2];
    p[0] = (need[MN_IN_X] ? MG_CONV_BWD_DATA : 0) | (need[MN_IN_W1] ? MG_CONV_BWD_WEIGHTS : 0);
    p[1] = (dh1 ? MG_CONV_BWD_DATA : 0) | (need[MN_IN_W2] ? MG_CONV_BWD_WEIGHTS : 0);
    p[2] = (dh2 ? MG_CONV_BWD_DATA : 0) | (need[MN_IN_W3] ? MG_CONV_BWD_WEIGHTS : 0);
    *any = 0;
    for (int i = 0; i < MN_NUM_IN; i++) *any |= need[i];
}

static mg_status blk_prepare_buffers(mg_node *nd, blk_state *st)
{
    const mn_dims *d = &st->d;
    mg_ctx *ctx = mg_node_ctx(nd);
    unsigned passes[3];
    mg_status s = mn_wts_init(&st->w, d, st->mask);
    blk_passes(nd, passes, &st->backward);
    if (s == MG_OK && st->backward && st->f64)
        return mg_node_fail(nd, MG_ERR_UNSUPPORTED, "the f64 block is forward-only (for accuracy checks); "
                            "train with f32 inputs");
    if (s == MG_OK && !st->f64) s = mn_eval32_init(&st->ev, ctx, &st->w, passes);
    if (s == MG_OK && st->f64) s = mn_eval64_init(&st->ev64, d);
    if (s == MG_OK && st->backward) s = mn_bwd_init(&st->bwd, &st->w);
    st->D = mg_malloc_aligned((size_t)(d->n * d->c * d->hw) * (st->f64 ? sizeof(double) : sizeof(float)));
    st->part = mg_malloc((size_t)mn_diag_parts(d) * sizeof(double));
    if (s == MG_OK && (!st->D || !st->part)) s = MG_ERR_NOMEM;
    if (s == MG_ERR_NOMEM) return mg_node_fail(nd, s, "out of memory for the block's buffers");
    return s;
}

static mg_status blk_prepare(mg_node *nd)
{
    blk_state *st = mg_calloc(1, sizeof *st);
    if (!st) return mg_node_fail(nd, MG_ERR_NOMEM, "out of memory");
    mg_node_set_state(nd, st);
    mg_status s = mn_block_check(nd, &st->d, &st->mask);
    st->f64 = mg_node_input(nd, MN_IN_X)->dtype == MG_F64;
    if (s == MG_OK) s = blk_prepare_buffers(nd, st);
    if (s != MG_OK) blk_release(nd);
    return s;
}

static const float *in_f32(mg_node *nd, int i) { return mg_f32(mg_node_input(nd, i)); }

static mg_status blk_forward(mg_node *nd)
{
    blk_state *st = mg_node_state(nd);
    if (!st) return mg_node_fail(nd, MG_ERR_STATE, "forward before prepare");
    mn_wts_update(&st->w, in_f32(nd, MN_IN_W1), in_f32(nd, MN_IN_W2), in_f32(nd, MN_IN_W3));
    const float *b1 = in_f32(nd, MN_IN_B1), *b2 = in_f32(nd, MN_IN_B2), *b3 = in_f32(nd, MN_IN_B3);
    mg_tensor *y = mg_node_output(nd, 0), *ld = mg_node_output(nd, 1);
    if (st->f64) {
        mn_eval64_set_t(&st->ev64, in_f32(nd, MN_IN_T));
        mn_eval64_run(&st->ev64, &st->w, b1, b2, b3, mg_f64(mg_node_input(nd, MN_IN_X)), mg_f64(y), st->D,
                      st->part, NULL, 0);
    } else {
        mn_eval32_set_t(&st->ev, in_f32(nd, MN_IN_T));
        mg_status s = mn_eval32_run(&st->ev, &st->w, b1, b2, b3, in_f32(nd, MN_IN_X), mg_f32(y), st->D,
                                    st->part, NULL, 0);
        if (s != MG_OK) return s;
    }
    mn_logdet_sum(&st->d, st->part, ld->data, ld->dtype);
    return MG_OK;
}

static mg_status blk_backward(mg_node *nd)
{
    blk_state *st = mg_node_state(nd);
    if (!st || !st->backward)
        return mg_node_fail(nd, MG_ERR_STATE, "backward on a node prepared without gradients");
    return mn_block_backward32(nd, &st->w, &st->ev, st->D, &st->bwd);
}

static const char *const blk_attrs[] = {"mask", "latent", NULL};

const mg_op_def mn_block_def = {
    .struct_size = sizeof(mg_op_def),
    .abi_version = MG_ABI_VERSION,
    .name = "mintnet.block",
    .summary = "MintNet block (masked convs, ELU, tau*x): outputs y and the per-sample log|det J|",
    .min_inputs = MN_NUM_IN,
    .max_inputs = MN_NUM_IN,
    .num_outputs = 2,
    .attr_names = blk_attrs,
    .infer = blk_infer,
    .prepare = blk_prepare,
    .forward = blk_forward,
    .backward = blk_backward,
    .release = blk_release,
};
