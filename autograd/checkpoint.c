/* autograd/checkpoint.c: safetensors checkpoints (see mintgrad/checkpoint.h).
 * The JSON header goes through json-c; writes are atomic (temporary file in
 * the same directory, fsync, rename, fsync of the directory); reads validate
 * every field, offset and size before anything is used. */
#include "internal.h"

#include <mintgrad/checkpoint.h>

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Headers larger than this are refused as corrupt (as safetensors does). */
#define CK_MAX_HEADER ((uint64_t)100 * 1000 * 1000)
#define CK_META "__metadata__"

typedef struct ck_item {
    mg_ckpt_entry e;
    char *name;      /* owned copy of e.name */
    void *owned;     /* owned copy of the data (small helpers), or NULL */
    uint64_t begin;  /* data offset, when loaded */
} ck_item;

struct mg_checkpoint {
    mg_ctx *ctx;
    char *path;              /* loaded from (owned), NULL when new */
    ck_item *items;
    int n, cap;
    char **mkeys, **mvals;   /* metadata, owned */
    int nm, capm;
    unsigned char *buf;      /* the whole file, when loaded */
};

static const char *const dtype_names[] = {NULL, "F32", "F64", "I32", "U8", "I64", "U64"};
static const size_t dtype_sizes[] = {0, 4, 8, 4, 1, 8, 8};

const char *mg_ckpt_dtype_name(mg_ckpt_dtype dt)
{
    return dt >= MG_CKPT_F32 && dt <= MG_CKPT_U64 ? dtype_names[dt] : "?";
}

static size_t ck_dtype_size(mg_ckpt_dtype dt)
{
    return dt >= MG_CKPT_F32 && dt <= MG_CKPT_U64 ? dtype_sizes[dt] : 0;
}

static int ck_dtype_parse(const char *s)
{
    for (int i = MG_CKPT_F32; i <= MG_CKPT_U64; i++)
        if (strcmp(s, dtype_names[i]) == 0) return i;
    return 0;
}

/* The checkpoint type of a tensor dtype (0 if none). */
static mg_ckpt_dtype ck_dtype_of(mg_dtype dt)
{
    switch (dt) {
    case MG_F32: return MG_CKPT_F32;
    case MG_F64: return MG_CKPT_F64;
    case MG_I32: return MG_CKPT_I32;
    case MG_U8: return MG_CKPT_U8;
    }
    return 0;
}

static int host_is_little_endian(void)
{
    const uint16_t one = 1;
    return *(const unsigned char *)&one == 1;
}

static const char *ck_where(const mg_checkpoint *ck)
{
    return ck->path ? ck->path : "(new checkpoint)";
}

/* ---- life ------------------------------------------------------------------ */

mg_status mg_checkpoint_new(mg_ctx *ctx, mg_checkpoint **out)
{
    if (!ctx || !out) return MG_ERR_ARG;
    *out = mg_calloc(1, sizeof **out);
    if (!*out) return mg_ctx_fail(ctx, MG_ERR_NOMEM, "checkpoint: out of memory");
    (*out)->ctx = ctx;
    return MG_OK;
}

void mg_checkpoint_free(mg_checkpoint *ck)
{
    if (!ck) return;
    for (int i = 0; i < ck->n; i++) {
        mg_free(ck->items[i].name);
        mg_free(ck->items[i].owned);
    }
    for (int i = 0; i < ck->nm; i++) {
        mg_free(ck->mkeys[i]);
        mg_free(ck->mvals[i]);
    }
    mg_free(ck->items);
    mg_free(ck->mkeys);
    mg_free(ck->mvals);
    mg_free(ck->buf);
    mg_free(ck->path);
    mg_free(ck);
}

/* ---- building ------------------------------------------------------------ */

static int ck_index(const mg_checkpoint *ck, const char *name)
{
    for (int i = 0; i < ck->n; i++)
        if (strcmp(ck->items[i].name, name) == 0) return i;
    return -1;
}

