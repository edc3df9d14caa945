/* plugins/mintnet/mintnet.h: private declarations shared by the MintNet
 * plugin's files: block dimensions, masks, the effective (masked, sign-ruled)
 * weights, the elementwise kernels in float and double, the double-precision
 * masked 3x3 convolution, and the op and layer tables.
 *
 * Notation (docs/mintnet.md, spec sections 1-3): a block has C input
 * channels, latent factor L and LC = L*C hidden channels; hidden channel
 * q = g*C + c belongs to group g and shadows input channel c. Weights are
 * W1 [LC, C, 3, 3], W2 [LC, LC, 3, 3], W3 [C, LC, 3, 3]; t is [C, H, W].
 * The plugin includes only public mintgrad headers. */
#ifndef MINTNET_PRIVATE_H
#define MINTNET_PRIVATE_H

#include <mintgrad/mintgrad.h>
#include <mintgrad/plugin.h>

#include <stdint.h>

/* ---- dimensions and masks -------------------------------------------------------- */
typedef enum mn_mask {
    MN_MASK_A = 0, /* lower-triangular: output (c, p) depends on inputs at or before it */
    MN_MASK_B = 1  /* upper-triangular: the mirror */
} mn_mask;

/* The sizes of one block applied to a batch. */
typedef struct mn_dims {
    int64_t n, c, l, lc, h, w, hw;
} mn_dims;

/* tau = max(|t|, MN_TAU_MIN), spec section 2. */
#define MN_TAU_MIN 1e-12

/* Parses "A" / "B" (NULL or anything else: -1). */
int mn_mask_parse(const char *s);
/* 1 if the mask keeps entry (o, i, u, v) of a [O, I, 3, 3] weight whose
 * sub-blocks are C x C. */
int mn_mask_keep(mn_mask m, int64_t c, int64_t o, int64_t i, int u, int v);
/* Number of entries of a [O, I, 3, 3] weight the mask keeps. */
int64_t mn_mask_count(mn_mask m, int64_t c, int64_t o, int64_t i);
/* out = w (.) M for a [O, I, 3, 3] weight (out may alias w). */
void mn_mask_apply(mn_mask m, int64_t c, int64_t o, int64_t i, const float *w, float *out);

/* ---- effective weights -------------------------------------------------------------
 * The weights a block actually uses: masked, with W2's centre-diagonal entries
 * replaced by the sign rule, in double (for the f64 path) and float (for the
 * oneDNN kernels), plus the centre entries the Jacobian diagonal needs.
 *   c1[g*C + c]          = w1[g, c]  = W1[gC+c, c, 1, 1]
 *   c3[g*C + c]          = w3[g, c]  = W3[c, gC+c, 1, 1]
 *   c2[(c*L + g2)*L + g1] = w2[g2, g1, c] (after the sign rule)
 *   s2[same]              = d w2[g2, g1, c] / d W2[g2C+c, g1C+c, 1, 1]
 *                         = sgn(w1[g1,c]) sgn(w3[g2,c]) sgn(W2 entry) */
typedef struct mn_wts {
    mn_dims d;
    mn_mask mask;
    double *w1, *w2, *w3;
    float *w1f, *w2f, *w3f;
    /* The kernel rows of W~2 the mask can keep: u0 .. u0 + kh2 - 1 (all three
     * unless C = 1: then type A keeps rows 0-1 and type B rows 1-2, and W2's
     * public kernel is a kh2 x 3 convolution with asymmetric padding, a third
     * fewer FLOPs). w2k is W~2 on those rows, [LC, LC, kh2, 3] (== w2f when
     * kh2 = 3). */
    int u0, kh2;
    float *w2k;
    double *c1, *c2, *c3, *s2;
    float *c1f, *c2f, *c3f;
} mn_wts;

/* Allocates the arrays for a block of dims d. MG_ERR_NOMEM on failure (what
 * was allocated is freed by mn_wts_free). */
mg_status mn_wts_init(mn_wts *w, const mn_dims *d, mn_mask mask);
void mn_wts_free(mn_wts *w);
/* Recomputes everything from the raw (stored) weights. */
void mn_wts_update(mn_wts *w, const float *W1, const float *W2, const float *W3);
/* The first and last kernel rows any entry of a mask with C x C sub-blocks keeps. */
void mn_mask_rows(mn_mask m, int64_t c, int *u0, int *u1);
/* Index of the centre tap (u, v) = (1, 1) of weight entry (o, i). */
static inline int64_t mn_centre(int64_t o, int64_t i, int64_t in_ch) { return (o * in_ch + i) * 9 + 4; }

