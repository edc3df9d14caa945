/* tests/test_graph.c: graph building, compile, forward and backward:
 * accumulation in diamonds, pruning, forward-only compiles, reuse across
 * steps, multi-output nodes, shape overrides, and every error class. */
#include "testutil.h"

#include <string.h>

typedef struct fixture {
    mg_ctx *ctx;
    mg_graph *g;
    mg_exec *e;
} fixture;

static fixture fx_new(void)
{
    fixture f = {tu_ctx(), NULL, NULL};
    cr_assert_eq(mg_graph_new(f.ctx, &f.g), MG_OK);
    return f;
}

static void fx_free(fixture *f)
{
    mg_exec_free(f->e);
    mg_graph_free(f->g);
    mg_ctx_free(f->ctx);
}

static mg_exec *compile_train(fixture *f, mg_value loss, const mg_value *wrt, int n_wrt)
{
    mg_compile_opts o = {.struct_size = sizeof o, .training = 1, .losses = &loss, .n_losses = 1,
                         .grad_values = wrt, .n_grad_values = n_wrt};
    mg_status s = mg_graph_compile(f->g, &o, &f->e);
    cr_assert_eq(s, MG_OK, "compile: %s", mg_ctx_error(f->ctx));
    return f->e;
}

static void fill_seq(mg_tensor *t, double a, double b)
{
    for (int64_t i = 0; i < mg_tensor_numel(t); i++) mg_tensor_set(t, i, a + b * (double)i);
}

Test(graph, diamond_accumulates_gradients)
{
    /* L = sum(x*x + x + exp(x)) -> dL/dx = 2x + 1 + exp(x): x feeds four slots. */
    fixture f = fx_new();
    int64_t sh[2] = {3, 5};
    mg_value x = mg_graph_input(f.g, "x", MG_F64, 2, sh);
    mg_value sq = mg_mul(f.g, x, x);
    mg_value s1 = mg_add(f.g, sq, x);
    mg_value s2 = mg_add(f.g, s1, mg_exp(f.g, x));
    mg_value L = mg_sum(f.g, s2, NULL, 0, 0);
    mg_exec *e = compile_train(&f, L, &x, 1);
    mg_tensor *xt = mg_exec_tensor(e, x);
    fill_seq(xt, -1.0, 0.13);
    cr_assert_eq(mg_exec_forward(e), MG_OK);
    cr_assert_eq(mg_exec_backward(e), MG_OK);
    const mg_tensor *gx = mg_exec_grad(e, x);
    double want_L = 0;
    for (int i = 0; i < 15; i++) {
        double v = mg_tensor_get(xt, i);
        want_L += v * v + v + exp(v);
        cr_assert_float_eq(mg_tensor_get(gx, i), 2 * v + 1 + exp(v), 1e-12, "element %d", i);
    }
    cr_assert_float_eq(mg_tensor_get(mg_exec_tensor(e, L), 0), want_L, 1e-10);
    fx_free(&f);
}

Test(graph, parameter_used_twice_and_grads_accumulate_across_backwards)
{
    fixture f = fx_new();
    mg_params *ps;
    mg_param *w;
    int64_t sh[1] = {4};
    cr_assert_eq(mg_params_new(&ps), MG_OK);
    cr_assert_eq(mg_params_add(ps, "w", MG_F64, 1, sh, &w), MG_OK);
    fill_seq(w->value, 0.5, 0.25);
    mg_value wv = mg_graph_param(f.g, w);
    cr_assert_eq(mg_graph_param(f.g, w).id, wv.id, "the same parameter maps to one value");
    mg_value L = mg_sum(f.g, mg_mul(f.g, wv, wv), NULL, 0, 0); /* dL/dw = 2w */
    mg_exec *e = compile_train(&f, L, NULL, 0);
    mg_params_zero_grad(ps);
    cr_assert_eq(mg_exec_forward(e), MG_OK);
    cr_assert_eq(mg_exec_backward(e), MG_OK);
    for (int i = 0; i < 4; i++) cr_assert_float_eq(mg_tensor_get(w->grad, i), 2 * mg_tensor_get(w->value, i), 1e-12);
    cr_assert_eq(mg_exec_forward(e), MG_OK);
    cr_assert_eq(mg_exec_backward(e), MG_OK);
    for (int i = 0; i < 4; i++) cr_assert_float_eq(mg_tensor_get(w->grad, i), 4 * mg_tensor_get(w->value, i), 1e-12);
    mg_params_zero_grad(ps);
    cr_assert_eq(mg_exec_forward(e), MG_OK);
    cr_assert_eq(mg_exec_backward(e), MG_OK);
    for (int i = 0; i < 4; i++) cr_assert_float_eq(mg_tensor_get(w->grad, i), 2 * mg_tensor_get(w->value, i), 1e-12);
    cr_assert_eq(mg_exec_grad(e, wv), w->grad);
    fx_free(&f);
    mg_params_free(ps);
}

