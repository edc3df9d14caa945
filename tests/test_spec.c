/* tests/test_spec.c: the YAML spec loader (mintgrad/spec.h): the shipped
 * examples load, repeats expand and number layers, arguments are validated
 * against layer schemas with defaults, and every class of error is reported
 * with its exact file:line:col. Layer types come from test stubs
 * (specs/stub_layers.h), so this suite does not need the MintNet plugin. */
#include "testutil.h"
#include "specs/stub_layers.h"

#include <mintgrad/spec.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef MG_SRCDIR
#define MG_SRCDIR "."
#endif

static const unsigned NOPLUG = MG_SPEC_NO_PLUGINS | MG_SPEC_NO_DATA_CHECK;

static void quiet_log(void *user, mg_log_level level, const char *msg) {}

static mg_ctx *stub_ctx(void)
{
    mg_ctx *ctx = tu_ctx();
    mg_ctx_set_log(ctx, quiet_log, NULL);
    cr_assert_eq(stub_register(ctx), MG_OK, "%s", mg_ctx_error(ctx));
    return ctx;
}

static mg_spec *load_ok(mg_ctx *ctx, const char *rel, unsigned flags)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", MG_SRCDIR, rel);
    mg_spec *s = NULL;
    mg_status st = mg_spec_load_file(ctx, path, flags, &s);
    cr_assert_eq(st, MG_OK, "%s: %s", rel, mg_ctx_error(ctx));
    cr_assert_not_null(s);
    return s;
}

static mg_spec *load_str_ok(mg_ctx *ctx, const char *text)
{
    mg_spec *s = NULL;
    mg_status st = mg_spec_load_string(ctx, text, strlen(text), "t.yaml", NOPLUG, &s);
    cr_assert_eq(st, MG_OK, "%s", mg_ctx_error(ctx));
    return s;
}

/* Loads tests/specs/<name> and checks the status and the message's
 * "<path>:<line>:<col>: " prefix and a fragment of it. */
static void expect_file_error(const char *name, unsigned flags, mg_status want, int line, int col,
                              const char *fragment)
{
    mg_ctx *ctx = stub_ctx();
    char path[512], prefix[600];
    snprintf(path, sizeof path, "%s/tests/specs/%s", MG_SRCDIR, name);
    mg_spec *s = (mg_spec *)1;
    mg_status st = mg_spec_load_file(ctx, path, flags, &s);
    cr_expect_eq(st, want, "%s: got %s (%s)", name, mg_status_name(st), mg_ctx_error(ctx));
    cr_expect_null(s, "%s: *out must be NULL on failure", name);
    snprintf(prefix, sizeof prefix, "%s:%d:%d: ", path, line, col);
    const char *msg = mg_ctx_error(ctx);
    cr_expect(strncmp(msg, prefix, strlen(prefix)) == 0, "%s: expected prefix '%s', got '%s'", name, prefix, msg);
    cr_expect(strstr(msg, fragment) != NULL, "%s: expected '%s' in '%s'", name, fragment, msg);
    mg_ctx_free(ctx);
}

/* The same for a spec given as text (file name "t.yaml"). */
static void expect_str_error(const char *text, mg_status want, int line, int col, const char *fragment)
{
    mg_ctx *ctx = stub_ctx();
    char prefix[64];
    mg_spec *s = NULL;
    mg_status st = mg_spec_load_string(ctx, text, strlen(text), "t.yaml", NOPLUG, &s);
    cr_expect_eq(st, want, "got %s (%s) for:\n%s", mg_status_name(st), mg_ctx_error(ctx), text);
    cr_expect_null(s);
    snprintf(prefix, sizeof prefix, "t.yaml:%d:%d: ", line, col);
    const char *msg = mg_ctx_error(ctx);
    cr_expect(strncmp(msg, prefix, strlen(prefix)) == 0, "expected prefix '%s', got '%s'", prefix, msg);
    cr_expect(strstr(msg, fragment) != NULL, "expected '%s' in '%s'", fragment, msg);
    mg_spec_free(s);
    mg_ctx_free(ctx);
}

/* ---- the shipped examples ------------------------------------------------- */

