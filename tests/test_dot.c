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
#include <stddef.h>
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
    "b<&> \"q\" \\N\\\\ &amp;\nz",   /* parameter, in an HTML-like table */
};

/* Names that need escaping: quotes, backslashes, a newline, record and HTML
 * characters, UTF-8, a Graphviz escape (\N) and an entity; a scope and a
 * title with quotes. The scope's two parameters are a table. */
static void build_names(fixture *f)
{
    fixture_init(f);
    int64_t s[2] = {2, 3};
    mg_value x = mg_graph_input(f->g, odd_names[0], MG_F32, 2, s);
    cr_assert_eq(mg_graph_push_scope(f->g, "blk \"1\"", "my.type\\x"), MG_OK);
    mg_value pq[2] = {mg_graph_param(f->g, param(f, odd_names[1], 2, s)),
                      mg_graph_param(f->g, param(f, odd_names[3], 2, s))};
    mg_value p = node1(f, "add", "r", pq, 2);
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

/* The text a DOT label shows: "\\" -> "\", "\n" / "\l" / "\r" -> newline,
 * "&amp;" -> "&". */
static void decode_label(const char *in, char *out, size_t cap)
{
    size_t n = 0;
    for (; *in && n + 1 < cap; in++) {
        if (!strncmp(in, "&amp;", 5)) {
            out[n++] = '&';
            in += 4;
        } else if (in[0] == '\\' && in[1]) {
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

/* The text HTML-like markup shows: tags dropped, <BR/> as a newline, the
 * entities decoded, a doubled backslash as one (Graphviz reads it so). */
static void decode_html(const char *in, size_t n, char *out, size_t cap)
{
    static const char *const ents[][2] = {{"&amp;", "&"}, {"&lt;", "<"}, {"&gt;", ">"}, {"&quot;", "\""}};
    size_t k = 0, i = 0;
    while (i < n && k + 1 < cap) {
        int ent = -1;
        for (int e = 0; e < 4 && ent < 0; e++)
            if (!strncmp(in + i, ents[e][0], strlen(ents[e][0]))) ent = e;
        if (in[i] == '<') {
            if (!strncmp(in + i, "<BR", 3)) out[k++] = '\n';
            const char *end = memchr(in + i, '>', n - i);
            i = end ? (size_t)(end - in) + 1 : n;
        } else if (ent >= 0) {
            out[k++] = ents[ent][1][0];
            i += strlen(ents[ent][0]);
        } else {
            i += in[i] == '\\' && i + 1 < n && in[i + 1] == '\\';
            out[k++] = in[i++];
        }
    }
    out[k] = '\0';
}

/* The HTML-like label of node nd, or NULL when it is plain. */
static const char *html_label(Agnode_t *nd)
{
    char *l = agget(nd, "label");
    return l && aghtmlstr(l) ? l : NULL;
}

/* The parameter table of G with a row (port) for value v, or NULL. */
static Agnode_t *table_of(Agraph_t *G, int v)
{
    char port[32];
    snprintf(port, sizeof port, "PORT=\"v%d\"", v);
    for (Agnode_t *nd = agfstnode(G); nd; nd = agnxtnode(G, nd)) {
        const char *l = html_label(nd);
        if (l && strstr(l, port)) return nd;
    }
    return NULL;
}

/* The decoded first cell (the name) of value v's row in table nd. */
static void row_name(Agnode_t *nd, int v, char *out, size_t cap)
{
    char port[32];
    snprintf(port, sizeof port, "PORT=\"v%d\"", v);
    const char *l = html_label(nd), *at = l ? strstr(l, port) : NULL;
    cr_assert_not_null(at, "no row for value %d in %s", v, agnameof(nd));
    const char *start = strchr(at, '>') + 1, *end = strstr(start, "</TD>");
    cr_assert_not_null(end);
    decode_html(start, (size_t)(end - start), out, cap);
}

/* The total in a table's header: its second bold text. */
static long long table_total(Agnode_t *nd)
{
    const char *l = html_label(nd), *b = l ? strstr(l, "<B>") : NULL;
    b = b ? strstr(b + 3, "<B>") : NULL;
    cr_assert_not_null(b, "no total in %s", agnameof(nd));
    return atoll(b + 3);
}

/* The cluster (at any depth) labelled "<spath>" or "<spath> (<type>)". */
static Agraph_t *find_cluster(Agraph_t *G, const char *spath)
{
    size_t n = strlen(spath);
    for (Agraph_t *sg = agfstsubg(G); sg; sg = agnxtsubg(sg)) {
        const char *l = agget(sg, "label");
        if (!strncmp(agnameof(sg), "cluster", 7) && l && !strncmp(l, spath, n) && (!l[n] || l[n] == ' '))
            return sg;
        Agraph_t *in = find_cluster(sg, spath);
        if (in) return in;
    }
    return NULL;
}

/* 1 if a rank=same subgraph of G (at any depth) holds nodes a and b. */
static int same_rank(Agraph_t *G, const char *a, const char *b)
{
    for (Agraph_t *sg = agfstsubg(G); sg; sg = agnxtsubg(sg)) {
        const char *r = agget(sg, "rank");
        if (r && !strcmp(r, "same") && agnode(sg, (char *)a, 0) && agnode(sg, (char *)b, 0)) return 1;
        if (same_rank(sg, a, b)) return 1;
    }
    return 0;
}

/* A parameter's name in its scope's table: without the "<scope>." prefix. */
static const char *short_name(const mg_graph *g, mg_value v)
{
    const char *name = mg_graph_value_name(g, v), *spath = mg_graph_value_scope(g, v);
    size_t n = spath ? strlen(spath) : 0;
    return n && !strncmp(name, spath, n) && name[n] == '.' ? name + n + 1 : name;
}

static int is_scoped_param(const mg_graph *g, mg_value v)
{
    const char *spath = mg_graph_value_scope(g, v);
    return mg_graph_value_kind(g, v) == MG_VALUE_PARAM && spath && *spath;
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
    mg_free(s);
    o.params = MG_DOT_PARAMS_BOXES;
    s = dot_of(&f, &o);
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
    o.params = MG_DOT_PARAMS_BOXES;
    s = dot_of(&f, &o);
    check_golden("flow_expanded_boxes.dot", s);
    mg_free(s);
    o.collapse = 1;
    s = dot_of(&f, &o);
    check_golden("flow_collapsed.dot", s);
    /* a collapsed box counts a table's rows as it counted the boxes */
    o.params = MG_DOT_PARAMS_TABLE;
    char *t = dot_of(&f, &o);
    cr_assert_str_eq(t, s);
    mg_free(t);
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
/* The drawn source of value v: its node, its table (a scoped parameter,
 * with tables) or its own box. */
static Agnode_t *source_of(fixture *f, Agraph_t *G, mg_value v, int tables)
{
    int j = mg_graph_value_node(f->g, v);
    if (j >= 0) return find_node(G, "n%d", j);
    if (tables && is_scoped_param(f->g, v)) {
        cr_assert_null(find_node(G, "v%d", v.id), "value %d is a row and a box", v.id);
        return table_of(G, v.id);
    }
    return find_node(G, "v%d", v.id);
}

/* Every node, leaf value and input edge of the graph is in the forward view
 * (with tables, one edge per table and node it feeds). */
static void check_complete(fixture *f, mg_dot_params params)
{
    mg_dot_opts o = mg_dot_defaults();
    o.params = params;
    char *s = dot_of(f, &o);
    Agraph_t *G = parse(s);
    int n_edges = 0, tables = params == MG_DOT_PARAMS_TABLE;
    for (int k = 0; k < mg_graph_num_nodes(f->g); k++) {
        Agnode_t *dst = find_node(G, "n%d", k);
        cr_assert_not_null(dst, "node %d (%s) missing", k, mg_graph_node_name(f->g, k));
        cr_assert(label_starts_with(G, agnameof(dst), mg_graph_node_name(f->g, k)));
        for (int i = 0; i < mg_graph_node_num_inputs(f->g, k); i++) {
            Agnode_t *src = source_of(f, G, mg_graph_node_input(f->g, k, i), tables);
            cr_assert_not_null(src, "source of %s input %d missing", mg_graph_node_name(f->g, k), i);
            cr_assert_not_null(agedge(G, src, dst, NULL, 0), "edge into %s input %d missing",
                               mg_graph_node_name(f->g, k), i);
            int again = 0;
            for (int h = 0; h < i && html_label(src); h++)
                again |= source_of(f, G, mg_graph_node_input(f->g, k, h), tables) == src;
            n_edges += !again;
        }
    }
    for (int v = 0; v < mg_graph_num_values(f->g); v++)
        if (mg_graph_value_kind(f->g, (mg_value){v}) != MG_VALUE_NODE)
            cr_assert_not_null(source_of(f, G, (mg_value){v}, tables), "value %d missing", v);
    cr_assert_eq(agnedges(G), n_edges);
    agclose(G);
    mg_free(s);
}

Test(dot, every_node_and_edge_appears)
{
    fixture f;
    for (int p = 0; p < 2; p++) {
        build_mlp(&f);
        check_complete(&f, (mg_dot_params)p);
        fixture_free(&f);
        build_flow(&f);
        check_complete(&f, (mg_dot_params)p);
        fixture_free(&f);
        build_names(&f);
        check_complete(&f, (mg_dot_params)p);
        fixture_free(&f);
    }
}

/* ---- parameter tables and ranks --------------------------------------------------------------- */
/* Each scoped parameter is a row of exactly one table, shared with the
 * parameters of its scope only, drawn in that scope's cluster, named without
 * the scope prefix; the header's total is the sum of the rows. */
static void check_tables(fixture *f, int view)
{
    mg_dot_opts o = mg_dot_defaults();
    o.view = (mg_dot_view)view;
    o.losses = &f->loss;
    o.n_losses = 1;
    char *s = dot_of(f, &o);
    Agraph_t *G = parse(s);
    int n_tables = 0;
    for (int v = 0; v < mg_graph_num_values(f->g); v++) {
        mg_value val = {v};
        if (!is_scoped_param(f->g, val) || (view == MG_DOT_BACKWARD && !mg_graph_value_param(f->g, val)->requires_grad))
            continue;
        Agnode_t *t = table_of(G, v);
        cr_assert_not_null(t, "parameter %s is in no table:\n%s", mg_graph_value_name(f->g, val), s);
        char text[256], want[256];
        row_name(t, v, text, sizeof text);
        snprintf(want, sizeof want, "%s%s", short_name(f->g, val),
                 mg_graph_value_param(f->g, val)->requires_grad ? "" : " (frozen)");
        cr_assert_str_eq(text, want);
        long long total = 0;
        for (int u = 0; u < mg_graph_num_values(f->g); u++) {
            mg_value uv = {u};
            if (!is_scoped_param(f->g, uv) || !table_of(G, u)) continue;
            int same = !strcmp(mg_graph_value_scope(f->g, uv), mg_graph_value_scope(f->g, val));
            cr_assert_eq(table_of(G, u) == t, same, "values %d and %d", u, v);
            total += same ? mg_tensor_numel(mg_graph_value_desc(f->g, uv)) : 0;
        }
        cr_assert_eq(table_total(t), total, "%s", agget(t, "label"));
        Agraph_t *c = find_cluster(G, mg_graph_value_scope(f->g, val));
        cr_assert_not_null(c);
        cr_assert_not_null(agnode(c, agnameof(t), 0), "table %s not in its cluster", agnameof(t));
        n_tables += table_of(G, v) == t && !strncmp(text, want, strlen(want));
    }
    cr_assert_gt(n_tables, 0);
    agclose(G);
    mg_free(s);
}

Test(dot, parameter_tables_list_every_parameter_of_their_scope)
{
    fixture f;
    for (int view = 0; view < 2; view++) {
        build_mlp(&f);
        check_tables(&f, view);
        fixture_free(&f);
        build_flow(&f);
        check_tables(&f, view);
        fixture_free(&f);
    }
    build_mlp(&f);
    char *s = dot_of(&f, NULL);
    /* fc1: w[5, 3] and b[5]; fc2: w[2, 5] and the frozen b[2], shaded */
    cr_assert_not_null(strstr(s, "<B>20</B>"), "%s", s);
    cr_assert_not_null(strstr(s, "<B>12</B>"), "%s", s);
    cr_assert_not_null(strstr(s, "BGCOLOR=\"#eeeeee\">b (frozen)</TD>"), "%s", s);
    mg_free(s);
    fixture_free(&f);
}

/* A parameter box or table is on the rank of the node it feeds (backward:
 * that hands it a gradient), in the cluster of their scope. */
static void check_same_rank(fixture *f, mg_dot_params params, int view)
{
    mg_dot_opts o = mg_dot_defaults();
    o.params = params;
    o.view = (mg_dot_view)view;
    o.losses = &f->loss;
    o.n_losses = 1;
    char *s = dot_of(f, &o);
    Agraph_t *G = parse(s);
    int checked = 0;
    for (int k = 0; k < mg_graph_num_nodes(f->g); k++)
        for (int i = 0; i < mg_graph_node_num_inputs(f->g, k); i++) {
            mg_value v = mg_graph_node_input(f->g, k, i);
            if (!is_scoped_param(f->g, v) || !mg_graph_value_param(f->g, v)->requires_grad) continue;
            Agnode_t *p = source_of(f, G, v, params == MG_DOT_PARAMS_TABLE);
            Agraph_t *c = find_cluster(G, mg_graph_value_scope(f->g, v));
            char node[16];
            snprintf(node, sizeof node, "n%d", k);
            cr_assert(p && c, "%s", s);
            cr_assert(same_rank(c, agnameof(p), node), "%s and %s not on one rank:\n%s", agnameof(p), node, s);
            checked++;
        }
    cr_assert_gt(checked, 0);
    agclose(G);
    mg_free(s);
}

Test(dot, parameters_share_the_rank_of_their_node)
{
    fixture f;
    for (int p = 0; p < 2; p++)
        for (int view = 0; view < 2; view++) {
            build_mlp(&f);
            check_same_rank(&f, (mg_dot_params)p, view);
            fixture_free(&f);
            build_flow(&f);
            check_same_rank(&f, (mg_dot_params)p, view);
            fixture_free(&f);
        }
    build_flow(&f);
    char *s = dot_of(&f, NULL);
    cr_assert_not_null(strstr(s, "    {rank=same; n1; p1;}\n"), "%s", s);
    mg_free(s);
    mg_dot_opts o = mg_dot_defaults();
    o.collapse = 1;
    s = dot_of(&f, &o);
    cr_assert_null(strstr(s, "rank=same"), "%s", s);
    mg_free(s);
    fixture_free(&f);
}

/* 1 if nd draws parameters: a table, or the box of a parameter value. */
static int is_param_item(fixture *f, Agnode_t *nd)
{
    const char *id = agnameof(nd);
    return html_label(nd) ||
           (id[0] == 'v' && mg_graph_value_kind(f->g, (mg_value){atoi(id + 1)}) == MG_VALUE_PARAM);
}

Test(dot, parameter_edges_carry_no_label)
{
    fixture f;
    build_mlp(&f);
    for (int p = 0; p < 2; p++)
        for (int view = 0; view < 2; view++) {
            mg_dot_opts o = mg_dot_defaults();
            o.params = (mg_dot_params)p;
            o.view = (mg_dot_view)view;
            o.losses = &f.loss;
            o.n_losses = 1;
            char *s = dot_of(&f, &o);
            Agraph_t *G = parse(s);
            int params = 0, others = 0;
            for (Agnode_t *nd = agfstnode(G); nd; nd = agnxtnode(G, nd))
                for (Agedge_t *e = agfstout(G, nd); e; e = agnxtout(G, e)) {
                    const char *a = agnameof(agtail(e)), *b = agnameof(aghead(e)), *l = agget(e, "label");
                    int to_param = is_param_item(&f, view ? aghead(e) : agtail(e));
                    if (to_param) cr_assert(!l || !*l, "%s -> %s has label '%s'", a, b, l);
                    else cr_assert(l && *l, "%s -> %s lost its label", a, b);
                    params += to_param;
                    others += !to_param;
                }
            cr_assert(params > 0 && others > 0, "%s", s);
            agclose(G);
            mg_free(s);
        }
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
    for (int p = 0; p < 2; p++) {
        o.params = (mg_dot_params)p;
        char *s = dot_of(&f, &o);
        Agraph_t *G = parse(s);
        cr_assert(label_starts_with(G, "v0", odd_names[0]), "%s", s);
        cr_assert(label_starts_with(G, "n1", odd_names[2]), "%s", s);
        cr_assert(label_starts_with(G, "n2", "\xce\xbb loss"), "%s", s);
        char text[256];
        decode_label(agget(G, "label"), text, sizeof text);
        cr_assert_str_eq(text, o.title);
        Agraph_t *c = agsubg(G, "cluster_s0", 0);
        cr_assert_not_null(c);
        decode_label(agget(c, "label"), text, sizeof text);
        cr_assert_str_eq(text, "blk \"1\" (my.type\\x)");
        if (o.params == MG_DOT_PARAMS_BOXES) {
            cr_assert(label_starts_with(G, "v1", odd_names[1]), "%s", s);
            cr_assert(label_starts_with(G, "v2", odd_names[3]), "%s", s);
            cr_assert_not_null(agnode(c, "v1", 0), "parameter not in its scope's cluster");
        } else {
            Agnode_t *t = table_of(G, 1);
            cr_assert(t && table_of(G, 2) == t, "%s", s);
            row_name(t, 1, text, sizeof text);
            cr_assert_str_eq(text, odd_names[1]);
            row_name(t, 2, text, sizeof text);
            cr_assert_str_eq(text, odd_names[3]);
            cr_assert_not_null(agnode(c, agnameof(t), 0), "table not in its scope's cluster");
        }
        agclose(G);
        mg_free(s);
    }
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

/* Scope "blk" holds a (feeds the loss) and b (feeds only a side node). */
Test(dot, pruned_parameters_are_grey_rows_or_left_out)
{
    fixture f;
    fixture_init(&f);
    int64_t sx[2] = {4, 3};
    mg_value x = mg_graph_input(f.g, "x", MG_F32, 2, sx);
    cr_assert_eq(mg_graph_push_scope(f.g, "blk", "test.blk"), MG_OK);
    mg_value a[2] = {x, mg_graph_param(f.g, param(&f, "blk.a", 2, sx))};
    mg_value b[2] = {x, mg_graph_param(f.g, param(&f, "blk.b", 2, sx))};
    mg_value h = node1(&f, "add", "use_a", a, 2);
    node1(&f, "add", "use_b", b, 2);
    mg_graph_pop_scope(f.g);
    f.loss = node1(&f, "mean", "loss", &h, 1);
    mg_exec *e = compile_training(&f);
    cr_assert_not(mg_exec_node_runs(e, 1), "use_b should be pruned");
    mg_dot_opts o = mg_dot_defaults();
    o.exec = e;
    char *s = dot_of(&f, &o);
    Agraph_t *G = parse(s);
    char text[128];
    Agnode_t *t = table_of(G, a[1].id);
    cr_assert(t && table_of(G, b[1].id) == t, "%s", s);
    row_name(t, a[1].id, text, sizeof text);
    cr_assert_str_eq(text, "a");
    row_name(t, b[1].id, text, sizeof text);
    cr_assert_str_eq(text, "b (pruned)");
    cr_assert_not_null(strstr(s, "<FONT COLOR=\"#aaaaaa\">b (pruned)</FONT>"), "%s", s);
    cr_assert_eq(table_total(t), 24);
    agclose(G);
    mg_free(s);
    o.pruned = MG_DOT_PRUNED_HIDE;
    s = dot_of(&f, &o);
    G = parse(s);
    cr_assert_not_null(table_of(G, a[1].id), "%s", s);
    cr_assert_null(table_of(G, b[1].id), "%s", s);
    cr_assert_eq(table_total(table_of(G, a[1].id)), 12);
    agclose(G);
    mg_free(s);
    mg_exec_free(e);
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
    mg_dot_opts views[5] = {mg_dot_defaults(), mg_dot_defaults(), mg_dot_defaults(), mg_dot_defaults(),
                            mg_dot_defaults()};
    views[1].view = MG_DOT_BACKWARD;
    views[2].collapse = 1;
    views[3].params = MG_DOT_PARAMS_BOXES;
    views[4].params = MG_DOT_PARAMS_BOXES;
    views[4].view = MG_DOT_BACKWARD;
    for (int i = 0; i < 5; i++) {
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
    o.params = (mg_dot_params)7;
    cr_assert_eq(mg_dot_string(f.g, &o, &s, NULL), MG_ERR_ARG);
    cr_assert_not_null(strstr(mg_ctx_error(f.ctx), "parameter style 7"), "%s", mg_ctx_error(f.ctx));
    /* a caller built before `params` existed gets the default tables */
    o.struct_size = offsetof(mg_dot_opts, params);
    cr_assert_eq(mg_dot_string(f.g, &o, &s, NULL), MG_OK, "%s", mg_ctx_error(f.ctx));
    cr_assert_not_null(strstr(s, "<TABLE"));
    mg_free(s);
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

/* Graphviz draws a hostile parameter name the same from a table row and
 * from a box: no entity, escape (\N) or tag gets interpreted. */
Test(dot, odd_names_render_alike_in_tables_and_boxes)
{
    fixture f;
    build_names(&f);
    char *dir = temp_dir(), path[160];
    snprintf(path, sizeof path, "%s/names.svg", dir);
    for (int p = 0; p < 2; p++) {
        mg_dot_opts o = mg_dot_defaults();
        o.params = (mg_dot_params)p;
        cr_assert_eq(mg_dot_save(f.g, &o, path), MG_OK, "%s", mg_ctx_error(f.ctx));
        char *svg = read_all(path, NULL);
        cr_assert_not_null(svg);
        /* SVG's own escaping of  b<&> "q" \N\\ &amp;  then a line  z */
        cr_assert_not_null(strstr(svg, ">b&lt;&amp;&gt; &quot;q&quot; \\N\\\\ &amp;amp;</text>"), "params %d:\n%s", p, svg);
        cr_assert_not_null(strstr(svg, ">z</text>"), "%s", svg);
        cr_assert_not_null(strstr(svg, ">w\xc3\xa9ight \xe2\x9c\x93"), "%s", svg);
        free(svg);
    }
    unlink(path);
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
