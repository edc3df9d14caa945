/* examples/cmd_check.c: `mintgrad check SPEC`: validates a spec (syntax,
 * keys, layer arguments, shapes, plugins, data files), builds its forward
 * graph once, and prints the layer table with raw and effective parameter
 * counts. */
#include "cli.h"

#include <getopt.h>
#include <inttypes.h>

static const char help[] =
    "Usage: mintgrad check SPEC [--no-data-check] [-v]\n"
    "\n"
    "Validates SPEC and prints its layers: output shapes and parameter counts,\n"
    "raw (stored) and effective (entries the masks keep), with totals.\n"
    "\n"
    "  --no-data-check   do not require the data files to exist\n"
    "  -v, --verbose     more messages\n"
    "  -h, --help        this help\n"
    "\n"
    "Exit codes: 0 valid, 1 bad command line, 2 invalid spec (message with file:line:col).\n";

static void print_summary(const mg_spec *sp)
{
    const mg_spec_model *m = &sp->model;
    printf("spec      %s\n", sp->filename);
    printf("plugins  ");
    for (int i = 0; i < sp->n_plugins; i++) printf(" %s", sp->plugins[i]);
    printf("%s\n", sp->n_plugins ? "" : " (none)");
    printf("input     [%" PRId64 ", %" PRId64 ", %" PRId64 "] -> output [%" PRId64 ", %" PRId64 ", %" PRId64 "]\n",
           m->input[0], m->input[1], m->input[2], m->output[0], m->output[1], m->output[2]);
    printf("preprocess dequantize %s", mg_spec_dequant_name(m->dequantize));
    if (m->logit) printf(", logit lambda %g", m->logit_lambda);
    printf("; prior %s\n", m->prior);
    int adaptive = m->inverse.adaptive >= 0 ? m->inverse.adaptive : m->inverse.stop == MG_SPEC_STOP_RESIDUAL;
    int refine = m->inverse.refine >= 0 ? m->inverse.refine
                                        : m->inverse.precision == MG_F32 && m->inverse.stop == MG_SPEC_STOP_RESIDUAL;
    printf("inverse   tolerance %g, max %d iterations, damping %g (%s), %s%s, stop %s\n", m->inverse.tolerance,
           m->inverse.max_iterations, m->inverse.damping, adaptive ? "adaptive per sample from there" : "fixed",
           m->inverse.precision == MG_F64 ? "float64" : "float32", refine ? " (stalled samples in float64)" : "",
           mg_spec_stop_name(m->inverse.stop));
    printf("data      %s%s%s\n", sp->data.dataset_name, sp->data.path ? " from " : "",
           sp->data.path ? sp->data.path : "");
    printf("train     batch %" PRId64 ", %" PRId64 " steps, %s lr %g, seed %" PRIu64 "\n\n", sp->train.batch_size,
           sp->train.steps, sp->train.optimizer.name, sp->train.optimizer.lr, sp->train.seed);
}

int cmd_check(int argc, char **argv)
{
    static const struct option opts[] = {{"no-data-check", no_argument, 0, 'D'}, {"verbose", no_argument, 0, 'v'},
                                         {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    int verbose = 0, c;
    unsigned flags = 0;
    optind = 0;
    while ((c = getopt_long(argc, argv, "vh", opts, NULL)) != -1) {
        if (c == 'h') return fputs(help, stdout), EXIT_OK;
        if (c == 'v') verbose = 1;
        else if (c == 'D') flags |= MG_SPEC_NO_DATA_CHECK;
        else return cli_usage("check", "bad option");
    }
    if (argc - optind != 1) return cli_usage("check", "expected one SPEC file");
    cli_session S;
    int rc = cli_ctx(&S, verbose);
    if (rc) return rc;
    mg_status s = cli_open(&S, argv[optind], flags);
    mg_model_graph *fg = NULL;
    if (s == MG_OK) s = mg_model_build_forward(S.model, 1, &fg);
    char *table = NULL;
    if (s == MG_OK) s = mg_model_table(S.model, &table);
    if (s != MG_OK) {
        rc = cli_fail(&S, "check", s, 1);
    } else {
        print_summary(S.spec);
        fputs(table, stdout);
        printf("\nforward graph: %d nodes, %d values; %s is valid\n", mg_graph_num_nodes(fg->g),
               mg_graph_num_values(fg->g), S.spec->filename);
    }
    mg_free(table);
    mg_model_graph_free(fg);
    cli_close(&S);
    return rc;
}