/* Appends an entry with a copied name; *out points at it (data unset). */
static mg_status ck_push(mg_checkpoint *ck, const char *name, mg_ckpt_dtype dt, int rank,
                         const int64_t *shape, ck_item **out)
{
    if (!name || !*name || strcmp(name, CK_META) == 0 || rank < 0 || rank > MG_MAX_RANK)
        return mg_ctx_fail(ck->ctx, MG_ERR_ARG, "checkpoint: bad entry name '%s' or rank %d",
                           name ? name : "(null)", rank);
    if (ck_index(ck, name) >= 0)
        return mg_ctx_fail(ck->ctx, MG_ERR_EXISTS, "checkpoint: tensor '%s' added twice", name);
    if (mg_grow((void **)&ck->items, &ck->cap, ck->n + 1, sizeof *ck->items) != MG_OK)
        return mg_ctx_fail(ck->ctx, MG_ERR_NOMEM, "checkpoint: out of memory");
    ck_item *it = &ck->items[ck->n];
    memset(it, 0, sizeof *it);
    it->name = mg_strdup(name);
    if (!it->name) return mg_ctx_fail(ck->ctx, MG_ERR_NOMEM, "checkpoint: out of memory");
    it->e.name = it->name;
    it->e.dtype = dt;
    it->e.rank = rank;
    size_t nbytes = ck_dtype_size(dt);
    for (int d = 0; d < rank; d++) {
        it->e.shape[d] = shape[d];
        nbytes *= (size_t)shape[d];
    }
    it->e.nbytes = nbytes;
    ck->n++;
    *out = it;
    return MG_OK;
}

mg_status mg_checkpoint_add(mg_checkpoint *ck, const char *name, const mg_tensor *t)
{
    if (!ck || !t) return MG_ERR_ARG;
    mg_ckpt_dtype dt = ck_dtype_of(t->dtype);
    if (!dt || !mg_tensor_is_contiguous(t))
        return mg_ctx_fail(ck->ctx, MG_ERR_ARG, "checkpoint: tensor '%s' must be a contiguous "
                           "f32/f64/i32/u8 tensor", name ? name : "(null)");
    ck_item *it;
    mg_status s = ck_push(ck, name, dt, t->rank, t->shape, &it);
    if (s == MG_OK) it->e.data = t->data;
    return s;
}

static mg_status ck_add_copy(mg_checkpoint *ck, const char *name, mg_ckpt_dtype dt, const void *v,
                             int64_t n)
{
    if (!ck || (!v && n > 0) || n < 0) return MG_ERR_ARG;
    ck_item *it;
    mg_status s = ck_push(ck, name, dt, 1, &n, &it);
    if (s != MG_OK) return s;
    it->owned = mg_malloc(it->e.nbytes ? it->e.nbytes : 1);
    if (!it->owned) {
        mg_free(it->name);
        ck->n--;
        return mg_ctx_fail(ck->ctx, MG_ERR_NOMEM, "checkpoint: out of memory");
    }
    if (n) memcpy(it->owned, v, it->e.nbytes);
    it->e.data = it->owned;
    return MG_OK;
}

mg_status mg_checkpoint_add_i64(mg_checkpoint *ck, const char *name, const int64_t *v, int64_t n)
{
    return ck_add_copy(ck, name, MG_CKPT_I64, v, n);
}

mg_status mg_checkpoint_add_u64(mg_checkpoint *ck, const char *name, const uint64_t *v, int64_t n)
{
    return ck_add_copy(ck, name, MG_CKPT_U64, v, n);
}

/* "<prefix><name>" into buf; MG_ERR_ARG if it does not fit. */
static mg_status ck_join(const mg_checkpoint *ck, char *buf, size_t n, const char *prefix,
                         const char *name)
{
    int k = snprintf(buf, n, "%s%s", prefix ? prefix : "", name);
    if (k < 0 || (size_t)k >= n)
        return mg_ctx_fail(ck->ctx, MG_ERR_ARG, "checkpoint: tensor name '%s%s' too long",
                           prefix ? prefix : "", name);
    return MG_OK;
}

mg_status mg_checkpoint_add_params(mg_checkpoint *ck, const mg_params *ps, const char *prefix)
{
    if (!ck || !ps) return MG_ERR_ARG;
    char name[512];
    for (int i = 0; i < mg_params_count(ps); i++) {
        const mg_param *p = mg_params_at(ps, i);
        mg_status s = ck_join(ck, name, sizeof name, prefix, p->name);
        if (s == MG_OK) s = mg_checkpoint_add(ck, name, p->value);
        if (s != MG_OK) return s;
    }
    return MG_OK;
}

