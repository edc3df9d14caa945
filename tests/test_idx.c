/* tests/test_idx.c: the driver's data side: IDX files (gzip and plain)
 * written by the test itself and read back, every IDX error, generated
 * images, shuffled batching that resumes exactly from a checkpoint, and
 * dequantisation. */
#include "testutil.h"

#include "../examples/data.h"
#include "../examples/idx.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

TestSuite(idx, .init = tu_tmpdir_make, .fini = tu_tmpdir_remove);

/* n images of h x w with pixel (i, y, x) = (7 i + 3 y + x) mod 256. */
static uint8_t *pattern(int64_t n, int64_t h, int64_t w)
{
    uint8_t *p = malloc((size_t)(n * h * w));
    for (int64_t i = 0; i < n; i++)
        for (int64_t y = 0; y < h; y++)
            for (int64_t x = 0; x < w; x++) p[(i * h + y) * w + x] = (uint8_t)((7 * i + 3 * y + x) % 256);
    return p;
}

static void write_raw(const char *path, const void *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(b, 1, n, f), n);
    fclose(f);
}

static void expect_error(const char *path, uint32_t magic, mg_status want, const char *needle)
{
    mg_ctx *ctx = tu_ctx();
    idx_file f;
    mg_status s = idx_read(ctx, path, magic, 0, &f);
    cr_assert_eq(s, want, "%s: got %s: %s", path, mg_status_name(s), mg_ctx_error(ctx));
    cr_assert_null(f.data);
    cr_assert(strstr(mg_ctx_error(ctx), path), "message does not name the file: %s", mg_ctx_error(ctx));
    cr_assert(!needle || strstr(mg_ctx_error(ctx), needle), "message lacks '%s': %s", needle, mg_ctx_error(ctx));
    mg_ctx_free(ctx);
}

static void round_trip(int gzip)
{
    mg_ctx *ctx = tu_ctx();
    int64_t dims[3] = {5, 6, 7};
    uint8_t *p = pattern(5, 6, 7);
    const char *path = tu_path(gzip ? "img.gz" : "img");
    cr_assert_eq(idx_write(ctx, path, gzip, 3, dims, p), MG_OK);
    /* the plain file really is plain, the gzip file really is gzip */
    FILE *f = fopen(path, "rb");
    unsigned char head[4];
    cr_assert_eq(fread(head, 1, 4, f), 4);
    fclose(f);
    if (gzip) cr_assert(head[0] == 0x1f && head[1] == 0x8b);
    else cr_assert(head[0] == 0 && head[1] == 0 && head[2] == 8 && head[3] == 3);
    idx_file r;
    cr_assert_eq(idx_read(ctx, path, IDX_MAGIC_IMAGES, 0, &r), MG_OK, "%s", mg_ctx_error(ctx));
    cr_assert_eq(r.ndim, 3);
    cr_assert(r.dims[0] == 5 && r.dims[1] == 6 && r.dims[2] == 7);
    cr_assert_eq(memcmp(r.data, p, 5 * 6 * 7), 0);
    idx_free(&r);
    cr_assert_eq(idx_read(ctx, path, IDX_MAGIC_IMAGES, 2, &r), MG_OK);
    cr_assert_eq(r.dims[0], 2);
    cr_assert_eq(memcmp(r.data, p, 2 * 6 * 7), 0);
    idx_free(&r);
    free(p);
    mg_ctx_free(ctx);
}

Test(idx, plain_round_trip) { round_trip(0); }
Test(idx, gzip_round_trip) { round_trip(1); }

Test(idx, labels)
{
    mg_ctx *ctx = tu_ctx();
    uint8_t lab[4] = {9, 0, 3, 255};
    int64_t n = 4;
    cr_assert_eq(idx_write(ctx, tu_path("lab.gz"), 1, 1, &n, lab), MG_OK);
    idx_file r;
    cr_assert_eq(idx_read(ctx, tu_path("lab.gz"), IDX_MAGIC_LABELS, 0, &r), MG_OK, "%s", mg_ctx_error(ctx));
    cr_assert(r.ndim == 1 && r.dims[0] == 4 && memcmp(r.data, lab, 4) == 0);
    idx_free(&r);
    /* labels are not images and images are not labels */
    expect_error(tu_path("lab.gz"), IDX_MAGIC_IMAGES, MG_ERR_PARSE, "bad IDX magic 0x00000801");
    mg_ctx_free(ctx);
}