Test(spec, fashion_example_loads_unchanged)
{
    mg_ctx *ctx = stub_ctx();
    mg_spec *s = load_ok(ctx, "examples/fashion_mintnet_small.yaml", NOPLUG);
    const mg_spec_model *m = &s->model;
    cr_assert_eq(m->n_layers, 14);
    static const char *const types[14] = {
        "mintnet.block", "mintnet.block", "mintnet.block", "mintnet.block", "squeeze",
        "mintnet.block", "mintnet.block", "mintnet.block", "mintnet.block", "squeeze",
        "mintnet.block", "mintnet.block", "mintnet.block", "mintnet.block"};
    static const int latent[14] = {16, 16, 16, 16, 0, 4, 4, 4, 4, 0, 1, 1, 1, 1};
    for (int i = 0; i < 14; i++) {
        const mg_spec_layer *l = &m->layers[i];
        cr_expect_eq(l->index, i);
        cr_expect_str_eq(l->type, types[i], "layer %d", i);
        cr_expect_not_null(l->def);
        if (latent[i]) {
            cr_expect_eq(mg_attrs_int(l->args, "latent", -1), latent[i], "layer %d", i);
            char want[2] = {"ABAB?ABAB?ABAB"[i], 0};
            cr_expect_str_eq(mg_attrs_str(l->args, "mask", "?"), want, "layer %d", i);
        } else {
            cr_expect_eq(mg_attrs_int(l->args, "factor", -1), 2);
        }
    }
    /* shapes through the squeezes */
    cr_expect_eq(m->layers[3].out_shape[0], 1);
    cr_expect_eq(m->layers[4].out_shape[0], 4);
    cr_expect_eq(m->layers[4].out_shape[1], 14);
    cr_expect_eq(m->layers[9].in_shape[0], 4);
    cr_expect_eq(m->layers[9].out_shape[0], 16);
    cr_expect_eq(m->layers[13].out_shape[2], 7);
    cr_expect_eq(m->output[0], 16);
    cr_expect_eq(m->output[1], 7);
    cr_expect_eq(m->output[2], 7);
    /* where each layer was written: both repeats of a body share its lines */
    cr_expect_eq(m->layers[0].line, 12);
    cr_expect_eq(m->layers[0].col, 11);
    cr_expect_eq(m->layers[2].line, 12);
    cr_expect_eq(m->layers[3].line, 13);
    cr_expect_eq(m->layers[4].line, 14);
    cr_expect_eq(m->layers[4].col, 7);
    cr_expect_eq(m->layers[13].line, 23);
    mg_spec_free(s);
    mg_ctx_free(ctx);
}

Test(spec, fashion_example_sections)
{
    mg_ctx *ctx = stub_ctx();
    mg_spec *s = load_ok(ctx, "examples/fashion_mintnet_small.yaml", NOPLUG);
    cr_assert_eq(s->n_plugins, 1);
    cr_expect_str_eq(s->plugins[0], "mintnet");
    const mg_spec_model *m = &s->model;
    cr_expect_eq(m->input[0], 1);
    cr_expect_eq(m->input[1], 28);
    cr_expect_eq(m->input[2], 28);
    cr_expect_eq(m->dequantize, MG_SPEC_DEQUANT_UNIFORM);
    cr_expect_eq(m->logit, 1);
    cr_expect_float_eq(m->logit_lambda, 1e-6, 1e-20);
    cr_expect_str_eq(m->prior, "normal");
    cr_expect_float_eq(m->inverse.tolerance, 1e-5, 1e-20);
    cr_expect_eq(m->inverse.max_iterations, 200);
    cr_expect_float_eq(m->inverse.damping, 3.5, 1e-15);
    cr_expect_eq(m->inverse.precision, MG_F32);
    cr_expect_eq(m->inverse.stop, MG_SPEC_STOP_RESIDUAL);
    cr_expect_eq(m->inverse.adaptive, -1, "not given: the op's default");
    cr_expect_eq(m->inverse.refine, -1, "not given: the op's default");
    cr_expect(!mg_attrs_has(m->attrs, "inverse.adaptive"));
    cr_expect_float_eq(mg_attrs_float(m->attrs, "inverse.damping", 0), 3.5, 1e-15);
    cr_expect_str_eq(mg_attrs_str(m->attrs, "inverse.precision", "?"), "float32");
    cr_expect_float_eq(mg_attrs_float(m->attrs, "logit.lambda", 0), 1e-6, 1e-20);
    cr_expect_eq(s->data.dataset, MG_SPEC_DATA_FASHION_MNIST);
    cr_expect_str_eq(s->data.dataset_name, "fashion-mnist");
    cr_expect_str_eq(s->data.path, "/usr/share/datasets/fashion-mnist");
    cr_expect_str_eq(s->data.train_file, "train-images-idx3-ubyte.gz");
    cr_expect_str_eq(s->data.test_file, "t10k-images-idx3-ubyte.gz");
    const mg_spec_train *t = &s->train;
    cr_expect_eq(t->batch_size, 32);
    cr_expect_eq(t->steps, 2000);
    cr_expect_eq(t->optimizer.kind, MG_SPEC_OPTIM_ADAM);
    cr_expect_float_eq(t->optimizer.lr, 1e-3, 1e-18);
    cr_expect_float_eq(t->optimizer.betas[0], 0.9, 1e-15);
    cr_expect_float_eq(t->optimizer.betas[1], 0.999, 1e-15);
    cr_expect_float_eq(t->optimizer.eps, 1e-4, 1e-18);
    cr_expect_eq(t->optimizer.amsgrad, 1);
    cr_expect_eq(t->seed, 1234);
    cr_expect_str_eq(t->checkpoint_dir, "runs/fashion-small");
    cr_expect_eq(t->checkpoint_every, 500);
    cr_expect_eq(t->schedule.kind, MG_SPEC_SCHED_CONSTANT);
    cr_expect_eq(s->sample.count, 64);
    cr_expect_float_eq(s->sample.temperature, 1.0, 1e-15);
    cr_expect_eq(s->sample.seed, 1234, "sample.seed defaults to train.seed");
    /* the raw text is kept for checkpoints */
    cr_expect(strstr(s->text, "plugins: [mintnet]") == s->text);
    cr_expect_eq(strlen(s->text), s->text_len);
    cr_expect(strstr(s->filename, "fashion_mintnet_small.yaml") != NULL);
    mg_spec_free(s);
    mg_ctx_free(ctx);
}

