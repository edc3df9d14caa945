/* tests/test_tensor.c: tensors, attributes, the RNG, the registry and the
 * allocation hooks (including injected allocation failures). */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

Test(tensor, new_is_zeroed_contiguous_and_aligned)
{
    int64_t shape[3] = {2, 3, 5};
    mg_tensor *t = mg_tensor_new(MG_F32, 3, shape);
    cr_assert_not_null(t);
    cr_assert_eq(mg_tensor_numel(t), 30);
    cr_assert_eq(mg_tensor_nbytes(t), 120);
    cr_assert_eq(t->stride[0], 15);
    cr_assert_eq(t->stride[1], 5);
    cr_assert_eq(t->stride[2], 1);
    cr_assert(mg_tensor_is_contiguous(t));
    cr_assert_eq((uintptr_t)t->data % 64, 0);
    for (int i = 0; i < 30; i++) cr_assert_eq(mg_f32(t)[i], 0.0f);
    mg_tensor_free(t);
}

Test(tensor, bad_arguments_give_null)
{
    int64_t neg[2] = {2, -1};
    int64_t big[7] = {1, 1, 1, 1, 1, 1, 1};
    cr_assert_null(mg_tensor_new(MG_F32, 2, neg));
    cr_assert_null(mg_tensor_new(MG_F32, 7, big));
    cr_assert_null(mg_tensor_new((mg_dtype)99, 1, big));
}

Test(tensor, scalar_has_one_element)
{
    mg_tensor *t = mg_tensor_new(MG_F64, 0, NULL);
    cr_assert_not_null(t);
    cr_assert_eq(mg_tensor_numel(t), 1);
    mg_tensor_set(t, 0, 2.5);
    cr_assert_eq(mg_tensor_get(t, 0), 2.5);
    mg_tensor_free(t);
}

Test(tensor, copy_converts_dtypes_and_checks_counts)
{
    mg_tensor *a = mg_tensor_new2(MG_F64, 2, 3), *b = mg_tensor_new2(MG_F32, 3, 2);
    mg_tensor *c = mg_tensor_new1(MG_F32, 5);
    for (int i = 0; i < 6; i++) mg_tensor_set(a, i, i * 0.5 - 1);
    cr_assert_eq(mg_tensor_copy(b, a), MG_OK);
    for (int i = 0; i < 6; i++) cr_assert_float_eq(mg_f32(b)[i], (float)(i * 0.5 - 1), 0);
    cr_assert_eq(mg_tensor_copy(c, a), MG_ERR_SHAPE);
    mg_tensor *d = mg_tensor_clone(b);
    cr_assert(mg_tensor_same_shape(d, b));
    cr_assert_eq(memcmp(d->data, b->data, 24), 0);
    cr_assert_neq(d->data, b->data);
    mg_tensor_free(a);
    mg_tensor_free(b);
    mg_tensor_free(c);
    mg_tensor_free(d);
}

Test(tensor, wrap_borrows)
{
    float buf[4] = {1, 2, 3, 4};
    int64_t s = 4;
    mg_tensor *t = mg_tensor_wrap(MG_F32, 1, &s, buf);
    cr_assert_eq(t->data, buf);
    cr_assert_eq(t->flags & MG_TENSOR_OWNS_DATA, 0u);
    mg_tensor_fill(t, 7);
    mg_tensor_free(t);
    cr_assert_eq(buf[3], 7.0f);
}

Test(tensor, strings_name_dtype_and_shape)
{
    char buf[64];
    mg_tensor *t = mg_tensor_new4(MG_F32, 2, 3, 4, 5);
    cr_assert_str_eq(mg_tensor_str(t, buf, sizeof buf), "f32[2, 3, 4, 5]");
    cr_assert_eq(mg_tensor_set_name(t, "x"), MG_OK);
    cr_assert_str_eq(mg_tensor_str(t, buf, sizeof buf), "x: f32[2, 3, 4, 5]");
    cr_assert_str_eq(mg_shape_str(0, NULL, buf, sizeof buf), "[]");
    mg_tensor_free(t);
}

