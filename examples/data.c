/* examples/data.c: datasets, batching and dequantisation for the driver
 * (see data.h). */
#include "data.h"

#include "idx.h"

#include <math.h>
#include <mintgrad/flow.h>
#include <stdio.h>
#include <string.h>

static char *dup_printf(const char *fmt, const char *a, uint64_t b)
{
    char buf[1024];
    snprintf(buf, sizeof buf, fmt, a, (unsigned long long)b);
    return mg_strdup(buf);
}

mg_status dataset_load_idx(mg_ctx *ctx, const char *path, const int64_t chw[3], int64_t max_items, dataset *out)
{
    memset(out, 0, sizeof *out);
    idx_file f;
    mg_status s = idx_read(ctx, path, IDX_MAGIC_IMAGES, max_items, &f);
    if (s != MG_OK) return s;
    if (chw && (chw[0] != 1 || chw[1] != f.dims[1] || chw[2] != f.dims[2])) {
        s = mg_ctx_fail(ctx, MG_ERR_SHAPE, "%s: images are 1x%lldx%lld, the model's input is %lldx%lldx%lld", path,
                        (long long)f.dims[1], (long long)f.dims[2], (long long)chw[0], (long long)chw[1],
                        (long long)chw[2]);
        idx_free(&f);
        return s;
    }
    *out = (dataset){.n = f.dims[0], .c = 1, .h = f.dims[1], .w = f.dims[2], .pixels = f.data,
                     .source = mg_strdup(path)};
    if (!out->source) {
        idx_free(&f);
        memset(out, 0, sizeof *out);
        return mg_ctx_fail(ctx, MG_ERR_NOMEM, "out of memory");
    }
    return MG_OK;
}

/* The per-image stream: splitmix of seed, split and index. */
static void image_rng(mg_rng *r, uint64_t seed, data_split split, int64_t i)
{
    mg_rng_seed(r, seed * 0x9E3779B97F4A7C15ull ^ ((uint64_t)split << 62) ^ (uint64_t)i * 0xD1B54A32D192ED03ull);
}

/* One synthetic image: soft blobs over faint oriented stripes, in [0, 255]. */
static void generate_image(uint8_t *px, const int64_t chw[3], mg_rng *r)
{
    int64_t C = chw[0], H = chw[1], W = chw[2];
    int nb = 1 + (int)(mg_rng_next(r) % 3);
    double cx[3], cy[3], s2[3], amp[3];
    for (int k = 0; k < nb; k++) {
        cx[k] = (0.2 + 0.6 * mg_rng_uniform(r)) * (double)W;
        cy[k] = (0.2 + 0.6 * mg_rng_uniform(r)) * (double)H;
        double s = (0.08 + 0.17 * mg_rng_uniform(r)) * (double)(H < W ? H : W);
        s2[k] = 2 * s * s;
        amp[k] = 0.5 + 0.5 * mg_rng_uniform(r);
    }
    double th = M_PI * mg_rng_uniform(r), fr = 2 * M_PI * (2 + 3 * mg_rng_uniform(r)) / (double)W;
    double ph = 2 * M_PI * mg_rng_uniform(r), sa = 0.25 * mg_rng_uniform(r);
    for (int64_t c = 0; c < C; c++)
        for (int64_t y = 0; y < H; y++)
            for (int64_t x = 0; x < W; x++) {
                double v = sa * (0.5 + 0.5 * sin(fr * ((double)x * cos(th) + (double)y * sin(th)) + ph));
                for (int k = 0; k < nb; k++) {
                    double dx = (double)x - cx[k], dy = (double)y - cy[k];
                    v += amp[k] * (1.0 - 0.15 * (double)c) * exp(-(dx * dx + dy * dy) / s2[k]);
                }
                v = v < 0 ? 0 : v > 1 ? 1 : v;
                px[(c * H + y) * W + x] = (uint8_t)lround(v * 255);
            }
}

