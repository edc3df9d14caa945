/* mintgrad/optim.h: optimizers over an mg_params set: SGD with momentum
 * (optionally Nesterov) and Adam (optionally AMSGrad), as PyTorch defines
 * them, so that results can be compared against it step by step.
 *
 * An optimizer borrows the parameter set (which must outlive it) and owns its
 * state tensors (momentum, moments), created zeroed on the first step and
 * exposed for checkpoints. Parameters with requires_grad == 0 are skipped. */
#ifndef MINTGRAD_OPTIM_H
#define MINTGRAD_OPTIM_H

#include <mintgrad/graph.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mg_optim mg_optim;

typedef struct mg_sgd_opts {
    double lr;
    double momentum;      /* 0: plain SGD */
    double dampening;
    double weight_decay;  /* L2 added to the gradient */
    int nesterov;
} mg_sgd_opts;

typedef struct mg_adam_opts {
    double lr;            /* 1e-3 */
    double beta1, beta2;  /* 0.9, 0.999 */
    double eps;           /* 1e-8 (MintNet uses 1e-4) */
    double weight_decay;  /* L2 added to the gradient (Adam, not AdamW) */
    int amsgrad;
} mg_adam_opts;

/* PyTorch's defaults. */
mg_adam_opts mg_adam_defaults(void);

/* MG_ERR_ARG for a negative lr, betas outside [0,1), eps <= 0, ... with a
 * message naming the field. */
mg_status mg_optim_sgd(mg_ctx *ctx, mg_params *ps, const mg_sgd_opts *o, mg_optim **out);
mg_status mg_optim_adam(mg_ctx *ctx, mg_params *ps, const mg_adam_opts *o, mg_optim **out);
void mg_optim_free(mg_optim *o);

/* One update from the parameters' current gradients. */
mg_status mg_optim_step(mg_optim *o);
double mg_optim_lr(const mg_optim *o);
void mg_optim_set_lr(mg_optim *o, double lr);
/* Steps taken so far (Adam's bias correction uses it); settable for resume. */
int64_t mg_optim_steps(const mg_optim *o);
void mg_optim_set_steps(mg_optim *o, int64_t steps);
/* "sgd" or "adam". */
const char *mg_optim_name(const mg_optim *o);

/* State tensors for checkpoints, named "<param>.<slot>" (slots: momentum;
 * exp_avg, exp_avg_sq, max_exp_avg_sq). Created on demand, so they exist
 * before the first step too (zero). NULL on allocation failure. */
int mg_optim_num_state(mg_optim *o);
mg_tensor *mg_optim_state(mg_optim *o, int i);

#ifdef __cplusplus
}
#endif
#endif
