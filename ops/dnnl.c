/* ops/dnnl.c: the one place that talks to oneDNN (2.x C API): convolution and
 * matmul objects whose primitives, reorders, blocked buffers and scratchpad
 * are created once and executed many times (see ops/dnnl.h).
 *
 * The building block is a "pass": one primitive plus its arguments ("ports").
 * A port binds the caller's plain buffer to the primitive. When oneDNN chose
 * another layout for that argument (nChw16c, OIhw16i16o, ...), the port also
 * owns a buffer in that layout and a cached reorder, run before the primitive
 * for inputs and after it for outputs. Passes of one object that convert the
 * same tensor to the same layout share that buffer (backward-weights uses the
 * blocked x of forward and the blocked dy of backward-data), so a training
 * step can skip converting them twice. The CPU engine is created once per
 * process; each object has its own stream.
 *
 * Memory: blocked buffers whose contents only live during one call (blocked
 * weights, outputs, gradients, the scratchpad) are not per object but slots
 * of one process-wide pool, grown in _new to the largest request and freed
 * with the last object. Only the forward's blocked x of a kernel that also
 * computes weight gradients stays private: backward reuses it. Calls that
 * use the pool hold its lock, so objects of different threads stay correct
 * (their runs are serialised). */
#include "dnnl.h"

#include <oneapi/dnnl/dnnl.h>
#include <oneapi/dnnl/dnnl_debug.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

/* ---- engine ------------------------------------------------------------------ */
static pthread_once_t dn_once = PTHREAD_ONCE_INIT;
static dnnl_engine_t dn_engine;
static dnnl_status_t dn_engine_status = dnnl_runtime_error;

static void dn_engine_init(void)
{
    dn_engine_status = dnnl_engine_create(&dn_engine, dnnl_cpu, 0);
}

/* Records a oneDNN failure on ctx, naming the call (`what` up to its first
 * '(' , so a stringified call prints as its function name). */
static mg_status dn_fail(mg_ctx *ctx, dnnl_status_t st, const char *what)
{
    mg_status s = st == dnnl_unimplemented ? MG_ERR_UNSUPPORTED
                  : st == dnnl_out_of_memory ? MG_ERR_NOMEM : MG_ERR_BACKEND;
    return mg_ctx_fail(ctx, s, "oneDNN: %.*s failed (%s)", (int)strcspn(what, "("), what, dnnl_status2str(st));
}