Test(spec, published_examples_load)
{
    mg_ctx *ctx = stub_ctx();
    mg_spec *s = load_ok(ctx, "examples/mnist_mintnet.yaml", NOPLUG);
    cr_expect_eq(s->model.n_layers, 42, "40 blocks and 2 squeezes");
    cr_expect_eq(mg_attrs_int(s->model.layers[0].args, "latent", 0), 45);
    cr_expect_eq(mg_attrs_int(s->model.layers[13].args, "latent", 0), 11);
    cr_expect_eq(mg_attrs_int(s->model.layers[41].args, "latent", 0), 2);
    cr_expect_eq(s->model.output[0], 16);
    cr_expect_eq(s->data.dataset, MG_SPEC_DATA_MNIST);
    mg_spec_free(s);
    s = load_ok(ctx, "examples/cifar10_mintnet.yaml", NOPLUG);
    cr_expect_eq(s->model.n_layers, 44, "42 blocks and 2 squeezes");
    cr_expect_eq(s->model.output[0], 48);
    cr_expect_eq(s->model.output[1], 8);
    cr_expect_float_eq(s->model.logit_lambda, 0.05, 1e-15);
    cr_expect_float_eq(s->model.inverse.damping, 1.1, 1e-15);
    mg_spec_free(s);
    s = load_ok(ctx, "examples/tiny.yaml", NOPLUG);
    cr_expect_eq(s->model.n_layers, 5);
    cr_expect_eq(s->model.output[0], 4);
    cr_expect_eq(s->model.output[1], 4);
    cr_expect_eq(s->data.dataset, MG_SPEC_DATA_GENERATED);
    cr_expect_eq(s->data.train_size, 256);
    mg_spec_free(s);
    mg_ctx_free(ctx);
}

/* With the dataset installed, the full data check passes too. */
Test(spec, fashion_example_with_data_check)
{
    struct stat sb;
    if (stat("/usr/share/datasets/fashion-mnist", &sb) != 0)
        cr_skip_test("dataset-fashion-mnist is not installed");
    mg_ctx *ctx = stub_ctx();
    mg_spec *s = load_ok(ctx, "examples/fashion_mintnet_small.yaml", MG_SPEC_NO_PLUGINS);
    cr_expect_str_eq(s->data.train_file, "train-images-idx3-ubyte.gz");
    mg_spec_free(s);
    mg_ctx_free(ctx);
}

/* ---- defaults, repeats, arguments --------------------------------------------- */

Test(spec, defaults)
{
    mg_ctx *ctx = stub_ctx();
    mg_spec *s = load_str_ok(ctx, "model: {input: [3, 4, 4]}\ndata: {dataset: generated}\n");
    cr_expect_eq(s->n_plugins, 0);
    cr_expect_eq(s->model.n_layers, 0);
    cr_expect_eq(s->model.output[0], 3, "no layers: output = input");
    cr_expect_eq(s->model.logit, 0);
    cr_expect_eq(s->model.dequantize, MG_SPEC_DEQUANT_UNIFORM);
    cr_expect_float_eq(s->model.inverse.tolerance, 1e-5, 1e-20);
    cr_expect_eq(s->model.inverse.max_iterations, 200);
    cr_expect_float_eq(s->model.inverse.damping, 3.5, 0);
    cr_expect_eq(s->model.inverse.precision, MG_F32);
    cr_expect_eq(s->model.inverse.stop, MG_SPEC_STOP_RESIDUAL);
    cr_expect_null(s->data.path);
    cr_expect_eq(s->data.train_size, 1024);
    cr_expect_eq(s->data.test_size, 256);
    cr_expect_eq(s->train.batch_size, 32);
    cr_expect_eq(s->train.steps, 1000);
    cr_expect_eq(s->train.optimizer.kind, MG_SPEC_OPTIM_ADAM);
    cr_expect_float_eq(s->train.optimizer.eps, 1e-8, 1e-22);
    cr_expect_eq(s->train.optimizer.amsgrad, 0);
    cr_expect_str_eq(s->train.checkpoint_dir, "runs/t");
    cr_expect_eq(s->train.checkpoint_every, 0);
    cr_expect_eq(s->train.schedule.kind, MG_SPEC_SCHED_CONSTANT);
    cr_expect_float_eq(s->train.clip_grad_norm, 0, 0);
    cr_expect_float_eq(s->train.ema, 0, 0);
    cr_expect_eq(s->sample.count, 64);
    cr_expect_eq(s->sample.seed, 0);
    mg_spec_free(s);
    mg_ctx_free(ctx);
}