Test(idx, errors)
{
    mg_ctx *ctx = tu_ctx();
    expect_error(tu_path("absent.gz"), IDX_MAGIC_IMAGES, MG_ERR_NOTFOUND, "cannot open");
    write_raw(tu_path("short"), "\0\0\x08", 3);
    expect_error(tu_path("short"), IDX_MAGIC_IMAGES, MG_ERR_PARSE, "truncated IDX header");
    write_raw(tu_path("hdr"), "\0\0\x08\x03\0\0\0\x05\0\0", 10);
    expect_error(tu_path("hdr"), IDX_MAGIC_IMAGES, MG_ERR_PARSE, "truncated IDX header");
    write_raw(tu_path("text"), "hello, world: not an IDX file", 29);
    expect_error(tu_path("text"), IDX_MAGIC_IMAGES, MG_ERR_PARSE, "bad IDX magic");
    write_raw(tu_path("zero"), "\0\0\x08\x03\0\0\0\x05\0\0\0\0\0\0\0\x1c", 16);
    expect_error(tu_path("zero"), IDX_MAGIC_IMAGES, MG_ERR_PARSE, "bad IDX dimension 1: 0");
    write_raw(tu_path("huge"), "\0\0\x08\x03\x7f\0\0\0\0\0\0\x1c\0\0\0\x1c", 16);
    expect_error(tu_path("huge"), IDX_MAGIC_IMAGES, MG_ERR_PARSE, "bad IDX dimension 0");
    mg_ctx_free(ctx);
}

static void write_gz(const char *path, const void *b, size_t n)
{
    gzFile gz = gzopen(path, "wb");
    cr_assert_not_null(gz);
    cr_assert_eq(gzwrite(gz, b, (unsigned)n), (int)n);
    cr_assert_eq(gzclose(gz), Z_OK);
}

/* A header promising 9 images of 4x4 over the data of 3, plain and gzip. */
Test(idx, truncated_data)
{
    unsigned char b[16 + 48] = {0, 0, 8, 3, 0, 0, 0, 9, 0, 0, 0, 4, 0, 0, 0, 4};
    write_raw(tu_path("cut"), b, sizeof b);
    expect_error(tu_path("cut"), IDX_MAGIC_IMAGES, MG_ERR_PARSE, "truncated: the header promises 9 items");
    write_gz(tu_path("cut.gz"), b, sizeof b);
    expect_error(tu_path("cut.gz"), IDX_MAGIC_IMAGES, MG_ERR_PARSE, "the file holds 48 bytes");
}

/* A gzip stream damaged in the middle is an I/O error, not silent garbage. */
Test(idx, corrupt_gzip)
{
    mg_ctx *ctx = tu_ctx();
    int64_t dims[3] = {50, 28, 28};
    uint8_t *p = pattern(50, 28, 28);
    cr_assert_eq(idx_write(ctx, tu_path("c.gz"), 1, 3, dims, p), MG_OK);
    FILE *f = fopen(tu_path("c.gz"), "r+b");
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, n / 2, SEEK_SET);
    unsigned char junk[64];
    memset(junk, 0xA7, sizeof junk);
    fwrite(junk, 1, sizeof junk, f);
    fclose(f);
    idx_file r;
    mg_status s = idx_read(ctx, tu_path("c.gz"), IDX_MAGIC_IMAGES, 0, &r);
    cr_assert(s == MG_ERR_IO || s == MG_ERR_PARSE, "got %s", mg_status_name(s));
    cr_assert(strstr(mg_ctx_error(ctx), "c.gz"), "%s", mg_ctx_error(ctx));
    free(p);
    mg_ctx_free(ctx);
}

