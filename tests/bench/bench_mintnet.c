/* tests/bench/bench_mintnet.c: our side of the MintNet benchmark against the
 * PyTorch peer (tests/bench/mintnet_torch.py, orchestrated by run_bench.sh).
 *
 * Builds a model from a YAML spec through the public spec/model API (the spec
 * loads the mintnet plugin), then, by command:
 *
 *   prepare --spec S --out CKPT [--data DIR] [--pretrain K] [--batch B]
 *       initialises the parameters (train.seed), optionally trains K steps,
 *       and writes a safetensors checkpoint holding the parameters, the data
 *       both sides use ("bench.train_pixels" U8 [P, C, H, W] training pool,
 *       "bench.eval_pixels" U8 [B, C, H, W], "bench.z" F32 [B, C', H', W']
 *       latents ~ N(0, I)) and the architecture as metadata ("bench.layers",
 *       "bench.input", "bench.lambda", "bench.damping"). Prints the
 *       per-sample nll (nats) and mean bits/dim of the eval batch with
 *       deterministic dequantisation (u = 0.5), for the peer to check.
 *   time --spec S --ckpt CKPT --what train,eval,sample,recon,conv [--batch B]
 *       [--reps R]
 *       times, R times each after a warm-up: a training step (dequantise,
 *       logit, forward with log-det, backward, Adam), forward-only
 *       evaluation, sampling a batch through the iterative inverse (the
 *       spec's settings: tolerance, iteration limit, damping) from bench.z,
 *       and reconstructing the eval batch from its latents, with the
 *       inverse's diagnostics and the reconstruction error; "conv" times the
 *       model's convolution kernels alone and measures the machine's peak
 *       FMA throughput.
 *   memory --spec S --ckpt CKPT [--steps K] [--batch B]
 *       peak resident memory (getrusage) of a training run of K steps, and
 *       the peak of the bytes live through mg_malloc (library and plugin;
 *       allocation hooks of mintgrad/core.h), and the exec's own buffers.
 *
 * Every command prints one JSON object on stdout; times are in seconds.
 * Threads: OMP_NUM_THREADS. Exit status 1 (message on stderr) on failure. */
#include <mintgrad/mintgrad.h>

#include <execinfo.h>
#include <getopt.h>
#include <malloc.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <zlib.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#define POOL_MAX 512      /* training pool: images shared with the peer */
#define MAX_TIMES 64

/* ---- options and helpers --------------------------------------------------------- */
typedef struct opts {
    const char *cmd, *spec, *ckpt, *out, *data, *what;
    int batch, reps, warmup, pretrain, steps;
} opts;

typedef struct bench {
    opts o;
    mg_ctx *ctx;
    mg_spec *spec;
    mg_params *params;
    mg_model *model;
    mg_tensor *pool;    /* u8 [P, C, H, W] */
    mg_tensor *eval;    /* u8 [B, C, H, W] */
    mg_tensor *z;       /* f32 [B, C', H', W'] */
} bench;

static void die(const bench *b, const char *what)
{
    fprintf(stderr, "bench_mintnet: %s%s%s\n", what, b && b->ctx ? ": " : "", b && b->ctx ? mg_ctx_error(b->ctx) : "");
    exit(1);
}

