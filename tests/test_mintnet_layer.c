/* tests/test_mintnet_layer.c: the plugin's registration (static and as a
 * loaded shared object), the `mintnet.block` layer type: argument schema,
 * parameter names, shapes and initialisation (spec section 7), raw and
 * effective parameter counts (61,716 for the small model, 805,272 for the
 * MNIST one), inverse settings (layer map over model settings), and whole
 * models from YAML specs through the engine's model builder. */
#include "test_mintnet_ref.h"

#include <mintgrad/model.h>
#include <mintgrad/spec.h>

static void ignore(void *user, mg_log_level level, const char *msg)
{
    (void)user, (void)level, (void)msg;
}

/* Expected failures stay off stderr. */
static void quiet(mg_ctx *ctx) { mg_ctx_set_log(ctx, ignore, NULL); }

Test(mintnet_layer, registration)
{
    mg_ctx *ctx = mn_ctx();
    mg_registry *r = mg_ctx_registry(ctx);
    static const char *const ops[] = {"mintnet.masked_conv2d", "mintnet.block", "mintnet.block_inverse"};
    for (int i = 0; i < 3; i++) {
        const mg_op_def *d = mg_registry_find_op(r, ops[i]);
        cr_assert_not_null(d, "%s missing", ops[i]);
        cr_expect_str_eq(mg_registry_op_origin(r, ops[i]), "mintnet");
        cr_expect(i == 2 ? d->backward == NULL : d->backward != NULL, "%s backward", ops[i]);
    }
    cr_assert_not_null(mg_registry_find_layer(r, "mintnet.block"));
    cr_expect_str_eq(mg_registry_layer_origin(r, "mintnet.block"), "mintnet");
    /* the same plugin under another name clashes and is rolled back */
    int nops = mg_registry_num_ops(r), nl = mg_registry_num_layers(r);
    quiet(ctx);
    mg_status s = mg_plugin_register_static(ctx, "mintnet_again", mg_mintnet_plugin_init);
    cr_expect_eq(s, MG_ERR_EXISTS, "got %s", mg_status_name(s));
    cr_expect_eq(mg_registry_num_ops(r), nops);
    cr_expect_eq(mg_registry_num_layers(r), nl);
    cr_expect_not_null(mg_registry_find_op(r, "mintnet.block"), "rollback removed the first registration");
    mg_ctx_free(ctx);
}

/* A host built for another ABI is refused cleanly. */
Test(mintnet_layer, abi_mismatch)
{
    mg_ctx *ctx = tu_ctx();
    mg_host_api h = *mg_plugin_host(ctx);
    h.abi_version = MG_ABI_VERSION + 1;
    quiet(ctx);
    cr_expect_eq(mg_mintnet_plugin_init(mg_ctx_registry(ctx), &h), MG_ERR_ABI);
    cr_expect(strstr(mg_ctx_error(ctx), "ABI"), "message: %s", mg_ctx_error(ctx));
    cr_expect_null(mg_registry_find_op(mg_ctx_registry(ctx), "mintnet.block"));
    mg_ctx_free(ctx);
}

/* The shared object in the build tree loads by name. */
Test(mintnet_layer, dynamic_load)
{
    mg_ctx *ctx = tu_ctx();
    mg_status s = mg_plugin_load(ctx, "mintnet");
    cr_assert_eq(s, MG_OK, "loading the mintnet plugin: %s", mg_ctx_error(ctx));
    cr_expect_not_null(mg_registry_find_op(mg_ctx_registry(ctx), "mintnet.block_inverse"));
    cr_expect_not_null(mg_registry_find_layer(mg_ctx_registry(ctx), "mintnet.block"));
    mg_ctx_free(ctx);
}

/* ---- layer builds -------------------------------------------------------------------------- */

typedef struct lb {
    mg_layer_build b;
    mg_attrs *args;
    char prefix[32];
} lb;

static const mg_layer_def *block_def(mg_ctx *ctx)
{
    const mg_layer_def *d = mg_registry_find_layer(mg_ctx_registry(ctx), "mintnet.block");
    cr_assert_not_null(d);
    return d;
}

static void lb_init(lb *l, mg_ctx *ctx, mg_params *ps, mg_rng *rng, int index, const char *mask, int latent,
                    int64_t c, int64_t h, int64_t w)
{
    memset(l, 0, sizeof *l);
    l->args = mg_attrs_new();
    mg_attrs_set_str(l->args, "mask", mask);
    mg_attrs_set_int(l->args, "latent", latent);
    snprintf(l->prefix, sizeof l->prefix, "flow.%d", index);
    l->b = (mg_layer_build){.struct_size = sizeof l->b, .ctx = ctx, .params = ps, .index = index,
                            .prefix = l->prefix, .type = "mintnet.block", .args = l->args, .rng = rng,
                            .in_shape = {c, h, w}};
}