Test(rng, deterministic_and_roughly_normal)
{
    mg_rng a, b;
    mg_rng_seed(&a, 7);
    mg_rng_seed(&b, 7);
    for (int i = 0; i < 100; i++) cr_assert_eq(mg_rng_next(&a), mg_rng_next(&b));
    double s = 0, ss = 0;
    int n = 200000;
    for (int i = 0; i < n; i++) {
        double x = mg_rng_normal(&a);
        s += x;
        ss += x * x;
    }
    cr_assert_lt(fabs(s / n), 0.01);
    cr_assert_lt(fabs(ss / n - 1), 0.02);
    for (int i = 0; i < 1000; i++) {
        double u = mg_rng_uniform(&a);
        cr_assert(u >= 0 && u < 1);
    }
}

Test(attrs, set_get_replace_and_clone)
{
    mg_attrs *a = mg_attrs_new();
    int64_t st[2] = {2, 3};
    cr_assert_eq(mg_attrs_set_ints(a, "stride", st, 2), MG_OK);
    cr_assert_eq(mg_attrs_set_float(a, "alpha", 0.25), MG_OK);
    cr_assert_eq(mg_attrs_set_str(a, "mask", "A"), MG_OK);
    cr_assert_eq(mg_attrs_set_int(a, "latent", 4), MG_OK);
    cr_assert_eq(mg_attrs_set_int(a, "latent", 5), MG_OK); /* replaces */
    cr_assert_eq(mg_attrs_count(a), 4);
    int64_t out[4];
    cr_assert_eq(mg_attrs_ints(a, "stride", out, 4), 2);
    cr_assert_eq(out[1], 3);
    cr_assert_eq(mg_attrs_int(a, "latent", 0), 5);
    cr_assert_eq(mg_attrs_ints(a, "latent", out, 4), 1); /* a scalar reads as a list of one */
    cr_assert_float_eq(mg_attrs_float(a, "alpha", 0), 0.25, 0);
    cr_assert_str_eq(mg_attrs_str(a, "mask", "?"), "A");
    cr_assert_eq(mg_attrs_int(a, "missing", -7), -7);
    cr_assert_eq(mg_attrs_kind(a, "mask"), MG_ATTR_STR);
    mg_attrs *c = mg_attrs_clone(a);
    mg_attrs_free(a);
    char buf[128];
    cr_assert_str_eq(mg_attrs_str_all(c, buf, sizeof buf), "stride=[2, 3], alpha=0.25, mask=\"A\", latent=5");
    int64_t big[MG_ATTR_MAX_LIST + 1] = {0};
    cr_assert_eq(mg_attrs_set_ints(c, "x", big, MG_ATTR_MAX_LIST + 1), MG_ERR_ARG);
    mg_attrs_free(c);
}

/* ---- registry ---- */
static mg_status t_infer(mg_node *n)
{
    const mg_tensor *x = mg_node_input(n, 0);
    return mg_node_set_output(n, 0, x->dtype, x->rank, x->shape);
}
static mg_status t_fwd(mg_node *n) { return mg_tensor_copy(mg_node_output(n, 0), mg_node_input(n, 0)); }

Test(registry, builtin_ops_are_listed)
{
    mg_ctx *ctx = tu_ctx();
    mg_registry *r = mg_ctx_registry(ctx);
    const char *expect[] = {"conv2d", "matmul", "linear", "relu", "add", "sum", "reshape", "normal_logpdf", "mse"};
    for (size_t i = 0; i < sizeof expect / sizeof *expect; i++) {
        cr_assert_not_null(mg_registry_find_op(r, expect[i]), "op %s missing", expect[i]);
        cr_assert_str_eq(mg_registry_op_origin(r, expect[i]), "builtin");
    }
    cr_assert_gt(mg_registry_num_ops(r), 25);
    mg_ctx_free(ctx);
}

