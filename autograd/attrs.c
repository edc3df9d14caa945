/* autograd/attrs.c: the ordered key/value map that carries op attributes. */
#include "internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

mg_attrs *mg_attrs_new(void) { return mg_calloc(1, sizeof(mg_attrs)); }

void mg_attrs_free(mg_attrs *a)
{
    if (!a) return;
    for (int i = 0; i < a->n; i++) {
        mg_free(a->v[i].key);
        mg_free(a->v[i].s);
    }
    mg_free(a->v);
    mg_free(a);
}

static mg_attr *find(const mg_attrs *a, const char *key)
{
    if (!a || !key) return NULL;
    for (int i = 0; i < a->n; i++)
        if (strcmp(a->v[i].key, key) == 0) return &a->v[i];
    return NULL;
}

/* The slot for key, created empty if absent; NULL on allocation failure. */
static mg_attr *slot(mg_attrs *a, const char *key)
{
    mg_attr *e = find(a, key);
    if (e) {
        mg_free(e->s);
        e->s = NULL;
        return e;
    }
    if (mg_grow((void **)&a->v, &a->cap, a->n + 1, sizeof *a->v) != MG_OK) return NULL;
    e = &a->v[a->n];
    memset(e, 0, sizeof *e);
    if (!(e->key = mg_strdup(key))) return NULL;
    a->n++;
    return e;
}

mg_status mg_attrs_set_ints(mg_attrs *a, const char *key, const int64_t *v, int n)
{
    if (!a || !key || n < 0 || n > MG_ATTR_MAX_LIST) return MG_ERR_ARG;
    mg_attr *e = slot(a, key);
    if (!e) return MG_ERR_NOMEM;
    e->kind = MG_ATTR_INTS;
    e->n = n;
    for (int i = 0; i < n; i++) e->i[i] = v[i];
    return MG_OK;
}

mg_status mg_attrs_set_floats(mg_attrs *a, const char *key, const double *v, int n)
{
    if (!a || !key || n < 0 || n > MG_ATTR_MAX_LIST) return MG_ERR_ARG;
    mg_attr *e = slot(a, key);
    if (!e) return MG_ERR_NOMEM;
    e->kind = MG_ATTR_FLOATS;
    e->n = n;
    for (int i = 0; i < n; i++) e->f[i] = v[i];
    return MG_OK;
}

mg_status mg_attrs_set_int(mg_attrs *a, const char *key, int64_t v)
{
    mg_status s = mg_attrs_set_ints(a, key, &v, 1);
    if (s == MG_OK) find(a, key)->kind = MG_ATTR_INT;
    return s;
}

mg_status mg_attrs_set_float(mg_attrs *a, const char *key, double v)
{
    mg_status s = mg_attrs_set_floats(a, key, &v, 1);
    if (s == MG_OK) find(a, key)->kind = MG_ATTR_FLOAT;
    return s;
}

mg_status mg_attrs_set_str(mg_attrs *a, const char *key, const char *str)
{
    if (!a || !key || !str) return MG_ERR_ARG;
    char *d = mg_strdup(str);
    if (!d) return MG_ERR_NOMEM;
    mg_attr *e = slot(a, key);
    if (!e) {
        mg_free(d);
        return MG_ERR_NOMEM;
    }
    e->kind = MG_ATTR_STR;
    e->n = 0;
    e->s = d;
    return MG_OK;
}

mg_attrs *mg_attrs_clone(const mg_attrs *a)
{
    if (!a) return NULL;
    mg_attrs *c = mg_attrs_new();
    if (!c) return NULL;
    for (int i = 0; i < a->n; i++) {
        const mg_attr *e = &a->v[i];
        mg_attr *d = slot(c, e->key);
        if (!d) goto fail;
        char *key = d->key;
        *d = *e;
        d->key = key;
        d->s = NULL;
        if (e->s && !(d->s = mg_strdup(e->s))) goto fail;
    }
    return c;
fail:
    mg_attrs_free(c);
    return NULL;
}

