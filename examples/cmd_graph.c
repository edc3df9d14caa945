/* examples/cmd_graph.c: `mintgrad graph SPEC -o FILE`: draws a model's
 * computation graph with Graphviz (mintgrad/dot.h). Three views: the
 * training graph (forward, loss marked), the gradient graph (backward, from
 * the loss down to the parameters) and the sampling graph (the inverse).
 * The model is built at a small batch and compiled for training, so the
 * pruned nodes and gradient nodes drawn are the ones training really runs.
 * No data set is needed. */
#include "cli.h"

#include <getopt.h>
#include <inttypes.h>
#include <string.h>

static const char help[] =
    "Usage: mintgrad graph SPEC [--view forward|backward|inverse] [--collapse]\n"
    "                           [--batch N] [--title T] [--left-to-right] [--attrs] -o FILE\n"
    "\n"
    "Draws the computation graph of the model in SPEC. The format comes from\n"
    "FILE's extension: .dot (Graphviz text), .svg, .png or .pdf; '-o -' writes\n"
    "the DOT text to standard output.\n"
    "\n"
    "  --view V          forward: the training graph, loss marked (default);\n"
    "                    backward: the gradient graph, from the loss to the parameters;\n"
    "                    inverse: the sampling graph, latent z to image x\n"
    "  --collapse        one box per spec layer instead of a cluster of its ops\n"
    "  --batch N         batch size the shapes are drawn for (default 1)\n"
    "  --title T         the picture's title (default: spec name and view; '' for none)\n"
    "  --left-to-right   lay the graph out left to right instead of top to bottom\n"
    "  --attrs           list each op's attributes in its box\n"
    "  -o, --output FILE where to write the picture\n"
    "  -v, --verbose     more messages\n"
    "  -h, --help        this help\n"
    "\n"
    "Exit codes: 0 written, 1 bad command line (view, extension), 2 invalid spec,\n"
    "3 cannot build or write the graph (the message names the path).\n";

enum graph_view { VIEW_FORWARD, VIEW_BACKWARD, VIEW_INVERSE };
static const char *const view_names[] = {"forward", "backward", "inverse"};
static const char *const view_titles[] = {"training graph (forward)", "gradient graph (backward)",
                                          "sampling graph (inverse)"};

typedef struct graph_args {
    const char *spec, *out, *title;
    enum graph_view view;
    int collapse, left_to_right, attrs, verbose;
    int64_t batch;
} graph_args;

static int parse_view(const char *s, enum graph_view *v)
{
    for (int i = 0; i < 3; i++)
        if (!strcmp(s, view_names[i])) return *v = (enum graph_view)i, 0;
    return -1;
}

/* Checks the output argument before any work; returns -1 or an exit code. */
static int check_output(const char *out)
{
    const char *fmt;
    if (!out) return cli_usage("graph", "missing output file (-o FILE.svg, .png, .pdf or .dot)");
    if (!strcmp(out, "-")) return -1;
    if (mg_dot_format_from_path(NULL, out, &fmt) != MG_OK)
        return cli_usage("graph", "cannot tell the format of '%s': use a .dot, .svg, .png or .pdf file", out);
    return -1;
}

