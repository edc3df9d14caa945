/* tests/test_graph_cmd.c: the `mintgrad graph` command, run as the built
 * binary (MG_DRIVER) on examples/tiny.yaml: every view in every format gives
 * a valid file (DOT that Graphviz parses back, SVG, PNG, PDF), the collapsed
 * view has fewer nodes, the output is byte-identical from run to run, and
 * bad views, extensions and output paths fail with the documented exit codes
 * and messages. */
#include "testutil.h"

#include <cgraph.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef MG_DRIVER
#error "MG_DRIVER must name the built mintgrad binary"
#endif
#define TINY MG_EXAMPLES_DIR "/tiny.yaml"

/* Driver exit codes (examples/cli.h, docs/driver.md). */
enum { XC_OK = 0, XC_USAGE = 1, XC_INPUT = 2, XC_RUNTIME = 3 };

static char tmpdir[] = "/tmp/mg_graph_cmd_XXXXXX";

static void setup(void)
{
    cr_assert_not_null(mkdtemp(tmpdir), "mkdtemp failed");
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) cr_log_warn("could not remove %s", tmpdir);
}

TestSuite(graph_cmd, .init = setup, .fini = teardown, .timeout = 120);

/* "<tmpdir>/<name>" in a static buffer (one at a time per call site). */
static const char *tpath(const char *name, char *buf, size_t n)
{
    snprintf(buf, n, "%s/%s", tmpdir, name);
    return buf;
}

/* Reads a whole file (NUL-terminated, malloc'd); NULL if it cannot. */
static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    for (size_t got; buf && (got = fread(buf + n, 1, cap - n - 1, f)) > 0;) {
        n += got;
        if (cap - n < 2) buf = realloc(buf, cap *= 2);
    }
    fclose(f);
    if (buf) buf[n] = 0;
    if (len) *len = n;
    return buf;
}

/* Runs `mintgrad graph <args...>` with stdout and stderr going to files in
 * tmpdir; returns the exit code. NULL ends args. */
static int run_graph(const char *const *args)
{
    char out[256], err[256];
    const char *argv[32] = {MG_DRIVER, "graph"};
    int n = 2;
    while (*args && n < 31) argv[n++] = *args++;
    argv[n] = NULL;
    tpath("stdout.txt", out, sizeof out);
    tpath("stderr.txt", err, sizeof err);
    pid_t pid = fork();
    cr_assert_neq(pid, -1, "fork failed");
    if (pid == 0) {
        int fo = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644), fe = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fo < 0 || fe < 0 || dup2(fo, 1) < 0 || dup2(fe, 2) < 0) _exit(126);
        setenv("OMP_NUM_THREADS", "1", 1);
        execv(MG_DRIVER, (char *const *)argv);
        _exit(127);
    }
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st), "mintgrad graph did not exit normally");
    cr_assert_neq(WEXITSTATUS(st), 127, "cannot run %s", MG_DRIVER);
    return WEXITSTATUS(st);
}

/* The captured stderr or stdout of the last run (malloc'd). */
static char *last_output(const char *which)
{
    char p[256];
    char *s = slurp(tpath(which, p, sizeof p), NULL);
    cr_assert_not_null(s, "no captured %s", which);
    return s;
}

/* Runs one view into `name` (in tmpdir) with an optional extra flag and
 * asserts success; returns the file's bytes (malloc'd). */
static char *draw(const char *view, const char *extra, const char *name, size_t *len)
{
    char out[256];
    tpath(name, out, sizeof out);
    const char *args[] = {TINY, "--view", view, "-o", out, extra, NULL};
    int rc = run_graph(args);
    char *err = last_output("stderr.txt");
    cr_assert_eq(rc, XC_OK, "graph --view %s -o %s: exit %d: %s", view, name, rc, err);
    free(err);
    char *data = slurp(out, len);
    cr_assert_not_null(data, "%s was not written", name);
    return data;
}

/* Parses DOT text back with Graphviz; returns its node count. */
static int dot_nodes(const char *text)
{
    Agraph_t *G = agmemread(text);
    cr_assert_not_null(G, "Graphviz cannot parse the DOT output:\n%.400s", text);
    int n = agnnodes(G);
    agclose(G);
    return n;
}

static const char *const views[] = {"forward", "backward", "inverse"};

