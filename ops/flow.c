/* ops/flow.c: the data side of image flows (flow.h, spec §6): the logit op
 * with its per-sample log-det and its inverse, both with backward in f32
 * and f64, and the helpers for dequantisation, the flow loss and bits/dim.
 *
 * Kernels work per element in double precision whatever the storage type:
 * p near lambda = 1e-6 loses digits in float, and the cost is nothing next to
 * the flow's convolutions. Tensors are contiguous and viewed as [N, D]. */
#include "elem.h"

#include <mintgrad/flow.h>

static const char *const logit_attrs[] = {"lambda", NULL};

/* ---- infer ------------------------------------------------------------------ */

/* Reads lambda (default MG_LOGIT_LAMBDA); MG_ERR_ATTR unless 0 <= lambda < 0.5. */
static mg_status read_lambda(mg_node *n, double *lam)
{
    const mg_attrs *a = mg_node_attrs(n);
    mg_attr_kind k = mg_attrs_kind(a, "lambda");
    if (k != MG_ATTR_NONE && k != MG_ATTR_INT && k != MG_ATTR_FLOAT)
        return mg_node_fail(n, MG_ERR_ATTR, "attribute 'lambda' must be a number");
    *lam = mg_attrs_float(a, "lambda", MG_LOGIT_LAMBDA);
    if (!(*lam >= 0 && *lam < 0.5))
        return mg_node_fail(n, MG_ERR_ATTR, "lambda must be in [0, 0.5), got %g", *lam);
    return MG_OK;
}

/* x is f32/f64 [N, ...] with rank >= 1. */
static mg_status check_input(mg_node *n)
{
    const mg_tensor *x = mg_node_input(n, 0);
    if (x->dtype != MG_F32 && x->dtype != MG_F64)
        return mg_node_fail(n, MG_ERR_DTYPE, "input is %s; this op takes f32 or f64", mg_dtype_name(x->dtype));
    if (x->rank < 1)
        return mg_node_fail(n, MG_ERR_SHAPE, "input must be [N, ...] (rank >= 1), got a scalar");
    return MG_OK;
}

/* Outputs: y like x, and (logit only) logdet [N]. */
static mg_status flow_infer(mg_node *n, int with_logdet)
{
    double lam;
    mg_status s = check_input(n);
    if (s == MG_OK) s = read_lambda(n, &lam);
    if (s != MG_OK) return s;
    const mg_tensor *x = mg_node_input(n, 0);
    s = mg_node_set_output(n, 0, x->dtype, x->rank, x->shape);
    if (s == MG_OK && with_logdet) s = mg_node_set_output(n, 1, x->dtype, 1, x->shape);
    return s;
}

static mg_status logit_infer(mg_node *n) { return flow_infer(n, 1); }
static mg_status logit_inverse_infer(mg_node *n) { return flow_infer(n, 0); }

/* ---- scalar math ---------------------------------------------------------------- */

/* softplus(y) + softplus(-y) = |y| + 2 log(1 + e^-|y|), without overflow. */
static inline double softplus_pair(double y)
{
    double a = fabs(y);
    return a + 2 * log1p(exp(-a));
}

static inline double sigmoid(double y)
{
    if (y >= 0) return 1 / (1 + exp(-y));
    double e = exp(y);
    return e / (1 + e);
}

/* Element i of a f32/f64 array as a double, and the reverse. */
static inline double ld(const void *a, int f64, int64_t i)
{
    return f64 ? ((const double *)a)[i] : (double)((const float *)a)[i];
}

static inline void st(void *a, int f64, int64_t i, double v)
{
    if (f64)
        ((double *)a)[i] = v;
    else
        ((float *)a)[i] = (float)v;
}

/* ---- logit ------------------------------------------------------------------------ */

/* x, y are [N, D]; ld_out is [N]. y = log p - log(1-p), p = lam + (1-2 lam) x;
 * ld_out[n] = sum_d softplus_pair(y_nd) + D log(1 - 2 lam). */
static void logit_fwd(const void *x, void *y, void *ld_out, int f64, int64_t N, int64_t D, double lam)
{
    const double c = 1 - 2 * lam, base = (double)D * log1p(-2 * lam);
#pragma omp parallel for schedule(static) if (mg_elem_par(N * D))
    for (int64_t n = 0; n < N; n++) {
        double acc = 0;
        for (int64_t i = n * D; i < (n + 1) * D; i++) {
            double p = lam + c * ld(x, f64, i);
            double v = log(p) - log1p(-p);
            st(y, f64, i, v);
            acc += softplus_pair(v);
        }
        st(ld_out, f64, n, acc + base);
    }
}

