/* ops/dnnl.h: private interface to ops/dnnl.c, the one file that calls
 * oneDNN. conv.c and matmul.c build their kernels from these objects; no
 * oneDNN type appears here.
 *
 * Both objects follow "build once, run many": every oneDNN primitive, every
 * reorder between the caller's plain layout and the layout oneDNN chose, every
 * blocked buffer and the scratchpad are created in _new; a run only points
 * memory objects at the caller's buffers and executes. Blocked buffers that
 * live only during one call, and the scratchpad, are slots of one
 * process-wide pool shared by all objects (grown in _new, freed with the
 * last object); a kernel's forward blocked x stays its own when it also
 * computes weight gradients. Errors in _new and in runs go to the ctx given
 * to _new (kept by the object, which must not outlive it). One object must
 * not be run from two threads at once; runs of different objects are
 * serialised by the pool's lock. Runs use oneDNN's own OpenMP parallelism
 * and must not be called from inside a parallel region. */
#ifndef MG_OPS_DNNL_H
#define MG_OPS_DNNL_H

#include <mintgrad/mintgrad.h>

/* ---- convolution ------------------------------------------------------------
 * The passes of one convolution shape (MG_CONV_* bits); buffers are
 * contiguous f32: weights OIHW, activations NCHW or, with s->layout
 * MG_CONV_LAYOUT_NCHW16C, nChw16c (then oneDNN works on them directly). The
 * shape must already be validated (mg_conv2d_out_hw). */
typedef struct mg_dnnl_conv mg_dnnl_conv;

mg_status mg_dnnl_conv_new(mg_ctx *ctx, const mg_conv2d_shape *s, unsigned passes,
                           mg_dnnl_conv **out);
void mg_dnnl_conv_free(mg_dnnl_conv *c);
/* x is (n, c, h, w), w is (oc, c, kh, kw), b is (oc) or NULL, y is (n, oc, oh, ow). */
mg_status mg_dnnl_conv_forward(mg_dnnl_conv *c, const float *x, const float *w, const float *b,
                               float *y);
/* dy is (n, oc, oh, ow), w is (oc, c, kh, kw), dx is (n, c, h, w). */
mg_status mg_dnnl_conv_backward_data(mg_dnnl_conv *c, const float *dy, const float *w, float *dx);
/* x is (n, c, h, w), dy is (n, oc, oh, ow), dw is (oc, c, kh, kw); with a
 * bias, db (oc) gets the bias gradient (db may be NULL: not wanted). */
mg_status mg_dnnl_conv_backward_weights(mg_dnnl_conv *c, const float *x, const float *dy,
                                        float *dw, float *db);
/* Both backward passes of a step: backward_data when dx is not NULL, then
 * backward_weights when dw is not NULL. dy is converted to the blocked layout
 * once for both; x is not converted again when it is the buffer of the last
 * forward (the caller guarantees it is unchanged since). */
mg_status mg_dnnl_conv_backward(mg_dnnl_conv *c, const float *x, const float *dy, const float *w,
                                float *dx, float *dw, float *db);

/* Benchmark hooks. run_inner executes only the primitive of one pass (one
 * MG_CONV_* bit) on its cached buffers, without any layout conversion; the
 * pass must have run normally once before (so plain-layout arguments are
 * bound). impl names the implementation oneDNN picked ("jit:avx512_core")
 * and layouts describes the layouts of its arguments ('*': converted from or
 * to the caller's layout, '^': blocked buffer shared with an earlier pass);
 * both are "" for a pass that was not created. */
mg_status mg_dnnl_conv_run_inner(mg_dnnl_conv *c, unsigned pass);
const char *mg_dnnl_conv_impl(const mg_dnnl_conv *c, unsigned pass);
const char *mg_dnnl_conv_layouts(const mg_dnnl_conv *c, unsigned pass);

/* ---- matrix multiplication ------------------------------------------------------
 * c = a b (+ bias) over an optional batch, where each operand is a strided
 * view: a is (m, k), b is (k, n), c is (m, n), bias is (n). Strides are in
 * elements, so a transposed operand is just swapped strides. */
typedef struct mg_dnnl_view {
    int64_t row_stride, col_stride, batch_stride; /* batch_stride unused without batch */
} mg_dnnl_view;

typedef struct mg_dnnl_matmul_shape {
    int64_t batch;            /* 0: plain 2-D product; >= 1: batched (rank 3) */
    int64_t m, k, n;
    mg_dnnl_view a, b, c;
    int has_bias;             /* c[.., i, j] += bias[j] */
} mg_dnnl_matmul_shape;

typedef struct mg_dnnl_matmul mg_dnnl_matmul;

/* A row-major (rows, cols) view, batches of rows*cols elements apart. */
mg_dnnl_view mg_dnnl_view_rows(int64_t rows, int64_t cols);
/* The transpose (cols, rows) of a row-major (rows, cols) matrix. */
mg_dnnl_view mg_dnnl_view_transposed(int64_t rows, int64_t cols);

mg_status mg_dnnl_matmul_new(mg_ctx *ctx, const mg_dnnl_matmul_shape *s, mg_dnnl_matmul **out);
void mg_dnnl_matmul_free(mg_dnnl_matmul *mm);
/* Overwrites c; bias may be NULL only when has_bias is 0. */
mg_status mg_dnnl_matmul_run(mg_dnnl_matmul *mm, const float *a, const float *b, const float *bias,
                             float *c);
const char *mg_dnnl_matmul_impl(const mg_dnnl_matmul *mm);

#endif
