/* mintgrad/core.h: status codes, the context object (error message, log
 * callback, op registry) and the allocation hooks every part of the library
 * allocates through.
 *
 * Every fallible call in mintgrad returns an mg_status. The human-readable
 * message that goes with a failure is kept on the context (mg_ctx_error) and
 * is also handed to the log callback. The library never calls exit() and
 * never aborts on user input; assert() guards internal invariants only. */
#ifndef MINTGRAD_CORE_H
#define MINTGRAD_CORE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MG_VERSION_MAJOR 0
#define MG_VERSION_MINOR 1
#define MG_VERSION_PATCH 0
#define MG_VERSION_STRING "0.1.0"

#if defined(__GNUC__)
#define MG_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define MG_NODISCARD __attribute__((warn_unused_result))
#else
#define MG_PRINTF(f, a)
#define MG_NODISCARD
#endif

/* Status codes. MG_OK is zero; every failure is positive. */
typedef enum mg_status {
    MG_OK = 0,
    MG_ERR_ARG,         /* a bad argument (NULL, out of range, wrong count) */
    MG_ERR_SHAPE,       /* shapes that do not fit together */
    MG_ERR_DTYPE,       /* a dtype the op or function does not support */
    MG_ERR_ATTR,        /* a missing, unknown or invalid op attribute */
    MG_ERR_NOMEM,       /* an allocation failed */
    MG_ERR_NOTFOUND,    /* an unknown op, tensor, file or symbol */
    MG_ERR_EXISTS,      /* a name registered twice */
    MG_ERR_STATE,       /* a call out of order (backward before forward, ...) */
    MG_ERR_NOGRAD,      /* an op without backward on a gradient path */
    MG_ERR_BACKEND,     /* oneDNN, Graphviz or another library failed */
    MG_ERR_IO,          /* reading or writing a file failed */
    MG_ERR_PARSE,       /* malformed input text or file (YAML, checkpoint) */
    MG_ERR_ABI,         /* a plugin or op built against another ABI */
    MG_ERR_PLUGIN,      /* a plugin failed to load or initialise */
    MG_ERR_NUMERIC,     /* a numeric failure: non-convergence, NaN */
    MG_ERR_INTERRUPTED, /* stopped on request (signal) */
    MG_ERR_UNSUPPORTED  /* a feature this build or op does not provide */
} mg_status;

/* A static, never-NULL name for a status ("MG_ERR_SHAPE"). */
const char *mg_status_name(mg_status s);

typedef enum mg_log_level {
    MG_LOG_DEBUG = 0,
    MG_LOG_INFO = 1,
    MG_LOG_WARN = 2,
    MG_LOG_ERROR = 3
} mg_log_level;

/* Receives every message the library logs, errors included. `msg` is only
 * valid during the call. */
typedef void (*mg_log_fn)(void *user, mg_log_level level, const char *msg);

/* ---- allocation ----------------------------------------------------------
 * All library allocations go through these hooks. A user may replace them
 * (for tracking, or to inject failures in tests); the replacement must keep
 * malloc/realloc/free semantics. mg_set_allocator(NULL, NULL, NULL) restores
 * the C library's. Not thread-safe: set it before creating any object. */
typedef void *(*mg_malloc_fn)(size_t size);
typedef void *(*mg_realloc_fn)(void *ptr, size_t size);
typedef void (*mg_free_fn)(void *ptr);
void mg_set_allocator(mg_malloc_fn m, mg_realloc_fn r, mg_free_fn f);
void *mg_malloc(size_t size);            /* NULL on failure */
void *mg_calloc(size_t n, size_t size);  /* zeroed; NULL on failure/overflow */
void *mg_realloc(void *p, size_t size);  /* NULL on failure, p untouched */
void mg_free(void *p);                   /* NULL is a no-op */
char *mg_strdup(const char *s);          /* NULL on failure or s == NULL */
/* 64-byte aligned storage for tensor data; free with mg_free_aligned. */
void *mg_malloc_aligned(size_t size);
void mg_free_aligned(void *p);

/* ---- context --------------------------------------------------------------
 * A context owns the op registry (built-in ops are registered on creation,
 * plugins add theirs), the log callback and the last error message. Objects
 * made from a context must be freed before it. A context is not thread-safe;
 * use one per thread. */
typedef struct mg_ctx mg_ctx;
typedef struct mg_registry mg_registry;

/* Creates a context with the built-in ops registered. *out is NULL on failure. */
MG_NODISCARD mg_status mg_ctx_new(mg_ctx **out);
/* Frees the context, its registry and unloads its plugins. NULL is a no-op. */
void mg_ctx_free(mg_ctx *ctx);
/* Installs a log callback (NULL: errors go to stderr, nothing else). */
void mg_ctx_set_log(mg_ctx *ctx, mg_log_fn fn, void *user);
/* Messages below this level are not passed to the callback (default INFO). */
void mg_ctx_set_log_level(mg_ctx *ctx, mg_log_level level);
/* The message of the last failure on this context ("" if none). The string
 * is owned by the context and valid until the next failing call. */
const char *mg_ctx_error(const mg_ctx *ctx);
/* Clears the last error message. */
void mg_ctx_clear_error(mg_ctx *ctx);
/* Records a failure: formats the message, stores it, logs it at ERROR level
 * and returns `status` so callers can write `return mg_ctx_fail(...)`. */
mg_status mg_ctx_fail(mg_ctx *ctx, mg_status status, const char *fmt, ...)
    MG_PRINTF(3, 4);
mg_status mg_ctx_vfail(mg_ctx *ctx, mg_status status, const char *fmt, va_list ap);
/* Logs a message at the given level. */
void mg_ctx_log(mg_ctx *ctx, mg_log_level level, const char *fmt, ...)
    MG_PRINTF(3, 4);
/* The context's op and layer registry (owned by the context). */
mg_registry *mg_ctx_registry(mg_ctx *ctx);

/* The library's version string, e.g. "0.1.0". */
const char *mg_version(void);

#ifdef __cplusplus
}
#endif
#endif
