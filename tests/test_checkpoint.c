/* tests/test_checkpoint.c: safetensors checkpoints. Round trips are bit
 * exact (tensors, metadata, RNG, optimizer state, and a network's loss);
 * resuming Adam from a checkpoint continues exactly like an uninterrupted
 * run; a failing write leaves the previous file intact; every kind of
 * corrupt file is refused with a message that names it. */
#include "testutil.h"

#include <errno.h>
#include <dirent.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

TestSuite(checkpoint, .init = tu_tmpdir_make, .fini = tu_tmpdir_remove);

static void write_bytes(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(data, 1, n, f), n);
    fclose(f);
}

static unsigned char *read_bytes(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(*n + 1);
    cr_assert_eq(fread(b, 1, *n, f), *n);
    fclose(f);
    return b;
}

/* A file made of an 8-byte length, the given header text and `data` bytes. */
static const char *raw_file(const char *name, const char *header, size_t data_bytes)
{
    size_t h = strlen(header);
    unsigned char *b = calloc(1, 8 + h + data_bytes);
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)((uint64_t)h >> (8 * i));
    memcpy(b + 8, header, h);
    const char *p = tu_path(name);
    write_bytes(p, b, 8 + h + data_bytes);
    free(b);
    return p;
}

/* Loads `path`, expecting failure `want` with every needle in the message. */
static void expect_load_error(const char *path, mg_status want, const char *n1, const char *n2)
{
    mg_ctx *ctx = tu_ctx();
    mg_checkpoint *ck = (mg_checkpoint *)1;
    mg_status s = mg_checkpoint_load(ctx, path, &ck);
    const char *msg = mg_ctx_error(ctx);
    cr_assert_eq(s, want, "status %s, want %s: %s", mg_status_name(s), mg_status_name(want), msg);
    cr_assert_null(ck);
    cr_assert(strstr(msg, path), "message does not name the file: %s", msg);
    cr_assert(!n1 || strstr(msg, n1), "message lacks '%s': %s", n1, msg);
    cr_assert(!n2 || strstr(msg, n2), "message lacks '%s': %s", n2, msg);
    mg_ctx_free(ctx);
}

static mg_param *add_param(mg_params *ps, const char *name, mg_dtype dt, int rank, const int64_t *shape,
                           uint64_t seed)
{
    mg_param *p;
    cr_assert_eq(mg_params_add(ps, name, dt, rank, shape, &p), MG_OK);
    mg_rng r;
    mg_rng_seed(&r, seed);
    mg_tensor_rand_normal(p->value, &r, 0, 1);
    return p;
}

static int same_bits(const mg_tensor *a, const mg_tensor *b)
{
    return mg_tensor_same_shape(a, b) && memcmp(a->data, b->data, mg_tensor_nbytes(a)) == 0;
}

/* ---- round trips ------------------------------------------------------------ */

