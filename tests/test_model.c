/* tests/test_model.c: flow models built from specs (mintgrad/model.h):
 * parameters initialised through the layer builders, the training graph's
 * nll, loss and bits/dim against a double-precision reference of spec
 * section 6, gradients against finite differences of that reference, the
 * inverse and round-trip graphs, graph scopes, parameter counts and located
 * builder failures. The layers are test stubs (specs/stub_layers.h: an
 * elementwise scale registered as "mintnet.block"), so the builder is tested
 * independently of the MintNet plugin. */
#include "testutil.h"
#include "specs/stub_layers.h"

#include <mintgrad/model.h>
#include <mintgrad/spec.h>

#ifndef MG_SRCDIR
#define MG_SRCDIR "."
#endif

static void quiet_log(void *user, mg_log_level level, const char *msg) {}

/* A context with the stubs, tiny.yaml loaded, its parameters initialised. */
typedef struct fixture {
    mg_ctx *ctx;
    mg_spec *spec;
    mg_params *params;
    mg_model *model;
} fixture;

static fixture fx_text(const char *text)
{
    fixture f = {0};
    f.ctx = tu_ctx();
    mg_ctx_set_log(f.ctx, quiet_log, NULL);
    cr_assert_eq(stub_register(f.ctx), MG_OK, "%s", mg_ctx_error(f.ctx));
    mg_status st;
    if (text) {
        st = mg_spec_load_string(f.ctx, text, strlen(text), "t.yaml",
                                 MG_SPEC_NO_PLUGINS | MG_SPEC_NO_DATA_CHECK, &f.spec);
    } else {
        st = mg_spec_load_file(f.ctx, MG_SRCDIR "/examples/tiny.yaml",
                               MG_SPEC_NO_PLUGINS | MG_SPEC_NO_DATA_CHECK, &f.spec);
    }
    cr_assert_eq(st, MG_OK, "%s", mg_ctx_error(f.ctx));
    cr_assert_eq(mg_params_new(&f.params), MG_OK);
    cr_assert_eq(mg_model_new(f.ctx, f.spec, f.params, &f.model), MG_OK);
    cr_assert_eq(mg_model_init_params(f.model, f.spec->train.seed), MG_OK, "%s", mg_ctx_error(f.ctx));
    return f;
}

static fixture fx_tiny(void) { return fx_text(NULL); }

static void fx_free(fixture *f)
{
    mg_model_free(f->model);
    mg_params_free(f->params);
    mg_spec_free(f->spec);
    mg_ctx_free(f->ctx);
}

/* Images in (0, 1), as dequantised data would be. */
static mg_tensor *images(int64_t n, const int64_t chw[3], uint64_t seed)
{
    int64_t shape[4] = {n, chw[0], chw[1], chw[2]};
    return tu_rand(MG_F32, 4, shape, 0.02, 0.98, seed);
}

static mg_exec *compile(mg_model_graph *mg, int training)
{
    mg_value outs[6] = {mg->nll, mg->bpd, mg->loss, mg->z, mg->logdet, mg->logit_logdet};
    int n_out = mg_value_ok(mg->logit_logdet) ? 6 : 5;
    mg_compile_opts o = {.struct_size = sizeof o, .training = training, .outputs = outs, .n_outputs = n_out};
    if (training) o.losses = &mg->loss, o.n_losses = 1;
    mg_exec *e = NULL;
    mg_status st = mg_graph_compile(mg->g, &o, &e);
    cr_assert_eq(st, MG_OK, "compile: %s", mg_ctx_error(mg_graph_ctx(mg->g)));
    return e;
}

/* ---- a double-precision reference of the stub flow (spec section 6) ---------- */
typedef struct ref_out {
    double nll[16], bpd[16], logit_ld[16], flow_ld, loss;
} ref_out;

static double softplus(double v) { return v > 0 ? v + log1p(exp(-v)) : log1p(exp(v)); }

static double param_at(const mg_params *ps, int layer, int64_t k)
{
    char name[32];
    snprintf(name, sizeof name, "flow.%d.t", layer);
    const mg_param *p = mg_params_find(ps, name);
    cr_assert_not_null(p, "%s", name);
    return mg_tensor_get(p->value, k);
}