#define DN_TRY(ctx, call)                                                  \
    do {                                                                   \
        dnnl_status_t dn_st_ = (call);                                     \
        if (dn_st_ != dnnl_success) return dn_fail((ctx), dn_st_, #call);  \
    } while (0)

/* The process-wide CPU engine, created on first use. */
static mg_status dn_get_engine(mg_ctx *ctx, dnnl_engine_t *out)
{
    pthread_once(&dn_once, dn_engine_init);
    if (dn_engine_status != dnnl_success) return dn_fail(ctx, dn_engine_status, "creating the CPU engine");
    *out = dn_engine;
    return MG_OK;
}

/* ---- the shared pool of transient buffers ---------------------------------------- */
/* One slot per role, so buffers alive at the same time within one call
 * never share a slot: x-shaped (src, diff_src), weights-shaped (weights,
 * diff_weights), y-shaped (dst, diff_dst), bias-shaped, scratchpad.
 * backward-weights relies on the y slot still holding the blocked dy that
 * backward-data made in the same mg_dnnl_conv_backward call. */
enum { DN_SLOT_X, DN_SLOT_W, DN_SLOT_Y, DN_SLOT_B, DN_SLOT_SCRATCH, DN_NSLOT, DN_PRIVATE = -1 };

static struct {
    pthread_mutex_t lock;
    int users;                /* live objects (refcount) */
    void *buf[DN_NSLOT];
    size_t size[DN_NSLOT];
} dn_pool = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void dn_pool_lock(void) { pthread_mutex_lock(&dn_pool.lock); }
static void dn_pool_unlock(void) { pthread_mutex_unlock(&dn_pool.lock); }

static void dn_pool_join(void)
{
    dn_pool_lock();
    dn_pool.users++;
    dn_pool_unlock();
}

/* Drops one user; the last one frees every slot. */
static void dn_pool_leave(void)
{
    dn_pool_lock();
    if (--dn_pool.users == 0)
        for (int i = 0; i < DN_NSLOT; i++) {
            mg_free_aligned(dn_pool.buf[i]);
            dn_pool.buf[i] = NULL;
            dn_pool.size[i] = 0;
        }
    dn_pool_unlock();
}

/* Grows slot `slot` to at least `size` bytes (its contents are lost: only
 * called while building, never inside a run). */
static mg_status dn_pool_reserve(mg_ctx *ctx, int slot, size_t size, const char *name)
{
    mg_status s = MG_OK;
    dn_pool_lock();
    if (size > dn_pool.size[slot]) {
        void *buf = mg_malloc_aligned(size);
        if (buf) {
            mg_free_aligned(dn_pool.buf[slot]);
            dn_pool.buf[slot] = buf;
            dn_pool.size[slot] = size;
        } else {
            s = mg_ctx_fail(ctx, MG_ERR_NOMEM, "oneDNN: out of memory for a %s buffer (%zu bytes)", name, size);
        }
    }
    dn_pool_unlock();
    return s;
}

/* ---- passes and ports ---------------------------------------------------------- */
#define DN_MAX_PORTS 4

typedef struct dn_port {
    int arg;                  /* DNNL_ARG_* of the primitive */
    int is_output;            /* 1: the primitive writes it; reorder runs after */
    dnnl_memory_t user;       /* plain layout; handle set on every run */
    dnnl_memory_t inner;      /* the primitive's layout; == user when they agree */
    dnnl_primitive_t reorder; /* user -> inner (inputs) or inner -> user (outputs) */
    void *buf;                /* inner's storage when the port owns it */
    int slot;                 /* DN_SLOT_*: inner lives in that pool slot; DN_PRIVATE: not */
    int shared;               /* inner lives on another port's buffer */
} dn_port;

typedef struct dn_pass {
    dnnl_primitive_t prim;    /* NULL: pass not created */
    dn_port port[DN_MAX_PORTS];
    int n_port;
    dnnl_memory_desc_t scratch_md;
    dnnl_memory_t scratch;    /* over the pool's scratch slot */
    char impl[64];
    char layouts[192];
} dn_pass;

/* What every object has: ctx for errors, engine, its own stream, and its
 * membership of the pool. */
typedef struct dn_base {
    mg_ctx *ctx;
    dnnl_engine_t eng;
    dnnl_stream_t stream;
    int in_pool;
} dn_base;

/* Writes a short name of a memory layout ("abcd", "abcd:16b", "acbd"). */
static void dn_layout_name(const dnnl_memory_desc_t *md, char *buf, size_t n)
{
    const dnnl_blocking_desc_t *bd = &md->format_desc.blocking;
    int order[DNNL_MAX_NDIMS], nd = md->ndims, len = 0;
    if (md->format_kind != dnnl_blocked) {
        snprintf(buf, n, "opaque");
        return;
    }
    for (int i = 0; i < nd; i++) order[i] = i;
    for (int i = 1; i < nd; i++) /* outer dims by decreasing stride (stable) */
        for (int j = i; j > 0 && bd->strides[order[j]] > bd->strides[order[j - 1]]; j--) {
            int t = order[j]; order[j] = order[j - 1]; order[j - 1] = t;
        }
    for (int i = 0; i < nd && len + 2 < (int)n; i++) buf[len++] = (char)('a' + order[i]);
    buf[len] = '\0';
    for (int i = 0; i < bd->inner_nblks; i++)
        len += snprintf(buf + len, n > (size_t)len ? n - (size_t)len : 0, "%s%lld%c", i ? "" : ":",
                        (long long)bd->inner_blks[i], (char)('a' + bd->inner_idxs[i]));
}

/* Appends "name=layout" to the pass's description, marked '*' when
 * reordered and '^' when the blocked buffer is shared with an earlier pass. */
static void dn_note_layout(dn_pass *p, const dn_port *pt, const char *name, const dnnl_memory_desc_t *md)
{
    char lay[48];
    size_t len = strlen(p->layouts);
    dn_layout_name(md, lay, sizeof lay);
    snprintf(p->layouts + len, sizeof p->layouts - len, "%s%s=%s%s%s", len ? " " : "", name, lay,
             pt->reorder ? "*" : "", pt->shared ? "^" : "");
}

/* Creates the reorder primitive from `from` to `to`. */
static mg_status dn_reorder_new(dn_base *o, const dnnl_memory_desc_t *from, const dnnl_memory_desc_t *to,
                                dnnl_primitive_t *out)
{
    dnnl_primitive_desc_t pd;
    DN_TRY(o->ctx, dnnl_reorder_primitive_desc_create(&pd, from, o->eng, to, o->eng, NULL));
    dnnl_status_t st = dnnl_primitive_create(out, pd);
    dnnl_primitive_desc_destroy(pd);
    return st == dnnl_success ? MG_OK : dn_fail(o->ctx, st, "creating a reorder");
}

/* 1 when share (may be NULL) has a blocked buffer of its own (private or a
 * pool slot) in layout `want`. */
static int dn_shareable(const dn_port *share, const dnnl_memory_desc_t *want)
{
    const dnnl_memory_desc_t *md;
    if (!share || !share->reorder || share->shared) return 0;
    if (dnnl_memory_get_memory_desc(share->inner, &md) != dnnl_success) return 0;
    return dnnl_memory_desc_equal(md, want);
}

/* The storage of a blocked port: share's when possible, else pool slot
 * `slot`, else (DN_PRIVATE) a buffer of its own. A pooled port's memory has
 * no handle until a run binds the slot (dn_pass_bind_pool). */
static mg_status dn_port_storage(dn_base *o, dn_port *pt, const char *name, const dnnl_memory_desc_t *want,
                                 int slot, const dn_port *share, void **buf)
{
    size_t size = dnnl_memory_desc_get_size(want);
    pt->shared = dn_shareable(share, want);
    pt->slot = pt->shared ? share->slot : slot;
    *buf = pt->shared ? share->buf : NULL;
    if (pt->shared) return MG_OK;
    if (pt->slot != DN_PRIVATE) return dn_pool_reserve(o->ctx, slot, size, name);
    *buf = pt->buf = mg_malloc_aligned(size);
    return *buf ? MG_OK : mg_ctx_fail(o->ctx, MG_ERR_NOMEM, "oneDNN: out of memory for a %s buffer", name);
}

/* The inner memory of a port whose layout differs from the caller's (see
 * dn_port_storage for where it lives), plus the reorder. */
static mg_status dn_port_blocked(dn_base *o, dn_port *pt, const char *name, const dnnl_memory_desc_t *plain,
                                 const dnnl_memory_desc_t *want, int slot, const dn_port *share)
{
    void *buf = NULL;
    mg_status s = dn_port_storage(o, pt, name, want, slot, share, &buf);
    if (s != MG_OK) return s;
    DN_TRY(o->ctx, dnnl_memory_create(&pt->inner, want, o->eng, pt->slot == DN_PRIVATE ? buf : DNNL_MEMORY_NONE));
    return pt->is_output ? dn_reorder_new(o, want, plain, &pt->reorder) : dn_reorder_new(o, plain, want, &pt->reorder);
}

/* Adds argument `arg` to pass p: `plain` is the caller's layout, `want` the
 * primitive's. When they differ, the port gets a blocked buffer (share's, if
 * share is not NULL and holds the same layout; else pool slot `slot`, or its
 * own with DN_PRIVATE) and a reorder. */
static mg_status dn_port_add(dn_base *o, dn_pass *p, const char *name, int arg, int is_output,
                             const dnnl_memory_desc_t *plain, const dnnl_memory_desc_t *want, int slot,
                             const dn_port *share)
{
    dn_port *pt = &p->port[p->n_port++];
    mg_status s = MG_OK;
    pt->arg = arg;
    pt->is_output = is_output;
    pt->slot = DN_PRIVATE;
    DN_TRY(o->ctx, dnnl_memory_create(&pt->user, plain, o->eng, DNNL_MEMORY_NONE));
    if (dnnl_memory_desc_equal(plain, want))
        pt->inner = pt->user;
    else
        s = dn_port_blocked(o, pt, name, plain, want, slot, share);
    dn_note_layout(p, pt, name, want);
    return s;
}

/* Creates the pass's primitive from pd, noting its scratchpad and name. */
static mg_status dn_pass_init(dn_base *o, dn_pass *p, const_dnnl_primitive_desc_t pd)
{
    const char *impl = "";
    p->scratch_md = *dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
    snprintf(p->impl, sizeof p->impl, "%s", impl);
    DN_TRY(o->ctx, dnnl_primitive_create(&p->prim, pd));
    return MG_OK;
}

static void dn_pass_free(dn_pass *p)
{
    for (int i = 0; i < p->n_port; i++) {
        dn_port *pt = &p->port[i];
        if (pt->reorder) dnnl_primitive_destroy(pt->reorder);
        if (pt->inner && pt->inner != pt->user) dnnl_memory_destroy(pt->inner);
        if (pt->user) dnnl_memory_destroy(pt->user);
        mg_free_aligned(pt->buf);
    }
    if (p->scratch) dnnl_memory_destroy(p->scratch);
    if (p->prim) dnnl_primitive_destroy(p->prim);
    memset(p, 0, sizeof *p);
}

/* Grows the pool's scratch slot for every created pass and makes each
 * pass's scratchpad memory (bound to the slot on every run). */
static mg_status dn_scratch_init(dn_base *o, dn_pass *passes, int n)
{
    size_t need = 64;
    for (int i = 0; i < n; i++)
        if (passes[i].prim) {
            size_t sz = dnnl_memory_desc_get_size(&passes[i].scratch_md);
            if (sz > need) need = sz;
        }
    mg_status s = dn_pool_reserve(o->ctx, DN_SLOT_SCRATCH, need, "scratchpad");
    for (int i = 0; i < n && s == MG_OK; i++)
        if (passes[i].prim)
            DN_TRY(o->ctx, dnnl_memory_create(&passes[i].scratch, &passes[i].scratch_md, o->eng, DNNL_MEMORY_NONE));
    return s;
}

/* Points the pass's pooled memories at the pool's current slots (a slot
 * moves when a later object grows it). Caller holds the pool lock. */
static mg_status dn_pass_bind_pool(dn_base *o, dn_pass *p)
{
    for (int i = 0; i < p->n_port; i++)
        if (p->port[i].slot != DN_PRIVATE)
            DN_TRY(o->ctx, dnnl_memory_set_data_handle(p->port[i].inner, dn_pool.buf[p->port[i].slot]));
    DN_TRY(o->ctx, dnnl_memory_set_data_handle(p->scratch, dn_pool.buf[DN_SLOT_SCRATCH]));
    return MG_OK;
}

static mg_status dn_reorder_run(dn_base *o, dn_port *pt)
{
    dnnl_memory_t from = pt->is_output ? pt->inner : pt->user;
    dnnl_memory_t to = pt->is_output ? pt->user : pt->inner;
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}};
    DN_TRY(o->ctx, dnnl_primitive_execute(pt->reorder, o->stream, 2, args));
    return MG_OK;
}

