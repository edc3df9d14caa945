/* examples/idx.h: reading IDX files (the MNIST / Fashion-MNIST format),
 * gzip-compressed or plain, through zlib.
 *
 * An IDX file is a big-endian header: two zero bytes, a type byte (0x08 for
 * unsigned bytes), the number of dimensions, then each dimension as a 32-bit
 * big-endian count, then the data. Images are magic 0x00000803 (count, rows,
 * cols); labels 0x00000801 (count). */
#ifndef MG_EXAMPLES_IDX_H
#define MG_EXAMPLES_IDX_H

#include <mintgrad/mintgrad.h>

#define IDX_MAGIC_LABELS 0x00000801u
#define IDX_MAGIC_IMAGES 0x00000803u

typedef struct idx_file {
    uint32_t magic;
    int ndim;
    int64_t dims[3];   /* dims[0] is the item count (after any limit) */
    uint8_t *data;     /* [dims[0] * dims[1] * ...], mg_malloc'd */
} idx_file;

/* Reads `path` (gzip or plain), which must carry `magic`. At most
 * `max_items` items are read when it is > 0. Failures name the file:
 * MG_ERR_NOTFOUND (no such file), MG_ERR_IO (cannot read, corrupt gzip),
 * MG_ERR_PARSE (bad magic, zero or absurd dimensions, truncated data). On
 * failure *out is zeroed. */
mg_status idx_read(mg_ctx *ctx, const char *path, uint32_t magic, int64_t max_items, idx_file *out);
void idx_free(idx_file *f);

/* Writes an IDX file of unsigned bytes (gzip-compressed when `gzip`), for
 * tests and tools. dims[0] is the count. MG_ERR_IO on failure. */
mg_status idx_write(mg_ctx *ctx, const char *path, int gzip, int ndim, const int64_t *dims,
                    const uint8_t *data);

#endif