/* Runs the spec's layers (stub blocks and squeezes) on one sample in place:
 * h holds (C, H, W) in shape[]. */
static void ref_layers(const mg_spec *s, const mg_params *ps, double *h, int64_t shape[3], double *ld)
{
    double tmp[4096];
    for (int i = 0; i < s->model.n_layers; i++) {
        const mg_spec_layer *l = &s->model.layers[i];
        int64_t C = shape[0], H = shape[1], W = shape[2], D = C * H * W;
        if (!strcmp(l->type, "squeeze")) {
            for (int64_t c = 0; c < C; c++)
                for (int64_t y = 0; y < H; y++)
                    for (int64_t x = 0; x < W; x++) {
                        int64_t dy = y % 2, dx = x % 2, oc = dy * 2 * C + dx * C + c;
                        tmp[(oc * (H / 2) + y / 2) * (W / 2) + x / 2] = h[(c * H + y) * W + x];
                    }
            memcpy(h, tmp, sizeof(double) * (size_t)D);
            shape[0] = 4 * C, shape[1] = H / 2, shape[2] = W / 2;
            continue;
        }
        for (int64_t k = 0; k < D; k++) {
            double t = param_at(ps, i, k);
            h[k] *= t;
            *ld += log(fabs(t));
        }
    }
}

/* The reference for a batch x (f32 [N, C, H, W]) with the logit of the spec. */
static ref_out reference(const mg_spec *s, const mg_params *ps, const mg_tensor *x)
{
    ref_out r = {0};
    int64_t N = x->shape[0], D = mg_tensor_numel(x) / N;
    double lam = s->model.logit_lambda;
    for (int64_t n = 0; n < N; n++) {
        double h[4096], lld = 0, fld = 0;
        int64_t shape[3] = {s->model.input[0], s->model.input[1], s->model.input[2]};
        for (int64_t k = 0; k < D; k++) {
            double v = mg_tensor_get(x, n * D + k);
            if (s->model.logit) {
                double p = lam + (1 - 2 * lam) * v;
                v = log(p) - log1p(-p);
                lld += softplus(v) + softplus(-v);
            }
            h[k] = v;
        }
        if (s->model.logit) lld += (double)D * log(1 - 2 * lam);
        ref_layers(s, ps, h, shape, &fld);
        double logp = 0;
        for (int64_t k = 0; k < D; k++) logp += -h[k] * h[k] / 2 - 0.5 * log(2 * M_PI);
        r.nll[n] = -(logp + fld);
        r.logit_ld[n] = lld;
        r.bpd[n] = (r.nll[n] - lld) / ((double)D * log(2.0)) + 8;
        r.flow_ld = fld;
        r.loss += r.nll[n] / (double)N;
    }
    return r;
}

static double rel_err(double got, double want) { return fabs(got - want) / fmax(1.0, fabs(want)); }

/* ---- tests --------------------------------------------------------------------- */