Test(checkpoint, round_trip_is_bit_exact)
{
    mg_ctx *ctx = tu_ctx();
    mg_params *ps;
    cr_assert_eq(mg_params_new(&ps), MG_OK);
    add_param(ps, "flow.0.w1", MG_F32, 4, (int64_t[]){3, 1, 3, 3}, 1);
    add_param(ps, "flow.0.t", MG_F64, 3, (int64_t[]){1, 5, 7}, 2);
    add_param(ps, "scalar", MG_F32, 0, NULL, 3);
    add_param(ps, "empty", MG_F32, 2, (int64_t[]){0, 4}, 4);
    mg_tensor *lab = mg_tensor_new1(MG_U8, 5), *idx = mg_tensor_new1(MG_I32, 3);
    for (int i = 0; i < 5; i++) ((uint8_t *)lab->data)[i] = (uint8_t)(250 + i);
    for (int i = 0; i < 3; i++) ((int32_t *)idx->data)[i] = -7 * i;
    mg_rng r, r2;
    mg_rng_seed(&r, 99);
    (void)mg_rng_normal(&r); /* leaves a Box-Muller spare behind */
    int64_t steps[2] = {-5, INT64_MAX};
    uint64_t big[1] = {UINT64_MAX};

    mg_checkpoint *ck;
    cr_assert_eq(mg_checkpoint_new(ctx, &ck), MG_OK);
    cr_assert_eq(mg_checkpoint_add_params(ck, ps, NULL), MG_OK);
    cr_assert_eq(mg_checkpoint_add(ck, "train.labels", lab), MG_OK);
    cr_assert_eq(mg_checkpoint_add(ck, "train.idx", idx), MG_OK);
    cr_assert_eq(mg_checkpoint_add_i64(ck, "train.steps", steps, 2), MG_OK);
    cr_assert_eq(mg_checkpoint_add_u64(ck, "train.big", big, 1), MG_OK);
    cr_assert_eq(mg_checkpoint_add_rng(ck, "train.rng", &r), MG_OK);
    cr_assert_eq(mg_checkpoint_set_meta(ck, "spec", "model:\n  input: [1, 28, 28]\n\"quoted\" / \\ é"), MG_OK);
    cr_assert_eq(mg_checkpoint_set_meta(ck, "step", "1"), MG_OK);
    cr_assert_eq(mg_checkpoint_set_meta(ck, "step", "42"), MG_OK);
    cr_assert_eq(mg_checkpoint_add(ck, "scalar", lab), MG_ERR_EXISTS);
    cr_assert_eq(mg_checkpoint_add(ck, "__metadata__", lab), MG_ERR_ARG);
    cr_assert_eq(mg_checkpoint_save(ck, tu_path("a.safetensors")), MG_OK, "%s", mg_ctx_error(ctx));
    mg_checkpoint_free(ck);

    cr_assert_eq(mg_checkpoint_load(ctx, tu_path("a.safetensors"), &ck), MG_OK, "%s", mg_ctx_error(ctx));
    cr_assert_eq(mg_checkpoint_count(ck), 9);
    cr_assert_str_eq(mg_checkpoint_meta(ck, "step"), "42");
    cr_assert_str_eq(mg_checkpoint_meta(ck, "spec"), "model:\n  input: [1, 28, 28]\n\"quoted\" / \\ é");
    cr_assert_eq(mg_checkpoint_meta_count(ck), 2);
    cr_assert_null(mg_checkpoint_meta(ck, "nope"));
    const mg_ckpt_entry *e = mg_checkpoint_find(ck, "flow.0.t");
    cr_assert_not_null(e);
    cr_assert_eq(e->dtype, MG_CKPT_F64);
    cr_assert_eq(e->rank, 3);
    cr_assert_eq(e->shape[2], 7);
    cr_assert_eq(mg_checkpoint_find(ck, "scalar")->rank, 0);

    mg_params *ps2;
    cr_assert_eq(mg_params_new(&ps2), MG_OK);
    for (int i = 0; i < mg_params_count(ps); i++) {
        mg_param *p = mg_params_at(ps, i);
        add_param(ps2, p->name, p->value->dtype, p->value->rank, p->value->shape, 1000 + i);
    }
    cr_assert_eq(mg_checkpoint_load_params(ck, ps2, NULL, 1), MG_OK, "%s", mg_ctx_error(ctx));
    for (int i = 0; i < mg_params_count(ps); i++)
        cr_assert(same_bits(mg_params_at(ps, i)->value, mg_params_at(ps2, i)->value), "param %d", i);
    mg_tensor *lab2 = mg_tensor_new1(MG_U8, 5), *idx2 = mg_tensor_new1(MG_I32, 3);
    cr_assert_eq(mg_checkpoint_read(ck, "train.labels", lab2), MG_OK);
    cr_assert_eq(mg_checkpoint_read(ck, "train.idx", idx2), MG_OK);
    cr_assert(same_bits(lab, lab2) && same_bits(idx, idx2));
    int64_t steps2[2];
    uint64_t big2[1];
    cr_assert_eq(mg_checkpoint_read_i64(ck, "train.steps", steps2, 2), MG_OK);
    cr_assert_eq(mg_checkpoint_read_u64(ck, "train.big", big2, 1), MG_OK);
    cr_assert(steps2[0] == -5 && steps2[1] == INT64_MAX && big2[0] == UINT64_MAX);
    cr_assert_eq(mg_checkpoint_read_i64(ck, "train.steps", steps2, 1), MG_ERR_SHAPE);
    cr_assert_eq(mg_checkpoint_read_i64(ck, "train.big", steps2, 1), MG_ERR_DTYPE);
    cr_assert_eq(mg_checkpoint_read_rng(ck, "train.rng", &r2), MG_OK);
    cr_assert_eq(memcmp(r.s, r2.s, sizeof r.s), 0);
    cr_assert_eq(r2.has_spare, 1);
    for (int i = 0; i < 10; i++) cr_assert_eq(mg_rng_normal(&r), mg_rng_normal(&r2));

    mg_checkpoint_free(ck);
    mg_tensor_free(lab); mg_tensor_free(idx); mg_tensor_free(lab2); mg_tensor_free(idx2);
    mg_params_free(ps); mg_params_free(ps2);
    mg_ctx_free(ctx);
}

/* The layout Python's safetensors expects: header padded to 8 bytes, data
 * contiguous from offset 0 to the end of the file, in entry order. */