/* Executes only the primitive, on the inner memories. */
static mg_status dn_prim_run(dn_base *o, dn_pass *p)
{
    dnnl_exec_arg_t args[DN_MAX_PORTS + 1];
    int n = 0;
    for (int i = 0; i < p->n_port; i++) args[n++] = (dnnl_exec_arg_t){p->port[i].arg, p->port[i].inner};
    args[n++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, p->scratch};
    DN_TRY(o->ctx, dnnl_primitive_execute(p->prim, o->stream, n, args));
    return MG_OK;
}

/* Runs pass p with ptr[i] the caller's buffer for port i: binds the buffers,
 * reorders inputs (except ports in `skip`, a bit mask of ports whose blocked
 * buffer already holds the data), executes, reorders outputs, waits. Caller
 * holds the pool lock. */
static mg_status dn_pass_run(dn_base *o, dn_pass *p, void *const *ptr, unsigned skip)
{
    if (!p->prim) return mg_ctx_fail(o->ctx, MG_ERR_STATE, "oneDNN: this pass was not requested when the kernel was made");
    mg_status s = dn_pass_bind_pool(o, p);
    for (int i = 0; i < p->n_port && s == MG_OK; i++) {
        dn_port *pt = &p->port[i];
        DN_TRY(o->ctx, dnnl_memory_set_data_handle(pt->user, ptr[i]));
        if (pt->reorder && !pt->is_output && !(skip >> i & 1u)) s = dn_reorder_run(o, pt);
    }
    if (s == MG_OK) s = dn_prim_run(o, p);
    for (int i = 0; i < p->n_port && s == MG_OK; i++)
        if (p->port[i].reorder && p->port[i].is_output) s = dn_reorder_run(o, &p->port[i]);
    DN_TRY(o->ctx, dnnl_stream_wait(o->stream));
    return s;
}

