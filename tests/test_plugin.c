/* tests/test_plugin.c: the plugin loader. Loads the test plugins of
 * tests/plugins/ by path, by name through MINTGRAD_PLUGIN_PATH and
 * statically; checks every error class (missing file, missing init symbol,
 * wrong ABI, duplicate names, init failure), that a failure leaves the
 * registry exactly as before and unloads the library, and that a loaded
 * plugin's op and layer type work in a graph. */
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "testutil.h"

#define PLUGIN(name) MG_TEST_PLUGIN_DIR "/" name ".so"

mg_status example_plugin_init(mg_registry *reg, const mg_host_api *host);

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

/* Every op and layer type with its origin, in order: "op:relu@builtin;...". */
static char *snapshot(mg_ctx *ctx)
{
    mg_registry *r = mg_ctx_registry(ctx);
    size_t cap = 1 << 16, len = 0;
    char *s = malloc(cap);
    cr_assert_not_null(s);
    s[0] = 0;
    for (int i = 0; i < mg_registry_num_ops(r); i++) {
        const char *n = mg_registry_op_at(r, i)->name;
        len += snprintf(s + len, cap - len, "op:%s@%s;", n, mg_registry_op_origin(r, n));
    }
    for (int i = 0; i < mg_registry_num_layers(r); i++) {
        const char *n = mg_registry_layer_at(r, i)->name;
        len += snprintf(s + len, cap - len, "layer:%s@%s;", n, mg_registry_layer_origin(r, n));
    }
    cr_assert_lt(len, cap);
    return s;
}

/* 1 if the shared object at path is currently loaded in this process. */
static int is_loaded(const char *path)
{
    void *h = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
    if (h) dlclose(h);
    return h != NULL;
}

/* Loads `path`, expects status `want`, and checks the failure left no trace. */
static void expect_rollback(const char *path, mg_status want, const char *in_message)
{
    mg_ctx *ctx = qctx();
    char *before = snapshot(ctx);
    mg_status s = mg_plugin_load(ctx, path);
    cr_assert_eq(s, want, "load %s: %s, want %s (%s)", path, mg_status_name(s), mg_status_name(want),
                 mg_ctx_error(ctx));
    cr_assert(strstr(mg_ctx_error(ctx), in_message), "message lacks '%s': %s", in_message, mg_ctx_error(ctx));
    char *after = snapshot(ctx);
    cr_assert_str_eq(after, before, "registry changed by a failed load");
    cr_assert_eq(mg_plugin_count(ctx), 0);
    cr_assert_not(is_loaded(path), "%s is still loaded after its failure", path);
    free(before);
    free(after);
    mg_ctx_free(ctx);
}

/* ---- the example plugin at work ------------------------------------------------ */

/* Builds y, logdet = example.scale(x, s) for x [2,3,2,2], runs it and checks
 * y = x * exp(s[c]) and logdet = H*W*sum(s). */
