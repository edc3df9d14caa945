/* autograd/core.c: the context (error message, log callback, registry),
 * status names, the allocation hooks, and small shared helpers. */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static mg_malloc_fn g_malloc = malloc;
static mg_realloc_fn g_realloc = realloc;
static mg_free_fn g_free = free;

void mg_set_allocator(mg_malloc_fn m, mg_realloc_fn r, mg_free_fn f)
{
    g_malloc = m ? m : malloc;
    g_realloc = r ? r : realloc;
    g_free = f ? f : free;
}

void *mg_malloc(size_t size) { return g_malloc(size ? size : 1); }
void *mg_realloc(void *p, size_t size) { return g_realloc(p, size ? size : 1); }
void mg_free(void *p) { if (p) g_free(p); }

void *mg_calloc(size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size) return NULL;
    void *p = mg_malloc(n * size);
    if (p) memset(p, 0, n * size);
    return p;
}

char *mg_strdup(const char *s)
{
    if (!s) return NULL;
    size_t n = strlen(s) + 1;
    char *d = mg_malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

/* Aligned blocks keep the offset to the raw block just before the data. */
void *mg_malloc_aligned(size_t size)
{
    if (size > SIZE_MAX - 128) return NULL;
    unsigned char *raw = mg_malloc(size + 64 + sizeof(void *));
    if (!raw) return NULL;
    uintptr_t p = ((uintptr_t)(raw + sizeof(void *)) + 63) & ~(uintptr_t)63;
    ((void **)p)[-1] = raw;
    return (void *)p;
}

void mg_free_aligned(void *p)
{
    if (p) mg_free(((void **)p)[-1]);
}

const char *mg_status_name(mg_status s)
{
    static const char *const names[] = {
        "MG_OK", "MG_ERR_ARG", "MG_ERR_SHAPE", "MG_ERR_DTYPE", "MG_ERR_ATTR",
        "MG_ERR_NOMEM", "MG_ERR_NOTFOUND", "MG_ERR_EXISTS", "MG_ERR_STATE",
        "MG_ERR_NOGRAD", "MG_ERR_BACKEND", "MG_ERR_IO", "MG_ERR_PARSE", "MG_ERR_ABI",
        "MG_ERR_PLUGIN", "MG_ERR_NUMERIC", "MG_ERR_INTERRUPTED", "MG_ERR_UNSUPPORTED",
    };
    if ((unsigned)s < sizeof names / sizeof names[0]) return names[s];
    return "MG_ERR_UNKNOWN";
}

const char *mg_version(void) { return MG_VERSION_STRING; }

mg_status mg_ctx_new(mg_ctx **out)
{
    if (!out) return MG_ERR_ARG;
    *out = NULL;
    mg_ctx *ctx = mg_calloc(1, sizeof *ctx);
    if (!ctx) return MG_ERR_NOMEM;
    ctx->level = MG_LOG_INFO;
    ctx->reg = mg_calloc(1, sizeof *ctx->reg);
    if (!ctx->reg) {
        mg_free(ctx);
        return MG_ERR_NOMEM;
    }
    ctx->reg->ctx = ctx;
    mg_status s = mg_ops_register_builtin(ctx->reg);
    if (s != MG_OK) {
        mg_ctx_free(ctx);
        return s;
    }
    *out = ctx;
    return MG_OK;
}

void mg_ctx_free(mg_ctx *ctx)
{
    if (!ctx) return;
    /* Ops point into plugin code: drop the registry before unloading. */
    mg_registry_free(ctx->reg);
    if (ctx->plugins_free) ctx->plugins_free(ctx);
    mg_free(ctx);
}

void mg_ctx_set_log(mg_ctx *ctx, mg_log_fn fn, void *user)
{
    ctx->log = fn;
    ctx->log_user = user;
}

void mg_ctx_set_log_level(mg_ctx *ctx, mg_log_level level) { ctx->level = level; }
const char *mg_ctx_error(const mg_ctx *ctx) { return ctx ? ctx->err : ""; }
void mg_ctx_clear_error(mg_ctx *ctx) { ctx->err[0] = 0; }
mg_registry *mg_ctx_registry(mg_ctx *ctx) { return ctx->reg; }

static void emit(mg_ctx *ctx, mg_log_level level, const char *msg)
{
    if (ctx->log) {
        if (level >= ctx->level) ctx->log(ctx->log_user, level, msg);
    } else if (level >= MG_LOG_ERROR && getenv("MINTGRAD_QUIET") == NULL) {
        fprintf(stderr, "mintgrad: %s\n", msg);
    }
}

mg_status mg_ctx_vfail(mg_ctx *ctx, mg_status status, const char *fmt, va_list ap)
{
    if (!ctx) return status;
    vsnprintf(ctx->err, sizeof ctx->err, fmt, ap);
    emit(ctx, MG_LOG_ERROR, ctx->err);
    return status;
}

mg_status mg_ctx_fail(mg_ctx *ctx, mg_status status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    mg_ctx_vfail(ctx, status, fmt, ap);
    va_end(ap);
    return status;
}

void mg_ctx_log(mg_ctx *ctx, mg_log_level level, const char *fmt, ...)
{
    char buf[MG_ERR_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    emit(ctx, level, buf);
}

mg_status mg_grow(void **arr, int *cap, int need, size_t esz)
{
    if (need <= *cap) return MG_OK;
    int nc = *cap ? *cap : 8;
    while (nc < need) nc *= 2;
    void *p = mg_realloc(*arr, (size_t)nc * esz);
    if (!p) return MG_ERR_NOMEM;
    memset((char *)p + (size_t)*cap * esz, 0, (size_t)(nc - *cap) * esz);
    *arr = p;
    *cap = nc;
    return MG_OK;
}

int mg_edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64) return 1000;
    int row[65];
    for (size_t j = 0; j <= lb; j++) row[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        int prev = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int cur = row[j];
            int sub = prev + (a[i - 1] != b[j - 1]);
            int del = row[j] + 1, ins = row[j - 1] + 1;
            row[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
            prev = cur;
        }
    }
    return row[lb];
}

const char *mg_suggest_name(const mg_registry *r, int n, const char *(*name_at)(const mg_registry *, int),
                            const char *name)
{
    const char *best = NULL;
    int bd = 1000;
    for (int i = 0; name && i < n; i++) {
        int d = mg_edit_distance(name, name_at(r, i));
        if (d < bd) {
            bd = d;
            best = name_at(r, i);
        }
    }
    size_t len = name ? strlen(name) : 0;
    return bd <= 2 || (size_t)bd * 3 <= len ? best : NULL;
}

void mg_add_inplace(mg_dtype dt, void *a, const void *b, int64_t n)
{
    if (dt == MG_F64) {
        double *x = a;
        const double *y = b;
#pragma omp parallel for schedule(static) if (n > 65536)
        for (int64_t i = 0; i < n; i++) x[i] += y[i];
    } else {
        float *x = a;
        const float *y = b;
#pragma omp parallel for schedule(static) if (n > 65536)
        for (int64_t i = 0; i < n; i++) x[i] += y[i];
    }
}