static mg_status dn_base_init(dn_base *o, mg_ctx *ctx)
{
    o->ctx = ctx;
    dn_pool_join();
    o->in_pool = 1;
    mg_status s = dn_get_engine(ctx, &o->eng);
    if (s != MG_OK) return s;
    DN_TRY(ctx, dnnl_stream_create(&o->stream, o->eng, dnnl_stream_default_flags));
    return MG_OK;
}

static void dn_base_free(dn_base *o)
{
    if (o->stream) dnnl_stream_destroy(o->stream);
    if (o->in_pool) dn_pool_leave();
}

/* Primitive attributes asking for a user-managed scratchpad. */
static mg_status dn_attr_new(mg_ctx *ctx, dnnl_primitive_attr_t *attr)
{
    DN_TRY(ctx, dnnl_primitive_attr_create(attr));
    dnnl_status_t st = dnnl_primitive_attr_set_scratchpad_mode(*attr, dnnl_scratchpad_mode_user);
    if (st != dnnl_success) {
        dnnl_primitive_attr_destroy(*attr);
        return dn_fail(ctx, st, "setting the scratchpad mode");
    }
    return MG_OK;
}

/* Creates a primitive descriptor for op descriptor d (hint: forward pd). */
static mg_status dn_pd_new(dn_base *o, const_dnnl_op_desc_t d, const_dnnl_primitive_desc_t hint,
                           const char *what, dnnl_primitive_desc_t *pd)
{
    dnnl_primitive_attr_t attr;
    mg_status s = dn_attr_new(o->ctx, &attr);
    if (s != MG_OK) return s;
    dnnl_status_t st = dnnl_primitive_desc_create(pd, d, attr, o->eng, hint);
    dnnl_primitive_attr_destroy(attr);
    return st == dnnl_success ? MG_OK : dn_fail(o->ctx, st, what);
}

/* ---- convolution ------------------------------------------------------------------ */
enum { DN_FWD, DN_BWD_DATA, DN_BWD_WEIGHTS, DN_NPASS };

struct mg_dnnl_conv {
    dn_base base;
    dn_pass pass[DN_NPASS];
    /* descriptors: the caller's layouts ("plain": NCHW / OIHW, or nChw16c
     * activations with MG_CONV_LAYOUT_NCHW16C), and "any" for oneDNN to
     * choose (activations: fixed to nChw16c in that case) */
    dnnl_memory_desc_t x_plain, w_plain, b_plain, y_plain;
    dnnl_memory_desc_t x_any, w_any, y_any;
    dnnl_dims_t strides, dilates, pad, pad_r; /* pad: before, pad_r: after */
    int has_bias;
    int keep_x;            /* forward's blocked x is private (backward-weights reuses it) */
    float *bias_sink;      /* (oc): diff_bias target when the caller wants none */
    const void *x_blocked; /* plain x whose blocked copy the forward src buffer holds */
};

static int dn_pass_index(unsigned bit)
{
    return bit == MG_CONV_FWD ? DN_FWD : bit == MG_CONV_BWD_DATA ? DN_BWD_DATA
           : bit == MG_CONV_BWD_WEIGHTS ? DN_BWD_WEIGHTS : -1;
}

