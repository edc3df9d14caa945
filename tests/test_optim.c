/* tests/test_optim.c: SGD and Adam against trajectories computed by PyTorch
 * 1.13 (Debian's python3-torch, the peer) for the same problem, gradient
 * zeroing, clipping and option validation. The reference script:
 *   p = [0.5, -1.5, 2.0, 0.0]; k = [1, 2, 0.5, 3]
 *   for t in 0..4: loss = sum(k * p^2 / (t + 1) + p); backward; step
 * in float64. */
#include "testutil.h"

#include <string.h>

typedef struct prob {
    mg_ctx *ctx;
    mg_params *ps;
    mg_param *p;
    mg_graph *g;
    mg_exec *e;
    mg_value c;
} prob;

static prob prob_new(void)
{
    prob q = {.ctx = tu_ctx()};
    int64_t four = 4, one = 1;
    cr_assert_eq(mg_params_new(&q.ps), MG_OK);
    cr_assert_eq(mg_params_add(q.ps, "p", MG_F64, 1, &four, &q.p), MG_OK);
    const double p0[4] = {0.5, -1.5, 2.0, 0.0}, k[4] = {1, 2, 0.5, 3};
    memcpy(q.p->value->data, p0, sizeof p0);
    cr_assert_eq(mg_graph_new(q.ctx, &q.g), MG_OK);
    mg_tensor *kt = mg_tensor_wrap(MG_F64, 1, &four, (void *)k);
    mg_value pv = mg_graph_param(q.g, q.p), kv = mg_graph_const(q.g, "k", kt);
    mg_tensor_free(kt);
    q.c = mg_graph_input(q.g, "c", MG_F64, 1, &one);
    mg_value t = mg_mul(q.g, q.c, mg_mul(q.g, kv, mg_mul(q.g, pv, pv)));
    mg_value L = mg_sum(q.g, mg_add(q.g, t, pv), NULL, 0, 0);
    mg_compile_opts o = {.struct_size = sizeof o, .training = 1, .losses = &L, .n_losses = 1};
    cr_assert_eq(mg_graph_compile(q.g, &o, &q.e), MG_OK, "%s", mg_ctx_error(q.ctx));
    return q;
}

static void prob_run(prob *q, mg_optim *opt, int steps)
{
    for (int t = 0; t < steps; t++) {
        mg_params_zero_grad(q->ps);
        mg_f64(mg_exec_tensor(q->e, q->c))[0] = 1.0 / (t + 1);
        cr_assert_eq(mg_exec_forward(q->e), MG_OK);
        cr_assert_eq(mg_exec_backward(q->e), MG_OK);
        cr_assert_eq(mg_optim_step(opt), MG_OK);
    }
}

static void prob_expect(prob *q, const double want[4])
{
    for (int i = 0; i < 4; i++)
        cr_assert_float_eq(mg_f64(q->p->value)[i], want[i], 1e-12, "p[%d] = %.17g, torch %.17g", i,
                           mg_f64(q->p->value)[i], want[i]);
}

static void prob_free(prob *q, mg_optim *opt)
{
    mg_optim_free(opt);
    mg_exec_free(q->e);
    mg_graph_free(q->g);
    mg_params_free(q->ps);
    mg_ctx_free(q->ctx);
}

static void adam_case(mg_adam_opts ao, const double want[4])
{
    prob q = prob_new();
    mg_optim *opt;
    cr_assert_eq(mg_optim_adam(q.ctx, q.ps, &ao, &opt), MG_OK);
    prob_run(&q, opt, 5);
    prob_expect(&q, want);
    cr_assert_eq(mg_optim_steps(opt), 5);
    prob_free(&q, opt);
}

Test(optim, adam_matches_torch)
{
    const double want[4] = {0.018272793770825746, -1.1157400695360975, 1.5253490136902694, -0.48219629317696194};
    adam_case((mg_adam_opts){.lr = 0.1, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-4}, want);
}

Test(optim, adam_amsgrad_matches_torch)
{
    const double want[4] = {0.018272793770825746, -1.1157634140753283, 1.5253490136902694, -0.48219629317696194};
    adam_case((mg_adam_opts){.lr = 0.1, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-4, .amsgrad = 1}, want);
}

Test(optim, adam_weight_decay_matches_torch)
{
    const double want[4] = {0.2611824512881998, -1.3106893015331957, 1.7652081780407842, -0.2451835408074265};
    adam_case((mg_adam_opts){.lr = 0.05, .beta1 = 0.8, .beta2 = 0.99, .eps = 1e-8, .weight_decay = 0.1}, want);
}

