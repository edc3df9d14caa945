/* examples/data.h: datasets of 8-bit images for the driver: IDX files
 * (Fashion-MNIST, MNIST, or any IDX image file), generated images for
 * tests, seeded shuffled batching that a checkpoint can resume exactly, and
 * dequantisation of a batch into a model's input. */
#ifndef MG_EXAMPLES_DATA_H
#define MG_EXAMPLES_DATA_H

#include <mintgrad/mintgrad.h>

typedef struct dataset {
    int64_t n, c, h, w;
    uint8_t *pixels;     /* [n, c, h, w], mg_malloc'd */
    char *source;        /* file path or "generated ...", mg_malloc'd */
} dataset;

typedef enum data_split { SPLIT_TRAIN = 0, SPLIT_TEST = 1 } data_split;

/* Loads one split of spec->data, checked against the model's input shape.
 * Errors name the file (and the spec's file:line:col where it helps); a
 * missing Fashion-MNIST file names the Debian package dataset-fashion-mnist. */
mg_status dataset_load(mg_ctx *ctx, const mg_spec *spec, data_split split, dataset *out);
/* Loads an IDX image file (gzip or plain) as (n, 1, rows, cols); at most
 * max_items images when > 0. With `chw` not NULL the image size must match. */
mg_status dataset_load_idx(mg_ctx *ctx, const char *path, const int64_t chw[3], int64_t max_items,
                           dataset *out);
/* n deterministic synthetic images of shape chw: a few soft blobs over faint
 * stripes, different for every (seed, split, index). */
mg_status dataset_generate(mg_ctx *ctx, const int64_t chw[3], int64_t n, uint64_t seed, data_split split,
                           dataset *out);
void dataset_free(dataset *d);
/* Bytes per image. */
static inline int64_t dataset_image_bytes(const dataset *d) { return d->c * d->h * d->w; }
/* Copies images [start, start + k) of d into out [batch, c, h, w] (k <=
 * batch), filling the rest of the batch with copies of image `start`. */
void dataset_stage(const dataset *d, int64_t start, int64_t k, int64_t batch, uint8_t *out);

/* Endless shuffled batches: every epoch is a fresh permutation drawn from
 * the batcher's RNG; a batch may span two epochs. The state (the RNG as it
 * was before the current epoch's shuffle, the epoch and the position) is
 * enough to continue exactly. */
typedef struct batcher {
    const dataset *d;
    int64_t *perm;       /* [d->n] */
    int64_t pos, epoch;
    mg_rng rng;          /* draws the next permutation */
    mg_rng epoch_rng;    /* rng before the current permutation was drawn */
} batcher;

mg_status batcher_init(mg_ctx *ctx, batcher *b, const dataset *d, uint64_t seed);
void batcher_free(batcher *b);
/* Copies the next `batch` images into out [batch, c, h, w]. */
void batcher_next(batcher *b, int64_t batch, uint8_t *out);
/* Saves / restores the state as "train.data_rng" and "train.data_pos". */
mg_status batcher_save(const batcher *b, mg_checkpoint *ck);
mg_status batcher_restore(mg_ctx *ctx, batcher *b, const mg_checkpoint *ck);

/* Dequantises `batch` images of pixels into x (f32/f64, batch*c*h*w
 * elements): uniform noise from rng, center (+0.5) or none (v/256). */
mg_status data_dequantize(mg_ctx *ctx, const uint8_t *pixels, int64_t batch, const int64_t chw[3],
                          mg_spec_dequant mode, mg_rng *rng, mg_tensor *x);

#endif