Test(model, forward_matches_reference)
{
    fixture f = fx_tiny();
    mg_model_graph *mg = NULL;
    cr_assert_eq(mg_model_build_forward(f.model, 4, &mg), MG_OK, "%s", mg_ctx_error(f.ctx));
    cr_expect_eq(mg->batch, 4);
    cr_expect_eq(mg->n_layers, 5);
    mg_exec *e = compile(mg, 0);
    mg_tensor *x = images(4, f.spec->model.input, 11);
    cr_assert_eq(mg_exec_set_input(e, "x", x), MG_OK);
    cr_assert_eq(mg_exec_forward(e), MG_OK, "%s", mg_ctx_error(f.ctx));
    ref_out r = reference(f.spec, f.params, x);
    const mg_tensor *nll = mg_exec_tensor(e, mg->nll), *bpd = mg_exec_tensor(e, mg->bpd);
    const mg_tensor *loss = mg_exec_tensor(e, mg->loss), *z = mg_exec_tensor(e, mg->z);
    const mg_tensor *ld = mg_exec_tensor(e, mg->logdet), *lld = mg_exec_tensor(e, mg->logit_logdet);
    cr_assert(nll && bpd && loss && z && ld && lld);
    cr_expect_eq(nll->rank, 1);
    cr_expect_eq(nll->shape[0], 4);
    cr_expect_eq(loss->rank, 0, "the loss is a scalar");
    cr_expect_eq(z->shape[1], 4);
    cr_expect_eq(z->shape[2], 4);
    for (int n = 0; n < 4; n++) {
        cr_expect_lt(rel_err(mg_tensor_get(nll, n), r.nll[n]), 1e-5, "nll[%d] %g vs %g", n, mg_tensor_get(nll, n), r.nll[n]);
        cr_expect_lt(fabs(mg_tensor_get(bpd, n) - r.bpd[n]), 1e-5, "bpd[%d] %g vs %g", n, mg_tensor_get(bpd, n), r.bpd[n]);
        cr_expect_lt(rel_err(mg_tensor_get(lld, n), r.logit_ld[n]), 1e-5);
        cr_expect_lt(rel_err(mg_tensor_get(ld, n), r.flow_ld), 1e-5);
    }
    cr_expect_lt(rel_err(mg_tensor_get(loss, 0), r.loss), 1e-5);
    /* the batch mean of bpd is the flow.h helper's value from the loss */
    double mean_lld = 0, mean_bpd = 0;
    for (int n = 0; n < 4; n++) mean_lld += r.logit_ld[n] / 4, mean_bpd += mg_tensor_get(bpd, n) / 4;
    cr_expect_lt(fabs(mean_bpd - mg_bits_per_dim(r.loss, mean_lld, mg_model_dims(f.model))), 1e-5);
    mg_tensor_free(x);
    mg_exec_free(e);
    mg_model_graph_free(mg);
    fx_free(&f);
}

Test(model, gradients_match_finite_differences)
{
    fixture f = fx_tiny();
    mg_model_graph *mg = NULL;
    cr_assert_eq(mg_model_build_forward(f.model, 3, &mg), MG_OK, "%s", mg_ctx_error(f.ctx));
    mg_exec *e = compile(mg, 1);
    mg_tensor *x = images(3, f.spec->model.input, 5);
    cr_assert_eq(mg_exec_set_input(e, "x", x), MG_OK);
    mg_params_zero_grad(f.params);
    cr_assert_eq(mg_exec_forward(e), MG_OK, "%s", mg_ctx_error(f.ctx));
    cr_assert_eq(mg_exec_backward(e), MG_OK, "%s", mg_ctx_error(f.ctx));
    static const int layers[] = {0, 1, 3, 4};
    static const int64_t entries[] = {0, 7, 37, 63};
    for (int li = 0; li < 4; li++) {
        char name[32];
        snprintf(name, sizeof name, "flow.%d.t", layers[li]);
        mg_param *p = mg_params_find(f.params, name);
        cr_assert_not_null(p->grad);
        for (int k = 0; k < 4; k++) {
            int64_t j = entries[k];
            double v = mg_tensor_get(p->value, j), h = 1e-3;
            mg_tensor_set(p->value, j, v + h);
            double up = reference(f.spec, f.params, x).loss;
            mg_tensor_set(p->value, j, v - h);
            double dn = reference(f.spec, f.params, x).loss;
            mg_tensor_set(p->value, j, v);
            double fd = (up - dn) / (2 * h), g = mg_tensor_get(p->grad, j);
            cr_expect_lt(fabs(g - fd), 2e-3 * fmax(1, fabs(fd)), "%s[%lld]: grad %g, finite difference %g", name,
                         (long long)j, g, fd);
        }
    }
    mg_tensor_free(x);
    mg_exec_free(e);
    mg_model_graph_free(mg);
    fx_free(&f);
}