static void sgd_case(mg_sgd_opts so, const double want[4])
{
    prob q = prob_new();
    mg_optim *opt;
    cr_assert_eq(mg_optim_sgd(q.ctx, q.ps, &so, &opt), MG_OK);
    prob_run(&q, opt, 5);
    prob_expect(&q, want);
    prob_free(&q, opt);
}

Test(optim, sgd_momentum_dampening_decay_matches_torch)
{
    const double want[4] = {-1.1705894583897283, 0.4877278436735067, -0.4600575807087591, -0.8259686002930654};
    sgd_case((mg_sgd_opts){.lr = 0.1, .momentum = 0.9, .dampening = 0.1, .weight_decay = 0.01}, want);
}

Test(optim, sgd_nesterov_matches_torch)
{
    const double want[4] = {-1.4739368038400003, 0.08988560160000007, -1.0151124593475003, -0.84199196512};
    sgd_case((mg_sgd_opts){.lr = 0.1, .momentum = 0.9, .nesterov = 1}, want);
}

Test(optim, state_tensors_are_named_and_frozen_params_skipped)
{
    prob q = prob_new();
    mg_optim *opt;
    mg_adam_opts ao = mg_adam_defaults();
    ao.amsgrad = 1;
    cr_assert_eq(mg_optim_adam(q.ctx, q.ps, &ao, &opt), MG_OK);
    cr_assert_eq(mg_optim_num_state(opt), 3);
    cr_assert_str_eq(mg_optim_state(opt, 0)->name, "p.exp_avg");
    cr_assert_str_eq(mg_optim_state(opt, 2)->name, "p.max_exp_avg_sq");
    q.p->requires_grad = 0;
    double before = mg_f64(q.p->value)[0];
    mg_tensor_fill(q.p->grad, 1.0);
    cr_assert_eq(mg_optim_step(opt), MG_OK);
    cr_assert_eq(mg_f64(q.p->value)[0], before);
    prob_free(&q, opt);
}

Test(optim, bad_options_are_rejected_with_the_field_named)
{
    mg_ctx *ctx = tu_ctx();
    mg_params *ps;
    mg_optim *o = (mg_optim *)1;
    cr_assert_eq(mg_params_new(&ps), MG_OK);
    mg_adam_opts ao = mg_adam_defaults();
    ao.beta2 = 1.0;
    cr_assert_eq(mg_optim_adam(ctx, ps, &ao, &o), MG_ERR_ARG);
    cr_assert_null(o);
    cr_assert(strstr(mg_ctx_error(ctx), "beta2"));
    ao = mg_adam_defaults();
    ao.eps = 0;
    cr_assert_eq(mg_optim_adam(ctx, ps, &ao, &o), MG_ERR_ARG);
    cr_assert(strstr(mg_ctx_error(ctx), "eps"));
    mg_sgd_opts so = {.lr = -1};
    cr_assert_eq(mg_optim_sgd(ctx, ps, &so, &o), MG_ERR_ARG);
    cr_assert(strstr(mg_ctx_error(ctx), "lr"));
    mg_params_free(ps);
    mg_ctx_free(ctx);
}

Test(optim, clip_grad_norm_scales_to_the_limit)
{
    mg_params *ps;
    mg_param *a, *b;
    int64_t two = 2;
    cr_assert_eq(mg_params_new(&ps), MG_OK);
    cr_assert_eq(mg_params_add(ps, "a", MG_F32, 1, &two, &a), MG_OK);
    cr_assert_eq(mg_params_add(ps, "b", MG_F64, 1, &two, &b), MG_OK);
    cr_assert_eq(mg_params_add(ps, "a", MG_F32, 1, &two, NULL), MG_ERR_EXISTS);
    mg_f32(a->grad)[0] = 3;
    mg_f32(a->grad)[1] = 0;
    mg_f64(b->grad)[0] = 0;
    mg_f64(b->grad)[1] = 4;
    cr_assert_float_eq(mg_params_clip_grad_norm(ps, 10.0), 5.0, 1e-12);
    cr_assert_eq(mg_f32(a->grad)[0], 3.0f, "below the limit nothing changes");
    cr_assert_float_eq(mg_params_clip_grad_norm(ps, 1.0), 5.0, 1e-12);
    cr_assert_float_eq(mg_f32(a->grad)[0], 0.6, 1e-6);
    cr_assert_float_eq(mg_f64(b->grad)[1], 0.8, 1e-6);
    cr_assert_eq(mg_params_numel(ps), 4);
    mg_params_free(ps);
}
