/* ops/conv.c: 2-D convolution: the public kernel API (mg_conv2d_kernel_*,
 * over the cached oneDNN passes of ops/dnnl.c; the bias gradient comes from
 * the backward-weights primitive, or from our own sum when no weights pass
 * runs) and the `conv2d` op built on it.
 *
 * conv2d(x[N,C,H,W], w[O,C,KH,KW], b[O]?) -> y[N,O,OH,OW], attributes
 * stride, padding, dilation (1 or 2 ints each; defaults 1, 0, 1), with
 *   OH = (H + 2*pad - dilation*(KH-1) - 1) / stride + 1   (likewise OW)
 *   y[n,o,i,j] = b[o] + sum_{c,p,q} x[n, c, i*s - pad + p*d, j*s - pad + q*d] w[o,c,p,q]
 * (zero outside x). The kernel is created in prepare with only the passes the
 * compile needs; forward and backward just run it. */
#include "elem.h"

#include "dnnl.h"

#include <inttypes.h>
#include <stdio.h>

/* ---- kernel -------------------------------------------------------------------- */
struct mg_conv2d_kernel {
    mg_ctx *ctx;
    mg_conv2d_shape s;
    int64_t oh, ow;
    unsigned passes;
    mg_dnnl_conv *dnnl;
};

/* One output extent for padding pad0 before and pad1 after; -1 when the
 * (dilated) kernel is larger than the padded input. */
static int64_t conv_out_len(int64_t in, int64_t k, int64_t stride, int64_t pad0, int64_t pad1, int64_t dil)
{
    int64_t span = dil * (k - 1) + 1;
    if (in + pad0 + pad1 < span) return -1;
    return (in + pad0 + pad1 - span) / stride + 1;
}

int64_t mg_conv2d_pad_end(const mg_conv2d_shape *s, int axis)
{
    return s->pad_asym ? s->pad_end[axis] : s->pad[axis];
}

int64_t mg_conv2d_act_floats(int layout, int64_t n, int64_t c, int64_t h, int64_t w)
{
    return n * (layout == MG_CONV_LAYOUT_NCHW16C ? (c + 15) / 16 * 16 : c) * h * w;
}

static int conv_shape_sane(const mg_conv2d_shape *s)
{
    int ok = s->layout >= MG_CONV_LAYOUT_NCHW && s->layout <= MG_CONV_LAYOUT_NCHW16C && s->n > 0 && s->c > 0 && s->h > 0 && s->w > 0 && s->oc > 0 && s->kh > 0 && s->kw > 0;
    for (int i = 0; i < 2; i++)
        ok = ok && s->stride[i] > 0 && s->pad[i] >= 0 && mg_conv2d_pad_end(s, i) >= 0 && s->dilation[i] > 0;
    return ok;
}

mg_status mg_conv2d_out_hw(const mg_conv2d_shape *s, int64_t *oh, int64_t *ow)
{
    if (!s || !conv_shape_sane(s)) return MG_ERR_ARG;
    int64_t h = conv_out_len(s->h, s->kh, s->stride[0], s->pad[0], mg_conv2d_pad_end(s, 0), s->dilation[0]);
    int64_t w = conv_out_len(s->w, s->kw, s->stride[1], s->pad[1], mg_conv2d_pad_end(s, 1), s->dilation[1]);
    if (h < 1 || w < 1) return MG_ERR_SHAPE;
    if (oh) *oh = h;
    if (ow) *ow = w;
    return MG_OK;
}

/* Checks s for the kernel, with a message naming the shapes. */
static mg_status conv_kernel_check(mg_ctx *ctx, const mg_conv2d_shape *s, int64_t *oh, int64_t *ow)
{
    mg_status st = mg_conv2d_out_hw(s, oh, ow);
    if (st == MG_ERR_ARG)
        return mg_ctx_fail(ctx, st, "conv2d kernel: sizes must be >= 1, stride and dilation >= 1, padding >= 0, "
                           "layout MG_CONV_LAYOUT_NCHW or _NCHW16C");
    if (st != MG_OK)
        return mg_ctx_fail(ctx, st,
                           "conv2d kernel: %" PRId64 "x%" PRId64 " kernel (dilation %" PRId64 ",%" PRId64
                           ") does not fit the %" PRId64 "x%" PRId64 " input padded by %" PRId64 ",%" PRId64
                           " before and %" PRId64 ",%" PRId64 " after",
                           s->kh, s->kw, s->dilation[0], s->dilation[1], s->h, s->w, s->pad[0], s->pad[1],
                           mg_conv2d_pad_end(s, 0), mg_conv2d_pad_end(s, 1));
    return MG_OK;
}