/* Fills the conv's memory descriptors and geometry from shape s. */
static mg_status dn_conv_descs(mg_dnnl_conv *c, const mg_conv2d_shape *s)
{
    int64_t oh = 0, ow = 0;
    mg_status st = mg_conv2d_out_hw(s, &oh, &ow);
    if (st != MG_OK) return mg_ctx_fail(c->base.ctx, st, "oneDNN: convolution shape does not fit");
    dnnl_dims_t xd = {s->n, s->c, s->h, s->w}, wd = {s->oc, s->c, s->kh, s->kw};
    dnnl_dims_t yd = {s->n, s->oc, oh, ow}, bd = {s->oc};
    mg_ctx *ctx = c->base.ctx;
    /* the caller's activation layout; blocked activations are given to the
     * primitive as they are (then no conversion runs around it) */
    const dnnl_format_tag_t act = s->layout == MG_CONV_LAYOUT_NCHW16C ? dnnl_nChw16c : dnnl_nchw;
    DN_TRY(ctx, dnnl_memory_desc_init_by_tag(&c->x_plain, 4, xd, dnnl_f32, act));
    DN_TRY(ctx, dnnl_memory_desc_init_by_tag(&c->w_plain, 4, wd, dnnl_f32, dnnl_oihw));
    DN_TRY(ctx, dnnl_memory_desc_init_by_tag(&c->y_plain, 4, yd, dnnl_f32, act));
    DN_TRY(ctx, dnnl_memory_desc_init_by_tag(&c->b_plain, 1, bd, dnnl_f32, dnnl_x));
    const dnnl_format_tag_t any_act = s->layout == MG_CONV_LAYOUT_NCHW16C ? dnnl_nChw16c : dnnl_format_tag_any;
    DN_TRY(ctx, dnnl_memory_desc_init_by_tag(&c->x_any, 4, xd, dnnl_f32, any_act));
    DN_TRY(ctx, dnnl_memory_desc_init_by_tag(&c->w_any, 4, wd, dnnl_f32, dnnl_format_tag_any));
    DN_TRY(ctx, dnnl_memory_desc_init_by_tag(&c->y_any, 4, yd, dnnl_f32, any_act));
    for (int i = 0; i < 2; i++) {
        c->strides[i] = s->stride[i];
        c->dilates[i] = s->dilation[i] - 1; /* oneDNN: 0 is dense */
        c->pad[i] = s->pad[i];
        c->pad_r[i] = mg_conv2d_pad_end(s, i);
    }
    c->has_bias = s->has_bias;
    return MG_OK;
}

static const dnnl_memory_desc_t *dn_md(const_dnnl_primitive_desc_t pd, dnnl_query_t q)
{
    return dnnl_primitive_desc_query_md(pd, q, 0);
}

/* The forward pd (also the hint for backward ones). */
static mg_status dn_conv_fwd_pd(mg_dnnl_conv *c, int training, dnnl_primitive_desc_t *pd)
{
    dnnl_convolution_desc_t d;
    DN_TRY(c->base.ctx, dnnl_dilated_convolution_forward_desc_init(
        &d, training ? dnnl_forward_training : dnnl_forward_inference, dnnl_convolution_direct,
        &c->x_any, &c->w_any, c->has_bias ? &c->b_plain : NULL, &c->y_any,
        c->strides, c->dilates, c->pad, c->pad_r));
    return dn_pd_new(&c->base, &d, NULL, "creating the convolution forward primitive", pd);
}

static mg_status dn_conv_fwd_pass(mg_dnnl_conv *c, const_dnnl_primitive_desc_t pd)
{
    dn_pass *p = &c->pass[DN_FWD];
    dn_base *o = &c->base;
    mg_status s = dn_pass_init(o, p, pd);
    if (s == MG_OK)
        s = dn_port_add(o, p, "src", DNNL_ARG_SRC, 0, &c->x_plain, dn_md(pd, dnnl_query_src_md),
                        c->keep_x ? DN_PRIVATE : DN_SLOT_X, NULL);
    if (s == MG_OK)
        s = dn_port_add(o, p, "wei", DNNL_ARG_WEIGHTS, 0, &c->w_plain, dn_md(pd, dnnl_query_weights_md), DN_SLOT_W, NULL);
    if (s == MG_OK && c->has_bias)
        s = dn_port_add(o, p, "bia", DNNL_ARG_BIAS, 0, &c->b_plain, dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 1),
                        DN_SLOT_B, NULL);
    if (s == MG_OK) s = dn_port_add(o, p, "dst", DNNL_ARG_DST, 1, &c->y_plain, dn_md(pd, dnnl_query_dst_md), DN_SLOT_Y, NULL);
    return s;
}

