/* mintgrad/model.h: flow models built from a loaded spec (mintgrad/spec.h).
 *
 * A model ties a spec's expanded layer list to a parameter set. It builds:
 *   - the training/evaluation graph: input "x" (N, C, H, W) f32 in [0, 1]
 *     (already dequantised by the caller, see mg_dequantize in
 *     mintgrad/flow.h) -> logit (if configured) -> every layer's forward,
 *     inside graph scope "flow.<i>" of its type -> prior N(0, I); with the
 *     per-sample negative log-likelihood, bits/dim and the batch loss;
 *   - the inverse (sampling) graph: input "z" (N, C', H', W') -> every
 *     layer's inverse in reverse order -> logit inverse -> x in [0, 1], with
 *     each iterative layer's diagnostics;
 *   - a round-trip graph: x -> forward, and each layer's inverse applied to
 *     its own forward output, for per-layer reconstruction checks.
 * Accounting (spec section 6), D = C*H*W:
 *   nll[n]  = -(log N(z_n; 0, I) + sum_i logdet_i[n])    (flow layers only)
 *   loss    = mean_n nll[n]                                (scalar)
 *   bpd[n]  = (nll[n] - logit_logdet[n]) / (D ln 2) + 8
 * so bits/dim are in pixel space and match the published numbers. */
#ifndef MINTGRAD_MODEL_H
#define MINTGRAD_MODEL_H

#include <mintgrad/spec.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mg_model mg_model;

/* A graph built by the model, with handles to its values. The graph is
 * owned by this struct (free with mg_model_graph_free, after any exec
 * compiled from it). Handles that do not apply to a kind of graph are
 * MG_VALUE_NONE; per-layer arrays have mg_model_num_layers entries. */
typedef struct mg_model_graph {
    mg_graph *g;
    int64_t batch;
    /* Forward and round-trip graphs. */
    mg_value x;              /* input "x" (N, C, H, W) f32, in [0, 1] */
    mg_value z;              /* forward: latent (N, C', H', W') */
    mg_value logit_logdet;   /* [N], NONE without a logit */
    mg_value logdet;         /* [N] sum of the flow layers' log-dets */
    mg_value nll;            /* [N], nats */
    mg_value bpd;            /* [N], bits per dimension */
    mg_value loss;           /* scalar mean nll */
    /* Inverse graphs: input "z" (N, C', H', W') -> x (N, C, H, W) in [0, 1]. */
    mg_value z_in;           /* inverse: the input "z" */
    mg_value x_out;          /* inverse: the reconstructed image */
    /* Per layer i. Forward/round trip: layer_in[i] and layer_out[i] are the
     * layer's input and output, layer_logdet[i] its [N] log-det (NONE when
     * identically zero). Inverse: layer_in[i] is the layer's reconstructed
     * input, layer_out[i] the value it inverted. Round trip: layer_rec[i] is
     * the layer's inverse applied to layer_out[i] (compare to layer_in[i]).
     * layer_diag[i]: f64 [N, 3] (iterations, max |residual|, converged) of
     * iterative inverses, NONE for exact ones and in forward graphs. */
    mg_value *layer_in;
    mg_value *layer_out;
    mg_value *layer_logdet;
    mg_value *layer_rec;
    mg_value *layer_diag;
    int n_layers;
} mg_model_graph;

/* A model over `spec` (borrowed; must outlive the model) whose parameters
 * live in `params` (borrowed). Nothing is created in params until
 * mg_model_init_params. *out is NULL on failure. */
mg_status mg_model_new(mg_ctx *ctx, const mg_spec *spec, mg_params *params, mg_model **out);
void mg_model_free(mg_model *m);     /* NULL is a no-op; params untouched */

const mg_spec *mg_model_spec(const mg_model *m);
mg_params *mg_model_params(const mg_model *m);
int mg_model_num_layers(const mg_model *m);
/* D = C*H*W of the input. */
int64_t mg_model_dims(const mg_model *m);

/* Creates and initialises every layer's parameters ("flow.<i>.*") through
 * its init_params, with one mg_rng seeded from `seed` (pass
 * spec->train.seed) and used by the layers in order. Layers whose
 * parameters already exist (loaded from a checkpoint) check their shapes
 * instead. Failures are prefixed with the layer's file:line:col. */
mg_status mg_model_init_params(mg_model *m, uint64_t seed);

/* Builds the training/evaluation graph for batches of `batch` images.
 * Compile it with losses = {loss} to train, outputs = {bpd, nll, ...} to
 * evaluate. *out is NULL on failure (the message names the layer and its
 * file:line:col). */
mg_status mg_model_build_forward(mg_model *m, int64_t batch, mg_model_graph **out);
/* Builds the sampling graph: fill "z" (e.g. temperature * N(0, I)), run
 * forward, read x_out and layer_diag. Fails with MG_ERR_UNSUPPORTED naming
 * the first layer type without an inverse builder. */
mg_status mg_model_build_inverse(mg_model *m, int64_t batch, mg_model_graph **out);
/* Builds the round-trip graph (forward handles plus layer_rec and
 * layer_diag). */
mg_status mg_model_build_roundtrip(mg_model *m, int64_t batch, mg_model_graph **out);
void mg_model_graph_free(mg_model_graph *mg);  /* NULL is a no-op */

/* Parameter counts of layer i (0 <= i < n_layers): raw = stored entries,
 * effective = entries masks keep. From the layer's count_params (which
 * counts from shapes: no parameters needed), else the stored size of
 * "flow.<i>.*" (then after init_params or a checkpoint load), both counts
 * equal. MG_ERR_ARG for a bad index. */
mg_status mg_model_layer_params(const mg_model *m, int i, int64_t *raw, int64_t *effective);
/* Totals over every layer. */
mg_status mg_model_total_params(const mg_model *m, int64_t *raw, int64_t *effective);
/* A printable table: one row per layer (index, type, argument summary,
 * output shape, raw and effective parameters), a header and a totals row,
 * lines ending in '\n'. *out is mg_malloc'd (free with mg_free). */
mg_status mg_model_table(const mg_model *m, char **out);

#ifdef __cplusplus
}
#endif
#endif
