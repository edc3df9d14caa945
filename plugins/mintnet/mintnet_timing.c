/* plugins/mintnet/mintnet_timing.c: times the small MintNet of spec section 7
 * (12 blocks, 61,716 parameters; batch 32 of 1x28x28) on this machine:
 * forward + log-det + loss, backward, and the inverse with the default
 * settings (residual 1e-5, at most 200 iterations, damping 3.5) in float32
 * and float64, the published fixed 100 iterations, and tighter tolerances,
 * with the maximum reconstruction error of each (in image space, [0, 1]). The weights are the spec's initialisation
 * scaled by `scale` (default 20) so that the blocks are far from identity.
 *
 * Usage: mintnet_timing [scale [repeats [what]]]   (set OMP_NUM_THREADS yourself)
 * what: "all" (default), "train" or "inverse".
 * Prints medians of `repeats` runs (default 7; 3 for inverses). Not a test. */
#include <mintgrad/flow.h>
#include <mintgrad/mintgrad.h>
#include <mintgrad/model.h>
#include <mintgrad/plugin.h>
#include <mintgrad/spec.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

mg_status mg_mintnet_plugin_init(mg_registry *reg, const mg_host_api *host);

static const char spec_fmt[] =
    "model:\n"
    "  input: [1, 28, 28]\n"
    "  preprocess: {logit: {lambda: 1.0e-6}}\n"
    "  inverse: {%s}\n"
    "  layers:\n"
    "    - repeat: 2\n"
    "      layers: [{mintnet.block: {mask: A, latent: 16}}, {mintnet.block: {mask: B, latent: 16}}]\n"
    "    - squeeze: {factor: 2}\n"
    "    - repeat: 2\n"
    "      layers: [{mintnet.block: {mask: A, latent: 4}}, {mintnet.block: {mask: B, latent: 4}}]\n"
    "    - squeeze: {factor: 2}\n"
    "    - repeat: 2\n"
    "      layers: [{mintnet.block: {mask: A, latent: 1}}, {mintnet.block: {mask: B, latent: 1}}]\n"
    "data: {dataset: generated}\n";

enum { BATCH = 32 };

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* CPU time of the whole process (all threads): stable when others load the machine. */
static double cpu(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return v[n / 2];
}

static void die(mg_ctx *ctx, mg_status s, const char *what)
{
    fprintf(stderr, "mintnet_timing: %s: %s (%s)\n", what, mg_status_name(s), ctx ? mg_ctx_error(ctx) : "");
    exit(1);
}

#define CHECK(ctx, call, what)                     \
    do {                                           \
        mg_status s_ = (call);                     \
        if (s_ != MG_OK) die((ctx), s_, (what));   \
    } while (0)

/* A model of the small spec with inverse settings `inv`. */
static mg_model *make_model(mg_ctx *ctx, const char *inv, mg_params *ps, mg_spec **spec)
{
    char text[2048];
    snprintf(text, sizeof text, spec_fmt, inv);
    CHECK(ctx, mg_spec_load_string(ctx, text, strlen(text), "small", MG_SPEC_NO_PLUGINS, spec), "spec");
    mg_model *m;
    CHECK(ctx, mg_model_new(ctx, *spec, ps, &m), "model");
    return m;
}

/* Initialises the parameters and scales every weight by `scale`. */
static void init_weights(mg_ctx *ctx, mg_model *m, mg_params *ps, double scale)
{
    CHECK(ctx, mg_model_init_params(m, 1234), "init");
    for (int i = 0; i < mg_params_count(ps); i++) {
        mg_param *p = mg_params_at(ps, i);
        const char *leaf = strrchr(p->name, '.');
        if (!leaf || leaf[1] != 'w') continue;
        float *v = mg_f32(p->value);
        for (int64_t k = 0; k < mg_tensor_numel(p->value); k++) v[k] *= (float)scale;
    }
}

