/* examples/cmd_train.c: `mintgrad train SPEC`: the training loop. Batches
 * are shuffled with a seed, dequantised with fresh noise, and pushed
 * through forward, backward, optional clipping and the optimizer; EMA
 * weights follow. Progress goes to stderr; metrics to <dir>/metrics.csv;
 * the full state to <dir>/checkpoint.safetensors every checkpoint.every
 * steps, at the end and on Ctrl-C; the curve to <dir>/curve.svg. */
#include "train.h"

#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <string.h>

static const char help[] =
    "Usage: mintgrad train SPEC [--steps N] [--resume CKPT] [--out DIR] [OPTIONS]\n"
    "\n"
    "Trains the flow of SPEC on its data. The run directory gets spec.yaml,\n"
    "metrics.csv, curve.svg and checkpoint.safetensors (written every\n"
    "train.checkpoint.every steps, at the end, and when stopped with Ctrl-C).\n"
    "\n"
    "  --steps N          total number of steps (overrides train.steps; the\n"
    "                     learning-rate schedule spans them)\n"
    "  --until N          stop at step N (checkpoint written), leaving the schedule\n"
    "                     as it is; continue later with --resume\n"
    "  --resume CKPT      continue exactly where CKPT left off (weights, optimizer,\n"
    "                     step, random states, data order, EMA)\n"
    "  --out DIR          run directory (default: train.checkpoint.dir)\n"
    "  --eval-every N     test evaluation period (overrides train.eval_every)\n"
    "  --no-final-eval    skip the test evaluation at the end\n"
    "  --log-every N      period of the plain progress lines when stderr is not a\n"
    "                     terminal (default: about 20 lines per run)\n"
    "  -v, --verbose      more messages\n"
    "  -h, --help         this help\n"
    "\n"
    "Exit codes: 0 done, 1 bad command line, 2 bad spec, data or checkpoint,\n"
    "3 runtime failure (e.g. a non-finite loss; the last checkpoint is kept),\n"
    "130 interrupted by Ctrl-C (after writing a checkpoint).\n";

typedef struct train_opts {
    const char *spec, *resume, *out;
    int64_t steps, until, eval_every, log_every;
    int no_final_eval, verbose;
} train_opts;