static void check_example_op(mg_ctx *ctx)
{
    mg_graph *g = NULL;
    mg_params *ps = NULL;
    mg_param *p = NULL;
    cr_assert_eq(mg_graph_new(ctx, &g), MG_OK);
    cr_assert_eq(mg_params_new(&ps), MG_OK);
    int64_t xs[4] = {2, 3, 2, 2}, ss[1] = {3};
    cr_assert_eq(mg_params_add(ps, "s", MG_F32, 1, ss, &p), MG_OK);
    float sv[3] = {0.5f, -0.25f, 0.125f};
    memcpy(p->value->data, sv, sizeof sv);
    mg_value in[2] = {mg_graph_input(g, "x", MG_F32, 4, xs), mg_graph_param(g, p)}, out[2];
    cr_assert_eq(mg_graph_node(g, "example.scale", NULL, in, 2, NULL, out, 2, NULL), MG_OK, "%s",
                 mg_ctx_error(ctx));
    mg_exec *e = NULL;
    cr_assert_eq(compile_fwd(g, &e), MG_OK, "%s", mg_ctx_error(ctx));
    mg_tensor *x = tu_rand(MG_F32, 4, xs, -1, 1, 7);
    cr_assert_eq(mg_exec_set_input(e, "x", x), MG_OK);
    cr_assert_eq(mg_exec_forward(e), MG_OK, "%s", mg_ctx_error(ctx));
    const mg_tensor *y = mg_exec_tensor(e, out[0]), *ld = mg_exec_tensor(e, out[1]);
    for (int64_t i = 0; i < 24; i++)
        cr_assert_float_eq(mg_tensor_get(y, i), mg_tensor_get(x, i) * exp(sv[(i / 4) % 3]), 1e-6);
    for (int64_t n = 0; n < 2; n++) cr_assert_float_eq(mg_tensor_get(ld, n), 4 * (0.5 - 0.25 + 0.125), 1e-6);
    mg_tensor_free(x);
    mg_exec_free(e);
    mg_graph_free(g);
    mg_params_free(ps);
}

Test(plugin, load_by_path_op_works_in_graph)
{
    mg_ctx *ctx = qctx();
    mg_registry *r = mg_ctx_registry(ctx);
    int ops0 = mg_registry_num_ops(r), layers0 = mg_registry_num_layers(r);
    cr_assert_eq(mg_plugin_load(ctx, PLUGIN("example")), MG_OK, "%s", mg_ctx_error(ctx));
    cr_assert_eq(mg_plugin_count(ctx), 1);
    cr_assert_str_eq(mg_plugin_name(ctx, 0), "example");
    cr_assert_null(mg_plugin_name(ctx, 1));
    cr_assert_eq(mg_registry_num_ops(r), ops0 + 1);
    cr_assert_eq(mg_registry_num_layers(r), layers0 + 1);
    cr_assert_str_eq(mg_registry_op_origin(r, "example.scale"), "example");
    cr_assert_str_eq(mg_registry_layer_origin(r, "example.scale"), "example");
    cr_assert_str_eq(mg_registry_op_origin(r, "relu"), "builtin");
    check_example_op(ctx);
    mg_ctx_free(ctx);
}

Test(plugin, loaded_op_passes_gradcheck)
{
    mg_ctx *ctx = qctx();
    cr_assert_eq(mg_plugin_load(ctx, PLUGIN("example")), MG_OK, "%s", mg_ctx_error(ctx));
    int64_t xs[4] = {2, 3, 3, 1}, ss[1] = {3};
    mg_tensor *in[2] = {tu_rand(MG_F32, 4, xs, -1, 1, 1), tu_rand(MG_F32, 1, ss, -0.5, 0.5, 2)};
    tu_gradcheck_op(ctx, "example.scale", (const mg_tensor *const *)in, 2, NULL, NULL);
    mg_attrs *a = mg_attrs_new();
    mg_attrs_set_int(a, "inverse", 1);
    tu_gradcheck_op(ctx, "example.scale", (const mg_tensor *const *)in, 2, a, NULL);
    mg_attrs_free(a);
    mg_tensor_free(in[0]);
    mg_tensor_free(in[1]);
    mg_ctx_free(ctx);
}