static void check(const bench *b, mg_status s, const char *what)
{
    if (s != MG_OK) die(b, what);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void json_times(const char *key, const double *t, int n)
{
    printf("\"%s\": [", key);
    for (int i = 0; i < n; i++) printf("%s%.6g", i ? ", " : "", t[i]);
    printf("], ");
}

/* ---- allocation accounting ---------------------------------------------------------
 * Every allocation of the library and the plugin goes through mg_malloc; these
 * hooks count the bytes live and their peak (oneDNN's own buffers and the
 * code are outside: the resident size minus this peak). */
static size_t g_live, g_peak, g_log_min; /* g_log_min: BENCH_ALLOC_LOG (bytes), 0 = off */

/* With BENCH_ALLOC_LOG=N, allocations of at least N bytes print their size
 * and callers on stderr (to find who holds the memory). */
static void log_alloc(size_t n)
{
    if (!g_log_min || n < g_log_min) return;
    void *frames[6];
    int k = backtrace(frames, 6);
    fprintf(stderr, "alloc %zu bytes (live %zu):\n", n, g_live);
    backtrace_symbols_fd(frames + 2, k - 2, 2);
}

static void count(void *p, int sign)
{
    if (!p) return;
    size_t n = malloc_usable_size(p);
    size_t live = sign > 0 ? __atomic_add_fetch(&g_live, n, __ATOMIC_RELAXED) : __atomic_sub_fetch(&g_live, n, __ATOMIC_RELAXED);
    size_t peak = __atomic_load_n(&g_peak, __ATOMIC_RELAXED);
    while (live > peak && !__atomic_compare_exchange_n(&g_peak, &peak, live, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
    }
}

static void *count_malloc(size_t n)
{
    void *p = malloc(n);
    count(p, 1);
    log_alloc(n);
    return p;
}

static void *count_realloc(void *p, size_t n)
{
    size_t old = p ? malloc_usable_size(p) : 0;
    void *q = realloc(p, n);
    if (q) {
        __atomic_sub_fetch(&g_live, old, __ATOMIC_RELAXED);
        count(q, 1);
    }
    return q;
}

static void count_free(void *p)
{
    count(p, -1);
    free(p);
}

static long maxrss_kb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

/* ---- data ------------------------------------------------------------------------------
 * Fashion-MNIST (IDX, gzip) when --data names its directory and the model
 * takes 1x28x28 images; otherwise generated images: smooth blobs on a dark
 * background, deterministic. */

/* Reads up to n images of h x w from an IDX3 file into px (u8 [n, 1, h, w]). */
static int idx_read(const char *path, mg_tensor *px, int64_t h, int64_t w)
{
    gzFile gz = gzopen(path, "rb");
    if (!gz) return -1;
    unsigned char hdr[16];
    int ok = gzread(gz, hdr, 16) == 16 && hdr[2] == 8 && hdr[3] == 3;
    int64_t count = ok ? ((int64_t)hdr[4] << 24 | hdr[5] << 16 | hdr[6] << 8 | hdr[7]) : 0;
    ok = ok && hdr[11] == h && hdr[15] == w && count >= px->shape[0];
    int64_t bytes = mg_tensor_nbytes(px);
    ok = ok && gzread(gz, px->data, (unsigned)bytes) == (int)bytes;
    gzclose(gz);
    return ok ? 0 : -1;
}

static void generate(mg_tensor *px, uint64_t seed)
{
    mg_rng r;
    mg_rng_seed(&r, seed);
    int64_t n = px->shape[0], c = px->shape[1], h = px->shape[2], w = px->shape[3];
    unsigned char *p = px->data;
    for (int64_t i = 0; i < n * c; i++) {
        double cy = mg_rng_uniform(&r) * h, cx = mg_rng_uniform(&r) * w;
        double s = (0.15 + 0.25 * mg_rng_uniform(&r)) * (double)(h > w ? h : w), a = 255 * mg_rng_uniform(&r);
        for (int64_t y = 0; y < h; y++)
            for (int64_t x = 0; x < w; x++) {
                double d2 = ((y - cy) * (y - cy) + (x - cx) * (x - cx)) / (s * s);
                double v = a * exp(-d2) + 8 * mg_rng_uniform(&r);
                p[(i * h + y) * w + x] = (unsigned char)(v > 255 ? 255 : v);
            }
    }
}

/* Fills px with images from file `name` under --data, or generated ones. */
static const char *load_images(const bench *b, mg_tensor *px, const char *name, uint64_t seed)
{
    if (b->o.data && px->shape[1] == 1) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", b->o.data, name);
        if (idx_read(path, px, px->shape[2], px->shape[3]) == 0) return "fashion-mnist";
    }
    generate(px, seed);
    return "generated";
}

static mg_tensor *u8_images(const bench *b, int64_t n)
{
    const int64_t *in = b->spec->model.input;
    mg_tensor *t = mg_tensor_new4(MG_U8, n, in[0], in[1], in[2]);
    if (!t) die(b, "out of memory");
    return t;
}

/* ---- model setup -------------------------------------------------------------------------- */
static void setup(bench *b)
{
    check(b, mg_ctx_new(&b->ctx), "creating a context");
    mg_ctx_set_log_level(b->ctx, MG_LOG_ERROR);
    check(b, mg_spec_load_file(b->ctx, b->o.spec, MG_SPEC_NO_DATA_CHECK, &b->spec), "loading the spec");
    check(b, mg_params_new(&b->params), "creating parameters");
    check(b, mg_model_new(b->ctx, b->spec, b->params, &b->model), "creating the model");
}

/* Copies a checkpoint entry into a new tensor of the given dtype. */
static mg_tensor *ckpt_tensor(const bench *b, const mg_checkpoint *ck, const char *name, mg_dtype dt)
{
    const mg_ckpt_entry *e = mg_checkpoint_find(ck, name);
    if (!e) die(b, name);
    mg_tensor *t = mg_tensor_new(dt, e->rank, e->shape);
    if (!t) die(b, "out of memory");
    check(b, mg_checkpoint_read(ck, name, t), name);
    return t;
}

/* Loads parameters and bench data from --ckpt. */
static void load_ckpt(bench *b)
{
    mg_checkpoint *ck = NULL;
    check(b, mg_checkpoint_load(b->ctx, b->o.ckpt, &ck), "loading the checkpoint");
    check(b, mg_model_init_params(b->model, b->spec->train.seed), "creating the parameters");
    check(b, mg_checkpoint_load_params(ck, b->params, "", 0), "reading the parameters");
    b->pool = ckpt_tensor(b, ck, "bench.train_pixels", MG_U8);
    b->eval = ckpt_tensor(b, ck, "bench.eval_pixels", MG_U8);
    b->z = ckpt_tensor(b, ck, "bench.z", MG_F32);
    mg_checkpoint_free(ck);
}

static void teardown(bench *b)
{
    mg_tensor_free(b->pool), mg_tensor_free(b->eval), mg_tensor_free(b->z);
    mg_model_free(b->model);
    mg_params_free(b->params);
    mg_spec_free(b->spec);
    mg_ctx_free(b->ctx);
}

/* ---- training ------------------------------------------------------------------------------ */
typedef struct trainer {
    mg_model_graph *mg;
    mg_exec *ex;
    mg_optim *opt;
    mg_tensor *px;   /* u8 [B, C, H, W]: the batch being dequantised */
    mg_rng rng;
    int64_t pos;
} trainer;

static void trainer_init(bench *b, trainer *t, int64_t batch)
{
    const mg_spec_optimizer *so = &b->spec->train.optimizer;
    memset(t, 0, sizeof *t);
    check(b, mg_model_build_forward(b->model, batch, &t->mg), "building the training graph");
    mg_compile_opts co = {.struct_size = sizeof co, .training = 1, .losses = &t->mg->loss, .n_losses = 1};
    check(b, mg_graph_compile(t->mg->g, &co, &t->ex), "compiling the training graph");
    mg_adam_opts ao = mg_adam_defaults();
    ao.lr = so->lr, ao.beta1 = so->betas[0], ao.beta2 = so->betas[1];
    ao.eps = so->eps, ao.amsgrad = so->amsgrad, ao.weight_decay = so->weight_decay;
    check(b, mg_optim_adam(b->ctx, b->params, &ao, &t->opt), "creating Adam");
    t->px = u8_images(b, batch);
    mg_rng_seed(&t->rng, b->spec->train.seed + 17);
}

static void trainer_free(trainer *t)
{
    mg_optim_free(t->opt);
    mg_exec_free(t->ex);
    mg_model_graph_free(t->mg);
    mg_tensor_free(t->px);
}

/* Copies the next `batch` images of the pool (rotating) into t->px. */
static void next_batch(const mg_tensor *pool, mg_tensor *px, int64_t *pos)
{
    int64_t per = mg_tensor_nbytes(px) / px->shape[0], p = pool->shape[0];
    for (int64_t i = 0; i < px->shape[0]; i++)
        memcpy((char *)px->data + i * per, (const char *)pool->data + ((*pos + i) % p) * per, (size_t)per);
    *pos = (*pos + px->shape[0]) % p;
}

/* One training step; returns the loss. */
static double train_step(bench *b, trainer *t)
{
    next_batch(b->pool, t->px, &t->pos);
    check(b, mg_dequantize(b->ctx, t->px, mg_exec_tensor(t->ex, t->mg->x), &t->rng), "dequantising");
    mg_params_zero_grad(b->params);
    check(b, mg_exec_forward(t->ex), "forward");
    check(b, mg_exec_backward(t->ex), "backward");
    check(b, mg_optim_step(t->opt), "Adam step");
    return mg_tensor_get(mg_exec_tensor(t->ex, t->mg->loss), 0);
}

/* ---- prepare --------------------------------------------------------------------------------- */

/* "[{"type": "block", "mask": "A", "latent": 16}, {"type": "squeeze"}, ...]" */
static char *layers_json(const bench *b)
{
    size_t cap = 64 + 64 * (size_t)b->spec->model.n_layers, len = 0;
    char *s = malloc(cap);
    if (!s) die(b, "out of memory");
    len += (size_t)snprintf(s + len, cap - len, "[");
    for (int i = 0; i < b->spec->model.n_layers; i++) {
        const mg_spec_layer *l = &b->spec->model.layers[i];
        const char *sep = i ? ", " : "";
        if (!strcmp(l->type, "squeeze"))
            len += (size_t)snprintf(s + len, cap - len, "%s{\"type\": \"squeeze\"}", sep);
        else if (!strcmp(l->type, "mintnet.block"))
            len += (size_t)snprintf(s + len, cap - len, "%s{\"type\": \"block\", \"mask\": \"%s\", \"latent\": %lld}",
                                    sep, mg_attrs_str(l->args, "mask", "A"), (long long)mg_attrs_int(l->args, "latent", 1));
        else
            die(NULL, "the peer knows only mintnet.block and squeeze layers");
    }
    snprintf(s + len, cap - len, "]");
    return s;
}

static void set_meta(bench *b, mg_checkpoint *ck)
{
    char buf[128];
    char *layers = layers_json(b);
    const int64_t *in = b->spec->model.input;
    check(b, mg_checkpoint_set_meta(ck, "bench.layers", layers), "metadata");
    snprintf(buf, sizeof buf, "[%lld, %lld, %lld]", (long long)in[0], (long long)in[1], (long long)in[2]);
    check(b, mg_checkpoint_set_meta(ck, "bench.input", buf), "metadata");
    snprintf(buf, sizeof buf, "%.17g", b->spec->model.logit ? b->spec->model.logit_lambda : 0.0);
    check(b, mg_checkpoint_set_meta(ck, "bench.lambda", buf), "metadata");
    snprintf(buf, sizeof buf, "%.17g", b->spec->model.inverse.damping);
    check(b, mg_checkpoint_set_meta(ck, "bench.damping", buf), "metadata");
    check(b, mg_checkpoint_set_meta(ck, "bench.spec", b->o.spec), "metadata");
    free(layers);
}

/* Per-sample nll and mean bits/dim of the eval batch, u = 0.5; prints JSON fields. */
static void print_eval_nll(bench *b)
{
    mg_model_graph *mg = NULL;
    mg_exec *ex = NULL;
    check(b, mg_model_build_forward(b->model, b->eval->shape[0], &mg), "building the evaluation graph");
    mg_value outs[2] = {mg->nll, mg->bpd};
    mg_compile_opts co = {.struct_size = sizeof co, .outputs = outs, .n_outputs = 2};
    check(b, mg_graph_compile(mg->g, &co, &ex), "compiling the evaluation graph");
    check(b, mg_dequantize(b->ctx, b->eval, mg_exec_tensor(ex, mg->x), NULL), "dequantising");
    check(b, mg_exec_forward(ex), "evaluation forward");
    const mg_tensor *nll = mg_exec_tensor(ex, mg->nll), *bpd = mg_exec_tensor(ex, mg->bpd);
    double mean = 0;
    printf("\"nll\": [");
    for (int64_t i = 0; i < mg_tensor_numel(nll); i++) {
        printf("%s%.9g", i ? ", " : "", mg_tensor_get(nll, i));
        mean += mg_tensor_get(bpd, i) / (double)mg_tensor_numel(bpd);
    }
    printf("], \"bpd\": %.9g, ", mean);
    mg_exec_free(ex);
    mg_model_graph_free(mg);
}

static int cmd_prepare(bench *b)
{
    const int64_t *out = b->spec->model.output;
    check(b, mg_model_init_params(b->model, b->spec->train.seed), "initialising the parameters");
    b->pool = u8_images(b, POOL_MAX);
    b->eval = u8_images(b, b->o.batch);
    const char *src = load_images(b, b->pool, "train-images-idx3-ubyte.gz", 1);
    load_images(b, b->eval, "t10k-images-idx3-ubyte.gz", 2);
    if (!(b->z = mg_tensor_new4(MG_F32, b->o.batch, out[0], out[1], out[2]))) die(b, "out of memory");
    mg_rng r;
    mg_rng_seed(&r, b->spec->train.seed + 99);
    mg_tensor_rand_normal(b->z, &r, 0.0, b->spec->sample.temperature);
    double loss = NAN, t0 = now();
    if (b->o.pretrain > 0) {
        trainer t;
        trainer_init(b, &t, b->o.batch);
        for (int i = 0; i < b->o.pretrain; i++) loss = train_step(b, &t);
        trainer_free(&t);
    }
    double tt = now() - t0;
    mg_checkpoint *ck = NULL;
    check(b, mg_checkpoint_new(b->ctx, &ck), "creating a checkpoint");
    check(b, mg_checkpoint_add_params(ck, b->params, ""), "adding parameters");
    check(b, mg_checkpoint_add(ck, "bench.train_pixels", b->pool), "adding data");
    check(b, mg_checkpoint_add(ck, "bench.eval_pixels", b->eval), "adding data");
    check(b, mg_checkpoint_add(ck, "bench.z", b->z), "adding latents");
    set_meta(b, ck);
    check(b, mg_checkpoint_save(ck, b->o.out), "writing the checkpoint");
    mg_checkpoint_free(ck);
    int64_t raw = 0;
    mg_model_total_params(b->model, &raw, NULL);
    printf("{\"spec\": \"%s\", \"data\": \"%s\", \"params\": %lld, \"pretrain_steps\": %d, "
           "\"pretrain_loss\": %.9g, \"pretrain_seconds\": %.3f, ", b->o.spec, src, (long long)raw,
           b->o.pretrain, loss, tt);
    print_eval_nll(b);
    printf("\"checkpoint\": \"%s\"}\n", b->o.out);
    return 0;
}

/* ---- time ------------------------------------------------------------------------------------ */
static int wants(const bench *b, const char *what)
{
    const char *p = b->o.what;
    size_t n = strlen(what);
    while ((p = strstr(p, what))) {
        if ((p == b->o.what || p[-1] == ',') && (p[n] == 0 || p[n] == ',')) return 1;
        p += n;
    }
    return 0;
}

static int reps_of(const bench *b) { return b->o.reps < MAX_TIMES ? b->o.reps : MAX_TIMES; }

static void time_train(bench *b)
{
    trainer t;
    double tm[MAX_TIMES], loss = 0;
    int reps = reps_of(b);
    trainer_init(b, &t, b->o.batch);
    for (int r = 0; r < b->o.warmup + reps; r++) {
        double t0 = now();
        loss = train_step(b, &t);
        if (r >= b->o.warmup) tm[r - b->o.warmup] = now() - t0;
    }
    if (!isfinite(loss)) die(b, "training diverged");
    json_times("train", tm, reps);
    printf("\"train_exec_bytes\": %zu, ", mg_exec_bytes(t.ex));
    trainer_free(&t);
}

/* The eval batch repeated to `batch` images, dequantised with u = 0.5. */
static void fill_eval(bench *b, mg_tensor *x)
{
    mg_tensor *px = u8_images(b, x->shape[0]);
    int64_t pos = 0;
    next_batch(b->eval, px, &pos);
    check(b, mg_dequantize(b->ctx, px, x, NULL), "dequantising");
    mg_tensor_free(px);
}

static void time_eval(bench *b)
{
    mg_model_graph *mg = NULL;
    mg_exec *ex = NULL;
    double tm[MAX_TIMES];
    int reps = reps_of(b);
    check(b, mg_model_build_forward(b->model, b->o.batch, &mg), "building the evaluation graph");
    mg_compile_opts co = {.struct_size = sizeof co, .outputs = &mg->nll, .n_outputs = 1};
    check(b, mg_graph_compile(mg->g, &co, &ex), "compiling the evaluation graph");
    mg_tensor *px = u8_images(b, b->o.batch);
    int64_t pos = 0;
    next_batch(b->eval, px, &pos);
    for (int r = 0; r < b->o.warmup + reps; r++) {
        double t0 = now();
        check(b, mg_dequantize(b->ctx, px, mg_exec_tensor(ex, mg->x), NULL), "dequantising");
        check(b, mg_exec_forward(ex), "evaluation forward");
        if (r >= b->o.warmup) tm[r - b->o.warmup] = now() - t0;
    }
    json_times("eval", tm, reps);
    mg_tensor_free(px);
    mg_exec_free(ex);
    mg_model_graph_free(mg);
}

/* Diagnostics of the iterative layers: most iterations, the mean over
 * blocks of each block's most iterations (the convolutions run on the whole
 * batch while any sample iterates, so this is what the inverse costs),
 * largest residual, samples not converged (summed over blocks). */
typedef struct inv_diag {
    double max_iter, mean_iter, max_resid;
    int64_t not_converged;
} inv_diag;

static inv_diag read_diag(mg_exec *ex, const mg_model_graph *ig)
{
    inv_diag d = {0, 0, 0, 0};
    int64_t count = 0;
    for (int i = 0; i < ig->n_layers; i++) {
        if (!mg_value_ok(ig->layer_diag[i])) continue;
        const mg_tensor *t = mg_exec_tensor(ex, ig->layer_diag[i]);
        double most = 0;
        for (int64_t n = 0; n < t->shape[0]; n++) {
            most = fmax(most, mg_tensor_get(t, 3 * n));
            double r = mg_tensor_get(t, 3 * n + 1);
            d.max_resid = isnan(r) ? NAN : fmax(d.max_resid, r);
            d.not_converged += mg_tensor_get(t, 3 * n + 2) == 0;
        }
        d.max_iter = fmax(d.max_iter, most);
        d.mean_iter += most;
        count++;
    }
    d.mean_iter /= count ? (double)count : 1.0;
    return d;
}

/* An inverse graph at the eval batch, compiled to give x_out and every diag. */
static mg_exec *inverse_exec(bench *b, mg_model_graph **igp)
{
    mg_model_graph *ig = NULL;
    mg_exec *ex = NULL;
    check(b, mg_model_build_inverse(b->model, b->eval->shape[0], &ig), "building the inverse graph");
    mg_value outs[1 + 256];
    int n = 0;
    outs[n++] = ig->x_out;
    for (int i = 0; i < ig->n_layers && n < 257; i++)
        if (mg_value_ok(ig->layer_diag[i])) outs[n++] = ig->layer_diag[i];
    mg_compile_opts co = {.struct_size = sizeof co, .outputs = outs, .n_outputs = n};
    check(b, mg_graph_compile(ig->g, &co, &ex), "compiling the inverse graph");
    *igp = ig;
    return ex;
}

static void print_diag(const char *key, inv_diag d)
{
    printf("\"%s_max_iterations\": %g, \"%s_mean_iterations\": %.4g, \"%s_max_residual\": %.6g, "
           "\"%s_not_converged\": %lld, ", key, d.max_iter, key, d.mean_iter, key, d.max_resid, key,
           (long long)d.not_converged);
}

/* Times inverting `z` (copied into the graph's input before each run). */
static inv_diag time_inverse(bench *b, mg_exec *ex, mg_model_graph *ig, const mg_tensor *z, const char *key)
{
    double tm[MAX_TIMES];
    int reps = reps_of(b);
    for (int r = 0; r < b->o.warmup + reps; r++) {
        check(b, mg_tensor_copy(mg_exec_tensor(ex, ig->z_in), z), "setting z");
        double t0 = now();
        check(b, mg_exec_forward(ex), "inverse");
        if (r >= b->o.warmup) tm[r - b->o.warmup] = now() - t0;
    }
    json_times(key, tm, reps);
    inv_diag d = read_diag(ex, ig);
    print_diag(key, d);
    return d;
}

static void time_sample(bench *b)
{
    mg_model_graph *ig = NULL;
    mg_exec *ex = inverse_exec(b, &ig);
    time_inverse(b, ex, ig, b->z, "sample");
    mg_exec_free(ex);
    mg_model_graph_free(ig);
}

/* Latents of the eval batch, inverted; max |x_rec - x| in [0, 1] pixel space. */
static void time_recon(bench *b)
{
    mg_model_graph *fg = NULL, *ig = NULL;
    mg_exec *fe = NULL, *ie = inverse_exec(b, &ig);
    check(b, mg_model_build_forward(b->model, b->eval->shape[0], &fg), "building the forward graph");
    mg_compile_opts co = {.struct_size = sizeof co, .outputs = &fg->z, .n_outputs = 1};
    check(b, mg_graph_compile(fg->g, &co, &fe), "compiling the forward graph");
    mg_tensor *x = mg_exec_tensor(fe, fg->x);
    fill_eval(b, x);
    check(b, mg_exec_forward(fe), "forward");
    time_inverse(b, ie, ig, mg_exec_tensor(fe, fg->z), "recon");
    const mg_tensor *xr = mg_exec_tensor(ie, ig->x_out);
    double err = 0;
    for (int64_t i = 0; i < mg_tensor_numel(x); i++) {
        double e = fabs(mg_tensor_get(xr, i) - mg_tensor_get(x, i));
        err = isnan(e) ? NAN : fmax(err, e);
    }
    printf("\"recon_error\": %.6g, ", err);
    mg_exec_free(fe), mg_exec_free(ie);
    mg_model_graph_free(fg), mg_model_graph_free(ig);
}

/* ---- convolution throughput and the machine's peak ------------------------------------------ */
#define PEAK_CHAINS 12
#define PEAK_ITERS 1000000L

#if defined(__x86_64__)
/* PEAK_ITERS x PEAK_CHAINS independent 16-wide FMAs. */
__attribute__((target("avx512f"), noinline)) static float fma_loop(float seed)
{
    __m512 acc[PEAK_CHAINS];
    const __m512 a = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
    for (int k = 0; k < PEAK_CHAINS; k++) acc[k] = _mm512_set1_ps(seed + (float)k);
    for (long i = 0; i < PEAK_ITERS; i++) {
#pragma GCC unroll 12
        for (int k = 0; k < PEAK_CHAINS; k++) acc[k] = _mm512_fmadd_ps(acc[k], a, c);
    }
    __m512 s = acc[0];
    for (int k = 1; k < PEAK_CHAINS; k++) s = _mm512_add_ps(s, acc[k]);
    return _mm512_reduce_add_ps(s);
}
#endif

/* Peak f32 GFLOP/s of all OpenMP threads: best of 15 runs (other load only
 * ever lowers it); 0 without AVX-512. */
static double peak_gflops(void)
{
    double best = 0;
#if defined(__x86_64__)
    if (!__builtin_cpu_supports("avx512f")) return 0;
    static volatile float sink;
    for (int r = 0; r < 15; r++) {
        int nt = omp_get_max_threads();
        double t0 = now();
#pragma omp parallel
        {
            float v = fma_loop((float)omp_get_thread_num());
#pragma omp atomic
            sink += v;
        }
        double g = 2.0 * 16 * PEAK_CHAINS * (double)PEAK_ITERS * nt / (now() - t0) * 1e-9;
        if (g > best) best = g;
    }
#endif
    return best;
}

/* One convolution of a block: x [N, ic, H, W] -> [N, oc, H, W], 3x3, pad 1. */
typedef struct conv_case {
    int64_t n, ic, oc, h, w;
} conv_case;

static double median_of(double *t, int n)
{
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && t[j - 1] > t[j]; j--) {
            double s = t[j];
            t[j] = t[j - 1], t[j - 1] = s;
        }
    return n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
}

