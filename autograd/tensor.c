/* autograd/tensor.c: tensor headers and storage, element access, copies,
 * shape formatting, and the xoshiro256** random number generator. */
#include "internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

size_t mg_dtype_size(mg_dtype dt)
{
    switch (dt) {
    case MG_F32: return 4;
    case MG_F64: return 8;
    case MG_I32: return 4;
    case MG_U8: return 1;
    }
    return 0;
}

const char *mg_dtype_name(mg_dtype dt)
{
    switch (dt) {
    case MG_F32: return "f32";
    case MG_F64: return "f64";
    case MG_I32: return "i32";
    case MG_U8: return "u8";
    }
    return "?";
}

mg_status mg_tensor_init(mg_tensor *t, mg_dtype dt, int rank, const int64_t *shape, void *data)
{
    if (!t || rank < 0 || rank > MG_MAX_RANK || mg_dtype_size(dt) == 0 || (rank && !shape))
        return MG_ERR_ARG;
    memset(t, 0, sizeof *t);
    t->dtype = dt;
    t->rank = rank;
    int64_t st = 1;
    for (int i = rank - 1; i >= 0; i--) {
        if (shape[i] < 0) return MG_ERR_ARG;
        t->shape[i] = shape[i];
        t->stride[i] = st;
        st *= shape[i];
    }
    t->data = data;
    return MG_OK;
}

int64_t mg_tensor_numel(const mg_tensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->rank; i++) n *= t->shape[i];
    return n;
}

size_t mg_tensor_nbytes(const mg_tensor *t) { return (size_t)mg_tensor_numel(t) * mg_dtype_size(t->dtype); }

mg_tensor *mg_tensor_wrap(mg_dtype dt, int rank, const int64_t *shape, void *data)
{
    mg_tensor *t = mg_malloc(sizeof *t);
    if (!t) return NULL;
    if (mg_tensor_init(t, dt, rank, shape, data) != MG_OK) {
        mg_free(t);
        return NULL;
    }
    return t;
}

mg_tensor *mg_tensor_new(mg_dtype dt, int rank, const int64_t *shape)
{
    mg_tensor *t = mg_tensor_wrap(dt, rank, shape, NULL);
    if (!t) return NULL;
    size_t nb = mg_tensor_nbytes(t);
    t->data = mg_malloc_aligned(nb);
    if (!t->data) {
        mg_free(t);
        return NULL;
    }
    memset(t->data, 0, nb);
    t->flags |= MG_TENSOR_OWNS_DATA;
    return t;
}

mg_tensor *mg_tensor_new1(mg_dtype dt, int64_t d0) { return mg_tensor_new(dt, 1, &d0); }

mg_tensor *mg_tensor_new2(mg_dtype dt, int64_t d0, int64_t d1)
{
    int64_t s[2] = {d0, d1};
    return mg_tensor_new(dt, 2, s);
}

mg_tensor *mg_tensor_new4(mg_dtype dt, int64_t d0, int64_t d1, int64_t d2, int64_t d3)
{
    int64_t s[4] = {d0, d1, d2, d3};
    return mg_tensor_new(dt, 4, s);
}

mg_tensor *mg_tensor_clone(const mg_tensor *t)
{
    if (!t) return NULL;
    mg_tensor *c = mg_tensor_new(t->dtype, t->rank, t->shape);
    if (!c) return NULL;
    if (mg_tensor_copy(c, t) != MG_OK || (t->name && mg_tensor_set_name(c, t->name) != MG_OK)) {
        mg_tensor_free(c);
        return NULL;
    }
    return c;
}

void mg_tensor_free(mg_tensor *t)
{
    if (!t) return;
    if (t->flags & MG_TENSOR_OWNS_DATA) mg_free_aligned(t->data);
    mg_free(t->name);
    mg_free(t);
}

int mg_tensor_is_contiguous(const mg_tensor *t)
{
    int64_t st = 1;
    for (int i = t->rank - 1; i >= 0; i--) {
        if (t->shape[i] != 1 && t->stride[i] != st) return 0;
        st *= t->shape[i];
    }
    return 1;
}

int mg_tensor_same_shape(const mg_tensor *a, const mg_tensor *b)
{
    if (a->dtype != b->dtype || a->rank != b->rank) return 0;
    for (int i = 0; i < a->rank; i++)
        if (a->shape[i] != b->shape[i]) return 0;
    return 1;
}

mg_status mg_tensor_set_name(mg_tensor *t, const char *name)
{
    char *n = NULL;
    if (name && !(n = mg_strdup(name))) return MG_ERR_NOMEM;
    mg_free(t->name);
    t->name = n;
    return MG_OK;
}