Test(checkpoint, file_layout_is_safetensors)
{
    mg_ctx *ctx = tu_ctx();
    mg_tensor *a = mg_tensor_new2(MG_F32, 2, 3), *b = mg_tensor_new1(MG_F64, 5);
    for (int i = 0; i < 6; i++) mg_f32(a)[i] = (float)i + 0.5f;
    mg_checkpoint *ck;
    cr_assert_eq(mg_checkpoint_new(ctx, &ck), MG_OK);
    cr_assert_eq(mg_checkpoint_add(ck, "a", a), MG_OK);
    cr_assert_eq(mg_checkpoint_add(ck, "b", b), MG_OK);
    cr_assert_eq(mg_checkpoint_set_meta(ck, "format", "pt"), MG_OK);
    cr_assert_eq(mg_checkpoint_save(ck, tu_path("l.safetensors")), MG_OK);
    mg_checkpoint_free(ck);
    size_t n;
    unsigned char *buf = read_bytes(tu_path("l.safetensors"), &n);
    uint64_t h = 0;
    for (int i = 0; i < 8; i++) h |= (uint64_t)buf[i] << (8 * i);
    cr_assert_eq(h % 8, 0);
    cr_assert_eq(n, 8 + h + 24 + 40);
    cr_assert_eq(buf[8], '{');
    buf[8 + h] = 0;
    const char *hdr = (const char *)buf + 8;
    cr_assert(strstr(hdr, "\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}"), "%s", hdr);
    cr_assert(strstr(hdr, "\"b\":{\"dtype\":\"F64\",\"shape\":[5],\"data_offsets\":[24,64]}"), "%s", hdr);
    cr_assert(strstr(hdr, "\"__metadata__\":{\"format\":\"pt\"}"), "%s", hdr);
    float f;
    memcpy(&f, buf + 8 + h + 4 * 5, 4);
    cr_assert_eq(f, 5.5f);
    free(buf);
    mg_tensor_free(a); mg_tensor_free(b);
    mg_ctx_free(ctx);
}

/* ---- a small network: loss after reload, and exact resume ----------------- */

typedef struct net {
    mg_params *ps;
    mg_graph *g;
    mg_exec *e;
    mg_value x, loss;
    mg_optim *opt;
    mg_rng rng;
} net;

static void net_init(mg_ctx *ctx, net *n, uint64_t seed)
{
    memset(n, 0, sizeof *n);
    mg_rng_seed(&n->rng, seed);
    cr_assert_eq(mg_params_new(&n->ps), MG_OK);
    mg_param *w1 = add_param(n->ps, "w1", MG_F32, 4, (int64_t[]){6, 2, 3, 3}, seed + 1);
    mg_param *b1 = add_param(n->ps, "b1", MG_F32, 1, (int64_t[]){6}, seed + 2);
    mg_param *w2 = add_param(n->ps, "w2", MG_F32, 4, (int64_t[]){2, 6, 3, 3}, seed + 3);
    mg_tensor_fill(w2->value, 0.05);
    cr_assert_eq(mg_graph_new(ctx, &n->g), MG_OK);
    n->x = mg_graph_input(n->g, "x", MG_F32, 4, (int64_t[]){4, 2, 6, 5});
    mg_value h = mg_tanh(n->g, mg_conv2d(n->g, n->x, mg_graph_param(n->g, w1), mg_graph_param(n->g, b1), 1, 1));
    mg_value y = mg_conv2d(n->g, h, mg_graph_param(n->g, w2), MG_VALUE_NONE, 1, 1);
    n->loss = mg_mse(n->g, y, mg_square(n->g, n->x));
    mg_compile_opts o = {.struct_size = sizeof o, .training = 1, .losses = &n->loss, .n_losses = 1};
    cr_assert_eq(mg_graph_compile(n->g, &o, &n->e), MG_OK, "%s", mg_ctx_error(ctx));
    mg_adam_opts ao = mg_adam_defaults();
    ao.lr = 3e-3;
    ao.eps = 1e-4;
    ao.amsgrad = 1;
    cr_assert_eq(mg_optim_adam(ctx, n->ps, &ao, &n->opt), MG_OK);
}

static void net_free(net *n)
{
    mg_optim_free(n->opt);
    mg_exec_free(n->e);
    mg_graph_free(n->g);
    mg_params_free(n->ps);
}

/* One training step on fresh random input from the net's RNG. */
static float net_step(net *n)
{
    mg_tensor_rand_normal(mg_exec_tensor(n->e, n->x), &n->rng, 0, 1);
    mg_params_zero_grad(n->ps);
    cr_assert_eq(mg_exec_forward(n->e), MG_OK);
    cr_assert_eq(mg_exec_backward(n->e), MG_OK);
    cr_assert_eq(mg_optim_step(n->opt), MG_OK);
    return mg_f32(mg_exec_tensor(n->e, n->loss))[0];
}

