/* tests/test_train.c: end to end. A small convolutional network, trained by
 * Adam on generated data for a 800 steps, must fit a fixed
 * "teacher" network: the loss has to fall by at least a factor of 20.
 *
 * Student: conv3x3(2->8) -> elu -> conv3x3(8->2) + bias; teacher: a fixed
 * random conv3x3(2->2) followed by tanh. Input batches are fresh N(0,1)
 * noise every step, so the student must learn the map, not the samples. */
#include "testutil.h"

static void init_param(mg_params *ps, const char *name, int rank, const int64_t *shape, mg_rng *r,
                       double std, mg_param **out)
{
    cr_assert_eq(mg_params_add(ps, name, MG_F32, rank, shape, out), MG_OK);
    mg_tensor_rand_normal((*out)->value, r, 0, std);
}

Test(train, small_conv_net_fits_a_teacher)
{
    mg_ctx *ctx = tu_ctx();
    mg_rng rng;
    mg_rng_seed(&rng, 2024);
    mg_params *ps;
    mg_param *w1, *b1, *w2, *b2;
    cr_assert_eq(mg_params_new(&ps), MG_OK);
    init_param(ps, "w1", 4, (int64_t[]){8, 2, 3, 3}, &rng, 0.3, &w1);
    init_param(ps, "b1", 1, (int64_t[]){8}, &rng, 0.0, &b1);
    init_param(ps, "w2", 4, (int64_t[]){2, 8, 3, 3}, &rng, 0.2, &w2);
    init_param(ps, "b2", 1, (int64_t[]){2}, &rng, 0.0, &b2);
    mg_tensor *wt = mg_tensor_new4(MG_F32, 2, 2, 3, 3);
    mg_tensor_rand_normal(wt, &rng, 0, 0.4);

    mg_graph *g;
    cr_assert_eq(mg_graph_new(ctx, &g), MG_OK);
    int64_t xs[4] = {16, 2, 10, 10};
    mg_value x = mg_graph_input(g, "x", MG_F32, 4, xs);
    mg_value teacher = mg_tanh(g, mg_conv2d(g, x, mg_graph_const(g, "wt", wt), MG_VALUE_NONE, 1, 1));
    mg_value h = mg_elu(g, mg_conv2d(g, x, mg_graph_param(g, w1), mg_graph_param(g, b1), 1, 1), 1.0);
    mg_value y = mg_conv2d(g, h, mg_graph_param(g, w2), mg_graph_param(g, b2), 1, 1);
    mg_value loss = mg_mse(g, y, teacher);
    mg_compile_opts o = {.struct_size = sizeof o, .training = 1, .losses = &loss, .n_losses = 1};
    mg_exec *e;
    cr_assert_eq(mg_graph_compile(g, &o, &e), MG_OK, "%s", mg_ctx_error(ctx));
    mg_adam_opts ao = mg_adam_defaults();
    ao.lr = 1e-2;
    mg_optim *opt;
    cr_assert_eq(mg_optim_adam(ctx, ps, &ao, &opt), MG_OK);

    double first = 0, last = 0;
    const int steps = 800;
    for (int s = 0; s < steps; s++) {
        mg_tensor_rand_normal(mg_exec_tensor(e, x), &rng, 0, 1);
        mg_params_zero_grad(ps);
        cr_assert_eq(mg_exec_forward(e), MG_OK);
        cr_assert_eq(mg_exec_backward(e), MG_OK);
        cr_assert_eq(mg_optim_step(opt), MG_OK);
        double l = mg_f32(mg_exec_tensor(e, loss))[0];
        cr_assert(isfinite(l), "step %d: loss %g", s, l);
        if (s < 10) first += l / 10;
        if (s >= steps - 10) last += l / 10;
    }
    cr_log_info("loss %.5f -> %.5f (factor %.1f)", first, last, first / last);
    cr_assert_gt(first / last, 20.0, "loss fell only from %g to %g", first, last);
    mg_optim_free(opt);
    mg_exec_free(e);
    mg_graph_free(g);
    mg_tensor_free(wt);
    mg_params_free(ps);
    mg_ctx_free(ctx);
}
