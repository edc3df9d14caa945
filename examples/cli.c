/* examples/cli.c: shared driver plumbing (see cli.h). */
#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

volatile sig_atomic_t cli_interrupted = 0;

static void on_sigint(int sig)
{
    (void)sig;
    cli_interrupted = 1;
    signal(SIGINT, SIG_DFL); /* a second Ctrl-C stops at once */
}

void cli_catch_sigint(void)
{
    signal(SIGINT, on_sigint);
}

static void on_log(void *user, mg_log_level level, const char *msg)
{
    const cli_session *S = user;
    if (level == MG_LOG_ERROR) return; /* printed once by cli_fail */
    if (level < MG_LOG_WARN && !S->verbose) return;
    fprintf(stderr, "mintgrad: %s%s\n", level >= MG_LOG_WARN ? "warning: " : "", msg);
}

int cli_ctx(cli_session *S, int verbose)
{
    memset(S, 0, sizeof *S);
    S->verbose = verbose;
    if (mg_ctx_new(&S->ctx) != MG_OK) {
        fprintf(stderr, "mintgrad: error: cannot create a context (out of memory?)\n");
        return EXIT_RUNTIME;
    }
    mg_ctx_set_log(S->ctx, on_log, S);
    mg_ctx_set_log_level(S->ctx, verbose ? MG_LOG_DEBUG : MG_LOG_INFO);
    return EXIT_OK;
}

mg_status cli_open(cli_session *S, const char *spec_path, unsigned spec_flags)
{
    mg_status s = mg_spec_load_file(S->ctx, spec_path, spec_flags, &S->spec);
    if (s == MG_OK) s = mg_params_new(&S->ps);
    if (s == MG_OK) s = mg_model_new(S->ctx, S->spec, S->ps, &S->model);
    if (s == MG_OK) s = mg_model_init_params(S->model, S->spec->train.seed);
    return s;
}

void cli_close(cli_session *S)
{
    mg_model_free(S->model);
    mg_params_free(S->ps);
    mg_spec_free(S->spec);
    mg_ctx_free(S->ctx);
    memset(S, 0, sizeof *S);
}

mg_status cli_load_weights(cli_session *S, const char *path, int use_ema, int *used_ema)
{
    mg_checkpoint *ck;
    mg_status s = mg_checkpoint_load(S->ctx, path, &ck);
    if (s != MG_OK) return s;
    int has_ema = 0;
    for (int i = 0; !has_ema && i < mg_checkpoint_count(ck); i++)
        has_ema = strncmp(mg_checkpoint_at(ck, i)->name, "ema.", 4) == 0;
    int ema = use_ema == 1 || (use_ema < 0 && has_ema);
    if (ema && !has_ema)
        s = mg_ctx_fail(S->ctx, MG_ERR_NOTFOUND, "checkpoint '%s' holds no EMA weights (train with "
                        "train.ema > 0)", path);
    if (s == MG_OK) s = mg_checkpoint_load_params(ck, S->ps, ema ? "ema." : "", !ema);
    if (s == MG_OK && used_ema) *used_ema = ema;
    mg_checkpoint_free(ck);
    return s;
}

int cli_fail(cli_session *S, const char *cmd, mg_status s, int input)
{
    const char *msg = S && S->ctx ? mg_ctx_error(S->ctx) : "";
    if (s == MG_ERR_INTERRUPTED) {
        fprintf(stderr, "mintgrad %s: interrupted%s%s\n", cmd, *msg ? ": " : "", msg);
        return EXIT_INTERRUPTED;
    }
    fprintf(stderr, "mintgrad %s: error: %s\n", cmd, *msg ? msg : mg_status_name(s));
    return input && s != MG_ERR_NOMEM ? EXIT_INPUT : EXIT_RUNTIME;
}

int cli_usage(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "mintgrad %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'mintgrad %s --help'.\n", cmd);
    return EXIT_USAGE;
}

mg_status cli_mkdirs(mg_ctx *ctx, const char *dir)
{
    char *p = mg_strdup(dir);
    if (!p) return mg_ctx_fail(ctx, MG_ERR_NOMEM, "out of memory");
    mg_status s = MG_OK;
    for (char *q = p + 1; s == MG_OK; q++) {
        char c = *q;
        if (c != '/' && c != 0) continue;
        *q = 0;
        struct stat st;
        if (mkdir(p, 0755) != 0 && errno != EEXIST)
            s = mg_ctx_fail(ctx, MG_ERR_IO, "cannot create directory '%s': %s", p, strerror(errno));
        else if (stat(p, &st) != 0 || !S_ISDIR(st.st_mode))
            s = mg_ctx_fail(ctx, MG_ERR_IO, "'%s' is not a directory", p);
        *q = c;
        if (c == 0) break;
    }
    mg_free(p);
    return s;
}

char *cli_join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = mg_malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

int cli_parse_i64(const char *s, int64_t *v)
{
    char *end;
    errno = 0;
    long long x = strtoll(s, &end, 10);
    if (errno || end == s || *end) return -1;
    *v = x;
    return 0;
}

int cli_parse_f64(const char *s, double *v)
{
    char *end;
    errno = 0;
    double x = strtod(s, &end);
    if (errno || end == s || *end) return -1;
    *v = x;
    return 0;
}

int cli_parse_precision(const char *s, mg_dtype *out)
{
    if (!strcmp(s, "float32")) *out = MG_F32;
    else if (!strcmp(s, "float64")) *out = MG_F64;
    else return 1;
    return 0;
}

int cli_parse_weights(const char *s, int *use_ema)
{
    if (!strcmp(s, "ema")) *use_ema = 1;
    else if (!strcmp(s, "raw")) *use_ema = 0;
    else return 1;
    return 0;
}

int cli_parse_max_iterations(const char *s, int64_t *v)
{
    return cli_parse_i64(s, v) || *v < 1 || *v > 1000000;
}

mg_status cli_compile_training(mg_model_graph *fg, mg_exec **e)
{
    mg_compile_opts co = {.struct_size = sizeof co, .training = 1, .losses = &fg->loss, .n_losses = 1,
                          .outputs = &fg->bpd, .n_outputs = 1};
    return mg_graph_compile(fg->g, &co, e);
}

int cli_sample_converged(mg_exec *e, const mg_model_graph *ig, int64_t n)
{
    for (int i = 0; i < ig->n_layers; i++)
        if (mg_value_ok(ig->layer_diag[i]) && mg_tensor_get(mg_exec_tensor(e, ig->layer_diag[i]), 3 * n + 2) == 0)
            return 0;
    return 1;
}

mg_status cli_override_inverse(cli_session *S, mg_dtype precision, int64_t max_iterations)
{
    if (!precision && !max_iterations) return MG_OK;
    mg_spec_inverse inv = S->spec->model.inverse;
    if (precision) inv.precision = precision;
    if (precision == MG_F64) inv.refine = -1; /* float32's refinement means nothing in float64 */
    if (max_iterations) inv.max_iterations = (int)max_iterations;
    mg_status s = mg_spec_set_inverse(S->spec, &inv);
    return s == MG_OK ? s : mg_ctx_fail(S->ctx, s, "cannot override the inverse settings");
}