static void net_save(mg_ctx *ctx, net *n, const char *path)
{
    mg_checkpoint *ck;
    cr_assert_eq(mg_checkpoint_new(ctx, &ck), MG_OK);
    cr_assert_eq(mg_checkpoint_add_params(ck, n->ps, NULL), MG_OK);
    cr_assert_eq(mg_checkpoint_add_optim(ck, n->opt, NULL), MG_OK);
    cr_assert_eq(mg_checkpoint_add_rng(ck, "train.rng", &n->rng), MG_OK);
    cr_assert_eq(mg_checkpoint_save(ck, path), MG_OK, "%s", mg_ctx_error(ctx));
    mg_checkpoint_free(ck);
}

Test(checkpoint, loss_is_identical_after_reload)
{
    mg_ctx *ctx = tu_ctx();
    net a, b;
    net_init(ctx, &a, 7);
    net_init(ctx, &b, 500); /* other weights */
    for (int i = 0; i < 3; i++) net_step(&a);
    net_save(ctx, &a, tu_path("n.safetensors"));
    mg_checkpoint *ck;
    cr_assert_eq(mg_checkpoint_load(ctx, tu_path("n.safetensors"), &ck), MG_OK);
    cr_assert_eq(mg_checkpoint_load_params(ck, b.ps, NULL, 1), MG_OK, "%s", mg_ctx_error(ctx));
    mg_checkpoint_free(ck);
    mg_rng in;
    mg_rng_seed(&in, 3);
    mg_tensor_rand_normal(mg_exec_tensor(a.e, a.x), &in, 0, 1);
    cr_assert_eq(mg_tensor_copy(mg_exec_tensor(b.e, b.x), mg_exec_tensor(a.e, a.x)), MG_OK);
    cr_assert_eq(mg_exec_forward(a.e), MG_OK);
    cr_assert_eq(mg_exec_forward(b.e), MG_OK);
    float la = mg_f32(mg_exec_tensor(a.e, a.loss))[0], lb = mg_f32(mg_exec_tensor(b.e, b.loss))[0];
    cr_assert(memcmp(&la, &lb, sizeof la) == 0, "loss %.9g after reload, %.9g before", lb, la);
    net_free(&a); net_free(&b);
    mg_ctx_free(ctx);
}

/* 6 steps in one go == 3 steps, save, a fresh process state (new params,
 * optimizer, RNG) restored from the file, 3 more steps: bit for bit. */
Test(checkpoint, resume_continues_exactly)
{
    mg_ctx *ctx = tu_ctx();
    net full, first, second;
    net_init(ctx, &full, 11);
    float lf[6], lr[6];
    for (int i = 0; i < 6; i++) lf[i] = net_step(&full);

    net_init(ctx, &first, 11);
    for (int i = 0; i < 3; i++) lr[i] = net_step(&first);
    net_save(ctx, &first, tu_path("r.safetensors"));
    net_free(&first);

    net_init(ctx, &second, 12345);
    mg_checkpoint *ck;
    cr_assert_eq(mg_checkpoint_load(ctx, tu_path("r.safetensors"), &ck), MG_OK);
    cr_assert_eq(mg_checkpoint_load_params(ck, second.ps, NULL, 1), MG_OK, "%s", mg_ctx_error(ctx));
    cr_assert_eq(mg_checkpoint_load_optim(ck, second.opt, NULL), MG_OK, "%s", mg_ctx_error(ctx));
    cr_assert_eq(mg_checkpoint_read_rng(ck, "train.rng", &second.rng), MG_OK);
    mg_checkpoint_free(ck);
    cr_assert_eq(mg_optim_steps(second.opt), 3);
    for (int i = 3; i < 6; i++) lr[i] = net_step(&second);
    for (int i = 0; i < 6; i++) cr_assert(memcmp(&lf[i], &lr[i], sizeof(float)) == 0, "step %d: %.9g vs %.9g", i, lf[i], lr[i]);
    for (int i = 0; i < mg_params_count(full.ps); i++)
        cr_assert(same_bits(mg_params_at(full.ps, i)->value, mg_params_at(second.ps, i)->value), "param %d", i);
    net_free(&full); net_free(&second);
    mg_ctx_free(ctx);
}