mg_status mg_checkpoint_add_optim(mg_checkpoint *ck, mg_optim *o, const char *prefix)
{
    if (!ck || !o) return MG_ERR_ARG;
    if (!prefix) prefix = "optim.";
    char name[512];
    for (int i = 0; i < mg_optim_num_state(o); i++) {
        mg_tensor *t = mg_optim_state(o, i);
        if (!t) return mg_ctx_fail(ck->ctx, MG_ERR_NOMEM, "checkpoint: optimizer state: out of memory");
        mg_status s = ck_join(ck, name, sizeof name, prefix, t->name ? t->name : "?");
        if (s == MG_OK) s = mg_checkpoint_add(ck, name, t);
        if (s != MG_OK) return s;
    }
    int64_t steps = mg_optim_steps(o);
    mg_status s = ck_join(ck, name, sizeof name, prefix, "steps");
    return s == MG_OK ? mg_checkpoint_add_i64(ck, name, &steps, 1) : s;
}

mg_status mg_checkpoint_add_rng(mg_checkpoint *ck, const char *name, const mg_rng *r)
{
    if (!ck || !r) return MG_ERR_ARG;
    uint64_t v[6] = {r->s[0], r->s[1], r->s[2], r->s[3], (uint64_t)(r->has_spare != 0), 0};
    memcpy(&v[5], &r->spare, sizeof(double));
    return mg_checkpoint_add_u64(ck, name, v, 6);
}

mg_status mg_checkpoint_set_meta(mg_checkpoint *ck, const char *key, const char *value)
{
    if (!ck || !key || !value) return MG_ERR_ARG;
    char *v = mg_strdup(value);
    if (!v) return mg_ctx_fail(ck->ctx, MG_ERR_NOMEM, "checkpoint: out of memory");
    for (int i = 0; i < ck->nm; i++)
        if (strcmp(ck->mkeys[i], key) == 0) {
            mg_free(ck->mvals[i]);
            ck->mvals[i] = v;
            return MG_OK;
        }
    if (ck->nm == ck->capm) {
        int cap = ck->capm ? 2 * ck->capm : 8;
        char **k = mg_realloc(ck->mkeys, (size_t)cap * sizeof *k);
        if (k) ck->mkeys = k;
        char **w = k ? mg_realloc(ck->mvals, (size_t)cap * sizeof *w) : NULL;
        if (w) ck->mvals = w;
        if (!k || !w) {
            mg_free(v);
            return mg_ctx_fail(ck->ctx, MG_ERR_NOMEM, "checkpoint: out of memory");
        }
        ck->capm = cap;
    }
    ck->mkeys[ck->nm] = mg_strdup(key);
    if (!ck->mkeys[ck->nm]) {
        mg_free(v);
        return mg_ctx_fail(ck->ctx, MG_ERR_NOMEM, "checkpoint: out of memory");
    }
    ck->mvals[ck->nm++] = v;
    return MG_OK;
}

/* ---- saving ------------------------------------------------------------------ */

static json_object *ck_json_ints(const int64_t *v, int n)
{
    json_object *a = json_object_new_array();
    for (int i = 0; a && i < n; i++) json_object_array_add(a, json_object_new_int64(v[i]));
    return a;
}

/* The JSON header text, padded with spaces to a multiple of 8 bytes. The
 * caller frees *out with mg_free. */
static mg_status ck_header(const mg_checkpoint *ck, char **out, size_t *len)
{
    json_object *root = json_object_new_object();
    if (ck->nm) {
        json_object *m = json_object_new_object();
        for (int i = 0; i < ck->nm; i++)
            json_object_object_add(m, ck->mkeys[i], json_object_new_string(ck->mvals[i]));
        json_object_object_add(root, CK_META, m);
    }
    int64_t off = 0;
    for (int i = 0; i < ck->n; i++) {
        const mg_ckpt_entry *e = &ck->items[i].e;
        int64_t be[2] = {off, off + (int64_t)e->nbytes};
        json_object *t = json_object_new_object();
        json_object_object_add(t, "dtype", json_object_new_string(mg_ckpt_dtype_name(e->dtype)));
        json_object_object_add(t, "shape", ck_json_ints(e->shape, e->rank));
        json_object_object_add(t, "data_offsets", ck_json_ints(be, 2));
        json_object_object_add(root, e->name, t);
        off = be[1];
    }
    const char *s = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN |
                                                   JSON_C_TO_STRING_NOSLASHESCAPE);
    size_t n = s ? strlen(s) : 0, padded = (n + 7) / 8 * 8;
    *out = s ? mg_malloc(padded + 1) : NULL;
    if (*out) {
        memcpy(*out, s, n);
        memset(*out + n, ' ', padded - n);
        (*out)[padded] = 0;
        *len = padded;
    }
    json_object_put(root);
    return *out ? MG_OK : mg_ctx_fail(ck->ctx, MG_ERR_NOMEM, "checkpoint: out of memory");
}