Test(spec, all_sections_explicit)
{
    mg_ctx *ctx = stub_ctx();
    mg_spec *s = load_str_ok(ctx,
        "model:\n"
        "  input: [1, 4, 4]\n"
        "  preprocess: {dequantize: center, logit: {}}\n"
        "  inverse: {tolerance: 1e-9, max_iterations: 100, damping: 1.1, precision: float64, stop: fixed, adaptive: false}\n"
        "data: {dataset: generated, train_size: 10, test_size: 5}\n"
        "train:\n"
        "  optimizer: {name: sgd, lr: 0.1, momentum: 0.9, nesterov: true, weight_decay: 1e-4}\n"
        "  schedule: {name: cosine, min_lr: 1e-5, warmup: 10}\n"
        "  clip_grad_norm: 5\n"
        "  ema: 0.999\n"
        "  eval_every: 50\n"
        "  eval_batches: 4\n"
        "sample: {count: 9, temperature: 0.7, seed: 99}\n");
    cr_expect_eq(s->model.dequantize, MG_SPEC_DEQUANT_CENTER);
    cr_expect_eq(s->model.logit, 1, "an empty logit map turns the logit on");
    cr_expect_float_eq(s->model.logit_lambda, 1e-6, 1e-20);
    cr_expect_float_eq(s->model.inverse.tolerance, 1e-9, 1e-24);
    cr_expect_eq(s->model.inverse.precision, MG_F64);
    cr_expect_eq(s->model.inverse.stop, MG_SPEC_STOP_FIXED);
    cr_expect_str_eq(mg_attrs_str(s->model.attrs, "inverse.stop", "?"), "fixed");
    cr_expect_eq(mg_attrs_int(s->model.attrs, "inverse.max_iterations", 0), 100);
    cr_expect_eq(s->model.inverse.adaptive, 0);
    cr_expect_eq(mg_attrs_int(s->model.attrs, "inverse.adaptive", -1), 0);
    cr_expect_eq(s->data.train_size, 10);
    cr_expect_eq(s->train.optimizer.kind, MG_SPEC_OPTIM_SGD);
    cr_expect_str_eq(s->train.optimizer.name, "sgd");
    cr_expect_float_eq(s->train.optimizer.momentum, 0.9, 1e-15);
    cr_expect_eq(s->train.optimizer.nesterov, 1);
    cr_expect_eq(s->train.schedule.kind, MG_SPEC_SCHED_COSINE);
    cr_expect_eq(s->train.schedule.warmup, 10);
    cr_expect_float_eq(s->train.clip_grad_norm, 5, 0);
    cr_expect_float_eq(s->train.ema, 0.999, 1e-15);
    cr_expect_eq(s->train.eval_every, 50);
    cr_expect_eq(s->train.eval_batches, 4);
    cr_expect_eq(s->sample.count, 9);
    cr_expect_eq(s->sample.seed, 99);
    cr_expect_str_eq(mg_spec_dequant_name(s->model.dequantize), "center");
    cr_expect_str_eq(mg_spec_stop_name(s->model.inverse.stop), "fixed");
    mg_spec_free(s);
    mg_ctx_free(ctx);
}

Test(spec, nested_repeat_expansion_and_numbering)
{
    mg_ctx *ctx = stub_ctx();
    mg_spec *s = load_str_ok(ctx,
        "model:\n"
        "  input: [1, 8, 8]\n"
        "  layers:\n"
        "    - repeat: 2\n"
        "      layers:\n"
        "        - mintnet.block: {mask: A, latent: 1}\n"
        "        - repeat: 3\n"
        "          layers:\n"
        "            - mintnet.block: {mask: B, latent: 2}\n"
        "    - squeeze:\n"
        "    - repeat: 1\n"
        "      layers: [{mintnet.block: {mask: A, latent: 3}}]\n"
        "data: {dataset: generated}\n");
    const mg_spec_model *m = &s->model;
    cr_assert_eq(m->n_layers, 10, "2 x (1 + 3) + squeeze + 1");
    static const char masks[] = "ABBBABBB?A";
    static const int lines[] = {6, 9, 9, 9, 6, 9, 9, 9, 10, 12};
    for (int i = 0; i < 10; i++) {
        cr_expect_eq(m->layers[i].index, i);
        cr_expect_eq(m->layers[i].line, lines[i], "layer %d", i);
        if (masks[i] == '?') continue;
        char want[2] = {masks[i], 0};
        cr_expect_str_eq(mg_attrs_str(m->layers[i].args, "mask", "?"), want, "layer %d", i);
    }
    cr_expect_str_eq(m->layers[8].type, "squeeze");
    cr_expect_eq(mg_attrs_int(m->layers[8].args, "factor", 0), 2, "a null argument map takes defaults");
    cr_expect_eq(m->layers[9].in_shape[0], 4);
    cr_expect_eq(mg_attrs_int(m->layers[9].args, "latent", 0), 3);
    int line = 0, col = 0;
    cr_expect(mg_spec_where(s, "model.layers.9", &line, &col));
    cr_expect_eq(line, 12);
    cr_expect_eq(col, 17);
    mg_spec_free(s);
    mg_ctx_free(ctx);
}