Test(graph, pruning_of_forward_and_backward)
{
    /* x -> a = relu(x) -> L;  x -> b = exp(x) (unused);  c = const -> d = tanh(c) -> L2 = a + d */
    fixture f = fx_new();
    int64_t sh[1] = {6};
    mg_value x = mg_graph_input(f.g, "x", MG_F32, 1, sh);
    mg_tensor *ct = tu_rand(MG_F32, 1, sh, -1, 1, 3);
    mg_value c = mg_graph_const(f.g, "c", ct);
    mg_value a = mg_relu(f.g, x);
    mg_value b = mg_exp(f.g, x);
    mg_value d = mg_tanh(f.g, c);
    mg_value L = mg_sum(f.g, mg_add(f.g, a, d), NULL, 0, 0);
    mg_exec *e = compile_train(&f, L, &x, 1);
    int kb = mg_graph_value_node(f.g, b), kd = mg_graph_value_node(f.g, d), ka = mg_graph_value_node(f.g, a);
    cr_assert_not(mg_exec_node_runs(e, kb), "unused branch must not run");
    cr_assert_null(mg_exec_tensor(e, b));
    cr_assert(mg_exec_node_runs(e, kd));
    cr_assert_not(mg_exec_node_backward_runs(e, kd), "constant-only branch needs no backward");
    cr_assert(mg_exec_node_backward_runs(e, ka));
    cr_assert_eq(mg_exec_num_forward_nodes(e), 4);
    cr_assert_eq(mg_exec_num_backward_nodes(e), 3);
    cr_assert_null(mg_exec_grad(e, c));
    mg_tensor_free(ct);
    fx_free(&f);
}

Test(graph, side_branch_off_the_loss_runs_no_backward)
{
    /* m = x * 2 feeds the loss; side = m - x is an output but no loss: its
     * inputs are on the gradient path, yet its backward must not run. */
    fixture f = fx_new();
    mg_value x = mg_graph_input(f.g, "x", MG_F32, 1, (int64_t[]){4});
    mg_value m = mg_scale(f.g, x, 2.0, 0.0);
    mg_value side = mg_sub(f.g, m, x);
    mg_value L = mg_sum(f.g, m, NULL, 0, 0);
    mg_compile_opts o = {.struct_size = sizeof o, .training = 1, .losses = &L, .n_losses = 1,
                         .outputs = &side, .n_outputs = 1, .grad_values = &x, .n_grad_values = 1};
    cr_assert_eq(mg_graph_compile(f.g, &o, &f.e), MG_OK, "%s", mg_ctx_error(f.ctx));
    cr_assert(mg_exec_node_runs(f.e, mg_graph_value_node(f.g, side)));
    cr_assert_not(mg_exec_node_backward_runs(f.e, mg_graph_value_node(f.g, side)));
    cr_assert_eq(mg_exec_num_backward_nodes(f.e), 2);
    fill_seq(mg_exec_tensor(f.e, x), 1, 1);
    cr_assert_eq(mg_exec_forward(f.e), MG_OK);
    cr_assert_eq(mg_exec_backward(f.e), MG_OK);
    for (int i = 0; i < 4; i++) cr_assert_eq(mg_f32(mg_exec_grad(f.e, x))[i], 2.0f);
    fx_free(&f);
}

Test(graph, forward_only_compile_runs_only_requested_outputs)
{
    fixture f = fx_new();
    int64_t sh[1] = {5};
    mg_value x = mg_graph_input(f.g, "x", MG_F32, 1, sh);
    mg_value a = mg_square(f.g, x);
    mg_value b = mg_exp(f.g, x);
    mg_compile_opts o = {.struct_size = sizeof o, .outputs = &a, .n_outputs = 1};
    cr_assert_eq(mg_graph_compile(f.g, &o, &f.e), MG_OK);
    cr_assert_eq(mg_exec_num_forward_nodes(f.e), 1);
    cr_assert_null(mg_exec_tensor(f.e, b));
    fill_seq(mg_exec_tensor(f.e, x), -2, 1);
    cr_assert_eq(mg_exec_forward(f.e), MG_OK);
    cr_assert_float_eq(mg_f32(mg_exec_tensor(f.e, a))[0], 4.0f, 0);
    cr_assert_eq(mg_exec_backward(f.e), MG_ERR_STATE);
    cr_assert(strstr(mg_ctx_error(f.ctx), "forward-only"));
    fx_free(&f);
}