/* Sum of raw / effective counts of a flow described as stages of
 * (C, H, W, L, layers): each layer an A and a B block; squeezes between. */
static void flow_counts(mg_ctx *ctx, const int64_t (*stages)[5], int n, int64_t *raw, int64_t *eff)
{
    const mg_layer_def *d = block_def(ctx);
    *raw = *eff = 0;
    int index = 0;
    for (int s = 0; s < n; s++) {
        for (int64_t k = 0; k < 2 * stages[s][4]; k++) {
            lb l;
            lb_init(&l, ctx, NULL, NULL, index++, k % 2 ? "B" : "A", (int)stages[s][3], stages[s][0], stages[s][1],
                    stages[s][2]);
            int64_t r, e;
            d->count_params(&l.b, &r, &e);
            *raw += r;
            *eff += e;
            mg_attrs_free(l.args);
        }
        index++; /* the squeeze */
    }
}

Test(mintnet_layer, parameter_counts_of_the_published_models)
{
    mg_ctx *ctx = mn_ctx();
    static const int64_t small[][5] = {{1, 28, 28, 16, 2}, {4, 14, 14, 4, 2}, {16, 7, 7, 1, 2}};
    static const int64_t mnist[][5] = {{1, 28, 28, 45, 6}, {4, 14, 14, 11, 6}, {16, 7, 7, 2, 8}};
    static const int64_t cifar[][5] = {{3, 32, 32, 85, 7}, {12, 16, 16, 21, 7}, {48, 8, 8, 5, 7}};
    int64_t raw, eff;
    flow_counts(ctx, small, 3, &raw, &eff);
    cr_expect_eq(raw, 61716, "small model: %lld raw parameters", (long long)raw);
    cr_expect_lt(eff, raw);
    flow_counts(ctx, mnist, 3, &raw, &eff);
    cr_expect_eq(raw, 805272, "MNIST model: %lld raw parameters", (long long)raw);
    flow_counts(ctx, cifar, 3, &raw, &eff);
    cr_expect_eq(raw, 27460944, "CIFAR-10 model: %lld raw parameters", (long long)raw);
    mg_ctx_free(ctx);
}

/* Effective count of one small block, by hand: C = 2, L = 1, 3x3 image.
 * Each 2x2 grid of sub-blocks keeps 5 + 5 + 9 + 0 = 19 taps; biases 2 + 2 + 2,
 * t 18. */
Test(mintnet_layer, effective_count_by_hand)
{
    mg_ctx *ctx = mn_ctx();
    lb l;
    lb_init(&l, ctx, NULL, NULL, 0, "A", 1, 2, 3, 3);
    int64_t raw, eff;
    block_def(ctx)->count_params(&l.b, &raw, &eff);
    cr_expect_eq(raw, 3 * 36 + 6 + 18);
    cr_expect_eq(eff, 3 * 19 + 6 + 18);
    mg_attrs_free(l.args);
    mg_ctx_free(ctx);
}

static double mean_of(const mg_tensor *t, double *sd)
{
    int64_t n = mg_tensor_numel(t);
    double s = 0, q = 0;
    for (int64_t i = 0; i < n; i++) s += mg_tensor_get(t, i);
    s /= (double)n;
    for (int64_t i = 0; i < n; i++) q += (mg_tensor_get(t, i) - s) * (mg_tensor_get(t, i) - s);
    *sd = sqrt(q / (double)n);
    return s;
}

