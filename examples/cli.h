/* examples/cli.h: what the `mintgrad` commands share: exit codes, the
 * context with its log callback, opening a spec with its model and
 * parameters, loading weights from a checkpoint, a path helper and the
 * SIGINT flag. Each command lives in its own cmd_<name>.c. */
#ifndef MG_EXAMPLES_CLI_H
#define MG_EXAMPLES_CLI_H

#include <mintgrad/mintgrad.h>
#include <signal.h>
#include <stdio.h>

/* Exit codes (documented in docs/driver.md and `mintgrad --help`). */
enum {
    EXIT_OK = 0,
    EXIT_USAGE = 1,       /* bad command line */
    EXIT_INPUT = 2,       /* bad spec, checkpoint, data or other input */
    EXIT_RUNTIME = 3,     /* failure while running (I/O, numerics, memory) */
    EXIT_INTERRUPTED = 130
};

/* An opened spec: context, spec, parameters and model. */
typedef struct cli_session {
    mg_ctx *ctx;
    mg_spec *spec;
    mg_params *ps;
    mg_model *model;
    int verbose;
} cli_session;

/* Creates the context with the driver's log callback (warnings to stderr,
 * info with verbose; errors are printed once by the command). */
int cli_ctx(cli_session *S, int verbose);
/* Loads the spec (and its plugins), creates the model and initialises the
 * parameters from the spec's seed. Returns an mg_status. */
mg_status cli_open(cli_session *S, const char *spec_path, unsigned spec_flags);
/* Parses "float32"/"float64" (for --precision); 0 on success. */
int cli_parse_precision(const char *s, mg_dtype *out);
/* Parses "ema"/"raw" (for --weights) into 1/0; 0 on success. */
int cli_parse_weights(const char *s, int *use_ema);
/* Parses --max-iterations: a whole number from 1 to 1000000; 0 on success. */
int cli_parse_max_iterations(const char *s, int64_t *v);
/* Overrides the spec's model-level inverse precision and iteration limit
 * (0 for either: keep the spec's). */
mg_status cli_override_inverse(cli_session *S, mg_dtype precision, int64_t max_iterations);
void cli_close(cli_session *S);
/* Loads the model weights of a checkpoint into S->ps: the EMA copy
 * ("ema.*") when `use_ema` is 1 and it exists, or -1: EMA if present, else
 * the raw weights. *used_ema (may be NULL) tells which. */
mg_status cli_load_weights(cli_session *S, const char *path, int use_ema, int *used_ema);
/* Compiles a forward graph for training the way `train` does: the loss
 * seeds backward, bits/dim is an output. */
mg_status cli_compile_training(mg_model_graph *fg, mg_exec **e);
/* 1 when every iterative layer of inverse graph ig (compiled as e) solved
 * sample n, from the layers' diagnostics (converged flag). */
int cli_sample_converged(mg_exec *e, const mg_model_graph *ig, int64_t n);

/* Prints "mintgrad <cmd>: error: <ctx message>" and returns the exit code
 * for status s: EXIT_INPUT when `input` (loading what the user gave),
 * EXIT_INTERRUPTED for MG_ERR_INTERRUPTED, EXIT_RUNTIME otherwise. */
int cli_fail(cli_session *S, const char *cmd, mg_status s, int input);
/* Prints a usage error and a hint to --help; returns EXIT_USAGE. */
int cli_usage(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Creates a directory and its parents (like mkdir -p). */
mg_status cli_mkdirs(mg_ctx *ctx, const char *dir);
/* "<dir>/<name>" (mg_malloc'd). */
char *cli_join(const char *dir, const char *name);
/* Parses a number argument strictly; 0 on success. */
int cli_parse_i64(const char *s, int64_t *v);
int cli_parse_f64(const char *s, double *v);

/* SIGINT handling: after cli_catch_sigint, the first Ctrl-C sets
 * cli_interrupted (the command stops cleanly), the second kills. */
extern volatile sig_atomic_t cli_interrupted;
void cli_catch_sigint(void);

/* Commands: argc/argv start at the command name. */
int cmd_check(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_sample(int argc, char **argv);
int cmd_ops(int argc, char **argv);
int cmd_graph(int argc, char **argv);

#endif