Test(plugin, loaded_layer_builds_forward_and_inverse)
{
    mg_ctx *ctx = qctx();
    cr_assert_eq(mg_plugin_load(ctx, PLUGIN("example")), MG_OK, "%s", mg_ctx_error(ctx));
    const mg_layer_def *L = mg_registry_find_layer(mg_ctx_registry(ctx), "example.scale");
    cr_assert_not_null(L);
    cr_assert_eq(L->n_args, 1);
    cr_assert_str_eq(L->args[0].name, "init");
    mg_graph *g = NULL;
    mg_params *ps = NULL;
    cr_assert_eq(mg_graph_new(ctx, &g), MG_OK);
    cr_assert_eq(mg_params_new(&ps), MG_OK);
    mg_rng rng;
    mg_rng_seed(&rng, 3);
    mg_layer_build b = {.struct_size = sizeof b, .ctx = ctx, .g = g, .params = ps, .index = 0,
                        .prefix = "flow.0", .type = L->name, .rng = &rng, .in_shape = {2, 3, 3}};
    cr_assert_eq(L->out_shape(&b, b.out_shape), MG_OK);
    cr_assert_eq(b.out_shape[0] * 100 + b.out_shape[1] * 10 + b.out_shape[2], 233);
    cr_assert_eq(L->init_params(&b), MG_OK, "%s", mg_ctx_error(ctx));
    mg_param *p = mg_params_find(ps, "flow.0.s");
    cr_assert_not_null(p);
    int64_t xs[4] = {2, 2, 3, 3};
    mg_value x = mg_graph_input(g, "x", MG_F32, 4, xs), y, ld, x2, diag;
    cr_assert_eq(L->forward(&b, x, &y, &ld), MG_OK, "%s", mg_ctx_error(ctx));
    cr_assert_eq(L->inverse(&b, y, &x2, &diag), MG_OK, "%s", mg_ctx_error(ctx));
    cr_assert_not(mg_value_ok(diag));
    mg_exec *e = NULL;
    cr_assert_eq(compile_fwd(g, &e), MG_OK, "%s", mg_ctx_error(ctx));
    mg_tensor *xv = tu_rand(MG_F32, 4, xs, -2, 2, 9);
    cr_assert_eq(mg_exec_set_input(e, "x", xv), MG_OK);
    cr_assert_eq(mg_exec_forward(e), MG_OK, "%s", mg_ctx_error(ctx));
    cr_assert_lt(tu_max_abs_diff(mg_exec_tensor(e, x2), xv), 1e-5);
    double sum = mg_tensor_get(p->value, 0) + mg_tensor_get(p->value, 1);
    cr_assert_float_eq(mg_tensor_get(mg_exec_tensor(e, ld), 1), 9 * sum, 1e-5);
    cr_assert_gt(fabs(sum), 0, "init_params left the scales at zero");
    mg_tensor_free(xv);
    mg_exec_free(e);
    mg_graph_free(g);
    mg_params_free(ps);
    mg_ctx_free(ctx);
}

/* The listing of docs/plugins.md: its op passes gradcheck and its layer
 * inverts. */
Test(plugin, docs_example_hello)
{
    mg_ctx *ctx = qctx();
    cr_assert_eq(mg_plugin_load(ctx, PLUGIN("hello")), MG_OK, "%s", mg_ctx_error(ctx));
    int64_t xs[4] = {2, 1, 3, 3};
    mg_tensor *xv = tu_rand(MG_F32, 4, xs, -1, 1, 5);
    tu_gradcheck_op(ctx, "hello.double", (const mg_tensor *const *)&xv, 1, NULL, NULL);
    const mg_layer_def *L = mg_registry_find_layer(mg_ctx_registry(ctx), "hello.double");
    cr_assert_not_null(L);
    mg_graph *g = NULL;
    cr_assert_eq(mg_graph_new(ctx, &g), MG_OK);
    mg_layer_build b = {.struct_size = sizeof b, .ctx = ctx, .g = g, .prefix = "flow.0",
                        .type = L->name, .in_shape = {1, 3, 3}};
    mg_value x = mg_graph_input(g, "x", MG_F32, 4, xs), y, ld, x2, diag;
    cr_assert_eq(L->forward(&b, x, &y, &ld), MG_OK, "%s", mg_ctx_error(ctx));
    cr_assert_eq(L->inverse(&b, y, &x2, &diag), MG_OK, "%s", mg_ctx_error(ctx));
    mg_exec *e = NULL;
    cr_assert_eq(compile_fwd(g, &e), MG_OK, "%s", mg_ctx_error(ctx));
    cr_assert_eq(mg_exec_set_input(e, "x", xv), MG_OK);
    cr_assert_eq(mg_exec_forward(e), MG_OK, "%s", mg_ctx_error(ctx));
    cr_assert_eq(tu_max_abs_diff(mg_exec_tensor(e, x2), xv), 0.0);
    cr_assert_float_eq(mg_tensor_get(mg_exec_tensor(e, ld), 1), 9 * log(2.0), 1e-5);
    mg_tensor_free(xv);
    mg_exec_free(e);
    mg_graph_free(g);
    mg_ctx_free(ctx);
}