/* Fills a from the command line; returns -1 to go on, or an exit code. */
static int parse_args(int argc, char **argv, graph_args *a)
{
    static const struct option opts[] = {
        {"view", required_argument, 0, 'V'}, {"collapse", no_argument, 0, 'c'},
        {"batch", required_argument, 0, 'b'}, {"title", required_argument, 0, 't'},
        {"left-to-right", no_argument, 0, 'L'}, {"attrs", no_argument, 0, 'A'},
        {"output", required_argument, 0, 'o'}, {"verbose", no_argument, 0, 'v'},
        {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    memset(a, 0, sizeof *a);
    a->batch = 1;
    int c;
    optind = 0;
    while ((c = getopt_long(argc, argv, "o:vh", opts, NULL)) != -1) {
        if (c == 'h') return fputs(help, stdout), EXIT_OK;
        if (c == 'V' && parse_view(optarg, &a->view))
            return cli_usage("graph", "unknown view '%s' (forward, backward or inverse)", optarg);
        if (c == 'b' && (cli_parse_i64(optarg, &a->batch) || a->batch < 1))
            return cli_usage("graph", "--batch wants a positive integer, not '%s'", optarg);
        if (c == 'c') a->collapse = 1;
        else if (c == 't') a->title = optarg;
        else if (c == 'L') a->left_to_right = 1;
        else if (c == 'A') a->attrs = 1;
        else if (c == 'o') a->out = optarg;
        else if (c == 'v') a->verbose = 1;
        else if (c != 'V' && c != 'b') return cli_usage("graph", "bad option");
    }
    if (argc - optind != 1) return cli_usage("graph", "expected one SPEC file");
    a->spec = argv[optind];
    return check_output(a->out);
}

/* "tiny: training graph (forward), batch 1" into buf. */
static const char *default_title(const graph_args *a, char *buf, size_t n)
{
    const char *base = strrchr(a->spec, '/');
    base = base ? base + 1 : a->spec;
    const char *dot = strrchr(base, '.');
    int stem = dot && dot != base ? (int)(dot - base) : (int)strlen(base);
    snprintf(buf, n, "%.*s: %s, batch %" PRId64, stem, base, view_titles[a->view], a->batch);
    return buf;
}

/* Writes the DOT text to stdout or the picture to a->out. */
static mg_status write_graph(const mg_graph *g, const mg_dot_opts *o, const char *out)
{
    if (strcmp(out, "-")) return mg_dot_save(g, o, out);
    mg_status s = mg_dot_write(g, o, stdout);
    return s == MG_OK && fflush(stdout) ? mg_ctx_fail(mg_graph_ctx(g), MG_ERR_IO, "cannot write to stdout") : s;
}

/* Builds the view's graph (compiled for training unless inverse) and
 * writes it; *nodes gets the graph's node count. */
static mg_status draw(cli_session *S, const graph_args *a, int *nodes)
{
    mg_model_graph *mg = NULL;
    mg_exec *e = NULL;
    char title[256];
    mg_status s = a->view == VIEW_INVERSE ? mg_model_build_inverse(S->model, a->batch, &mg)
                                          : mg_model_build_forward(S->model, a->batch, &mg);
    /* compiled as `train` does, so the views show the nodes training runs */
    if (s == MG_OK && a->view != VIEW_INVERSE) s = cli_compile_training(mg, &e);
    if (s == MG_OK) {
        mg_dot_opts o = mg_dot_defaults();
        o.view = a->view == VIEW_BACKWARD ? MG_DOT_BACKWARD : MG_DOT_FORWARD;
        o.collapse = a->collapse;
        o.exec = e;
        o.title = a->title ? a->title : default_title(a, title, sizeof title);
        o.left_to_right = a->left_to_right;
        o.show_attrs = a->attrs;
        *nodes = mg_graph_num_nodes(mg->g);
        s = write_graph(mg->g, &o, a->out);
    }
    mg_exec_free(e);
    mg_model_graph_free(mg);
    return s;
}

int cmd_graph(int argc, char **argv)
{
    graph_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc >= 0) return rc;
    cli_session S;
    if ((rc = cli_ctx(&S, a.verbose))) return rc;
    int nodes = 0;
    mg_status s = cli_open(&S, a.spec, MG_SPEC_NO_DATA_CHECK);
    if (s != MG_OK) {
        rc = cli_fail(&S, "graph", s, 1);
    } else if ((s = draw(&S, &a, &nodes)) != MG_OK) {
        rc = cli_fail(&S, "graph", s, 0);
    } else if (strcmp(a.out, "-")) {
        printf("mintgrad graph: wrote %s (%s view%s, %d graph nodes)\n", a.out, view_names[a.view],
               a.collapse ? ", collapsed" : "", nodes);
    }
    cli_close(&S);
    return rc;
}
