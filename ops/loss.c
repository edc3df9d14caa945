/* ops/loss.c: the loss ops, f32 and f64, with backward passes and graph
 * constructors:
 *   normal_logpdf(z[N, ...]) -> [N]: per-sample log density of z under a
 *       standard normal, sum over non-batch dims of -z^2/2 - log(2 pi)/2
 *       (the prior term of a flow's log-likelihood);
 *   mse(a, b) -> scalar: mean((a - b)^2) over all elements.
 * Sums are accumulated in double. */
#include "elem.h"

#define HALF_LOG_2PI 0.91893853320467274178

/* ---- kernels -------------------------------------------------------------------- */

/* out[n] = sum_k (-z[n,k]^2/2) - D*log(2 pi)/2; z is [N, D]. */
#define LOSS_KERNELS(TY, SFX)                                                                 \
    static void nlp_fwd_##SFX(const void *zv, void *ov, int64_t N, int64_t D)                 \
    {                                                                                         \
        const TY *z = zv;                                                                     \
        TY *out = ov;                                                                         \
        _Pragma("omp parallel for schedule(static) if(N > 1 && mg_elem_par(N * D))")         \
        for (int64_t n = 0; n < N; n++) {                                                     \
            const TY *zr = z + n * D;                                                         \
            double s = 0;                                                                     \
            _Pragma("omp simd reduction(+:s)") for (int64_t k = 0; k < D; k++) s +=            \
                (double)zr[k] * zr[k];                                                        \
            out[n] = (TY)(-0.5 * s - (double)D * HALF_LOG_2PI);                               \
        }                                                                                     \
    }                                                                                         \
    /* dz[n,k] = -dout[n] * z[n,k] */                                                         \
    static void nlp_bwd_##SFX(const void *zv, const void *gv, void *dzv, int64_t N, int64_t D) \
    {                                                                                         \
        const TY *z = zv, *g = gv;                                                            \
        TY *dz = dzv;                                                                         \
        _Pragma("omp parallel for schedule(static) if(N > 1 && mg_elem_par(N * D))")         \
        for (int64_t n = 0; n < N; n++) {                                                     \
            const TY gn = -g[n];                                                              \
            for (int64_t k = 0; k < D; k++) dz[n * D + k] = gn * z[n * D + k];                \
        }                                                                                     \
    }                                                                                         \
    /* sum of (a - b)^2 over n elements */                                                    \
    static double mse_fwd_##SFX(const void *av, const void *bv, int64_t n)                    \
    {                                                                                         \
        const TY *a = av, *b = bv;                                                            \
        double s = 0;                                                                         \
        _Pragma("omp parallel for simd schedule(static) reduction(+:s) if(mg_elem_par(n))")  \
        for (int64_t i = 0; i < n; i++) {                                                     \
            double d = (double)a[i] - b[i];                                                   \
            s += d * d;                                                                       \
        }                                                                                     \
        return s;                                                                             \
    }                                                                                         \
    /* da = c * (a - b), db = -da (either may be NULL) */                                     \
    static void mse_bwd_##SFX(const void *av, const void *bv, void *dav, void *dbv, int64_t n, \
                              double c)                                                       \
    {                                                                                         \
        const TY *a = av, *b = bv;                                                            \
        TY *da = dav, *db = dbv;                                                              \
        const TY tc = (TY)c;                                                                  \
        _Pragma("omp parallel for schedule(static) if(mg_elem_par(n))")                      \
        for (int64_t i = 0; i < n; i++) {                                                     \
            TY g = tc * (a[i] - b[i]);                                                        \
            if (da) da[i] = g;                                                                \
            if (db) db[i] = -g;                                                               \
        }                                                                                     \
    }
LOSS_KERNELS(float, f32)
LOSS_KERNELS(double, f64)

/* ---- normal_logpdf -------------------------------------------------------------- */

static mg_status nlp_infer(mg_node *n)
{
    const mg_tensor *z = mg_node_input(n, 0);
    mg_status s = mg_elem_check_dtype(n);
    if (s != MG_OK) return s;
    if (z->rank < 1) {
        char b[MG_ELEM_SHAPE_LEN];
        return mg_node_fail(n, MG_ERR_SHAPE, "input %s must have a batch dim (rank >= 1)",
                            mg_elem_shape(z, b));
    }
    return mg_node_set_output(n, 0, z->dtype, 1, z->shape);
}