/* dx = dy/dx * (gy + gl[n] (2p - 1)), dy/dx = (1 - 2 lam) / (p (1 - p)):
 * d logdet/dx = d/dy [softplus_pair(y)] dy/dx = (2 sigmoid(y) - 1) dy/dx and
 * sigmoid(y) = p. gy, dx are [N, D]; gl is [N]. */
static void logit_bwd(const void *x, const void *gy, const void *gl, void *dx, int f64, int64_t N, int64_t D,
                      double lam)
{
    const double c = 1 - 2 * lam;
#pragma omp parallel for schedule(static) if (mg_elem_par(N * D))
    for (int64_t n = 0; n < N; n++) {
        double g_ld = ld(gl, f64, n);
        for (int64_t i = n * D; i < (n + 1) * D; i++) {
            double p = lam + c * ld(x, f64, i);
            double dydx = c / (p * (1 - p));
            st(dx, f64, i, dydx * (ld(gy, f64, i) + g_ld * (2 * p - 1)));
        }
    }
}

/* Samples N and per-sample size D of a [N, ...] tensor. */
static void rows(const mg_tensor *t, int64_t *N, int64_t *D)
{
    *N = t->shape[0];
    *D = *N ? mg_tensor_numel(t) / *N : 0;
}

static mg_status logit_forward(mg_node *n)
{
    double lam;
    mg_status s = read_lambda(n, &lam);
    if (s != MG_OK) return s;
    const mg_tensor *x = mg_node_input(n, 0);
    int64_t N, D;
    rows(x, &N, &D);
    logit_fwd(x->data, mg_node_output(n, 0)->data, mg_node_output(n, 1)->data, x->dtype == MG_F64, N, D, lam);
    return MG_OK;
}

static mg_status logit_backward(mg_node *n)
{
    mg_tensor *dx = mg_node_grad_input(n, 0);
    double lam;
    if (!dx) return MG_OK;
    mg_status s = read_lambda(n, &lam);
    if (s != MG_OK) return s;
    const mg_tensor *x = mg_node_input(n, 0);
    int64_t N, D;
    rows(x, &N, &D);
    logit_bwd(x->data, mg_node_grad_output(n, 0)->data, mg_node_grad_output(n, 1)->data, dx->data,
              x->dtype == MG_F64, N, D, lam);
    return MG_OK;
}

/* ---- logit_inverse ------------------------------------------------------------------ */

/* y, x are flat [M]: x = (sigmoid(y) - lam) / (1 - 2 lam). */
static void logit_inv_fwd(const void *y, void *x, int f64, int64_t M, double lam)
{
    const double c = 1 - 2 * lam;
#pragma omp parallel for schedule(static) if (mg_elem_par(M))
    for (int64_t i = 0; i < M; i++) st(x, f64, i, (sigmoid(ld(y, f64, i)) - lam) / c);
}

/* dy = gx * sigmoid(y) (1 - sigmoid(y)) / (1 - 2 lam); all flat [M]. */
static void logit_inv_bwd(const void *y, const void *gx, void *dy, int f64, int64_t M, double lam)
{
    const double c = 1 - 2 * lam;
#pragma omp parallel for schedule(static) if (mg_elem_par(M))
    for (int64_t i = 0; i < M; i++) {
        double sg = sigmoid(ld(y, f64, i));
        st(dy, f64, i, ld(gx, f64, i) * sg * (1 - sg) / c);
    }
}

static mg_status logit_inverse_forward(mg_node *n)
{
    double lam;
    mg_status s = read_lambda(n, &lam);
    if (s != MG_OK) return s;
    const mg_tensor *y = mg_node_input(n, 0);
    logit_inv_fwd(y->data, mg_node_output(n, 0)->data, y->dtype == MG_F64, mg_tensor_numel(y), lam);
    return MG_OK;
}

static mg_status logit_inverse_backward(mg_node *n)
{
    mg_tensor *dy = mg_node_grad_input(n, 0);
    double lam;
    if (!dy) return MG_OK;
    mg_status s = read_lambda(n, &lam);
    if (s != MG_OK) return s;
    const mg_tensor *y = mg_node_input(n, 0);
    logit_inv_bwd(y->data, mg_node_grad_output(n, 0)->data, dy->data, y->dtype == MG_F64, mg_tensor_numel(y),
                  lam);
    return MG_OK;
}

