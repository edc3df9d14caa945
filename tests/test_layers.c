/* tests/test_layers.c: the layer-type registry (layer.h) and the built-in
 * `squeeze` layer: schema storage, lookups and suggestions, ABI and schema
 * checks, duplicates, squeeze's shape rules and its exact round trip. */
#include <string.h>

#include "testutil.h"

/* Compiles g forward-only, every node running. */
static mg_status compile_fwd(mg_graph *g, mg_exec **e)
{
    mg_compile_opts o = {.struct_size = sizeof o};
    return mg_graph_compile(g, &o, e);
}

static void quiet(void *user, mg_log_level level, const char *msg)
{
    (void)user, (void)level, (void)msg;
}

static mg_ctx *qctx(void)
{
    mg_ctx *ctx = tu_ctx();
    mg_ctx_set_log(ctx, quiet, NULL);
    return ctx;
}

static mg_status same_shape(const mg_layer_build *b, int64_t out[3])
{
    memcpy(out, b->in_shape, 3 * sizeof out[0]);
    return MG_OK;
}

static mg_status identity(mg_layer_build *b, mg_value x, mg_value *y, mg_value *logdet)
{
    (void)b;
    *y = x;
    *logdet = MG_VALUE_NONE;
    return MG_OK;
}

static const char *const modes[] = {"A", "B", NULL};
static const mg_layer_arg inv_fields[] = {
    {.name = "tolerance", .type = MG_ARG_FLOAT, .min = 0, .max = 1, .dflt = "1e-5"},
    {.name = "max_iter", .type = MG_ARG_INT, .min = 1, .max = 100000, .dflt = "200"},
};
static const mg_layer_arg good_args[] = {
    {.name = "mask", .type = MG_ARG_ENUM, .required = 1, .choices = modes, .doc = "mask type"},
    {.name = "latent", .type = MG_ARG_INT, .min = 1, .max = 1000, .dflt = "4"},
    {.name = "exact", .type = MG_ARG_BOOL, .dflt = "true"},
    {.name = "inverse", .type = MG_ARG_MAP, .fields = inv_fields, .n_fields = 2},
};

/* A valid layer type "test.block" with the schema above. */
static mg_layer_def good_def(void)
{
    return (mg_layer_def){.struct_size = sizeof(mg_layer_def), .abi_version = MG_ABI_VERSION,
                          .name = "test.block", .summary = "a test layer", .args = good_args,
                          .n_args = 4, .out_shape = same_shape, .forward = identity};
}

/* Registers d and expects `want`, with `msg` in the error when failing. */
static void expect_add(const mg_layer_def *d, mg_status want, const char *msg)
{
    mg_ctx *ctx = qctx();
    mg_registry *r = mg_ctx_registry(ctx);
    int n0 = mg_registry_num_layers(r);
    mg_status s = mg_registry_add_layer(r, d);
    cr_assert_eq(s, want, "%s, want %s: %s", mg_status_name(s), mg_status_name(want), mg_ctx_error(ctx));
    if (msg) cr_assert(strstr(mg_ctx_error(ctx), msg), "message lacks '%s': %s", msg, mg_ctx_error(ctx));
    cr_assert_eq(mg_registry_num_layers(r), n0 + (want == MG_OK));
    mg_ctx_free(ctx);
}

/* ---- registry ------------------------------------------------------------------ */

Test(layers, builtin_squeeze_schema)
{
    mg_ctx *ctx = qctx();
    mg_registry *r = mg_ctx_registry(ctx);
    const mg_layer_def *d = mg_registry_find_layer(r, "squeeze");
    cr_assert_not_null(d);
    cr_assert_str_eq(mg_registry_layer_origin(r, "squeeze"), "builtin");
    cr_assert_eq(d->n_args, 1);
    cr_assert_str_eq(d->args[0].name, "factor");
    cr_assert_eq(d->args[0].type, MG_ARG_INT);
    cr_assert_eq(d->args[0].min, 2);
    cr_assert_eq(d->args[0].max, 8);
    cr_assert_str_eq(d->args[0].dflt, "2");
    cr_assert_not_null(d->out_shape);
    cr_assert_not_null(d->forward);
    cr_assert_not_null(d->inverse);
    cr_assert_null(d->init_params);
    cr_assert_geq(mg_registry_num_layers(r), 1);
    mg_ctx_free(ctx);
}

