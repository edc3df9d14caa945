/* examples/idx.c: the IDX reader and writer (see idx.h). zlib's gzread
 * reads gzip and plain files alike. */
#include "idx.h"

#include <errno.h>
#include <string.h>
#include <zlib.h>

/* Largest item count / dimension we accept: guards the allocation against a
 * corrupt header. */
#define IDX_MAX_DIM (1 << 28)
#define IDX_MAX_BYTES ((int64_t)1 << 34)

/* Reads exactly n bytes; returns the number read, or -1 on a zlib error. */
static int64_t gz_read_full(gzFile gz, void *buf, int64_t n)
{
    int64_t got = 0;
    while (got < n) {
        unsigned chunk = (unsigned)(n - got > (1 << 30) ? (1 << 30) : n - got);
        int k = gzread(gz, (char *)buf + got, chunk);
        if (k < 0) return -1;
        if (k == 0) break;
        got += k;
    }
    return got;
}

static const char *gz_msg(gzFile gz)
{
    int code;
    const char *m = gzerror(gz, &code);
    return code == Z_ERRNO ? strerror(errno) : m;
}

static uint32_t be32(const unsigned char *b)
{
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

/* Reads and checks the magic and dimensions. */
static mg_status idx_header(mg_ctx *ctx, gzFile gz, const char *path, uint32_t magic, idx_file *f)
{
    unsigned char b[16];
    int want_ndim = (int)(magic & 0xff);
    int64_t need = 4 + 4 * (int64_t)want_ndim, got = gz_read_full(gz, b, need);
    if (got < 0) return mg_ctx_fail(ctx, MG_ERR_IO, "%s: cannot read: %s", path, gz_msg(gz));
    if (got < 4 || (be32(b) == magic && got < need))
        return mg_ctx_fail(ctx, MG_ERR_PARSE, "%s: truncated IDX header (%lld bytes)", path, (long long)got);
    f->magic = be32(b);
    if (f->magic != magic)
        return mg_ctx_fail(ctx, MG_ERR_PARSE, "%s: bad IDX magic 0x%08x, expected 0x%08x (%s)", path,
                           f->magic, magic, magic == IDX_MAGIC_IMAGES ? "unsigned-byte images" : "unsigned-byte labels");
    f->ndim = want_ndim;
    for (int d = 0; d < want_ndim; d++) {
        uint32_t v = be32(b + 4 + 4 * d);
        if (v == 0 || v > IDX_MAX_DIM)
            return mg_ctx_fail(ctx, MG_ERR_PARSE, "%s: bad IDX dimension %d: %u", path, d, v);
        f->dims[d] = v;
    }
    int64_t bytes = 1;
    for (int d = 0; d < want_ndim; d++) bytes *= f->dims[d];
    if (bytes > IDX_MAX_BYTES)
        return mg_ctx_fail(ctx, MG_ERR_PARSE, "%s: IDX dimensions too large (%lld bytes)", path, (long long)bytes);
    return MG_OK;
}

mg_status idx_read(mg_ctx *ctx, const char *path, uint32_t magic, int64_t max_items, idx_file *out)
{
    memset(out, 0, sizeof *out);
    gzFile gz = gzopen(path, "rb");
    if (!gz)
        return mg_ctx_fail(ctx, errno == ENOENT ? MG_ERR_NOTFOUND : MG_ERR_IO, "%s: cannot open: %s", path,
                           errno ? strerror(errno) : "out of memory");
    gzbuffer(gz, 1 << 17);
    idx_file f;
    memset(&f, 0, sizeof f);
    mg_status s = idx_header(ctx, gz, path, magic, &f);
    int64_t per = 1, n = f.dims[0];
    for (int d = 1; d < f.ndim; d++) per *= f.dims[d];
    if (s == MG_OK && max_items > 0 && max_items < n) n = f.dims[0] = max_items;
    if (s == MG_OK && !(f.data = mg_malloc((size_t)(n * per))))
        s = mg_ctx_fail(ctx, MG_ERR_NOMEM, "%s: out of memory for %lld items", path, (long long)n);
    if (s == MG_OK) {
        int64_t got = gz_read_full(gz, f.data, n * per);
        if (got < 0)
            s = mg_ctx_fail(ctx, MG_ERR_IO, "%s: corrupt data: %s", path, gz_msg(gz));
        else if (got < n * per)
            s = mg_ctx_fail(ctx, MG_ERR_PARSE, "%s: truncated: the header promises %lld items of %lld bytes, "
                            "the file holds %lld bytes of data", path, (long long)n, (long long)per, (long long)got);
    }
    gzclose(gz);
    if (s != MG_OK) {
        mg_free(f.data);
        return s;
    }
    *out = f;
    return MG_OK;
}

void idx_free(idx_file *f)
{
    if (!f) return;
    mg_free(f->data);
    memset(f, 0, sizeof *f);
}

mg_status idx_write(mg_ctx *ctx, const char *path, int gzip, int ndim, const int64_t *dims, const uint8_t *data)
{
    gzFile gz = gzopen(path, gzip ? "wb6" : "wbT");
    if (!gz) return mg_ctx_fail(ctx, MG_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    unsigned char b[16] = {0, 0, 0x08, (unsigned char)ndim};
    int64_t bytes = 1;
    for (int d = 0; d < ndim; d++) {
        uint32_t v = (uint32_t)dims[d];
        b[4 + 4 * d] = (unsigned char)(v >> 24);
        b[5 + 4 * d] = (unsigned char)(v >> 16);
        b[6 + 4 * d] = (unsigned char)(v >> 8);
        b[7 + 4 * d] = (unsigned char)v;
        bytes *= dims[d];
    }
    int ok = gzwrite(gz, b, (unsigned)(4 + 4 * ndim)) == 4 + 4 * ndim &&
             (bytes == 0 || gzwrite(gz, data, (unsigned)bytes) == (int)bytes);
    if (gzclose(gz) != Z_OK) ok = 0;
    return ok ? MG_OK : mg_ctx_fail(ctx, MG_ERR_IO, "%s: write failed", path);
}