/* ---- block inputs -------------------------------------------------------------------- */
enum { MN_IN_X = 0, MN_IN_W1, MN_IN_B1, MN_IN_W2, MN_IN_B2, MN_IN_W3, MN_IN_B3, MN_IN_T, MN_NUM_IN };

/* Checks the eight inputs of a block or block-inverse node (x or z first,
 * f32 or f64; parameters f32 with the shapes above) and the mask / latent
 * attributes; fills d (n from x) and *mask. Failures go through mg_node_fail. */
mg_status mn_block_check(mg_node *nd, mn_dims *d, mn_mask *mask);

/* ---- elementwise kernels (mintnet_elem.c), float and double ---------------------------
 * `act` lists the samples to process (nact of them); NULL means all d->n.
 *   mn_elu:   he holds h on entry and ELU'(h) on return; a = ELU(h); both
 *             [N, per].
 *   mn_diag:  D[n,c,p] = tau + sum_g2 w3 e2 (sum_g1 w2 w1 e1) (spec section 3)
 *             for e1, e2 [N, LC, HW]: a per-channel L x L product over pixel
 *             tiles of mn_diag_tile(d) pixels. Writes D [N, C, HW]; if y is
 *             not NULL, y += tau (.) x (y, x [N, C, HW]); if part is not
 *             NULL, part[(n*C + c)*tiles + t] = sum of log D over tile t
 *             (mn_diag_parts(d) doubles in all).
 *   mn_tau:   tau[c, p] = max(|t|, 1e-12).
 *   mn_inv_start: x = z / tau (all samples).
 *   mn_inv_resid: res[n] = max |z - y| (NaN propagates) and, when ss is
 *             not NULL, ss[n] = sum (z - y)^2 for the samples in act (act
 *             required); part is scratch of 2*N*C doubles.
 *   mn_inv_step: x += (z - y) / (beta D) for the samples in act.
 *   mn_inv_accept: step = (z - y) / D, xprev = x for the samples in act.
 *   mn_inv_trial: x = xprev + step / beta[n] for the samples n in act. */
#define MN_TILE_MAX 256
int64_t mn_diag_tile(const mn_dims *d);
static inline int64_t mn_diag_parts(const mn_dims *d)
{
    int64_t p = mn_diag_tile(d);
    return d->n * d->c * ((d->hw + p - 1) / p);
}
#define MN_ELEM_DECL(T, S)                                                                            \
    void mn_elu_##S(T *he, T *a, int64_t per, const mn_dims *d, const int *act, int nact);             \
    void mn_diag_##S(const mn_wts *w, const T *e1, const T *e2, const T *tau, T *D, const T *x, T *y,  \
                     double *part, const int *act, int nact);                                         \
    void mn_tau_##S(const float *t, T *tau, int64_t n);                                                \
    void mn_inv_start_##S(const mn_dims *d, const T *z, const T *tau, T *x);                          \
    void mn_inv_resid_##S(const mn_dims *d, const T *z, const T *y, double *part, double *res,        \
                          double *ss, const int *act, int nact);                                      \
    void mn_inv_step_##S(const mn_dims *d, const T *z, const T *y, const T *D, T beta, T *x,           \
                         const int *act, int nact);                                                   \
    void mn_inv_accept_##S(const mn_dims *d, const T *z, const T *y, const T *D, T *step, T *xprev,    \
                           const T *x, const int *act, int nact);                                     \
    void mn_inv_trial_##S(const mn_dims *d, const T *step, const T *xprev, const double *beta, T *x,   \
                          const int *act, int nact);
MN_ELEM_DECL(float, f32)
MN_ELEM_DECL(double, f64)
#undef MN_ELEM_DECL
/* logdet[n] = sum of the sample's mn_diag parts (f32 or f64 output). */
void mn_logdet_sum(const mn_dims *d, const double *part, void *logdet, mg_dtype dt);

/* ---- the plugin's own 3x3 convolution (mintnet_conv.c), float and double ----------------
 * y[n, o] = b[o] + sum_{i,u,v} w[o, i, u, v] x[n, i, y+u-1, x+v-1], zero
 * padding 1, for the samples in act (NULL: all n). x is (N, I, H, W), y is
 * (N, O, H, W); pad is scratch (N, I, H+2, W+2) whose border must be zero
 * (allocate it zeroed; the kernel only writes the interior). Pairs of output
 * channels whose taps are all zero for an input channel (masked out) skip
 * it. b may be NULL. */
typedef struct mn_conv3 {
    int64_t n, in, out, h, w;
} mn_conv3;
void mn_conv3_f32(const mn_conv3 *s, const float *x, float *pad, const float *w, const float *b, float *y,
                  const int *act, int nact);
