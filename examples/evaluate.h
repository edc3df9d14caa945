/* examples/evaluate.h: bits/dim of a dataset through a model's forward
 * graph (spec section 6 accounting, done by the model), batch by batch. */
#ifndef MG_EXAMPLES_EVALUATE_H
#define MG_EXAMPLES_EVALUATE_H

#include "data.h"

typedef struct evaluator {
    mg_model_graph *fg;  /* forward graph for `batch` images */
    mg_exec *ex;         /* forward-only compile: outputs bpd and nll */
    uint8_t *pix;        /* [batch, c, h, w] staging */
    int64_t batch;
} evaluator;

mg_status evaluator_init(mg_ctx *ctx, mg_model *m, int64_t batch, evaluator *ev);
void evaluator_free(evaluator *ev);
/* Mean bits/dim over the first `count` images of d (0 or more than d->n:
 * all). The last partial batch is padded with copies and the copies are not
 * counted. per_sample (may be NULL) gets count values. `rng` is used for
 * uniform dequantisation. Stops with MG_ERR_INTERRUPTED on Ctrl-C, and with
 * MG_ERR_NUMERIC if an image's bits/dim is not finite (naming it). */
mg_status evaluator_run(mg_ctx *ctx, evaluator *ev, const mg_spec *spec, const dataset *d, int64_t count,
                        mg_spec_dequant mode, mg_rng *rng, double *per_sample, double *mean_bpd);

/* `mintgrad eval --check-inverse` (inverse_check.c): per-layer and whole-flow
 * inverse report on the first `batch` images of d, printed to stdout.
 * *all_converged is 0 if any image failed to converge in any layer. */
struct cli_session;
mg_status eval_check_inverse(struct cli_session *S, const dataset *d, int64_t batch, int *all_converged);

#endif