static float *conv_buf(const bench *b, int64_t n)
{
    float *p = mg_malloc_aligned((size_t)n * sizeof(float));
    if (!p) die(b, "out of memory");
    for (int64_t i = 0; i < n; i++) p[i] = (float)((i * 7919) % 1000) * 1e-3f - 0.5f;
    return p;
}

/* Median seconds of forward + one-call backward (dx, dw, db) of one conv. */
static double time_conv(bench *b, const conv_case *c, int reps)
{
    mg_conv2d_shape s = {.n = c->n, .c = c->ic, .h = c->h, .w = c->w, .oc = c->oc, .kh = 3, .kw = 3,
                         .stride = {1, 1}, .pad = {1, 1}, .dilation = {1, 1}, .has_bias = 1};
    mg_conv2d_kernel *k = NULL;
    check(b, mg_conv2d_kernel_new(b->ctx, &s, MG_CONV_FWD | MG_CONV_BWD_DATA | MG_CONV_BWD_WEIGHTS, &k), "conv kernel");
    int64_t nx = c->n * c->ic * c->h * c->w, ny = c->n * c->oc * c->h * c->w, nw = c->oc * c->ic * 9;
    float *x = conv_buf(b, nx), *dx = conv_buf(b, nx), *y = conv_buf(b, ny), *dy = conv_buf(b, ny);
    float *w = conv_buf(b, nw), *dw = conv_buf(b, nw), *bias = conv_buf(b, c->oc), *db = conv_buf(b, c->oc);
    double tm[MAX_TIMES];
    for (int r = 0; r < 2 + reps; r++) {
        double t0 = now();
        check(b, mg_conv2d_kernel_forward(k, x, w, bias, y), "conv forward");
        check(b, mg_conv2d_kernel_backward(k, x, dy, w, dx, dw, db), "conv backward");
        if (r >= 2) tm[r - 2] = now() - t0;
    }
    float *all[] = {x, dx, y, dy, w, dw, bias, db};
    for (int i = 0; i < 8; i++) mg_free_aligned(all[i]);
    mg_conv2d_kernel_free(k);
    return median_of(tm, reps);
}