Test(spec, schema_types_defaults_and_maps)
{
    mg_ctx *ctx = stub_ctx();
    mg_spec *s = load_str_ok(ctx,
        "model:\n"
        "  input: [2, 4, 4]\n"
        "  layers:\n"
        "    - test.args: {count: -3, rate: 1, flag: true, label: \"12\", mode: exact,\n"
        "                  sizes: [4, 5, 6], weights: [1, 0.5e-1], sub: {k: 9}}\n"
        "    - test.args:\n"
        "data: {dataset: generated}\n");
    const mg_attrs *a = s->model.layers[0].args;
    cr_expect_eq(mg_attrs_kind(a, "count"), MG_ATTR_INT);
    cr_expect_eq(mg_attrs_int(a, "count", 0), -3);
    cr_expect_eq(mg_attrs_kind(a, "rate"), MG_ATTR_FLOAT, "an integer is accepted for a float");
    cr_expect_float_eq(mg_attrs_float(a, "rate", 0), 1.0, 0);
    cr_expect_eq(mg_attrs_int(a, "flag", -1), 1);
    cr_expect_str_eq(mg_attrs_str(a, "label", "?"), "12", "a quoted number is a string");
    cr_expect_str_eq(mg_attrs_str(a, "mode", "?"), "exact");
    int64_t sz[4];
    cr_expect_eq(mg_attrs_ints(a, "sizes", sz, 4), 3);
    cr_expect_eq(sz[2], 6);
    double w[4];
    cr_expect_eq(mg_attrs_floats(a, "weights", w, 4), 2);
    cr_expect_float_eq(w[1], 0.05, 1e-15);
    cr_expect_eq(mg_attrs_int(a, "sub.k", 0), 9, "maps are flattened");
    cr_expect_str_eq(mg_attrs_str(a, "sub.name", "?"), "sub", "defaults fill absent map fields");
    char buf[256];
    mg_spec_layer_args_str(&s->model.layers[0], buf, sizeof buf);
    cr_expect(strstr(buf, "count=-3") && strstr(buf, "sizes=[4, 5, 6]") && strstr(buf, "mode=exact"), "%s", buf);
    /* all defaults */
    a = s->model.layers[1].args;
    cr_expect_eq(mg_attrs_int(a, "count", 0), 1);
    cr_expect_float_eq(mg_attrs_float(a, "rate", 0), 0.5, 0);
    cr_expect_eq(mg_attrs_int(a, "flag", -1), 0);
    cr_expect_eq(mg_attrs_has(a, "label"), 0, "no default: absent");
    cr_expect_str_eq(mg_attrs_str(a, "mode", "?"), "fast");
    cr_expect_eq(mg_attrs_ints(a, "sizes", sz, 4), 2);
    cr_expect_eq(sz[1], 3);
    cr_expect_eq(mg_attrs_floats(a, "weights", w, 4), 1);
    cr_expect_eq(mg_attrs_int(a, "sub.k", 0), 3);
    mg_spec_free(s);
    mg_ctx_free(ctx);
}

Test(spec, where_records_keys)
{
    mg_ctx *ctx = stub_ctx();
    mg_spec *s = load_ok(ctx, "examples/fashion_mintnet_small.yaml", NOPLUG);
    int line = 0, col = 0;
    cr_expect(mg_spec_where(s, "data.path", &line, &col));
    cr_expect_eq(line, 26);
    cr_expect_eq(col, 9);
    cr_expect(mg_spec_where(s, "train.optimizer.lr", &line, &col));
    cr_expect_eq(line, 30);
    cr_expect_eq(col, 31);
    cr_expect(mg_spec_where(s, "model.layers.4", &line, &col));
    cr_expect_eq(line, 14);
    cr_expect_eq(mg_spec_where(s, "train.ema", &line, &col), 0, "not written");
    mg_spec_fail_at(s, ctx, MG_ERR_IO, 26, 9, "cannot read %s", "x");
    cr_expect(strstr(mg_ctx_error(ctx), "fashion_mintnet_small.yaml:26:9: cannot read x") != NULL, "%s",
              mg_ctx_error(ctx));
    mg_spec_free(s);
    mg_ctx_free(ctx);
}