/* A model-only file loads for eval, but refuses to resume. */
Test(checkpoint, model_only_file_has_no_optimizer_state)
{
    mg_ctx *ctx = tu_ctx();
    net a;
    net_init(ctx, &a, 5);
    mg_checkpoint *ck;
    cr_assert_eq(mg_checkpoint_new(ctx, &ck), MG_OK);
    cr_assert_eq(mg_checkpoint_add_params(ck, a.ps, NULL), MG_OK);
    cr_assert_eq(mg_checkpoint_save(ck, tu_path("m.safetensors")), MG_OK);
    mg_checkpoint_free(ck);
    cr_assert_eq(mg_checkpoint_load(ctx, tu_path("m.safetensors"), &ck), MG_OK);
    cr_assert_eq(mg_checkpoint_load_params(ck, a.ps, "", 1), MG_OK);
    cr_assert_eq(mg_checkpoint_load_optim(ck, a.opt, NULL), MG_ERR_NOTFOUND);
    cr_assert(strstr(mg_ctx_error(ctx), "no optimizer state"), "%s", mg_ctx_error(ctx));
    cr_assert(strstr(mg_ctx_error(ctx), "eval"), "%s", mg_ctx_error(ctx));
    mg_checkpoint_free(ck);
    net_free(&a);
    mg_ctx_free(ctx);
}

/* ---- loading into a model that does not match --------------------------- */

static mg_checkpoint *saved_pair(mg_ctx *ctx)
{
    mg_params *ps;
    cr_assert_eq(mg_params_new(&ps), MG_OK);
    add_param(ps, "flow.0.w1", MG_F32, 4, (int64_t[]){16, 1, 3, 3}, 1);
    add_param(ps, "flow.0.b1", MG_F32, 1, (int64_t[]){16}, 2);
    mg_tensor *m = mg_tensor_new1(MG_F32, 16);
    mg_checkpoint *ck;
    cr_assert_eq(mg_checkpoint_new(ctx, &ck), MG_OK);
    cr_assert_eq(mg_checkpoint_add_params(ck, ps, NULL), MG_OK);
    cr_assert_eq(mg_checkpoint_add(ck, "optim.flow.0.b1.exp_avg", m), MG_OK);
    cr_assert_eq(mg_checkpoint_add(ck, "ema.flow.0.b1", m), MG_OK);
    cr_assert_eq(mg_checkpoint_save(ck, tu_path("p.safetensors")), MG_OK);
    mg_checkpoint_free(ck);
    mg_params_free(ps);
    mg_tensor_free(m);
    cr_assert_eq(mg_checkpoint_load(ctx, tu_path("p.safetensors"), &ck), MG_OK);
    return ck;
}

static void expect_params_error(const int64_t *w1_shape, mg_dtype dt, const char *extra, int strict,
                                mg_status want, const char *n1, const char *n2)
{
    mg_ctx *ctx = tu_ctx();
    mg_checkpoint *ck = saved_pair(ctx);
    mg_params *ps;
    cr_assert_eq(mg_params_new(&ps), MG_OK);
    mg_param *w1 = add_param(ps, "flow.0.w1", dt, 4, w1_shape, 9);
    mg_tensor *before = mg_tensor_clone(w1->value);
    add_param(ps, extra ? extra : "flow.0.b1", MG_F32, 1, (int64_t[]){16}, 10);
    mg_status s = mg_checkpoint_load_params(ck, ps, NULL, strict);
    const char *msg = mg_ctx_error(ctx);
    cr_assert_eq(s, want, "%s: %s", mg_status_name(s), msg);
    cr_assert(want == MG_OK || strstr(msg, "p.safetensors"), "%s", msg);
    cr_assert(!n1 || strstr(msg, n1), "message lacks '%s': %s", n1, msg);
    cr_assert(!n2 || strstr(msg, n2), "message lacks '%s': %s", n2, msg);
    if (want != MG_OK) cr_assert(same_bits(before, w1->value), "a failed load changed a parameter");
    mg_tensor_free(before);
    mg_params_free(ps);
    mg_checkpoint_free(ck);
    mg_ctx_free(ctx);
}

Test(checkpoint, load_errors_name_tensor_and_shapes)
{
    int64_t good[4] = {16, 1, 3, 3}, bad[4] = {32, 1, 3, 3};
    expect_params_error(good, MG_F32, NULL, 1, MG_OK, NULL, NULL);
    expect_params_error(bad, MG_F32, NULL, 1, MG_ERR_SHAPE, "'flow.0.w1'", "[16, 1, 3, 3]");
    expect_params_error(bad, MG_F32, NULL, 1, MG_ERR_SHAPE, "[32, 1, 3, 3]", NULL);
    expect_params_error(good, MG_F64, NULL, 1, MG_ERR_DTYPE, "'flow.0.w1'", "F32");
    /* b1 missing from the model: strict refuses, lenient ignores */
    expect_params_error(good, MG_F32, "flow.0.b2", 1, MG_ERR_NOTFOUND, "'flow.0.b2'", NULL);
}

