/* tests/test_gradcheck.c: the gradient checker itself (it must catch a wrong
 * backward and skip kinks), and a table-driven check of every built-in op
 * with a backward. The coverage test fails when an op is registered with a
 * backward but has no entry in the table below. */
#include "testutil.h"

#include <criterion/parameterized.h>
#include <stdlib.h>

#include <string.h>

typedef struct in_spec {
    int rank;
    int64_t shape[5];
    double lo, hi;
} in_spec;

typedef struct op_case {
    const char *op;
    int n_in;
    in_spec in[3];
    const char *attrs; /* "key=int" or "key=f:float" or "key=i,j" pairs separated by ';' */
    int f64;           /* also check in double precision */
} op_case;

#define S1(a) 1, {a}
#define S2(a, b) 2, {a, b}
#define S3(a, b, c) 3, {a, b, c}
#define S4(a, b, c, d) 4, {a, b, c, d}

static const op_case cases[] = {
    {"conv2d", 3, {{S4(2, 3, 5, 6), -1, 1}, {S4(4, 3, 3, 3), -1, 1}, {S1(4), -1, 1}}, "padding=1,1", 0},
    {"conv2d", 2, {{S4(1, 2, 7, 5), -1, 1}, {S4(3, 2, 3, 2), -1, 1}}, "stride=2,1;padding=2,0;dilation=1,2", 0},
    {"matmul", 2, {{S2(3, 4), -1, 1}, {S2(4, 5), -1, 1}}, "", 0},
    {"matmul", 2, {{S3(2, 3, 4), -1, 1}, {S3(2, 4, 3), -1, 1}}, "", 0},
    {"linear", 3, {{S2(3, 4), -1, 1}, {S2(5, 4), -1, 1}, {S1(5), -1, 1}}, "", 0},
    {"relu", 1, {{S3(2, 3, 4), -1, 1}}, "", 1},
    {"leaky_relu", 1, {{S3(2, 3, 5), -1, 1}}, "alpha=f:0.2", 1},
    {"elu", 1, {{S2(3, 7), -3, 2}}, "alpha=f:1.3", 1},
    {"tanh", 1, {{S2(3, 7), -2, 2}}, "", 1},
    {"sigmoid", 1, {{S2(3, 7), -4, 4}}, "", 1},
    {"softplus", 1, {{S2(3, 7), -5, 5}}, "", 1},
    {"exp", 1, {{S2(3, 7), -2, 2}}, "", 1},
    {"log", 1, {{S2(3, 7), 0.5, 3}}, "", 1},
    {"abs", 1, {{S2(3, 7), -2, 2}}, "", 1},
    {"square", 1, {{S2(3, 7), -2, 2}}, "", 1},
    {"sqrt", 1, {{S2(3, 7), 0.5, 3}}, "", 1},
    {"scale", 1, {{S2(3, 7), -2, 2}}, "scale=f:-1.5;shift=f:0.25", 1},
    {"add", 2, {{S3(2, 3, 4), -1, 1}, {S2(3, 1), -1, 1}}, "", 1},
    {"sub", 2, {{S1(4), -1, 1}, {S3(2, 3, 4), -1, 1}}, "", 1},
    {"mul", 2, {{S3(3, 1, 5), -1, 1}, {S2(4, 1), -1, 1}}, "", 1},
    {"div", 2, {{S3(2, 3, 4), -1, 1}, {S3(2, 3, 4), 0.5, 2}}, "", 1},
    {"div", 2, {{S2(3, 4), -1, 1}, {S1(1), 0.5, 2}}, "", 1},
    {"sum", 1, {{S4(2, 3, 4, 5), -1, 1}}, "axes=0,2,3", 1},
    {"sum", 1, {{S3(3, 4, 5), -1, 1}}, "axes=-1;keepdims=1", 1},
    {"mean", 1, {{S3(3, 4, 5), -1, 1}}, "axes=1", 1},
    {"mean", 1, {{S2(3, 5), -1, 1}}, "", 1},
    {"reshape", 1, {{S3(2, 3, 4), -1, 1}}, "shape=4,-1", 1},
    {"permute", 1, {{S4(2, 3, 4, 5), -1, 1}}, "perm=0,2,3,1", 1},
    {"slice", 1, {{S3(3, 7, 2), -1, 1}}, "axis=1;start=2;end=-1", 1},
    {"concat", 3, {{S3(2, 1, 3), -1, 1}, {S3(2, 4, 3), -1, 1}, {S3(2, 2, 3), -1, 1}}, "axis=1", 1},
    {"split", 1, {{S3(2, 6, 3), -1, 1}}, "axis=1;sizes=1,3,2", 1},
    {"space_to_depth", 1, {{S4(2, 3, 4, 6), -1, 1}}, "factor=2", 1},
    {"depth_to_space", 1, {{S4(2, 8, 3, 2), -1, 1}}, "factor=2", 1},
    {"normal_logpdf", 1, {{S4(3, 2, 3, 3), -2, 2}}, "", 1},
    {"mse", 2, {{S3(2, 3, 4), -1, 1}, {S3(2, 3, 4), -1, 1}}, "", 1},
    {"logit", 1, {{S4(2, 1, 3, 4), 0.05, 0.95}}, "lambda=f:0.05", 1},
    {"logit_inverse", 1, {{S4(2, 1, 3, 4), -3, 3}}, "lambda=f:0.05", 1},
};
#define N_CASES (sizeof cases / sizeof cases[0])

