/* mintgrad/ops.h: the built-in ops: graph constructors, and the kernel-level
 * entry points (convolution on given buffers with cached oneDNN primitives)
 * that plugins compose instead of talking to oneDNN themselves.
 *
 * Op names and attributes (all ops have forward and backward):
 *   conv2d(x[N,C,H,W], w[O,C,KH,KW], b[O]?)   stride, padding, dilation (2 ints each)
 *   matmul(a[M,K], b[K,N]) -> [M,N]; batched when both are rank 3 ([B,M,K]x[B,K,N])
 *   linear(x[N,I], w[O,I], b[O]?) -> [N,O]     (y = x w^T + b)
 *   relu, leaky_relu(alpha=0.01), elu(alpha=1), tanh, sigmoid, softplus,
 *   exp, log, abs, square, sqrt, scale(scale=1, shift=0): y = scale*x + shift
 *   add, sub, mul, div                          NumPy broadcasting
 *   sum, mean(axes=[...] (default all), keepdims=0)
 *   reshape(shape=[...], one -1 allowed), permute(perm=[...]),
 *   slice(axis, start, end), concat(axis; 1+ inputs), split(axis, sizes=[...]),
 *   space_to_depth(factor), depth_to_space(factor):
 *       out[n, dy*f*C + dx*C + c, i, j] = in[n, c, f*i+dy, f*j+dx]
 *   normal_logpdf(z[N,...]) -> [N]: sum over non-batch dims of -z^2/2 - log(2 pi)/2
 *   mse(a, b) -> scalar mean((a-b)^2)
 * Every op takes f32; elementwise, binary, reduction and shape ops take f64
 * too (inputs of one node share a dtype). */
#ifndef MINTGRAD_OPS_H
#define MINTGRAD_OPS_H

#include <mintgrad/graph.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Registers every built-in op (called by mg_ctx_new). */
mg_status mg_ops_register_builtin(mg_registry *r);

/* ---- graph constructors ------------------------------------------------------
 * Each adds one node and returns its output (MG_VALUE_NONE on failure; the
 * graph keeps the error, see graph.h). */
mg_value mg_conv2d(mg_graph *g, mg_value x, mg_value w, mg_value b, int stride, int pad);
mg_value mg_conv2d_ex(mg_graph *g, mg_value x, mg_value w, mg_value b,
                      const int stride[2], const int pad[2], const int dilation[2]);
mg_value mg_matmul(mg_graph *g, mg_value a, mg_value b);
mg_value mg_linear(mg_graph *g, mg_value x, mg_value w, mg_value b);
mg_value mg_relu(mg_graph *g, mg_value x);
mg_value mg_leaky_relu(mg_graph *g, mg_value x, double alpha);
mg_value mg_elu(mg_graph *g, mg_value x, double alpha);
mg_value mg_tanh(mg_graph *g, mg_value x);
mg_value mg_sigmoid(mg_graph *g, mg_value x);
mg_value mg_softplus(mg_graph *g, mg_value x);
mg_value mg_exp(mg_graph *g, mg_value x);
mg_value mg_log(mg_graph *g, mg_value x);
mg_value mg_abs(mg_graph *g, mg_value x);
mg_value mg_square(mg_graph *g, mg_value x);
mg_value mg_sqrt(mg_graph *g, mg_value x);
mg_value mg_scale(mg_graph *g, mg_value x, double scale, double shift);
mg_value mg_add(mg_graph *g, mg_value a, mg_value b);
mg_value mg_sub(mg_graph *g, mg_value a, mg_value b);
mg_value mg_mul(mg_graph *g, mg_value a, mg_value b);
mg_value mg_div(mg_graph *g, mg_value a, mg_value b);
/* axes may be NULL (n_axes 0): all axes. Negative axes count from the end. */
mg_value mg_sum(mg_graph *g, mg_value x, const int *axes, int n_axes, int keepdims);
mg_value mg_mean(mg_graph *g, mg_value x, const int *axes, int n_axes, int keepdims);
mg_value mg_reshape(mg_graph *g, mg_value x, int rank, const int64_t *shape);
mg_value mg_permute(mg_graph *g, mg_value x, int rank, const int *perm);
mg_value mg_slice(mg_graph *g, mg_value x, int axis, int64_t start, int64_t end);
mg_value mg_concat(mg_graph *g, const mg_value *xs, int n, int axis);
/* Writes n outputs to out; returns MG_OK or the graph's error. */
mg_status mg_split(mg_graph *g, mg_value x, int axis, const int64_t *sizes, int n, mg_value *out);
mg_value mg_space_to_depth(mg_graph *g, mg_value x, int factor);
mg_value mg_depth_to_space(mg_graph *g, mg_value x, int factor);
mg_value mg_normal_logpdf(mg_graph *g, mg_value z);
mg_value mg_mse(mg_graph *g, mg_value a, mg_value b);