/* Writes length, header and data to f; 0 on success, else errno. */
static int ck_write_all(const mg_checkpoint *ck, FILE *f, const char *hdr, size_t hlen)
{
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
    errno = 0;
    if (fwrite(len8, 1, 8, f) != 8 || fwrite(hdr, 1, hlen, f) != hlen) return errno ? errno : EIO;
    for (int i = 0; i < ck->n; i++) {
        const mg_ckpt_entry *e = &ck->items[i].e;
        if (e->nbytes && fwrite(e->data, 1, e->nbytes, f) != e->nbytes) return errno ? errno : EIO;
    }
    if (fflush(f) != 0 || fsync(fileno(f)) != 0) return errno ? errno : EIO;
    return 0;
}

/* fsyncs the directory holding `path` so the rename is durable. */
static int ck_sync_dir(const char *path)
{
    char *copy = mg_strdup(path);
    if (!copy) return ENOMEM;
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY);
    mg_free(copy);
    if (fd < 0) return errno;
    int err = fsync(fd) == 0 ? 0 : errno;
    close(fd);
    return err == EINVAL ? 0 : err; /* some file systems cannot sync directories */
}

/* Writes into a fresh temporary file next to `path` and renames it over. */
static int ck_write_atomic(const mg_checkpoint *ck, const char *path, const char *hdr, size_t hlen,
                           const char **what)
{
    size_t n = strlen(path) + 16;
    char *tmp = mg_malloc(n);
    if (!tmp) return ENOMEM;
    snprintf(tmp, n, "%s.tmp.XXXXXX", path);
    *what = "create a temporary file for";
    int fd = mkstemp(tmp), err = 0;
    FILE *f = fd >= 0 ? fdopen(fd, "wb") : NULL;
    if (!f) {
        err = errno;
        if (fd >= 0) close(fd);
        if (fd >= 0) unlink(tmp);
        mg_free(tmp);
        return err;
    }
    (void)fchmod(fd, 0644);
    *what = "write";
    err = ck_write_all(ck, f, hdr, hlen);
    if (fclose(f) != 0 && !err) err = errno ? errno : EIO;
    if (!err && rename(tmp, path) != 0) {
        err = errno;
        *what = "rename the temporary file onto";
    }
    if (err) unlink(tmp);
    mg_free(tmp);
    if (!err && (err = ck_sync_dir(path)) != 0) *what = "sync the directory of";
    return err;
}

mg_status mg_checkpoint_save(const mg_checkpoint *ck, const char *path)
{
    if (!ck || !path || !*path) return MG_ERR_ARG;
    if (!host_is_little_endian())
        return mg_ctx_fail(ck->ctx, MG_ERR_UNSUPPORTED, "checkpoint: big-endian hosts are not supported");
    char *hdr;
    size_t hlen = 0;
    mg_status s = ck_header(ck, &hdr, &hlen);
    if (s != MG_OK) return s;
    const char *what = "write";
    int err = ck_write_atomic(ck, path, hdr, hlen, &what);
    mg_free(hdr);
    if (err)
        return mg_ctx_fail(ck->ctx, MG_ERR_IO, "checkpoint: cannot %s '%s': %s (the previous file, "
                           "if any, is unchanged)", what, path, strerror(err));
    return MG_OK;
}

/* ---- loading ----------------------------------------------------------------- */

/* Reads the whole file into ck->buf; *size gets its length. */
static mg_status ck_read_file(mg_checkpoint *ck, const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f) return mg_ctx_fail(ck->ctx, MG_ERR_IO, "checkpoint '%s': cannot open: %s", path, strerror(errno));
    struct stat st;
    mg_status s = MG_OK;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        s = mg_ctx_fail(ck->ctx, MG_ERR_IO, "checkpoint '%s': not a regular file", path);
    } else {
        *size = (size_t)st.st_size;
        ck->buf = mg_malloc(*size ? *size : 1);
        if (!ck->buf)
            s = mg_ctx_fail(ck->ctx, MG_ERR_NOMEM, "checkpoint '%s': out of memory (%zu bytes)", path, *size);
        else if (fread(ck->buf, 1, *size, f) != *size)
            s = mg_ctx_fail(ck->ctx, MG_ERR_IO, "checkpoint '%s': read failed: %s", path,
                            ferror(f) ? strerror(errno) : "file shrank");
    }
    fclose(f);
    return s;
}