Test(model, training_lowers_the_loss)
{
    fixture f = fx_tiny();
    mg_model_graph *mg = NULL;
    cr_assert_eq(mg_model_build_forward(f.model, 8, &mg), MG_OK, "%s", mg_ctx_error(f.ctx));
    mg_exec *e = compile(mg, 1);
    mg_tensor *x = images(8, f.spec->model.input, 3);
    cr_assert_eq(mg_exec_set_input(e, "x", x), MG_OK);
    mg_adam_opts ao = mg_adam_defaults();
    ao.lr = 1e-2;
    mg_optim *opt = NULL;
    cr_assert_eq(mg_optim_adam(f.ctx, f.params, &ao, &opt), MG_OK);
    double first = 0, last = 0;
    for (int step = 0; step < 30; step++) {
        mg_params_zero_grad(f.params);
        cr_assert_eq(mg_exec_forward(e), MG_OK, "%s", mg_ctx_error(f.ctx));
        double l = mg_tensor_get(mg_exec_tensor(e, mg->loss), 0);
        if (step == 0) first = l;
        last = l;
        cr_assert_eq(mg_exec_backward(e), MG_OK);
        cr_assert_eq(mg_optim_step(opt), MG_OK);
    }
    cr_expect_lt(last, first - 1.0, "loss %g -> %g", first, last);
    mg_optim_free(opt);
    mg_tensor_free(x);
    mg_exec_free(e);
    mg_model_graph_free(mg);
    fx_free(&f);
}

Test(model, init_params_names_and_seed)
{
    fixture a = fx_tiny(), b = fx_tiny();
    cr_expect_eq(mg_params_count(a.params), 4, "four blocks, no squeeze parameters");
    static const char *const names[] = {"flow.0.t", "flow.1.t", "flow.3.t", "flow.4.t"};
    for (int i = 0; i < 4; i++) {
        mg_param *p = mg_params_find(a.params, names[i]), *q = mg_params_find(b.params, names[i]);
        cr_assert(p && q, "%s", names[i]);
        cr_expect_eq(tu_max_abs_diff(p->value, q->value), 0, "same seed, same values");
    }
    cr_expect_null(mg_params_find(a.params, "flow.2.t"));
    cr_expect_eq(mg_params_find(a.params, "flow.3.t")->value->shape[0], 4, "after the squeeze: C = 4");
    /* another seed gives other values */
    mg_params *other = NULL;
    mg_model *m2 = NULL;
    cr_assert_eq(mg_params_new(&other), MG_OK);
    cr_assert_eq(mg_model_new(a.ctx, a.spec, other, &m2), MG_OK);
    cr_assert_eq(mg_model_init_params(m2, a.spec->train.seed + 1), MG_OK);
    cr_expect_gt(tu_max_abs_diff(mg_params_find(a.params, "flow.0.t")->value,
                                 mg_params_find(other, "flow.0.t")->value), 0);
    /* existing parameters are kept (as when loaded from a checkpoint) */
    mg_tensor *before = mg_tensor_clone(mg_params_find(other, "flow.4.t")->value);
    cr_assert_eq(mg_model_init_params(m2, 999), MG_OK);
    cr_expect_eq(tu_max_abs_diff(before, mg_params_find(other, "flow.4.t")->value), 0);
    cr_expect_eq(mg_params_count(other), 4);
    mg_tensor_free(before);
    mg_model_free(m2);
    mg_params_free(other);
    fx_free(&a);
    fx_free(&b);
}

Test(model, inverse_reconstructs_the_input)
{
    fixture f = fx_tiny();
    mg_model_graph *fw = NULL, *inv = NULL;
    cr_assert_eq(mg_model_build_forward(f.model, 2, &fw), MG_OK, "%s", mg_ctx_error(f.ctx));
    cr_assert_eq(mg_model_build_inverse(f.model, 2, &inv), MG_OK, "%s", mg_ctx_error(f.ctx));
    cr_expect(!mg_value_ok(inv->x) && !mg_value_ok(inv->loss), "forward handles are NONE in an inverse graph");
    const mg_tensor *zd = mg_graph_value_desc(inv->g, inv->z_in);
    cr_assert_not_null(zd);
    cr_expect_eq(zd->shape[0], 2);
    cr_expect_eq(zd->shape[1], 4);
    cr_expect_eq(zd->shape[3], 4);
    cr_expect_str_eq(mg_graph_value_name(inv->g, inv->z_in), "z");
    mg_exec *ef = compile(fw, 0);
    mg_compile_opts o = {.struct_size = sizeof o, .outputs = &inv->x_out, .n_outputs = 1};
    mg_exec *ei = NULL;
    cr_assert_eq(mg_graph_compile(inv->g, &o, &ei), MG_OK, "%s", mg_ctx_error(f.ctx));
    mg_tensor *x = images(2, f.spec->model.input, 17);
    cr_assert_eq(mg_exec_set_input(ef, "x", x), MG_OK);
    cr_assert_eq(mg_exec_forward(ef), MG_OK);
    cr_assert_eq(mg_exec_set_input(ei, "z", mg_exec_tensor(ef, fw->z)), MG_OK);
    cr_assert_eq(mg_exec_forward(ei), MG_OK, "%s", mg_ctx_error(f.ctx));
    const mg_tensor *xr = mg_exec_tensor(ei, inv->x_out);
    cr_assert_not_null(xr);
    cr_expect_lt(tu_max_abs_diff(x, xr), 1e-5);
    for (int i = 0; i < 5; i++) cr_expect(!mg_value_ok(inv->layer_diag[i]), "stub inverses are exact");
    mg_tensor_free(x);
    mg_exec_free(ef);
    mg_exec_free(ei);
    mg_model_graph_free(fw);
    mg_model_graph_free(inv);
    fx_free(&f);
}