mg_status mg_conv2d_kernel_new(mg_ctx *ctx, const mg_conv2d_shape *s, unsigned passes, mg_conv2d_kernel **out)
{
    if (!out) return mg_ctx_fail(ctx, MG_ERR_ARG, "conv2d kernel: out is NULL");
    *out = NULL;
    if (!s) return mg_ctx_fail(ctx, MG_ERR_ARG, "conv2d kernel: shape is NULL");
    if (!passes || (passes & ~7u))
        return mg_ctx_fail(ctx, MG_ERR_ARG, "conv2d kernel: passes must be a non-empty set of MG_CONV_* bits");
    mg_conv2d_kernel *k = mg_calloc(1, sizeof *k);
    if (!k) return mg_ctx_fail(ctx, MG_ERR_NOMEM, "conv2d kernel: out of memory");
    *k = (mg_conv2d_kernel){.ctx = ctx, .s = *s, .passes = passes};
    mg_status st = conv_kernel_check(ctx, s, &k->oh, &k->ow);
    if (st == MG_OK) st = mg_dnnl_conv_new(ctx, s, passes, &k->dnnl);
    if (st != MG_OK) {
        mg_conv2d_kernel_free(k);
        return st;
    }
    *out = k;
    return MG_OK;
}

void mg_conv2d_kernel_free(mg_conv2d_kernel *k)
{
    if (!k) return;
    mg_dnnl_conv_free(k->dnnl);
    mg_free(k);
}

/* Fails unless the kernel was made with `pass`. */
static mg_status conv_need_pass(const mg_conv2d_kernel *k, unsigned pass, const char *what)
{
    if (k->passes & pass) return MG_OK;
    return mg_ctx_fail(k->ctx, MG_ERR_STATE, "conv2d kernel: %s was not requested when the kernel was made "
                       "(pass MG_CONV_%s to mg_conv2d_kernel_new)", what,
                       pass == MG_CONV_FWD ? "FWD" : pass == MG_CONV_BWD_DATA ? "BWD_DATA" : "BWD_WEIGHTS");
}

mg_status mg_conv2d_kernel_forward(mg_conv2d_kernel *k, const float *x, const float *w, const float *b, float *y)
{
    mg_status st = conv_need_pass(k, MG_CONV_FWD, "forward");
    if (st != MG_OK) return st;
    if (!x || !w || !y || (k->s.has_bias && !b))
        return mg_ctx_fail(k->ctx, MG_ERR_ARG, "conv2d kernel forward: NULL buffer (x, w, y%s)",
                           k->s.has_bias ? " and b" : "");
    return mg_dnnl_conv_forward(k->dnnl, x, w, k->s.has_bias ? b : NULL, y);
}

mg_status mg_conv2d_kernel_backward_data(mg_conv2d_kernel *k, const float *dy, const float *w, float *dx)
{
    mg_status st = conv_need_pass(k, MG_CONV_BWD_DATA, "backward_data");
    if (st != MG_OK) return st;
    if (!dy || !w || !dx) return mg_ctx_fail(k->ctx, MG_ERR_ARG, "conv2d kernel backward_data: NULL buffer");
    return mg_dnnl_conv_backward_data(k->dnnl, dy, w, dx);
}

/* db[o] = sum over n, i, j of dy[n, o, i, j]; dy is (n, oc, oh, ow), or
 * blocked (n, oc/16, oh, ow, 16) with padding lanes dropped. Used when no
 * backward-weights pass runs (its primitive sums db itself). */
