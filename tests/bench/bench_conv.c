/* tests/bench/bench_conv.c: throughput of the 3x3 convolution kernel
 * (forward, backward-data, backward-weights with bias gradient) at the shapes
 * the MintNet models use, in GFLOP/s and as a fraction of this machine's peak
 * f32 FMA throughput, measured in the same run with the same OpenMP thread
 * count (an AVX-512 loop of independent FMA chains). Run by `make bench`
 * (OMP_NUM_THREADS=2, then 1).
 *
 * "node" rows time the public kernel API on plain NCHW/OIHW buffers, i.e. what
 * the conv2d node costs including the layout conversions it performs (the
 * node runs forward, then the one-call backward); "prim" rows time the oneDNN
 * primitive alone on its own blocked buffers, i.e. the cost if activations
 * stayed blocked between convolutions. FLOPs per pass: 2*N*OC*C*KH*KW*OH*OW
 * (padding taps included, so small images look faster than they are). Times
 * are medians (and best) of several runs: two threads on two shared cores
 * collapse under any other load. */
#include <mintgrad/mintgrad.h>

#include "dnnl.h"

#include <immintrin.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define REPS 21   /* timed runs per measurement; median and best are reported */
#define WARMUP 3

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
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
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* ---- peak FMA throughput ----------------------------------------------------------- */
#define PEAK_CHAINS 12    /* independent FMA chains: more than latency x ports */
#define PEAK_ITERS 1000000L

/* Runs PEAK_ITERS x PEAK_CHAINS 16-wide FMAs; returns a value depending on all. */
__attribute__((target("avx512f"), noinline)) static float fma_loop(float seed)
{
    __m512 acc[PEAK_CHAINS];
    const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
    for (int c = 0; c < PEAK_CHAINS; c++) acc[c] = _mm512_set1_ps(seed + (float)c);
    for (long i = 0; i < PEAK_ITERS; i++) {
#pragma GCC unroll 12
        for (int c = 0; c < PEAK_CHAINS; c++) acc[c] = _mm512_fmadd_ps(acc[c], a, b);
    }
    __m512 s = acc[0];
    for (int c = 1; c < PEAK_CHAINS; c++) s = _mm512_add_ps(s, acc[c]);
    return _mm512_reduce_add_ps(s);
}

/* One measurement of the peak GFLOP/s, every OpenMP thread running the loop. */
static double peak_once(void)
{
    static volatile float sink;
    int nt = omp_get_max_threads();
    double t0 = now();
#pragma omp parallel
    {
        float v = fma_loop((float)omp_get_thread_num());
#pragma omp atomic
        sink += v;
    }
    return 2.0 * 16 * PEAK_CHAINS * (double)PEAK_ITERS * nt / (now() - t0) * 1e-9;
}

/* The machine's peak: the best of `reps` measurements (others' load only
 * ever lowers it). */
static double peak_gflops(int reps)
{
    double best = 0;
    for (int r = 0; r < reps; r++) {
        double p = peak_once();
        if (p > best) best = p;
    }
    return best;
}

/* ---- convolution -------------------------------------------------------------------- */
typedef struct bench_buf {
    float *x, *w, *b, *y, *dy, *dx, *dw, *db;
} bench_buf;

static float *rand_buf(int64_t n, unsigned *seed)
{
    float *p = mg_malloc_aligned((size_t)n * sizeof(float));
    if (!p) {
        fprintf(stderr, "bench_conv: out of memory\n");
        exit(1);
    }
    for (int64_t i = 0; i < n; i++) p[i] = (float)rand_r(seed) / (float)RAND_MAX - 0.5f;
    return p;
}

static bench_buf bench_alloc(const mg_conv2d_shape *s, int64_t oh, int64_t ow)
{
    unsigned seed = 1;
    int64_t nx = s->n * s->c * s->h * s->w, nw = s->oc * s->c * s->kh * s->kw, ny = s->n * s->oc * oh * ow;
    return (bench_buf){.x = rand_buf(nx, &seed), .w = rand_buf(nw, &seed), .b = rand_buf(s->oc, &seed),
                       .y = rand_buf(ny, &seed), .dy = rand_buf(ny, &seed), .dx = rand_buf(nx, &seed),
                       .dw = rand_buf(nw, &seed), .db = rand_buf(s->oc, &seed)};
}

static void bench_free(bench_buf *b)
{
    float *all[] = {b->x, b->w, b->b, b->y, b->dy, b->dx, b->dw, b->db};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) mg_free_aligned(all[i]);
}

