/* tests/testutil.h: small helpers shared by the Criterion suites: a context
 * per test, random tensors, and an assertion wrapper around the gradient
 * checker that prints its report on failure. */
#ifndef MG_TESTUTIL_H
#define MG_TESTUTIL_H

#include <criterion/criterion.h>
#include <math.h>
#include <mintgrad/mintgrad.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* A fresh context; fails the test if it cannot be made. */
static inline mg_ctx *tu_ctx(void)
{
    mg_ctx *ctx = NULL;
    cr_assert_eq(mg_ctx_new(&ctx), MG_OK, "mg_ctx_new failed");
    return ctx;
}

/* A tensor of the given dtype and shape, U(lo, hi) from `seed`. */
static inline mg_tensor *tu_rand(mg_dtype dt, int rank, const int64_t *shape, double lo, double hi,
                                 uint64_t seed)
{
    mg_tensor *t = mg_tensor_new(dt, rank, shape);
    cr_assert_not_null(t);
    mg_rng r;
    mg_rng_seed(&r, seed);
    mg_tensor_rand_uniform(t, &r, lo, hi);
    return t;
}

/* Runs mg_gradcheck_op and fails the test with the report's message unless
 * every element passed. Returns the report for further assertions. */
static inline mg_gradcheck_report tu_gradcheck_op(mg_ctx *ctx, const char *op, const mg_tensor *const *in,
                                                  int n, const mg_attrs *attrs,
                                                  const mg_gradcheck_opts *opts)
{
    mg_gradcheck_report rep;
    mg_gradcheck_opts o = opts ? *opts : mg_gradcheck_defaults();
    mg_status s = mg_gradcheck_op(ctx, op, in, n, attrs, &o, &rep);
    cr_assert_eq(s, MG_OK, "gradcheck %s: %s (%s)", op, rep.message, mg_ctx_error(ctx));
    cr_assert_gt(rep.checked, 0, "gradcheck %s checked nothing", op);
    return rep;
}

/* Max |a - b| over two same-size tensors (read as doubles). */
static inline double tu_max_abs_diff(const mg_tensor *a, const mg_tensor *b)
{
    int64_t n = mg_tensor_numel(a);
    cr_assert_eq(n, mg_tensor_numel(b), "element counts differ");
    double m = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs(mg_tensor_get(a, i) - mg_tensor_get(b, i));
        if (d > m || isnan(d)) m = isnan(d) ? INFINITY : d;
    }
    return m;
}

/* ---- one-node runs -------------------------------------------------------
 * Build a graph with inputs "in0".."in<n-1>" shaped like in[], one node of
 * `op`, compile, copy the data in, and run. They fail the test on any error
 * except in tu_try_op, which only adds the node and returns its status. */

/* One node's graph; inputs' values go to v[]. */
static inline mg_graph *tu_node_graph(mg_ctx *ctx, const mg_tensor *const *in, int n, mg_value *v)
{
    mg_graph *g;
    cr_assert_eq(mg_graph_new(ctx, &g), MG_OK);
    for (int i = 0; i < n; i++) {
        char name[16];
        snprintf(name, sizeof name, "in%d", i);
        v[i] = mg_graph_input(g, name, in[i]->dtype, in[i]->rank, in[i]->shape);
    }
    return g;
}

static inline void tu_set_inputs(mg_exec *e, const mg_tensor *const *in, int n)
{
    for (int i = 0; i < n; i++) {
        char name[16];
        snprintf(name, sizeof name, "in%d", i);
        cr_assert_eq(mg_exec_set_input(e, name, in[i]), MG_OK);
    }
}