static mg_status dn_conv_bwd_data_pass(mg_dnnl_conv *c, const_dnnl_primitive_desc_t hint)
{
    dnnl_convolution_desc_t d;
    dnnl_primitive_desc_t pd;
    dn_base *o = &c->base;
    dn_pass *p = &c->pass[DN_BWD_DATA];
    DN_TRY(o->ctx, dnnl_dilated_convolution_backward_data_desc_init(
        &d, dnnl_convolution_direct, &c->x_any, &c->w_any, &c->y_any, c->strides, c->dilates, c->pad, c->pad_r));
    mg_status s = dn_pd_new(o, &d, hint, "creating the convolution backward-data primitive", &pd);
    if (s != MG_OK) return s;
    s = dn_pass_init(o, p, pd);
    if (s == MG_OK)
        s = dn_port_add(o, p, "ddst", DNNL_ARG_DIFF_DST, 0, &c->y_plain, dn_md(pd, dnnl_query_diff_dst_md), DN_SLOT_Y, NULL);
    if (s == MG_OK)
        s = dn_port_add(o, p, "wei", DNNL_ARG_WEIGHTS, 0, &c->w_plain, dn_md(pd, dnnl_query_weights_md), DN_SLOT_W, NULL);
    if (s == MG_OK)
        s = dn_port_add(o, p, "dsrc", DNNL_ARG_DIFF_SRC, 1, &c->x_plain, dn_md(pd, dnnl_query_diff_src_md), DN_SLOT_X, NULL);
    dnnl_primitive_desc_destroy(pd);
    return s;
}

/* Backward-weights; its src and diff_dst share the blocked buffers of the
 * forward src and the backward-data diff_dst when the layouts agree. With a
 * bias it also produces diff_bias (nearly free inside the primitive). */
static mg_status dn_conv_bwd_weights_pass(mg_dnnl_conv *c, const_dnnl_primitive_desc_t hint)
{
    dnnl_convolution_desc_t d;
    dnnl_primitive_desc_t pd;
    dn_base *o = &c->base;
    dn_pass *p = &c->pass[DN_BWD_WEIGHTS], *f = &c->pass[DN_FWD], *bd = &c->pass[DN_BWD_DATA];
    DN_TRY(o->ctx, dnnl_dilated_convolution_backward_weights_desc_init(
        &d, dnnl_convolution_direct, &c->x_any, &c->w_any, c->has_bias ? &c->b_plain : NULL, &c->y_any,
        c->strides, c->dilates, c->pad, c->pad_r));
    mg_status s = dn_pd_new(o, &d, hint, "creating the convolution backward-weights primitive", &pd);
    if (s != MG_OK) return s;
    s = dn_pass_init(o, p, pd);
    if (s == MG_OK)
        s = dn_port_add(o, p, "src", DNNL_ARG_SRC, 0, &c->x_plain, dn_md(pd, dnnl_query_src_md), DN_SLOT_X,
                        f->prim ? &f->port[0] : NULL);
    if (s == MG_OK)
        s = dn_port_add(o, p, "ddst", DNNL_ARG_DIFF_DST, 0, &c->y_plain, dn_md(pd, dnnl_query_diff_dst_md), DN_SLOT_Y,
                        bd->prim ? &bd->port[0] : NULL);
    if (s == MG_OK)
        s = dn_port_add(o, p, "dwei", DNNL_ARG_DIFF_WEIGHTS, 1, &c->w_plain, dn_md(pd, dnnl_query_diff_weights_md),
                        DN_SLOT_W, NULL);
    if (s == MG_OK && c->has_bias)
        s = dn_port_add(o, p, "dbia", DNNL_ARG_DIFF_BIAS, 1, &c->b_plain,
                        dnnl_primitive_desc_query_md(pd, dnnl_query_diff_weights_md, 1), DN_SLOT_B, NULL);
    dnnl_primitive_desc_destroy(pd);
    return s;
}

/* Creates every requested pass; the forward pd is made even for a
 * backward-only kernel, as oneDNN's hint. */
static mg_status dn_conv_build(mg_dnnl_conv *c, unsigned passes)
{
    dnnl_primitive_desc_t fwd;
    int training = (passes & (MG_CONV_BWD_DATA | MG_CONV_BWD_WEIGHTS)) != 0;
    c->keep_x = (passes & MG_CONV_BWD_WEIGHTS) != 0;
    mg_status s = dn_conv_fwd_pd(c, training, &fwd);
    if (s != MG_OK) return s;
    if (passes & MG_CONV_FWD) s = dn_conv_fwd_pass(c, fwd);
    if (s == MG_OK && (passes & MG_CONV_BWD_DATA)) s = dn_conv_bwd_data_pass(c, fwd);
    if (s == MG_OK && (passes & MG_CONV_BWD_WEIGHTS)) s = dn_conv_bwd_weights_pass(c, fwd);
    dnnl_primitive_desc_destroy(fwd);
    if (s == MG_OK) s = dn_scratch_init(&c->base, c->pass, DN_NPASS);
    return s;
}

mg_status mg_dnnl_conv_new(mg_ctx *ctx, const mg_conv2d_shape *s, unsigned passes, mg_dnnl_conv **out)
{
    *out = NULL;
    mg_dnnl_conv *c = mg_calloc(1, sizeof *c);
    if (!c) return mg_ctx_fail(ctx, MG_ERR_NOMEM, "oneDNN: out of memory for a convolution");
    mg_status st = dn_base_init(&c->base, ctx);
    if (st == MG_OK && s->has_bias && !(c->bias_sink = mg_calloc((size_t)s->oc, sizeof(float))))
        st = mg_ctx_fail(ctx, MG_ERR_NOMEM, "oneDNN: out of memory for a convolution");
    if (st == MG_OK) st = dn_conv_descs(c, s);
    if (st == MG_OK) st = dn_conv_build(c, passes);
    if (st != MG_OK) {
        mg_dnnl_conv_free(c);
        return st;
    }
    *out = c;
    return MG_OK;
}