/* ---- search path and repeated loads ------------------------------------------------- */

Test(plugin, load_by_name_through_env_path)
{
    setenv("MINTGRAD_PLUGIN_PATH", "/nonexistent/a::" MG_TEST_PLUGIN_DIR, 1);
    mg_ctx *ctx = qctx();
    cr_assert_eq(mg_plugin_load(ctx, "example"), MG_OK, "%s", mg_ctx_error(ctx));
    cr_assert_eq(mg_plugin_count(ctx), 1);
    cr_assert_str_eq(mg_plugin_name(ctx, 0), "example");
    check_example_op(ctx);
    mg_ctx_free(ctx);
}

Test(plugin, loading_twice_is_a_noop)
{
    setenv("MINTGRAD_PLUGIN_PATH", MG_TEST_PLUGIN_DIR, 1);
    mg_ctx *ctx = qctx();
    cr_assert_eq(mg_plugin_load(ctx, "example"), MG_OK, "%s", mg_ctx_error(ctx));
    char *before = snapshot(ctx);
    cr_assert_eq(mg_plugin_load(ctx, "example"), MG_OK, "%s", mg_ctx_error(ctx));
    cr_assert_eq(mg_plugin_load(ctx, "example.so"), MG_OK, "%s", mg_ctx_error(ctx));
    cr_assert_eq(mg_plugin_load(ctx, PLUGIN("example")), MG_OK, "%s", mg_ctx_error(ctx));
    cr_assert_eq(mg_plugin_register_static(ctx, "example", example_plugin_init), MG_OK);
    char *after = snapshot(ctx);
    cr_assert_str_eq(after, before);
    cr_assert_eq(mg_plugin_count(ctx), 1);
    free(before);
    free(after);
    mg_ctx_free(ctx);
}

Test(plugin, missing_plugin_lists_searched_directories)
{
    setenv("MINTGRAD_PLUGIN_PATH", "/no/such/dir1:/no/such/dir2", 1);
    mg_ctx *ctx = qctx();
    char *before = snapshot(ctx);
    cr_assert_eq(mg_plugin_load(ctx, "nosuchplugin"), MG_ERR_NOTFOUND);
    const char *msg = mg_ctx_error(ctx);
    cr_assert(strstr(msg, "nosuchplugin.so"), "%s", msg);
    cr_assert(strstr(msg, "/no/such/dir1, /no/such/dir2"), "%s", msg);
    cr_assert(strstr(msg, MG_TEST_BUILD_PLUGIN_DIR "/nosuchplugin/.libs"), "%s", msg);
    cr_assert(strstr(msg, "MINTGRAD_PLUGIN_PATH"), "%s", msg);
    cr_assert_eq(mg_plugin_load(ctx, "/no/such/file.so"), MG_ERR_NOTFOUND);
    cr_assert(strstr(mg_ctx_error(ctx), "/no/such/file.so"), "%s", mg_ctx_error(ctx));
    char *after = snapshot(ctx);
    cr_assert_str_eq(after, before);
    cr_assert_eq(mg_plugin_count(ctx), 0);
    free(before);
    free(after);
    mg_ctx_free(ctx);
}

