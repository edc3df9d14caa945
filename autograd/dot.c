/* autograd/dot.c: Graphviz export of computation graphs (see mintgrad/dot.h).
 *
 * Export runs in four steps. First a view (forward or backward) turns the
 * graph into a flat list of drawable items (boxes, or HTML-like tables of a
 * scope's parameters, with an id, a scope and an escaped label) and edges
 * between item ids. Then each parameter box or table is anchored to the
 * node it feeds, to share its rank (so a layer's parameters sit beside its
 * op, and consecutive layers stack instead of forming a staircase). Then,
 * when scopes are collapsed, items of one outermost scope merge into one box
 * and their edges are remapped and deduplicated. Last the emitter writes the
 * items, nested clusters for scopes with their rank=same groups, and the
 * edges as DOT text. Rendering hands that text to libgvc. Only the public
 * graph inspection API is used; every id comes from a graph index, so output
 * is byte-for-byte stable. */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <gvc.h>

#include <mintgrad/mintgrad.h>
#include <mintgrad/dot.h>

/* ---- growable string ------------------------------------------------------ */
typedef struct sbuf {
    char *p;
    size_t n, cap;
    int oom;
} sbuf;

static void sb_reserve(sbuf *b, size_t extra)
{
    if (b->oom || b->n + extra + 1 <= b->cap) return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->n + extra + 1) cap *= 2;
    char *p = mg_realloc(b->p, cap);
    if (!p) { b->oom = 1; return; }
    b->p = p;
    b->cap = cap;
}