/* ---- convolution kernel --------------------------------------------------------
 * A 2-D convolution (cross-correlation) of fixed shape with its oneDNN
 * primitives, layouts and scratch buffers created once. Weights are plain
 * OIHW f32 and biases (oc). Activations (x, y, dx, dy) are plain contiguous
 * NCHW f32, or, with layout MG_CONV_LAYOUT_NCHW16C, oneDNN's own blocked
 * layout, so that a caller that keeps its tensors that way between
 * convolutions saves the conversions the kernel otherwise runs around each
 * call: [n][ceil(c/16)][h][w][16], channel k of pixel (i, j) of sample n at
 * ((n * ceil(c/16) + k/16) * h * w + i * w + j) * 16 + k % 16
 * (mg_conv2d_act_floats gives the size). The lanes past the last channel are
 * padding: inputs must hold finite values there (zeros), outputs leave
 * them unspecified. Kernel calls run oneDNN's own OpenMP parallelism: do
 * not call them from inside a parallel region. A kernel is not thread-safe. */
typedef struct mg_conv2d_kernel mg_conv2d_kernel;

enum { MG_CONV_LAYOUT_NCHW = 0, MG_CONV_LAYOUT_NCHW16C = 1 };

typedef struct mg_conv2d_shape {
    int64_t n, c, h, w;       /* input  [n, c, h, w] */
    int64_t oc, kh, kw;       /* weights [oc, c, kh, kw] */
    int64_t stride[2], pad[2], dilation[2]; /* dilation 1 = dense */
    int has_bias;
    int layout;               /* of x, y, dx, dy: MG_CONV_LAYOUT_* (0: NCHW) */
    /* pad_asym 0: `pad` on both sides; 1: `pad` before (top, left) and
     * pad_end after (bottom, right), e.g. a 2x3 kernel that keeps a 3x3
     * kernel's top two rows: kh 2, pad {1, 1}, pad_end {0, 1} */
    int pad_asym;
    int64_t pad_end[2];
} mg_conv2d_shape;

/* Padding after the input along axis 0 (height) or 1 (width). */
int64_t mg_conv2d_pad_end(const mg_conv2d_shape *s, int axis);
/* Floats of an [n, c, h, w] activation in `layout`. */
int64_t mg_conv2d_act_floats(int layout, int64_t n, int64_t c, int64_t h, int64_t w);

enum {
    MG_CONV_FWD = 1u,
    MG_CONV_BWD_DATA = 2u,
    MG_CONV_BWD_WEIGHTS = 4u
};

/* Output height and width; MG_ERR_SHAPE if the kernel does not fit. */
mg_status mg_conv2d_out_hw(const mg_conv2d_shape *s, int64_t *oh, int64_t *ow);
/* Creates the primitives for the passes requested (MG_CONV_* bits). Errors
 * (bad shape, oneDNN failure) go to ctx. */
mg_status mg_conv2d_kernel_new(mg_ctx *ctx, const mg_conv2d_shape *s, unsigned passes,
                               mg_conv2d_kernel **out);
void mg_conv2d_kernel_free(mg_conv2d_kernel *k);
/* y[n,oc,oh,ow] = conv(x, w) + b (b may be NULL when has_bias is 0). */
mg_status mg_conv2d_kernel_forward(mg_conv2d_kernel *k, const float *x, const float *w,
                                   const float *b, float *y);
/* dx[n,c,h,w] = conv_transpose(dy, w). */
mg_status mg_conv2d_kernel_backward_data(mg_conv2d_kernel *k, const float *dy, const float *w,
                                         float *dx);
/* dw[oc,c,kh,kw] and (if db is not NULL) db[oc] from x and dy; overwritten.
 * dw may be NULL when only db is wanted (then x may be NULL and the kernel
 * needs no MG_CONV_BWD_WEIGHTS pass). */
mg_status mg_conv2d_kernel_backward_weights(mg_conv2d_kernel *k, const float *x, const float *dy,
                                            float *dw, float *db);
/* Both backward passes of a training step in one call: dx as backward_data,
 * dw and db as backward_weights; any of the three may be NULL (not wanted).
 * Faster than the separate calls: dy is converted to oneDNN's layout once,
 * and when x is the buffer given to the last forward, its converted copy is
 * reused; the caller guarantees x has not changed since that forward. */
mg_status mg_conv2d_kernel_backward(mg_conv2d_kernel *k, const float *x, const float *dy, const float *w,
                                    float *dx, float *dw, float *db);

#ifdef __cplusplus
}
#endif
#endif