/* Dequantised random images with some structure: smooth blobs plus noise. */
static mg_tensor *make_images(void)
{
    mg_tensor *x = mg_tensor_new4(MG_F32, BATCH, 1, 28, 28);
    mg_rng r;
    mg_rng_seed(&r, 99);
    float *v = mg_f32(x);
    for (int n = 0; n < BATCH; n++) {
        double cx = 8 + 12 * mg_rng_uniform(&r), cy = 8 + 12 * mg_rng_uniform(&r), rad = 4 + 6 * mg_rng_uniform(&r);
        for (int i = 0; i < 28 * 28; i++) {
            double d = hypot(i / 28 - cy, i % 28 - cx);
            int pix = (int)(255 * exp(-d * d / (2 * rad * rad)) + 20 * mg_rng_uniform(&r));
            pix = pix > 255 ? 255 : pix;
            v[n * 784 + i] = (float)((pix + 0.5) / 256);
        }
    }
    return x;
}

/* Times forward and backward of the training graph; returns z in *z. */
static void time_training(mg_ctx *ctx, mg_model *m, const mg_tensor *x, int reps, mg_tensor **z, double *bpd)
{
    mg_model_graph *mg;
    CHECK(ctx, mg_model_build_forward(m, BATCH, &mg), "forward graph");
    mg_value outs[2] = {mg->z, mg->bpd};
    mg_compile_opts o = {.struct_size = sizeof o, .training = 1, .losses = &mg->loss, .n_losses = 1,
                         .outputs = outs, .n_outputs = 2};
    mg_exec *e;
    CHECK(ctx, mg_graph_compile(mg->g, &o, &e), "compile");
    CHECK(ctx, mg_tensor_copy(mg_exec_tensor(e, mg->x), x), "input");
    double tf[64], tb[64], cf[64], cb[64];
    for (int r = -1; r < reps; r++) {
        double t0 = now(), c0 = cpu();
        CHECK(ctx, mg_exec_forward(e), "forward");
        double t1 = now(), c1 = cpu();
        mg_params_zero_grad(mg_model_params(m));
        CHECK(ctx, mg_exec_backward(e), "backward");
        double t2 = now(), c2 = cpu();
        if (r >= 0) tf[r] = t1 - t0, tb[r] = t2 - t1, cf[r] = c1 - c0, cb[r] = c2 - c1;
    }
    *z = mg_tensor_clone(mg_exec_tensor(e, mg->z));
    const mg_tensor *b = mg_exec_tensor(e, mg->bpd);
    *bpd = 0;
    for (int n = 0; n < BATCH; n++) *bpd += mg_tensor_get(b, n) / BATCH;
    printf("forward + log-det + loss  %8.2f ms   (cpu %.2f ms; medians of %d)\n", 1e3 * median(tf, reps),
           1e3 * median(cf, reps), reps);
    printf("backward                  %8.2f ms   (cpu %.2f ms)\n", 1e3 * median(tb, reps), 1e3 * median(cb, reps));
    mg_exec_free(e);
    mg_model_graph_free(mg);
}

/* Times the inverse graph on z; reports the reconstruction error against x
 * and the diagnostics. */