/* Reads a JSON array of non-negative integers into v (at most max). */
static int ck_json_uints(json_object *a, int64_t *v, int max)
{
    if (!a || !json_object_is_type(a, json_type_array)) return -1;
    int n = (int)json_object_array_length(a);
    if (n > max) return -1;
    for (int i = 0; i < n; i++) {
        json_object *x = json_object_array_get_idx(a, i);
        if (!json_object_is_type(x, json_type_int)) return -1;
        v[i] = json_object_get_int64(x);
        if (v[i] < 0) return -1;
    }
    return n;
}

static mg_status ck_parse_meta(mg_checkpoint *ck, json_object *m)
{
    if (!json_object_is_type(m, json_type_object))
        return mg_ctx_fail(ck->ctx, MG_ERR_PARSE, "checkpoint '%s': corrupt header: __metadata__ is "
                           "not an object", ck->path);
    json_object_object_foreach(m, key, val) {
        if (!json_object_is_type(val, json_type_string))
            return mg_ctx_fail(ck->ctx, MG_ERR_PARSE, "checkpoint '%s': corrupt header: metadata "
                               "'%s' is not a string", ck->path, key);
        mg_status s = mg_checkpoint_set_meta(ck, key, json_object_get_string(val));
        if (s != MG_OK) return s;
    }
    return MG_OK;
}

/* Validates one tensor entry of the header and appends it. */
static mg_status ck_parse_entry(mg_checkpoint *ck, const char *name, json_object *t, uint64_t dsize)
{
    json_object *dt = NULL, *sh = NULL, *off = NULL;
    const char *p = ck->path;
    if (!json_object_is_type(t, json_type_object) || !json_object_object_get_ex(t, "dtype", &dt) ||
        !json_object_object_get_ex(t, "shape", &sh) || !json_object_object_get_ex(t, "data_offsets", &off))
        return mg_ctx_fail(ck->ctx, MG_ERR_PARSE, "checkpoint '%s': corrupt header: tensor '%s' needs "
                           "dtype, shape and data_offsets", p, name);
    int dtype = json_object_is_type(dt, json_type_string) ? ck_dtype_parse(json_object_get_string(dt)) : 0;
    if (!dtype)
        return mg_ctx_fail(ck->ctx, MG_ERR_PARSE, "checkpoint '%s': tensor '%s' has unsupported dtype "
                           "%s (F32, F64, I32, U8, I64, U64 are)", p, name, json_object_to_json_string(dt));
    int64_t shape[MG_MAX_RANK], be[2];
    int rank = ck_json_uints(sh, shape, MG_MAX_RANK);
    if (rank < 0)
        return mg_ctx_fail(ck->ctx, MG_ERR_PARSE, "checkpoint '%s': tensor '%s' has a bad shape %s "
                           "(want up to %d non-negative integers)", p, name,
                           json_object_to_json_string(sh), MG_MAX_RANK);
    if (ck_json_uints(off, be, 2) != 2 || be[0] > be[1] || (uint64_t)be[1] > dsize)
        return mg_ctx_fail(ck->ctx, MG_ERR_PARSE, "checkpoint '%s': tensor '%s' has data_offsets %s "
                           "outside the %llu data bytes (truncated or corrupt file)", p, name,
                           json_object_to_json_string(off), (unsigned long long)dsize);
    uint64_t need = ck_dtype_size(dtype);
    for (int d = 0; d < rank; d++)
        if (shape[d] && need > UINT64_MAX / (uint64_t)shape[d]) need = UINT64_MAX;
        else need *= (uint64_t)shape[d];
    if (need != (uint64_t)(be[1] - be[0]))
        return mg_ctx_fail(ck->ctx, MG_ERR_PARSE, "checkpoint '%s': tensor '%s' (%s, %d dims) spans "
                           "%lld bytes but its shape needs %llu", p, name, dtype_names[dtype], rank,
                           (long long)(be[1] - be[0]), (unsigned long long)need);
    ck_item *it;
    mg_status s = ck_push(ck, name, dtype, rank, shape, &it);
    if (s == MG_OK) it->begin = (uint64_t)be[0];
    return s;
}