Test(plugin, build_tree_is_searched)
{
    char path[4096];
    struct stat st;
    snprintf(path, sizeof path, "%s/mintnet/.libs/mintnet.so", MG_TEST_BUILD_PLUGIN_DIR);
    if (stat(path, &st) != 0) cr_skip_test("the mintnet plugin is not built in this tree");
    unsetenv("MINTGRAD_PLUGIN_PATH");
    mg_ctx *ctx = qctx();
    mg_status s = mg_plugin_load(ctx, "mintnet");
    cr_assert_neq(s, MG_ERR_NOTFOUND, "%s", mg_ctx_error(ctx));
    mg_ctx_free(ctx);
}

Test(plugin, bad_names_are_refused)
{
    mg_ctx *ctx = qctx();
    cr_assert_eq(mg_plugin_load(ctx, ""), MG_ERR_ARG);
    cr_assert_eq(mg_plugin_load(ctx, NULL), MG_ERR_ARG);
    cr_assert_eq(mg_plugin_load(ctx, "builtin"), MG_ERR_ARG);
    cr_assert_eq(mg_plugin_load(ctx, "a b"), MG_ERR_ARG);
    cr_assert_eq(mg_plugin_register_static(ctx, "two words", example_plugin_init), MG_ERR_ARG);
    cr_assert_eq(mg_plugin_register_static(ctx, "fine", NULL), MG_ERR_ARG);
    cr_assert_eq(mg_plugin_count(ctx), 0);
    mg_ctx_free(ctx);
}

/* ---- error classes of loaded plugins ---------------------------------------------------- */

Test(plugin, missing_init_symbol)
{
    expect_rollback(PLUGIN("noinit"), MG_ERR_PLUGIN, "exports no mg_plugin_init()");
}

Test(plugin, wrong_abi_version_rolls_back)
{
    char want[96];
    snprintf(want, sizeof want, "op 'badabi.future' was built for op ABI %d", MG_ABI_VERSION + 1);
    expect_rollback(PLUGIN("badabi"), MG_ERR_ABI, want);
}

Test(plugin, duplicate_op_name_rolls_back)
{
    expect_rollback(PLUGIN("dupop"), MG_ERR_EXISTS, "op 'relu' is already registered (by builtin)");
}

Test(plugin, init_failure_rolls_back)
{
    expect_rollback(PLUGIN("failinit"), MG_ERR_PLUGIN, "failinit: cannot open its lookup table");
}

Test(plugin, good_plugin_loads_after_failures)
{
    mg_ctx *ctx = qctx();
    cr_assert_eq(mg_plugin_load(ctx, PLUGIN("dupop")), MG_ERR_EXISTS);
    cr_assert_eq(mg_plugin_load(ctx, PLUGIN("failinit")), MG_ERR_PLUGIN);
    cr_assert_eq(mg_plugin_load(ctx, PLUGIN("example")), MG_OK, "%s", mg_ctx_error(ctx));
    cr_assert_eq(mg_plugin_count(ctx), 1);
    cr_assert_null(mg_registry_find_op(mg_ctx_registry(ctx), "dupop.copy"));
    cr_assert_null(mg_registry_find_layer(mg_ctx_registry(ctx), "failinit.identity"));
    check_example_op(ctx);
    mg_ctx_free(ctx);
}

Test(plugin, library_unloaded_when_context_freed)
{
    mg_ctx *a = qctx(), *b = qctx();
    cr_assert_not(is_loaded(PLUGIN("example")));
    cr_assert_eq(mg_plugin_load(a, PLUGIN("example")), MG_OK, "%s", mg_ctx_error(a));
    cr_assert_eq(mg_plugin_load(b, PLUGIN("example")), MG_OK, "%s", mg_ctx_error(b));
    cr_assert(is_loaded(PLUGIN("example")));
    mg_ctx_free(a);
    cr_assert(is_loaded(PLUGIN("example")), "freeing one context unloaded another's plugin");
    check_example_op(b);
    mg_ctx_free(b);
    cr_assert_not(is_loaded(PLUGIN("example")));
}

/* ---- static registration ---------------------------------------------------------------- */