Test(registry, rejects_duplicates_bad_abi_and_incomplete_tables)
{
    mg_ctx *ctx = tu_ctx();
    mg_registry *r = mg_ctx_registry(ctx);
    mg_op_def d = {.struct_size = sizeof d, .abi_version = MG_ABI_VERSION, .name = "t.copy",
                   .min_inputs = 1, .max_inputs = 1, .num_outputs = 1, .infer = t_infer, .forward = t_fwd};
    cr_assert_eq(mg_registry_add_op(r, &d), MG_OK);
    cr_assert_eq(mg_registry_add_op(r, &d), MG_ERR_EXISTS);
    cr_assert(strstr(mg_ctx_error(ctx), "already registered"));
    d.name = "t.v2";
    d.abi_version = MG_ABI_VERSION + 1;
    cr_assert_eq(mg_registry_add_op(r, &d), MG_ERR_ABI);
    cr_assert(strstr(mg_ctx_error(ctx), "t.v2"));
    d.abi_version = MG_ABI_VERSION;
    d.struct_size = 16;
    cr_assert_eq(mg_registry_add_op(r, &d), MG_ERR_ABI);
    d.struct_size = sizeof d;
    d.forward = NULL;
    cr_assert_eq(mg_registry_add_op(r, &d), MG_ERR_ARG);
    cr_assert_null(mg_registry_find_op(r, "t.v2"));
    cr_assert_str_eq(mg_registry_suggest_op(r, "t.cpy"), "t.copy");
    cr_assert_null(mg_registry_suggest_op(r, "zzzzzzzzzz"));
    mg_ctx_free(ctx);
}

/* ---- allocation failure injection ---- */
static int g_fail_after = -1;
static void *failing_malloc(size_t n)
{
    if (g_fail_after == 0) return NULL;
    if (g_fail_after > 0) g_fail_after--;
    return malloc(n);
}
static void *failing_realloc(void *p, size_t n)
{
    if (g_fail_after == 0) return NULL;
    if (g_fail_after > 0) g_fail_after--;
    return realloc(p, n);
}

Test(alloc, every_early_failure_is_reported_not_crashed)
{
    /* Fail the k-th allocation for growing k: each call either succeeds or
     * returns NOMEM cleanly; none crashes. */
    mg_set_allocator(failing_malloc, failing_realloc, free);
    int failures = 0;
    for (int k = 0; k < 400; k++) {
        g_fail_after = k;
        mg_ctx *ctx = NULL;
        mg_status s = mg_ctx_new(&ctx);
        if (s != MG_OK) {
            cr_assert_eq(s, MG_ERR_NOMEM);
            cr_assert_null(ctx);
            failures++;
            continue;
        }
        mg_graph *g = NULL;
        if (mg_graph_new(ctx, &g) == MG_OK) {
            int64_t sh[2] = {3, 4};
            mg_value x = mg_graph_input(g, "x", MG_F32, 2, sh);
            mg_value y = mg_relu(g, x);
            mg_value l = mg_sum(g, y, NULL, 0, 0);
            mg_exec *e = NULL;
            mg_compile_opts o = {.struct_size = sizeof o, .training = 1, .losses = &l, .n_losses = 1,
                                 .grad_values = &x, .n_grad_values = 1};
            s = mg_graph_compile(g, &o, &e);
            if (s != MG_OK) cr_assert(s == MG_ERR_NOMEM || mg_graph_status(g) == MG_ERR_NOMEM,
                                      "k=%d: %s", k, mg_status_name(s));
            mg_exec_free(e);
            mg_graph_free(g);
        }
        mg_ctx_free(ctx);
    }
    g_fail_after = -1;
    mg_set_allocator(NULL, NULL, NULL);
    cr_assert_gt(failures, 0);
}