static int ck_cmp_begin(const void *a, const void *b)
{
    const ck_item *x = a, *y = b;
    return x->begin < y->begin ? -1 : x->begin > y->begin;
}

/* Sorts entries by offset, rejects overlaps and points them at the data. */
static mg_status ck_place(mg_checkpoint *ck, const unsigned char *data)
{
    if (ck->n > 1) qsort(ck->items, (size_t)ck->n, sizeof *ck->items, ck_cmp_begin);
    uint64_t end = 0;
    const char *prev = NULL;
    for (int i = 0; i < ck->n; i++) {
        ck_item *it = &ck->items[i];
        it->e.name = it->name;
        it->e.data = data + it->begin;
        if (it->e.nbytes == 0) continue;
        if (it->begin < end)
            return mg_ctx_fail(ck->ctx, MG_ERR_PARSE, "checkpoint '%s': corrupt header: the data of "
                               "tensors '%s' and '%s' overlap", ck->path, prev, it->name);
        end = it->begin + it->e.nbytes;
        prev = it->name;
    }
    return MG_OK;
}

static mg_status ck_parse_header(mg_checkpoint *ck, const char *text, size_t hlen, uint64_t dsize)
{
    json_tokener *tok = json_tokener_new();
    if (!tok) return mg_ctx_fail(ck->ctx, MG_ERR_NOMEM, "checkpoint: out of memory");
    json_object *root = json_tokener_parse_ex(tok, text, (int)hlen);
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    size_t end = root ? json_tokener_get_parse_end(tok) : 0;
    json_tokener_free(tok);
    while (root && end < hlen && (text[end] == ' ' || text[end] == '\n' || text[end] == '\t' || text[end] == '\r'))
        end++;
    mg_status s = MG_OK;
    if (!root || !json_object_is_type(root, json_type_object) || end != hlen) {
        s = mg_ctx_fail(ck->ctx, MG_ERR_PARSE, "checkpoint '%s': corrupt header: %s", ck->path,
                        !root ? json_tokener_error_desc(jerr == json_tokener_continue ? json_tokener_error_parse_eof : jerr)
                              : end != hlen ? "trailing bytes after the JSON object" : "not a JSON object");
        json_object_put(root);
        return s;
    }
    json_object_object_foreach(root, key, val) {
        s = strcmp(key, CK_META) == 0 ? ck_parse_meta(ck, val) : ck_parse_entry(ck, key, val, dsize);
        if (s != MG_OK) break;
    }
    json_object_put(root);
    return s;
}

/* Reads the 8-byte header length and checks it against the file size. */
static mg_status ck_header_length(mg_checkpoint *ck, size_t size, uint64_t *hlen)
{
    const char *path = ck->path;
    if (size < 8)
        return mg_ctx_fail(ck->ctx, MG_ERR_PARSE, "checkpoint '%s': truncated: %zu bytes, but a safetensors "
                           "file starts with an 8-byte header length", path, size);
    *hlen = 0;
    for (int i = 0; i < 8; i++) *hlen |= (uint64_t)ck->buf[i] << (8 * i);
    if (*hlen < 2 || *hlen > CK_MAX_HEADER)
        return mg_ctx_fail(ck->ctx, MG_ERR_PARSE, "checkpoint '%s': corrupt header length %llu (not a "
                           "safetensors file?)", path, (unsigned long long)*hlen);
    if (*hlen > size - 8)
        return mg_ctx_fail(ck->ctx, MG_ERR_PARSE, "checkpoint '%s': truncated: the header needs %llu bytes, "
                           "the file has %zu after the length", path, (unsigned long long)*hlen, size - 8);
    return MG_OK;
}

mg_status mg_checkpoint_load(mg_ctx *ctx, const char *path, mg_checkpoint **out)
{
    if (!ctx || !path || !out) return MG_ERR_ARG;
    *out = NULL;
    if (!host_is_little_endian())
        return mg_ctx_fail(ctx, MG_ERR_UNSUPPORTED, "checkpoint: big-endian hosts are not supported");
    mg_checkpoint *ck;
    mg_status s = mg_checkpoint_new(ctx, &ck);
    if (s != MG_OK) return s;
    size_t size = 0;
    uint64_t hlen = 0;
    ck->path = mg_strdup(path);
    s = ck->path ? ck_read_file(ck, path, &size) : mg_ctx_fail(ctx, MG_ERR_NOMEM, "checkpoint: out of memory");
    if (s == MG_OK) s = ck_header_length(ck, size, &hlen);
    if (s == MG_OK) s = ck_parse_header(ck, (const char *)ck->buf + 8, (size_t)hlen, size - 8 - hlen);
    if (s == MG_OK) s = ck_place(ck, ck->buf + 8 + hlen);
    if (s != MG_OK) {
        mg_checkpoint_free(ck);
        return s;
    }
    *out = ck;
    return MG_OK;
}