Test(idx, dataset_checks_image_size)
{
    mg_ctx *ctx = tu_ctx();
    int64_t dims[3] = {2, 28, 28}, want[3] = {1, 8, 8}, ok[3] = {1, 28, 28};
    uint8_t *p = pattern(2, 28, 28);
    cr_assert_eq(idx_write(ctx, tu_path("d.gz"), 1, 3, dims, p), MG_OK);
    dataset d;
    cr_assert_eq(dataset_load_idx(ctx, tu_path("d.gz"), want, 0, &d), MG_ERR_SHAPE);
    cr_assert(strstr(mg_ctx_error(ctx), "d.gz: images are 1x28x28, the model's input is 1x8x8"), "%s",
              mg_ctx_error(ctx));
    cr_assert_eq(dataset_load_idx(ctx, tu_path("d.gz"), ok, 0, &d), MG_OK);
    cr_assert(d.n == 2 && d.c == 1 && d.h == 28 && d.w == 28);
    cr_assert_eq(memcmp(d.pixels, p, 2 * 28 * 28), 0);
    dataset_free(&d);
    free(p);
    mg_ctx_free(ctx);
}

/* ---- generated data --------------------------------------------------------------- */

Test(idx, generated_images_are_deterministic_and_structured)
{
    mg_ctx *ctx = tu_ctx();
    int64_t chw[3] = {1, 12, 10};
    dataset a, b, c, t;
    cr_assert_eq(dataset_generate(ctx, chw, 40, 7, SPLIT_TRAIN, &a), MG_OK);
    cr_assert_eq(dataset_generate(ctx, chw, 20, 7, SPLIT_TRAIN, &b), MG_OK);
    cr_assert_eq(dataset_generate(ctx, chw, 40, 8, SPLIT_TRAIN, &c), MG_OK);
    cr_assert_eq(dataset_generate(ctx, chw, 40, 7, SPLIT_TEST, &t), MG_OK);
    int64_t per = 120;
    /* image i depends on (seed, split, i) only */
    cr_assert_eq(memcmp(a.pixels, b.pixels, (size_t)(20 * per)), 0);
    cr_assert_neq(memcmp(a.pixels, c.pixels, (size_t)per), 0);
    cr_assert_neq(memcmp(a.pixels, t.pixels, (size_t)per), 0);
    /* structure: every image has both dark and bright pixels, and
     * neighbouring pixels are much closer than random pairs */
    double near = 0, far = 0;
    for (int64_t i = 0; i < 40; i++) {
        const uint8_t *p = a.pixels + i * per;
        int lo = 255, hi = 0;
        for (int64_t k = 0; k < per; k++) lo = p[k] < lo ? p[k] : lo, hi = p[k] > hi ? p[k] : hi;
        cr_assert(hi - lo > 60, "image %lld is nearly flat (%d..%d)", (long long)i, lo, hi);
        for (int64_t k = 0; k + 1 < per; k++) near += abs(p[k] - p[k + 1]);
        for (int64_t k = 0; k + 1 < per; k++) far += abs(p[k] - p[(k * 37 + 11) % per]);
    }
    cr_assert_lt(near, 0.5 * far, "neighbours differ by %g, random pairs by %g", near, far);
    dataset_free(&a), dataset_free(&b), dataset_free(&c), dataset_free(&t);
    mg_ctx_free(ctx);
}

/* ---- batching ------------------------------------------------------------------------ */

static int64_t image_id(const uint8_t *img)
{
    return img[0] | img[1] << 8; /* see make_ids */
}

static void make_ids(dataset *d, int64_t n)
{
    d->n = n, d->c = 1, d->h = 1, d->w = 2;
    d->pixels = mg_malloc((size_t)(2 * n));
    d->source = mg_strdup("ids");
    for (int64_t i = 0; i < n; i++) d->pixels[2 * i] = (uint8_t)(i & 255), d->pixels[2 * i + 1] = (uint8_t)(i >> 8);
}

Test(idx, batches_cover_each_epoch_once)
{
    mg_ctx *ctx = tu_ctx();
    dataset d;
    make_ids(&d, 37);
    batcher b;
    cr_assert_eq(batcher_init(ctx, &b, &d, 3), MG_OK);
    uint8_t buf[2 * 37 * 3];
    batcher_next(&b, 37 * 3, buf); /* three epochs in one call: batches span epochs */
    for (int e = 0; e < 3; e++) {
        int seen[37] = {0};
        for (int i = 0; i < 37; i++) seen[image_id(buf + 2 * (37 * e + i))]++;
        for (int i = 0; i < 37; i++) cr_assert_eq(seen[i], 1, "epoch %d: image %d seen %d times", e, i, seen[i]);
    }
    cr_assert_neq(memcmp(buf, buf + 74, 74), 0, "epochs are not reshuffled");
    cr_assert_eq(b.epoch, 2);
    batcher_free(&b);
    dataset_free(&d);
    mg_ctx_free(ctx);
}