static int parse(int argc, char **argv, train_opts *o)
{
    static const struct option opts[] = {
        {"steps", required_argument, 0, 'n'}, {"until", required_argument, 0, 'U'},
        {"resume", required_argument, 0, 'r'},
        {"out", required_argument, 0, 'o'}, {"eval-every", required_argument, 0, 'E'},
        {"log-every", required_argument, 0, 'L'}, {"no-final-eval", no_argument, 0, 'F'},
        {"verbose", no_argument, 0, 'v'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    *o = (train_opts){.eval_every = -1};
    int c;
    int64_t v;
    optind = 0;
    while ((c = getopt_long(argc, argv, "vh", opts, NULL)) != -1) {
        switch (c) {
        case 'h': fputs(help, stdout); return -1;
        case 'r': o->resume = optarg; break;
        case 'o': o->out = optarg; break;
        case 'F': o->no_final_eval = 1; break;
        case 'v': o->verbose = 1; break;
        case 'n': case 'U': case 'E': case 'L':
            if (cli_parse_i64(optarg, &v) || v < (c == 'E' ? 0 : 1))
                return cli_usage("train", "bad number '%s'", optarg);
            if (c == 'n') o->steps = v;
            else if (c == 'U') o->until = v;
            else if (c == 'E') o->eval_every = v;
            else o->log_every = v;
            break;
        default: return cli_usage("train", "bad option");
        }
    }
    if (argc - optind != 1) return cli_usage("train", "expected one SPEC file");
    o->spec = argv[optind];
    return 0;
}

/* ---- setup ------------------------------------------------------------------------ */

static mg_status make_optim(trainer *t)
{
    const mg_spec_optimizer *o = &t->S->spec->train.optimizer;
    if (o->kind == MG_SPEC_OPTIM_SGD) {
        mg_sgd_opts so = {.lr = o->lr, .momentum = o->momentum, .weight_decay = o->weight_decay,
                          .nesterov = o->nesterov};
        return mg_optim_sgd(t->S->ctx, t->S->ps, &so, &t->opt);
    }
    mg_adam_opts ao = {.lr = o->lr, .beta1 = o->betas[0], .beta2 = o->betas[1], .eps = o->eps,
                       .weight_decay = o->weight_decay, .amsgrad = o->amsgrad};
    return mg_optim_adam(t->S->ctx, t->S->ps, &ao, &t->opt);
}

static mg_status make_paths(trainer *t, const char *dir)
{
    t->dir = mg_strdup(dir);
    t->ckpt_path = cli_join(dir, "checkpoint.safetensors");
    t->csv_path = cli_join(dir, "metrics.csv");
    t->curve_path = cli_join(dir, "curve.svg");
    if (!t->dir || !t->ckpt_path || !t->csv_path || !t->curve_path)
        return mg_ctx_fail(t->S->ctx, MG_ERR_NOMEM, "out of memory");
    return cli_mkdirs(t->S->ctx, dir);
}

static mg_status write_spec_copy(trainer *t)
{
    char *p = cli_join(t->dir, "spec.yaml");
    FILE *f = p ? fopen(p, "w") : NULL;
    mg_status s = MG_OK;
    if (!f || fwrite(t->S->spec->text, 1, t->S->spec->text_len, f) != t->S->spec->text_len)
        s = mg_ctx_fail(t->S->ctx, MG_ERR_IO, "%s: cannot write", p ? p : t->dir);
    if (f) fclose(f);
    mg_free(p);
    return s;
}

/* Data, graphs, optimizer, RNGs: everything except resuming. */
static mg_status setup(trainer *t, int *input)
{
    const mg_spec *sp = t->S->spec;
    t->batch = sp->train.batch_size;
    mg_status s = dataset_load(t->S->ctx, sp, SPLIT_TRAIN, &t->train);
    if (s == MG_OK) s = dataset_load(t->S->ctx, sp, SPLIT_TEST, &t->test);
    if (s != MG_OK) return s;
    *input = 0;
    if (!(t->pix = mg_malloc((size_t)(t->batch * dataset_image_bytes(&t->train)))))
        return mg_ctx_fail(t->S->ctx, MG_ERR_NOMEM, "out of memory");
    if ((s = mg_model_build_forward(t->S->model, t->batch, &t->fg))) return s;
    if ((s = cli_compile_training(t->fg, &t->ex)) || (s = evaluator_init(t->S->ctx, t->S->model, t->batch, &t->ev)) ||
        (s = make_optim(t)) || (s = batcher_init(t->S->ctx, &t->bt, &t->train, sp->train.seed)))
        return s;
    mg_rng_seed(&t->noise, sp->train.seed ^ 0xA5A5A5A5ull);
    return sp->train.ema > 0 ? train_ema_init(t) : MG_OK;
}

static void release(trainer *t)
{
    if (t->csv) fclose(t->csv);
    train_ema_free(t);
    mg_optim_free(t->opt);
    evaluator_free(&t->ev);
    mg_exec_free(t->ex);
    mg_model_graph_free(t->fg);
    batcher_free(&t->bt);
    dataset_free(&t->train);
    dataset_free(&t->test);
    mg_free(t->pix), mg_free(t->dir), mg_free(t->ckpt_path), mg_free(t->csv_path), mg_free(t->curve_path);
}

/* ---- the loop ------------------------------------------------------------------------ */

static double mean_of(const mg_tensor *t)
{
    double s = 0;
    for (int64_t i = 0; i < mg_tensor_numel(t); i++) s += mg_tensor_get(t, i);
    return s / (double)mg_tensor_numel(t);
}

static mg_status one_step(trainer *t, double lr, double *gnorm)
{
    const mg_spec *sp = t->S->spec;
    mg_ctx *ctx = t->S->ctx;
    batcher_next(&t->bt, t->batch, t->pix);
    mg_status s = data_dequantize(ctx, t->pix, t->batch, sp->model.input, sp->model.dequantize, &t->noise,
                                  mg_exec_tensor(t->ex, t->fg->x));
    mg_optim_set_lr(t->opt, lr);
    mg_params_zero_grad(t->S->ps);
    if (s == MG_OK) s = mg_exec_forward(t->ex);
    if (s == MG_OK) s = mg_exec_backward(t->ex);
    if (s != MG_OK) return s;
    t->last_loss = mg_tensor_get(mg_exec_tensor(t->ex, t->fg->loss), 0);
    t->last_bpd = mean_of(mg_exec_tensor(t->ex, t->fg->bpd));
    *gnorm = mg_params_clip_grad_norm(t->S->ps, sp->train.clip_grad_norm);
    if (!isfinite(t->last_loss) || !isfinite(*gnorm))
        return mg_ctx_fail(ctx, MG_ERR_NUMERIC, "step %" PRId64 ": the loss is %g and the gradient norm %g; "
                           "stopping without an update (the last checkpoint is kept: try a lower lr or "
                           "train.clip_grad_norm)", t->step + 1, t->last_loss, *gnorm);
    if ((s = mg_optim_step(t->opt))) return s;
    train_ema_update(t, sp->train.ema);
    t->step++;
    return MG_OK;
}

/* Test bits/dim on `count` images (0: all), with the EMA weights if any and
 * a fixed noise seed, so evaluations are comparable and do not disturb the
 * training's random streams. */
static mg_status test_eval(trainer *t, int64_t count, double *bpd)
{
    const mg_spec *sp = t->S->spec;
    mg_rng r;
    mg_rng_seed(&r, sp->train.seed + 1);
    train_ema_swap(t);
    mg_status s = evaluator_run(t->S->ctx, &t->ev, sp, &t->test, count, sp->model.dequantize, &r, NULL, bpd);
    train_ema_swap(t);
    return s;
}

static int64_t eval_count(const trainer *t)
{
    return t->S->spec->train.eval_batches * t->batch;
}

static mg_status after_step(trainer *t, double lr, double gnorm, double ips, int64_t eval_every)
{
    double test = NAN;
    mg_status s = MG_OK;
    if (eval_every > 0 && t->step % eval_every == 0 && t->step < t->steps) {
        s = test_eval(t, eval_count(t), &test);
        if (s == MG_OK) {
            t->test_bpd = test;
            progress_note(&t->pr, "step %" PRId64 ": test bits/dim %.4f", t->step, test);
        }
    }
    train_csv_row(t, lr, t->last_loss, t->last_bpd, test, gnorm, ips);
    progress_update(&t->pr, t->step, t->last_loss, t->last_bpd, ips);
    int64_t every = t->S->spec->train.checkpoint_every;
    if (s == MG_OK && every > 0 && t->step % every == 0 && t->step < t->steps) s = train_save(t);
    return s;
}

static mg_status loop(trainer *t, int64_t eval_every)
{
    double ips = 0;
    while (t->step < t->stop) {
        if (cli_interrupted) return MG_ERR_INTERRUPTED;
        double t0 = progress_now(), lr = train_lr(t->S->spec, t->step), gnorm = 0;
        mg_status s = one_step(t, lr, &gnorm);
        if (s != MG_OK) return s;
        double r = (double)t->batch / (progress_now() - t0);
        ips = ips > 0 ? 0.9 * ips + 0.1 * r : r;
        if ((s = after_step(t, lr, gnorm, ips, eval_every))) return s;
    }
    return MG_OK;
}

/* ---- the command ------------------------------------------------------------------------ */

static mg_status finish(trainer *t, const train_opts *o)
{
    progress_done(&t->pr);
    mg_status s = train_save(t); /* before the evaluation, which Ctrl-C may stop */
    if (s == MG_OK && !o->no_final_eval) {
        fprintf(stderr, "evaluating on the %" PRId64 " test images...\n", t->test.n);
        s = test_eval(t, 0, &t->test_bpd);
        if (s == MG_OK) train_csv_row(t, NAN, NAN, NAN, t->test_bpd, NAN, NAN);
        if (s == MG_OK) s = train_save(t); /* again, with test_bpd in its metadata */
    }
    if (s == MG_OK) s = train_curve(t);
    if (s != MG_OK) return s;
    if (!o->no_final_eval) printf("test bits/dim: %.4f  (step %" PRId64 ", %s weights)\n", t->test_bpd, t->step,
                                  t->ema ? "EMA" : "raw");
    printf("run directory: %s (checkpoint.safetensors, metrics.csv, curve.svg, spec.yaml)\n", t->dir);
    return MG_OK;
}

static void print_start(const trainer *t)
{
    const mg_spec *sp = t->S->spec;
    int64_t raw = 0, eff = 0;
    mg_model_total_params(t->S->model, &raw, &eff);
    fprintf(stderr, "training %s: %" PRId64 " parameters (%" PRId64 " effective), batch %" PRId64 ", steps %" PRId64
            "..%" PRId64 "\n  data: %" PRId64 " train images (%s), %" PRId64 " test images\n  run directory: %s\n",
            sp->filename, raw, eff, t->batch, t->step, t->steps, t->train.n, t->train.source, t->test.n, t->dir);
}

/* Runs a training session on an opened spec; *input says whether a
 * failure came from the user's input. */
static mg_status run(trainer *t, const train_opts *o, int *input)
{
    mg_spec *sp = t->S->spec;
    t->steps = sp->train.steps = o->steps ? o->steps : sp->train.steps; /* the schedule spans them */
    t->test_bpd = NAN;
    mg_status s = make_paths(t, o->out ? o->out : sp->train.checkpoint_dir);
    if (s == MG_OK) s = setup(t, input);
    if (s == MG_OK && o->resume) *input = 1, s = train_resume(t, o->resume);
    if (s != MG_OK) return s;
    *input = 0;
    if ((s = write_spec_copy(t)) || (s = train_csv_open(t, o->resume != NULL))) return s;
    t->stop = o->until && o->until < t->steps ? o->until : t->steps;
    int64_t every = o->log_every ? o->log_every : (t->stop - t->step) / 20 > 0 ? (t->stop - t->step) / 20 : 1;
    progress_init(&t->pr, stderr, t->step, t->stop, every);
    print_start(t);
    s = loop(t, o->eval_every >= 0 ? o->eval_every : sp->train.eval_every);
    if (s == MG_ERR_INTERRUPTED || (s == MG_OK && cli_interrupted)) {
        progress_done(&t->pr);
        s = train_save(t);
        if (s == MG_OK) train_curve(t);
        return s == MG_OK ? mg_ctx_fail(t->S->ctx, MG_ERR_INTERRUPTED, "stopped at step %" PRId64 "; checkpoint "
                                        "written to %s; continue with: mintgrad train %s --resume %s%s%s", t->step,
                                        t->ckpt_path, o->spec, t->ckpt_path, o->out ? " --out " : "", o->out ? o->out : "")
                          : s;
    }
    if (s != MG_OK) progress_done(&t->pr);
    if (s != MG_OK || t->step >= t->steps) return s == MG_OK ? finish(t, o) : s;
    progress_done(&t->pr);
    if ((s = train_save(t)) == MG_OK) s = train_curve(t);
    if (s == MG_OK)
        printf("stopped at step %" PRId64 " of %" PRId64 " (--until); continue with: mintgrad train %s --resume %s%s%s\n",
               t->step, t->steps, o->spec, t->ckpt_path, o->out ? " --out " : "", o->out ? o->out : "");
    return s;
}

int cmd_train(int argc, char **argv)
{
    train_opts o;
    int rc = parse(argc, argv, &o);
    if (rc) return rc < 0 ? EXIT_OK : rc;
    cli_session S;
    if ((rc = cli_ctx(&S, o.verbose))) return rc;
    cli_catch_sigint();
    trainer t = {.S = &S};
    int input = 1;
    mg_status s = cli_open(&S, o.spec, 0);
    if (s == MG_OK) s = run(&t, &o, &input);
    rc = s == MG_OK ? EXIT_OK : cli_fail(&S, "train", s, input);
    release(&t);
    cli_close(&S);
    return rc;
}