mg_status dataset_generate(mg_ctx *ctx, const int64_t chw[3], int64_t n, uint64_t seed, data_split split,
                           dataset *out)
{
    memset(out, 0, sizeof *out);
    if (n <= 0 || chw[0] <= 0 || chw[1] <= 0 || chw[2] <= 0)
        return mg_ctx_fail(ctx, MG_ERR_ARG, "generated data: bad size %lld x [%lld, %lld, %lld]", (long long)n,
                           (long long)chw[0], (long long)chw[1], (long long)chw[2]);
    int64_t per = chw[0] * chw[1] * chw[2];
    out->pixels = mg_malloc((size_t)(n * per));
    out->source = dup_printf("generated %s images (seed %llu)", split == SPLIT_TRAIN ? "train" : "test", seed);
    if (!out->pixels || !out->source) {
        dataset_free(out);
        return mg_ctx_fail(ctx, MG_ERR_NOMEM, "generated data: out of memory");
    }
    out->n = n, out->c = chw[0], out->h = chw[1], out->w = chw[2];
    for (int64_t i = 0; i < n; i++) {
        mg_rng r;
        image_rng(&r, seed, split, i);
        generate_image(out->pixels + i * per, chw, &r);
    }
    return MG_OK;
}

/* The IDX path of a split: spec file names are relative to data.path. */
static char *split_path(const mg_spec *spec, data_split split)
{
    const char *f = split == SPLIT_TRAIN ? spec->data.train_file : spec->data.test_file;
    if (!f) return NULL;
    if (f[0] == '/' || !spec->data.path) return mg_strdup(f);
    size_t n = strlen(spec->data.path) + strlen(f) + 2;
    char *p = mg_malloc(n);
    if (p) snprintf(p, n, "%s/%s", spec->data.path, f);
    return p;
}

mg_status dataset_load(mg_ctx *ctx, const mg_spec *spec, data_split split, dataset *out)
{
    const int64_t *chw = spec->model.input;
    int64_t limit = split == SPLIT_TRAIN ? spec->data.train_size : spec->data.test_size;
    if (spec->data.dataset == MG_SPEC_DATA_GENERATED)
        return dataset_generate(ctx, chw, limit, spec->train.seed, split, out);
    char *path = split_path(spec, split);
    if (!path) return mg_ctx_fail(ctx, MG_ERR_NOMEM, "out of memory");
    mg_status s = dataset_load_idx(ctx, path, chw, limit, out);
    if (s == MG_ERR_NOTFOUND) {
        int line = 0, col = 0;
        mg_spec_where(spec, "data.path", &line, &col);
        const char *hint = spec->data.dataset == MG_SPEC_DATA_FASHION_MNIST
                               ? "install the Debian package dataset-fashion-mnist"
                               : "Debian ships no MNIST package; put the IDX files in data.path";
        s = mg_spec_fail_at(spec, ctx, s, line, col, "%s: no such file (%s)", path, hint);
    }
    mg_free(path);
    return s;
}

void dataset_free(dataset *d)
{
    if (!d) return;
    mg_free(d->pixels);
    mg_free(d->source);
    memset(d, 0, sizeof *d);
}

void dataset_stage(const dataset *d, int64_t start, int64_t k, int64_t batch, uint8_t *out)
{
    int64_t per = dataset_image_bytes(d);
    memcpy(out, d->pixels + start * per, (size_t)(k * per));
    for (int64_t i = k; i < batch; i++) memcpy(out + i * per, d->pixels + start * per, (size_t)per);
}

/* ---- batching ----------------------------------------------------------------- */

static void batcher_shuffle(batcher *b)
{
    b->epoch_rng = b->rng;
    for (int64_t i = 0; i < b->d->n; i++) b->perm[i] = i;
    for (int64_t i = b->d->n - 1; i > 0; i--) {
        int64_t j = (int64_t)(mg_rng_next(&b->rng) % (uint64_t)(i + 1));
        int64_t t = b->perm[i];
        b->perm[i] = b->perm[j];
        b->perm[j] = t;
    }
    b->pos = 0;
}