Test(spec, data_files_resolved)
{
    char dir[] = "/tmp/mg_spec_data_XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char f1[128], f2[128], text[512];
    snprintf(f1, sizeof f1, "%s/train-images-idx3-ubyte", dir); /* not gzipped */
    snprintf(f2, sizeof f2, "%s/t10k.gz", dir);
    fclose(fopen(f1, "w"));
    fclose(fopen(f2, "w"));
    snprintf(text, sizeof text, "model: {input: [1, 28, 28]}\ndata: {dataset: mnist, path: %s, test: t10k}\n", dir);
    mg_ctx *ctx = stub_ctx();
    mg_spec *s = NULL;
    mg_status st = mg_spec_load_string(ctx, text, strlen(text), "t.yaml", MG_SPEC_NO_PLUGINS, &s);
    cr_expect_eq(st, MG_OK, "%s", mg_ctx_error(ctx));
    if (s) {
        cr_expect_str_eq(s->data.train_file, "train-images-idx3-ubyte", "'.gz' dropped when only the plain file exists");
        cr_expect_str_eq(s->data.test_file, "t10k.gz", "'.gz' added when only the gzip file exists");
    }
    mg_spec_free(s);
    /* an absolute file name is used as it is */
    snprintf(text, sizeof text, "model: {input: [1, 28, 28]}\ndata: {dataset: mnist, path: /nonexistent, test: %s/t10k}\n", dir);
    s = NULL;
    cr_expect_eq(mg_spec_load_string(ctx, text, strlen(text), "t.yaml", MG_SPEC_NO_PLUGINS | MG_SPEC_NO_DATA_CHECK, &s), MG_OK);
    mg_spec_free(s);
    char dir2[300];
    snprintf(dir2, sizeof dir2, "%s/sub", dir);
    cr_assert_eq(mkdir(dir2, 0700), 0);
    snprintf(text, sizeof text, "model: {input: [1, 28, 28]}\ndata: {dataset: mnist, path: %s, train: %s, test: %s/t10k}\n",
             dir2, f1, dir);
    s = NULL;
    cr_expect_eq(mg_spec_load_string(ctx, text, strlen(text), "t.yaml", MG_SPEC_NO_PLUGINS, &s), MG_OK, "%s", mg_ctx_error(ctx));
    if (s) {
        cr_expect_str_eq(s->data.train_file, f1);
        cr_expect_str_eq(s->data.test_file, f2);
    }
    mg_spec_free(s);
    rmdir(dir2);
    snprintf(text, sizeof text, "model: {input: [1, 28, 28]}\ndata: {dataset: mnist, path: %s, test: t10k}\n", dir);
    unlink(f2);
    st = mg_spec_load_string(ctx, text, strlen(text), "t.yaml", MG_SPEC_NO_PLUGINS, &s);
    cr_expect_eq(st, MG_ERR_NOTFOUND);
    cr_expect(strstr(mg_ctx_error(ctx), "t.yaml:2:") == mg_ctx_error(ctx), "%s", mg_ctx_error(ctx));
    cr_expect(strstr(mg_ctx_error(ctx), "t10k") != NULL, "%s", mg_ctx_error(ctx));
    unlink(f1);
    rmdir(dir);
    mg_ctx_free(ctx);
}

/* ---- errors: the files in tests/specs ---------------------------------------------- */

Test(spec_errors, syntax)
{
    expect_file_error("syntax.yaml", NOPLUG, MG_ERR_PARSE, 4, 9,
                      "YAML syntax error: did not find expected ',' or ']' (while parsing a flow sequence at line 3, column 10)");
}

Test(spec_errors, unknown_section_did_you_mean)
{
    expect_file_error("unknown_key.yaml", NOPLUG, MG_ERR_PARSE, 5, 1,
                      "unknown key 'trian' in the spec; did you mean 'train'?");
}

Test(spec_errors, unknown_layer_argument_did_you_mean)
{
    expect_file_error("unknown_arg.yaml", NOPLUG, MG_ERR_PARSE, 5, 32,
                      "unknown key 'lattent' in the arguments of layer 0 (mintnet.block); did you mean 'latent'?");
}

Test(spec_errors, wrong_type)
{
    expect_file_error("wrong_type.yaml", NOPLUG, MG_ERR_PARSE, 6, 15,
                      "'batch_size': expected an integer, got 'abc'");
}

Test(spec_errors, out_of_range)
{
    expect_file_error("out_of_range.yaml", NOPLUG, MG_ERR_PARSE, 7, 15,
                      "'batch_size' = 0 is out of range [1, 1048576]");
}

Test(spec_errors, duplicate_key)
{
    expect_file_error("duplicate_key.yaml", NOPLUG, MG_ERR_PARSE, 8, 3,
                      "duplicate key 'steps' in section 'train' (first given at line 6, column 3)");
}

Test(spec_errors, unknown_layer_type)
{
    expect_file_error("unknown_layer.yaml", NOPLUG, MG_ERR_NOTFOUND, 6, 7,
                      "unknown layer type 'mintnet.blok'; did you mean 'mintnet.block'?");
}

Test(spec_errors, unknown_plugin)
{
    expect_file_error("unknown_plugin.yaml", MG_SPEC_NO_DATA_CHECK, MG_ERR_NOTFOUND, 2, 11,
                      "plugin 'nosuchplugin' not found");
}

Test(spec_errors, squeeze_on_odd_size)
{
    expect_file_error("odd_squeeze.yaml", NOPLUG, MG_ERR_SHAPE, 6, 7,
                      "layer 1 (squeeze) on input [1, 7, 7]: squeeze factor 2 needs even height and width");
}

Test(spec_errors, missing_dataset_names_the_package)
{
    expect_file_error("missing_dataset.yaml", MG_SPEC_NO_PLUGINS, MG_ERR_NOTFOUND, 6, 9,
                      "dataset directory '/nonexistent/datasets/fashion-mnist' not found; install the "
                      "Debian package dataset-fashion-mnist");
}

Test(spec_errors, two_documents)
{
    expect_file_error("two_docs.yaml", NOPLUG, MG_ERR_PARSE, 5, 1, "a second YAML document starts here");
}

Test(spec_errors, empty_file)
{
    expect_file_error("empty.yaml", NOPLUG, MG_ERR_PARSE, 1, 1, "the spec is empty");
}