Test(checkpoint, strict_load_refuses_tensors_of_another_model)
{
    mg_ctx *ctx = tu_ctx();
    mg_checkpoint *ck = saved_pair(ctx);
    mg_params *ps;
    cr_assert_eq(mg_params_new(&ps), MG_OK);
    add_param(ps, "flow.0.w1", MG_F32, 4, (int64_t[]){16, 1, 3, 3}, 9);
    cr_assert_eq(mg_checkpoint_load_params(ck, ps, NULL, 1), MG_ERR_ARG);
    cr_assert(strstr(mg_ctx_error(ctx), "'flow.0.b1'"), "%s", mg_ctx_error(ctx));
    cr_assert_eq(mg_checkpoint_load_params(ck, ps, NULL, 0), MG_OK, "%s", mg_ctx_error(ctx));
    mg_params_free(ps);
    mg_checkpoint_free(ck);
    mg_ctx_free(ctx);
}

/* ---- atomic writes -------------------------------------------------------------- */

static size_t count_files(const char *dir)
{
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    size_t n = 0;
    for (struct dirent *e; (e = readdir(d));) n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

static mg_checkpoint *big_checkpoint(mg_ctx *ctx, mg_tensor **t)
{
    *t = mg_tensor_new1(MG_F32, 1 << 18); /* 1 MiB */
    mg_tensor_fill(*t, 2.5);
    mg_checkpoint *ck;
    cr_assert_eq(mg_checkpoint_new(ctx, &ck), MG_OK);
    cr_assert_eq(mg_checkpoint_add(ck, "big", *t), MG_OK);
    return ck;
}

/* The write fails half way (file size limit, as a full disk would): the old
 * checkpoint is byte for byte what it was and no temporary file is left. */
Test(checkpoint, failed_write_keeps_previous_file)
{
    mg_ctx *ctx = tu_ctx();
    const char *p = tu_path("c.safetensors");
    write_bytes(p, "previous", 8);
    mg_tensor *t;
    mg_checkpoint *ck = big_checkpoint(ctx, &t);
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit rl = {.rlim_cur = 64 * 1024, .rlim_max = RLIM_INFINITY};
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
    mg_status s = mg_checkpoint_save(ck, p);
    rl.rlim_cur = RLIM_INFINITY;
    setrlimit(RLIMIT_FSIZE, &rl);
    cr_assert_eq(s, MG_ERR_IO);
    cr_assert(strstr(mg_ctx_error(ctx), p), "%s", mg_ctx_error(ctx));
    cr_assert(strstr(mg_ctx_error(ctx), "unchanged"), "%s", mg_ctx_error(ctx));
    size_t n;
    unsigned char *b = read_bytes(p, &n);
    cr_assert(n == 8 && memcmp(b, "previous", 8) == 0, "the previous file was touched");
    free(b);
    cr_assert_eq(count_files(tu_tmpdir()), 1, "a temporary file was left behind");
    /* and then a write that can succeed replaces it */
    cr_assert_eq(mg_checkpoint_save(ck, p), MG_OK, "%s", mg_ctx_error(ctx));
    cr_assert_eq(count_files(tu_tmpdir()), 1);
    mg_checkpoint_free(ck);
    mg_tensor_free(t);
    mg_ctx_free(ctx);
}

Test(checkpoint, unwritable_targets_fail_cleanly)
{
    mg_ctx *ctx = tu_ctx();
    mg_tensor *t;
    mg_checkpoint *ck = big_checkpoint(ctx, &t);
    cr_assert_eq(mg_checkpoint_save(ck, tu_path("no/such/dir/c.safetensors")), MG_ERR_IO);
    cr_assert(strstr(mg_ctx_error(ctx), "no/such/dir"), "%s", mg_ctx_error(ctx));
    /* a directory in the way: the rename fails, the directory survives */
    cr_assert_eq(mkdir(tu_path("d.safetensors"), 0755), 0);
    cr_assert_eq(mg_checkpoint_save(ck, tu_path("d.safetensors")), MG_ERR_IO);
    struct stat st;
    cr_assert(stat(tu_path("d.safetensors"), &st) == 0 && S_ISDIR(st.st_mode));
    cr_assert_eq(count_files(tu_tmpdir()), 1, "a temporary file was left behind");
    if (geteuid() != 0) { /* permissions mean nothing to root */
        cr_assert_eq(mkdir(tu_path("ro"), 0555), 0);
        cr_assert_eq(mg_checkpoint_save(ck, tu_path("ro/c.safetensors")), MG_ERR_IO);
    }
    mg_checkpoint_free(ck);
    mg_tensor_free(t);
    mg_ctx_free(ctx);
}

/* ---- corrupt files ------------------------------------------------------------------ */

#define HDR_A "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}"

Test(checkpoint, valid_hand_made_file_loads)
{
    mg_ctx *ctx = tu_ctx();
    mg_checkpoint *ck;
    cr_assert_eq(mg_checkpoint_load(ctx, raw_file("ok", HDR_A, 8), &ck), MG_OK, "%s", mg_ctx_error(ctx));
    cr_assert_eq(mg_checkpoint_count(ck), 1);
    mg_checkpoint_free(ck);
    mg_ctx_free(ctx);
}

Test(checkpoint, missing_and_short_files)
{
    expect_load_error(tu_path("absent.safetensors"), MG_ERR_IO, "cannot open", NULL);
    write_bytes(tu_path("empty"), "", 0);
    expect_load_error(tu_path("empty"), MG_ERR_PARSE, "truncated", NULL);
    write_bytes(tu_path("five"), "\x10\0\0\0\0", 5);
    expect_load_error(tu_path("five"), MG_ERR_PARSE, "truncated", NULL);
}

Test(checkpoint, bad_header_lengths)
{
    unsigned char huge[16] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, '{', '}'};
    write_bytes(tu_path("huge"), huge, 16);
    expect_load_error(tu_path("huge"), MG_ERR_PARSE, "header length", NULL);
    unsigned char longer[16] = {200, 0, 0, 0, 0, 0, 0, 0, '{', '}'};
    write_bytes(tu_path("longer"), longer, 16);
    expect_load_error(tu_path("longer"), MG_ERR_PARSE, "truncated", "200");
    unsigned char zero[8] = {0};
    write_bytes(tu_path("zero"), zero, 8);
    expect_load_error(tu_path("zero"), MG_ERR_PARSE, "header length 0", NULL);
}