Test(graph_cmd, every_view_writes_dot_that_graphviz_parses)
{
    /* what each view must show: the loss, gradient boxes, the latent input */
    static const char *const marks[] = {"(loss)", "grad flow.0.block", "input f32[1, 4, 4, 4]"};
    for (int i = 0; i < 3; i++) {
        char *dot = draw(views[i], NULL, "g.dot", NULL);
        cr_assert(!strncmp(dot, "digraph", 7), "%s: not DOT: %.40s", views[i], dot);
        cr_assert_gt(dot_nodes(dot), 5, "%s view has too few nodes", views[i]);
        cr_assert_not_null(strstr(dot, marks[i]), "%s view lacks '%s'", views[i], marks[i]);
        cr_assert_not_null(strstr(dot, "cluster_"), "%s view (expanded) has no layer clusters", views[i]);
        cr_assert_not_null(strstr(dot, "(mintnet.block)"), "%s view: clusters not labelled with type", views[i]);
        free(dot);
    }
}

Test(graph_cmd, views_have_their_default_titles)
{
    static const char *const titles[] = {"tiny: training graph (forward), batch 1",
                                         "tiny: gradient graph (backward), batch 1",
                                         "tiny: sampling graph (inverse), batch 1"};
    for (int i = 0; i < 3; i++) {
        char *dot = draw(views[i], NULL, "t.dot", NULL);
        Agraph_t *G = agmemread(dot);
        cr_assert_not_null(G);
        const char *label = agget(G, "label");
        cr_assert_str_eq(label ? label : "(none)", titles[i]);
        agclose(G);
        free(dot);
    }
}

Test(graph_cmd, svg_png_and_pdf_are_valid_files)
{
    static const unsigned char png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    for (int i = 0; i < 3; i++) {
        size_t n;
        char *svg = draw(views[i], NULL, "g.svg", &n);
        cr_assert_not_null(strstr(svg, "<svg"), "%s: SVG without <svg", views[i]);
        cr_assert_not_null(strstr(svg, "</svg>"), "%s: SVG not finished", views[i]);
        free(svg);
        unsigned char *png = (unsigned char *)draw(views[i], NULL, "g.png", &n);
        cr_assert_gt(n, 1000, "%s: PNG of %zu bytes", views[i], n);
        cr_assert_eq(memcmp(png, png_sig, 8), 0, "%s: no PNG signature", views[i]);
        free(png);
    }
    size_t n;
    char *pdf = draw("forward", "--collapse", "g.pdf", &n);
    cr_assert(n > 5 && !memcmp(pdf, "%PDF-", 5), "not a PDF");
    free(pdf);
}

Test(graph_cmd, collapse_draws_fewer_nodes)
{
    for (int i = 0; i < 3; i++) {
        char *full = draw(views[i], NULL, "full.dot", NULL);
        char *coll = draw(views[i], "--collapse", "coll.dot", NULL);
        int nf = dot_nodes(full), nc = dot_nodes(coll);
        cr_assert_lt(nc, nf, "%s: collapsed %d nodes, expanded %d", views[i], nc, nf);
        cr_assert_null(strstr(coll, "cluster_"), "%s: collapsed view still has clusters", views[i]);
        free(full);
        free(coll);
    }
    char *coll = draw("forward", "--collapse", "coll.dot", NULL);
    cr_assert_not_null(strstr(coll, "flow.3\\n(mintnet.block)"), "collapsed layer box lacks name and type");
    free(coll);
}

Test(graph_cmd, same_spec_gives_identical_dot)
{
    for (int i = 0; i < 3; i++) {
        size_t na, nb;
        char *a = draw(views[i], NULL, "a.dot", &na);
        char *b = draw(views[i], NULL, "b.dot", &nb);
        cr_assert(na == nb && !memcmp(a, b, na), "%s: two runs differ", views[i]);
        free(a);
        free(b);
    }
}

Test(graph_cmd, dash_writes_the_dot_text_to_stdout)
{
    size_t n;
    char *file = draw("backward", NULL, "b.dot", &n);
    const char *args[] = {TINY, "--view", "backward", "-o", "-", NULL};
    cr_assert_eq(run_graph(args), XC_OK);
    char *out = last_output("stdout.txt");
    cr_assert_str_eq(out, file, "stdout differs from the .dot file");
    free(out);
    free(file);
}

