/* examples/cmd_sample.c: `mintgrad sample SPEC --checkpoint CKPT -o
 * grid.png`: draws z = T * N(0, I), runs the model's inverse and writes
 * the images as a PNG grid. Samples whose iterative inverse did not converge
 * (from the layers' diagnostics) or that are not finite are reported and
 * framed in red, never passed off as good samples. */
#include "cli.h"
#include "image.h"

#include <getopt.h>
#include <inttypes.h>
#include <math.h>

static const char help[] =
    "Usage: mintgrad sample SPEC --checkpoint CKPT -o GRID.png [OPTIONS]\n"
    "\n"
    "Draws samples through the inverse of the flow and writes them as a PNG grid.\n"
    "Samples whose inverse did not converge are listed and framed in red.\n"
    "\n"
    "  -c, --checkpoint CKPT   weights (safetensors; a model-only file is enough)\n"
    "  -o, --output FILE       the PNG to write (required)\n"
    "  -n, --count N           number of samples (default: the spec's sample.count)\n"
    "  -t, --temperature T     z = T * N(0, I) (default: sample.temperature)\n"
    "  -s, --seed S            random seed (default: sample.seed)\n"
    "  --cols N                grid columns (default: about square)\n"
    "  --batch N               samples per inverse pass (default: min(count, 64))\n"
    "  --weights ema|raw       EMA or raw weights (default: EMA when the file has them)\n"
    "  --precision P           inverse arithmetic, float32 or float64 (default: the\n"
    "                          spec's model.inverse.precision; per-layer settings win)\n"
    "  --max-iterations N      inverse iteration limit (default: the spec's)\n"
    "  --strict                exit 3 if any sample did not converge\n"
    "  -v, --verbose           more messages\n"
    "  -h, --help              this help\n"
    "\n"
    "Exit codes: 0 ok (non-converged samples are reported on stderr), 1 bad command\n"
    "line, 2 bad spec or checkpoint, 3 runtime failure, 130 interrupted.\n";

typedef struct sample_opts {
    const char *spec, *ckpt, *out;
    int64_t count, batch, cols;
    double temp;
    uint64_t seed;
    int has_seed, weights, strict, verbose;
    mg_dtype precision;          /* 0: the spec's */
    int64_t max_iterations;      /* 0: the spec's */
} sample_opts;