/* z as [N, D]. */
static void nlp_dims(const mg_tensor *z, int64_t *N, int64_t *D)
{
    *N = z->shape[0];
    *D = mg_elem_numel(z->rank - 1, z->shape + 1);
}

static mg_status nlp_forward(mg_node *n)
{
    const mg_tensor *z = mg_node_input(n, 0);
    int64_t N, D;
    nlp_dims(z, &N, &D);
    (z->dtype == MG_F64 ? nlp_fwd_f64 : nlp_fwd_f32)(z->data, mg_node_output(n, 0)->data, N, D);
    return MG_OK;
}

static mg_status nlp_backward(mg_node *n)
{
    mg_tensor *dz = mg_node_grad_input(n, 0);
    if (!dz) return MG_OK;
    const mg_tensor *z = mg_node_input(n, 0);
    int64_t N, D;
    nlp_dims(z, &N, &D);
    (z->dtype == MG_F64 ? nlp_bwd_f64 : nlp_bwd_f32)(z->data, mg_node_grad_output(n, 0)->data,
                                                     dz->data, N, D);
    return MG_OK;
}

/* ---- mse ------------------------------------------------------------------------ */

static mg_status mse_infer(mg_node *n)
{
    const mg_tensor *a = mg_node_input(n, 0), *b = mg_node_input(n, 1);
    mg_status s = mg_elem_check_dtype(n);
    if (s != MG_OK) return s;
    if (!mg_tensor_same_shape(a, b)) {
        char ba[MG_ELEM_SHAPE_LEN], bb[MG_ELEM_SHAPE_LEN];
        return mg_node_fail(n, MG_ERR_SHAPE, "a %s and b %s must have the same shape",
                            mg_elem_shape(a, ba), mg_elem_shape(b, bb));
    }
    if (mg_tensor_numel(a) == 0)
        return mg_node_fail(n, MG_ERR_SHAPE, "the mean of zero elements is undefined");
    return mg_node_set_output(n, 0, a->dtype, 0, NULL);
}

static mg_status mse_forward(mg_node *n)
{
    const mg_tensor *a = mg_node_input(n, 0), *b = mg_node_input(n, 1);
    mg_tensor *y = mg_node_output(n, 0);
    int64_t cnt = mg_tensor_numel(a);
    double s = (a->dtype == MG_F64 ? mse_fwd_f64 : mse_fwd_f32)(a->data, b->data, cnt);
    mg_tensor_set(y, 0, s / (double)cnt);
    return MG_OK;
}

/* da = 2 dy (a - b) / count, db = -da. */
static mg_status mse_backward(mg_node *n)
{
    mg_tensor *da = mg_node_grad_input(n, 0), *db = mg_node_grad_input(n, 1);
    if (!da && !db) return MG_OK;
    const mg_tensor *a = mg_node_input(n, 0), *b = mg_node_input(n, 1);
    int64_t cnt = mg_tensor_numel(a);
    double c = 2.0 * mg_tensor_get(mg_node_grad_output(n, 0), 0) / (double)cnt;
    (a->dtype == MG_F64 ? mse_bwd_f64 : mse_bwd_f32)(a->data, b->data, da ? da->data : NULL,
                                                     db ? db->data : NULL, cnt, c);
    return MG_OK;
}

/* ---- registration and constructors ----------------------------------------------- */

static const mg_op_def loss_defs[] = {
    {MG_OP_HEADER, .name = "normal_logpdf",
     .summary = "[N,...] -> [N]: sum of standard-normal log densities per sample",
     .min_inputs = 1, .max_inputs = 1, .num_outputs = 1, .infer = nlp_infer,
     .forward = nlp_forward, .backward = nlp_backward},
    {MG_OP_HEADER, .name = "mse", .summary = "mean((a - b)^2), a scalar", .min_inputs = 2,
     .max_inputs = 2, .num_outputs = 1, .infer = mse_infer, .forward = mse_forward,
     .backward = mse_backward},
};

mg_status mg_ops_register_loss(mg_registry *r)
{
    return MG_OPS_REGISTER_TABLE(r, loss_defs);
}

mg_value mg_normal_logpdf(mg_graph *g, mg_value z)
{
    return mg_ops_add1(g, "normal_logpdf", &z, 1, NULL);
}

mg_value mg_mse(mg_graph *g, mg_value a, mg_value b)
{
    mg_value in[2] = {a, b};
    return mg_ops_add1(g, "mse", in, 2, NULL);
}
