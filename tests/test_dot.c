/* tests/test_dot.c: DOT export and Graphviz rendering (mintgrad/dot.h).
 *
 * Small graphs (a two-layer perceptron with a loss, a two-block "flow" with
 * nested scopes and a two-output plugin op, and a graph whose names need
 * escaping) are exported and compared with golden files in tests/golden/
 * (regenerate them with MG_UPDATE_GOLDEN=1 after a deliberate change, and
 * review the diff). The text is also parsed back with Graphviz's cgraph to
 * check that every node and edge is there and that names survive, and
 * rendered to SVG, PNG and PDF.
 *
 * Ops: built-in ones (linear, relu, mse, normal_logpdf, add, mean). Should
 * one not be registered, the suite registers a shape-only stand-in under the
 * same name, so the exported text is the same either way. "test.flow" is
 * this suite's own namespaced (plugin-style) op with two outputs. */
#include "testutil.h"

#include <cgraph.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- stand-in and test ops (shapes only; forward and backward write zeros) ---- */
static mg_status zero_outputs(mg_node *n)
{
    for (int i = 0; i < mg_node_num_outputs(n); i++) mg_tensor_fill(mg_node_output(n, i), 0);
    return MG_OK;
}

static mg_status zero_grads(mg_node *n)
{
    for (int i = 0; i < mg_node_num_inputs(n); i++)
        if (mg_node_grad_input(n, i)) mg_tensor_fill(mg_node_grad_input(n, i), 0);
    return MG_OK;
}

static mg_status infer_same(mg_node *n)
{
    const mg_tensor *x = mg_node_input(n, 0);
    return mg_node_set_output(n, 0, x->dtype, x->rank, x->shape);
}

static mg_status infer_scalar(mg_node *n)
{
    return mg_node_set_output(n, 0, mg_node_input(n, 0)->dtype, 0, NULL);
}

static mg_status infer_batch(mg_node *n)
{
    const mg_tensor *x = mg_node_input(n, 0);
    return mg_node_set_output(n, 0, x->dtype, 1, x->shape);
}

/* x[N, I], w[O, I] -> [N, O] */
static mg_status infer_linear(mg_node *n)
{
    const mg_tensor *x = mg_node_input(n, 0), *w = mg_node_input(n, 1);
    int64_t shape[2] = {x->shape[0], w->shape[0]};
    return mg_node_set_output(n, 0, x->dtype, 2, shape);
}

/* test.flow: x[N, C], w[C] -> y[N, C], logdet[N] */
static mg_status infer_flow(mg_node *n)
{
    const mg_tensor *x = mg_node_input(n, 0);
    mg_status s = mg_node_set_output(n, 0, x->dtype, x->rank, x->shape);
    return s != MG_OK ? s : mg_node_set_output(n, 1, x->dtype, 1, x->shape);
}

#define TEST_OP(nm, lo, hi, fn) \
    {sizeof(mg_op_def), MG_ABI_VERSION, nm, "test stand-in", lo, hi, 1, NULL, 0, 0, fn, NULL, zero_outputs, zero_grads, NULL}

static const mg_op_def stand_ins[] = {
    TEST_OP("linear", 2, 3, infer_linear),  TEST_OP("relu", 1, 1, infer_same),
    TEST_OP("mse", 2, 2, infer_scalar),     TEST_OP("normal_logpdf", 1, 1, infer_batch),
    TEST_OP("add", 2, 2, infer_same),       TEST_OP("mean", 1, 1, infer_scalar),
};

static const char *const flow_attrs[] = {"scale", "mode", NULL};
static const mg_op_def flow_op = {sizeof(mg_op_def), MG_ABI_VERSION, "test.flow", "two outputs", 2, 2, 2,
                                  flow_attrs, 0, 0, infer_flow, NULL, zero_outputs, zero_grads, NULL};

/* A context with every op the graphs below use. */
static mg_ctx *dot_ctx(void)
{
    mg_ctx *ctx = tu_ctx();
    mg_registry *r = mg_ctx_registry(ctx);
    for (size_t i = 0; i < sizeof stand_ins / sizeof *stand_ins; i++)
        if (!mg_registry_find_op(r, stand_ins[i].name))
            cr_assert_eq(mg_registry_add_op(r, &stand_ins[i]), MG_OK, "%s", mg_ctx_error(ctx));
    cr_assert_eq(mg_registry_add_op(r, &flow_op), MG_OK, "%s", mg_ctx_error(ctx));
    return ctx;
}