/* The three convolutions of every block at the bench batch: kernel seconds
 * and FLOPs (forward, backward data, backward weights) summed over blocks.
 * Blocks of one stage share their shapes: each distinct shape is timed once. */
static void time_convs(bench *b)
{
    enum { MAX_SHAPES = 64 };
    conv_case seen[MAX_SHAPES];
    double seen_t[MAX_SHAPES], flops = 0, secs = 0, peak = peak_gflops();
    int n_seen = 0, reps = reps_of(b) < 5 ? 5 : reps_of(b);
    for (int i = 0; i < b->spec->model.n_layers; i++) {
        const mg_spec_layer *l = &b->spec->model.layers[i];
        if (strcmp(l->type, "mintnet.block")) continue;
        int64_t C = l->in_shape[0], LC = C * mg_attrs_int(l->args, "latent", 1), H = l->in_shape[1], W = l->in_shape[2];
        conv_case cs[3] = {{b->o.batch, C, LC, H, W}, {b->o.batch, LC, LC, H, W}, {b->o.batch, LC, C, H, W}};
        for (int k = 0; k < 3; k++) {
            int j = 0;
            while (j < n_seen && memcmp(&seen[j], &cs[k], sizeof cs[k])) j++;
            if (j == n_seen) {
                if (n_seen == MAX_SHAPES) die(b, "too many convolution shapes");
                seen[n_seen] = cs[k];
                seen_t[n_seen++] = time_conv(b, &cs[k], reps);
            }
            secs += seen_t[j];
            flops += 3 * 2.0 * (double)(cs[k].n * cs[k].ic * cs[k].oc * 9 * H * W);
        }
    }
    printf("\"peak_gflops\": %.2f, \"conv_step_flops\": %.6g, \"conv_step_seconds\": %.6g, ", peak, flops, secs);
}

