/* mintgrad/flow.h: the data side of normalizing flows on 8-bit images
 * (MintNet spec §6): dequantisation, the logit preprocessing with its
 * log-determinant, the flow loss and the bits/dim accounting.
 *
 * Built-in ops (f32 and f64, with backward):
 *   logit(x[N,...]) -> y[N,...], logdet[N]          attr lambda (default 1e-6, 0 <= lambda < 0.5)
 *       p = lambda + (1 - 2 lambda) x,  y = log p - log(1 - p)
 *       logdet[n] = sum_d [softplus(y_d) + softplus(-y_d)] + D log(1 - 2 lambda)
 *       (D = elements per sample). x outside [0, 1] is not clamped: it gives
 *       NaN or infinities, as the formula does.
 *   logit_inverse(y[N,...]) -> x[N,...]             attr lambda
 *       x = (sigmoid(y) - lambda) / (1 - 2 lambda)
 *
 * The pipeline of spec §6: pixels v in {0..255} -> x = (v + u)/256
 * (mg_dequantize) -> y = logit(x) with log-det Ly -> flow z = f(y) with
 * log-det Lf -> loss = mean_n -[log N(z_n; 0, I) + Lf_n] (mg_normal_nll) ->
 * bits/dim = (loss - mean_n Ly_n) / (D ln 2) + 8 (mg_bits_per_dim). */
#ifndef MINTGRAD_FLOW_H
#define MINTGRAD_FLOW_H

#include <mintgrad/graph.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The logit's lambda for MNIST-like data (spec §6; CIFAR-10 uses 0.05). */
#define MG_LOGIT_LAMBDA 1e-6

/* Adds a logit node on x [N, ...] (f32 or f64). Returns y (x's shape);
 * *logdet (if not NULL) gets the per-sample log-det [N]. MG_VALUE_NONE on
 * failure (the graph keeps the error: lambda outside [0, 0.5), a dtype other
 * than f32/f64, rank 0). */
mg_value mg_logit(mg_graph *g, mg_value x, double lambda, mg_value *logdet);
/* Adds a logit_inverse node on y [N, ...]: x = (sigmoid(y) - lambda)/(1 - 2 lambda). */
mg_value mg_logit_inverse(mg_graph *g, mg_value y, double lambda);

/* The flow loss of spec §6 as a scalar value: -mean_n [sum_d (-z_d^2/2 -
 * log(2 pi)/2) + logdet_n], in nats per sample. z is [N, ...]; logdet is
 * [N] or MG_VALUE_NONE (a zero log-det). Built from normal_logpdf, add,
 * mean and scale nodes. MG_VALUE_NONE on failure (error on the graph). */
mg_value mg_normal_nll(mg_graph *g, mg_value z, mg_value logdet);

/* Dequantises 8-bit pixels: out[i] = (pixels[i] + u_i) / 256 with u_i ~
 * U(0, 1) drawn from rng in element order, or u_i = 0.5 when rng is NULL
 * (deterministic evaluation). pixels is u8 of any shape; out is f32 or f64
 * with the same number of elements (caller-owned, contiguous). Fails with
 * MG_ERR_ARG, MG_ERR_DTYPE or MG_ERR_SHAPE (message on ctx if not NULL). */
mg_status mg_dequantize(mg_ctx *ctx, const mg_tensor *pixels, mg_tensor *out, mg_rng *rng);

/* Bits per dimension of the 8-bit data (spec §6): (mean_nll -
 * mean_logit_logdet) / (dims ln 2) + 8, where mean_nll is the flow loss above
 * (nats per sample, in logit space), mean_logit_logdet the batch mean of the
 * logit's log-det and dims = C*H*W. NAN if dims <= 0. */
double mg_bits_per_dim(double mean_nll, double mean_logit_logdet, int64_t dims);

#ifdef __cplusplus
}
#endif
#endif