/* Parses "a=1,2;b=f:0.5" into attrs. */
static mg_attrs *parse_attrs(const char *text)
{
    mg_attrs *a = mg_attrs_new();
    char buf[256];
    snprintf(buf, sizeof buf, "%s", text);
    for (char *save = NULL, *kv = strtok_r(buf, ";", &save); kv; kv = strtok_r(NULL, ";", &save)) {
        char *eq = strchr(kv, '=');
        cr_assert_not_null(eq);
        *eq = 0;
        const char *v = eq + 1;
        if (strncmp(v, "f:", 2) == 0) {
            mg_attrs_set_float(a, kv, atof(v + 2));
            continue;
        }
        int64_t vals[8];
        int n = 0;
        for (const char *p = v; *p && n < 8; p = strchr(p, ',') ? strchr(p, ',') + 1 : p + strlen(p))
            vals[n++] = atoll(p);
        if (n == 1) mg_attrs_set_int(a, kv, vals[0]);
        else mg_attrs_set_ints(a, kv, vals, n);
    }
    return a;
}

static void run_case(const op_case *c, mg_dtype dt)
{
    mg_ctx *ctx = tu_ctx();
    mg_tensor *in[3];
    for (int i = 0; i < c->n_in; i++)
        in[i] = tu_rand(dt, c->in[i].rank, c->in[i].shape, c->in[i].lo, c->in[i].hi, 100 + (uint64_t)i);
    mg_attrs *a = parse_attrs(c->attrs);
    mg_gradcheck_report rep = tu_gradcheck_op(ctx, c->op, (const mg_tensor *const *)in, c->n_in, a, NULL);
    cr_assert_eq(rep.failed, 0);
    mg_attrs_free(a);
    for (int i = 0; i < c->n_in; i++) mg_tensor_free(in[i]);
    mg_ctx_free(ctx);
}

ParameterizedTestParameters(gradcheck, builtin_op_f32)
{
    static int idx[N_CASES];
    for (size_t i = 0; i < N_CASES; i++) idx[i] = (int)i;
    return cr_make_param_array(int, idx, N_CASES);
}

ParameterizedTest(int *k, gradcheck, builtin_op_f32)
{
    cr_log_info("op %s", cases[*k].op);
    run_case(&cases[*k], MG_F32);
}

ParameterizedTestParameters(gradcheck, builtin_op_f64)
{
    static int idx[N_CASES];
    int n = 0;
    for (size_t i = 0; i < N_CASES; i++)
        if (cases[i].f64) idx[n++] = (int)i;
    return cr_make_param_array(int, idx, (size_t)n);
}

ParameterizedTest(int *k, gradcheck, builtin_op_f64)
{
    cr_log_info("op %s", cases[*k].op);
    run_case(&cases[*k], MG_F64);
}