static int cmd_time(bench *b)
{
    load_ckpt(b);
    printf("{\"spec\": \"%s\", \"threads\": %d, \"batch\": %d, ", b->o.spec, omp_get_max_threads(), b->o.batch);
    if (wants(b, "conv")) time_convs(b);
    if (wants(b, "eval")) time_eval(b);
    if (wants(b, "sample")) time_sample(b);
    if (wants(b, "recon")) time_recon(b);
    if (wants(b, "train")) time_train(b);   /* last: it changes the weights */
    printf("\"maxrss_kb\": %ld, \"mg_alloc_peak_bytes\": %zu}\n", maxrss_kb(), g_peak);
    return 0;
}

/* ---- memory ---------------------------------------------------------------------------------- */
static int cmd_memory(bench *b)
{
    long base = maxrss_kb();
    load_ckpt(b);
    trainer t;
    trainer_init(b, &t, b->o.batch);
    for (int i = 0; i < b->o.steps; i++) train_step(b, &t);
    size_t bytes = mg_exec_bytes(t.ex);
    trainer_free(&t);
    printf("{\"maxrss_kb\": %ld, \"baseline_kb\": %ld, \"exec_bytes\": %zu, \"mg_alloc_peak_bytes\": %zu, "
           "\"steps\": %d, \"batch\": %d}\n", maxrss_kb(), base, bytes, g_peak, b->o.steps, b->o.batch);
    return 0;
}

