/* examples/cmd_ops.c: `mintgrad ops`: the registered ops and layer types,
 * with the plugin each came from and the layer types' arguments. */
#include "cli.h"

#include <getopt.h>
#include <string.h>

static const char help[] =
    "Usage: mintgrad ops [SPEC] [--plugin NAME]... [--no-default-plugins]\n"
    "\n"
    "Lists every registered op and layer type with its origin (\"builtin\" or a\n"
    "plugin) and a summary; layer types also show their arguments. The plugins\n"
    "of SPEC (if given) and of each --plugin are loaded first; with neither,\n"
    "the mintnet plugin is loaded if it can be found.\n"
    "\n"
    "  -p, --plugin NAME        load a plugin by name or path (repeatable)\n"
    "  --no-default-plugins     list built-in ops only when no plugin is named\n"
    "  -h, --help               this help\n";

static const char *arg_type_name(mg_arg_type t)
{
    static const char *const names[] = {"?", "int", "float", "bool", "str", "enum", "ints", "floats", "map"};
    return t >= MG_ARG_INT && t <= MG_ARG_MAP ? names[t] : "?";
}

static void print_arg(const mg_layer_arg *a, const char *indent)
{
    printf("%s%-14s %-6s", indent, a->name, arg_type_name(a->type));
    if (a->type == MG_ARG_ENUM && a->choices) {
        printf(" {");
        for (int k = 0; a->choices[k]; k++) printf("%s%s", k ? "|" : "", a->choices[k]);
        printf("}");
    }
    if (a->min < a->max) printf(" [%g, %g]", a->min, a->max);
    if (a->required) printf(" required");
    else if (a->dflt) printf(" = %s", a->dflt);
    printf("%s%s\n", a->doc ? "  " : "", a->doc ? a->doc : "");
    for (int k = 0; a->type == MG_ARG_MAP && k < a->n_fields; k++) print_arg(&a->fields[k], "        ");
}

static void print_registry(mg_ctx *ctx)
{
    mg_registry *r = mg_ctx_registry(ctx);
    printf("ops (%d):\n", mg_registry_num_ops(r));
    for (int i = 0; i < mg_registry_num_ops(r); i++) {
        const mg_op_def *d = mg_registry_op_at(r, i);
        printf("  %-26s %-9s %s%s\n", d->name, mg_registry_op_origin(r, d->name), d->summary ? d->summary : "",
               d->backward ? "" : " (no backward)");
    }
    printf("\nlayer types (%d):\n", mg_registry_num_layers(r));
    for (int i = 0; i < mg_registry_num_layers(r); i++) {
        const mg_layer_def *d = mg_registry_layer_at(r, i);
        printf("  %-26s %-9s %s%s\n", d->name, mg_registry_layer_origin(r, d->name), d->summary ? d->summary : "",
               d->inverse ? "" : " (not invertible)");
        for (int k = 0; k < d->n_args; k++) print_arg(&d->args[k], "      ");
    }
}

int cmd_ops(int argc, char **argv)
{
    static const struct option opts[] = {{"plugin", required_argument, 0, 'p'}, {"no-default-plugins", no_argument, 0, 'N'},
                                         {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    const char *plugins[32];
    int np = 0, no_default = 0, c;
    optind = 0;
    while ((c = getopt_long(argc, argv, "p:h", opts, NULL)) != -1) {
        if (c == 'h') return fputs(help, stdout), EXIT_OK;
        if (c == 'p' && np < 32) plugins[np++] = optarg;
        else if (c == 'N') no_default = 1;
        else return cli_usage("ops", "bad option");
    }
    if (argc - optind > 1) return cli_usage("ops", "at most one SPEC file");
    cli_session S;
    int rc = cli_ctx(&S, 0);
    if (rc) return rc;
    mg_status s = MG_OK;
    if (optind < argc) s = mg_spec_load_file(S.ctx, argv[optind], MG_SPEC_NO_DATA_CHECK, &S.spec);
    for (int i = 0; s == MG_OK && i < np; i++) s = mg_plugin_load(S.ctx, plugins[i]);
    if (s == MG_OK && !np && !S.spec && !no_default && mg_plugin_load(S.ctx, "mintnet") != MG_OK)
        fprintf(stderr, "mintgrad ops: note: the mintnet plugin was not found (%s)\n", mg_ctx_error(S.ctx));
    if (s != MG_OK) rc = cli_fail(&S, "ops", s, 1);
    else print_registry(S.ctx);
    cli_close(&S);
    return rc;
}