Test(plugin, static_registration)
{
    mg_ctx *ctx = qctx();
    cr_assert_eq(mg_plugin_register_static(ctx, "example", example_plugin_init), MG_OK, "%s",
                 mg_ctx_error(ctx));
    cr_assert_eq(mg_plugin_count(ctx), 1);
    cr_assert_str_eq(mg_plugin_name(ctx, 0), "example");
    cr_assert_str_eq(mg_registry_op_origin(mg_ctx_registry(ctx), "example.scale"), "example");
    check_example_op(ctx);
    /* The loaded copy of the same plugin now clashes by name, not by file. */
    cr_assert_eq(mg_plugin_load(ctx, PLUGIN("example")), MG_OK);
    cr_assert_eq(mg_plugin_count(ctx), 1);
    mg_ctx_free(ctx);
}

static mg_status copy_infer(mg_node *n)
{
    const mg_tensor *x = mg_node_input(n, 0);
    return mg_node_set_output(n, 0, x->dtype, x->rank, x->shape);
}

static mg_status copy_forward(mg_node *n) { return mg_tensor_copy(mg_node_output(n, 0), mg_node_input(n, 0)); }

static mg_status same_shape(const mg_layer_build *b, int64_t out[3])
{
    memcpy(out, b->in_shape, 3 * sizeof out[0]);
    return MG_OK;
}

static mg_status no_forward(mg_layer_build *b, mg_value x, mg_value *y, mg_value *logdet)
{
    (void)b;
    *y = x;
    *logdet = MG_VALUE_NONE;
    return MG_OK;
}

static const mg_op_def static_op = {.struct_size = sizeof(mg_op_def), .abi_version = MG_ABI_VERSION,
                                     .name = "static.copy", .min_inputs = 1, .max_inputs = 1,
                                     .num_outputs = 1, .infer = copy_infer, .forward = copy_forward};
static const mg_layer_def squeeze_again = {.struct_size = sizeof(mg_layer_def), .abi_version = MG_ABI_VERSION,
                                           .name = "squeeze", .out_shape = same_shape, .forward = no_forward};

/* Registers an op, then a layer type named like the built-in squeeze, and
 * ignores the failure. */
static mg_status init_ignores_failure(mg_registry *r, const mg_host_api *h)
{
    h->add_op(r, &static_op);
    h->add_layer(r, &squeeze_again);
    return MG_OK;
}

static mg_status init_fails(mg_registry *r, const mg_host_api *h)
{
    h->add_op(r, &static_op);
    return h->fail(h->ctx, MG_ERR_NUMERIC, "static plugin: self-test failed");
}

static mg_status init_silent_failure(mg_registry *r, const mg_host_api *h)
{
    h->add_op(r, &static_op);
    return MG_ERR_NOMEM;
}

/* A plugin built for a newer host ABI refuses this one. */
static mg_status init_wants_newer_host(mg_registry *r, const mg_host_api *h)
{
    (void)r;
    if (h->abi_version < MG_ABI_VERSION + 1)
        return h->fail(h->ctx, MG_ERR_ABI, "needs host ABI %d, got %u", MG_ABI_VERSION + 1, h->abi_version);
    return MG_OK;
}

/* Registers static `init` as "static" and checks the failure left no trace. */
static void expect_static_rollback(mg_plugin_init_fn init, mg_status want, const char *in_message)
{
    mg_ctx *ctx = qctx();
    char *before = snapshot(ctx);
    mg_status s = mg_plugin_register_static(ctx, "static", init);
    cr_assert_eq(s, want, "%s, want %s (%s)", mg_status_name(s), mg_status_name(want), mg_ctx_error(ctx));
    cr_assert(strstr(mg_ctx_error(ctx), in_message), "message lacks '%s': %s", in_message, mg_ctx_error(ctx));
    cr_assert(strstr(mg_ctx_error(ctx), "plugin 'static' failed to initialise"), "%s", mg_ctx_error(ctx));
    char *after = snapshot(ctx);
    cr_assert_str_eq(after, before);
    cr_assert_eq(mg_plugin_count(ctx), 0);
    cr_assert_null(mg_registry_find_op(mg_ctx_registry(ctx), "static.copy"));
    free(before);
    free(after);
    mg_ctx_free(ctx);
}