/* What one timed call runs. */
typedef enum bench_op {
    OP_FWD, OP_BWD_DATA, OP_BWD_WEIGHTS, OP_BIAS_GRAD,     /* through the kernel API */
    OP_BWD, OP_STEP_SEPARATE, OP_STEP,
    OP_PRIM_FWD, OP_PRIM_BWD_DATA, OP_PRIM_BWD_WEIGHTS,          /* primitive only */
    OP_PRIM_BWD_WEIGHTS_NOBIAS
} bench_op;

typedef struct bench_ctx {
    mg_ctx *ctx;
    mg_conv2d_kernel *k;
    mg_dnnl_conv *raw;  /* the same passes, for primitive-only timing */
    mg_dnnl_conv *raw_nobias; /* backward-weights without diff_bias */
    bench_buf buf;
    double peak;        /* best peak GFLOP/s seen so far */
} bench_ctx;

static mg_status run_op(bench_ctx *bc, bench_op op)
{
    bench_buf *b = &bc->buf;
    mg_status s = MG_OK;
    switch (op) {
    case OP_FWD: return mg_conv2d_kernel_forward(bc->k, b->x, b->w, b->b, b->y);
    case OP_BWD_DATA: return mg_conv2d_kernel_backward_data(bc->k, b->dy, b->w, b->dx);
    case OP_BWD_WEIGHTS: return mg_conv2d_kernel_backward_weights(bc->k, b->x, b->dy, b->dw, b->db);
    case OP_BIAS_GRAD: return mg_conv2d_kernel_backward_weights(bc->k, NULL, b->dy, NULL, b->db);
    case OP_BWD: return mg_conv2d_kernel_backward(bc->k, b->x, b->dy, b->w, b->dx, b->dw, b->db);
    case OP_STEP_SEPARATE:
        s = run_op(bc, OP_FWD);
        if (s == MG_OK) s = run_op(bc, OP_BWD_DATA);
        return s == MG_OK ? run_op(bc, OP_BWD_WEIGHTS) : s;
    case OP_STEP:
        s = run_op(bc, OP_FWD);
        return s == MG_OK ? run_op(bc, OP_BWD) : s;
    case OP_PRIM_FWD: return mg_dnnl_conv_run_inner(bc->raw, MG_CONV_FWD);
    case OP_PRIM_BWD_DATA: return mg_dnnl_conv_run_inner(bc->raw, MG_CONV_BWD_DATA);
    case OP_PRIM_BWD_WEIGHTS: return mg_dnnl_conv_run_inner(bc->raw, MG_CONV_BWD_WEIGHTS);
    case OP_PRIM_BWD_WEIGHTS_NOBIAS: return mg_dnnl_conv_run_inner(bc->raw_nobias, MG_CONV_BWD_WEIGHTS);
    }
    return MG_ERR_ARG;
}

/* One timed operation: median and best of REPS runs after WARMUP. */
typedef struct timing {
    double med, best;
} timing;

static timing time_op(bench_ctx *bc, bench_op op)
{
    double t[REPS];
    for (int r = 0; r < WARMUP + REPS; r++) {
        double t0 = now();
        if (run_op(bc, op) != MG_OK) {
            fprintf(stderr, "bench_conv: %s\n", mg_ctx_error(bc->ctx));
            exit(1);
        }
        if (r >= WARMUP) t[r - WARMUP] = now() - t0;
    }
    timing tm = {.med = median(t, REPS)}; /* sorts t */
    tm.best = t[0];
    return tm;
}

/* Times op and prints a row; the peak is re-measured first and the best
 * value seen so far is used (a peak taken under load would flatter us). */
static void report(bench_ctx *bc, const char *what, bench_op op, double flops)
{
    double pk = peak_gflops(5);
    if (pk > bc->peak) bc->peak = pk;
    timing t = time_op(bc, op);
    if (flops > 0)
        printf("  %-30s %8.3f %8.3f %8.1f %7.1f%% %7.1f%%\n", what, t.med * 1e3, t.best * 1e3,
               flops / t.med * 1e-9, 100 * flops / t.med * 1e-9 / bc->peak, 100 * flops / t.best * 1e-9 / bc->peak);
    else
        printf("  %-30s %8.3f %8.3f\n", what, t.med * 1e3, t.best * 1e3);
}