Test(graph_cmd, options_reach_the_picture)
{
    char out[256];
    tpath("o.dot", out, sizeof out);
    const char *args[] = {TINY, "--batch", "3", "--left-to-right", "--attrs", "--title", "say \"hi\" λ", "-o", out,
                          NULL};
    cr_assert_eq(run_graph(args), XC_OK);
    char *dot = slurp(out, NULL);
    cr_assert_not_null(dot);
    cr_assert_not_null(strstr(dot, "f32[3, 1, 8, 8]"), "batch 3 not drawn");
    cr_assert_not_null(strstr(dot, "rankdir=LR"));
    cr_assert_not_null(strstr(dot, "mask="), "--attrs did not list the blocks' attributes");
    Agraph_t *G = agmemread(dot);
    cr_assert_not_null(G);
    cr_assert_str_eq(agget(G, "label"), "say \"hi\" λ");
    agclose(G);
    free(dot);
}

/* Runs args expecting exit code `rc` and a stderr containing `needle`. */
static void expect_failure(const char *const *args, int rc, const char *needle)
{
    int got = run_graph(args);
    char *err = last_output("stderr.txt");
    cr_assert_eq(got, rc, "exit %d, expected %d; stderr: %s", got, rc, err);
    cr_assert_not_null(strstr(err, needle), "stderr lacks '%s': %s", needle, err);
    free(err);
}

Test(graph_cmd, unwritable_output_path_is_a_clear_error)
{
    const char *bad = "/nonexistent-mg-dir/sub/g.svg";
    const char *a1[] = {TINY, "-o", bad, NULL};
    expect_failure(a1, XC_RUNTIME, bad);
    const char *bad_dot = "/nonexistent-mg-dir/g.dot";
    const char *a2[] = {TINY, "--view", "inverse", "-o", bad_dot, NULL};
    expect_failure(a2, XC_RUNTIME, bad_dot);
    char dir[256]; /* a directory is not a file either */
    tpath("adir.png", dir, sizeof dir);
    cr_assert_eq(mkdir(dir, 0755), 0);
    const char *a3[] = {TINY, "-o", dir, NULL};
    expect_failure(a3, XC_RUNTIME, dir);
}

Test(graph_cmd, command_line_errors_are_usage_errors)
{
    char out[256];
    tpath("g.svg", out, sizeof out);
    const char *a1[] = {TINY, "--view", "sideways", "-o", out, NULL};
    expect_failure(a1, XC_USAGE, "unknown view 'sideways'");
    const char *a2[] = {TINY, "-o", "graph.gif", NULL};
    expect_failure(a2, XC_USAGE, "graph.gif");
    const char *a3[] = {TINY, NULL};
    expect_failure(a3, XC_USAGE, "missing output");
    const char *a4[] = {TINY, "--batch", "0", "-o", out, NULL};
    expect_failure(a4, XC_USAGE, "--batch");
    const char *a5[] = {"-o", out, NULL};
    expect_failure(a5, XC_USAGE, "SPEC");
    cr_assert_eq(access(out, F_OK), -1, "a failed command wrote %s", out);
}

Test(graph_cmd, bad_spec_is_an_input_error)
{
    char spec[256], out[256];
    tpath("bad.yaml", spec, sizeof spec);
    tpath("g.dot", out, sizeof out);
    FILE *f = fopen(spec, "w");
    cr_assert_not_null(f);
    fputs("model:\n  input: [1, 8, 8]\n  layers:\n    - no.such.layer: {}\n", f);
    fclose(f);
    const char *a1[] = {spec, "-o", out, NULL};
    expect_failure(a1, XC_INPUT, "bad.yaml:");
    const char *a2[] = {"/nonexistent-mg-dir/missing.yaml", "-o", out, NULL};
    expect_failure(a2, XC_INPUT, "missing.yaml");
}

Test(graph_cmd, help_exits_zero)
{
    const char *args[] = {"--help", NULL};
    cr_assert_eq(run_graph(args), XC_OK);
    char *out = last_output("stdout.txt");
    cr_assert_not_null(strstr(out, "--view"));
    cr_assert_not_null(strstr(out, "--collapse"));
    free(out);
}