Test(spec_errors, bad_enum_value)
{
    expect_file_error("bad_enum.yaml", NOPLUG, MG_ERR_PARSE, 5, 29,
                      "'mask': unknown value 'C' (expected one of A, B)");
}

Test(spec_errors, missing_required_argument)
{
    expect_file_error("missing_required.yaml", NOPLUG, MG_ERR_PARSE, 5, 22,
                      "missing required key 'latent' in the arguments of layer 0 (mintnet.block)");
}

Test(spec_errors, layer_item_with_two_keys)
{
    expect_file_error("two_keys.yaml", NOPLUG, MG_ERR_PARSE, 6, 7,
                      "a layer item has one key, its type ('squeeze'); 'factor' is a second key");
}

Test(spec_errors, alias_cycle_stops)
{
    expect_file_error("alias_cycle.yaml", NOPLUG, MG_ERR_PARSE, 4, 11, "layers nested more than 64 deep");
}

Test(spec_errors, missing_file)
{
    mg_ctx *ctx = stub_ctx();
    mg_spec *s = NULL;
    cr_expect_eq(mg_spec_load_file(ctx, "/nonexistent/spec.yaml", NOPLUG, &s), MG_ERR_NOTFOUND);
    cr_expect(strstr(mg_ctx_error(ctx), "/nonexistent/spec.yaml") != NULL);
    cr_expect_null(s);
    mg_ctx_free(ctx);
}

/* ---- errors: inline texts ----------------------------------------------------------- */

#define DATA "data: {dataset: generated}\n"