Test(model, roundtrip_per_layer)
{
    fixture f = fx_tiny();
    mg_model_graph *mg = NULL;
    cr_assert_eq(mg_model_build_roundtrip(f.model, 2, &mg), MG_OK, "%s", mg_ctx_error(f.ctx));
    mg_exec *e = NULL;
    mg_compile_opts o = {.struct_size = sizeof o};
    cr_assert_eq(mg_graph_compile(mg->g, &o, &e), MG_OK, "%s", mg_ctx_error(f.ctx));
    mg_tensor *x = images(2, f.spec->model.input, 23);
    cr_assert_eq(mg_exec_set_input(e, "x", x), MG_OK);
    cr_assert_eq(mg_exec_forward(e), MG_OK);
    for (int i = 0; i < mg->n_layers; i++) {
        cr_assert(mg_value_ok(mg->layer_rec[i]) && mg_value_ok(mg->layer_in[i]), "layer %d", i);
        cr_expect_lt(tu_max_abs_diff(mg_exec_tensor(e, mg->layer_in[i]), mg_exec_tensor(e, mg->layer_rec[i])), 1e-4,
                     "layer %d", i);
        char want[32];
        snprintf(want, sizeof want, "flow.%d.inverse", i);
        const char *scope = mg_graph_value_scope(mg->g, mg->layer_rec[i]);
        cr_expect_str_eq(scope ? scope : "(none)", want, "layer %d", i);
    }
    mg_tensor_free(x);
    mg_exec_free(e);
    mg_model_graph_free(mg);
    fx_free(&f);
}

Test(model, layer_scopes)
{
    fixture f = fx_tiny();
    mg_model_graph *mg = NULL;
    cr_assert_eq(mg_model_build_forward(f.model, 2, &mg), MG_OK, "%s", mg_ctx_error(f.ctx));
    int seen[5] = {0}, outside = 0;
    for (int k = 0; k < mg_graph_num_nodes(mg->g); k++) {
        const char *scope = mg_graph_node_scope(mg->g, k), *type = mg_graph_node_scope_type(mg->g, k);
        if (!scope) {
            outside++;
            continue;
        }
        int i = -1;
        cr_assert_eq(sscanf(scope, "flow.%d", &i), 1, "scope %s", scope);
        cr_assert(i >= 0 && i < 5);
        seen[i]++;
        cr_expect_str_eq(type, f.spec->model.layers[i].type, "node %s", mg_graph_node_name(mg->g, k));
    }
    for (int i = 0; i < 5; i++) cr_expect_gt(seen[i], 0, "layer %d has nodes in scope flow.%d", i, i);
    cr_expect_gt(outside, 0, "logit and loss nodes are outside the layers");
    cr_expect_str_eq(mg_graph_value_name(mg->g, mg->x), "x");
    cr_expect_str_eq(mg_graph_value_name(mg->g, mg->loss), "loss");
    cr_expect_str_eq(mg_graph_value_name(mg->g, mg->bpd), "bpd");
    cr_expect(!mg_value_ok(mg->layer_logdet[2]), "a squeeze has no log-det");
    cr_expect(mg_value_ok(mg->layer_logdet[3]));
    mg_model_graph_free(mg);
    fx_free(&f);
}

