/* examples/evaluate.c: dataset evaluation (see evaluate.h). */
#include "evaluate.h"

#include "cli.h"

#include <math.h>
#include <string.h>

mg_status evaluator_init(mg_ctx *ctx, mg_model *m, int64_t batch, evaluator *ev)
{
    memset(ev, 0, sizeof *ev);
    ev->batch = batch;
    mg_status s = mg_model_build_forward(m, batch, &ev->fg);
    if (s != MG_OK) return s;
    mg_value outs[2] = {ev->fg->bpd, ev->fg->nll};
    mg_compile_opts o = {.struct_size = sizeof o, .outputs = outs, .n_outputs = 2};
    s = mg_graph_compile(ev->fg->g, &o, &ev->ex);
    const int64_t *in = mg_model_spec(m)->model.input;
    if (s == MG_OK && !(ev->pix = mg_malloc((size_t)(batch * in[0] * in[1] * in[2]))))
        s = mg_ctx_fail(ctx, MG_ERR_NOMEM, "evaluation: out of memory");
    if (s != MG_OK) evaluator_free(ev);
    return s;
}

void evaluator_free(evaluator *ev)
{
    mg_exec_free(ev->ex);
    mg_model_graph_free(ev->fg);
    mg_free(ev->pix);
    memset(ev, 0, sizeof *ev);
}

mg_status evaluator_run(mg_ctx *ctx, evaluator *ev, const mg_spec *spec, const dataset *d, int64_t count,
                        mg_spec_dequant mode, mg_rng *rng, double *per_sample, double *mean_bpd)
{
    if (count <= 0 || count > d->n) count = d->n;
    double sum = 0;
    for (int64_t start = 0; start < count; start += ev->batch) {
        if (cli_interrupted) return mg_ctx_fail(ctx, MG_ERR_INTERRUPTED, "evaluation stopped at image %lld",
                                                (long long)start);
        int64_t k = count - start < ev->batch ? count - start : ev->batch;
        dataset_stage(d, start, k, ev->batch, ev->pix);
        mg_status s = data_dequantize(ctx, ev->pix, ev->batch, spec->model.input, mode, rng,
                                      mg_exec_tensor(ev->ex, ev->fg->x));
        if (s == MG_OK) s = mg_exec_forward(ev->ex);
        if (s != MG_OK) return s;
        const mg_tensor *bpd = mg_exec_tensor(ev->ex, ev->fg->bpd);
        for (int64_t i = 0; i < k; i++) {
            double v = mg_tensor_get(bpd, i);
            if (!isfinite(v))
                return mg_ctx_fail(ctx, MG_ERR_NUMERIC, "%s: image %lld has bits/dim %g", d->source,
                                   (long long)(start + i), v);
            if (per_sample) per_sample[start + i] = v;
            sum += v;
        }
    }
    *mean_bpd = sum / (double)count;
    return MG_OK;
}