/* ---- reading -------------------------------------------------------------------- */

const char *mg_checkpoint_path(const mg_checkpoint *ck) { return ck ? ck->path : NULL; }
int mg_checkpoint_count(const mg_checkpoint *ck) { return ck ? ck->n : 0; }

const mg_ckpt_entry *mg_checkpoint_at(const mg_checkpoint *ck, int i)
{
    return ck && i >= 0 && i < ck->n ? &ck->items[i].e : NULL;
}

const mg_ckpt_entry *mg_checkpoint_find(const mg_checkpoint *ck, const char *name)
{
    int i = ck && name ? ck_index(ck, name) : -1;
    return i >= 0 ? &ck->items[i].e : NULL;
}

const char *mg_checkpoint_meta(const mg_checkpoint *ck, const char *key)
{
    for (int i = 0; ck && key && i < ck->nm; i++)
        if (strcmp(ck->mkeys[i], key) == 0) return ck->mvals[i];
    return NULL;
}

int mg_checkpoint_meta_count(const mg_checkpoint *ck) { return ck ? ck->nm : 0; }

const char *mg_checkpoint_meta_key(const mg_checkpoint *ck, int i)
{
    return ck && i >= 0 && i < ck->nm ? ck->mkeys[i] : NULL;
}

/* Checks that entry `name` exists with type dt and the given shape. */
static mg_status ck_check(const mg_checkpoint *ck, const char *name, mg_ckpt_dtype dt, int rank,
                          const int64_t *shape, const mg_ckpt_entry **out)
{
    const mg_ckpt_entry *e = mg_checkpoint_find(ck, name);
    char a[128], b[128];
    if (!e)
        return mg_ctx_fail(ck->ctx, MG_ERR_NOTFOUND, "checkpoint '%s': no tensor '%s' (expected %s%s)",
                           ck_where(ck), name, mg_ckpt_dtype_name(dt), mg_shape_str(rank, shape, a, sizeof a));
    if (e->dtype != dt)
        return mg_ctx_fail(ck->ctx, MG_ERR_DTYPE, "checkpoint '%s': tensor '%s' is %s, expected %s",
                           ck_where(ck), name, mg_ckpt_dtype_name(e->dtype), mg_ckpt_dtype_name(dt));
    int same = e->rank == rank;
    for (int d = 0; same && d < rank; d++) same = e->shape[d] == shape[d];
    if (!same)
        return mg_ctx_fail(ck->ctx, MG_ERR_SHAPE, "checkpoint '%s': tensor '%s' has shape %s in the "
                           "file, expected %s", ck_where(ck), name, mg_shape_str(e->rank, e->shape, a, sizeof a),
                           mg_shape_str(rank, shape, b, sizeof b));
    *out = e;
    return MG_OK;
}

mg_status mg_checkpoint_read(const mg_checkpoint *ck, const char *name, mg_tensor *t)
{
    if (!ck || !name || !t || !mg_tensor_is_contiguous(t)) return MG_ERR_ARG;
    const mg_ckpt_entry *e;
    mg_status s = ck_check(ck, name, ck_dtype_of(t->dtype), t->rank, t->shape, &e);
    if (s == MG_OK && e->nbytes) memcpy(t->data, e->data, e->nbytes);
    return s;
}

static mg_status ck_read_vec(const mg_checkpoint *ck, const char *name, mg_ckpt_dtype dt, void *v, int64_t n)
{
    if (!ck || !name || (!v && n) || n < 0) return MG_ERR_ARG;
    const mg_ckpt_entry *e;
    mg_status s = ck_check(ck, name, dt, 1, &n, &e);
    if (s == MG_OK && e->nbytes) memcpy(v, e->data, e->nbytes);
    return s;
}

mg_status mg_checkpoint_read_i64(const mg_checkpoint *ck, const char *name, int64_t *v, int64_t n)
{
    return ck_read_vec(ck, name, MG_CKPT_I64, v, n);
}