static double bench_shape(mg_ctx *ctx, int64_t n, int64_t c, int64_t hw, double peak)
{
    const unsigned all = MG_CONV_FWD | MG_CONV_BWD_DATA | MG_CONV_BWD_WEIGHTS;
    mg_conv2d_shape s = {.n = n, .c = c, .h = hw, .w = hw, .oc = c, .kh = 3, .kw = 3,
                         .stride = {1, 1}, .pad = {1, 1}, .dilation = {1, 1}, .has_bias = 1};
    int64_t oh, ow;
    bench_ctx bc = {.ctx = ctx, .peak = peak};
    if (mg_conv2d_out_hw(&s, &oh, &ow) != MG_OK || mg_conv2d_kernel_new(ctx, &s, all, &bc.k) != MG_OK ||
        mg_dnnl_conv_new(ctx, &s, all, &bc.raw) != MG_OK ||
        mg_dnnl_conv_new(ctx, &(mg_conv2d_shape){.n = n, .c = c, .h = hw, .w = hw, .oc = c, .kh = 3, .kw = 3,
                         .stride = {1, 1}, .pad = {1, 1}, .dilation = {1, 1}}, MG_CONV_BWD_WEIGHTS,
                         &bc.raw_nobias) != MG_OK) {
        fprintf(stderr, "bench_conv: %s\n", mg_ctx_error(ctx));
        exit(1);
    }
    bc.buf = bench_alloc(&s, oh, ow);
    /* bind the raw object's plain buffers once, so primitive-only runs are valid */
    mg_dnnl_conv_forward(bc.raw, bc.buf.x, bc.buf.w, bc.buf.b, bc.buf.y);
    mg_dnnl_conv_backward_data(bc.raw, bc.buf.dy, bc.buf.w, bc.buf.dx);
    mg_dnnl_conv_backward_weights(bc.raw, bc.buf.x, bc.buf.dy, bc.buf.dw, bc.buf.db);
    mg_dnnl_conv_backward_weights(bc.raw_nobias, bc.buf.x, bc.buf.dy, bc.buf.dw, NULL);

    double fl = 2.0 * n * c * c * 9 * oh * ow;
    printf("conv 3x3 pad 1: x[%lld,%lld,%lld,%lld] -> [%lld,%lld,%lld,%lld], %.1f MFLOP per pass\n",
           (long long)n, (long long)c, (long long)hw, (long long)hw, (long long)n, (long long)c, (long long)oh,
           (long long)ow, fl * 1e-6);
    static const char *names[3] = {"forward", "backward data", "backward weights"};
    static const unsigned bits[3] = {MG_CONV_FWD, MG_CONV_BWD_DATA, MG_CONV_BWD_WEIGHTS};
    for (int i = 0; i < 3; i++)
        printf("    %-17s %s  [%s]\n", names[i], mg_dnnl_conv_impl(bc.raw, bits[i]),
               mg_dnnl_conv_layouts(bc.raw, bits[i]));
    printf("    (* converted from/to plain NCHW/OIHW, ^ blocked buffer shared with an earlier pass)\n");
    printf("  %-30s %8s %8s %8s %8s %8s\n", "", "median", "best", "GFLOP/s", "%peak", "%pk best");
    report(&bc, "node forward", OP_FWD, fl);
    report(&bc, "node backward data", OP_BWD_DATA, fl);
    report(&bc, "node backward weights + bias", OP_BWD_WEIGHTS, fl);
    report(&bc, "node backward, one call", OP_BWD, 2 * fl);
    report(&bc, "node step, separate calls", OP_STEP_SEPARATE, 3 * fl);
    report(&bc, "node step: fwd + one-call bwd", OP_STEP, 3 * fl);
    report(&bc, "prim forward", OP_PRIM_FWD, fl);
    report(&bc, "prim backward data", OP_PRIM_BWD_DATA, fl);
    report(&bc, "prim backward weights + bias", OP_PRIM_BWD_WEIGHTS, fl);
    report(&bc, "prim backward weights, no bias", OP_PRIM_BWD_WEIGHTS_NOBIAS, fl);
    report(&bc, "bias gradient alone (our sum)", OP_BIAS_GRAD, 0);
    bench_free(&bc.buf);
    mg_conv2d_kernel_free(bc.k);
    mg_dnnl_conv_free(bc.raw);
    mg_dnnl_conv_free(bc.raw_nobias);
    return bc.peak;
}

int main(void)
{
    mg_ctx *ctx = NULL;
    if (mg_ctx_new(&ctx) != MG_OK) {
        fprintf(stderr, "bench_conv: cannot create a context\n");
        return 1;
    }
    double peak = peak_gflops(REPS);
    printf("OMP_NUM_THREADS=%d: peak f32 FMA throughput %.1f GFLOP/s (AVX-512, best of %d)\n"
           "times in ms: median and best of %d runs; GFLOP/s and %% of peak from the median, then from the best;\n"
           "the peak is re-measured before each row and the best value seen so far is used\n",
           omp_get_max_threads(), peak, REPS, REPS);
    peak = bench_shape(ctx, 64, 32, 28, peak);
    peak = bench_shape(ctx, 64, 64, 8, peak);
    printf("peak at the end: %.1f GFLOP/s now, best seen %.1f (used for %% of peak)\n\n", peak_gflops(REPS), peak);
    mg_ctx_free(ctx);
    return 0;
}