static void conv_bias_grad(const mg_conv2d_kernel *k, const float *dy, float *db)
{
    if (k->s.layout == MG_CONV_LAYOUT_NCHW) {
        const int64_t shape[3] = {k->s.n, k->s.oc, k->oh * k->ow};
        const int red[3] = {1, 0, 1};
        mg_elem_reduce_sum(MG_F32, dy, db, 3, shape, red, 1.0);
        return;
    }
    const int64_t cb = (k->s.oc + 15) / 16, hw = k->oh * k->ow;
    for (int64_t o = 0; o < k->s.oc; o++) {
        double s = 0;
        for (int64_t n = 0; n < k->s.n; n++) {
            const float *p = dy + ((n * cb + o / 16) * hw) * 16 + o % 16;
            for (int64_t i = 0; i < hw; i++) s += p[i * 16];
        }
        db[o] = (float)s;
    }
}

/* Checks the buffers and passes a backward call needs. */
static mg_status conv_backward_check(mg_conv2d_kernel *k, const float *x, const float *dy, const float *w,
                                     const float *dx, const float *dw)
{
    mg_status st = MG_OK;
    if (!dy || (dw && !x) || (dx && !w))
        return mg_ctx_fail(k->ctx, MG_ERR_ARG, "conv2d kernel backward: NULL buffer");
    if (dx) st = conv_need_pass(k, MG_CONV_BWD_DATA, "backward_data");
    if (st == MG_OK && dw) st = conv_need_pass(k, MG_CONV_BWD_WEIGHTS, "backward_weights");
    return st;
}

mg_status mg_conv2d_kernel_backward_weights(mg_conv2d_kernel *k, const float *x, const float *dy, float *dw,
                                            float *db)
{
    mg_status st = conv_backward_check(k, x, dy, NULL, NULL, dw);
    if (st != MG_OK) return st;
    if (db && (!dw || !k->s.has_bias)) conv_bias_grad(k, dy, db);
    if (!dw) return MG_OK;
    return mg_dnnl_conv_backward_weights(k->dnnl, x, dy, dw, k->s.has_bias ? db : NULL);
}

mg_status mg_conv2d_kernel_backward(mg_conv2d_kernel *k, const float *x, const float *dy, const float *w,
                                    float *dx, float *dw, float *db)
{
    mg_status st = conv_backward_check(k, x, dy, w, dx, dw);
    if (st != MG_OK) return st;
    if (db && (!dw || !k->s.has_bias)) conv_bias_grad(k, dy, db);
    if (!dx && !dw) return MG_OK;
    return mg_dnnl_conv_backward(k->dnnl, x, dy, w, dx, dw, k->s.has_bias ? db : NULL);
}

/* ---- the conv2d op ---------------------------------------------------------------- */

/* Reads attribute `key` as 1 or 2 ints (one int applies to both dims), each
 * at least `min`; `dflt` when absent. */
static mg_status conv_attr_pair(mg_node *n, const char *key, int64_t dflt, int64_t min, int64_t out[2])
{
    const mg_attrs *a = mg_node_attrs(n);
    mg_attr_kind kind = mg_attrs_kind(a, key);
    int64_t v[MG_ATTR_MAX_LIST];
    out[0] = out[1] = dflt;
    if (kind == MG_ATTR_NONE) return MG_OK;
    int len = kind == MG_ATTR_INT || kind == MG_ATTR_INTS ? mg_attrs_ints(a, key, v, MG_ATTR_MAX_LIST) : -1;
    if (len != 1 && len != 2)
        return mg_node_fail(n, MG_ERR_ATTR, "attribute '%s' must be 1 or 2 ints (height, width)", key);
    out[0] = v[0];
    out[1] = v[len - 1];
    if (out[0] < min || out[1] < min)
        return mg_node_fail(n, MG_ERR_ATTR, "attribute '%s' is [%" PRId64 ", %" PRId64 "]; each must be >= %" PRId64,
                            key, out[0], out[1], min);
    return MG_OK;
}

/* Checks that input i is an f32 tensor of the given rank. */
static mg_status conv_check_input(mg_node *n, int i, const char *name, int rank, const char *layout)
{
    const mg_tensor *t = mg_node_input(n, i);
    char buf[96];
    if (t->dtype == MG_F32 && t->rank == rank) return MG_OK;
    return mg_node_fail(n, t->dtype == MG_F32 ? MG_ERR_SHAPE : MG_ERR_DTYPE, "%s must be f32%s, got %s", name,
                        layout, mg_tensor_str(t, buf, sizeof buf));
}