Test(spec_errors, inline_cases)
{
    expect_str_error("", MG_ERR_PARSE, 1, 1, "the spec is empty");
    expect_str_error("- a\n- b\n", MG_ERR_PARSE, 1, 1, "a spec is a mapping with sections");
    expect_str_error(DATA, MG_ERR_PARSE, 1, 1, "no 'model' section");
    expect_str_error("model: {input: [1, 2, 2]}\n", MG_ERR_PARSE, 1, 1, "no 'data' section");
    expect_str_error("model: {input: [1, 2, 2]}\n" DATA "model: {input: [1, 2, 2]}\n", MG_ERR_PARSE, 3, 1,
                     "duplicate key 'model' in the spec (first given at line 1, column 1)");
    expect_str_error("model: {input: [1, 8]}\n" DATA, MG_ERR_PARSE, 1, 16, "'input' must be [C, H, W]");
    expect_str_error("model: {input: [1, 0, 8]}\n" DATA, MG_ERR_PARSE, 1, 20, "'input' = 0 is out of range");
    expect_str_error("model: {inputs: [1, 8, 8]}\n" DATA, MG_ERR_PARSE, 1, 9,
                     "unknown key 'inputs' in section 'model'; did you mean 'input'?");
    expect_str_error("model: {layers: []}\n" DATA, MG_ERR_PARSE, 1, 8, "missing required key 'input' in section 'model'");
    expect_str_error("model:\n  input: [1, 8, 8]\n  inverse: {damping: 0.4}\n" DATA, MG_ERR_PARSE, 3, 22,
                     "'damping' must be above 0.5");
    expect_str_error("model:\n  input: [1, 8, 8]\n  inverse: {stop: fixed, adaptive: true}\n" DATA, MG_ERR_PARSE, 3, 36,
                     "'adaptive: true' needs 'stop: residual'");
    expect_str_error("model:\n  input: [1, 8, 8]\n  inverse: {precision: float64, refine: true}\n" DATA, MG_ERR_PARSE, 3,
                     41, "'refine: true' needs 'precision: float32'");
    expect_str_error("model:\n  input: [1, 8, 8]\n  inverse: {precision: float16}\n" DATA, MG_ERR_PARSE, 3, 24,
                     "'precision': unknown value 'float16'; did you mean 'float32'?");
    expect_str_error("model:\n  input: [1, 8, 8]\n  preprocess: {logit: {lambda: 0.5}}\n" DATA, MG_ERR_PARSE, 3, 32,
                     "'lambda' must be below 0.5");
    expect_str_error("model: {input: [1, 8, 8]}\n" DATA "train: {batch_size: \"32\"}\n", MG_ERR_PARSE, 3, 21,
                     "'batch_size': expected an integer, got the quoted string '32'");
    expect_str_error("model: {input: [1, 8, 8]}\n" DATA "train: {steps: 1.5}\n", MG_ERR_PARSE, 3, 16,
                     "'steps': expected an integer, got '1.5'");
    expect_str_error("model: {input: [1, 8, 8]}\n" DATA "train:\n  optimizer: {amsgrad: yes}\n", MG_ERR_PARSE, 4, 24,
                     "'amsgrad': expected true or false, got 'yes'");
    expect_str_error("model: {input: [1, 8, 8]}\n" DATA "train:\n  optimizer: {lr: -1}\n", MG_ERR_PARSE, 4, 19,
                     "'lr' = -1 must be at least 0");
    expect_str_error("model: {input: [1, 8, 8]}\n" DATA "train:\n  optimizer: {betas: [0.9]}\n", MG_ERR_PARSE, 4, 22,
                     "'betas' must be two numbers");
    expect_str_error("model: {input: [1, 8, 8]}\n" DATA "train:\n  optimizer: {name: adamw}\n", MG_ERR_PARSE, 4, 21,
                     "'name': unknown value 'adamw'; did you mean 'adam'?");
    expect_str_error("model: {input: [1, 8, 8]}\n" DATA "train:\n  optimizer:\n    lr: 0.1\n    lr: 0.2\n", MG_ERR_PARSE, 6, 5,
                     "duplicate key 'lr' in 'optimizer' of section 'train'");
    expect_str_error("model: {input: [1, 8, 8]}\n" DATA "train: [1, 2]\n", MG_ERR_PARSE, 3, 8,
                     "section 'train' must be a mapping");
    expect_str_error("model: {input: [1, 8, 8]}\n" DATA "sample: {temperature: 0}\n", MG_ERR_PARSE, 3, 23,
                     "'temperature' must be positive");
    expect_str_error("model: {input: [1, 8, 8]}\n" DATA "train: {steps: }\n", MG_ERR_PARSE, 3, 16, "'steps' has no value");
    expect_str_error("model: {input: [1, 8, 8]}\ndata: {dataset: fashion}\n", MG_ERR_PARSE, 2, 17,
                     "'dataset': unknown value 'fashion'");
    expect_str_error("model: {input: [1, 8, 8]}\ndata: {dataset: mnist}\n", MG_ERR_PARSE, 2, 17,
                     "dataset 'mnist' needs 'path'");
    expect_str_error("model: {input: [1, 8, 8]}\ndata: {}\n", MG_ERR_PARSE, 2, 7,
                     "missing required key 'dataset' in section 'data'");
    expect_str_error("plugins: mintnet\nmodel: {input: [1, 8, 8]}\n" DATA, MG_ERR_PARSE, 1, 10,
                     "'plugins' must be a list of plugin names");
    expect_str_error("model:\n  input: [1, 8, 8]\n  layers: {squeeze: {}}\n" DATA, MG_ERR_PARSE, 3, 11,
                     "'layers' must be a list of layers, got a mapping");
    expect_str_error("model:\n  input: [1, 8, 8]\n  layers: [squeeze]\n" DATA, MG_ERR_PARSE, 3, 12,
                     "a layer is a one-key mapping");
    expect_str_error("model:\n  input: [1, 8, 8]\n  layers:\n    - repeat: 0\n      layers: []\n" DATA,
                     MG_ERR_PARSE, 4, 15, "'repeat' = 0 is out of range");
    expect_str_error("model:\n  input: [1, 8, 8]\n  layers:\n    - repeat: 2\n" DATA, MG_ERR_PARSE, 4, 7,
                     "a repeat item needs 'layers'");
    expect_str_error("model:\n  input: [1, 8, 8]\n  layers:\n    - repaet: 2\n      layers: []\n" DATA,
                     MG_ERR_PARSE, 4, 7, "unknown key 'repaet' in a repeat item; did you mean 'repeat'?");
    expect_str_error("model:\n  input: [1, 8, 8]\n  layers:\n    - test.args: {sizes: [1, 200]}\n" DATA,
                     MG_ERR_PARSE, 4, 30, "'sizes' = 200 is out of range [1, 100]");
    expect_str_error("model:\n  input: [1, 8, 8]\n  layers:\n    - test.args: {sub: {k: x}}\n" DATA,
                     MG_ERR_PARSE, 4, 28, "'k': expected an integer, got 'x'");
    expect_str_error("model:\n  input: [1, 8, 8]\n  layers:\n    - test.args: {sub: {j: 1}}\n" DATA,
                     MG_ERR_PARSE, 4, 25, "unknown key 'j' in 'sub' of the arguments of layer 0 (test.args) (valid keys: k, name)");
    expect_str_error("model:\n  input: [1, 8, 8]\n  layers:\n    - frobnicate: {}\n" DATA, MG_ERR_NOTFOUND, 4, 7,
                     "unknown layer type 'frobnicate' (known types: ");
    expect_str_error("model:\n  input: [1, 8, 8]\n  layers:\n    - squeeze: {factor: 3}\n" DATA, MG_ERR_SHAPE, 4, 7,
                     "layer 0 (squeeze) on input [1, 8, 8]: squeeze factor 3 needs height and width divisible by 3");
    expect_str_error("model: {input: [1, 8, 8]}\n" DATA "extra: 1\n", MG_ERR_PARSE, 3, 1,
                     "unknown key 'extra' in the spec (valid keys: plugins, model, data, train, sample)");
    expect_str_error("model: {input: [1, 8, 8]}\n" DATA "---\n", MG_ERR_PARSE, 3, 1, "a second YAML document");
    expect_str_error("model:\n\tinput: [1, 8, 8]\n" DATA, MG_ERR_PARSE, 2, 1, "YAML syntax error");
    expect_str_error("model: {input: [1, 8, 8]}\n" DATA "\xff\xfe\n", MG_ERR_PARSE, 3, 1, "unreadable text");
}