static void sb_putn(sbuf *b, const char *s, size_t n)
{
    sb_reserve(b, n);
    if (b->oom) return;
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static void sb_puts(sbuf *b, const char *s) { sb_putn(b, s, strlen(s)); }

static void sb_printf(sbuf *b, const char *fmt, ...) MG_PRINTF(2, 3);
/* Formats straight into the buffer, growing it to the formatted length
 * (no length limit). */
static void sb_printf(sbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    sb_reserve(b, (size_t)n);
    if (b->oom) return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->n, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->n += (size_t)n;
}

/* Hands the buffer's string over (never NULL unless out of memory). */
static char *sb_take(sbuf *b)
{
    if (!b->p && !b->oom) sb_putn(b, "", 0);
    if (b->oom) { mg_free(b->p); b->p = NULL; }
    char *p = b->p;
    *b = (sbuf){0};
    return p;
}

/* Length of the valid UTF-8 sequence at s (2 to 4), or 0 if invalid. */
static int utf8_len(const unsigned char *s)
{
    int n;
    unsigned lo = 0x80, hi = 0xBF;
    if (s[0] >= 0xC2 && s[0] <= 0xDF) n = 2;
    else if (s[0] >= 0xE0 && s[0] <= 0xEF) n = 3;
    else if (s[0] >= 0xF0 && s[0] <= 0xF4) n = 4;
    else return 0;
    if (s[0] == 0xE0) lo = 0xA0;      /* overlong */
    if (s[0] == 0xED) hi = 0x9F;      /* surrogates */
    if (s[0] == 0xF0) lo = 0x90;      /* overlong */
    if (s[0] == 0xF4) hi = 0x8F;      /* beyond U+10FFFF */
    if (s[1] < lo || s[1] > hi) return 0;
    for (int i = 2; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xBF) return 0;
    return n;
}

/* Appends s as label text: '"' and '\' escaped (html: entities for '<',
 * '>', '"' and a doubled '\', which Graphviz reads as one), '&' as "&amp;"
 * (Graphviz decodes entities in plain labels too), newline as a line break,
 * other control bytes and invalid UTF-8 as '?'. */
static void sb_escape_as(sbuf *b, const char *s, int html)
{
    const unsigned char *u = (const unsigned char *)(s ? s : "");
    while (*u) {
        int n = *u >= 0x80 ? utf8_len(u) : 1;
        if (*u == '&') sb_puts(b, "&amp;");
        else if (html && *u == '<') sb_puts(b, "&lt;");
        else if (html && *u == '>') sb_puts(b, "&gt;");
        else if (html && *u == '"') sb_puts(b, "&quot;");
        else if (*u == '"' || *u == '\\') { sb_putn(b, "\\", 1); sb_putn(b, (const char *)u, 1); }
        else if (*u == '\n') sb_puts(b, html ? "<BR/>" : "\\n");
        else if (*u == '\t') sb_puts(b, " ");
        else if (*u < 0x20 || *u == 0x7F || n == 0) sb_puts(b, "?");
        else sb_putn(b, (const char *)u, (size_t)n);
        u += n ? n : 1;
    }
}

/* Escaped for a DOT quoted string. */
static void sb_escape(sbuf *b, const char *s) { sb_escape_as(b, s, 0); }

/* Escaped for an HTML-like label. */
static void sb_escape_html(sbuf *b, const char *s) { sb_escape_as(b, s, 1); }

/* ---- the intermediate picture ---------------------------------------------- */
#define DOT_ID_MAX 24

typedef struct dot_item {
    char id[DOT_ID_MAX];
    int scope;          /* index into scopes, -1 for none */
    char *label;        /* escaped DOT label text, owned */
    int html;           /* label is HTML-like: written as <...> */
    const char *attrs;  /* style attributes (static) */
    int grey;           /* pruned: drawn grey */
    int n_params;       /* parameters it stands for (1 for a box) */
    int64_t numel;      /* their element count */
    char rank_with[DOT_ID_MAX]; /* the node drawn on its rank, or "" */
} dot_item;

typedef struct dot_edge {
    char src[DOT_ID_MAX], dst[DOT_ID_MAX];
    char *label;        /* escaped, owned */
    int grey;
} dot_edge;

typedef struct dot_scope {
    const char *path;   /* borrowed from the graph */
    const char *type;   /* may be NULL */
    int parent;         /* enclosing scope, -1 for none */
    int top;            /* outermost enclosing scope (itself if parent < 0) */
    int n_items;        /* items in this scope and its children */
} dot_scope;

typedef struct dot_state {
    const mg_graph *g;
    mg_ctx *ctx;
    mg_dot_opts o;
    int nv, nn;
    char *is_loss;      /* per value */
    char *runs;         /* per node: runs in forward */
    char *used;         /* per value: consumed by a node that runs */
    char *bwd;          /* per node: backward runs */
    char *grad_param;   /* per value: a parameter that receives a gradient */
    int *node_scope;    /* per node */
    int *value_scope;   /* per value */
    dot_scope *scopes;
    int ns, cap_s;
    dot_item *items;
    int ni, cap_i;
    dot_edge *edges;
    int ne, cap_e;
    int oom;
} dot_state;

/* Style attributes by role. */
#define ST_INPUT "shape=ellipse, style=filled, fillcolor=\"#cfe6fb\""
#define ST_PARAM "shape=box, style=\"rounded,filled\", fillcolor=\"#fde4b8\""
#define ST_FROZEN "shape=box, style=\"rounded,filled\", fillcolor=\"#eeeeee\""
#define ST_CONST "shape=note, style=filled, fillcolor=\"#f4f4f4\""
#define ST_OP "shape=box, style=filled, fillcolor=\"#e4e4f7\""
#define ST_PLUGIN "shape=box, style=\"filled,bold\", fillcolor=\"#d3efc8\""
#define ST_LOSS "shape=box, style=filled, fillcolor=\"#f6c4c4\", peripheries=2"
#define ST_SEED "shape=ellipse, style=filled, fillcolor=\"#f6c4c4\""
#define ST_GRAD "shape=box, style=filled, fillcolor=\"#f3def0\""
#define ST_GRAD_PLUGIN "shape=box, style=\"filled,bold\", fillcolor=\"#e6d2f2\""
#define ST_GRAD_PARAM "shape=box, style=\"rounded,filled\", fillcolor=\"#fbc98a\", peripheries=2"
#define ST_TABLE "shape=plain"
#define ST_SCOPE "shape=box3d, style=filled, fillcolor=\"#dfeee0\""
#define ST_PRUNED "shape=box, style=dashed, color=\"#aaaaaa\", fontcolor=\"#aaaaaa\""

static void *grow(dot_state *st, void *p, int *cap, int need, size_t elem)
{
    if (need <= *cap) return p;
    int c = *cap ? *cap * 2 : 32;
    while (c < need) c *= 2;
    void *q = mg_realloc(p, (size_t)c * elem);
    if (!q) { st->oom = 1; return p; }
    *cap = c;
    return q;
}

/* Adds an item; takes ownership of the label buffer. */
static dot_item *add_item(dot_state *st, const char *id, int scope, sbuf *label, const char *attrs)
{
    char *text = sb_take(label);
    st->items = grow(st, st->items, &st->cap_i, st->ni + 1, sizeof *st->items);
    if (st->oom || !text) { st->oom = 1; mg_free(text); return NULL; }
    dot_item *it = &st->items[st->ni++];
    *it = (dot_item){.scope = scope, .label = text, .attrs = attrs};
    snprintf(it->id, sizeof it->id, "%s", id);
    return it;
}

/* Adds an edge; takes ownership of the label buffer. */
static void add_edge(dot_state *st, const char *src, const char *dst, sbuf *label, int grey)
{
    char *text = sb_take(label);
    st->edges = grow(st, st->edges, &st->cap_e, st->ne + 1, sizeof *st->edges);
    if (st->oom || !text) { st->oom = 1; mg_free(text); return; }
    dot_edge *e = &st->edges[st->ne++];
    *e = (dot_edge){.label = text, .grey = grey};
    snprintf(e->src, sizeof e->src, "%s", src);
    snprintf(e->dst, sizeof e->dst, "%s", dst);
}

/* add_edge, unless the same edge is there already (a table feeding one node
 * several parameters gets one edge). */
static void add_edge_once(dot_state *st, const char *src, const char *dst, sbuf *label, int grey)
{
    for (int i = 0; i < st->ne; i++)
        if (!strcmp(st->edges[i].src, src) && !strcmp(st->edges[i].dst, dst) &&
            !strcmp(st->edges[i].label, label->p ? label->p : "")) {
            mg_free(sb_take(label));
            return;
        }
    add_edge(st, src, dst, label, grey);
}

/* ---- small graph queries ------------------------------------------------------ */
static mg_value val(int id) { return (mg_value){id}; }

static const char *value_name(const dot_state *st, int v)
{
    const char *s = mg_graph_value_name(st->g, val(v));
    return s ? s : "";
}

static const char *node_name(const dot_state *st, int k)
{
    const char *s = mg_graph_node_name(st->g, k);
    return s ? s : "";
}

static const char *node_op(const dot_state *st, int k)
{
    const mg_op_def *op = mg_graph_node_op(st->g, k);
    return op && op->name ? op->name : "?";
}

/* Plugin ops are namespaced ("mintnet.block"); built-in names have no '.'. */
static int node_is_plugin(const dot_state *st, int k) { return strchr(node_op(st, k), '.') != NULL; }

/* 1 if input i of node k can carry a gradient (not in the op's nondiff mask). */
static int input_is_diff(const dot_state *st, int k, int i)
{
    const mg_op_def *op = mg_graph_node_op(st->g, k);
    return !(op && i < 32 && (op->nondiff_inputs >> i) & 1u);
}

/* Appends "f32[2, 3]" (or "?") for value v. */
static void put_shape(sbuf *b, const dot_state *st, int v)
{
    const mg_tensor *d = mg_graph_value_desc(st->g, val(v));
    char buf[160];
    if (!d) { sb_puts(b, "?"); return; }
    sb_puts(b, mg_dtype_name(d->dtype));
    sb_escape(b, mg_shape_str(d->rank, d->shape, buf, sizeof buf));
}

static int64_t value_numel(const dot_state *st, int v)
{
    const mg_tensor *d = mg_graph_value_desc(st->g, val(v));
    int64_t n = 1;
    for (int i = 0; d && i < d->rank; i++) n *= d->shape[i];
    return d ? n : 0;
}

/* The edge label of value v: its shape, prefixed by the output index when
 * it comes from a node with several outputs. */
static void put_edge_label(sbuf *b, const dot_state *st, int v)
{
    int j = mg_graph_value_node(st->g, val(v));
    if (j >= 0 && mg_graph_node_num_outputs(st->g, j) > 1) {
        for (int i = 0; i < mg_graph_node_num_outputs(st->g, j); i++)
            if (mg_graph_node_output(st->g, j, i).id == v) sb_printf(b, "%d: ", i);
    }
    put_shape(b, st, v);
}

static int is_param(const dot_state *st, int v)
{
    return mg_graph_value_kind(st->g, val(v)) == MG_VALUE_PARAM;
}

static int param_requires_grad(const dot_state *st, int v)
{
    if (!is_param(st, v)) return 0;
    mg_param *p = mg_graph_value_param(st->g, val(v));
    return p && p->requires_grad;
}

/* 1 if parameter v is a row of its scope's table rather than a box. */
static int in_table(const dot_state *st, int v)
{
    return st->o.params == MG_DOT_PARAMS_TABLE && is_param(st, v) && st->value_scope[v] >= 0 &&
           !st->is_loss[v];
}

/* The item id a leaf value (input, parameter, constant) is drawn as: its
 * scope's parameter table ("p2") or its own box ("v7"). */
static void leaf_id(const dot_state *st, int v, char *id)
{
    if (in_table(st, v)) snprintf(id, DOT_ID_MAX, "p%d", st->value_scope[v]);
    else snprintf(id, DOT_ID_MAX, "v%d", v);
}

/* The item id a value is drawn as in the forward view: its producing node,
 * or the leaf's id. */
static void value_src_id(const dot_state *st, int v, char *id)
{
    int j = mg_graph_value_node(st->g, val(v));
    if (j >= 0) snprintf(id, DOT_ID_MAX, "n%d", j);
    else leaf_id(st, v, id);
}

/* ---- scopes -------------------------------------------------------------------- */
static int find_scope(const dot_state *st, const char *spath)
{
    for (int i = 0; i < st->ns; i++)
        if (strcmp(st->scopes[i].path, spath) == 0) return i;
    return -1;
}

/* The scope index for spath (added on first sight); -1 for no scope. */
static int intern_scope(dot_state *st, const char *spath, const char *type)
{
    if (!spath || !*spath) return -1;
    if (type && !*type) type = NULL;
    int i = find_scope(st, spath);
    if (i >= 0) {
        if (!st->scopes[i].type) st->scopes[i].type = type;
        return i;
    }
    st->scopes = grow(st, st->scopes, &st->cap_s, st->ns + 1, sizeof *st->scopes);
    if (st->oom) return -1;
    st->scopes[st->ns] = (dot_scope){.path = spath, .type = type, .parent = -1};
    return st->ns++;
}

/* Parent: the longest other scope path that is a prefix ending at a '.'. */
static void link_scopes(dot_state *st)
{
    for (int i = 0; i < st->ns; i++) {
        size_t best = 0;
        for (int j = 0; j < st->ns; j++) {
            size_t n = strlen(st->scopes[j].path);
            if (j != i && n > best && strncmp(st->scopes[i].path, st->scopes[j].path, n) == 0 &&
                st->scopes[i].path[n] == '.') {
                best = n;
                st->scopes[i].parent = j;
            }
        }
    }
    for (int i = 0; i < st->ns; i++) {
        int t = i;
        while (st->scopes[t].parent >= 0) t = st->scopes[t].parent;
        st->scopes[i].top = t;
    }
}

static void collect_scopes(dot_state *st)
{
    for (int k = 0; k < st->nn; k++)
        st->node_scope[k] = intern_scope(st, mg_graph_node_scope(st->g, k),
                                         mg_graph_node_scope_type(st->g, k));
    for (int v = 0; v < st->nv; v++) {
        st->value_scope[v] = -1;
        if (mg_graph_value_kind(st->g, val(v)) != MG_VALUE_NODE)
            st->value_scope[v] = intern_scope(st, mg_graph_value_scope(st->g, val(v)), NULL);
    }
    link_scopes(st);
}

/* ---- analysis: losses, pruning, gradient paths ---------------------------------- */
static void mark_default_losses(dot_state *st)
{
    char *used = mg_calloc((size_t)st->nv + 1, 1);
    if (!used) { st->oom = 1; return; }
    for (int k = 0; k < st->nn; k++)
        for (int i = 0; i < mg_graph_node_num_inputs(st->g, k); i++) {
            int v = mg_graph_node_input(st->g, k, i).id;
            if (v >= 0 && v < st->nv) used[v] = 1;
        }
    for (int v = 0; v < st->nv; v++)
        st->is_loss[v] = !used[v] && mg_graph_value_kind(st->g, val(v)) == MG_VALUE_NODE;
    mg_free(used);
}

static void mark_losses(dot_state *st)
{
    int any = 0;
    for (int i = 0; i < st->o.n_losses; i++) st->is_loss[st->o.losses[i].id] = any = 1;
    if (!any && st->o.exec) {
        mg_exec *e = (mg_exec *)st->o.exec; /* mg_exec_seed only looks up */
        for (int v = 0; v < st->nv; v++)
            if (mg_exec_seed(e, val(v))) st->is_loss[v] = any = 1;
    }
    if (!any && st->o.view == MG_DOT_BACKWARD) mark_default_losses(st);
}

/* need[v]: v depends, through differentiable inputs, on a parameter that
 * requires a gradient. Nodes are in topological order. */
static void propagate_need(const dot_state *st, char *need)
{
    for (int v = 0; v < st->nv; v++) need[v] = (char)param_requires_grad(st, v);
    for (int k = 0; k < st->nn; k++) {
        int any = 0;
        for (int i = 0; i < mg_graph_node_num_inputs(st->g, k); i++)
            any |= input_is_diff(st, k, i) && need[mg_graph_node_input(st->g, k, i).id];
        for (int i = 0; i < mg_graph_node_num_outputs(st->g, k); i++)
            need[mg_graph_node_output(st->g, k, i).id] |= (char)any;
    }
}

/* Without an exec: a node's backward runs when one of its outputs reaches a
 * loss and one of its differentiable inputs needs a gradient. A reverse walk
 * marks the values that reach a loss. */
static void infer_backward(dot_state *st)
{
    char *need = mg_calloc((size_t)st->nv + 1, 1), *reach = mg_calloc((size_t)st->nv + 1, 1);
    if (!need || !reach) { st->oom = 1; mg_free(need); mg_free(reach); return; }
    propagate_need(st, need);
    memcpy(reach, st->is_loss, (size_t)st->nv);
    for (int k = st->nn - 1; k >= 0; k--) {
        int out_reach = 0, in_need = 0;
        for (int i = 0; i < mg_graph_node_num_outputs(st->g, k); i++)
            out_reach |= reach[mg_graph_node_output(st->g, k, i).id];
        for (int i = 0; i < mg_graph_node_num_inputs(st->g, k); i++) {
            int v = mg_graph_node_input(st->g, k, i).id;
            if (!input_is_diff(st, k, i)) continue;
            in_need |= need[v];
            if (out_reach) reach[v] = 1;
        }
        st->bwd[k] = (char)(out_reach && in_need);
    }
    mg_free(need);
    mg_free(reach);
}

static void analyse(dot_state *st)
{
    mark_losses(st);
    for (int k = 0; k < st->nn; k++) {
        st->runs[k] = st->o.exec ? (char)mg_exec_node_runs(st->o.exec, k) : 1;
        for (int i = 0; st->runs[k] && i < mg_graph_node_num_inputs(st->g, k); i++) {
            int v = mg_graph_node_input(st->g, k, i).id;
            if (v >= 0 && v < st->nv) st->used[v] = 1;
        }
    }
    if (st->o.view != MG_DOT_BACKWARD) return;
    if (st->o.exec) {
        for (int k = 0; k < st->nn; k++) st->bwd[k] = (char)mg_exec_node_backward_runs(st->o.exec, k);
    } else {
        infer_backward(st);
    }
    for (int k = 0; k < st->nn; k++) {
        for (int i = 0; st->bwd[k] && i < mg_graph_node_num_inputs(st->g, k); i++) {
            int v = mg_graph_node_input(st->g, k, i).id;
            if (input_is_diff(st, k, i) && param_requires_grad(st, v)) st->grad_param[v] = 1;
        }
    }
}

/* ---- what a view draws ----------------------------------------------------------- */
static int node_drawn(const dot_state *st, int k)
{
    return st->runs[k] || st->o.pruned != MG_DOT_PRUNED_HIDE;
}

/* Leaf values (inputs, parameters, constants) no running node uses are
 * pruned along with their consumers. */
static int leaf_drawn(const dot_state *st, int v)
{
    return !st->o.exec || st->used[v] || st->o.pruned != MG_DOT_PRUNED_HIDE;
}

/* Parameter v is a row of its scope's table in this view. */
static int row_drawn(const dot_state *st, int v)
{
    if (!in_table(st, v)) return 0;
    return st->o.view == MG_DOT_BACKWARD ? st->grad_param[v] : leaf_drawn(st, v);
}

/* A forward-view row of a parameter the exec does not use. */
static int row_grey(const dot_state *st, int v)
{
    return st->o.view == MG_DOT_FORWARD && st->o.exec && !st->used[v];
}

/* ---- parameter tables ------------------------------------------------------------ */
/* v's name in the table of scope s: without the "<scope>." prefix. */
static const char *short_name(const dot_state *st, int v, int s)
{
    const char *name = value_name(st, v), *spath = st->scopes[s].path;
    size_t n = strlen(spath);
    return !strncmp(name, spath, n) && name[n] == '.' && name[n + 1] ? name + n + 1 : name;
}

/* One cell; `text` is HTML-escaped already, `fg` a font colour or NULL. */
static void table_cell(sbuf *b, const char *align, const char *attrs, const char *fg, const char *text)
{
    sb_printf(b, "<TD ALIGN=\"%s\"%s>", align, attrs);
    if (fg) sb_printf(b, "<FONT COLOR=\"%s\">", fg);
    sb_puts(b, text ? text : "");
    if (fg) sb_puts(b, "</FONT>");
    sb_puts(b, "</TD>");
}

/* The row of parameter v: name (port "v<id>"), shape, element count; a
 * frozen parameter shaded, a pruned one grey. */
static void table_row(sbuf *b, const dot_state *st, int v, int s)
{
    int frozen = !param_requires_grad(st, v), grey = row_grey(st, v);
    const char *bg = frozen ? " BGCOLOR=\"#eeeeee\"" : "", *fg = grey ? "#aaaaaa" : NULL;
    char cell[64], count[32];
    sbuf name = {0}, shape = {0};
    sb_escape_html(&name, short_name(st, v, s));
    if (frozen) sb_puts(&name, " (frozen)");
    if (grey) sb_puts(&name, " (pruned)");
    put_shape(&shape, st, v);
    snprintf(cell, sizeof cell, " BALIGN=\"LEFT\" PORT=\"v%d\"%s", v, bg);
    snprintf(count, sizeof count, "%lld", (long long)value_numel(st, v));
    sb_puts(b, "\n  <TR>");
    table_cell(b, "LEFT", cell, fg, name.p);
    table_cell(b, "LEFT", bg, fg, shape.p);
    table_cell(b, "RIGHT", bg, fg, count);
    sb_puts(b, "</TR>");
    b->oom |= name.oom | shape.oom;
    mg_free(name.p);
    mg_free(shape.p);
}

/* The HTML-like table of scope s's parameters drawn in this view, under a
 * header with their total; fills in the item's counts and grey flag. */
static void table_label(sbuf *b, const dot_state *st, int s, dot_item *it)
{
    int bwd = st->o.view == MG_DOT_BACKWARD;
    it->grey = 1;
    for (int v = 0; v < st->nv; v++) {
        if (!row_drawn(st, v) || st->value_scope[v] != s) continue;
        it->n_params++;
        it->numel += value_numel(st, v);
        it->grey &= row_grey(st, v);
    }
    const char *fg = it->grey ? "#aaaaaa" : "#000000";
    sb_printf(b, "<TABLE BORDER=\"1\" STYLE=\"ROUNDED\" CELLBORDER=\"0\" CELLSPACING=\"0\" "
                 "CELLPADDING=\"3\" COLOR=\"%s\" BGCOLOR=\"%s\">\n  <TR>", fg, bwd ? "#fbc98a" : "#fde4b8");
    char total[64];
    snprintf(total, sizeof total, "<B>%lld</B>", (long long)it->numel);
    table_cell(b, "LEFT", " COLSPAN=\"2\"", it->grey ? fg : NULL,
               bwd ? "<B>gradients</B>" : "<B>parameters</B>");
    table_cell(b, "RIGHT", "", it->grey ? fg : NULL, total);
    sb_puts(b, "</TR>\n  <HR/>");
    for (int v = 0; v < st->nv; v++)
        if (row_drawn(st, v) && st->value_scope[v] == s) table_row(b, st, v, s);
    sb_puts(b, "\n</TABLE>");
}

/* The table of v's scope, added when v is its first row ("p<scope>"). */
static void table_item(dot_state *st, int v)
{
    int s = st->value_scope[v];
    char id[DOT_ID_MAX];
    if (!row_drawn(st, v)) return;
    for (int u = 0; u < v; u++)
        if (row_drawn(st, u) && st->value_scope[u] == s) return;
    dot_item tmp = {.scope = s};
    sbuf b = {0};
    table_label(&b, st, s, &tmp);
    snprintf(id, sizeof id, "p%d", s);
    dot_item *it = add_item(st, id, s, &b, ST_TABLE);
    if (!it) return;
    it->html = 1;
    it->grey = tmp.grey;
    it->n_params = tmp.n_params;
    it->numel = tmp.numel;
}

/* ---- forward view ------------------------------------------------------------ */
static void put_param_lines(sbuf *b, const dot_state *st, int v)
{
    int64_t n = value_numel(st, v);
    sb_puts(b, "\\n");
    put_shape(b, st, v);
    sb_printf(b, "\\n%lld element%s", (long long)n, n == 1 ? "" : "s");
}

/* Label of an input, parameter or constant; returns its style. */
static const char *fwd_value_label(sbuf *b, const dot_state *st, int v)
{
    mg_value_kind kind = mg_graph_value_kind(st->g, val(v));
    const char *attrs = kind == MG_VALUE_INPUT ? ST_INPUT : ST_CONST;
    sb_escape(b, value_name(st, v));
    if (kind == MG_VALUE_PARAM) {
        int rg = param_requires_grad(st, v);
        attrs = rg ? ST_PARAM : ST_FROZEN;
        put_param_lines(b, st, v);
        if (!rg) sb_puts(b, "\\nfrozen");
    } else {
        sb_puts(b, kind == MG_VALUE_INPUT ? "\\ninput " : "\\nconst ");
        put_shape(b, st, v);
    }
    if (st->is_loss[v]) { sb_puts(b, "\\nloss"); attrs = ST_LOSS; }
    return attrs;
}

static void fwd_value_item(dot_state *st, int v)
{
    if (!leaf_drawn(st, v)) return;
    int used = !st->o.exec || st->used[v];
    sbuf b = {0};
    char id[DOT_ID_MAX];
    const char *attrs = fwd_value_label(&b, st, v);
    snprintf(id, sizeof id, "v%d", v);
    dot_item *it = add_item(st, id, st->value_scope[v], &b, used ? attrs : ST_PRUNED);
    if (it) {
        it->grey = !used;
        it->n_params = is_param(st, v);
        it->numel = it->n_params ? value_numel(st, v) : 0;
    }
}

static void put_attrs_line(sbuf *b, const dot_state *st, int k)
{
    const mg_attrs *a = mg_graph_node_attrs(st->g, k);
    char buf[512];
    if (!st->o.show_attrs || mg_attrs_count(a) <= 0) return;
    sb_puts(b, "\\n");
    sb_escape(b, mg_attrs_str_all(a, buf, sizeof buf));
}

/* Node label: name, op, attributes, output shapes ("-> f32[2, 3]"). */
static void fwd_node_label(sbuf *b, const dot_state *st, int k, int *loss)
{
    int no = mg_graph_node_num_outputs(st->g, k);
    sb_escape(b, node_name(st, k));
    sb_puts(b, "\\n");
    sb_escape(b, node_op(st, k));
    put_attrs_line(b, st, k);
    for (int i = 0; i < no; i++) {
        int v = mg_graph_node_output(st->g, k, i).id;
        sb_puts(b, "\\n-> ");
        if (no > 1) sb_printf(b, "%d: ", i);
        put_shape(b, st, v);
        if (v >= 0 && v < st->nv && st->is_loss[v]) { sb_puts(b, " (loss)"); *loss = 1; }
    }
}

static void fwd_node_item(dot_state *st, int k)
{
    if (!node_drawn(st, k)) return;
    sbuf b = {0};
    int loss = 0;
    char id[DOT_ID_MAX];
    fwd_node_label(&b, st, k, &loss);
    const char *attrs = loss ? ST_LOSS : node_is_plugin(st, k) ? ST_PLUGIN : ST_OP;
    if (!st->runs[k]) sb_puts(&b, "\\n(pruned)");
    snprintf(id, sizeof id, "n%d", k);
    dot_item *it = add_item(st, id, st->node_scope[k], &b, st->runs[k] ? attrs : ST_PRUNED);
    if (it) it->grey = !st->runs[k];
}

static void fwd_edges(dot_state *st, int k)
{
    char src[DOT_ID_MAX], dst[DOT_ID_MAX];
    snprintf(dst, sizeof dst, "n%d", k);
    if (!node_drawn(st, k)) return;
    for (int i = 0; i < mg_graph_node_num_inputs(st->g, k); i++) {
        int v = mg_graph_node_input(st->g, k, i).id;
        if (v < 0 || v >= st->nv) continue;
        int j = mg_graph_value_node(st->g, val(v));
        if (j >= 0 ? !node_drawn(st, j) : !leaf_drawn(st, v)) continue;
        value_src_id(st, v, src);
        sbuf b = {0};
        if (!is_param(st, v)) put_edge_label(&b, st, v);
        if (in_table(st, v)) add_edge_once(st, src, dst, &b, !st->runs[k]);
        else add_edge(st, src, dst, &b, !st->runs[k]);
    }
}

static void build_forward(dot_state *st)
{
    for (int v = 0; v < st->nv; v++) {
        if (mg_graph_value_kind(st->g, val(v)) == MG_VALUE_NODE) continue;
        if (in_table(st, v)) table_item(st, v);
        else fwd_value_item(st, v);
    }
    for (int k = 0; k < st->nn; k++) fwd_node_item(st, k);
    for (int k = 0; k < st->nn; k++) fwd_edges(st, k);
}

/* ---- backward view ------------------------------------------------------------ */
/* A seed box for each loss whose gradient flows somewhere, with its edge. */
static void bwd_seeds(dot_state *st)
{
    for (int v = 0; v < st->nv; v++) {
        int j = mg_graph_value_node(st->g, val(v));
        if (!st->is_loss[v] || (j >= 0 ? !st->bwd[j] : !st->grad_param[v])) continue;
        sbuf b = {0}, e = {0};
        char id[DOT_ID_MAX], dst[DOT_ID_MAX];
        sb_puts(&b, "d loss = 1\\n");
        sb_escape(&b, value_name(st, v));
        sb_puts(&b, " ");
        put_shape(&b, st, v);
        snprintf(id, sizeof id, "l%d", v);
        add_item(st, id, -1, &b, ST_SEED);
        snprintf(dst, sizeof dst, j >= 0 ? "n%d" : "v%d", j >= 0 ? j : v);
        put_edge_label(&e, st, v);
        add_edge(st, id, dst, &e, 0);
    }
}

static void bwd_node_item(dot_state *st, int k)
{
    sbuf b = {0};
    char id[DOT_ID_MAX];
    sb_puts(&b, "grad ");
    sb_escape(&b, node_name(st, k));
    sb_puts(&b, "\\n");
    sb_escape(&b, node_op(st, k));
    snprintf(id, sizeof id, "n%d", k);
    add_item(st, id, st->node_scope[k], &b, node_is_plugin(st, k) ? ST_GRAD_PLUGIN : ST_GRAD);
}

static void bwd_param_item(dot_state *st, int v)
{
    sbuf b = {0};
    char id[DOT_ID_MAX];
    sb_puts(&b, "grad ");
    sb_escape(&b, value_name(st, v));
    put_param_lines(&b, st, v);
    snprintf(id, sizeof id, "v%d", v);
    dot_item *it = add_item(st, id, st->value_scope[v], &b, ST_GRAD_PARAM);
    if (it) { it->n_params = 1; it->numel = value_numel(st, v); }
}

/* Gradient edges out of node k: to the producers of its inputs whose
 * backward runs, and to the parameters it hands a gradient. */
static void bwd_edges(dot_state *st, int k)
{
    char src[DOT_ID_MAX], dst[DOT_ID_MAX];
    snprintf(src, sizeof src, "n%d", k);
    for (int i = 0; i < mg_graph_node_num_inputs(st->g, k); i++) {
        int v = mg_graph_node_input(st->g, k, i).id;
        if (v < 0 || v >= st->nv || !input_is_diff(st, k, i)) continue;
        int j = mg_graph_value_node(st->g, val(v));
        if (j >= 0 ? !st->bwd[j] : !st->grad_param[v]) continue;
        if (j >= 0) snprintf(dst, sizeof dst, "n%d", j);
        else leaf_id(st, v, dst);
        sbuf b = {0};
        if (j >= 0) sb_puts(&b, "d ");
        if (j >= 0) put_edge_label(&b, st, v);
        if (in_table(st, v)) add_edge_once(st, src, dst, &b, 0);
        else add_edge(st, src, dst, &b, 0);
    }
}

static void build_backward(dot_state *st)
{
    bwd_seeds(st);
    for (int k = st->nn - 1; k >= 0; k--)
        if (st->bwd[k]) bwd_node_item(st, k);
    for (int v = 0; v < st->nv; v++) {
        if (!st->grad_param[v]) continue;
        if (in_table(st, v)) table_item(st, v);
        else bwd_param_item(st, v);
    }
    for (int k = st->nn - 1; k >= 0; k--)
        if (st->bwd[k]) bwd_edges(st, k);
}

/* ---- ranks ------------------------------------------------------------------------- */
/* The innermost scope of item id ("n3", "v7", "p2"; "l2" has none), or -1. */
static int id_scope(const dot_state *st, const char *id)
{
    int x = atoi(id + 1);
    if (id[0] == 'n' && x >= 0 && x < st->nn) return st->node_scope[x];
    if (id[0] == 'v' && x >= 0 && x < st->nv) return st->value_scope[x];
    if (id[0] == 'p' && x >= 0 && x < st->ns) return x;
    return -1;
}

/* Anchors each parameter box or table to the first node of its own scope
 * it has an edge with (forward: a node it feeds; backward: a node sending
 * it a gradient), to be drawn on that node's rank: then a layer's
 * parameters sit beside its op instead of a rank above, and consecutive
 * layers stack. */
static void anchor_params(dot_state *st)
{
    int bwd = st->o.view == MG_DOT_BACKWARD;
    for (int i = 0; i < st->ni; i++) {
        dot_item *it = &st->items[i];
        for (int j = 0; it->n_params > 0 && !it->rank_with[0] && j < st->ne; j++) {
            const dot_edge *e = &st->edges[j];
            const char *self = bwd ? e->dst : e->src, *other = bwd ? e->src : e->dst;
            if (!strcmp(self, it->id) && other[0] == 'n' && id_scope(st, other) == it->scope)
                snprintf(it->rank_with, sizeof it->rank_with, "%s", other);
        }
    }
}

/* ---- collapsing scopes ---------------------------------------------------------- */
static void collapsed_label(sbuf *b, const dot_state *st, int s, int n_ops, int n_params, int64_t numel)
{
    if (st->o.view == MG_DOT_BACKWARD) sb_puts(b, "grad ");
    sb_escape(b, st->scopes[s].path);
    if (st->scopes[s].type) {
        sb_puts(b, "\\n(");
        sb_escape(b, st->scopes[s].type);
        sb_puts(b, ")");
    }
    sb_printf(b, "\\n%d node%s", n_ops, n_ops == 1 ? "" : "s");
    if (n_params > 0)
        sb_printf(b, "\\n%d param%s, %lld elements", n_params, n_params == 1 ? "" : "s",
                  (long long)numel);
}

/* The outermost scope an item id ("n3", "v7", "p2", "l2") belongs to, or -1. */
static int id_top(const dot_state *st, const char *id)
{
    int s = id_scope(st, id);
    return s >= 0 ? st->scopes[s].top : -1;
}

/* The box that stands for every item under outermost scope t. */
static dot_item scope_box(dot_state *st, int t)
{
    int n_ops = 0, n_params = 0, grey = 1;
    int64_t numel = 0;
    for (int i = 0; i < st->ni; i++) {
        const dot_item *it = &st->items[i];
        if (it->scope < 0 || st->scopes[it->scope].top != t) continue;
        n_params += it->n_params;
        n_ops += it->n_params == 0;
        numel += it->numel;
        grey &= it->grey;
    }
    sbuf b = {0};
    collapsed_label(&b, st, t, n_ops, n_params, numel);
    dot_item sbox = {.scope = -1, .label = sb_take(&b), .attrs = grey ? ST_PRUNED : ST_SCOPE, .grey = grey};
    if (!sbox.label) st->oom = 1;
    snprintf(sbox.id, sizeof sbox.id, "s%d", t);
    return sbox;
}

static int edge_seen(const dot_state *st, int upto, const dot_edge *e)
{
    for (int i = 0; i < upto; i++)
        if (strcmp(st->edges[i].src, e->src) == 0 && strcmp(st->edges[i].dst, e->dst) == 0 &&
            strcmp(st->edges[i].label, e->label) == 0)
            return 1;
    return 0;
}

/* Points edges at scope boxes; drops edges inside one box and duplicates. */
static void collapse_edges(dot_state *st)
{
    int n = 0;
    for (int i = 0; i < st->ne; i++) {
        dot_edge e = st->edges[i];
        int ts = id_top(st, e.src), td = id_top(st, e.dst);
        if (ts >= 0) snprintf(e.src, sizeof e.src, "s%d", ts);
        if (td >= 0) snprintf(e.dst, sizeof e.dst, "s%d", td);
        if (strcmp(e.src, e.dst) == 0 || edge_seen(st, n, &e)) { mg_free(e.label); continue; }
        st->edges[n++] = e;
    }
    st->ne = n;
}

/* Replaces the items of each outermost scope by one box, placed where the
 * first of them was. */
static void collapse_scopes(dot_state *st)
{
    dot_item *fresh = mg_calloc((size_t)st->ni + 1, sizeof *fresh);
    char *done = mg_calloc((size_t)st->ns + 1, 1);
    if (!fresh || !done) { st->oom = 1; mg_free(fresh); mg_free(done); return; }
    collapse_edges(st);
    int n = 0;
    for (int i = 0; i < st->ni; i++) {
        int s = st->items[i].scope, t = s >= 0 ? st->scopes[s].top : -1;
        if (t < 0) { fresh[n++] = st->items[i]; continue; }
        if (!done[t]) fresh[n++] = scope_box(st, t);
        done[t] = 1;
    }
    for (int i = 0; i < st->ni; i++)
        if (st->items[i].scope >= 0) mg_free(st->items[i].label);
    mg_free(st->items);
    mg_free(done);
    st->items = fresh;
    st->ni = st->cap_i = n;
}

/* ---- emitting DOT text ------------------------------------------------------------ */
/* Writes text, indenting each line after the first by 2 * depth spaces. */
static void put_indented(sbuf *b, const char *text, int depth)
{
    for (const char *nl; (nl = strchr(text, '\n')); text = nl + 1) {
        sb_putn(b, text, (size_t)(nl - text) + 1);
        sb_printf(b, "%*s", 2 * depth, "");
    }
    sb_puts(b, text);
}

static void emit_item(sbuf *b, const dot_item *it, int depth)
{
    sb_printf(b, "%*s%s [label=%s", 2 * depth, "", it->id, it->html ? "<" : "\"");
    put_indented(b, it->label, depth);
    sb_printf(b, "%s, %s];\n", it->html ? ">" : "\"", it->attrs);
}

/* "{rank=same; n1; p0;}" for each node of scope s (-1: the top level) that
 * parameter items of s are anchored to. */
static void emit_ranks(sbuf *b, const dot_state *st, int s, int depth)
{
    for (int i = 0; i < st->ni; i++) {
        const char *anchor = st->items[i].rank_with;
        int first = st->items[i].scope == s && anchor[0];
        for (int j = 0; first && j < i; j++)
            first = !(st->items[j].scope == s && !strcmp(st->items[j].rank_with, anchor));
        if (!first) continue;
        sb_printf(b, "%*s{rank=same; %s;", 2 * depth, "", anchor);
        for (int j = i; j < st->ni; j++)
            if (st->items[j].scope == s && !strcmp(st->items[j].rank_with, anchor))
                sb_printf(b, " %s;", st->items[j].id);
        sb_puts(b, "}\n");
    }
}

static void emit_cluster(sbuf *b, const dot_state *st, int s, int depth)
{
    const dot_scope *sc = &st->scopes[s];
    if (sc->n_items == 0) return;
    sb_printf(b, "%*ssubgraph cluster_s%d {\n", 2 * depth, "", s);
    sb_printf(b, "%*slabel=\"", 2 * depth + 2, "");
    sb_escape(b, sc->path);
    if (sc->type) {
        sb_puts(b, " (");
        sb_escape(b, sc->type);
        sb_puts(b, ")");
    }
    /* the label goes above the parameters (left of their node forward,
     * right of it backward), clear of the edges coming into the node */
    sb_printf(b, "\"; labeljust=%s;\n%*sstyle=\"rounded,filled\"; color=\"#888888\"; fillcolor=\"%s\";\n",
              st->o.view == MG_DOT_BACKWARD ? "r" : "l", 2 * depth + 2, "", depth % 2 ? "#f6f6f6" : "#ececec");
    for (int i = 0; i < st->ni; i++)
        if (st->items[i].scope == s) emit_item(b, &st->items[i], depth + 1);
    emit_ranks(b, st, s, depth + 1);
    for (int c = 0; c < st->ns; c++)
        if (st->scopes[c].parent == s) emit_cluster(b, st, c, depth + 1);
    sb_printf(b, "%*s}\n", 2 * depth, "");
}

/* "a -> b [label=..., style];", without the brackets when both are empty. */
static void emit_edge(sbuf *b, const dot_state *st, const dot_edge *e)
{
    int n = 0;
    const char *style = e->grey ? "style=dashed, color=\"#aaaaaa\", fontcolor=\"#aaaaaa\""
                        : st->o.view == MG_DOT_BACKWARD ? "color=\"#a0306a\"" : NULL;
    sb_printf(b, "  %s -> %s", e->src, e->dst);
    if (e->label[0]) {
        sb_puts(b, " [label=\"");
        sb_puts(b, e->label);
        sb_puts(b, "\"");
        n++;
    }
    if (style) sb_printf(b, "%s%s", n++ ? ", " : " [", style);
    sb_puts(b, n ? "];\n" : ";\n");
}

static void emit_header(sbuf *b, const dot_state *st)
{
    sb_printf(b, "digraph mintgrad {\n  graph [rankdir=%s, fontname=\"Helvetica\", fontsize=12",
              st->o.left_to_right ? "LR" : "TB");
    if (st->o.title && *st->o.title) {
        sb_puts(b, ", labelloc=t, label=\"");
        sb_escape(b, st->o.title);
        sb_puts(b, "\"");
    }
    /* The wider node margin leaves room for viewers whose (unhinted) text is
     * wider than Graphviz measured it. */
    sb_puts(b, "];\n  node [fontname=\"Helvetica\", fontsize=10, margin=\"0.15,0.055\"];\n"
               "  edge [fontname=\"Helvetica\", fontsize=9];\n");
}

static void count_scope_items(dot_state *st)
{
    for (int s = 0; s < st->ns; s++) st->scopes[s].n_items = 0;
    for (int i = 0; i < st->ni; i++)
        for (int s = st->items[i].scope; s >= 0; s = st->scopes[s].parent) st->scopes[s].n_items++;
}

static void emit(sbuf *b, dot_state *st)
{
    emit_header(b, st);
    count_scope_items(st);
    for (int i = 0; i < st->ni; i++)
        if (st->items[i].scope < 0) emit_item(b, &st->items[i], 1);
    emit_ranks(b, st, -1, 1);
    for (int s = 0; s < st->ns; s++)
        if (st->scopes[s].parent < 0) emit_cluster(b, st, s, 1);
    for (int i = 0; i < st->ne; i++) emit_edge(b, st, &st->edges[i]);
    sb_puts(b, "}\n");
}

/* ---- state and options ----------------------------------------------------------- */
static void state_free(dot_state *st)
{
    for (int i = 0; i < st->ni; i++) mg_free(st->items[i].label);
    for (int i = 0; i < st->ne; i++) mg_free(st->edges[i].label);
    mg_free(st->items);
    mg_free(st->edges);
    mg_free(st->scopes);
    mg_free(st->is_loss);
    mg_free(st->runs);
    mg_free(st->used);
    mg_free(st->bwd);
    mg_free(st->grad_param);
    mg_free(st->node_scope);
    mg_free(st->value_scope);
}

static int state_init(dot_state *st)
{
    size_t nv = (size_t)st->nv + 1, nn = (size_t)st->nn + 1;
    st->is_loss = mg_calloc(nv, 1);
    st->grad_param = mg_calloc(nv, 1);
    st->used = mg_calloc(nv, 1);
    st->value_scope = mg_calloc(nv, sizeof(int));
    st->runs = mg_calloc(nn, 1);
    st->bwd = mg_calloc(nn, 1);
    st->node_scope = mg_calloc(nn, sizeof(int));
    return st->is_loss && st->grad_param && st->used && st->value_scope && st->runs && st->bwd && st->node_scope;
}

mg_dot_opts mg_dot_defaults(void)
{
    return (mg_dot_opts){.struct_size = sizeof(mg_dot_opts)};
}

/* Copies the caller's options over the defaults (an older, shorter struct
 * keeps the defaults for the fields it lacks) and checks them. */
static mg_status read_opts(mg_ctx *ctx, const mg_graph *g, const mg_dot_opts *in, mg_dot_opts *o)
{
    *o = mg_dot_defaults();
    if (!in) return MG_OK;
    if (in->struct_size < offsetof(mg_dot_opts, collapse))
        return mg_ctx_fail(ctx, MG_ERR_ARG, "DOT export: opts.struct_size is %zu; set it to sizeof(mg_dot_opts)",
                           in->struct_size);
    memcpy(o, in, in->struct_size < sizeof *o ? in->struct_size : sizeof *o);
    o->struct_size = sizeof *o;
    if (o->view != MG_DOT_FORWARD && o->view != MG_DOT_BACKWARD)
        return mg_ctx_fail(ctx, MG_ERR_ARG, "DOT export: unknown view %d", (int)o->view);
    if (o->params != MG_DOT_PARAMS_TABLE && o->params != MG_DOT_PARAMS_BOXES)
        return mg_ctx_fail(ctx, MG_ERR_ARG, "DOT export: unknown parameter style %d", (int)o->params);
    if (o->exec && mg_exec_graph(o->exec) != g)
        return mg_ctx_fail(ctx, MG_ERR_ARG, "DOT export: opts.exec was compiled from another graph");
    if (o->n_losses < 0 || (o->n_losses > 0 && !o->losses))
        return mg_ctx_fail(ctx, MG_ERR_ARG, "DOT export: %d losses but no loss array", o->n_losses);
    for (int i = 0; i < o->n_losses; i++)
        if (o->losses[i].id < 0 || o->losses[i].id >= mg_graph_num_values(g))
            return mg_ctx_fail(ctx, MG_ERR_ARG, "DOT export: loss %d is value %d, not a value of this graph",
                               i, (int)o->losses[i].id);
    return MG_OK;
}

/* Builds the DOT text of g into a new string. */
static mg_status dot_build(const mg_graph *g, const mg_dot_opts *opts, char **out, size_t *len)
{
    mg_ctx *ctx = mg_graph_ctx(g);
    dot_state st = {.g = g, .ctx = ctx, .nv = mg_graph_num_values(g), .nn = mg_graph_num_nodes(g)};
    mg_status s = read_opts(ctx, g, opts, &st.o);
    if (s != MG_OK) return s;
    sbuf b = {0};
    int ok = state_init(&st);
    if (ok) {
        collect_scopes(&st);
        analyse(&st);
        if (st.o.view == MG_DOT_BACKWARD) build_backward(&st);
        else build_forward(&st);
        anchor_params(&st);
        if (st.o.collapse && !st.oom) collapse_scopes(&st);
        if (!st.oom) emit(&b, &st);
    }
    ok = ok && !st.oom && !b.oom;
    state_free(&st);
    size_t n = b.n;
    *out = sb_take(&b);
    if (!ok || !*out) {
        mg_free(*out);
        *out = NULL;
        return mg_ctx_fail(ctx, MG_ERR_NOMEM, "DOT export: out of memory for a graph of %d nodes", st.nn);
    }
    if (len) *len = n;
    return MG_OK;
}

/* ---- public entry points ------------------------------------------------------------ */
mg_status mg_dot_string(const mg_graph *g, const mg_dot_opts *opts, char **out, size_t *len)
{
    if (out) *out = NULL;
    if (!g) return MG_ERR_ARG;
    if (!out) return mg_ctx_fail(mg_graph_ctx(g), MG_ERR_ARG, "mg_dot_string: out is NULL");
    return dot_build(g, opts, out, len);
}

mg_status mg_dot_write(const mg_graph *g, const mg_dot_opts *opts, FILE *f)
{
    if (!g) return MG_ERR_ARG;
    mg_ctx *ctx = mg_graph_ctx(g);
    if (!f) return mg_ctx_fail(ctx, MG_ERR_ARG, "mg_dot_write: file is NULL");
    char *text = NULL;
    size_t n = 0;
    mg_status s = dot_build(g, opts, &text, &n);
    if (s != MG_OK) return s;
    int bad = fwrite(text, 1, n, f) != n || fflush(f) != 0 || ferror(f);
    int err = errno;
    mg_free(text);
    if (bad) return mg_ctx_fail(ctx, MG_ERR_IO, "writing DOT text failed: %s", strerror(err));
    return MG_OK;
}

static const char *const dot_formats[] = {"dot", "svg", "png", "pdf", NULL};

/* The canonical (lower-case, static) name of a supported format, or NULL. */
static const char *known_format(const char *name)
{
    for (int i = 0; name && dot_formats[i]; i++)
        if (strcasecmp(name, dot_formats[i]) == 0) return dot_formats[i];
    return NULL;
}

mg_status mg_dot_format_from_path(mg_ctx *ctx, const char *fname, const char **format)
{
    const char *slash = fname ? strrchr(fname, '/') : NULL;
    const char *dot = fname ? strrchr(slash ? slash : fname, '.') : NULL;
    const char *f = dot ? known_format(dot + 1) : NULL;
    if (format) *format = f;
    if (f) return MG_OK;
    if (!ctx) return MG_ERR_ARG;
    return mg_ctx_fail(ctx, MG_ERR_ARG,
                       "cannot tell the graph format of '%s': use a file name ending in .dot, .svg, .png or .pdf",
                       fname ? fname : "(null)");
}

static mg_status write_text_file(mg_ctx *ctx, const char *fname, const char *text, size_t n)
{
    FILE *f = fopen(fname, "wb");
    if (!f) return mg_ctx_fail(ctx, MG_ERR_IO, "cannot write graph file '%s': %s", fname, strerror(errno));
    int bad = fwrite(text, 1, n, f) != n;
    int err = errno;
    bad |= fclose(f) != 0;
    if (!bad) return MG_OK;
    return mg_ctx_fail(ctx, MG_ERR_IO, "writing graph file '%s' failed: %s", fname, strerror(err ? err : errno));
}

/* Graphviz reports through agerr(); while rendering, its messages are
 * collected here instead of going to stderr. */
static char gv_errbuf[1024];

static int gv_capture(char *msg)
{
    size_t n = strlen(gv_errbuf);
    snprintf(gv_errbuf + n, sizeof gv_errbuf - n, "%s", msg ? msg : "");
    return 0;
}

/* The collected Graphviz messages on one line. */
static const char *gv_message(void)
{
    size_t n = strlen(gv_errbuf);
    for (size_t i = 0; i < n; i++)
        if (gv_errbuf[i] == '\n') gv_errbuf[i] = ' ';
    while (n > 0 && gv_errbuf[n - 1] == ' ') gv_errbuf[--n] = '\0';
    return n ? gv_errbuf : "Graphviz gave no message";
}

static mg_status gv_layout_render(mg_ctx *ctx, GVC_t *gvc, Agraph_t *G, const char *format, const char *fname)
{
    if (gvLayout(gvc, G, "dot") != 0)
        return mg_ctx_fail(ctx, MG_ERR_BACKEND,
                           "Graphviz could not lay the graph out: %s (the graphviz package must be "
                           "installed and its plugins configured, `dot -c`)", gv_message());
    int rc = gvRenderFilename(gvc, G, format, fname);
    gvFreeLayout(gvc, G);
    if (rc == 0 && agerrors() < AGERR) return MG_OK;
    remove(fname);
    return mg_ctx_fail(ctx, MG_ERR_BACKEND, "Graphviz could not render %s to '%s': %s", format, fname,
                       gv_message());
}

/* One Graphviz context for the whole process, made on first use and never
 * freed: Graphviz 2.42's text-layout (pango) plugin caches a pointer to a
 * font name owned by the context, so freeing a context and making another
 * reads freed memory on the next render. */
static GVC_t *gv_context(void)
{
    static GVC_t *gvc;
    if (!gvc) gvc = gvContext();
    return gvc;
}

static mg_status gv_render(mg_ctx *ctx, const char *text, const char *format, const char *fname)
{
    gv_errbuf[0] = '\0';
    agusererrf old = agseterrf(gv_capture);
    agreseterrors();
    mg_status s = MG_OK;
    GVC_t *gvc = gv_context();
    Agraph_t *G = gvc ? agmemread(text) : NULL;
    if (!gvc) s = mg_ctx_fail(ctx, MG_ERR_BACKEND, "Graphviz could not create a context: %s", gv_message());
    else if (!G) s = mg_ctx_fail(ctx, MG_ERR_BACKEND, "Graphviz could not read the DOT text: %s", gv_message());
    else s = gv_layout_render(ctx, gvc, G, format, fname);
    if (s == MG_OK && gv_errbuf[0]) mg_ctx_log(ctx, MG_LOG_WARN, "Graphviz: %s", gv_message());
    if (G) agclose(G);
    agseterrf(old);
    return s;
}

/* Opens (and so creates or truncates) fname for writing, to report an
 * unwritable fname ourselves: Graphviz only logs it and reports success. */
static mg_status check_writable(mg_ctx *ctx, const char *fname)
{
    FILE *f = fopen(fname, "wb");
    if (!f) return mg_ctx_fail(ctx, MG_ERR_IO, "cannot write graph image '%s': %s", fname, strerror(errno));
    fclose(f);
    return MG_OK;
}

mg_status mg_dot_render(const mg_graph *g, const mg_dot_opts *opts, const char *format, const char *fname)
{
    if (!g) return MG_ERR_ARG;
    mg_ctx *ctx = mg_graph_ctx(g);
    const char *fmt = known_format(format);
    if (!fname || !*fname) return mg_ctx_fail(ctx, MG_ERR_ARG, "mg_dot_render: no output path");
    if (!fmt)
        return mg_ctx_fail(ctx, MG_ERR_ARG, "unknown graph format '%s' for '%s': use dot, svg, png or pdf",
                           format ? format : "(null)", fname);
    char *text = NULL;
    size_t n = 0;
    mg_status s = dot_build(g, opts, &text, &n);
    if (s == MG_OK && strcmp(fmt, "dot") == 0) s = write_text_file(ctx, fname, text, n);
    else if (s == MG_OK) s = check_writable(ctx, fname);
    if (s == MG_OK && strcmp(fmt, "dot") != 0) s = gv_render(ctx, text, fmt, fname);
    mg_free(text);
    return s;
}

mg_status mg_dot_save(const mg_graph *g, const mg_dot_opts *opts, const char *fname)
{
    if (!g) return MG_ERR_ARG;
    const char *fmt = NULL;
    mg_status s = mg_dot_format_from_path(mg_graph_ctx(g), fname, &fmt);
    return s != MG_OK ? s : mg_dot_render(g, opts, fmt, fname);
}