Test(model, parameter_counts_and_table)
{
    fixture f = fx_tiny();
    int64_t raw = -1, eff = -1;
    cr_assert_eq(mg_model_layer_params(f.model, 0, &raw, &eff), MG_OK);
    cr_expect_eq(raw, 64);
    cr_expect_eq(eff, 64);
    cr_assert_eq(mg_model_layer_params(f.model, 2, &raw, &eff), MG_OK);
    cr_expect_eq(raw, 0, "squeeze");
    cr_expect_eq(mg_model_layer_params(f.model, 5, &raw, &eff), MG_ERR_ARG);
    cr_assert_eq(mg_model_total_params(f.model, &raw, &eff), MG_OK);
    cr_expect_eq(raw, 256);
    cr_expect_eq(eff, 256);
    cr_expect_eq(mg_model_dims(f.model), 64);
    cr_expect_eq(mg_model_num_layers(f.model), 5);
    char *table = NULL;
    cr_assert_eq(mg_model_table(f.model, &table), MG_OK);
    int lines = 0;
    for (const char *p = table; *p; p++) lines += *p == '\n';
    cr_expect_eq(lines, 8, "header, input, 5 layers, total:\n%s", table);
    cr_expect(strstr(table, "mask=A, latent=2") != NULL, "%s", table);
    cr_expect(strstr(table, "squeeze") && strstr(table, "factor=2") && strstr(table, "[4, 4, 4]"), "%s", table);
    cr_expect(strstr(table, "total") && strstr(table, "256"), "%s", table);
    mg_free(table);
    fx_free(&f);
}

Test(model, without_logit)
{
    fixture f = fx_text("model:\n  input: [2, 2, 2]\n  preprocess: {dequantize: center}\n  layers:\n"
                        "    - mintnet.block: {mask: A, latent: 1}\ndata: {dataset: generated}\n");
    mg_model_graph *mg = NULL;
    cr_assert_eq(mg_model_build_forward(f.model, 3, &mg), MG_OK, "%s", mg_ctx_error(f.ctx));
    cr_expect(!mg_value_ok(mg->logit_logdet));
    mg_exec *e = compile(mg, 0);
    mg_tensor *x = images(3, f.spec->model.input, 8);
    cr_assert_eq(mg_exec_set_input(e, "x", x), MG_OK);
    cr_assert_eq(mg_exec_forward(e), MG_OK);
    ref_out r = reference(f.spec, f.params, x);
    for (int n = 0; n < 3; n++) {
        double nll = mg_tensor_get(mg_exec_tensor(e, mg->nll), n);
        cr_expect_lt(rel_err(nll, r.nll[n]), 1e-5);
        cr_expect_lt(fabs(mg_tensor_get(mg_exec_tensor(e, mg->bpd), n) - (nll / (8 * log(2.0)) + 8)), 1e-5);
    }
    mg_tensor_free(x);
    mg_exec_free(e);
    mg_model_graph_free(mg);
    fx_free(&f);
}

Test(model, no_layers_and_only_squeezes)
{
    fixture f = fx_text("model: {input: [1, 4, 4]}\ndata: {dataset: generated}\n");
    mg_model_graph *mg = NULL;
    cr_assert_eq(mg_model_build_forward(f.model, 2, &mg), MG_OK, "%s", mg_ctx_error(f.ctx));
    mg_exec *e = compile(mg, 0);
    mg_tensor *x = images(2, f.spec->model.input, 2);
    cr_assert_eq(mg_exec_set_input(e, "x", x), MG_OK);
    cr_assert_eq(mg_exec_forward(e), MG_OK, "%s", mg_ctx_error(f.ctx));
    cr_expect_eq(mg_tensor_get(mg_exec_tensor(e, mg->logdet), 1), 0, "zero log-det");
    double z0 = mg_tensor_get(x, 0);
    double want = z0 * z0 / 2 + 0.5 * log(2 * M_PI);
    double nll = mg_tensor_get(mg_exec_tensor(e, mg->nll), 0), sum = 0;
    for (int k = 0; k < 16; k++) sum += mg_tensor_get(x, k) * mg_tensor_get(x, k) / 2 + 0.5 * log(2 * M_PI);
    cr_expect_lt(rel_err(nll, sum), 1e-5, "identity flow: nll %g, want %g (first term %g)", nll, sum, want);
    mg_tensor_free(x);
    mg_exec_free(e);
    mg_model_graph_free(mg);
    fx_free(&f);
}