/* ---- graph builders ------------------------------------------------------------ */
typedef struct fixture {
    mg_ctx *ctx;
    mg_params *ps;
    mg_graph *g;
    mg_value loss;
    int n_side;       /* node index of a branch the loss does not need, or -1 */
} fixture;

static mg_param *param(fixture *f, const char *name, int rank, const int64_t *shape)
{
    mg_param *p = NULL;
    cr_assert_eq(mg_params_add(f->ps, name, MG_F32, rank, shape, &p), MG_OK, "%s", mg_ctx_error(f->ctx));
    return p;
}

static mg_value node1(fixture *f, const char *op, const char *name, const mg_value *in, int n)
{
    mg_value out = MG_VALUE_NONE;
    mg_status s = mg_graph_node(f->g, op, name, in, n, NULL, &out, 1, NULL);
    cr_assert_eq(s, MG_OK, "node %s: %s", name, mg_ctx_error(f->ctx));
    return out;
}

static void fixture_init(fixture *f)
{
    f->ctx = dot_ctx();
    cr_assert_eq(mg_params_new(&f->ps), MG_OK);
    cr_assert_eq(mg_graph_new(f->ctx, &f->g), MG_OK);
    f->n_side = -1;
}

static void fixture_free(fixture *f)
{
    mg_graph_free(f->g);
    mg_params_free(f->ps);
    mg_ctx_free(f->ctx);
}

/* x[4, 3] -> fc1 (linear 5) -> act (relu) -> fc2 (linear 2) -> loss = mse(., y),
 * each linear layer in its own scope, plus a side branch "side" = relu(x)
 * that the loss does not need, and a frozen parameter. */
static void build_mlp(fixture *f)
{
    fixture_init(f);
    int64_t sx[2] = {4, 3}, sy[2] = {4, 2}, w1[2] = {5, 3}, b1[1] = {5}, w2[2] = {2, 5}, b2[1] = {2};
    mg_value x = mg_graph_input(f->g, "x", MG_F32, 2, sx);
    mg_value y = mg_graph_input(f->g, "y", MG_F32, 2, sy);
    cr_assert_eq(mg_graph_push_scope(f->g, "fc1", "linear"), MG_OK);
    mg_value in1[3] = {x, mg_graph_param(f->g, param(f, "fc1.w", 2, w1)), mg_graph_param(f->g, param(f, "fc1.b", 1, b1))};
    mg_value h = node1(f, "linear", "dense", in1, 3);
    mg_graph_pop_scope(f->g);
    mg_value a = node1(f, "relu", "act", &h, 1);
    cr_assert_eq(mg_graph_push_scope(f->g, "fc2", "linear"), MG_OK);
    mg_param *frozen = param(f, "fc2.b", 1, b2);
    frozen->requires_grad = 0;
    mg_value in2[3] = {a, mg_graph_param(f->g, param(f, "fc2.w", 2, w2)), mg_graph_param(f->g, frozen)};
    mg_value o = node1(f, "linear", "dense", in2, 3);
    mg_graph_pop_scope(f->g);
    mg_value pair[2] = {o, y};
    f->loss = node1(f, "mse", "loss", pair, 2);
    f->n_side = mg_graph_num_nodes(f->g);
    node1(f, "relu", "side", &x, 1);
    cr_assert_eq(mg_graph_status(f->g), MG_OK, "%s", mg_ctx_error(f->ctx));
}

/* One flow block: scope "flow.<i>" (mintnet.block) holding a nested scope
 * "coupling" (test.coupling) with the two-output op. Returns y; *logdet gets
 * the block's log-determinant. */
static mg_value flow_block(fixture *f, int i, mg_value x, mg_value *logdet)
{
    char name[32];
    int64_t sw[1] = {3};
    snprintf(name, sizeof name, "flow.%d", i);
    cr_assert_eq(mg_graph_push_scope(f->g, name, "mintnet.block"), MG_OK);
    mg_value h = node1(f, "relu", "pre", &x, 1);
    cr_assert_eq(mg_graph_push_scope(f->g, "coupling", "test.coupling"), MG_OK);
    snprintf(name, sizeof name, "flow.%d.coupling.w", i);
    mg_value in[2] = {h, mg_graph_param(f->g, param(f, name, 1, sw))};
    mg_value out[2] = {MG_VALUE_NONE, MG_VALUE_NONE};
    int n_out = 0;
    cr_assert_eq(mg_graph_node(f->g, "test.flow", "couple", in, 2, NULL, out, 2, &n_out), MG_OK, "%s",
                 mg_ctx_error(f->ctx));
    cr_assert_eq(n_out, 2);
    mg_graph_pop_scope(f->g);
    mg_graph_pop_scope(f->g);
    *logdet = out[1];
    return out[0];
}