void mn_conv3_f64(const mn_conv3 *s, const double *x, double *pad, const double *w, const float *b, double *y,
                  const int *act, int nact);

/* x (N, I, H, W) into the interior of pad (N, I, H+2, W+2), all samples. */
void mn_pad_f32(const mn_conv3 *s, const float *x, float *pad);

/* ---- thin convolutions' gradients (mintnet_wgrad.c) ------------------------------------
 * mn_wgrad_thin_f32: the weight gradient of a block convolution between
 * `thick` [N, LC, H, W] and the thin tensor [N, C, H, W] given as thin_pad
 * (mn_pad_f32). thick_is_dy: thick is dL/dh1 and thin is x, dw is dL/dW~1
 * [LC, C, 3, 3]; else thick is a2 and thin is dL/dy, dw is dL/dW~3
 * [C, LC, 3, 3]. Entries of (output, input) pairs the mask zeroes entirely
 * get 0; rows is scratch of LC * H * (W+2) floats. Deterministic.
 * mn_channel_sum_f32: out[c] = sum over samples and pixels of x [N, ch, HW]
 * (a bias gradient), summed in double. */
void mn_wgrad_thin_f32(const mn_dims *d, mn_mask mask, const float *thick, const float *thin_pad, int thick_is_dy,
                       float *rows, float *dw);
void mn_channel_sum_f32(const mn_dims *d, int64_t ch, const float *x, float *out);

/* ---- the f64 evaluation of a block (mintnet_eval64.c) --------------------------------
 * Buffers for f(x) and D(x) in double. */
typedef struct mn_eval64 {
    mn_dims d;
    double *pad;               /* [N, max(C, LC), H+2, W+2], border zero */
    double *e1, *a1, *e2, *a2; /* [N, LC, HW] */
    double *tau;               /* [C, HW] */
} mn_eval64;
/* Allocates the buffers; MG_ERR_NOMEM (then call mn_eval64_free). */
mg_status mn_eval64_init(mn_eval64 *e, const mn_dims *d);
void mn_eval64_free(mn_eval64 *e);
/* Sets tau from the raw t [C, H, W]. */
void mn_eval64_set_t(mn_eval64 *e, const float *t);
/* y = f(x), D (Jacobian diagonal) and, when part is not NULL, the log-det
 * parts (mn_diag_f64) for the samples in act. x, y, D are [N, C, HW]. */
void mn_eval64_run(mn_eval64 *e, const mn_wts *w, const float *b1, const float *b2, const float *b3,
                   const double *x, double *y, double *D, double *part, const int *act, int nact);

/* ---- the f32 evaluation of a block (mintnet_block.c) --------------------------------
 * f(x) and D(x) in float through the public convolution kernels (created
 * once, in prepare). The convolutions always run on the whole batch; act
 * restricts the elementwise work. When C < MN_OWN_CONV_BELOW, the block's
 * thin convolutions (W1: C -> LC and W3: LC -> C, every pass: forward,
 * backward-data, weight and bias gradients) run on the plugin's own kernels
 * (mintnet_conv.c, mintnet_wgrad.c) and only W2 uses the public kernel:
 * oneDNN pads a 1- or 4-channel side to 16 and converts the thick side's
 * layout around each call. Measured with tests/bench/bench_mintnet, batch 32,
 * 2 threads: MNIST training step 0.52-0.60 s with every convolution on the
 * public kernel, 0.44-0.47 s this way; the small model's 31-32 ms against
 * 33-34 ms when the C = 16 blocks are routed to the own kernels too, so
 * those stay on the public kernel. */
#define MN_OWN_CONV_BELOW 16
static inline int mn_own_conv(int64_t c) { return c < MN_OWN_CONV_BELOW; }
/* A blocked block (thin convolutions on the own kernels, LC > 16 and not a
 * multiple of 16) runs W2 on nChw16c activations (MG_CONV_LAYOUT_NCHW16C):
 * a1 and h2 (forward), dh2 and W2's backward-data output stay blocked, and
 * the conversions are fused into the ELU and gradient-combination passes
 * (mintnet_blocked.c). At the MNIST model's first stage (LC = 45) this
 * removes four conversions of 4.5 MB per block and training step, which
 * oneDNN runs through its generic reorder because 45 channels do not fill
 * whole blocks. With LC a multiple of 16 its reorders are fast and the
 * fused passes cost more (small model, LC = 16: 34.7 against 34.0 ms a
 * step), so those blocks stay plain. */
