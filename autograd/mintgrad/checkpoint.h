/* mintgrad/checkpoint.h: checkpoints in the safetensors format, so that
 * Python users can open them (safetensors.numpy.load_file).
 *
 * File layout: an 8-byte little-endian header length n, n bytes of JSON
 *   {"<tensor>": {"dtype": "F32", "shape": [..], "data_offsets": [b, e]}, ...,
 *    "__metadata__": {"<key>": "<string>", ...}}
 * (padded with spaces to a multiple of 8), then the raw little-endian tensor
 * data; offsets count from the end of the header.
 *
 * Naming convention used by mintgrad (and the `mintgrad` driver): model
 * parameters under their own names ("flow.3.w1"), optimizer state under
 * "optim.<param>.<slot>" plus "optim.steps" (I64 [1]), EMA weights under
 * "ema.<param>", other training state (RNG, data position) under "train.".
 * A file holding only the model tensors is enough for eval and sampling.
 *
 * An mg_checkpoint is a list of named entries plus string metadata. To write
 * one: mg_checkpoint_new, add entries, mg_checkpoint_save. Entries added from
 * tensors, parameters or an optimizer are borrowed (their data must stay
 * valid and unchanged until save returns); the small helpers (_i64, _u64,
 * _rng) and metadata are copied. To read one: mg_checkpoint_load reads and
 * validates the whole file; entries then point into the checkpoint's own
 * buffer until mg_checkpoint_free. */
#ifndef MINTGRAD_CHECKPOINT_H
#define MINTGRAD_CHECKPOINT_H

#include <mintgrad/optim.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mg_checkpoint mg_checkpoint;

/* The element types a checkpoint stores, with their safetensors names. */
typedef enum mg_ckpt_dtype {
    MG_CKPT_F32 = 1, /* "F32" */
    MG_CKPT_F64,     /* "F64" */
    MG_CKPT_I32,     /* "I32" */
    MG_CKPT_U8,      /* "U8"  */
    MG_CKPT_I64,     /* "I64" */
    MG_CKPT_U64      /* "U64" */
} mg_ckpt_dtype;

/* A read-only view of one entry. */
typedef struct mg_ckpt_entry {
    const char *name;
    mg_ckpt_dtype dtype;
    int rank;
    int64_t shape[MG_MAX_RANK];
    const void *data;     /* little-endian, possibly unaligned: memcpy it */
    size_t nbytes;
} mg_ckpt_entry;

/* "F32", "I64", ... or "?" for an unknown value. */
const char *mg_ckpt_dtype_name(mg_ckpt_dtype dt);

/* An empty checkpoint for writing; errors go to ctx. *out NULL on failure. */
mg_status mg_checkpoint_new(mg_ctx *ctx, mg_checkpoint **out);
/* Frees the checkpoint and what it owns (never what it borrows). NULL ok. */
void mg_checkpoint_free(mg_checkpoint *ck);

/* ---- building ------------------------------------------------------------
 * Names must be unique and must not be "__metadata__": MG_ERR_EXISTS / ARG. */

/* Adds tensor t (contiguous f32/f64/i32/u8), borrowed, under `name`. */
mg_status mg_checkpoint_add(mg_checkpoint *ck, const char *name, const mg_tensor *t);
/* Adds n int64 / uint64 values as a 1-D I64 / U64 entry (copied). */
mg_status mg_checkpoint_add_i64(mg_checkpoint *ck, const char *name, const int64_t *v, int64_t n);
mg_status mg_checkpoint_add_u64(mg_checkpoint *ck, const char *name, const uint64_t *v, int64_t n);
/* Adds every parameter value of ps as "<prefix><param name>" (prefix may
 * be NULL or ""). Borrowed. */
mg_status mg_checkpoint_add_params(mg_checkpoint *ck, const mg_params *ps, const char *prefix);
/* Adds the optimizer's state tensors as "<prefix><state name>" and its step
 * count as "<prefix>steps" (I64 [1]); prefix NULL means "optim.". The state
 * tensors are created (zero) if the optimizer has not stepped yet. */