mg_status mg_checkpoint_read_u64(const mg_checkpoint *ck, const char *name, uint64_t *v, int64_t n)
{
    return ck_read_vec(ck, name, MG_CKPT_U64, v, n);
}

/* 1 if name (after prefix) is in a reserved non-model namespace. */
static int ck_reserved(const char *rest)
{
    return strncmp(rest, "optim.", 6) == 0 || strncmp(rest, "ema.", 4) == 0 ||
           strncmp(rest, "train.", 6) == 0;
}

/* With strict loading: every model tensor of the file must be a parameter. */
static mg_status ck_check_unexpected(const mg_checkpoint *ck, const mg_params *ps, const char *prefix)
{
    size_t pl = strlen(prefix);
    for (int i = 0; i < ck->n; i++) {
        const char *name = ck->items[i].name;
        if (strncmp(name, prefix, pl) != 0 || ck_reserved(name + pl)) continue;
        if (mg_params_find(ps, name + pl)) continue;
        char a[128];
        const mg_ckpt_entry *e = &ck->items[i].e;
        return mg_ctx_fail(ck->ctx, MG_ERR_ARG, "checkpoint '%s': tensor '%s' %s%s is not a parameter "
                           "of this model (a checkpoint of another spec?)", ck_where(ck), name,
                           mg_ckpt_dtype_name(e->dtype), mg_shape_str(e->rank, e->shape, a, sizeof a));
    }
    return MG_OK;
}

mg_status mg_checkpoint_load_params(const mg_checkpoint *ck, mg_params *ps, const char *prefix, int strict)
{
    if (!ck || !ps) return MG_ERR_ARG;
    if (!prefix) prefix = "";
    char name[512];
    const mg_ckpt_entry *e;
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < mg_params_count(ps); i++) {
            mg_param *p = mg_params_at(ps, i);
            mg_tensor *v = p->value;
            mg_status s = ck_join(ck, name, sizeof name, prefix, p->name);
            if (s == MG_OK) s = ck_check(ck, name, ck_dtype_of(v->dtype), v->rank, v->shape, &e);
            if (s != MG_OK) return s;
            if (pass == 1 && e->nbytes) memcpy(v->data, e->data, e->nbytes);
        }
        if (pass == 0 && strict) {
            mg_status s = ck_check_unexpected(ck, ps, prefix);
            if (s != MG_OK) return s;
        }
    }
    return MG_OK;
}

mg_status mg_checkpoint_load_optim(const mg_checkpoint *ck, mg_optim *o, const char *prefix)
{
    if (!ck || !o) return MG_ERR_ARG;
    if (!prefix) prefix = "optim.";
    char name[512];
    int64_t steps = 0;
    mg_status s = ck_join(ck, name, sizeof name, prefix, "steps");
    if (s == MG_OK && !mg_checkpoint_find(ck, name))
        return mg_ctx_fail(ck->ctx, MG_ERR_NOTFOUND, "checkpoint '%s' holds no optimizer state (no '%s'): "
                           "it can be used for eval and sampling, not to resume training", ck_where(ck), name);
    if (s == MG_OK) s = mg_checkpoint_read_i64(ck, name, &steps, 1);
    const mg_ckpt_entry *e;
    for (int pass = 0; s == MG_OK && pass < 2; pass++)
        for (int i = 0; s == MG_OK && i < mg_optim_num_state(o); i++) {
            mg_tensor *t = mg_optim_state(o, i);
            if (!t) return mg_ctx_fail(ck->ctx, MG_ERR_NOMEM, "checkpoint: optimizer state: out of memory");
            s = ck_join(ck, name, sizeof name, prefix, t->name ? t->name : "?");
            if (s == MG_OK) s = ck_check(ck, name, ck_dtype_of(t->dtype), t->rank, t->shape, &e);
            if (s == MG_OK && pass == 1 && e->nbytes) memcpy(t->data, e->data, e->nbytes);
        }
    if (s == MG_OK) mg_optim_set_steps(o, steps);
    return s;
}

mg_status mg_checkpoint_read_rng(const mg_checkpoint *ck, const char *name, mg_rng *r)
{
    if (!r) return MG_ERR_ARG;
    uint64_t v[6];
    mg_status s = mg_checkpoint_read_u64(ck, name, v, 6);
    if (s != MG_OK) return s;
    for (int i = 0; i < 4; i++) r->s[i] = v[i];
    r->has_spare = v[4] != 0;
    memcpy(&r->spare, &v[5], sizeof(double));
    return MG_OK;
}