/* Forward; clones up to `max` outputs into out[]; returns the output count. */
static inline int tu_run_op(mg_ctx *ctx, const char *op, const mg_tensor *const *in, int n,
                            const mg_attrs *attrs, mg_tensor **out, int max)
{
    mg_value v[16], y[16];
    mg_exec *e = NULL;
    int n_out = 0;
    mg_graph *g = tu_node_graph(ctx, in, n, v);
    cr_assert_eq(mg_graph_node(g, op, NULL, v, n, attrs, y, 16, &n_out), MG_OK, "%s: %s", op,
                 mg_ctx_error(ctx));
    mg_compile_opts o = {.struct_size = sizeof o, .outputs = y, .n_outputs = n_out};
    cr_assert_eq(mg_graph_compile(g, &o, &e), MG_OK, "%s: %s", op, mg_ctx_error(ctx));
    tu_set_inputs(e, in, n);
    cr_assert_eq(mg_exec_forward(e), MG_OK, "%s: %s", op, mg_ctx_error(ctx));
    for (int k = 0; k < n_out && k < max; k++) out[k] = mg_tensor_clone(mg_exec_tensor(e, y[k]));
    mg_exec_free(e);
    mg_graph_free(g);
    return n_out;
}

/* Forward, then backward with d(loss)/d(output 0) = seed. grads[i] gets a
 * clone of d(loss)/d(in[i]) for each input whose bit is set in `which`
 * (NULL for the others). */
static inline void tu_run_grad(mg_ctx *ctx, const char *op, const mg_tensor *const *in, int n,
                               const mg_attrs *attrs, const mg_tensor *seed, unsigned which,
                               mg_tensor **grads)
{
    mg_value v[16], y[16], gv[16];
    mg_exec *e = NULL;
    int ng = 0;
    mg_graph *g = tu_node_graph(ctx, in, n, v);
    cr_assert_eq(mg_graph_node(g, op, NULL, v, n, attrs, y, 16, NULL), MG_OK, "%s: %s", op,
                 mg_ctx_error(ctx));
    for (int i = 0; i < n; i++)
        if (which & (1u << i)) gv[ng++] = v[i];
    mg_compile_opts o = {.struct_size = sizeof o, .training = 1, .losses = y, .n_losses = 1,
                         .grad_values = gv, .n_grad_values = ng};
    cr_assert_eq(mg_graph_compile(g, &o, &e), MG_OK, "%s: %s", op, mg_ctx_error(ctx));
    tu_set_inputs(e, in, n);
    cr_assert_eq(mg_tensor_copy(mg_exec_seed(e, y[0]), seed), MG_OK);
    cr_assert_eq(mg_exec_forward(e), MG_OK, "%s: %s", op, mg_ctx_error(ctx));
    cr_assert_eq(mg_exec_backward(e), MG_OK, "%s: %s", op, mg_ctx_error(ctx));
    for (int i = 0; i < n; i++) {
        grads[i] = which & (1u << i) ? mg_tensor_clone(mg_exec_grad(e, v[i])) : NULL;
        cr_assert(grads[i] || !(which & (1u << i)), "%s: no gradient for input %d", op, i);
    }
    mg_exec_free(e);
    mg_graph_free(g);
}

/* Adds the node only; returns its status (which the graph must keep). */
static inline mg_status tu_try_op(mg_ctx *ctx, const char *op, const mg_tensor *const *in, int n,
                                  const mg_attrs *attrs)
{
    mg_value v[16], y[16];
    mg_graph *g = tu_node_graph(ctx, in, n, v);
    mg_status s = mg_graph_node(g, op, NULL, v, n, attrs, y, 16, NULL);
    cr_assert_eq(mg_graph_status(g), s);
    mg_graph_free(g);
    return s;
}

/* ---- a temporary directory per test --------------------------------------
 * Criterion forks each test; TestSuite(x, .init = tu_tmpdir_make, .fini =
 * tu_tmpdir_remove) gives every test an empty /tmp/mg_test_XXXXXX. */
static inline char *tu_tmpdir(void)
{
    static char dir[256];
    return dir;
}

static inline void tu_tmpdir_make(void)
{
    snprintf(tu_tmpdir(), 256, "/tmp/mg_test_XXXXXX");
    cr_assert_not_null(mkdtemp(tu_tmpdir()));
}

static inline void tu_tmpdir_remove(void)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tu_tmpdir());
    if (system(cmd) != 0) cr_log_warn("could not remove %s", tu_tmpdir());
}

/* "<tmpdir>/<name>" in one of 8 rotating buffers. */
static inline const char *tu_path(const char *name)
{
    static char buf[8][512];
    static int k;
    char *p = buf[k++ % 8];
    snprintf(p, 512, "%s/%s", tu_tmpdir(), name);
    return p;
}

#endif