/* z[4, 3] through two flow blocks; loss = mean(normal_logpdf(y) + logdets). */
static void build_flow(fixture *f)
{
    fixture_init(f);
    int64_t sx[2] = {4, 3};
    mg_value x = mg_graph_input(f->g, "x", MG_F32, 2, sx), ld0, ld1;
    mg_value y = flow_block(f, 0, x, &ld0);
    y = flow_block(f, 1, y, &ld1);
    mg_value lp = node1(f, "normal_logpdf", "prior", &y, 1);
    mg_value s0[2] = {lp, ld0};
    mg_value t = node1(f, "add", "plus_ld0", s0, 2);
    mg_value s1[2] = {t, ld1};
    t = node1(f, "add", "plus_ld1", s1, 2);
    f->loss = node1(f, "mean", "nll", &t, 1);
    cr_assert_eq(mg_graph_status(f->g), MG_OK, "%s", mg_ctx_error(f->ctx));
}

static const char *const odd_names[] = {
    "in \"quoted\" \\back\\slash",   /* input */
    "w\xc3\xa9ight \xe2\x9c\x93",      /* parameter: "wéight ✓" */
    "two\nlines \\n {x} <b> |y|",     /* node */
};

/* Names that need escaping: quotes, backslashes, a newline, record and HTML
 * characters, UTF-8; a scope and a title with quotes. */
static void build_names(fixture *f)
{
    fixture_init(f);
    int64_t s[2] = {2, 3};
    mg_value x = mg_graph_input(f->g, odd_names[0], MG_F32, 2, s);
    cr_assert_eq(mg_graph_push_scope(f->g, "blk \"1\"", "my.type\\x"), MG_OK);
    mg_value p = mg_graph_param(f->g, param(f, odd_names[1], 2, s));
    p = node1(f, "relu", "r", &p, 1);
    mg_graph_pop_scope(f->g);
    mg_value in[2] = {x, p};
    mg_value a = node1(f, "add", odd_names[2], in, 2);
    f->loss = node1(f, "mean", "\xce\xbb loss", &a, 1);  /* "λ loss" */
}

/* ---- helpers --------------------------------------------------------------------- */
static char *dot_of(fixture *f, const mg_dot_opts *o)
{
    char *s = NULL;
    size_t n = 0;
    cr_assert_eq(mg_dot_string(f->g, o, &s, &n), MG_OK, "%s", mg_ctx_error(f->ctx));
    cr_assert_not_null(s);
    cr_assert_eq(strlen(s), n);
    return s;
}

static char *read_all(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    char *buf = NULL;
    size_t n = 0, cap = 0, got;
    do {
        if (n + 4096 + 1 > cap) buf = realloc(buf, cap = 2 * cap + 4096 + 1);
        got = fread(buf + n, 1, 4096, fp);
        n += got;
    } while (got > 0);
    fclose(fp);
    buf[n] = '\0';
    if (len) *len = n;
    return buf;
}

/* Compares text with tests/golden/<name>; MG_UPDATE_GOLDEN=1 rewrites it. */
static void check_golden(const char *name, const char *text)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", MG_GOLDEN_DIR, name);
    if (getenv("MG_UPDATE_GOLDEN")) {
        FILE *fp = fopen(path, "wb");
        cr_assert_not_null(fp, "cannot write %s", path);
        fputs(text, fp);
        fclose(fp);
        return;
    }
    char *want = read_all(path, NULL);
    cr_assert_not_null(want, "missing golden file %s (run with MG_UPDATE_GOLDEN=1)", path);
    const char *a = text, *b = want;
    int line = 1;
    while (*a && *a == *b) line += *a++ == '\n', b++;
    cr_assert(*a == *b, "%s differs from the export at line %d:\n got: %.80s\nwant: %.80s", path, line, a, b);
    free(want);
}

static Agraph_t *parse(const char *text)
{
    Agraph_t *G = agmemread(text);
    cr_assert_not_null(G, "Graphviz could not parse:\n%s", text);
    return G;
}

static Agnode_t *find_node(Agraph_t *G, const char *fmt, int i)
{
    char id[32];
    snprintf(id, sizeof id, fmt, i);
    return agnode(G, id, 0);
}

/* The text a DOT label shows: "\\" -> "\", "\n" / "\l" / "\r" -> newline. */
static void decode_label(const char *in, char *out, size_t cap)
{
    size_t n = 0;
    for (; *in && n + 1 < cap; in++) {
        if (in[0] == '\\' && in[1]) {
            in++;
            out[n++] = (*in == 'n' || *in == 'l' || *in == 'r') ? '\n' : *in;
        } else {
            out[n++] = *in;
        }
    }
    out[n] = '\0';
}