Test(plugin, static_duplicate_layer_ignored_by_init)
{
    expect_static_rollback(init_ignores_failure, MG_ERR_EXISTS, "layer type 'squeeze' is already registered");
}

Test(plugin, static_init_failure)
{
    expect_static_rollback(init_fails, MG_ERR_PLUGIN, "static plugin: self-test failed");
}

Test(plugin, static_failure_without_message)
{
    expect_static_rollback(init_silent_failure, MG_ERR_PLUGIN, "init returned MG_ERR_NOMEM without a message");
}

Test(plugin, static_plugin_refuses_older_host)
{
    char want[64];
    snprintf(want, sizeof want, "needs host ABI %d, got %d", MG_ABI_VERSION + 1, MG_ABI_VERSION);
    expect_static_rollback(init_wants_newer_host, MG_ERR_ABI, want);
}

Test(plugin, host_table)
{
    mg_ctx *ctx = qctx();
    const mg_host_api *h = mg_plugin_host(ctx);
    cr_assert_not_null(h);
    cr_assert_eq(h->struct_size, sizeof(mg_host_api));
    cr_assert_eq(h->abi_version, MG_ABI_VERSION);
    cr_assert_str_eq(h->version, mg_version());
    cr_assert_eq(h->ctx, ctx);
    cr_assert(h->add_op && h->add_layer && h->fail && h->log);
    cr_assert_eq(h->fail(ctx, MG_ERR_IO, "x=%d", 5), MG_ERR_IO);
    cr_assert_str_eq(mg_ctx_error(ctx), "x=5");
    cr_assert_eq(mg_plugin_host(ctx), h, "one host table per context");
    mg_ctx_free(ctx);
}

/* ---- allocation failures ------------------------------------------------------------------ */

static int alloc_budget; /* allocations left before failing; < 0: unlimited */

static void *budget_malloc(size_t n)
{
    if (alloc_budget == 0) return NULL;
    if (alloc_budget > 0) alloc_budget--;
    return malloc(n);
}

static void *budget_realloc(void *p, size_t n)
{
    if (alloc_budget == 0) return NULL;
    if (alloc_budget > 0) alloc_budget--;
    return realloc(p, n);
}

/* Failing each allocation of a registration in turn: the plugin is either
 * fully registered or leaves the registry as it was (and leaks nothing, as
 * the sanitizer build checks). */
Test(plugin, out_of_memory_during_registration)
{
    int succeeded = 0;
    for (int k = 0; k < 64 && !succeeded; k++) {
        mg_ctx *ctx = qctx();
        char *before = snapshot(ctx);
        alloc_budget = k;
        mg_set_allocator(budget_malloc, budget_realloc, NULL);
        mg_status s = mg_plugin_register_static(ctx, "example", example_plugin_init);
        mg_set_allocator(NULL, NULL, NULL);
        char *after = snapshot(ctx);
        if (s == MG_OK) {
            succeeded = 1;
            cr_assert_eq(mg_plugin_count(ctx), 1);
            cr_assert_not_null(mg_registry_find_layer(mg_ctx_registry(ctx), "example.scale"));
        } else {
            cr_assert(s == MG_ERR_NOMEM || s == MG_ERR_PLUGIN, "budget %d: %s", k, mg_status_name(s));
            cr_assert_str_eq(after, before, "budget %d left a partial registration", k);
            cr_assert_eq(mg_plugin_count(ctx), 0);
        }
        free(before);
        free(after);
        mg_ctx_free(ctx);
    }
    cr_assert(succeeded, "registration never succeeded within 64 allocations");
}
