/* mintgrad/gradcheck.h: finite-difference gradient checks, for the library's
 * own tests and for plugin authors (like torch.autograd.gradcheck).
 *
 * The check compiles the graph for training, takes the analytic gradient of
 * L = sum_k <r_k, loss_k> (r_k fixed random seeds) with respect to chosen
 * values, and compares it element by element with central differences
 * (L(x+h) - L(x-h)) / 2h, where L is accumulated in double precision.
 * An element passes when |analytic - numeric| <= atol + rtol * max(|a|, |n|).
 * Kink-aware: where the one-sided differences disagree (relu at 0, abs at 0,
 * a max), the function is not differentiable within h, and the element is
 * skipped and counted rather than failed. */
#ifndef MINTGRAD_GRADCHECK_H
#define MINTGRAD_GRADCHECK_H

#include <mintgrad/graph.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mg_gradcheck_opts {
    size_t struct_size;   /* sizeof(mg_gradcheck_opts) */
    double eps;           /* step h; 0: 1e-3 for f32 values, 1e-6 for f64 */
    double atol, rtol;    /* 0: 1e-3/1e-2 (f32), 1e-8/1e-6 (f64) */
    int max_per_value;    /* elements checked per value (spread evenly); 0: all up to 4096 */
    int kink_aware;       /* skip non-differentiable points (default on via mg_gradcheck_defaults) */
    uint64_t seed;        /* for the random loss weights */
    int random_seed_grads;/* 1: r_k random in [-1,1]; 0: ones */
} mg_gradcheck_opts;

typedef struct mg_gradcheck_report {
    int checked;          /* elements compared */
    int failed;
    int skipped_kinks;
    double max_abs_err;
    double max_rel_err;
    int worst_value;      /* index into wrt[] of the worst element */
    int64_t worst_index;
    double worst_analytic, worst_numeric;
    char message[512];    /* a one-line summary, naming the worst element */
} mg_gradcheck_report;

mg_gradcheck_opts mg_gradcheck_defaults(void);

/* Checks d(loss)/d(wrt[i]) in graph g. wrt may name inputs, constants or
 * parameters; inputs are filled from `input_data` (same order as the graph's
 * inputs as given in `inputs`, copied in before every evaluation). Returns
 * MG_OK when every element passed, MG_ERR_NUMERIC when some failed (report
 * says which), other codes for setup failures. */
mg_status mg_gradcheck_graph(mg_graph *g, const mg_value *losses, int n_losses,
                             const mg_value *wrt, int n_wrt,
                             const mg_value *inputs, const mg_tensor *const *input_data, int n_inputs,
                             const mg_gradcheck_opts *opts, mg_gradcheck_report *report);

/* Convenience for one op: builds a graph with one node of `op` on inputs
 * holding copies of `inputs`, seeds every output, and checks the gradient of
 * every input not in the op's nondiff_inputs. */
mg_status mg_gradcheck_op(mg_ctx *ctx, const char *op, const mg_tensor *const *inputs, int n_inputs,
                          const mg_attrs *attrs, const mg_gradcheck_opts *opts,
                          mg_gradcheck_report *report);

#ifdef __cplusplus
}
#endif
#endif