Test(checkpoint, malformed_json)
{
    expect_load_error(raw_file("j1", "{\"a\": {\"dtype\": ", 0), MG_ERR_PARSE, "corrupt header", NULL);
    expect_load_error(raw_file("j2", "[1, 2, 3]", 0), MG_ERR_PARSE, "not a JSON object", NULL);
    expect_load_error(raw_file("j3", "{} garbage", 0), MG_ERR_PARSE, "trailing", NULL);
    expect_load_error(raw_file("j4", "{\"a\": 5}", 0), MG_ERR_PARSE, "'a'", "data_offsets");
    expect_load_error(raw_file("j5", "{\"__metadata__\": {\"k\": 5}}", 0), MG_ERR_PARSE, "'k'", "string");
    expect_load_error(raw_file("j6", "{\"__metadata__\": []}", 0), MG_ERR_PARSE, "__metadata__", NULL);
}

Test(checkpoint, bad_entries)
{
    expect_load_error(raw_file("d", "{\"a\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4),
                      MG_ERR_PARSE, "'a'", "BF16");
    expect_load_error(raw_file("s1", "{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8),
                      MG_ERR_PARSE, "'a'", "bad shape");
    expect_load_error(raw_file("s2", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4),
                      MG_ERR_PARSE, "'a'", "bad shape");
    expect_load_error(raw_file("s3", "{\"a\":{\"dtype\":\"F32\",\"shape\":\"2\",\"data_offsets\":[0,8]}}", 8),
                      MG_ERR_PARSE, "'a'", "bad shape");
    expect_load_error(raw_file("o1", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4),
                      MG_ERR_PARSE, "'a'", "truncated");
    expect_load_error(raw_file("o2", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8),
                      MG_ERR_PARSE, "'a'", "data_offsets");
    expect_load_error(raw_file("o3", "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 12),
                      MG_ERR_PARSE, "'a'", "needs 12");
    expect_load_error(raw_file("o4", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                                     "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12),
                      MG_ERR_PARSE, "overlap", "'b'");
}

/* A good file cut short anywhere is refused. */
Test(checkpoint, truncated_copies_of_a_good_file)
{
    mg_ctx *ctx = tu_ctx();
    mg_tensor *a = mg_tensor_new2(MG_F32, 3, 3);
    mg_checkpoint *ck;
    cr_assert_eq(mg_checkpoint_new(ctx, &ck), MG_OK);
    cr_assert_eq(mg_checkpoint_add(ck, "a", a), MG_OK);
    cr_assert_eq(mg_checkpoint_save(ck, tu_path("g")), MG_OK);
    mg_checkpoint_free(ck);
    size_t n;
    unsigned char *b = read_bytes(tu_path("g"), &n);
    for (size_t cut = 0; cut < n; cut += 7) {
        write_bytes(tu_path("cut"), b, cut);
        expect_load_error(tu_path("cut"), MG_ERR_PARSE, NULL, NULL);
    }
    free(b);
    mg_tensor_free(a);
    mg_ctx_free(ctx);
}

/* ---- a MintNet model from a spec: log-likelihoods survive a round trip ---------- */

static const char tiny_spec[] =
    "plugins: [mintnet]\n"
    "model:\n"
    "  input: [1, 8, 8]\n"
    "  preprocess: {dequantize: uniform, logit: {lambda: 1.0e-6}}\n"
    "  layers:\n"
    "    - mintnet.block: {mask: A, latent: 2}\n"
    "    - squeeze: {factor: 2}\n"
    "    - mintnet.block: {mask: B, latent: 1}\n"
    "data: {dataset: generated}\n";

typedef struct flow {
    mg_spec *spec;
    mg_params *ps;
    mg_model *m;
    mg_model_graph *fg;
    mg_exec *e;
} flow;

static void flow_init(mg_ctx *ctx, flow *f, uint64_t seed)
{
    memset(f, 0, sizeof *f);
    cr_assert_eq(mg_spec_load_string(ctx, tiny_spec, strlen(tiny_spec), "tiny", 0, &f->spec), MG_OK, "%s",
                 mg_ctx_error(ctx));
    cr_assert_eq(mg_params_new(&f->ps), MG_OK);
    cr_assert_eq(mg_model_new(ctx, f->spec, f->ps, &f->m), MG_OK, "%s", mg_ctx_error(ctx));
    cr_assert_eq(mg_model_init_params(f->m, seed), MG_OK, "%s", mg_ctx_error(ctx));
    cr_assert_eq(mg_model_build_forward(f->m, 4, &f->fg), MG_OK, "%s", mg_ctx_error(ctx));
    mg_compile_opts o = {.struct_size = sizeof o, .outputs = &f->fg->nll, .n_outputs = 1};
    cr_assert_eq(mg_graph_compile(f->fg->g, &o, &f->e), MG_OK, "%s", mg_ctx_error(ctx));
}

static void flow_free(flow *f)
{
    mg_exec_free(f->e);
    mg_model_graph_free(f->fg);
    mg_model_free(f->m);
    mg_params_free(f->ps);
    mg_spec_free(f->spec);
}

static mg_tensor *flow_nll(flow *f, uint64_t seed)
{
    mg_rng r;
    mg_rng_seed(&r, seed);
    mg_tensor_rand_uniform(mg_exec_tensor(f->e, f->fg->x), &r, 0.01, 0.99);
    cr_assert_eq(mg_exec_forward(f->e), MG_OK);
    return mg_tensor_clone(mg_exec_tensor(f->e, f->fg->nll));
}

Test(checkpoint, mintnet_log_likelihoods_are_bit_identical_after_reload)
{
    mg_ctx *ctx = tu_ctx();
    flow a, b;
    flow_init(ctx, &a, 1);
    flow_init(ctx, &b, 2);
    mg_tensor *la = flow_nll(&a, 9), *lb0 = flow_nll(&b, 9);
    cr_assert(!same_bits(la, lb0), "different initialisations gave the same log-likelihoods");
    mg_checkpoint *ck;
    cr_assert_eq(mg_checkpoint_new(ctx, &ck), MG_OK);
    cr_assert_eq(mg_checkpoint_add_params(ck, a.ps, NULL), MG_OK);
    cr_assert_eq(mg_checkpoint_save(ck, tu_path("flow.safetensors")), MG_OK, "%s", mg_ctx_error(ctx));
    mg_checkpoint_free(ck);
    cr_assert_eq(mg_checkpoint_load(ctx, tu_path("flow.safetensors"), &ck), MG_OK, "%s", mg_ctx_error(ctx));
    cr_assert_not_null(mg_checkpoint_find(ck, "flow.0.w1"));
    cr_assert_not_null(mg_checkpoint_find(ck, "flow.2.t"));
    cr_assert_eq(mg_checkpoint_load_params(ck, b.ps, NULL, 1), MG_OK, "%s", mg_ctx_error(ctx));
    mg_checkpoint_free(ck);
    mg_tensor *lb = flow_nll(&b, 9);
    cr_assert(same_bits(la, lb), "log-likelihoods differ after reload: %.9g vs %.9g", mg_tensor_get(la, 0),
              mg_tensor_get(lb, 0));
    mg_tensor_free(la), mg_tensor_free(lb0), mg_tensor_free(lb);
    flow_free(&a), flow_free(&b);
    mg_ctx_free(ctx);
}
