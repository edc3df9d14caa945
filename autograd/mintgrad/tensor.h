/* mintgrad/tensor.h: dense tensors (f32, f64, i32, u8) of rank up to
 * MG_MAX_RANK, and the random number generator used for initialisation,
 * dequantisation and sampling.
 *
 * A tensor is a shape, strides (in elements) and a data pointer. Tensors made
 * by mg_tensor_new own their data (64-byte aligned) and free it in
 * mg_tensor_free; tensors made by mg_tensor_wrap borrow it. Every tensor the
 * engine hands out (graph buffers, gradients, parameters) is contiguous in
 * row-major (NCHW) order and owned by the object that handed it out. */
#ifndef MINTGRAD_TENSOR_H
#define MINTGRAD_TENSOR_H

#include <mintgrad/core.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MG_MAX_RANK 6

typedef enum mg_dtype {
    MG_F32 = 1,
    MG_F64 = 2,
    MG_I32 = 3,
    MG_U8 = 4
} mg_dtype;

/* Size in bytes of one element (0 for an unknown dtype). */
size_t mg_dtype_size(mg_dtype dt);
/* "f32", "f64", "i32", "u8" or "?". */
const char *mg_dtype_name(mg_dtype dt);

typedef struct mg_tensor {
    mg_dtype dtype;
    int rank;
    int64_t shape[MG_MAX_RANK];
    int64_t stride[MG_MAX_RANK]; /* in elements; row-major when contiguous */
    void *data;
    unsigned flags;              /* MG_TENSOR_OWNS_DATA */
    char *name;                  /* owned; may be NULL */
} mg_tensor;

#define MG_TENSOR_OWNS_DATA 1u

/* A new zero-filled, contiguous tensor that owns its data. `shape` holds
 * `rank` sizes, each >= 0 (rank 0 is a scalar with one element). Returns NULL
 * on a bad argument or allocation failure. */
mg_tensor *mg_tensor_new(mg_dtype dt, int rank, const int64_t *shape);
/* Same, shape given inline: mg_tensor_new4(MG_F32, n, c, h, w) etc. */
mg_tensor *mg_tensor_new1(mg_dtype dt, int64_t d0);
mg_tensor *mg_tensor_new2(mg_dtype dt, int64_t d0, int64_t d1);
mg_tensor *mg_tensor_new4(mg_dtype dt, int64_t d0, int64_t d1, int64_t d2, int64_t d3);
/* A contiguous tensor header over caller-owned `data` (not copied, not freed). */
mg_tensor *mg_tensor_wrap(mg_dtype dt, int rank, const int64_t *shape, void *data);
/* A deep copy (contiguous, owns its data, same name). NULL on failure. */
mg_tensor *mg_tensor_clone(const mg_tensor *t);
/* Frees the header, its name and (if owned) its data. NULL is a no-op. */
void mg_tensor_free(mg_tensor *t);

/* Fills in a contiguous header (no allocation): for tensors embedded in other
 * structs. Returns MG_ERR_ARG on a bad rank or negative size. */
mg_status mg_tensor_init(mg_tensor *t, mg_dtype dt, int rank, const int64_t *shape, void *data);

int64_t mg_tensor_numel(const mg_tensor *t);
size_t mg_tensor_nbytes(const mg_tensor *t);
int mg_tensor_is_contiguous(const mg_tensor *t);
/* 1 if dtype, rank and every size agree. */
int mg_tensor_same_shape(const mg_tensor *a, const mg_tensor *b);
/* Renames (copies `name`); MG_ERR_NOMEM on failure. */
mg_status mg_tensor_set_name(mg_tensor *t, const char *name);

/* Copies src into dst element by element, converting between f32 and f64.
 * Shapes must have equal element counts (MG_ERR_SHAPE otherwise). */
mg_status mg_tensor_copy(mg_tensor *dst, const mg_tensor *src);
/* Sets every element to v (converted to the dtype). */
void mg_tensor_fill(mg_tensor *t, double v);
/* Element i (flat, contiguous order) as a double / set from a double. */
double mg_tensor_get(const mg_tensor *t, int64_t i);
void mg_tensor_set(mg_tensor *t, int64_t i, double v);

/* Writes "[2, 3, 4]" into buf (always NUL-terminated) and returns buf. */
char *mg_shape_str(int rank, const int64_t *shape, char *buf, size_t n);
/* Writes "x: f32[2, 3, 4]" (name optional) into buf and returns buf. */
char *mg_tensor_str(const mg_tensor *t, char *buf, size_t n);

static inline float *mg_f32(const mg_tensor *t) { return (float *)t->data; }
static inline double *mg_f64(const mg_tensor *t) { return (double *)t->data; }

/* ---- random numbers -------------------------------------------------------
 * xoshiro256** with a splitmix64 seeder. The state is plain data so that
 * checkpoints can save and restore it exactly. */
typedef struct mg_rng {
    uint64_t s[4];
    int has_spare;  /* Box-Muller keeps its second value */
    double spare;
} mg_rng;

void mg_rng_seed(mg_rng *r, uint64_t seed);
uint64_t mg_rng_next(mg_rng *r);
double mg_rng_uniform(mg_rng *r);        /* [0, 1) */
double mg_rng_normal(mg_rng *r);         /* N(0, 1) */
/* Fills t (f32/f64) with U(lo, hi) or N(mean, std). */
void mg_tensor_rand_uniform(mg_tensor *t, mg_rng *r, double lo, double hi);
void mg_tensor_rand_normal(mg_tensor *t, mg_rng *r, double mean, double std);

#ifdef __cplusplus
}
#endif
#endif