Test(mintnet_layer, init_params_names_shapes_statistics)
{
    mg_ctx *ctx = mn_ctx();
    mg_params *ps;
    mg_params_new(&ps);
    mg_rng rng;
    mg_rng_seed(&rng, 3);
    lb l;
    lb_init(&l, ctx, ps, &rng, 7, "B", 16, 4, 6, 5);
    cr_assert_eq(block_def(ctx)->init_params(&l.b), MG_OK, "%s", mg_ctx_error(ctx));
    cr_expect_eq(mg_params_count(ps), 7);
    struct {
        const char *name;
        int rank;
        int64_t shape[4];
    } want[7] = {{"flow.7.w1", 4, {64, 4, 3, 3}}, {"flow.7.b1", 1, {64}}, {"flow.7.w2", 4, {64, 64, 3, 3}},
                 {"flow.7.b2", 1, {64}}, {"flow.7.w3", 4, {4, 64, 3, 3}}, {"flow.7.b3", 1, {4}},
                 {"flow.7.t", 3, {4, 6, 5}}};
    for (int i = 0; i < 7; i++) {
        mg_param *p = mg_params_find(ps, want[i].name);
        cr_assert_not_null(p, "%s missing", want[i].name);
        cr_expect_eq(p->value->rank, want[i].rank, "%s rank", want[i].name);
        for (int k = 0; k < want[i].rank; k++) cr_expect_eq(p->value->shape[k], want[i].shape[k], "%s", want[i].name);
    }
    double sd, m;
    /* w2: fan_in = fan_out = 64*9: std = 0.005 sqrt(2 / 1152) */
    m = mean_of(mg_params_find(ps, "flow.7.w2")->value, &sd);
    cr_expect_float_eq(sd, 0.005 * sqrt(2.0 / 1152), 0.005 * sqrt(2.0 / 1152) * 0.03, "w2 std %g", sd);
    cr_expect_lt(fabs(m), sd * 0.05);
    /* w1: fan_in 36, fan_out 576 */
    mean_of(mg_params_find(ps, "flow.7.w1")->value, &sd);
    cr_expect_float_eq(sd, 0.005 * sqrt(2.0 / 612), 0.005 * sqrt(2.0 / 612) * 0.1, "w1 std %g", sd);
    /* b2: U(-1/sqrt(576), 1/sqrt(576)); b1: bound 1/sqrt(36); b3: 1/sqrt(576) */
    const mg_tensor *b1 = mg_params_find(ps, "flow.7.b1")->value, *b2 = mg_params_find(ps, "flow.7.b2")->value;
    double m1 = 0, m2 = 0;
    for (int i = 0; i < 64; i++) {
        m1 = fmax(m1, fabs(mg_tensor_get(b1, i)));
        m2 = fmax(m2, fabs(mg_tensor_get(b2, i)));
    }
    cr_expect(m1 <= 1.0 / 6 && m1 > 0.5 / 6, "b1 max %g", m1);
    cr_expect(m2 <= 1.0 / 24 && m2 > 0.5 / 24, "b2 max %g", m2);
    const mg_tensor *t = mg_params_find(ps, "flow.7.t")->value;
    for (int i = 0; i < 120; i++) cr_expect_eq(mg_tensor_get(t, i), 1.0);
    /* calling again keeps the values (loaded parameters are checked, not reset) */
    double w00 = mg_tensor_get(mg_params_find(ps, "flow.7.w2")->value, 0);
    cr_assert_eq(block_def(ctx)->init_params(&l.b), MG_OK);
    cr_expect_eq(mg_tensor_get(mg_params_find(ps, "flow.7.w2")->value, 0), w00);
    /* a parameter of the wrong shape is an error naming it */
    mg_attrs_set_int(l.args, "latent", 8);
    quiet(ctx);
    mg_status s = block_def(ctx)->init_params(&l.b);
    cr_expect_eq(s, MG_ERR_SHAPE);
    cr_expect(strstr(mg_ctx_error(ctx), "flow.7.w1"), "message: %s", mg_ctx_error(ctx));
    mg_attrs_free(l.args);
    mg_params_free(ps);
    mg_ctx_free(ctx);
}

/* The inverse node takes the layer's own settings over the model's. */
Test(mintnet_layer, inverse_settings)
{
    mg_ctx *ctx = mn_ctx();
    mg_params *ps;
    mg_params_new(&ps);
    mg_rng rng;
    mg_rng_seed(&rng, 4);
    lb l;
    lb_init(&l, ctx, ps, &rng, 0, "A", 2, 1, 4, 4);
    mg_attrs_set_str(l.args, "inverse.precision", "float64");
    mg_attrs_set_int(l.args, "inverse.max_iterations", 50);
    mg_attrs_set_int(l.args, "inverse.adaptive", 0);
    mg_attrs *model = mg_attrs_new();
    mg_attrs_set_float(model, "inverse.tolerance", 1e-7);
    mg_attrs_set_int(model, "inverse.max_iterations", 300);
    mg_attrs_set_str(model, "inverse.stop", "fixed");
    mg_attrs_set_int(model, "inverse.adaptive", 1);
    l.b.model = model;
    cr_assert_eq(block_def(ctx)->init_params(&l.b), MG_OK);
    mg_graph *g;
    mg_graph_new(ctx, &g);
    l.b.g = g;
    const int64_t sz[4] = {2, 1, 4, 4};
    mg_value z = mg_graph_input(g, "z", MG_F32, 4, sz), x, diag;
    cr_assert_eq(block_def(ctx)->inverse(&l.b, z, &x, &diag), MG_OK, "%s", mg_ctx_error(ctx));
    int k = mg_graph_value_node(g, x);
    const mg_attrs *a = mg_graph_node_attrs(g, k);
    cr_expect_str_eq(mg_graph_node_op(g, k)->name, "mintnet.block_inverse");
    cr_expect_str_eq(mg_attrs_str(a, "precision", ""), "float64");
    cr_expect_eq(mg_attrs_int(a, "max_iterations", 0), 50);
    cr_expect_float_eq(mg_attrs_float(a, "tolerance", 0), 1e-7, 1e-20);
    cr_expect_str_eq(mg_attrs_str(a, "stop", ""), "fixed");
    cr_expect_eq(mg_attrs_int(a, "adaptive", -1), 0, "the layer's adaptive: false wins");
    cr_expect(!mg_attrs_has(a, "damping"), "damping should stay at the op default");
    const mg_tensor *dd = mg_graph_value_desc(g, diag);
    cr_expect(dd->dtype == MG_F64 && dd->rank == 2 && dd->shape[0] == 2 && dd->shape[1] == 3);
    mg_graph_free(g);
    mg_attrs_free(model);
    mg_attrs_free(l.args);
    mg_params_free(ps);
    mg_ctx_free(ctx);
}

