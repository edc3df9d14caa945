/* mintgrad/dot.h: Graphviz export of computation graphs.
 *
 * Writes a graph (mg_graph) as DOT text, to a FILE*, into a string, or
 * rendered by Graphviz (libgvc) to SVG, PNG or PDF. Two views:
 *   forward   one box per node (name, op, output shapes), the graph's
 *             inputs, parameters (name, shape, element count) and
 *             constants, and edges labelled with tensor shapes
 *             ("1: f32[8, 2]" for output 1 of a multi-output node);
 *   backward  one "grad <node>" box per node whose backward runs, laid out
 *             from the loss down, edges for the flow of gradients, and the
 *             parameters that receive a gradient.
 * Layer scopes (mg_graph_push_scope: "flow.3" of type "mintnet.block") are
 * drawn as nested clusters labelled "flow.3 (mintnet.block)", or, collapsed,
 * one box per outermost scope. In a cluster, the parameters of the scope
 * are one table (opts.params) on the same rank as the first node using
 * them, so consecutive layers stack; edges from (backward: to) parameters
 * carry no shape label, the table or box already shows it.
 *
 * The output is stable: Graphviz ids come from graph indices ("n12" for node
 * 12, "v7" for value 7, "s2" for scope 2, "p2" for the parameter table of
 * scope 2, whose rows have ports "v7"), never from pointers, so the same
 * graph and options always give byte-identical text. Labels are escaped for
 * DOT: quotes and backslashes are escaped, '&' becomes "&amp;" (Graphviz
 * reads entities in any label), newlines become line breaks, other
 * control characters and invalid UTF-8 bytes become '?', valid non-ASCII
 * UTF-8 is kept as is. Table labels are HTML-like: '<', '>', '"' become
 * entities too and backslashes are doubled, with the same replacements.
 *
 * An inverse (sampling) graph is drawn like any graph: pass it with view
 * MG_DOT_FORWARD and a title such as "inverse".
 *
 * Errors go to the graph's context (mg_graph_ctx). Rendering goes through
 * Graphviz, which is not thread-safe: render from one thread at a time. */
#ifndef MINTGRAD_DOT_H
#define MINTGRAD_DOT_H

#include <stdio.h>

#include <mintgrad/graph.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum mg_dot_view {
    MG_DOT_FORWARD = 0,
    MG_DOT_BACKWARD = 1
} mg_dot_view;

/* How a view draws the parameters of a layer scope. */
typedef enum mg_dot_params {
    /* One table per scope, a row per parameter (name without the scope's
     * prefix, shape, element count) under a header with the total, drawn
     * beside the node that uses them. Parameters outside any scope, and
     * one drawn as a loss, stay boxes. */
    MG_DOT_PARAMS_TABLE = 0,
    MG_DOT_PARAMS_BOXES = 1   /* one box per parameter */
} mg_dot_params;

/* What to do with the nodes a compiled graph (opts.exec) does not run. */
typedef enum mg_dot_pruned {
    MG_DOT_PRUNED_GREY = 0,  /* drawn grey and dashed */
    MG_DOT_PRUNED_HIDE = 1   /* left out, with the values only they use */
} mg_dot_pruned;

typedef struct mg_dot_opts {
    size_t struct_size;     /* sizeof(mg_dot_opts) */
    mg_dot_view view;       /* MG_DOT_FORWARD (default) or MG_DOT_BACKWARD */
    /* 1: each outermost scope is one box (its internal edges hidden, edges
     * crossing it kept); 0: scopes are nested clusters. */
    int collapse;
    /* Optional, compiled from this graph. Forward view: nodes it does not
     * run are greyed or hidden (see `pruned`). Backward view: exactly the
     * nodes whose backward it calls are drawn. Its losses are taken when
     * `losses` is empty. */
    const mg_exec *exec;
    mg_dot_pruned pruned;
    /* Values drawn as losses (and where the backward view starts). None
     * given: the exec's losses; no exec either: the backward view starts
     * from every node output that no node consumes, the forward view marks
     * no loss. */
    const mg_value *losses;
    int n_losses;
    const char *title;      /* graph label; NULL or "": none */
    int left_to_right;      /* 1: rankdir=LR; 0: top to bottom (default) */
    int show_attrs;         /* 1: node labels list the op's attributes */
    mg_dot_params params;   /* MG_DOT_PARAMS_TABLE (default) or _BOXES */
} mg_dot_opts;

/* Defaults: forward view, expanded scopes, parameter tables, no exec, no
 * title. */
mg_dot_opts mg_dot_defaults(void);

/* Writes g as DOT text to f. opts may be NULL (defaults). Fails with
 * MG_ERR_ARG (NULL graph or file, an exec compiled from another graph, a
 * loss that is not a value of g, bad struct_size), MG_ERR_NOMEM or
 * MG_ERR_IO (a write error). */
mg_status mg_dot_write(const mg_graph *g, const mg_dot_opts *opts, FILE *f);

/* Same, into a NUL-terminated string allocated with mg_malloc; the caller
 * frees it with mg_free. *len (if not NULL) gets its length. On failure *out
 * is NULL. */
mg_status mg_dot_string(const mg_graph *g, const mg_dot_opts *opts, char **out, size_t *len);

/* Lays the graph out with Graphviz's "dot" engine and writes it to `path` in
 * `format`: "svg", "png", "pdf", or "dot" (the DOT text itself, without
 * Graphviz). Fails with MG_ERR_ARG (unknown format), MG_ERR_IO (the path
 * cannot be written: the message names it and says why) or MG_ERR_BACKEND
 * (Graphviz failed: the message carries Graphviz's own error text). */
mg_status mg_dot_render(const mg_graph *g, const mg_dot_opts *opts, const char *format,
                        const char *path);

/* mg_dot_render with the format taken from the path's extension. */
mg_status mg_dot_save(const mg_graph *g, const mg_dot_opts *opts, const char *path);

/* The format for a file name: ".dot" -> "dot", ".svg" -> "svg", ".png" ->
 * "png", ".pdf" -> "pdf" (case-insensitive). Anything else is MG_ERR_ARG,
 * with a message on ctx when ctx is not NULL; *format is then NULL. */
mg_status mg_dot_format_from_path(mg_ctx *ctx, const char *path, const char **format);

#ifdef __cplusplus
}
#endif
#endif