/* 1 if the decoded label of node `id` begins with `name` and a line break. */
static int label_starts_with(Agraph_t *G, const char *id, const char *name)
{
    Agnode_t *n = agnode(G, (char *)id, 0);
    if (!n) return 0;
    char text[1024];
    decode_label(agget(n, "label"), text, sizeof text);
    size_t k = strlen(name);
    return strncmp(text, name, k) == 0 && text[k] == '\n';
}

static char *temp_dir(void)
{
    static char dir[64];
    snprintf(dir, sizeof dir, "/tmp/mg_test_dot_XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    return dir;
}

/* ---- golden files --------------------------------------------------------------------- */
Test(dot, golden_mlp_forward)
{
    fixture f;
    build_mlp(&f);
    mg_dot_opts o = mg_dot_defaults();
    o.title = "mlp";
    o.losses = &f.loss;
    o.n_losses = 1;
    char *s = dot_of(&f, &o);
    check_golden("mlp_forward.dot", s);
    mg_free(s);
    fixture_free(&f);
}

Test(dot, golden_mlp_backward)
{
    fixture f;
    build_mlp(&f);
    mg_dot_opts o = mg_dot_defaults();
    o.view = MG_DOT_BACKWARD;
    o.title = "mlp backward";
    o.losses = &f.loss;
    o.n_losses = 1;
    char *s = dot_of(&f, &o);
    check_golden("mlp_backward.dot", s);
    /* the side branch, the frozen bias and the inputs take no gradient */
    cr_assert_null(strstr(s, "grad side"));
    cr_assert_null(strstr(s, "grad fc2.b"));
    cr_assert_not_null(strstr(s, "grad fc2.w"));
    cr_assert_not_null(strstr(s, "grad fc1.b"));
    cr_assert_null(strstr(s, "\"grad x"));
    mg_free(s);
    fixture_free(&f);
}

Test(dot, golden_flow_expanded_and_collapsed)
{
    fixture f;
    build_flow(&f);
    mg_dot_opts o = mg_dot_defaults();
    o.title = "flow";
    char *s = dot_of(&f, &o);
    check_golden("flow_expanded.dot", s);
    mg_free(s);
    o.collapse = 1;
    s = dot_of(&f, &o);
    check_golden("flow_collapsed.dot", s);
    mg_free(s);
    fixture_free(&f);
}

Test(dot, golden_names)
{
    fixture f;
    build_names(&f);
    mg_dot_opts o = mg_dot_defaults();
    o.title = "odd \"names\" \xe2\x9c\x93";
    char *s = dot_of(&f, &o);
    check_golden("names.dot", s);
    mg_free(s);
    fixture_free(&f);
}

/* ---- structure ---------------------------------------------------------------------------- */
/* Every node, leaf value and input edge of the graph is in the forward view. */
static void check_complete(fixture *f)
{
    char *s = dot_of(f, NULL);
    Agraph_t *G = parse(s);
    int n_edges = 0;
    for (int k = 0; k < mg_graph_num_nodes(f->g); k++) {
        Agnode_t *dst = find_node(G, "n%d", k);
        cr_assert_not_null(dst, "node %d (%s) missing", k, mg_graph_node_name(f->g, k));
        cr_assert(label_starts_with(G, agnameof(dst), mg_graph_node_name(f->g, k)));
        for (int i = 0; i < mg_graph_node_num_inputs(f->g, k); i++, n_edges++) {
            mg_value v = mg_graph_node_input(f->g, k, i);
            int j = mg_graph_value_node(f->g, v);
            Agnode_t *src = j >= 0 ? find_node(G, "n%d", j) : find_node(G, "v%d", v.id);
            cr_assert_not_null(src);
            cr_assert_not_null(agedge(G, src, dst, NULL, 0), "edge into %s input %d missing",
                               mg_graph_node_name(f->g, k), i);
        }
    }
    for (int v = 0; v < mg_graph_num_values(f->g); v++)
        if (mg_graph_value_kind(f->g, (mg_value){v}) != MG_VALUE_NODE)
            cr_assert_not_null(find_node(G, "v%d", v), "value %d missing", v);
    cr_assert_eq(agnedges(G), n_edges);
    agclose(G);
    mg_free(s);
}

Test(dot, every_node_and_edge_appears)
{
    fixture f;
    build_mlp(&f);
    check_complete(&f);
    fixture_free(&f);
    build_flow(&f);
    check_complete(&f);
    fixture_free(&f);
}

Test(dot, multi_output_edges_name_the_output)
{
    fixture f;
    build_flow(&f);
    char *s = dot_of(&f, NULL);
    /* logdet (output 1, f32[4]) feeds the adds; y (output 0) the next block */
    cr_assert_not_null(strstr(s, "[label=\"1: f32[4]\"]"), "%s", s);
    cr_assert_not_null(strstr(s, "[label=\"0: f32[4, 3]\"]"), "%s", s);
    cr_assert_not_null(strstr(s, "\\n-> 0: f32[4, 3]\\n-> 1: f32[4]"), "%s", s);
    mg_free(s);
    fixture_free(&f);
}

Test(dot, output_is_stable)
{
    fixture f1, f2;
    build_flow(&f1);
    build_flow(&f2);
    mg_dot_opts views[3] = {mg_dot_defaults(), mg_dot_defaults(), mg_dot_defaults()};
    views[1].view = MG_DOT_BACKWARD;
    views[2].collapse = 1;
    for (int i = 0; i < 3; i++) {
        char *a = dot_of(&f1, &views[i]), *b = dot_of(&f1, &views[i]), *c = dot_of(&f2, &views[i]);
        cr_assert_str_eq(a, b);
        cr_assert_str_eq(a, c);
        cr_assert_null(strstr(a, "0x"), "a pointer leaked into the output");
        mg_free(a);
        mg_free(b);
        mg_free(c);
    }
    fixture_free(&f1);
    fixture_free(&f2);
}

Test(dot, write_to_file_matches_string)
{
    fixture f;
    build_mlp(&f);
    char *s = dot_of(&f, NULL);
    char *dir = temp_dir(), path[128];
    snprintf(path, sizeof path, "%s/g.dot", dir);
    FILE *fp = fopen(path, "wb");
    cr_assert_not_null(fp);
    cr_assert_eq(mg_dot_write(f.g, NULL, fp), MG_OK);
    fclose(fp);
    char *back = read_all(path, NULL);
    cr_assert_str_eq(back, s);
    free(back);
    cr_assert_eq(mg_dot_save(f.g, NULL, path), MG_OK, "%s", mg_ctx_error(f.ctx));
    back = read_all(path, NULL);
    cr_assert_str_eq(back, s);
    free(back);
    unlink(path);
    rmdir(dir);
    mg_free(s);
    fixture_free(&f);
}

/* ---- scopes -------------------------------------------------------------------------------------- */
Test(dot, expanded_scopes_are_nested_clusters)
{
    fixture f;
    build_flow(&f);
    char *s = dot_of(&f, NULL);
    Agraph_t *G = parse(s);
    Agraph_t *c0 = agsubg(G, "cluster_s0", 0);
    cr_assert_not_null(c0, "%s", s);
    cr_assert_str_eq(agget(c0, "label"), "flow.0 (mintnet.block)");
    Agraph_t *inner = agsubg(c0, "cluster_s1", 0);
    cr_assert_not_null(inner, "coupling scope not nested in flow.0:\n%s", s);
    cr_assert_str_eq(agget(inner, "label"), "flow.0.coupling (test.coupling)");
    /* the coupling node sits in the inner cluster, the relu in the outer */
    cr_assert_not_null(agnode(inner, "n1", 0));
    cr_assert_null(agnode(inner, "n0", 0));
    cr_assert_not_null(agnode(c0, "n0", 0));
    cr_assert_null(agsubg(G, "cluster_s1", 0), "inner cluster also at top level");
    agclose(G);
    mg_free(s);
    fixture_free(&f);
}

Test(dot, collapsed_scopes_are_single_nodes)
{
    fixture f;
    build_flow(&f);
    mg_dot_opts o = mg_dot_defaults();
    o.collapse = 1;
    char *s = dot_of(&f, &o);
    cr_assert_null(strstr(s, "subgraph"), "%s", s);
    Agraph_t *G = parse(s);
    for (int k = 0; k < 4; k++) cr_assert_null(find_node(G, "n%d", k), "scoped node %d drawn", k);
    Agnode_t *b0 = agnode(G, "s0", 0), *b1 = find_node(G, "s%d", 2), *prior = find_node(G, "n%d", 4);
    cr_assert_not_null(b0, "%s", s);
    cr_assert_not_null(b1, "%s", s);
    cr_assert_not_null(prior);
    char text[512];
    decode_label(agget(b0, "label"), text, sizeof text);
    cr_assert_str_eq(text, "flow.0\n(mintnet.block)\n2 nodes\n1 param, 3 elements");
    /* x -> block 0 -> block 1 -> prior, logdet of block 0 -> plus_ld0 */
    cr_assert_not_null(agedge(G, agnode(G, "v0", 0), b0, NULL, 0));
    cr_assert_not_null(agedge(G, b0, b1, NULL, 0));
    cr_assert_not_null(agedge(G, b1, prior, NULL, 0));
    cr_assert_not_null(agedge(G, b0, find_node(G, "n%d", 5), NULL, 0));
    cr_assert_null(agedge(G, b0, b0, NULL, 0));
    agclose(G);
    mg_free(s);
    fixture_free(&f);
}

Test(dot, backward_view_collapses_too)
{
    fixture f;
    build_flow(&f);
    mg_dot_opts o = mg_dot_defaults();
    o.view = MG_DOT_BACKWARD;
    o.collapse = 1;
    o.losses = &f.loss;
    o.n_losses = 1;
    char *s = dot_of(&f, &o);
    Agraph_t *G = parse(s);
    Agnode_t *b0 = agnode(G, "s0", 0), *b1 = find_node(G, "s%d", 2), *ld0 = find_node(G, "n%d", 5);
    cr_assert(b0 && b1 && ld0, "%s", s);
    char text[512];
    decode_label(agget(b0, "label"), text, sizeof text);
    /* flow.0.pre (relu of the input x) takes no gradient: one node */
    cr_assert_str_eq(text, "grad flow.0\n(mintnet.block)\n1 node\n1 param, 3 elements");
    /* gradients flow from plus_ld0 into block 0's logdet and from block 1 into block 0 */
    cr_assert_not_null(agedge(G, ld0, b0, NULL, 0), "%s", s);
    cr_assert_not_null(agedge(G, b1, b0, NULL, 0), "%s", s);
    cr_assert_null(agnode(G, "v0", 0), "the input takes no gradient");
    agclose(G);
    mg_free(s);
    fixture_free(&f);
}

Test(dot, attributes_and_direction_options)
{
    fixture f;
    fixture_init(&f);
    int64_t sx[2] = {2, 3}, sw[1] = {3};
    mg_value in[2] = {mg_graph_input(f.g, "x", MG_F32, 2, sx), mg_graph_param(f.g, param(&f, "w", 1, sw))};
    mg_attrs *a = mg_attrs_new();
    cr_assert_eq(mg_attrs_set_float(a, "scale", 0.5), MG_OK);
    cr_assert_eq(mg_attrs_set_str(a, "mode", "say \"hi\""), MG_OK);
    mg_value out[2];
    cr_assert_eq(mg_graph_node(f.g, "test.flow", "f", in, 2, a, out, 2, NULL), MG_OK, "%s", mg_ctx_error(f.ctx));
    mg_attrs_free(a);
    mg_value c = mg_graph_scalar(f.g, 2.0);
    cr_assert(mg_value_ok(c), "%s", mg_ctx_error(f.ctx));
    mg_dot_opts o = mg_dot_defaults();
    char *plain = dot_of(&f, &o);
    cr_assert_not_null(strstr(plain, "\\nconst f32[]\", shape=note"), "%s", plain);
    cr_assert_null(strstr(plain, "scale"));
    cr_assert_not_null(strstr(plain, "rankdir=TB"));
    o.show_attrs = 1;
    o.left_to_right = 1;
    char *s = dot_of(&f, &o);
    cr_assert_not_null(strstr(s, "rankdir=LR"));
    Agraph_t *G = parse(s);
    char text[512];
    decode_label(agget(agnode(G, "n0", 0), "label"), text, sizeof text);
    cr_assert_not_null(strstr(text, "scale=0.5"), "%s", text);
    cr_assert_not_null(strstr(text, "say \"hi\""), "%s", text);
    agclose(G);
    mg_free(s);
    mg_free(plain);
    fixture_free(&f);
}

/* ---- names ---------------------------------------------------------------------------------------------- */
Test(dot, odd_names_survive_a_round_trip)
{
    fixture f;
    build_names(&f);
    mg_dot_opts o = mg_dot_defaults();
    o.title = "t \"q\" \\ \xe2\x9c\x93";
    char *s = dot_of(&f, &o);
    Agraph_t *G = parse(s);
    cr_assert(label_starts_with(G, "v0", odd_names[0]), "%s", s);
    cr_assert(label_starts_with(G, "v1", odd_names[1]), "%s", s);
    cr_assert(label_starts_with(G, "n1", odd_names[2]), "%s", s);
    cr_assert(label_starts_with(G, "n2", "\xce\xbb loss"), "%s", s);
    char text[256];
    decode_label(agget(G, "label"), text, sizeof text);
    cr_assert_str_eq(text, o.title);
    Agraph_t *c = agsubg(G, "cluster_s0", 0);
    cr_assert_not_null(c);
    decode_label(agget(c, "label"), text, sizeof text);
    cr_assert_str_eq(text, "blk \"1\" (my.type\\x)");
    cr_assert_not_null(agnode(c, "v1", 0), "parameter not in its scope's cluster");
    agclose(G);
    mg_free(s);
    fixture_free(&f);
}

Test(dot, control_bytes_and_bad_utf8_are_replaced)
{
    fixture f;
    fixture_init(&f);
    int64_t s1[1] = {2};
    mg_graph_input(f.g, "a\x01" "b\xff" "c\xc3(d\te", MG_F32, 1, s1);
    char *s = dot_of(&f, NULL);
    cr_assert_not_null(strstr(s, "v0 [label=\"a?b?c?(d e\\n"), "%s", s);
    Agraph_t *G = parse(s);
    agclose(G);
    mg_free(s);
    fixture_free(&f);
}

/* ---- compiled graphs -------------------------------------------------------------------------------------- */
static mg_exec *compile_training(fixture *f)
{
    mg_compile_opts co = {.struct_size = sizeof co, .training = 1, .losses = &f->loss, .n_losses = 1};
    mg_exec *e = NULL;
    cr_assert_eq(mg_graph_compile(f->g, &co, &e), MG_OK, "%s", mg_ctx_error(f->ctx));
    return e;
}

Test(dot, exec_greys_or_hides_pruned_nodes)
{
    fixture f;
    build_mlp(&f);
    mg_exec *e = compile_training(&f);
    cr_assert_not(mg_exec_node_runs(e, f.n_side), "the side branch should be pruned");
    mg_dot_opts o = mg_dot_defaults();
    o.exec = e;
    char *s = dot_of(&f, &o);
    Agraph_t *G = parse(s);
    Agnode_t *side = find_node(G, "n%d", f.n_side);
    cr_assert_not_null(side);
    cr_assert_not_null(strstr(agget(side, "style"), "dashed"));
    cr_assert_not_null(strstr(s, "(pruned)"));
    /* the loss comes from the exec's seeds */
    cr_assert_not_null(strstr(s, "(loss)"), "%s", s);
    agclose(G);
    mg_free(s);
    o.pruned = MG_DOT_PRUNED_HIDE;
    s = dot_of(&f, &o);
    G = parse(s);
    cr_assert_null(find_node(G, "n%d", f.n_side));
    cr_assert_null(strstr(s, "(pruned)"));
    for (int k = 0; k < mg_graph_num_nodes(f.g); k++)
        if (k != f.n_side) cr_assert_not_null(find_node(G, "n%d", k));
    agclose(G);
    mg_free(s);
    mg_exec_free(e);
    fixture_free(&f);
}

Test(dot, backward_view_follows_the_exec)
{
    fixture f;
    build_mlp(&f);
    mg_exec *e = compile_training(&f);
    mg_dot_opts o = mg_dot_defaults();
    o.view = MG_DOT_BACKWARD;
    o.exec = e;
    char *with = dot_of(&f, &o);
    Agraph_t *G = parse(with);
    int drawn = 0;
    for (int k = 0; k < mg_graph_num_nodes(f.g); k++) {
        int runs = mg_exec_node_backward_runs(e, k);
        cr_assert_eq(find_node(G, "n%d", k) != NULL, runs, "node %d: backward runs %d", k, runs);
        drawn += runs;
    }
    cr_assert_eq(drawn, mg_exec_num_backward_nodes(e));
    agclose(G);
    /* without the exec, the same nodes by the export's own analysis */
    o.exec = NULL;
    o.losses = &f.loss;
    o.n_losses = 1;
    char *without = dot_of(&f, &o);
    cr_assert_str_eq(with, without);
    mg_free(with);
    mg_free(without);
    mg_exec_free(e);
    fixture_free(&f);
}

Test(dot, bad_options_are_errors)
{
    fixture f, other;
    build_mlp(&f);
    build_mlp(&other);
    mg_exec *e = compile_training(&other);
    mg_dot_opts o = mg_dot_defaults();
    o.exec = e;
    char *s = (char *)1;
    cr_assert_eq(mg_dot_string(f.g, &o, &s, NULL), MG_ERR_ARG);
    cr_assert_null(s);
    cr_assert_not_null(strstr(mg_ctx_error(f.ctx), "another graph"));
    o = mg_dot_defaults();
    mg_value bad = {999};
    o.losses = &bad;
    o.n_losses = 1;
    cr_assert_eq(mg_dot_string(f.g, &o, &s, NULL), MG_ERR_ARG);
    o = mg_dot_defaults();
    o.struct_size = 0;
    cr_assert_eq(mg_dot_string(f.g, &o, &s, NULL), MG_ERR_ARG);
    cr_assert_eq(mg_dot_write(f.g, NULL, NULL), MG_ERR_ARG);
    mg_exec_free(e);
    fixture_free(&other);
    fixture_free(&f);
}

/* ---- rendering ------------------------------------------------------------------------------------------------ */
static void render_and_check(fixture *f, const char *dir, const char *ext, const char *magic, size_t at_most)
{
    char path[160];
    snprintf(path, sizeof path, "%s/graph.%s", dir, ext);
    mg_dot_opts o = mg_dot_defaults();
    o.title = "render \xe2\x9c\x93";
    cr_assert_eq(mg_dot_save(f->g, &o, path), MG_OK, "%s: %s", ext, mg_ctx_error(f->ctx));
    size_t n = 0;
    char *data = read_all(path, &n);
    cr_assert_not_null(data);
    cr_assert_gt(n, 100, "%s is only %zu bytes", path, n);
    size_t len = strlen(magic);
    int found = 0;
    for (size_t i = 0; i + len <= n && i <= at_most; i++) found |= memcmp(data + i, magic, len) == 0;
    cr_assert(found, "%s: no %s signature", path, ext);
    free(data);
    unlink(path);
}

Test(dot, renders_svg_png_pdf)
{
    fixture f;
    build_flow(&f);
    char *dir = temp_dir();
    render_and_check(&f, dir, "svg", "<svg", 4096);
    render_and_check(&f, dir, "png", "\x89PNG\r\n\x1a\n", 0);
    render_and_check(&f, dir, "pdf", "%PDF-", 0);
    render_and_check(&f, dir, "SVG", "<svg", 4096);
    rmdir(dir);
    fixture_free(&f);
}

Test(dot, unwritable_path_is_an_io_error)
{
    fixture f;
    build_mlp(&f);
    const char *path = "/nonexistent-mintgrad-dir/graph.svg";
    cr_assert_eq(mg_dot_render(f.g, NULL, "svg", path), MG_ERR_IO);
    cr_assert_not_null(strstr(mg_ctx_error(f.ctx), path), "%s", mg_ctx_error(f.ctx));
    cr_assert_not_null(strstr(mg_ctx_error(f.ctx), "No such file"), "%s", mg_ctx_error(f.ctx));
    cr_assert_eq(mg_dot_render(f.g, NULL, "dot", "/nonexistent-mintgrad-dir/g.dot"), MG_ERR_IO);
    cr_assert_eq(mg_dot_save(f.g, NULL, "/nonexistent-mintgrad-dir/g.png"), MG_ERR_IO);
    fixture_free(&f);
}

Test(dot, unknown_formats_are_errors)
{
    fixture f;
    build_mlp(&f);
    cr_assert_eq(mg_dot_render(f.g, NULL, "gif", "/tmp/never.gif"), MG_ERR_ARG);
    cr_assert_not_null(strstr(mg_ctx_error(f.ctx), "gif"));
    cr_assert_eq(mg_dot_save(f.g, NULL, "/tmp/never.jpeg"), MG_ERR_ARG);
    cr_assert_not_null(strstr(mg_ctx_error(f.ctx), "/tmp/never.jpeg"));
    cr_assert_eq(access("/tmp/never.jpeg", F_OK), -1);
    fixture_free(&f);
}

Test(dot, format_from_path)
{
    static const char *const cases[][2] = {
        {"g.dot", "dot"}, {"out/g.svg", "svg"}, {"G.PNG", "png"}, {"a.b/c.pdf", "pdf"},
        {"g.gv", NULL},   {"g", NULL},          {"dir.svg/g", NULL}, {".png.txt", NULL},
    };
    mg_ctx *ctx = tu_ctx();
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const char *fmt = "unset";
        mg_status s = mg_dot_format_from_path(ctx, cases[i][0], &fmt);
        if (cases[i][1]) {
            cr_assert_eq(s, MG_OK, "%s", cases[i][0]);
            cr_assert_str_eq(fmt, cases[i][1]);
        } else {
            cr_assert_eq(s, MG_ERR_ARG, "%s", cases[i][0]);
            cr_assert_null(fmt);
            cr_assert_not_null(strstr(mg_ctx_error(ctx), cases[i][0]));
        }
    }
    cr_assert_eq(mg_dot_format_from_path(NULL, "x.bmp", NULL), MG_ERR_ARG);
    mg_ctx_free(ctx);
}
