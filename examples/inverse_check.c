/* examples/inverse_check.c: `mintgrad eval --check-inverse`: runs every
 * flow layer's inverse on its own forward output for one batch and reports
 * per layer the iterations used, the final residual, how many images
 * converged and the reconstruction error; then inverts the whole flow from
 * the latent and reports the image reconstruction error. */
#include "cli.h"
#include "evaluate.h"

#include <math.h>

typedef struct layer_report {
    double it_mean, it_max, resid_max, rec_err;
    int64_t converged;
    int iterative;
} layer_report;

/* Max |a - b| over the first k samples of two same-shape tensors. */
static double max_err(const mg_tensor *a, const mg_tensor *b, int64_t k)
{
    if (!a || !b) return NAN;
    int64_t n = mg_tensor_numel(a) / a->shape[0] * k;
    double m = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs(mg_tensor_get(a, i) - mg_tensor_get(b, i));
        if (!(d <= m)) m = d; /* NaN wins */
    }
    return m;
}

static layer_report report_layer(mg_exec *e, const mg_model_graph *rg, int i, int64_t k)
{
    layer_report r = {.rec_err = max_err(mg_exec_tensor(e, rg->layer_in[i]), mg_exec_tensor(e, rg->layer_rec[i]), k)};
    const mg_tensor *d = mg_value_ok(rg->layer_diag[i]) ? mg_exec_tensor(e, rg->layer_diag[i]) : NULL;
    if (!d) return r;
    r.iterative = 1;
    for (int64_t n = 0; n < k; n++) {
        double it = mg_tensor_get(d, 3 * n), res = mg_tensor_get(d, 3 * n + 1);
        r.it_mean += it / (double)k;
        if (it > r.it_max) r.it_max = it;
        if (!(res <= r.resid_max)) r.resid_max = res;
        r.converged += mg_tensor_get(d, 3 * n + 2) != 0;
    }
    return r;
}

static mg_status compile_roundtrip(cli_session *S, mg_model_graph *rg, mg_exec **e)
{
    mg_value *outs = mg_malloc(sizeof(mg_value) * (size_t)(3 * rg->n_layers + 1));
    if (!outs) return mg_ctx_fail(S->ctx, MG_ERR_NOMEM, "out of memory");
    int n = 0;
    outs[n++] = rg->z;
    for (int i = 0; i < rg->n_layers; i++) {
        mg_value v[3] = {rg->layer_in[i], rg->layer_rec[i], rg->layer_diag[i]};
        for (int j = 0; j < 3; j++)
            if (mg_value_ok(v[j])) outs[n++] = v[j];
    }
    mg_compile_opts o = {.struct_size = sizeof o, .outputs = outs, .n_outputs = n};
    mg_status s = mg_graph_compile(rg->g, &o, e);
    mg_free(outs);
    return s;
}

/* Inverts the whole flow from the round trip's latent; *err gets the
 * largest image error, *bad the number of images some layer did not solve. */
static mg_status whole_flow(cli_session *S, mg_exec *re, const mg_model_graph *rg, int64_t batch, int64_t k,
                            double *err, int64_t *bad)
{
    mg_model_graph *ig = NULL;
    mg_exec *ie = NULL;
    mg_status s = mg_model_build_inverse(S->model, batch, &ig);
    mg_compile_opts o = {.struct_size = sizeof o};
    if (s == MG_OK) s = mg_graph_compile(ig->g, &o, &ie);
    if (s == MG_OK) s = mg_tensor_copy(mg_exec_tensor(ie, ig->z_in), mg_exec_tensor(re, rg->z));
    if (s == MG_OK) s = mg_exec_forward(ie);
    if (s == MG_OK) {
        *err = max_err(mg_exec_tensor(re, rg->x), mg_exec_tensor(ie, ig->x_out), k);
        *bad = 0;
        for (int64_t n = 0; n < k; n++) *bad += !cli_sample_converged(ie, ig, n);
    }
    mg_exec_free(ie);
    mg_model_graph_free(ig);
    return s;
}

static void print_layer(const mg_spec_layer *l, const layer_report *r, int64_t k)
{
    if (r->iterative)
        printf("  %5d  %-16s %9.1f %6.0f   %11.3g  %5lld/%-5lld %12.3g\n", l->index, l->type, r->it_mean,
               r->it_max, r->resid_max, (long long)r->converged, (long long)k, r->rec_err);
    else
        printf("  %5d  %-16s %16s   %11s  %11s %12.3g\n", l->index, l->type, "exact", "-", "-", r->rec_err);
}

mg_status eval_check_inverse(cli_session *S, const dataset *d, int64_t batch, int *all_converged)
{
    mg_model_graph *rg = NULL;
    mg_exec *e = NULL;
    int64_t k = d->n < batch ? d->n : batch;
    uint8_t *pix = mg_malloc((size_t)(batch * dataset_image_bytes(d)));
    mg_status s = pix ? mg_model_build_roundtrip(S->model, batch, &rg) : mg_ctx_fail(S->ctx, MG_ERR_NOMEM, "out of memory");
    if (s == MG_OK) s = compile_roundtrip(S, rg, &e);
    if (s == MG_OK) {
        dataset_stage(d, 0, k, batch, pix);
        s = data_dequantize(S->ctx, pix, batch, S->spec->model.input, MG_SPEC_DEQUANT_CENTER, NULL,
                            mg_exec_tensor(e, rg->x));
    }
    if (s == MG_OK) s = mg_exec_forward(e);
    *all_converged = 1;
    if (s == MG_OK) {
        const mg_spec_model *m = &S->spec->model;
        int adaptive = m->inverse.adaptive >= 0 ? m->inverse.adaptive : m->inverse.stop == MG_SPEC_STOP_RESIDUAL;
        printf("\ninverse check on %lld images (tolerance %g, at most %d iterations, damping %g (%s), %s):\n",
               (long long)k, m->inverse.tolerance, m->inverse.max_iterations, m->inverse.damping,
               adaptive ? "adaptive" : "fixed", m->inverse.precision == MG_F64 ? "float64" : "float32");
        printf("  %5s  %-16s %16s   %11s  %11s %12s\n", "layer", "type", "iterations mean/max", "residual",
               "converged", "rec. error");
        for (int i = 0; i < rg->n_layers; i++) {
            layer_report r = report_layer(e, rg, i, k);
            print_layer(&m->layers[i], &r, k);
            if (r.iterative && r.converged < k) *all_converged = 0;
        }
        double err = NAN;
        int64_t bad = 0;
        s = whole_flow(S, e, rg, batch, k, &err, &bad);
        if (s == MG_OK)
            printf("  whole flow: max |x - f^-1(f(x))| = %.3g; %lld of %lld images not converged\n", err,
                   (long long)bad, (long long)k);
        if (bad) *all_converged = 0;
    }
    mg_exec_free(e);
    mg_model_graph_free(rg);
    mg_free(pix);
    return s;
}
