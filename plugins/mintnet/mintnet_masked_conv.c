/* plugins/mintnet/mintnet_masked_conv.c: the `mintnet.masked_conv2d` op, a
 * 3x3 convolution (stride 1, padding 1) whose weight is masked type A or B
 * in C x C sub-blocks (spec section 1), usable on its own.
 *
 * mintnet.masked_conv2d(x[N,Cin,H,W], w[Cout,Cin,3,3], b[Cout]?) -> y[N,Cout,H,W]
 * attributes: mask "A" | "B", channels C (Cin and Cout multiples of C).
 * Forward uses w (.) M; backward gives dx through w (.) M and the masked
 * weight gradient dL/dw = (dL/d(w (.) M)) (.) M. f32 only. */
#include "mintnet.h"

#include <inttypes.h>
#include <string.h>

typedef struct mc_state {
    mg_conv2d_kernel *k;
    float *wm;      /* [Cout, Cin, 3, 3] masked weight */
    mn_mask mask;
    int64_t c, oc, ic;
} mc_state;

/* Checks x, w, b and the attributes; fills the mask and C. */
static mg_status mc_check(mg_node *nd, mn_mask *mask, int64_t *C)
{
    const mg_tensor *x = mg_node_input(nd, 0), *w = mg_node_input(nd, 1);
    const mg_attrs *a = mg_node_attrs(nd);
    int m = mn_mask_parse(mg_attrs_str(a, "mask", NULL));
    if (m < 0) return mg_node_fail(nd, MG_ERR_ATTR, "attribute 'mask' must be \"A\" or \"B\"");
    *mask = (mn_mask)m;
    if (x->dtype != MG_F32 || w->dtype != MG_F32)
        return mg_node_fail(nd, MG_ERR_DTYPE, "x and w must be f32");
    if (x->rank != 4 || w->rank != 4 || w->shape[1] != x->shape[1] || w->shape[2] != 3 || w->shape[3] != 3)
        return mg_node_fail(nd, MG_ERR_SHAPE, "x must be [N, Cin, H, W] and w [Cout, Cin, 3, 3]");
    *C = mg_attrs_int(a, "channels", 0);
    if (*C < 1 || x->shape[1] % *C || w->shape[0] % *C)
        return mg_node_fail(nd, MG_ERR_ATTR, "attribute 'channels' (C = %" PRId64 ") must be >= 1 and divide "
                            "Cin = %" PRId64 " and Cout = %" PRId64, *C, x->shape[1], w->shape[0]);
    if (mg_node_num_inputs(nd) == 3) {
        const mg_tensor *b = mg_node_input(nd, 2);
        if (b->dtype != MG_F32 || b->rank != 1 || b->shape[0] != w->shape[0])
            return mg_node_fail(nd, MG_ERR_SHAPE, "b must be f32 [Cout] = [%" PRId64 "]", w->shape[0]);
    }
    return MG_OK;
}

static mg_status mc_infer(mg_node *nd)
{
    mn_mask mask;
    int64_t C;
    mg_status s = mc_check(nd, &mask, &C);
    if (s != MG_OK) return s;
    const mg_tensor *x = mg_node_input(nd, 0);
    const int64_t shape[4] = {x->shape[0], mg_node_input(nd, 1)->shape[0], x->shape[2], x->shape[3]};
    return mg_node_set_output(nd, 0, MG_F32, 4, shape);
}

static void mc_release(mg_node *nd)
{
    mc_state *st = mg_node_state(nd);
    if (!st) return;
    mg_conv2d_kernel_free(st->k);
    mg_free_aligned(st->wm);
    mg_free(st);
    mg_node_set_state(nd, NULL);
}

static mg_status mc_prepare_state(mg_node *nd, mc_state *st)
{
    mg_status s = mc_check(nd, &st->mask, &st->c);
    if (s != MG_OK) return s;
    const mg_tensor *x = mg_node_input(nd, 0);
    int train = mg_node_training(nd);
    st->oc = mg_node_input(nd, 1)->shape[0];
    st->ic = x->shape[1];
    unsigned passes = MG_CONV_FWD | (train && mg_node_needs_grad(nd, 0) ? MG_CONV_BWD_DATA : 0) |
                      (train && mg_node_needs_grad(nd, 1) ? MG_CONV_BWD_WEIGHTS : 0);
    mg_conv2d_shape cs = {.n = x->shape[0], .c = st->ic, .h = x->shape[2], .w = x->shape[3], .oc = st->oc,
                          .kh = 3, .kw = 3, .stride = {1, 1}, .pad = {1, 1}, .dilation = {1, 1},
                          .has_bias = mg_node_num_inputs(nd) == 3};
    st->wm = mg_malloc_aligned((size_t)(st->oc * st->ic * 9) * sizeof(float));
    if (!st->wm) return mg_node_fail(nd, MG_ERR_NOMEM, "out of memory");
    return mg_conv2d_kernel_new(mg_node_ctx(nd), &cs, passes, &st->k);
}

/* Makes the kernel and the masked-weight buffer (freed again on failure). */
static mg_status mc_prepare(mg_node *nd)
{
    mc_state *st = mg_calloc(1, sizeof *st);
    if (!st) return mg_node_fail(nd, MG_ERR_NOMEM, "out of memory");
    mg_node_set_state(nd, st);
    mg_status s = mc_prepare_state(nd, st);
    if (s != MG_OK) mc_release(nd);
    return s;
}

static mg_status mc_forward(mg_node *nd)
{
    mc_state *st = mg_node_state(nd);
    mn_mask_apply(st->mask, st->c, st->oc, st->ic, mg_f32(mg_node_input(nd, 1)), st->wm);
    const float *b = mg_node_num_inputs(nd) == 3 ? mg_f32(mg_node_input(nd, 2)) : NULL;
    return mg_conv2d_kernel_forward(st->k, mg_f32(mg_node_input(nd, 0)), st->wm, b, mg_f32(mg_node_output(nd, 0)));
}

static mg_status mc_backward(mg_node *nd)
{
    mc_state *st = mg_node_state(nd);
    const float *dy = mg_f32(mg_node_grad_output(nd, 0));
    mg_tensor *dx = mg_node_grad_input(nd, 0), *dw = mg_node_grad_input(nd, 1);
    mg_tensor *db = mg_node_num_inputs(nd) == 3 ? mg_node_grad_input(nd, 2) : NULL;
    mg_status s = MG_OK;
    if (dx) s = mg_conv2d_kernel_backward_data(st->k, dy, st->wm, mg_f32(dx));
    if (s == MG_OK && (dw || db))
        s = mg_conv2d_kernel_backward_weights(st->k, mg_f32(mg_node_input(nd, 0)), dy, dw ? mg_f32(dw) : NULL,
                                              db ? mg_f32(db) : NULL);
    if (s == MG_OK && dw) mn_mask_apply(st->mask, st->c, st->oc, st->ic, mg_f32(dw), mg_f32(dw));
    return s;
}

static const char *const mc_attrs[] = {"mask", "channels", NULL};

const mg_op_def mn_masked_conv_def = {
    .struct_size = sizeof(mg_op_def),
    .abi_version = MG_ABI_VERSION,
    .name = "mintnet.masked_conv2d",
    .summary = "3x3 convolution, padding 1, weight masked type A/B in CxC sub-blocks",
    .min_inputs = 2,
    .max_inputs = 3,
    .num_outputs = 1,
    .attr_names = mc_attrs,
    .infer = mc_infer,
    .prepare = mc_prepare,
    .forward = mc_forward,
    .backward = mc_backward,
    .release = mc_release,
};