/* ---- through YAML and the model builder --------------------------------------------------- */

static const char small_yaml[] =
    "plugins: [mintnet]\n"
    "model:\n"
    "  input: [1, 28, 28]\n"
    "  preprocess: {logit: {lambda: 1.0e-6}}\n"
    "  inverse: {tolerance: 1.0e-5, max_iterations: 200, damping: 3.5}\n"
    "  layers:\n"
    "    - repeat: 2\n"
    "      layers:\n"
    "        - mintnet.block: {mask: A, latent: 16}\n"
    "        - mintnet.block: {mask: B, latent: 16, inverse: {precision: float64}}\n"
    "    - squeeze: {factor: 2}\n"
    "    - repeat: 2\n"
    "      layers:\n"
    "        - mintnet.block: {mask: A, latent: 4}\n"
    "        - mintnet.block: {mask: B, latent: 4}\n"
    "    - squeeze: {factor: 2}\n"
    "    - repeat: 2\n"
    "      layers:\n"
    "        - mintnet.block: {mask: A, latent: 1}\n"
    "        - mintnet.block: {mask: B, latent: 1}\n"
    "data: {dataset: generated}\n";

Test(mintnet_layer, small_model_from_yaml)
{
    mg_ctx *ctx = mn_ctx();
    mg_spec *spec;
    mg_status s = mg_spec_load_string(ctx, small_yaml, sizeof small_yaml - 1, "small.yaml", MG_SPEC_NO_PLUGINS, &spec);
    cr_assert_eq(s, MG_OK, "%s", mg_ctx_error(ctx));
    cr_expect_eq(spec->model.n_layers, 14);
    mg_params *ps;
    mg_params_new(&ps);
    mg_model *m;
    cr_assert_eq(mg_model_new(ctx, spec, ps, &m), MG_OK, "%s", mg_ctx_error(ctx));
    cr_assert_eq(mg_model_init_params(m, 1), MG_OK, "%s", mg_ctx_error(ctx));
    int64_t raw, eff;
    cr_assert_eq(mg_model_total_params(m, &raw, &eff), MG_OK);
    cr_expect_eq(raw, 61716, "raw %lld", (long long)raw);
    cr_expect_eq(mg_params_numel(ps), 61716);
    cr_expect_lt(eff, raw);
    mg_model_free(m);
    mg_params_free(ps);
    mg_spec_free(spec);
    mg_ctx_free(ctx);
}

/* Bad layer arguments are rejected by the schema with a position. */
Test(mintnet_layer, yaml_argument_errors)
{
    static const char *const bad[] = {
        "model: {input: [1, 4, 4], layers: [{mintnet.block: {mask: C, latent: 2}}]}\ndata: {dataset: generated}\n",
        "model: {input: [1, 4, 4], layers: [{mintnet.block: {mask: A, latent: 0}}]}\ndata: {dataset: generated}\n",
        "model: {input: [1, 4, 4], layers: [{mintnet.block: {mask: A}}]}\ndata: {dataset: generated}\n",
        "model: {input: [1, 4, 4], layers: [{mintnet.block: {mask: A, latent: 2, inverse: {precision: half}}}]}\n"
        "data: {dataset: generated}\n",
    };
    mg_ctx *ctx = mn_ctx();
    quiet(ctx);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        mg_spec *spec = NULL;
        mg_status s = mg_spec_load_string(ctx, bad[i], strlen(bad[i]), "bad.yaml", MG_SPEC_NO_PLUGINS, &spec);
        cr_expect_neq(s, MG_OK, "spec %zu accepted", i);
        cr_expect(strstr(mg_ctx_error(ctx), "bad.yaml:1:"), "spec %zu: message '%s'", i, mg_ctx_error(ctx));
        mg_spec_free(spec);
    }
    mg_ctx_free(ctx);
}