static const mg_op_def flow_defs[] = {
    {MG_OP_HEADER, .name = "logit", .summary = "y = log p - log(1-p), p = lambda + (1-2 lambda) x; "
                                                "outputs y and the per-sample log-det [N]",
     .min_inputs = 1, .max_inputs = 1, .num_outputs = 2, .attr_names = logit_attrs, .infer = logit_infer,
     .forward = logit_forward, .backward = logit_backward},
    {MG_OP_HEADER, .name = "logit_inverse", .summary = "x = (sigmoid(y) - lambda) / (1 - 2 lambda)",
     .min_inputs = 1, .max_inputs = 1, .num_outputs = 1, .attr_names = logit_attrs,
     .infer = logit_inverse_infer, .forward = logit_inverse_forward, .backward = logit_inverse_backward},
};

mg_status mg_ops_register_flow(mg_registry *r)
{
    return MG_OPS_REGISTER_TABLE(r, flow_defs);
}

/* ---- constructors --------------------------------------------------------------------- */

/* Adds a node of op (logit or logit_inverse) with attr lambda; writes up to
 * max_out outputs. */
static mg_status lambda_node(mg_graph *g, const char *op, mg_value in, double lambda, mg_value *out, int max_out)
{
    for (int i = 0; i < max_out; i++) out[i] = MG_VALUE_NONE;
    mg_attrs *a = mg_attrs_new();
    if (!a || mg_attrs_set_float(a, "lambda", lambda) != MG_OK) {
        mg_attrs_free(a);
        return mg_graph_fail(g, MG_ERR_NOMEM, "%s: out of memory building attributes", op);
    }
    mg_status s = mg_graph_node(g, op, NULL, &in, 1, a, out, max_out, NULL);
    mg_attrs_free(a);
    return s;
}

mg_value mg_logit(mg_graph *g, mg_value x, double lambda, mg_value *logdet)
{
    mg_value out[2];
    lambda_node(g, "logit", x, lambda, out, 2);
    if (logdet) *logdet = out[1];
    return out[0];
}

mg_value mg_logit_inverse(mg_graph *g, mg_value y, double lambda)
{
    mg_value out;
    lambda_node(g, "logit_inverse", y, lambda, &out, 1);
    return out;
}

mg_value mg_normal_nll(mg_graph *g, mg_value z, mg_value logdet)
{
    mg_value lp = mg_normal_logpdf(g, z);
    if (mg_value_ok(logdet)) lp = mg_add(g, lp, logdet);
    return mg_scale(g, mg_mean(g, lp, NULL, 0, 0), -1.0, 0.0);
}

/* ---- helpers on tensors ----------------------------------------------------------------- */

mg_status mg_dequantize(mg_ctx *ctx, const mg_tensor *pixels, mg_tensor *out, mg_rng *rng)
{
    if (!pixels || !out || !pixels->data || !out->data)
        return mg_ctx_fail(ctx, MG_ERR_ARG, "mg_dequantize: pixels and out are required");
    if (pixels->dtype != MG_U8 || (out->dtype != MG_F32 && out->dtype != MG_F64))
        return mg_ctx_fail(ctx, MG_ERR_DTYPE, "mg_dequantize: pixels must be u8 and out f32/f64, got %s and %s",
                           mg_dtype_name(pixels->dtype), mg_dtype_name(out->dtype));
    int64_t M = mg_tensor_numel(pixels);
    if (M != mg_tensor_numel(out) || !mg_tensor_is_contiguous(pixels) || !mg_tensor_is_contiguous(out))
        return mg_ctx_fail(ctx, MG_ERR_SHAPE,
                           "mg_dequantize: pixels (%lld elements) and out (%lld) must be contiguous and "
                           "of equal size",
                           (long long)M, (long long)mg_tensor_numel(out));
    const uint8_t *v = pixels->data;
    int f64 = out->dtype == MG_F64;
    for (int64_t i = 0; i < M; i++) {
        double u = rng ? mg_rng_uniform(rng) : 0.5;
        st(out->data, f64, i, (v[i] + u) / 256.0);
    }
    return MG_OK;
}

double mg_bits_per_dim(double mean_nll, double mean_logit_logdet, int64_t dims)
{
    if (dims <= 0) return NAN;
    return (mean_nll - mean_logit_logdet) / ((double)dims * log(2.0)) + 8.0;
}
