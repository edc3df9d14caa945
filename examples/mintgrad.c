/* examples/mintgrad.c: the `mintgrad` command: check, train, eval, sample
 * and list ops for flow models described by YAML specs. Each command is in
 * its own cmd_<name>.c; this file dispatches and prints the overall help. */
#include "cli.h"

#include <string.h>

static const char usage[] =
    "Usage: mintgrad COMMAND [OPTIONS]\n"
    "\n"
    "Normalizing flows on 8-bit images, described by YAML specs.\n"
    "\n"
    "Commands:\n"
    "  check SPEC                 validate a spec; print layers, shapes and parameter counts\n"
    "  train SPEC                 train on the spec's data (checkpoints, metrics, curve)\n"
    "  eval SPEC --checkpoint F   bits/dim of a trained model on a data set\n"
    "  sample SPEC --checkpoint F draw samples through the inverse into a PNG grid\n"
    "  ops [SPEC]                 list registered ops and layer types with their plugins\n"
    "  graph SPEC -o FILE         draw the forward, backward or inverse graph (.svg/.png/.pdf/.dot)\n"
    "\n"
    "Every command takes --help. Exit codes:\n"
    "  0 success, 1 bad command line, 2 bad spec, checkpoint, data or other input,\n"
    "  3 failure while running (I/O, numerics, memory), 130 interrupted (Ctrl-C).\n"
    "\n"
    "Options: --version, --help. See docs/driver.md.\n";

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage, stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        fputs(usage, stdout);
        return EXIT_OK;
    }
    if (!strcmp(cmd, "--version")) {
        printf("mintgrad %s\n", mg_version());
        return EXIT_OK;
    }
    static const struct { const char *name; int (*fn)(int, char **); } cmds[] = {
        {"check", cmd_check}, {"train", cmd_train}, {"eval", cmd_eval},
        {"sample", cmd_sample}, {"ops", cmd_ops}, {"graph", cmd_graph},
    };
    for (size_t i = 0; i < sizeof cmds / sizeof *cmds; i++)
        if (!strcmp(cmd, cmds[i].name)) return cmds[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "mintgrad: unknown command '%s'\nTry 'mintgrad --help'.\n", cmd);
    return EXIT_USAGE;
}