void mg_dnnl_conv_free(mg_dnnl_conv *c)
{
    if (!c) return;
    for (int i = 0; i < DN_NPASS; i++) dn_pass_free(&c->pass[i]);
    dn_base_free(&c->base);
    mg_free(c->bias_sink);
    mg_free(c);
}

mg_status mg_dnnl_conv_forward(mg_dnnl_conv *c, const float *x, const float *w, const float *b, float *y)
{
    void *ptr[4] = {(void *)x, (void *)w, (void *)b, y};
    if (!c->has_bias) ptr[2] = y; /* no bias port: dst is port 2 */
    c->x_blocked = NULL;
    dn_pool_lock();
    mg_status s = dn_pass_run(&c->base, &c->pass[DN_FWD], ptr, 0);
    dn_pool_unlock();
    if (s == MG_OK && c->keep_x) c->x_blocked = x;
    return s;
}

/* Backward-data; caller holds the pool lock. */
static mg_status dn_conv_bwd_data_run(mg_dnnl_conv *c, const float *dy, const float *w, float *dx)
{
    void *ptr[3] = {(void *)dy, (void *)w, dx};
    return dn_pass_run(&c->base, &c->pass[DN_BWD_DATA], ptr, 0);
}

mg_status mg_dnnl_conv_backward_data(mg_dnnl_conv *c, const float *dy, const float *w, float *dx)
{
    dn_pool_lock();
    mg_status s = dn_conv_bwd_data_run(c, dy, w, dx);
    dn_pool_unlock();
    return s;
}

/* Backward-weights; `skip` as for dn_pass_run (bit 0: x, bit 1: dy).
 * Caller holds the pool lock. */
static mg_status dn_conv_bwd_weights_run(mg_dnnl_conv *c, const float *x, const float *dy, float *dw, float *db,
                                         unsigned skip)
{
    dn_pass *p = &c->pass[DN_BWD_WEIGHTS];
    void *ptr[4] = {(void *)x, (void *)dy, dw, db ? db : c->bias_sink};
    if (p->port[0].shared) c->x_blocked = NULL; /* the shared buffer is about to change */
    mg_status s = dn_pass_run(&c->base, p, ptr, skip);
    if (s == MG_OK && p->port[0].shared) c->x_blocked = x;
    return s;
}

mg_status mg_dnnl_conv_backward_weights(mg_dnnl_conv *c, const float *x, const float *dy, float *dw, float *db)
{
    dn_pool_lock();
    mg_status s = dn_conv_bwd_weights_run(c, x, dy, dw, db, 0);
    dn_pool_unlock();
    return s;
}

/* mg_dnnl_conv_backward under the pool lock: the blocked dy that
 * backward-data leaves in the pool's y slot is still there for
 * backward-weights. */
static mg_status dn_conv_bwd_run(mg_dnnl_conv *c, const float *x, const float *dy, const float *w, float *dx,
                                 float *dw, float *db)
{
    unsigned skip = 0;
    const dn_pass *bw = &c->pass[DN_BWD_WEIGHTS];
    if (dx) {
        mg_status s = dn_conv_bwd_data_run(c, dy, w, dx);
        if (s != MG_OK) return s;
        if (bw->n_port > 1 && bw->port[1].shared) skip |= 2u; /* dy already blocked */
    }
    if (!dw) return MG_OK;
    if (bw->n_port > 0 && bw->port[0].shared && x == c->x_blocked) skip |= 1u;
    return dn_conv_bwd_weights_run(c, x, dy, dw, db, skip);
}

mg_status mg_dnnl_conv_backward(mg_dnnl_conv *c, const float *x, const float *dy, const float *w, float *dx,
                                float *dw, float *db)
{
    dn_pool_lock();
    mg_status s = dn_conv_bwd_run(c, x, dy, w, dx, dw, db);
    dn_pool_unlock();
    return s;
}

/* The pooled buffers hold whatever the last run of any object left there:
 * fine for timing, meaningless as results. */
mg_status mg_dnnl_conv_run_inner(mg_dnnl_conv *c, unsigned pass)
{
    int i = dn_pass_index(pass);
    if (i < 0 || !c->pass[i].prim) return mg_ctx_fail(c->base.ctx, MG_ERR_ARG, "oneDNN: no such convolution pass");
    dn_pool_lock();
    mg_status s = dn_pass_bind_pool(&c->base, &c->pass[i]);
    if (s == MG_OK) s = dn_prim_run(&c->base, &c->pass[i]);
    dnnl_status_t st = dnnl_stream_wait(c->base.stream);
    dn_pool_unlock();
    if (s == MG_OK && st != dnnl_success) s = dn_fail(c->base.ctx, st, "dnnl_stream_wait");
    return s;
}

const char *mg_dnnl_conv_impl(const mg_dnnl_conv *c, unsigned pass)
{
    int i = dn_pass_index(pass);
    return i < 0 ? "" : c->pass[i].impl;
}