double mg_tensor_get(const mg_tensor *t, int64_t i)
{
    switch (t->dtype) {
    case MG_F32: return ((const float *)t->data)[i];
    case MG_F64: return ((const double *)t->data)[i];
    case MG_I32: return ((const int32_t *)t->data)[i];
    case MG_U8: return ((const uint8_t *)t->data)[i];
    }
    return NAN;
}

void mg_tensor_set(mg_tensor *t, int64_t i, double v)
{
    switch (t->dtype) {
    case MG_F32: ((float *)t->data)[i] = (float)v; break;
    case MG_F64: ((double *)t->data)[i] = v; break;
    case MG_I32: ((int32_t *)t->data)[i] = (int32_t)v; break;
    case MG_U8: ((uint8_t *)t->data)[i] = (uint8_t)v; break;
    }
}

mg_status mg_tensor_copy(mg_tensor *dst, const mg_tensor *src)
{
    int64_t n = mg_tensor_numel(src);
    if (n != mg_tensor_numel(dst)) return MG_ERR_SHAPE;
    if (dst->dtype == src->dtype) {
        if (dst->data != src->data) memcpy(dst->data, src->data, mg_tensor_nbytes(src));
        return MG_OK;
    }
    if (dst->dtype == MG_F32 && src->dtype == MG_F64) {
        for (int64_t i = 0; i < n; i++) ((float *)dst->data)[i] = (float)((const double *)src->data)[i];
    } else if (dst->dtype == MG_F64 && src->dtype == MG_F32) {
        for (int64_t i = 0; i < n; i++) ((double *)dst->data)[i] = ((const float *)src->data)[i];
    } else {
        for (int64_t i = 0; i < n; i++) mg_tensor_set(dst, i, mg_tensor_get(src, i));
    }
    return MG_OK;
}

void mg_tensor_fill(mg_tensor *t, double v)
{
    int64_t n = mg_tensor_numel(t);
    if (t->dtype == MG_F32) {
        float *p = t->data;
        for (int64_t i = 0; i < n; i++) p[i] = (float)v;
    } else {
        for (int64_t i = 0; i < n; i++) mg_tensor_set(t, i, v);
    }
}

char *mg_shape_str(int rank, const int64_t *shape, char *buf, size_t n)
{
    size_t k = 0;
    if (!n) return buf;
    buf[0] = 0;
    k += (size_t)snprintf(buf + k, n - k, "[");
    for (int i = 0; i < rank && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (k < n) snprintf(buf + k, n - k, "]");
    return buf;
}

char *mg_tensor_str(const mg_tensor *t, char *buf, size_t n)
{
    char sh[160];
    mg_shape_str(t->rank, t->shape, sh, sizeof sh);
    if (t->name)
        snprintf(buf, n, "%s: %s%s", t->name, mg_dtype_name(t->dtype), sh);
    else
        snprintf(buf, n, "%s%s", mg_dtype_name(t->dtype), sh);
    return buf;
}

/* ---- random numbers ---- */
static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void mg_rng_seed(mg_rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&seed);
    r->has_spare = 0;
    r->spare = 0;
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t mg_rng_next(mg_rng *r)
{
    uint64_t *s = r->s;
    uint64_t res = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return res;
}

double mg_rng_uniform(mg_rng *r) { return (double)(mg_rng_next(r) >> 11) * 0x1.0p-53; }

double mg_rng_normal(mg_rng *r)
{
    if (r->has_spare) {
        r->has_spare = 0;
        return r->spare;
    }
    double u1, u2;
    do u1 = mg_rng_uniform(r); while (u1 <= 0);
    u2 = mg_rng_uniform(r);
    double rad = sqrt(-2.0 * log(u1)), th = 2.0 * M_PI * u2;
    r->spare = rad * sin(th);
    r->has_spare = 1;
    return rad * cos(th);
}

void mg_tensor_rand_uniform(mg_tensor *t, mg_rng *r, double lo, double hi)
{
    int64_t n = mg_tensor_numel(t);
    for (int64_t i = 0; i < n; i++) mg_tensor_set(t, i, lo + (hi - lo) * mg_rng_uniform(r));
}

void mg_tensor_rand_normal(mg_tensor *t, mg_rng *r, double mean, double std)
{
    int64_t n = mg_tensor_numel(t);
    for (int64_t i = 0; i < n; i++) mg_tensor_set(t, i, mean + std * mg_rng_normal(r));
}