/* The kernel shape of node n from its inputs and attributes (validated). */
static mg_status conv_node_shape(mg_node *n, mg_conv2d_shape *s)
{
    int64_t stride[2], pad[2], dil[2];
    mg_status st = conv_check_input(n, 0, "x", 4, "[N, C, H, W]");
    if (st == MG_OK) st = conv_check_input(n, 1, "w", 4, "[O, C, KH, KW]");
    if (st == MG_OK && mg_node_num_inputs(n) > 2) st = conv_check_input(n, 2, "b", 1, "[O]");
    if (st == MG_OK) st = conv_attr_pair(n, "stride", 1, 1, stride);
    if (st == MG_OK) st = conv_attr_pair(n, "padding", 0, 0, pad);
    if (st == MG_OK) st = conv_attr_pair(n, "dilation", 1, 1, dil);
    if (st != MG_OK) return st;
    const int64_t *x = mg_node_input(n, 0)->shape, *w = mg_node_input(n, 1)->shape;
    *s = (mg_conv2d_shape){.n = x[0], .c = x[1], .h = x[2], .w = x[3], .oc = w[0], .kh = w[2], .kw = w[3],
                           .stride = {stride[0], stride[1]}, .pad = {pad[0], pad[1]},
                           .dilation = {dil[0], dil[1]}, .has_bias = mg_node_num_inputs(n) > 2};
    return MG_OK;
}

/* Shape agreement between x, w and b, with messages naming the sizes. */
static mg_status conv_check_shapes(mg_node *n, const mg_conv2d_shape *s)
{
    char ws[64];
    const mg_tensor *w = mg_node_input(n, 1);
    mg_shape_str(w->rank, w->shape, ws, sizeof ws);
    if (s->c != w->shape[1])
        return mg_node_fail(n, MG_ERR_SHAPE, "channel mismatch: x has C=%" PRId64 " channels but w %s "
                            "[O, C, KH, KW] expects C=%" PRId64, s->c, ws, w->shape[1]);
    if (s->has_bias && mg_node_input(n, 2)->shape[0] != s->oc)
        return mg_node_fail(n, MG_ERR_SHAPE, "bias b has %" PRId64 " elements but w %s has O=%" PRId64
                            " output channels", mg_node_input(n, 2)->shape[0], ws, s->oc);
    if (s->n < 1 || s->c < 1 || s->h < 1 || s->w < 1 || s->oc < 1 || s->kh < 1 || s->kw < 1)
        return mg_node_fail(n, MG_ERR_SHAPE, "x and w must have no empty dimension");
    return MG_OK;
}

static mg_status conv_infer(mg_node *n)
{
    mg_conv2d_shape s;
    int64_t oh = 0, ow = 0;
    mg_status st = conv_node_shape(n, &s);
    if (st == MG_OK) st = conv_check_shapes(n, &s);
    if (st != MG_OK) return st;
    if (mg_conv2d_out_hw(&s, &oh, &ow) != MG_OK)
        return mg_node_fail(n, MG_ERR_SHAPE,
                            "kernel %" PRId64 "x%" PRId64 " (dilation %" PRId64 ",%" PRId64 ", extent %" PRId64
                            "x%" PRId64 ") is larger than the padded input %" PRId64 "x%" PRId64
                            " (H, W = %" PRId64 ", %" PRId64 " plus padding %" PRId64 ",%" PRId64 " each side)",
                            s.kh, s.kw, s.dilation[0], s.dilation[1], s.dilation[0] * (s.kh - 1) + 1,
                            s.dilation[1] * (s.kw - 1) + 1, s.h + 2 * s.pad[0], s.w + 2 * s.pad[1], s.h, s.w,
                            s.pad[0], s.pad[1]);
    int64_t y[4] = {s.n, s.oc, oh, ow};
    return mg_node_set_output(n, 0, MG_F32, 4, y);
}

/* Only the passes this compile needs: backward ones when training and the
 * input (x for data, w for weights) wants a gradient. The bias gradient
 * needs no pass of its own. */
static unsigned conv_passes(const mg_node *n)
{
    unsigned p = MG_CONV_FWD;
    if (!mg_node_training(n)) return p;
    if (mg_node_needs_grad(n, 0)) p |= MG_CONV_BWD_DATA;
    if (mg_node_needs_grad(n, 1)) p |= MG_CONV_BWD_WEIGHTS;
    return p;
}