Test(graph, many_steps_give_identical_results)
{
    fixture f = fx_new();
    int64_t sh[2] = {4, 7};
    mg_value x = mg_graph_input(f.g, "x", MG_F32, 2, sh);
    mg_value L = mg_mean(f.g, mg_softplus(f.g, mg_mul(f.g, x, mg_sigmoid(f.g, x))), NULL, 0, 0);
    mg_exec *e = compile_train(&f, L, &x, 1);
    mg_tensor *in = tu_rand(MG_F32, 2, sh, -3, 3, 11);
    mg_tensor *g0 = NULL;
    float l0 = 0;
    for (int step = 0; step < 50; step++) {
        cr_assert_eq(mg_exec_set_input(e, "x", in), MG_OK);
        cr_assert_eq(mg_exec_forward(e), MG_OK);
        cr_assert_eq(mg_exec_backward(e), MG_OK);
        float l = mg_f32(mg_exec_tensor(e, L))[0];
        if (!g0) {
            g0 = mg_tensor_clone(mg_exec_grad(e, x));
            l0 = l;
        }
        cr_assert_eq(l, l0);
        cr_assert_eq(memcmp(g0->data, mg_exec_grad(e, x)->data, mg_tensor_nbytes(g0)), 0, "step %d", step);
    }
    mg_tensor_free(g0);
    mg_tensor_free(in);
    fx_free(&f);
}

Test(graph, multi_output_node_with_one_output_unused)
{
    fixture f = fx_new();
    int64_t sh[2] = {2, 6};
    mg_value x = mg_graph_input(f.g, "x", MG_F64, 2, sh);
    mg_value parts[2];
    int64_t sizes[2] = {2, 4};
    cr_assert_eq(mg_split(f.g, x, 1, sizes, 2, parts), MG_OK);
    mg_value L = mg_sum(f.g, mg_square(f.g, parts[1]), NULL, 0, 0);
    mg_exec *e = compile_train(&f, L, &x, 1);
    mg_tensor *xt = mg_exec_tensor(e, x);
    fill_seq(xt, 1, 1);
    cr_assert_eq(mg_exec_forward(e), MG_OK);
    cr_assert_eq(mg_exec_backward(e), MG_OK);
    const mg_tensor *gx = mg_exec_grad(e, x);
    for (int r = 0; r < 2; r++)
        for (int c = 0; c < 6; c++) {
            double v = mg_tensor_get(xt, r * 6 + c);
            cr_assert_float_eq(mg_tensor_get(gx, r * 6 + c), c < 2 ? 0.0 : 2 * v, 1e-12);
        }
    fx_free(&f);
}

Test(graph, shape_override_recompiles_for_another_batch)
{
    fixture f = fx_new();
    int64_t sh[2] = {2, 3};
    mg_value x = mg_graph_input(f.g, "x", MG_F32, 2, sh);
    mg_value s = mg_sum(f.g, x, (int[]){1}, 1, 0);
    int64_t sh2[2] = {5, 3};
    mg_tensor d;
    mg_tensor_init(&d, MG_F32, 2, sh2, NULL);
    const mg_tensor *dp = &d;
    mg_compile_opts o = {.struct_size = sizeof o, .outputs = &s, .n_outputs = 1,
                         .shape_inputs = &x, .shapes = &dp, .n_shapes = 1};
    cr_assert_eq(mg_graph_compile(f.g, &o, &f.e), MG_OK, "%s", mg_ctx_error(f.ctx));
    cr_assert_eq(mg_exec_tensor(f.e, s)->shape[0], 5);
    cr_assert_eq(mg_graph_value_desc(f.g, s)->shape[0], 2, "the graph keeps its declared shapes");
    fx_free(&f);
}

/* ---- errors ---- */