Test(gradcheck, every_builtin_op_with_a_backward_has_a_case)
{
    mg_ctx *ctx = tu_ctx();
    mg_registry *r = mg_ctx_registry(ctx);
    for (int i = 0; i < mg_registry_num_ops(r); i++) {
        const mg_op_def *d = mg_registry_op_at(r, i);
        if (!d->backward || strcmp(mg_registry_op_origin(r, d->name), "builtin") != 0) continue;
        int found = 0;
        for (size_t k = 0; k < N_CASES && !found; k++) found = strcmp(cases[k].op, d->name) == 0;
        cr_assert(found, "op '%s' has a backward but no gradient-check case in tests/test_gradcheck.c", d->name);
    }
    mg_ctx_free(ctx);
}

/* ---- the checker must catch wrong gradients ---- */

static mg_status bad_infer(mg_node *n)
{
    const mg_tensor *x = mg_node_input(n, 0);
    return mg_node_set_output(n, 0, x->dtype, x->rank, x->shape);
}

/* y = x^3, with a backward that is off by 1% (3.03 x^2). */
static mg_status bad_fwd(mg_node *n)
{
    const mg_tensor *x = mg_node_input(n, 0);
    mg_tensor *y = mg_node_output(n, 0);
    for (int64_t i = 0; i < mg_tensor_numel(x); i++) {
        double v = mg_tensor_get(x, i);
        mg_tensor_set(y, i, v * v * v);
    }
    return MG_OK;
}

static mg_status bad_bwd(mg_node *n)
{
    const mg_tensor *x = mg_node_input(n, 0), *gy = mg_node_grad_output(n, 0);
    mg_tensor *gx = mg_node_grad_input(n, 0);
    for (int64_t i = 0; i < mg_tensor_numel(x); i++) {
        double v = mg_tensor_get(x, i);
        mg_tensor_set(gx, i, mg_tensor_get(gy, i) * 3.03 * v * v);
    }
    return MG_OK;
}

Test(gradcheck, catches_a_one_percent_error)
{
    mg_ctx *ctx = tu_ctx();
    mg_op_def d = {.struct_size = sizeof d, .abi_version = MG_ABI_VERSION, .name = "t.cube_bad",
                   .min_inputs = 1, .max_inputs = 1, .num_outputs = 1,
                   .infer = bad_infer, .forward = bad_fwd, .backward = bad_bwd};
    cr_assert_eq(mg_registry_add_op(mg_ctx_registry(ctx), &d), MG_OK);
    mg_tensor *x = tu_rand(MG_F64, 1, (int64_t[]){20}, 0.5, 2, 1);
    mg_gradcheck_report rep;
    mg_gradcheck_opts o = mg_gradcheck_defaults();
    cr_assert_eq(mg_gradcheck_op(ctx, "t.cube_bad", (const mg_tensor *const *)&x, 1, NULL, &o, &rep), MG_ERR_NUMERIC);
    cr_assert_eq(rep.failed, 20, "%s", rep.message);
    cr_assert(strstr(rep.message, "20 of 20 elements failed"), "%s", rep.message);
    mg_tensor_free(x);
    mg_ctx_free(ctx);
}

Test(gradcheck, skips_kinks_but_still_checks_their_neighbours)
{
    mg_ctx *ctx = tu_ctx();
    double v[6] = {-1.0, -1e-9, 0.0, 1e-9, 0.7, 2.0};
    int64_t six = 6;
    mg_tensor *x = mg_tensor_wrap(MG_F64, 1, &six, v);
    mg_gradcheck_report rep;
    mg_gradcheck_opts o = mg_gradcheck_defaults();
    cr_assert_eq(mg_gradcheck_op(ctx, "abs", (const mg_tensor *const *)&x, 1, NULL, &o, &rep), MG_OK, "%s", rep.message);
    cr_assert_eq(rep.checked, 6);
    /* +-1e-9 lie within h of the kink; at 0 the central difference (0)
     * agrees with the subgradient abs' backward gives, so it passes. */
    cr_assert_eq(rep.skipped_kinks, 2, "%s", rep.message);
    o.kink_aware = 0;
    cr_assert_eq(mg_gradcheck_op(ctx, "abs", (const mg_tensor *const *)&x, 1, NULL, &o, &rep), MG_ERR_NUMERIC);
    mg_tensor_free(x);
    mg_ctx_free(ctx);
}