static int parse(int argc, char **argv, sample_opts *o)
{
    static const struct option opts[] = {
        {"checkpoint", required_argument, 0, 'c'}, {"output", required_argument, 0, 'o'},
        {"count", required_argument, 0, 'n'}, {"temperature", required_argument, 0, 't'},
        {"seed", required_argument, 0, 's'}, {"cols", required_argument, 0, 'C'},
        {"batch", required_argument, 0, 'b'}, {"weights", required_argument, 0, 'W'},
        {"strict", no_argument, 0, 'X'}, {"max-iterations", required_argument, 0, 'M'},
        {"precision", required_argument, 0, 'P'}, {"verbose", no_argument, 0, 'v'}, {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    *o = (sample_opts){.weights = -1, .temp = -1};
    int c;
    int64_t v;
    optind = 0;
    while ((c = getopt_long(argc, argv, "c:o:n:t:s:vh", opts, NULL)) != -1) {
        switch (c) {
        case 'h': fputs(help, stdout); return -1;
        case 'c': o->ckpt = optarg; break;
        case 'o': o->out = optarg; break;
        case 'X': o->strict = 1; break;
        case 'P':
            if (cli_parse_precision(optarg, &o->precision)) return cli_usage("sample", "--precision: float32 or float64");
            break;
        case 'M':
            if (cli_parse_max_iterations(optarg, &o->max_iterations))
                return cli_usage("sample", "--max-iterations: a whole number from 1 to 1000000");
            break;
        case 'v': o->verbose = 1; break;
        case 't':
            if (cli_parse_f64(optarg, &o->temp) || !(o->temp > 0))
                return cli_usage("sample", "--temperature must be a number > 0");
            break;
        case 'W':
            if (cli_parse_weights(optarg, &o->weights)) return cli_usage("sample", "--weights: ema or raw");
            break;
        case 'n': case 's': case 'C': case 'b':
            if (cli_parse_i64(optarg, &v) || v < (c == 's' ? 0 : 1))
                return cli_usage("sample", "bad number '%s'", optarg);
            if (c == 'n') o->count = v;
            else if (c == 'C') o->cols = v;
            else if (c == 'b') o->batch = v;
            else o->seed = (uint64_t)v, o->has_seed = 1;
            break;
        default: return cli_usage("sample", "bad option");
        }
    }
    if (argc - optind != 1) return cli_usage("sample", "expected one SPEC file");
    if (!o->ckpt) return cli_usage("sample", "--checkpoint is required");
    if (!o->out) return cli_usage("sample", "-o GRID.png is required");
    o->spec = argv[optind];
    return 0;
}

/* Samples [first, first + k) from one inverse pass: copies the images to
 * out and marks the ones some layer did not solve or that are not finite. */
static void collect(mg_exec *e, const mg_model_graph *ig, int64_t first, int64_t k, int64_t per, float *out,
                    uint8_t *bad)
{
    const mg_tensor *x = mg_exec_tensor(e, ig->x_out);
    for (int64_t n = 0; n < k; n++) {
        int ok = 1;
        for (int64_t j = 0; j < per; j++) {
            float v = (float)mg_tensor_get(x, n * per + j);
            out[(first + n) * per + j] = v;
            ok &= isfinite(v) != 0;
        }
        bad[first + n] = !ok || !cli_sample_converged(e, ig, n);
    }
}

static mg_status draw(cli_session *S, const sample_opts *o, int64_t count, float *img, uint8_t *bad)
{
    int64_t batch = o->batch ? o->batch : count < 64 ? count : 64;
    const int64_t *in = S->spec->model.input, per = in[0] * in[1] * in[2];
    mg_model_graph *ig = NULL;
    mg_exec *e = NULL;
    mg_status s = mg_model_build_inverse(S->model, batch, &ig);
    mg_compile_opts co = {.struct_size = sizeof co};
    if (s == MG_OK) s = mg_graph_compile(ig->g, &co, &e);
    mg_rng rng;
    mg_rng_seed(&rng, o->has_seed ? o->seed : S->spec->sample.seed);
    double t = o->temp > 0 ? o->temp : S->spec->sample.temperature;
    for (int64_t first = 0; s == MG_OK && first < count; first += batch) {
        if (cli_interrupted) s = mg_ctx_fail(S->ctx, MG_ERR_INTERRUPTED, "sampling stopped");
        if (s == MG_OK) {
            mg_tensor_rand_normal(mg_exec_tensor(e, ig->z_in), &rng, 0, t);
            s = mg_exec_forward(e);
        }
        if (s == MG_OK) collect(e, ig, first, count - first < batch ? count - first : batch, per, img, bad);
    }
    mg_exec_free(e);
    mg_model_graph_free(ig);
    return s;
}

static int64_t report_bad(const uint8_t *bad, int64_t count)
{
    int64_t nbad = 0;
    for (int64_t i = 0; i < count; i++) nbad += bad[i];
    if (!nbad) return 0;
    fprintf(stderr, "mintgrad sample: warning: %" PRId64 " of %" PRId64 " samples did not converge (framed in red):",
            nbad, count);
    for (int64_t i = 0, shown = 0; i < count && shown < 20; i++)
        if (bad[i]) fprintf(stderr, " %" PRId64, i), shown++;
    fprintf(stderr, "%s\n", nbad > 20 ? " ..." : "");
    fprintf(stderr, "mintgrad sample: the layers' warnings above give the residuals; a residual just above the "
            "tolerance in float32 usually converges with --precision float64, a large one may need "
            "--max-iterations\n");
    return nbad;
}

int cmd_sample(int argc, char **argv)
{
    sample_opts o;
    int rc = parse(argc, argv, &o);
    if (rc) return rc < 0 ? EXIT_OK : rc;
    cli_session S;
    if ((rc = cli_ctx(&S, o.verbose))) return rc;
    cli_catch_sigint();
    int used_ema = 0;
    mg_status s = cli_open(&S, o.spec, MG_SPEC_NO_DATA_CHECK);
    if (s == MG_OK) s = cli_load_weights(&S, o.ckpt, o.weights, &used_ema);
    if (s == MG_OK) s = cli_override_inverse(&S, o.precision, o.max_iterations);
    if (s != MG_OK) {
        rc = cli_fail(&S, "sample", s, 1);
        cli_close(&S);
        return rc;
    }
    int64_t count = o.count ? o.count : S.spec->sample.count;
    const int64_t *in = S.spec->model.input;
    float *img = mg_malloc((size_t)(count * in[0] * in[1] * in[2]) * sizeof(float));
    uint8_t *bad = mg_calloc((size_t)count, 1);
    s = img && bad ? draw(&S, &o, count, img, bad) : mg_ctx_fail(S.ctx, MG_ERR_NOMEM, "out of memory");
    int64_t nbad = s == MG_OK ? report_bad(bad, count) : 0;
    if (s == MG_OK) s = image_write_grid(S.ctx, o.out, img, count, in[0], in[1], in[2], (int)o.cols, bad);
    if (s == MG_OK)
        printf("wrote %" PRId64 " samples (%s weights, temperature %g) to %s%s\n", count, used_ema ? "EMA" : "raw",
               o.temp > 0 ? o.temp : S.spec->sample.temperature, o.out, nbad ? "; see the warning above" : "");
    if (s == MG_OK && nbad && o.strict)
        s = mg_ctx_fail(S.ctx, MG_ERR_NUMERIC, "%" PRId64 " samples did not converge", nbad);
    rc = s == MG_OK ? EXIT_OK : cli_fail(&S, "sample", s, 0);
    mg_free(img);
    mg_free(bad);
    cli_close(&S);
    return rc;
}
