/* examples/cmd_eval.c: `mintgrad eval SPEC --checkpoint CKPT`: bits/dim of
 * a trained model on the test (or train) split or any IDX image file, per
 * spec section 6; optionally per image, and a per-layer check of the
 * inverse (iterations, residual, reconstruction error). */
#include "cli.h"
#include "data.h"
#include "evaluate.h"

#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <string.h>

static const char help[] =
    "Usage: mintgrad eval SPEC --checkpoint CKPT [OPTIONS]\n"
    "\n"
    "Bits per dimension of a trained model, with the accounting of the MintNet\n"
    "paper (logit log-det included, 8 bits added back).\n"
    "\n"
    "  -c, --checkpoint CKPT      weights (safetensors; a model-only file is enough)\n"
    "  --split test|train         which split of the spec's data (default test)\n"
    "  --images IDX               evaluate this IDX image file instead (gzip or plain)\n"
    "  --limit N                  only the first N images\n"
    "  --dequantize uniform|center  noise u ~ U(0,1) (seeded) or u = 0.5 (default uniform)\n"
    "  --seed S                   noise seed (default: the spec's train.seed)\n"
    "  --batch N                  images per forward pass (default: train.batch_size)\n"
    "  --weights ema|raw          EMA or raw weights (default: EMA when the file has them)\n"
    "  --per-sample CSV           write index,bpd for every image\n"
    "  --check-inverse            per flow layer on the first batch: the inverse's\n"
    "                             iterations, final residual and reconstruction error\n"
    "  --precision P              with --check-inverse: float32 or float64 arithmetic\n"
    "                             (default: the spec's model.inverse.precision)\n"
    "  --max-iterations N         with --check-inverse: the inverse's iteration limit\n"
    "  -v, --verbose              more messages\n"
    "  -h, --help                 this help\n"
    "\n"
    "Exit codes: 0 ok, 1 bad command line, 2 bad spec/checkpoint/data, 3 runtime\n"
    "failure (a non-finite bits/dim, a non-converged inverse with --check-inverse),\n"
    "130 interrupted.\n";

typedef struct eval_opts {
    const char *spec, *ckpt, *images, *per_sample;
    data_split split;
    int64_t limit, batch;
    mg_spec_dequant deq;
    uint64_t seed;
    int has_seed, weights, check_inverse, verbose;
    mg_dtype precision;          /* 0: the spec's */
    int64_t max_iterations;      /* 0: the spec's */
} eval_opts;