static inline int mn_blocked(const mn_dims *d) { return mn_own_conv(d->c) && d->lc > 16 && d->lc % 16 != 0; }
/* Floats of an [N, LC, HW] tensor in the blocked layout. */
static inline int64_t mn_blocked_floats(const mn_dims *d) { return d->n * ((d->lc + 15) / 16 * 16) * d->hw; }
typedef struct mn_eval32 {
    mn_dims d;
    mg_conv2d_kernel *k1, *k2, *k3; /* x -> h1, a1 -> h2, a2 -> y */
    float *e1, *a1, *e2, *a2;       /* [N, LC, HW]; a1 blocked when mn_blocked(d) (plain in
                                       mn_eval32_run_direct) */
    float *hb;                      /* blocked: h2 as W2 writes it; the backward reuses
                                       it for the blocked dL/dh2 */
    float *tau;                     /* [C, HW] */
    float *pad;                     /* mn_eval32_direct_init: conv scratch, as mn_eval64
                                       (always allocated when mn_own_conv(C)) */
    /* k1 and k3 are NULL when mn_own_conv(C) */
} mn_eval32;
/* Creates the kernels with the given passes (MG_CONV_* bits, FWD always
 * added) and the buffers. Errors go to ctx; call mn_eval32_free after a
 * failure too. */
mg_status mn_eval32_init(mn_eval32 *e, mg_ctx *ctx, const mn_wts *w, const unsigned passes[3]);
void mn_eval32_free(mn_eval32 *e);
void mn_eval32_set_t(mn_eval32 *e, const float *t);
/* Also prepares mn_eval32_run_direct (MG_ERR_NOMEM on failure); a no-op
 * when already done. */
mg_status mn_eval32_direct_init(mn_eval32 *e);
/* y = f(x), D and (part not NULL) the log-det parts, as mn_eval64_run. */
mg_status mn_eval32_run(mn_eval32 *e, const mn_wts *w, const float *b1, const float *b2, const float *b3,
                        const float *x, float *y, float *D, double *part, const int *act, int nact);
/* The same on the plugin's own convolution, which touches only the samples
 * in act: cheaper than the batch-sized kernels once few samples remain. */
void mn_eval32_run_direct(mn_eval32 *e, const mn_wts *w, const float *b1, const float *b2, const float *b3,
                          const float *x, float *y, float *D, double *part, const int *act, int nact);

/* ---- layout-changing elementwise steps of a blocked block (mintnet_blocked.c) -------- */
void mn_elu_to_blocked(const mn_dims *d, float *he, float *ab, const int *act, int nact);
void mn_elu_from_blocked(const mn_dims *d, const float *hb, float *a, float *e, const int *act, int nact);
void mn_combine_to_blocked(const mn_dims *d, const float *dh, const float *tmp, const float *e, float *outb);
void mn_combine_from_blocked(const mn_dims *d, float *dh, int has_dh, const float *tmpb, const float *e);

/* ---- block backward (mintnet_block_bwd.c) ------------------------------------------- */
/* Per-compile backward buffers of a block node. */
typedef struct mn_bwd {
    float *dh1, *dh2, *tmp; /* [N, LC, HW]; tmp sized for the blocked layout too */
    float *rho;             /* [N, C, HW]: d loss / d D */
    float *w1t;             /* [C, LC, 3, 3]: W~1 transposed and flipped (own backward-data) */
    float *w3t;             /* [LC, C, 3, 3]: W~3 transposed and flipped (own backward-data) */
    float *rows;            /* [LC, H, W+2]: mn_wgrad_thin_f32 scratch */
    float *gw2k;            /* [LC, LC, kh2, 3] when kh2 < 3: W2's kernel-row gradient */
    float *gacc;            /* [N*C][L*L + 32L] per-(sample, channel) centre gradients:
                               dL/dW2c, then 16 partial sums each of dL/dw1, dL/dw3 */
    double *gc;             /* [C][L*L + 2L] their sums over samples: W2c, w1, w3 */
} mn_bwd;
mg_status mn_bwd_init(mn_bwd *b, const mn_wts *w);
void mn_bwd_free(mn_bwd *b);
/* The backward pass of a block node (f32), given its forward buffers. */
mg_status mn_block_backward32(mg_node *nd, const mn_wts *w, mn_eval32 *ev, const float *D, mn_bwd *b);

/* ---- registration ---------------------------------------------------------------------- */
extern const mg_op_def mn_masked_conv_def;
extern const mg_op_def mn_block_def;
extern const mg_op_def mn_block_inverse_def;
extern const mg_layer_def mn_block_layer_def;

/* The plugin's init, for static linking: mg_plugin_register_static(ctx,
 * "mintnet", mg_mintnet_plugin_init). The shared object also exports it as
 * mg_plugin_init. */
mg_status mg_mintnet_plugin_init(mg_registry *reg, const mg_host_api *host);

#endif