static mg_status conv_prepare(mg_node *n)
{
    mg_conv2d_shape s;
    mg_conv2d_kernel *k = NULL;
    char why[256];
    mg_status st = conv_node_shape(n, &s);
    if (st != MG_OK) return st;
    st = mg_conv2d_kernel_new(mg_node_ctx(n), &s, conv_passes(n), &k);
    if (st != MG_OK) {
        snprintf(why, sizeof why, "%s", mg_ctx_error(mg_node_ctx(n)));
        return mg_node_fail(n, st, "cannot create the convolution kernel: %s", why);
    }
    mg_node_set_state(n, k);
    return MG_OK;
}

static mg_status conv_forward(mg_node *n)
{
    mg_conv2d_kernel *k = mg_node_state(n);
    const float *b = mg_node_num_inputs(n) > 2 ? mg_f32(mg_node_input(n, 2)) : NULL;
    return mg_conv2d_kernel_forward(k, mg_f32(mg_node_input(n, 0)), mg_f32(mg_node_input(n, 1)), b,
                                    mg_f32(mg_node_output(n, 0)));
}

static mg_status conv_backward(mg_node *n)
{
    mg_tensor *dx = mg_node_grad_input(n, 0), *dw = mg_node_grad_input(n, 1);
    mg_tensor *db = mg_node_num_inputs(n) > 2 ? mg_node_grad_input(n, 2) : NULL;
    return mg_conv2d_kernel_backward(mg_node_state(n), mg_f32(mg_node_input(n, 0)),
                                     mg_f32(mg_node_grad_output(n, 0)), mg_f32(mg_node_input(n, 1)),
                                     dx ? mg_f32(dx) : NULL, dw ? mg_f32(dw) : NULL, db ? mg_f32(db) : NULL);
}

static void conv_release(mg_node *n)
{
    mg_conv2d_kernel_free(mg_node_state(n));
    mg_node_set_state(n, NULL);
}

/* ---- constructors and registration ------------------------------------------------ */
mg_value mg_conv2d_ex(mg_graph *g, mg_value x, mg_value w, mg_value b, const int stride[2], const int pad[2],
                      const int dilation[2])
{
    mg_attrs *a = mg_attrs_new();
    if (!a) {
        mg_ctx_fail(mg_graph_ctx(g), MG_ERR_NOMEM, "conv2d: out of memory for attributes");
        return MG_VALUE_NONE;
    }
    const int *src[3] = {stride, pad, dilation};
    const char *keys[3] = {"stride", "padding", "dilation"};
    mg_status st = MG_OK;
    for (int i = 0; i < 3 && st == MG_OK; i++)
        if (src[i]) st = mg_attrs_set_ints(a, keys[i], (const int64_t[2]){src[i][0], src[i][1]}, 2);
    if (st != MG_OK) {
        mg_attrs_free(a);
        mg_ctx_fail(mg_graph_ctx(g), st, "conv2d: cannot store attributes");
        return MG_VALUE_NONE;
    }
    mg_value in[3] = {x, w, b};
    return mg_ops_add1(g, "conv2d", in, mg_value_ok(b) ? 3 : 2, a);
}

mg_value mg_conv2d(mg_graph *g, mg_value x, mg_value w, mg_value b, int stride, int pad)
{
    const int s[2] = {stride, stride}, p[2] = {pad, pad};
    return mg_conv2d_ex(g, x, w, b, s, p, NULL);
}

static const char *const conv_attr_names[] = {"stride", "padding", "dilation", NULL};

mg_status mg_ops_register_conv(mg_registry *r)
{
    static const mg_op_def conv2d = {
        MG_OP_HEADER,
        .name = "conv2d",
        .summary = "2-D convolution of x[N,C,H,W] with w[O,C,KH,KW] plus optional b[O] (oneDNN)",
        .min_inputs = 2,
        .max_inputs = 3,
        .num_outputs = 1,
        .attr_names = conv_attr_names,
        .infer = conv_infer,
        .prepare = conv_prepare,
        .forward = conv_forward,
        .backward = conv_backward,
        .release = conv_release,
    };
    return mg_registry_add_op(r, &conv2d);
}