Test(graph_errors, unknown_op_suggests_a_name)
{
    fixture f = fx_new();
    int64_t sh[1] = {3};
    mg_value x = mg_graph_input(f.g, "x", MG_F32, 1, sh);
    mg_value y = mg_graph_op(f.g, "rleu", &x, 1, NULL);
    cr_assert_not(mg_value_ok(y));
    cr_assert_eq(mg_graph_status(f.g), MG_ERR_NOTFOUND);
    cr_assert(strstr(mg_ctx_error(f.ctx), "did you mean 'relu'"), "%s", mg_ctx_error(f.ctx));
    /* sticky: later calls do nothing and compile reports the first error */
    cr_assert_not(mg_value_ok(mg_relu(f.g, x)));
    mg_compile_opts o = {.struct_size = sizeof o};
    cr_assert_eq(mg_graph_compile(f.g, &o, &f.e), MG_ERR_NOTFOUND);
    cr_assert_null(f.e);
    fx_free(&f);
}

Test(graph_errors, shape_mismatch_names_node_and_shapes)
{
    fixture f = fx_new();
    mg_value a = mg_graph_input(f.g, "a", MG_F32, 2, (int64_t[]){2, 3});
    mg_value b = mg_graph_input(f.g, "b", MG_F32, 1, (int64_t[]){4});
    mg_value c = mg_add(f.g, a, b);
    cr_assert_not(mg_value_ok(c));
    cr_assert_eq(mg_graph_status(f.g), MG_ERR_SHAPE);
    const char *m = mg_ctx_error(f.ctx);
    cr_assert(strstr(m, "add") && strstr(m, "[2, 3]") && strstr(m, "[4]"), "%s", m);
    fx_free(&f);
}

Test(graph_errors, wrong_arity_and_unknown_attribute)
{
    fixture f = fx_new();
    mg_value a = mg_graph_input(f.g, "a", MG_F32, 1, (int64_t[]){3});
    mg_value in[3] = {a, a, a};
    cr_assert_eq(mg_graph_node(f.g, "relu", NULL, in, 3, NULL, NULL, 0, NULL), MG_ERR_ARG);
    cr_assert(strstr(mg_ctx_error(f.ctx), "takes 1 input(s), got 3"), "%s", mg_ctx_error(f.ctx));
    mg_graph_free(f.g);
    cr_assert_eq(mg_graph_new(f.ctx, &f.g), MG_OK);
    a = mg_graph_input(f.g, "a", MG_F32, 1, (int64_t[]){3});
    mg_attrs *at = mg_attrs_new();
    mg_attrs_set_float(at, "alhpa", 0.1);
    cr_assert_eq(mg_graph_node(f.g, "leaky_relu", "lr", &a, 1, at, NULL, 0, NULL), MG_ERR_ATTR);
    cr_assert(strstr(mg_ctx_error(f.ctx), "did you mean 'alpha'"), "%s", mg_ctx_error(f.ctx));
    mg_attrs_free(at);
    fx_free(&f);
}

Test(graph_errors, constructor_argument_errors_stick_to_the_graph)
{
    fixture f = fx_new();
    mg_value x = mg_graph_input(f.g, "x", MG_F32, 1, (int64_t[]){3});
    cr_assert_not(mg_value_ok(mg_sum(f.g, x, NULL, 2, 0)));
    cr_assert_eq(mg_graph_status(f.g), MG_ERR_ARG, "a bad axes list must be kept by the graph");
    mg_compile_opts o = {.struct_size = sizeof o};
    cr_assert_eq(mg_graph_compile(f.g, &o, &f.e), MG_ERR_ARG);
    fx_free(&f);
}

Test(graph_errors, duplicate_names_and_foreign_values)
{
    fixture f = fx_new();
    mg_graph_input(f.g, "x", MG_F32, 1, (int64_t[]){3});
    mg_value y = mg_graph_input(f.g, "x", MG_F32, 1, (int64_t[]){3});
    cr_assert_not(mg_value_ok(y));
    cr_assert_eq(mg_graph_status(f.g), MG_ERR_EXISTS);
    mg_graph_free(f.g);
    cr_assert_eq(mg_graph_new(f.ctx, &f.g), MG_OK);
    mg_value bogus = {999};
    cr_assert_eq(mg_graph_node(f.g, "relu", NULL, &bogus, 1, NULL, NULL, 0, NULL), MG_ERR_ARG);
    fx_free(&f);
}