Test(layers, add_find_list_suggest)
{
    mg_ctx *ctx = qctx();
    mg_registry *r = mg_ctx_registry(ctx);
    int n0 = mg_registry_num_layers(r);
    mg_layer_def d = good_def();
    cr_assert_eq(mg_registry_add_layer(r, &d), MG_OK, "%s", mg_ctx_error(ctx));
    d.name = "test.other";
    cr_assert_eq(mg_registry_add_layer(r, &d), MG_OK, "%s", mg_ctx_error(ctx));
    cr_assert_eq(mg_registry_num_layers(r), n0 + 2);
    cr_assert_str_eq(mg_registry_layer_at(r, n0)->name, "test.block");
    cr_assert_str_eq(mg_registry_layer_at(r, n0 + 1)->name, "test.other");
    cr_assert_null(mg_registry_layer_at(r, n0 + 2));
    cr_assert_null(mg_registry_layer_at(r, -1));
    const mg_layer_def *f = mg_registry_find_layer(r, "test.block");
    cr_assert_not_null(f);
    cr_assert_eq(f->args, good_args, "the schema is kept by reference");
    cr_assert_str_eq(f->args[3].fields[1].name, "max_iter");
    cr_assert_str_eq(mg_registry_layer_origin(r, "test.block"), "builtin");
    cr_assert_null(mg_registry_find_layer(r, "test.nothing"));
    cr_assert_null(mg_registry_layer_origin(r, "test.nothing"));
    cr_assert_str_eq(mg_registry_suggest_layer(r, "sqeeze"), "squeeze");
    cr_assert_str_eq(mg_registry_suggest_layer(r, "test.blok"), "test.block");
    cr_assert_null(mg_registry_suggest_layer(r, "zzzzzzzzzzzzzzzzzzzzzz"));
    /* Layer types and ops live in separate namespaces. */
    cr_assert_null(mg_registry_find_op(r, "test.block"));
    mg_ctx_free(ctx);
}

Test(layers, duplicate_name)
{
    mg_layer_def d = good_def();
    d.name = "squeeze";
    expect_add(&d, MG_ERR_EXISTS, "layer type 'squeeze' is already registered (by builtin)");
}

Test(layers, abi_checks)
{
    mg_layer_def d = good_def();
    d.abi_version = MG_ABI_VERSION + 1;
    char want[48];
    snprintf(want, sizeof want, "built for ABI %d", MG_ABI_VERSION + 1);
    expect_add(&d, MG_ERR_ABI, want);
    d = good_def();
    d.struct_size = offsetof(mg_layer_def, inverse);
    expect_add(&d, MG_ERR_ABI, "table size");
}

Test(layers, newer_larger_table_is_accepted)
{
    struct {
        mg_layer_def def;
        void *future_field[4];
    } big = {.def = good_def()};
    big.def.struct_size = sizeof big;
    mg_ctx *ctx = qctx();
    mg_registry *r = mg_ctx_registry(ctx);
    cr_assert_eq(mg_registry_add_layer(r, &big.def), MG_OK, "%s", mg_ctx_error(ctx));
    const mg_layer_def *f = mg_registry_find_layer(r, "test.block");
    cr_assert_eq(f->struct_size, sizeof(mg_layer_def));
    cr_assert_eq(f->forward, identity);
    mg_ctx_free(ctx);
}

Test(layers, required_callbacks)
{
    mg_layer_def d = good_def();
    d.out_shape = NULL;
    expect_add(&d, MG_ERR_ARG, "out_shape and forward are required");
    d = good_def();
    d.forward = NULL;
    expect_add(&d, MG_ERR_ARG, "required");
    d = good_def();
    d.name = "";
    expect_add(&d, MG_ERR_ARG, "required");
}