mg_status batcher_init(mg_ctx *ctx, batcher *b, const dataset *d, uint64_t seed)
{
    memset(b, 0, sizeof *b);
    if (d->n <= 0) return mg_ctx_fail(ctx, MG_ERR_ARG, "%s: no images", d->source ? d->source : "dataset");
    b->d = d;
    b->perm = mg_malloc((size_t)d->n * sizeof *b->perm);
    if (!b->perm) return mg_ctx_fail(ctx, MG_ERR_NOMEM, "batcher: out of memory");
    mg_rng_seed(&b->rng, seed ^ 0x5DEECE66Dull);
    batcher_shuffle(b);
    return MG_OK;
}

void batcher_free(batcher *b)
{
    mg_free(b->perm);
    memset(b, 0, sizeof *b);
}

void batcher_next(batcher *b, int64_t batch, uint8_t *out)
{
    int64_t per = dataset_image_bytes(b->d);
    for (int64_t i = 0; i < batch; i++) {
        if (b->pos == b->d->n) {
            b->epoch++;
            batcher_shuffle(b);
        }
        memcpy(out + i * per, b->d->pixels + b->perm[b->pos++] * per, (size_t)per);
    }
}

mg_status batcher_save(const batcher *b, mg_checkpoint *ck)
{
    int64_t pos[3] = {b->epoch, b->pos, b->d->n};
    mg_status s = mg_checkpoint_add_rng(ck, "train.data_rng", &b->epoch_rng);
    return s == MG_OK ? mg_checkpoint_add_i64(ck, "train.data_pos", pos, 3) : s;
}

mg_status batcher_restore(mg_ctx *ctx, batcher *b, const mg_checkpoint *ck)
{
    int64_t pos[3];
    mg_rng r;
    mg_status s = mg_checkpoint_read_rng(ck, "train.data_rng", &r);
    if (s == MG_OK) s = mg_checkpoint_read_i64(ck, "train.data_pos", pos, 3);
    if (s != MG_OK) return s;
    if (pos[2] != b->d->n || pos[1] < 0 || pos[1] > b->d->n)
        return mg_ctx_fail(ctx, MG_ERR_SHAPE, "checkpoint '%s': its data position is for %lld training "
                           "images, the data has %lld", mg_checkpoint_path(ck), (long long)pos[2],
                           (long long)b->d->n);
    b->rng = r;
    batcher_shuffle(b);
    b->epoch = pos[0];
    b->pos = pos[1];
    return MG_OK;
}

/* ---- dequantisation -------------------------------------------------------------- */

mg_status data_dequantize(mg_ctx *ctx, const uint8_t *pixels, int64_t batch, const int64_t chw[3],
                          mg_spec_dequant mode, mg_rng *rng, mg_tensor *x)
{
    int64_t shape[4] = {batch, chw[0], chw[1], chw[2]};
    mg_tensor px;
    mg_status s = mg_tensor_init(&px, MG_U8, 4, shape, (void *)pixels);
    if (s != MG_OK) return s;
    if (mode != MG_SPEC_DEQUANT_NONE)
        return mg_dequantize(ctx, &px, x, mode == MG_SPEC_DEQUANT_UNIFORM ? rng : NULL);
    if (mg_tensor_numel(x) != mg_tensor_numel(&px))
        return mg_ctx_fail(ctx, MG_ERR_SHAPE, "dequantize: %lld pixels for %lld inputs",
                           (long long)mg_tensor_numel(&px), (long long)mg_tensor_numel(x));
    for (int64_t i = 0; i < mg_tensor_numel(x); i++) mg_tensor_set(x, i, pixels[i] / 256.0);
    return MG_OK;
}