mg_status mg_checkpoint_add_optim(mg_checkpoint *ck, mg_optim *o, const char *prefix);
/* Adds an RNG state exactly, as U64 [6]: s[0..3], has_spare, the bits of
 * spare. */
mg_status mg_checkpoint_add_rng(mg_checkpoint *ck, const char *name, const mg_rng *r);
/* Sets a metadata string (both copied; replaces an existing key). */
mg_status mg_checkpoint_set_meta(mg_checkpoint *ck, const char *key, const char *value);

/* Writes the checkpoint to `path` atomically: a temporary file in the same
 * directory is written, flushed and fsync'ed, then renamed over `path`, and
 * the directory is fsync'ed. On any failure (MG_ERR_IO, message naming the
 * path and the system error) the temporary file is removed and an existing
 * file at `path` is left untouched. */
mg_status mg_checkpoint_save(const mg_checkpoint *ck, const char *path);

/* ---- reading ---------------------------------------------------------------
 * Reads and validates a whole file. Failures (message names the file):
 * MG_ERR_IO (cannot open/read), MG_ERR_PARSE (truncated file, header length
 * out of range, malformed or oversized JSON header, unknown dtype, bad shape,
 * data offsets out of range, overlapping or not matching the shape). */
mg_status mg_checkpoint_load(mg_ctx *ctx, const char *path, mg_checkpoint **out);

/* The file a loaded checkpoint came from (NULL for a new one). */
const char *mg_checkpoint_path(const mg_checkpoint *ck);
int mg_checkpoint_count(const mg_checkpoint *ck);
/* Entry i in file order (by data offset) or insertion order; NULL if out of
 * range. Valid until the checkpoint is freed or changed. */
const mg_ckpt_entry *mg_checkpoint_at(const mg_checkpoint *ck, int i);
const mg_ckpt_entry *mg_checkpoint_find(const mg_checkpoint *ck, const char *name);
/* A metadata value, or NULL. */
const char *mg_checkpoint_meta(const mg_checkpoint *ck, const char *key);
int mg_checkpoint_meta_count(const mg_checkpoint *ck);
const char *mg_checkpoint_meta_key(const mg_checkpoint *ck, int i);

/* Copies entry `name` into t, which must have the same element type and
 * shape: MG_ERR_NOTFOUND, MG_ERR_DTYPE or MG_ERR_SHAPE (message names the
 * tensor and both shapes) otherwise. */
mg_status mg_checkpoint_read(const mg_checkpoint *ck, const char *name, mg_tensor *t);
/* Reads n values of an I64 / U64 entry (exact size required). */
mg_status mg_checkpoint_read_i64(const mg_checkpoint *ck, const char *name, int64_t *v, int64_t n);
mg_status mg_checkpoint_read_u64(const mg_checkpoint *ck, const char *name, uint64_t *v, int64_t n);

/* Loads every parameter of ps from "<prefix><name>" (all or nothing: every
 * check runs before any value is copied). With `strict`, a tensor in the
 * file whose name starts with prefix but not with "optim.", "ema." or
 * "train." after it, and which is not a parameter, is an error too (a
 * checkpoint of another model). Errors: MG_ERR_NOTFOUND (missing tensor),
 * MG_ERR_SHAPE, MG_ERR_DTYPE, MG_ERR_ARG (unexpected tensor). */
mg_status mg_checkpoint_load_params(const mg_checkpoint *ck, mg_params *ps, const char *prefix,
                                    int strict);
/* Restores the optimizer's state tensors and step count from
 * "<prefix>..." (prefix NULL means "optim."); all or nothing.
 * MG_ERR_NOTFOUND when the file holds no optimizer state (the message says
 * it is usable for eval and sampling only). */
mg_status mg_checkpoint_load_optim(const mg_checkpoint *ck, mg_optim *o, const char *prefix);
/* Restores an RNG state saved with mg_checkpoint_add_rng. */
mg_status mg_checkpoint_read_rng(const mg_checkpoint *ck, const char *name, mg_rng *r);

#ifdef __cplusplus
}
#endif
#endif