static mg_status nb_infer(mg_node *n)
{
    const mg_tensor *x = mg_node_input(n, 0);
    return mg_node_set_output(n, 0, x->dtype, x->rank, x->shape);
}
static mg_status nb_fwd(mg_node *n) { return mg_tensor_copy(mg_node_output(n, 0), mg_node_input(n, 0)); }

Test(graph_errors, op_without_backward_on_gradient_path)
{
    fixture f = fx_new();
    mg_op_def d = {.struct_size = sizeof d, .abi_version = MG_ABI_VERSION, .name = "t.nograd",
                   .min_inputs = 1, .max_inputs = 1, .num_outputs = 1, .infer = nb_infer, .forward = nb_fwd};
    cr_assert_eq(mg_registry_add_op(mg_ctx_registry(f.ctx), &d), MG_OK);
    mg_value x = mg_graph_input(f.g, "x", MG_F32, 1, (int64_t[]){3});
    mg_value y = mg_graph_op(f.g, "t.nograd", &x, 1, NULL);
    mg_value L = mg_sum(f.g, y, NULL, 0, 0);
    mg_compile_opts o = {.struct_size = sizeof o, .training = 1, .losses = &L, .n_losses = 1,
                         .grad_values = &x, .n_grad_values = 1};
    cr_assert_eq(mg_graph_compile(f.g, &o, &f.e), MG_ERR_NOGRAD);
    cr_assert(strstr(mg_ctx_error(f.ctx), "t.nograd_"), "%s", mg_ctx_error(f.ctx));
    /* the same graph compiles when no gradient needs that node */
    o.n_grad_values = 0;
    cr_assert_eq(mg_graph_compile(f.g, &o, &f.e), MG_OK, "%s", mg_ctx_error(f.ctx));
    cr_assert_eq(mg_exec_num_backward_nodes(f.e), 0);
    fx_free(&f);
}

Test(graph_errors, backward_before_forward_and_training_without_loss)
{
    fixture f = fx_new();
    mg_value x = mg_graph_input(f.g, "x", MG_F32, 1, (int64_t[]){3});
    mg_value L = mg_sum(f.g, mg_square(f.g, x), NULL, 0, 0);
    mg_compile_opts bad = {.struct_size = sizeof bad, .training = 1};
    cr_assert_eq(mg_graph_compile(f.g, &bad, &f.e), MG_ERR_ARG);
    mg_exec *e = compile_train(&f, L, &x, 1);
    cr_assert_eq(mg_exec_backward(e), MG_ERR_STATE);
    cr_assert(strstr(mg_ctx_error(f.ctx), "forward first"));
    mg_tensor *wrong = mg_tensor_new1(MG_F32, 4);
    cr_assert_eq(mg_exec_set_input(e, "x", wrong), MG_ERR_SHAPE);
    cr_assert(strstr(mg_ctx_error(f.ctx), "[3]") && strstr(mg_ctx_error(f.ctx), "[4]"));
    cr_assert_eq(mg_exec_set_input(e, "nope", wrong), MG_ERR_NOTFOUND);
    mg_tensor_free(wrong);
    fx_free(&f);
}

Test(graph, scopes_tag_nodes_and_prefix_names)
{
    fixture f = fx_new();
    mg_value x = mg_graph_input(f.g, "x", MG_F32, 1, (int64_t[]){3});
    cr_assert_eq(mg_graph_push_scope(f.g, "flow.0", "test.layer"), MG_OK);
    mg_value y = mg_relu(f.g, x);
    cr_assert_eq(mg_graph_push_scope(f.g, "inner", "sub"), MG_OK);
    mg_value z = mg_relu(f.g, y);
    mg_graph_pop_scope(f.g);
    mg_graph_pop_scope(f.g);
    mg_value w = mg_relu(f.g, z);
    int ky = mg_graph_value_node(f.g, y), kz = mg_graph_value_node(f.g, z), kw = mg_graph_value_node(f.g, w);
    cr_assert_str_eq(mg_graph_node_scope(f.g, ky), "flow.0");
    cr_assert_str_eq(mg_graph_node_scope_type(f.g, ky), "test.layer");
    cr_assert_str_eq(mg_graph_node_scope(f.g, kz), "flow.0.inner");
    cr_assert_null(mg_graph_node_scope(f.g, kw));
    cr_assert(strncmp(mg_graph_node_name(f.g, ky), "flow.0.relu", 11) == 0, "%s", mg_graph_node_name(f.g, ky));
    fx_free(&f);
}