Test(model, builder_failures_are_located)
{
    fixture f = fx_text("model:\n  input: [1, 4, 4]\n  layers:\n    - squeeze: {}\n    - test.fail: {}\n"
                        "data: {dataset: generated}\n");
    mg_model_graph *mg = (mg_model_graph *)1;
    cr_expect_eq(mg_model_build_forward(f.model, 2, &mg), MG_ERR_NUMERIC);
    cr_expect_null(mg);
    cr_expect_str_eq(mg_ctx_error(f.ctx),
                     "t.yaml:5:7: layer 1 (test.fail), building its forward pass: stub forward refuses input of 4 channels");
    fx_free(&f);
    f = fx_text("model:\n  input: [1, 4, 4]\n  layers:\n    - test.noinv: {}\ndata: {dataset: generated}\n");
    cr_expect_eq(mg_model_build_inverse(f.model, 2, &mg), MG_ERR_UNSUPPORTED);
    cr_expect(strstr(mg_ctx_error(f.ctx), "t.yaml:4:7: layer 0 (test.noinv)") == mg_ctx_error(f.ctx), "%s",
              mg_ctx_error(f.ctx));
    cr_expect(strstr(mg_ctx_error(f.ctx), "no inverse") != NULL, "%s", mg_ctx_error(f.ctx));
    cr_expect_eq(mg_model_build_forward(f.model, 0, &mg), MG_ERR_ARG, "batch 0");
    fx_free(&f);
}

/* ---- with the MintNet plugin, linked statically -------------------------------- */
mg_status mg_mintnet_plugin_init(mg_registry *reg, const mg_host_api *host);

/* Like fx_text/fx_tiny, with the real mintnet plugin; init_params optional. */
static fixture fx_mintnet(const char *rel, int init)
{
    fixture f = {0};
    char path[512];
    snprintf(path, sizeof path, "%s/%s", MG_SRCDIR, rel);
    f.ctx = tu_ctx();
    mg_ctx_set_log(f.ctx, quiet_log, NULL);
    cr_assert_eq(mg_plugin_register_static(f.ctx, "mintnet", mg_mintnet_plugin_init), MG_OK, "%s",
                 mg_ctx_error(f.ctx));
    cr_assert_eq(mg_spec_load_file(f.ctx, path, MG_SPEC_NO_PLUGINS | MG_SPEC_NO_DATA_CHECK, &f.spec), MG_OK,
                 "%s", mg_ctx_error(f.ctx));
    cr_assert_eq(mg_params_new(&f.params), MG_OK);
    cr_assert_eq(mg_model_new(f.ctx, f.spec, f.params, &f.model), MG_OK);
    if (init) cr_assert_eq(mg_model_init_params(f.model, f.spec->train.seed), MG_OK, "%s", mg_ctx_error(f.ctx));
    return f;
}

/* Spec section 7: the raw parameter counts of the published networks. */
Test(model, mintnet_published_parameter_counts)
{
    static const struct {
        const char *file;
        int64_t raw;
        int layers;
    } cases[] = {
        {"examples/fashion_mintnet_small.yaml", 61716, 14},
        {"examples/mnist_mintnet.yaml", 805272, 42},
        {"examples/cifar10_mintnet.yaml", 27460944, 44},
    };
    for (int c = 0; c < 3; c++) {
        fixture f = fx_mintnet(cases[c].file, 0);
        int64_t raw = 0, eff = 0;
        cr_expect_eq(mg_model_num_layers(f.model), cases[c].layers, "%s", cases[c].file);
        cr_assert_eq(mg_model_total_params(f.model, &raw, &eff), MG_OK);
        cr_expect_eq(raw, cases[c].raw, "%s: %lld raw parameters", cases[c].file, (long long)raw);
        cr_expect_lt(eff, raw, "masks remove entries");
        fx_free(&f);
    }
}