/* ---- main -------------------------------------------------------------------------------------- */
static void usage(void)
{
    fprintf(stderr, "usage: bench_mintnet prepare|time|memory --spec SPEC.yaml [--ckpt F] [--out F] [--data DIR]\n"
                    "       [--what train,eval,sample,recon,conv] [--batch B] [--reps R] [--warmup W]\n"
                    "       [--pretrain K] [--steps K]\n");
    exit(2);
}

static opts parse(int argc, char **argv)
{
    static const struct option lo[] = {
        {"spec", 1, 0, 's'}, {"ckpt", 1, 0, 'c'}, {"out", 1, 0, 'o'}, {"data", 1, 0, 'd'}, {"what", 1, 0, 'w'},
        {"batch", 1, 0, 'b'}, {"reps", 1, 0, 'r'}, {"warmup", 1, 0, 'u'}, {"pretrain", 1, 0, 'p'},
        {"steps", 1, 0, 'k'}, {0, 0, 0, 0}};
    opts o = {.what = "train,eval", .batch = 32, .reps = 5, .warmup = 1, .steps = 20};
    if (argc < 2) usage();
    o.cmd = argv[1];
    int ch;
    optind = 2;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case 's': o.spec = optarg; break;
        case 'c': o.ckpt = optarg; break;
        case 'o': o.out = optarg; break;
        case 'd': o.data = optarg; break;
        case 'w': o.what = optarg; break;
        case 'b': o.batch = atoi(optarg); break;
        case 'r': o.reps = atoi(optarg); break;
        case 'u': o.warmup = atoi(optarg); break;
        case 'p': o.pretrain = atoi(optarg); break;
        case 'k': o.steps = atoi(optarg); break;
        default: usage();
        }
    }
    if (!o.spec || o.batch < 1 || o.reps < 1 || o.warmup < 0) usage();
    return o;
}

int main(int argc, char **argv)
{
    if (argc == 1) {
        /* `make bench` runs every bench program without arguments: this one
         * is driven by run_bench.sh (`make bench-mintnet`) instead. */
        printf("bench_mintnet: run by tests/bench/run_bench.sh (make bench-mintnet)\n");
        return 0;
    }
    bench b = {.o = parse(argc, argv)};
    int rc;
    const char *lg = getenv("BENCH_ALLOC_LOG");
    g_log_min = lg ? (size_t)atoll(lg) : 0;
    mg_set_allocator(count_malloc, count_realloc, count_free);
    setup(&b);
    if (!strcmp(b.o.cmd, "prepare") && b.o.out) rc = cmd_prepare(&b);
    else if (!strcmp(b.o.cmd, "time") && b.o.ckpt) rc = cmd_time(&b);
    else if (!strcmp(b.o.cmd, "memory") && b.o.ckpt) rc = cmd_memory(&b);
    else usage(), rc = 2;
    fflush(stdout);
    teardown(&b);
    return rc;
}