Test(idx, batcher_resumes_exactly)
{
    mg_ctx *ctx = tu_ctx();
    dataset d;
    make_ids(&d, 50);
    batcher a, b;
    cr_assert_eq(batcher_init(ctx, &a, &d, 11), MG_OK);
    cr_assert_eq(batcher_init(ctx, &b, &d, 999), MG_OK);
    uint8_t x[2 * 16], y[2 * 16];
    for (int i = 0; i < 7; i++) batcher_next(&a, 16, x); /* 112 images: inside epoch 3 */
    mg_checkpoint *ck;
    cr_assert_eq(mg_checkpoint_new(ctx, &ck), MG_OK);
    cr_assert_eq(batcher_save(&a, ck), MG_OK);
    cr_assert_eq(mg_checkpoint_save(ck, tu_path("b.safetensors")), MG_OK);
    mg_checkpoint_free(ck);
    cr_assert_eq(mg_checkpoint_load(ctx, tu_path("b.safetensors"), &ck), MG_OK);
    cr_assert_eq(batcher_restore(ctx, &b, ck), MG_OK, "%s", mg_ctx_error(ctx));
    for (int i = 0; i < 10; i++) {
        batcher_next(&a, 16, x);
        batcher_next(&b, 16, y);
        cr_assert_eq(memcmp(x, y, sizeof x), 0, "batch %d differs after restore", i);
    }
    /* a checkpoint of another data set size is refused */
    dataset d2;
    make_ids(&d2, 51);
    batcher c;
    cr_assert_eq(batcher_init(ctx, &c, &d2, 1), MG_OK);
    cr_assert_eq(batcher_restore(ctx, &c, ck), MG_ERR_SHAPE);
    cr_assert(strstr(mg_ctx_error(ctx), "50 training images, the data has 51"), "%s", mg_ctx_error(ctx));
    mg_checkpoint_free(ck);
    batcher_free(&a), batcher_free(&b), batcher_free(&c);
    dataset_free(&d), dataset_free(&d2);
    mg_ctx_free(ctx);
}

/* ---- dequantisation ------------------------------------------------------------------ */

Test(idx, dequantize_modes)
{
    mg_ctx *ctx = tu_ctx();
    uint8_t px[2 * 1 * 2 * 3] = {0, 1, 2, 127, 254, 255, 9, 8, 7, 6, 5, 4};
    int64_t chw[3] = {1, 2, 3};
    mg_tensor *x = mg_tensor_new4(MG_F32, 2, 1, 2, 3);
    cr_assert_eq(data_dequantize(ctx, px, 2, chw, MG_SPEC_DEQUANT_CENTER, NULL, x), MG_OK, "%s", mg_ctx_error(ctx));
    for (int i = 0; i < 12; i++) cr_assert_eq(mg_f32(x)[i], (float)((px[i] + 0.5) / 256.0), "element %d", i);
    cr_assert_eq(data_dequantize(ctx, px, 2, chw, MG_SPEC_DEQUANT_NONE, NULL, x), MG_OK);
    for (int i = 0; i < 12; i++) cr_assert_eq(mg_f32(x)[i], (float)(px[i] / 256.0));
    mg_rng r;
    mg_rng_seed(&r, 5);
    cr_assert_eq(data_dequantize(ctx, px, 2, chw, MG_SPEC_DEQUANT_UNIFORM, &r, x), MG_OK);
    int off_center = 0;
    for (int i = 0; i < 12; i++) {
        float v = mg_f32(x)[i];
        cr_assert(v >= px[i] / 256.0f && v <= (px[i] + 1) / 256.0f, "element %d: %g for pixel %d", i, v, px[i]);
        off_center += fabsf(v - (float)((px[i] + 0.5) / 256.0)) > 1e-4f;
    }
    cr_assert_gt(off_center, 6, "uniform noise looks constant");
    mg_tensor *small = mg_tensor_new1(MG_F32, 5);
    cr_assert_neq(data_dequantize(ctx, px, 2, chw, MG_SPEC_DEQUANT_CENTER, NULL, small), MG_OK);
    mg_tensor_free(small);
    mg_tensor_free(x);
    mg_ctx_free(ctx);
}