static void time_inverse(mg_ctx *ctx, const char *label, const char *inv, double scale, const mg_tensor *x,
                         const mg_tensor *z, int reps)
{
    mg_params *ps;
    mg_spec *spec;
    CHECK(ctx, mg_params_new(&ps), "params");
    mg_model *m = make_model(ctx, inv, ps, &spec);
    init_weights(ctx, m, ps, scale);
    mg_model_graph *mg;
    CHECK(ctx, mg_model_build_inverse(m, BATCH, &mg), "inverse graph");
    mg_value outs[32];
    int no = 0;
    outs[no++] = mg->x_out;
    for (int i = 0; i < mg->n_layers; i++)
        if (mg_value_ok(mg->layer_diag[i])) outs[no++] = mg->layer_diag[i];
    mg_compile_opts o = {.struct_size = sizeof o, .outputs = outs, .n_outputs = no};
    mg_exec *e;
    CHECK(ctx, mg_graph_compile(mg->g, &o, &e), "compile inverse");
    double t[16], c[16];
    for (int r = 0; r < reps; r++) {
        CHECK(ctx, mg_tensor_copy(mg_exec_tensor(e, mg->z_in), z), "z");
        double t0 = now(), c0 = cpu();
        CHECK(ctx, mg_exec_forward(e), "inverse");
        t[r] = now() - t0;
        c[r] = cpu() - c0;
    }
    double err = 0, maxit = 0, maxres = 0, sumit = 0;
    int bad = 0, cnt = 0;
    const mg_tensor *xr = mg_exec_tensor(e, mg->x_out);
    for (int64_t k = 0; k < mg_tensor_numel(x); k++) err = fmax(err, fabs(mg_tensor_get(xr, k) - mg_tensor_get(x, k)));
    for (int i = 1; i < no; i++) {
        const mg_tensor *d = mg_exec_tensor(e, outs[i]);
        for (int n = 0; n < BATCH; n++) {
            maxit = fmax(maxit, mg_tensor_get(d, n * 3));
            sumit += mg_tensor_get(d, n * 3);
            maxres = fmax(maxres, mg_tensor_get(d, n * 3 + 1));
            bad += mg_tensor_get(d, n * 3 + 2) == 0;
            cnt++;
        }
    }
    printf("inverse %-22s %8.1f ms (cpu %.1f)   max |x' - x| %.3g   iterations mean %.1f max %.0f   "
           "max residual %.3g   not converged %d of %d\n",
           label, 1e3 * median(t, reps), 1e3 * median(c, reps), err, sumit / cnt, maxit, maxres, bad, cnt);
    mg_exec_free(e);
    mg_model_graph_free(mg);
    mg_model_free(m);
    mg_spec_free(spec);
    mg_params_free(ps);
}

int main(int argc, char **argv)
{
    double scale = argc > 1 ? atof(argv[1]) : 20.0;
    int reps = argc > 2 ? atoi(argv[2]) : 7;
    const char *what = argc > 3 ? argv[3] : "all";
    if (reps < 1 || reps > 64) reps = 7;
    mg_ctx *ctx;
    if (mg_ctx_new(&ctx) != MG_OK) return 1;
    CHECK(ctx, mg_plugin_register_static(ctx, "mintnet", mg_mintnet_plugin_init), "plugin");
    mg_params *ps;
    mg_spec *spec;
    CHECK(ctx, mg_params_new(&ps), "params");
    mg_model *m = make_model(ctx, "tolerance: 1.0e-5", ps, &spec);
    init_weights(ctx, m, ps, scale);
    int64_t raw, eff;
    CHECK(ctx, mg_model_total_params(m, &raw, &eff), "count");
    printf("small MintNet: %lld raw / %lld effective parameters, batch %d, weights x%g, OMP_NUM_THREADS=%s\n",
           (long long)raw, (long long)eff, BATCH, scale, getenv("OMP_NUM_THREADS") ? getenv("OMP_NUM_THREADS") : "?");
    mg_tensor *x = make_images(), *z;
    double bpd;
    time_training(ctx, m, x, strcmp(what, "inverse") == 0 ? 1 : reps, &z, &bpd);
    printf("bits/dim of the test images %.4f\n", bpd);
    int ir = reps < 3 ? reps : 3;
    if (strcmp(what, "train") == 0) ir = 0;
    if (ir) {
        time_inverse(ctx, "float32 (default)", "precision: float32", scale, x, z, ir);
        time_inverse(ctx, "float64", "precision: float64", scale, x, z, ir);
        time_inverse(ctx, "published (100 fixed)", "max_iterations: 100, stop: fixed", scale, x, z, ir);
        time_inverse(ctx, "float32, tolerance 1e-7", "tolerance: 1.0e-7", scale, x, z, ir);
        time_inverse(ctx, "float64, tolerance 1e-12", "tolerance: 1.0e-12, precision: float64", scale, x, z, ir);
    }
    mg_tensor_free(x);
    mg_tensor_free(z);
    mg_model_free(m);
    mg_spec_free(spec);
    mg_params_free(ps);
    mg_ctx_free(ctx);
    return 0;
}