int mg_attrs_count(const mg_attrs *a) { return a ? a->n : 0; }
const char *mg_attrs_key(const mg_attrs *a, int i) { return a && i >= 0 && i < a->n ? a->v[i].key : NULL; }
int mg_attrs_has(const mg_attrs *a, const char *key) { return find(a, key) != NULL; }

mg_attr_kind mg_attrs_kind(const mg_attrs *a, const char *key)
{
    const mg_attr *e = find(a, key);
    return e ? e->kind : MG_ATTR_NONE;
}

int64_t mg_attrs_int(const mg_attrs *a, const char *key, int64_t dflt)
{
    const mg_attr *e = find(a, key);
    if (!e || e->n < 1) return dflt;
    if (e->kind == MG_ATTR_INT || e->kind == MG_ATTR_INTS) return e->i[0];
    if ((e->kind == MG_ATTR_FLOAT || e->kind == MG_ATTR_FLOATS) && e->f[0] == floor(e->f[0]))
        return (int64_t)e->f[0];
    return dflt;
}

double mg_attrs_float(const mg_attrs *a, const char *key, double dflt)
{
    const mg_attr *e = find(a, key);
    if (!e || e->n < 1) return dflt;
    if (e->kind == MG_ATTR_INT || e->kind == MG_ATTR_INTS) return (double)e->i[0];
    if (e->kind == MG_ATTR_FLOAT || e->kind == MG_ATTR_FLOATS) return e->f[0];
    return dflt;
}

const char *mg_attrs_str(const mg_attrs *a, const char *key, const char *dflt)
{
    const mg_attr *e = find(a, key);
    return e && e->kind == MG_ATTR_STR ? e->s : dflt;
}

int mg_attrs_ints(const mg_attrs *a, const char *key, int64_t *out, int max)
{
    const mg_attr *e = find(a, key);
    if (!e || e->kind == MG_ATTR_STR) return -1;
    for (int i = 0; i < e->n && i < max; i++) {
        int isint = e->kind == MG_ATTR_INT || e->kind == MG_ATTR_INTS;
        out[i] = isint ? e->i[i] : (int64_t)e->f[i];
    }
    return e->n;
}

int mg_attrs_floats(const mg_attrs *a, const char *key, double *out, int max)
{
    const mg_attr *e = find(a, key);
    if (!e || e->kind == MG_ATTR_STR) return -1;
    for (int i = 0; i < e->n && i < max; i++) {
        int isint = e->kind == MG_ATTR_INT || e->kind == MG_ATTR_INTS;
        out[i] = isint ? (double)e->i[i] : e->f[i];
    }
    return e->n;
}

char *mg_attrs_str_all(const mg_attrs *a, char *buf, size_t n)
{
    size_t k = 0;
    if (!n) return buf;
    buf[0] = 0;
    for (int i = 0; a && i < a->n && k < n; i++) {
        const mg_attr *e = &a->v[i];
        k += (size_t)snprintf(buf + k, n - k, "%s%s=", i ? ", " : "", e->key);
        if (k >= n) break;
        if (e->kind == MG_ATTR_STR) {
            k += (size_t)snprintf(buf + k, n - k, "\"%s\"", e->s);
            continue;
        }
        int list = e->kind == MG_ATTR_INTS || e->kind == MG_ATTR_FLOATS;
        if (list && k < n) k += (size_t)snprintf(buf + k, n - k, "[");
        for (int j = 0; j < e->n && k < n; j++) {
            if (e->kind == MG_ATTR_INT || e->kind == MG_ATTR_INTS)
                k += (size_t)snprintf(buf + k, n - k, "%s%lld", j ? ", " : "", (long long)e->i[j]);
            else
                k += (size_t)snprintf(buf + k, n - k, "%s%g", j ? ", " : "", e->f[j]);
        }
        if (list && k < n) k += (size_t)snprintf(buf + k, n - k, "]");
    }
    return buf;
}