Test(model, mintnet_small_parameters_created)
{
    fixture f = fx_mintnet("examples/fashion_mintnet_small.yaml", 1);
    cr_expect_eq(mg_params_numel(f.params), 61716);
    const mg_param *w1 = mg_params_find(f.params, "flow.0.w1"), *t = mg_params_find(f.params, "flow.13.t");
    cr_assert(w1 && t);
    cr_expect_eq(w1->value->shape[0], 16, "w1 is [L*C, C, 3, 3]");
    cr_expect_eq(t->value->shape[0], 16, "t is [C, H, W] after two squeezes");
    cr_expect_null(mg_params_find(f.params, "flow.4.w1"), "squeezes have no parameters");
    char *table = NULL;
    cr_assert_eq(mg_model_table(f.model, &table), MG_OK);
    cr_expect(strstr(table, "61,716") != NULL, "%s", table);
    mg_free(table);
    fx_free(&f);
}

Test(model, mintnet_tiny_trains_and_inverts)
{
    fixture f = fx_mintnet("examples/tiny.yaml", 1);
    mg_model_graph *fw = NULL, *inv = NULL;
    cr_assert_eq(mg_model_build_forward(f.model, 4, &fw), MG_OK, "%s", mg_ctx_error(f.ctx));
    mg_exec *e = compile(fw, 1);
    mg_tensor *x = images(4, f.spec->model.input, 31);
    cr_assert_eq(mg_exec_set_input(e, "x", x), MG_OK);
    mg_params_zero_grad(f.params);
    cr_assert_eq(mg_exec_forward(e), MG_OK, "%s", mg_ctx_error(f.ctx));
    cr_assert_eq(mg_exec_backward(e), MG_OK, "%s", mg_ctx_error(f.ctx));
    double loss = mg_tensor_get(mg_exec_tensor(e, fw->loss), 0);
    cr_expect(isfinite(loss));
    for (int n = 0; n < 4; n++) {
        double b = mg_tensor_get(mg_exec_tensor(e, fw->bpd), n);
        cr_expect(b > 4 && b < 12, "bpd[%d] = %g at initialisation", n, b);
    }
    const mg_param *w3 = mg_params_find(f.params, "flow.3.w3");
    cr_assert_not_null(w3);
    double gsum = 0;
    for (int64_t i = 0; i < mg_tensor_numel(w3->grad); i++) gsum += fabs(mg_tensor_get(w3->grad, i));
    cr_expect_gt(gsum, 0, "gradients reach the blocks' weights");
    /* sample-side: invert the latents back to the images */
    cr_assert_eq(mg_model_build_inverse(f.model, 4, &inv), MG_OK, "%s", mg_ctx_error(f.ctx));
    mg_compile_opts o = {.struct_size = sizeof o};
    mg_exec *ei = NULL;
    cr_assert_eq(mg_graph_compile(inv->g, &o, &ei), MG_OK, "%s", mg_ctx_error(f.ctx));
    cr_assert_eq(mg_exec_set_input(ei, "z", mg_exec_tensor(e, fw->z)), MG_OK);
    cr_assert_eq(mg_exec_forward(ei), MG_OK, "%s", mg_ctx_error(f.ctx));
    cr_expect_lt(tu_max_abs_diff(x, mg_exec_tensor(ei, inv->x_out)), 1e-4);
    for (int i = 0; i < inv->n_layers; i++) {
        int block = !strcmp(f.spec->model.layers[i].type, "mintnet.block");
        cr_expect_eq(mg_value_ok(inv->layer_diag[i]), block, "layer %d diagnostics", i);
        if (!block) continue;
        const mg_tensor *d = mg_exec_tensor(ei, inv->layer_diag[i]);
        cr_assert_not_null(d);
        cr_expect_eq(d->shape[0], 4);
        cr_expect_eq(d->shape[1], 3);
        for (int n = 0; n < 4; n++) cr_expect_eq(mg_tensor_get(d, n * 3 + 2), 1, "layer %d sample %d converged", i, n);
    }
    mg_tensor_free(x);
    mg_exec_free(e);
    mg_exec_free(ei);
    mg_model_graph_free(fw);
    mg_model_graph_free(inv);
    fx_free(&f);
}