Test(layers, schema_checks)
{
    static const mg_layer_arg no_choices[] = {{.name = "mode", .type = MG_ARG_ENUM}};
    static const mg_layer_arg twice[] = {{.name = "k", .type = MG_ARG_INT}, {.name = "k", .type = MG_ARG_FLOAT}};
    static const mg_layer_arg empty_map[] = {{.name = "inv", .type = MG_ARG_MAP}};
    static const mg_layer_arg bad_default[] = {{.name = "k", .type = MG_ARG_INT, .min = 1, .max = 4, .dflt = "9"}};
    static const mg_layer_arg bad_enum_default[] = {{.name = "m", .type = MG_ARG_ENUM, .choices = modes, .dflt = "C"}};
    static const mg_layer_arg frac_int[] = {{.name = "k", .type = MG_ARG_INT, .dflt = "1.5"}};
    static const mg_layer_arg bad_type[] = {{.name = "k", .type = (mg_arg_type)99}};
    static const mg_layer_arg unnamed[] = {{.type = MG_ARG_INT}};
    struct {
        const mg_layer_arg *args;
        int n;
        const char *msg;
    } cases[] = {
        {no_choices, 1, "lists no choices"}, {twice, 2, "'k' appears twice"},
        {empty_map, 1, "needs fields"},      {bad_default, 1, "default '9' of argument 'k'"},
        {bad_enum_default, 1, "default 'C'"}, {frac_int, 1, "default '1.5'"},
        {bad_type, 1, "unknown type 99"},    {unnamed, 1, "has no name"},
        {NULL, 2, "no schema"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mg_layer_def d = good_def();
        d.args = cases[i].args;
        d.n_args = cases[i].n;
        expect_add(&d, MG_ERR_ARG, cases[i].msg);
    }
}

/* ---- squeeze ------------------------------------------------------------------------- */

/* A build context for squeeze with the given factor (0: default) on in. */
typedef struct sq {
    mg_ctx *ctx;
    const mg_layer_def *def;
    mg_attrs *args;
    mg_layer_build b;
} sq;

static sq sq_new(int factor, int64_t c, int64_t h, int64_t w)
{
    sq s = {.ctx = qctx()};
    s.def = mg_registry_find_layer(mg_ctx_registry(s.ctx), "squeeze");
    cr_assert_not_null(s.def);
    s.args = mg_attrs_new();
    if (factor) mg_attrs_set_int(s.args, "factor", factor);
    s.b = (mg_layer_build){.struct_size = sizeof s.b, .ctx = s.ctx, .index = 3, .prefix = "flow.3",
                           .type = "squeeze", .args = s.args, .in_shape = {c, h, w}};
    return s;
}

static void sq_free(sq *s)
{
    mg_attrs_free(s->args);
    mg_ctx_free(s->ctx);
}

static void expect_out(int factor, int64_t c, int64_t h, int64_t w, int64_t oc, int64_t oh, int64_t ow)
{
    sq s = sq_new(factor, c, h, w);
    int64_t out[3];
    cr_assert_eq(s.def->out_shape(&s.b, out), MG_OK, "%s", mg_ctx_error(s.ctx));
    cr_assert(out[0] == oc && out[1] == oh && out[2] == ow, "got %lldx%lldx%lld", (long long)out[0],
              (long long)out[1], (long long)out[2]);
    sq_free(&s);
}

static void expect_out_error(int factor, int64_t c, int64_t h, int64_t w, mg_status want, const char *msg)
{
    sq s = sq_new(factor, c, h, w);
    int64_t out[3];
    cr_assert_eq(s.def->out_shape(&s.b, out), want);
    cr_assert_str_eq(mg_ctx_error(s.ctx), msg);
    sq_free(&s);
}

Test(layers, squeeze_out_shape)
{
    expect_out(0, 1, 28, 28, 4, 14, 14);
    expect_out(2, 4, 14, 14, 16, 7, 7);
    expect_out(3, 2, 9, 6, 18, 3, 2);
    expect_out(8, 1, 8, 16, 64, 1, 2);
}

Test(layers, squeeze_shape_errors)
{
    expect_out_error(0, 1, 7, 7, MG_ERR_SHAPE, "squeeze factor 2 needs even height and width, got 1x7x7");
    expect_out_error(2, 16, 8, 7, MG_ERR_SHAPE, "squeeze factor 2 needs even height and width, got 16x8x7");
    expect_out_error(3, 1, 9, 8, MG_ERR_SHAPE,
                     "squeeze factor 3 needs height and width divisible by 3, got 1x9x8");
    expect_out_error(9, 1, 18, 18, MG_ERR_ARG, "squeeze factor must be 2..8, got 9");
    expect_out_error(1, 1, 4, 4, MG_ERR_ARG, "squeeze factor must be 2..8, got 1");
}

/* forward then inverse in one graph: y has the documented layout and the
 * round trip is exact (pure data movement). */
static void squeeze_round_trip(int factor, mg_dtype dt, int64_t n, int64_t c, int64_t h, int64_t w)
{
    sq s = sq_new(factor, c, h, w);
    mg_graph *g = NULL;
    cr_assert_eq(mg_graph_new(s.ctx, &g), MG_OK);
    s.b.g = g;
    cr_assert_eq(s.def->out_shape(&s.b, s.b.out_shape), MG_OK);
    int64_t xs[4] = {n, c, h, w};
    mg_value x = mg_graph_input(g, "x", dt, 4, xs), y, ld, x2, diag;
    cr_assert_eq(s.def->forward(&s.b, x, &y, &ld), MG_OK, "%s", mg_ctx_error(s.ctx));
    cr_assert_not(mg_value_ok(ld), "squeeze has no log-det node");
    cr_assert_eq(s.def->inverse(&s.b, y, &x2, &diag), MG_OK, "%s", mg_ctx_error(s.ctx));
    cr_assert_not(mg_value_ok(diag));
    const mg_tensor *yd = mg_graph_value_desc(g, y);
    for (int i = 0; i < 3; i++) cr_assert_eq(yd->shape[i + 1], s.b.out_shape[i]);
    mg_exec *e = NULL;
    cr_assert_eq(compile_fwd(g, &e), MG_OK, "%s", mg_ctx_error(s.ctx));
    mg_tensor *xv = tu_rand(dt, 4, xs, -3, 3, 11);
    cr_assert_eq(mg_exec_set_input(e, "x", xv), MG_OK);
    cr_assert_eq(mg_exec_forward(e), MG_OK, "%s", mg_ctx_error(s.ctx));
    const mg_tensor *yv = mg_exec_tensor(e, y);
    int64_t f = factor, oh = h / f, ow = w / f;
    for (int64_t i = 0; i < mg_tensor_numel(xv); i++) { /* out[n, dy*f*C + dx*C + c, i, j] = in[n, c, f*i+dy, f*j+dx] */
        int64_t b = i / (c * h * w), ch = i / (h * w) % c, yy = i / w % h, xx = i % w;
        int64_t dy = yy % f, dx = xx % f;
        int64_t o = ((b * c * f * f + dy * f * c + dx * c + ch) * oh + yy / f) * ow + xx / f;
        cr_assert_eq(mg_tensor_get(yv, o), mg_tensor_get(xv, i), "element %lld", (long long)i);
    }
    cr_assert_eq(tu_max_abs_diff(mg_exec_tensor(e, x2), xv), 0.0, "round trip is not exact");
    mg_tensor_free(xv);
    mg_exec_free(e);
    mg_graph_free(g);
    sq_free(&s);
}

Test(layers, squeeze_round_trip_exact)
{
    squeeze_round_trip(2, MG_F32, 2, 1, 28, 28);
    squeeze_round_trip(2, MG_F32, 3, 4, 14, 6);
    squeeze_round_trip(3, MG_F64, 1, 2, 9, 3);
    squeeze_round_trip(2, MG_F64, 1, 3, 2, 2);
}