const char *mg_dnnl_conv_layouts(const mg_dnnl_conv *c, unsigned pass)
{
    int i = dn_pass_index(pass);
    return i < 0 ? "" : c->pass[i].layouts;
}

/* ---- matmul ------------------------------------------------------------------------ */
struct mg_dnnl_matmul {
    dn_base base;
    dn_pass pass;
    int has_bias;
};

mg_dnnl_view mg_dnnl_view_rows(int64_t rows, int64_t cols)
{
    return (mg_dnnl_view){.row_stride = cols, .col_stride = 1, .batch_stride = rows * cols};
}

mg_dnnl_view mg_dnnl_view_transposed(int64_t rows, int64_t cols)
{
    return (mg_dnnl_view){.row_stride = 1, .col_stride = cols, .batch_stride = rows * cols};
}

/* A (batch?, rows, cols) f32 descriptor with the view's strides. */
static mg_status dn_view_md(mg_ctx *ctx, int64_t batch, int64_t rows, int64_t cols, const mg_dnnl_view *v,
                            dnnl_memory_desc_t *md)
{
    dnnl_dims_t dims = {batch, rows, cols}, strides = {v->batch_stride, v->row_stride, v->col_stride};
    int off = batch ? 0 : 1;
    DN_TRY(ctx, dnnl_memory_desc_init_by_strides(md, 3 - off, dims + off, dnnl_f32, strides + off));
    return MG_OK;
}

static mg_status dn_matmul_build(mg_dnnl_matmul *mm, const mg_dnnl_matmul_shape *s)
{
    dnnl_memory_desc_t a, b, c, bias;
    mg_dnnl_view bv = mg_dnnl_view_rows(1, s->n);
    dn_base *o = &mm->base;
    mg_status st = dn_view_md(o->ctx, s->batch, s->m, s->k, &s->a, &a);
    if (st == MG_OK) st = dn_view_md(o->ctx, s->batch, s->k, s->n, &s->b, &b);
    if (st == MG_OK) st = dn_view_md(o->ctx, s->batch, s->m, s->n, &s->c, &c);
    bv.batch_stride = s->n;
    if (st == MG_OK) st = dn_view_md(o->ctx, s->batch ? 1 : 0, 1, s->n, &bv, &bias);
    if (st != MG_OK) return st;
    dnnl_matmul_desc_t d;
    dnnl_primitive_desc_t pd;
    DN_TRY(o->ctx, dnnl_matmul_desc_init(&d, &a, &b, s->has_bias ? &bias : NULL, &c));
    st = dn_pd_new(o, &d, NULL, "creating a matmul primitive", &pd);
    if (st != MG_OK) return st;
    dn_pass *p = &mm->pass;
    st = dn_pass_init(o, p, pd);
    dnnl_primitive_desc_destroy(pd);
    if (st == MG_OK) st = dn_port_add(o, p, "src", DNNL_ARG_SRC, 0, &a, &a, DN_PRIVATE, NULL);
    if (st == MG_OK) st = dn_port_add(o, p, "wei", DNNL_ARG_WEIGHTS, 0, &b, &b, DN_PRIVATE, NULL);
    if (st == MG_OK && s->has_bias) st = dn_port_add(o, p, "bia", DNNL_ARG_BIAS, 0, &bias, &bias, DN_PRIVATE, NULL);
    if (st == MG_OK) st = dn_port_add(o, p, "dst", DNNL_ARG_DST, 1, &c, &c, DN_PRIVATE, NULL);
    if (st == MG_OK) st = dn_scratch_init(o, p, 1);
    return st;
}

mg_status mg_dnnl_matmul_new(mg_ctx *ctx, const mg_dnnl_matmul_shape *s, mg_dnnl_matmul **out)
{
    *out = NULL;
    mg_dnnl_matmul *mm = mg_calloc(1, sizeof *mm);
    if (!mm) return mg_ctx_fail(ctx, MG_ERR_NOMEM, "oneDNN: out of memory for a matmul");
    mm->has_bias = s->has_bias;
    mg_status st = dn_base_init(&mm->base, ctx);
    if (st == MG_OK) st = dn_matmul_build(mm, s);
    if (st != MG_OK) {
        mg_dnnl_matmul_free(mm);
        return st;
    }
    *out = mm;
    return MG_OK;
}

void mg_dnnl_matmul_free(mg_dnnl_matmul *mm)
{
    if (!mm) return;
    dn_pass_free(&mm->pass);
    dn_base_free(&mm->base);
    mg_free(mm);
}

mg_status mg_dnnl_matmul_run(mg_dnnl_matmul *mm, const float *a, const float *b, const float *bias, float *c)
{
    void *ptr[4] = {(void *)a, (void *)b, (void *)bias, c};
    if (!mm->has_bias) ptr[2] = c;
    dn_pool_lock();
    mg_status s = dn_pass_run(&mm->base, &mm->pass, ptr, 0);
    dn_pool_unlock();
    return s;
}

const char *mg_dnnl_matmul_impl(const mg_dnnl_matmul *mm)
{
    return mm->pass.impl;
}