static int parse(int argc, char **argv, eval_opts *o)
{
    static const struct option opts[] = {
        {"checkpoint", required_argument, 0, 'c'}, {"split", required_argument, 0, 'S'},
        {"images", required_argument, 0, 'I'}, {"limit", required_argument, 0, 'L'},
        {"dequantize", required_argument, 0, 'D'}, {"seed", required_argument, 0, 's'},
        {"batch", required_argument, 0, 'b'}, {"weights", required_argument, 0, 'W'},
        {"per-sample", required_argument, 0, 'P'}, {"check-inverse", no_argument, 0, 'C'},
        {"max-iterations", required_argument, 0, 'M'}, {"precision", required_argument, 0, 'R'},
        {"verbose", no_argument, 0, 'v'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    *o = (eval_opts){.split = SPLIT_TEST, .deq = MG_SPEC_DEQUANT_UNIFORM, .weights = -1};
    int c;
    int64_t v;
    optind = 0;
    while ((c = getopt_long(argc, argv, "c:vh", opts, NULL)) != -1) {
        switch (c) {
        case 'h': fputs(help, stdout); return -1;
        case 'c': o->ckpt = optarg; break;
        case 'I': o->images = optarg; break;
        case 'P': o->per_sample = optarg; break;
        case 'C': o->check_inverse = 1; break;
        case 'R':
            if (cli_parse_precision(optarg, &o->precision)) return cli_usage("eval", "--precision: float32 or float64");
            break;
        case 'M':
            if (cli_parse_max_iterations(optarg, &o->max_iterations))
                return cli_usage("eval", "--max-iterations: a whole number from 1 to 1000000");
            break;
        case 'v': o->verbose = 1; break;
        case 'S':
            if (strcmp(optarg, "test") && strcmp(optarg, "train")) return cli_usage("eval", "--split: test or train");
            o->split = strcmp(optarg, "test") ? SPLIT_TRAIN : SPLIT_TEST;
            break;
        case 'D':
            if (strcmp(optarg, "uniform") && strcmp(optarg, "center"))
                return cli_usage("eval", "--dequantize: uniform or center");
            o->deq = strcmp(optarg, "center") ? MG_SPEC_DEQUANT_UNIFORM : MG_SPEC_DEQUANT_CENTER;
            break;
        case 'W':
            if (cli_parse_weights(optarg, &o->weights)) return cli_usage("eval", "--weights: ema or raw");
            break;
        case 'L': case 'b': case 's':
            if (cli_parse_i64(optarg, &v) || v < (c == 's' ? 0 : 1))
                return cli_usage("eval", "bad number '%s'", optarg);
            if (c == 'L') o->limit = v;
            else if (c == 'b') o->batch = v;
            else o->seed = (uint64_t)v, o->has_seed = 1;
            break;
        default: return cli_usage("eval", "bad option");
        }
    }
    if (argc - optind != 1) return cli_usage("eval", "expected one SPEC file");
    if (!o->ckpt) return cli_usage("eval", "--checkpoint is required");
    o->spec = argv[optind];
    return 0;
}

static mg_status write_per_sample(mg_ctx *ctx, const char *path, const double *v, int64_t n)
{
    FILE *f = fopen(path, "w");
    if (!f) return mg_ctx_fail(ctx, MG_ERR_IO, "%s: cannot create", path);
    fprintf(f, "index,bpd\n");
    for (int64_t i = 0; i < n; i++) fprintf(f, "%" PRId64 ",%.6f\n", i, v[i]);
    return fclose(f) == 0 ? MG_OK : mg_ctx_fail(ctx, MG_ERR_IO, "%s: write failed", path);
}

/* Loads the spec, the weights and the images: everything the user gave. */
static mg_status load_inputs(cli_session *S, const eval_opts *o, dataset *d, int *used_ema)
{
    mg_status s = cli_open(S, o->spec, MG_SPEC_NO_DATA_CHECK);
    if (s == MG_OK) s = cli_load_weights(S, o->ckpt, o->weights, used_ema);
    if (s == MG_OK) s = o->images ? dataset_load_idx(S->ctx, o->images, S->spec->model.input, o->limit, d)
                                  : dataset_load(S->ctx, S->spec, o->split, d);
    return s;
}

/* Evaluates n images of d; prints the result and writes the per-sample file. */
static mg_status evaluate(cli_session *S, const eval_opts *o, const dataset *d, int64_t n, int64_t batch,
                          int used_ema)
{
    double *per = NULL, mean = 0;
    evaluator ev = {0};
    mg_status s = MG_OK;
    if (o->per_sample && !(per = mg_malloc((size_t)n * sizeof *per)))
        s = mg_ctx_fail(S->ctx, MG_ERR_NOMEM, "out of memory");
    if (s == MG_OK) s = evaluator_init(S->ctx, S->model, batch, &ev);
    mg_rng rng;
    mg_rng_seed(&rng, o->has_seed ? o->seed : S->spec->train.seed);
    if (s == MG_OK) s = evaluator_run(S->ctx, &ev, S->spec, d, n, o->deq, &rng, per, &mean);
    evaluator_free(&ev);
    if (s == MG_OK) {
        printf("%s bits/dim: %.4f  (%" PRId64 " images of %s; dequantize %s; %s weights)\n",
               o->images ? "file" : o->split == SPLIT_TEST ? "test" : "train", mean, n, d->source,
               mg_spec_dequant_name(o->deq), used_ema ? "EMA" : "raw");
        fflush(stdout);
    }
    if (s == MG_OK && per) s = write_per_sample(S->ctx, o->per_sample, per, n);
    mg_free(per);
    return s;
}

int cmd_eval(int argc, char **argv)
{
    eval_opts o;
    int rc = parse(argc, argv, &o);
    if (rc) return rc < 0 ? EXIT_OK : rc;
    cli_session S;
    if ((rc = cli_ctx(&S, o.verbose))) return rc;
    cli_catch_sigint();
    dataset d = {0};
    int used_ema = 0;
    mg_status s = load_inputs(&S, &o, &d, &used_ema);
    if (s == MG_OK) s = cli_override_inverse(&S, o.precision, o.max_iterations);
    if (s != MG_OK) {
        rc = cli_fail(&S, "eval", s, 1);
    } else {
        int64_t n = o.limit > 0 && o.limit < d.n ? o.limit : d.n;
        int64_t batch = o.batch ? o.batch : S.spec->train.batch_size;
        if (batch > n) batch = n;
        int converged = 1;
        s = evaluate(&S, &o, &d, n, batch, used_ema);
        if (s == MG_OK && o.check_inverse) s = eval_check_inverse(&S, &d, batch, &converged);
        if (s == MG_OK && !converged)
            s = mg_ctx_fail(S.ctx, MG_ERR_NUMERIC, "the inverse did not converge for some images (see above)");
        rc = s == MG_OK ? EXIT_OK : cli_fail(&S, "eval", s, 0);
    }
    dataset_free(&d);
    cli_close(&S);
    return rc;
}
