/* plugins/mintnet/mintnet_inverse.c: the `mintnet.block_inverse` op, the
 * damped fixed-point inverse of spec section 4:
 *     x0 = z / tau,   x(k+1) = x(k) + (z - f(x(k))) / (beta D(x(k)))
 *
 * mintnet.block_inverse(z[N,C,H,W], w1, b1, w2, b2, w3, b3, t) -> (x[N,C,H,W], diag f64[N,3])
 * parameters as mintnet.block; attributes:
 *   mask "A" | "B" (required), latent (optional check),
 *   damping beta (default 3.5), tolerance (1e-5), max_iterations (200),
 *   precision "float32" | "float64" (the arithmetic of the whole iteration),
 *   stop "residual" (stop a sample once max |z - f(x)| <= tolerance) |
 *        "fixed" (the published behaviour: exactly max_iterations steps),
 *   adaptive (default 1 with stop "residual", must be 0 with "fixed"):
 *        per-sample damping that starts at `damping` and adapts (below),
 *   refine (default 1 with float32 and stop "residual"): float32 samples
 *        that stop without converging within REFINE_NEAR times the
 *        tolerance go on in float64 (inv_refine),
 *   direct_samples (float32 only): once at most this many samples are still
 *        iterating, evaluate f on the plugin's own convolution, which skips
 *        the converged samples, instead of the batch-sized kernels (default
 *        N/2, where it is already faster; 0: never, N: always).
 * diag[n] = (iterations used, final max |z - f(x)|, converged 0/1). Each
 * sample stops on its own; a sample whose residual turns NaN or infinite
 * stops at once as not converged. Any non-converged sample is reported as a
 * warning on the context naming the node and the count; the op still
 * returns MG_OK with x, so the caller can inspect diag. Not differentiable.
 * z may be f32 or f64; x has z's dtype. */
#include "mintnet.h"

#include <inttypes.h>
#include <math.h>
#include <string.h>

/* The attributes, read once in prepare. */
typedef struct inv_cfg {
    double beta, tol;
    int64_t maxit, direct;
    int f64, fixed, adaptive, refine;
} inv_cfg;

/* Adaptive damping (the default with stop = "residual"), per sample:
 * beta starts at `damping`. Steps are judged by the sum of squared residuals
 * q = |z - f(x)|^2: the max-norm residual can stay flat for tens of
 * iterations while the converged part of the image grows pixel by pixel
 * (the Jacobian is triangular), q does not. A step with q above ADAPT_GROWTH
 * times the best q so far, or non-finite, is taken back and retried from the
 * last accepted point with beta doubled (a sample whose beta would pass
 * ADAPT_BETA_MAX this way diverges and stops). An accepted step that lowers
 * the best q by the factor ADAPT_PROGRESS halves beta (not below
 * ADAPT_BETA_MIN); every ADAPT_STALL accepted steps without such progress (a
 * cycle or a plateau) double it, up to ADAPT_STALL_CAP: larger betas only
 * shrink the steps, and an earlier version without the cap drove slowly
 * converging samples into ever smaller steps. A sample that needs more than
 * ADAPT_GIVE_UP accepted steps without progress, or whose beta would pass
 * ADAPT_BETA_MAX, gives up adapting: if its squared residual already fell
 * by ADAPT_HEADWAY it has stalled (in float32 typically at the precision's
 * floor just above the tolerance) and stops, not converged, at its last
 * accepted point; otherwise it goes on from there with the fixed damping,
 * the published iteration, for the rest of the budget (on 32 reconstructed
 * test images of a trained small model this left 1 above the tolerance
 * after 200 evaluations, at 6e-5; starting over from z / tau instead left
 * 2, at 5.1; the fixed damping alone 13). Blocks with
 * strongly coupled weights need that: the fixed iteration's residual first
 * grows by orders of magnitude and only then converges, which no test on
 * the residual can tell from divergence (tests/test_mintnet_inverse.c
 * checks that the adaptive iteration converges wherever the fixed one does,
 * with at most 100 evaluations more). Measured on small models trained 2000
 * steps (docs/mintnet.md): every sample converges in float64 within 90
 * evaluations per block; in float32 all but one sample of one model, which
 * stalls at a residual of 4.3e-5. */
#define ADAPT_GROWTH 4.0
#define ADAPT_PROGRESS 0.9
#define ADAPT_STALL 4
#define ADAPT_STALL_CAP 8.0
#define ADAPT_GIVE_UP 32
#define ADAPT_HEADWAY 1e-6
/* refine: float32 samples stopped within this factor of the tolerance */
#define REFINE_NEAR 1e3
#define ADAPT_BETA_MIN 1.0
#define ADAPT_BETA_MAX 4096.0

/* Per-sample state of adaptive damping. */
typedef struct inv_adapt {
    void *xprev, *step; /* the last accepted x and its step (z - f(x)) / D(x) */
    int *acc;           /* samples whose step was accepted this round */
    int *since;         /* accepted steps since the last new best q */
    unsigned char *fixed; /* 1: the sample fell back to the fixed damping */
    double *q, *beta;   /* sum of squared residuals; damping */
    double *qbest, *q0, *racc; /* best q, q at z / tau; max residual at the last accepted point */
} inv_adapt;

typedef struct inv_state {
    mn_dims d;
    mn_mask mask;
    inv_cfg cfg;
    mn_wts w;
    mn_eval32 ev;      /* precision float32 */
    mn_eval64 ev64;    /* precision float64 */
    void *z, *x, *y, *D; /* [N, C, HW] in the working precision */
    int *act;            /* active samples */
    double *res, *part;  /* per-sample max |z - f(x)|, scratch */
    inv_adapt ad;        /* adaptive damping */
    struct inv_state *fine; /* refine: the float64 iteration for stalled samples, made on first need */
    double *fine_diag;
} inv_state;

/* ---- attributes ---------------------------------------------------------------------- */

static mg_status inv_read_cfg(mg_node *nd, inv_cfg *c)
{
    const mg_attrs *a = mg_node_attrs(nd);
    const char *prec = mg_attrs_str(a, "precision", "float32"), *stop = mg_attrs_str(a, "stop", "residual");
    c->beta = mg_attrs_float(a, "damping", 3.5);
    c->tol = mg_attrs_float(a, "tolerance", 1e-5);
    c->maxit = mg_attrs_int(a, "max_iterations", 200);
    c->direct = mg_attrs_int(a, "direct_samples", mg_node_input(nd, MN_IN_X)->shape[0] / 2);
    c->f64 = strcmp(prec, "float64") == 0;
    c->fixed = strcmp(stop, "fixed") == 0;
    c->adaptive = (int)mg_attrs_int(a, "adaptive", !c->fixed);
    c->refine = (int)mg_attrs_int(a, "refine", !c->f64 && !c->fixed);
    if (c->adaptive && c->fixed)
        return mg_node_fail(nd, MG_ERR_ATTR, "attribute adaptive = true needs stop = \"residual\" "
                            "(stop = \"fixed\" runs the published iteration with the fixed damping)");
    if (c->refine && (c->f64 || c->fixed))
        return mg_node_fail(nd, MG_ERR_ATTR, "attribute refine = true needs precision = \"float32\" and "
                            "stop = \"residual\" (it finishes float32 samples that stall in float64)");
    if (!c->f64 && strcmp(prec, "float32") != 0)
        return mg_node_fail(nd, MG_ERR_ATTR, "attribute precision = \"%s\"; use \"float32\" or \"float64\"", prec);
    if (!c->fixed && strcmp(stop, "residual") != 0)
        return mg_node_fail(nd, MG_ERR_ATTR, "attribute stop = \"%s\"; use \"residual\" or \"fixed\"", stop);
    if (!(c->beta > 0) || !isfinite(c->beta))
        return mg_node_fail(nd, MG_ERR_ATTR, "attribute damping = %g must be a finite number > 0", c->beta);
    if (!(c->tol >= 0) || !isfinite(c->tol))
        return mg_node_fail(nd, MG_ERR_ATTR, "attribute tolerance = %g must be finite and >= 0", c->tol);
    if (c->direct < 0)
        return mg_node_fail(nd, MG_ERR_ATTR, "attribute direct_samples = %" PRId64 " must be >= 0", c->direct);
    if (c->maxit < 0 || c->maxit > 1000000000)
        return mg_node_fail(nd, MG_ERR_ATTR, "attribute max_iterations = %" PRId64 " must be in 0..1e9", c->maxit);
    return MG_OK;
}

static mg_status inv_infer(mg_node *nd)
{
    mn_dims d;
    mn_mask mask;
    inv_cfg cfg;
    mg_status s = mn_block_check(nd, &d, &mask);
    if (s == MG_OK) s = inv_read_cfg(nd, &cfg);
    if (s != MG_OK) return s;
    const mg_tensor *z = mg_node_input(nd, MN_IN_X);
    const int64_t dshape[2] = {d.n, 3};
    s = mg_node_set_output(nd, 0, z->dtype, 4, z->shape);
    if (s == MG_OK) s = mg_node_set_output(nd, 1, MG_F64, 2, dshape);
    return s;
}

/* ---- state ------------------------------------------------------------------------------ */

static void inv_free(inv_state *st)
{
    if (!st) return;
    inv_free(st->fine);
    mg_free(st->fine_diag);
    mn_wts_free(&st->w);
    mn_eval32_free(&st->ev);
    mn_eval64_free(&st->ev64);
    mg_free_aligned(st->z);
    mg_free_aligned(st->x);
    mg_free_aligned(st->y);
    mg_free_aligned(st->D);
    mg_free_aligned(st->ad.xprev);
    mg_free_aligned(st->ad.step);
    mg_free(st->ad.acc);
    mg_free(st->ad.fixed);
    mg_free(st->ad.q0);
    mg_free(st->ad.since);
    mg_free(st->ad.q);
    mg_free(st->ad.beta);
    mg_free(st->ad.qbest);
    mg_free(st->ad.racc);
    mg_free(st->act);
    mg_free(st->res);
    mg_free(st->part);
    mg_free(st);
}

static void inv_release(mg_node *nd)
{
    inv_free(mg_node_state(nd));
    mg_node_set_state(nd, NULL);
}

/* Allocates st's buffers; MG_ERR_NOMEM (or a kernel's error) without
 * failing the node (inv_alloc does that for prepare). */
static mg_status inv_alloc_buffers(mg_node *nd, inv_state *st)
{
    const mn_dims *d = &st->d;
    const unsigned fwd_only[3] = {0, 0, 0};
    size_t bytes = (size_t)(d->n * d->c * d->hw) * (st->cfg.f64 ? sizeof(double) : sizeof(float));
    mg_status s = mn_wts_init(&st->w, d, st->mask);
    if (s == MG_OK && st->cfg.f64) s = mn_eval64_init(&st->ev64, d);
    if (s == MG_OK && !st->cfg.f64) s = mn_eval32_init(&st->ev, mg_node_ctx(nd), &st->w, fwd_only);
    if (s == MG_OK && !st->cfg.f64 && st->cfg.direct > 0) s = mn_eval32_direct_init(&st->ev);
    if (s != MG_OK && s != MG_ERR_NOMEM) return s;
    st->z = mg_malloc_aligned(bytes);
    st->x = mg_malloc_aligned(bytes);
    st->y = mg_malloc_aligned(bytes);
    st->D = mg_malloc_aligned(bytes);
    st->act = mg_malloc((size_t)d->n * sizeof(int));
    st->res = mg_malloc((size_t)d->n * sizeof(double));
    st->part = mg_malloc((size_t)(2 * d->n * d->c) * sizeof(double));
    int ok = st->z && st->x && st->y && st->D && st->act && st->res && st->part;
    if (st->cfg.adaptive) {
        inv_adapt *ad = &st->ad;
        const size_t nb = (size_t)d->n * sizeof(double);
        ad->xprev = mg_malloc_aligned(bytes);
        ad->step = mg_malloc_aligned(bytes);
        ad->acc = mg_malloc((size_t)d->n * sizeof(int));
        ad->fixed = mg_calloc((size_t)d->n, 1);
        ad->q0 = mg_malloc(nb);
        ad->since = mg_malloc((size_t)d->n * sizeof(int));
        ad->q = mg_malloc(nb);
        ad->beta = mg_malloc(nb);
        ad->qbest = mg_malloc(nb);
        ad->racc = mg_malloc(nb);
        ok = ok && ad->xprev && ad->step && ad->acc && ad->fixed && ad->q0 && ad->since && ad->q &&
             ad->beta && ad->qbest && ad->racc;
    }
    return s != MG_OK ? s : ok ? MG_OK : MG_ERR_NOMEM;
}

static mg_status inv_alloc(mg_node *nd, inv_state *st)
{
    mg_status s = inv_alloc_buffers(nd, st);
    if (s == MG_ERR_NOMEM) return mg_node_fail(nd, s, "out of memory for the inverse's buffers");
    return s;
}

static mg_status inv_prepare(mg_node *nd)
{
    inv_state *st = mg_calloc(1, sizeof *st);
    if (!st) return mg_node_fail(nd, MG_ERR_NOMEM, "out of memory");
    mg_node_set_state(nd, st);
    mg_status s = mn_block_check(nd, &st->d, &st->mask);
    if (s == MG_OK) s = inv_read_cfg(nd, &st->cfg);
    if (s == MG_OK) s = inv_alloc(nd, st);
    if (s != MG_OK) inv_release(nd);
    return s;
}

/* ---- the iteration ------------------------------------------------------------------------ */

static const float *in_f32(mg_node *nd, int i) { return mg_f32(mg_node_input(nd, i)); }

/* y = f(x), D = D(x) for the active samples, in the working precision. */
static mg_status inv_eval(mg_node *nd, inv_state *st, int nact)
{
    const float *b1 = in_f32(nd, MN_IN_B1), *b2 = in_f32(nd, MN_IN_B2), *b3 = in_f32(nd, MN_IN_B3);
    if (st->cfg.f64) {
        mn_eval64_run(&st->ev64, &st->w, b1, b2, b3, st->x, st->y, st->D, NULL, st->act, nact);
        return MG_OK;
    }
    if (nact <= st->cfg.direct) {
        mn_eval32_run_direct(&st->ev, &st->w, b1, b2, b3, st->x, st->y, st->D, NULL, st->act, nact);
        return MG_OK;
    }
    return mn_eval32_run(&st->ev, &st->w, b1, b2, b3, st->x, st->y, st->D, NULL, st->act, nact);
}

static void inv_resid(inv_state *st, int nact)
{
    if (st->cfg.f64)
        mn_inv_resid_f64(&st->d, st->z, st->y, st->part, st->res, st->ad.q, st->act, nact);
    else
        mn_inv_resid_f32(&st->d, st->z, st->y, st->part, st->res, st->ad.q, st->act, nact);
}

static void inv_step(inv_state *st, int nact)
{
    if (st->cfg.f64)
        mn_inv_step_f64(&st->d, st->z, st->y, st->D, st->cfg.beta, st->x, st->act, nact);
    else
        mn_inv_step_f32(&st->d, st->z, st->y, st->D, (float)st->cfg.beta, st->x, st->act, nact);
}

/* Retires the samples that stop after evaluation k (writing their diag) and
 * compacts the active list; returns how many remain. */
static int inv_retire(inv_state *st, int64_t k, int nact, double *diag)
{
    int keep = 0;
    for (int j = 0; j < nact; j++) {
        int n = st->act[j];
        double r = st->res[n];
        int ok = r <= st->cfg.tol, bad = !isfinite(r);
        if (bad || k == st->cfg.maxit || (!st->cfg.fixed && ok)) {
            diag[n * 3 + 0] = (double)k;
            diag[n * 3 + 1] = r;
            diag[n * 3 + 2] = ok && !bad;
        } else {
            st->act[keep++] = n;
        }
    }
    return keep;
}

/* Sample n's slice of a working-precision buffer. */
static void *inv_slice(const inv_state *st, void *buf, int64_t n)
{
    const int64_t per = st->d.c * st->d.hw;
    return (char *)buf + (size_t)(n * per) * (st->cfg.f64 ? sizeof(double) : sizeof(float));
}

/* Stops sample n after evaluation k with max residual r. A sample that
 * ends without converging on a step that was not accepted goes back to its
 * last accepted point. */
static void adapt_stop(inv_state *st, int64_t n, int64_t k, double r, int ok, int accepted, double *diag)
{
    if (!ok && !accepted) {
        memcpy(inv_slice(st, st->x, n), inv_slice(st, st->ad.xprev, n),
               (size_t)(st->d.c * st->d.hw) * (st->cfg.f64 ? sizeof(double) : sizeof(float)));
        r = st->ad.racc[n];
    }
    diag[n * 3 + 0] = (double)k;
    diag[n * 3 + 1] = r;
    diag[n * 3 + 2] = ok;
}

/* Gives up adapting for sample n after evaluation k: if it already cut its
 * squared residual by ADAPT_HEADWAY it has stalled (typically at the
 * precision's floor) and stops, not converged; otherwise it goes on with
 * the fixed damping, the published iteration, from its last accepted point
 * for the rest of the iteration budget (the evaluation just made becomes
 * that point when it was accepted). Returns 1 when it goes on. */
static int adapt_give_up(inv_state *st, int64_t n, int64_t k, double r, int accepted, double *diag, int *nacc)
{
    inv_adapt *ad = &st->ad;
    if (ad->qbest[n] <= ADAPT_HEADWAY * ad->q0[n]) {
        adapt_stop(st, n, k, r, 0, accepted, diag);
        return 0;
    }
    ad->fixed[n] = 1;
    ad->beta[n] = st->cfg.beta;
    if (accepted) {
        ad->racc[n] = r;
        ad->acc[(*nacc)++] = (int)n;
    }
    return 1;
}

/* Judges evaluation k of an active sample n of the adaptive iteration:
 * returns 1 to go on (beta updated; n joins acc when its step was
 * accepted), 0 when it stopped. */
static int adapt_judge(inv_state *st, int64_t n, int64_t k, double *diag, int *nacc)
{
    inv_adapt *ad = &st->ad;
    const double r = st->res[n], q = ad->q[n];
    if (r <= st->cfg.tol) {
        adapt_stop(st, n, k, r, 1, 1, diag);
        return 0;
    }
    if (k == st->cfg.maxit || (!isfinite(q) && (k == 0 || ad->fixed[n]))) {
        adapt_stop(st, n, k, r, 0, k == 0 || ad->fixed[n] || q <= ADAPT_GROWTH * ad->qbest[n], diag);
        return 0;
    }
    if (ad->fixed[n]) { /* the published iteration: every step taken, beta fixed */
        ad->racc[n] = r;
        ad->acc[(*nacc)++] = (int)n;
        return 1;
    }
    if (k == 0) { /* the starting point z / tau */
        ad->beta[n] = st->cfg.beta;
        ad->qbest[n] = ad->q0[n] = q;
        ad->since[n] = 0;
    } else if (!(q <= ADAPT_GROWTH * ad->qbest[n])) { /* worse, or not finite: take it back */
        if (ad->beta[n] * 2 > ADAPT_BETA_MAX) return adapt_give_up(st, n, k, r, 0, diag, nacc);
        ad->beta[n] *= 2;
        return 1;
    } else if (q < ADAPT_PROGRESS * ad->qbest[n]) { /* a new best */
        ad->qbest[n] = q;
        ad->since[n] = 0;
        ad->beta[n] = ad->beta[n] / 2 > ADAPT_BETA_MIN ? ad->beta[n] / 2 : ADAPT_BETA_MIN;
    } else if (++ad->since[n] % ADAPT_STALL == 0 && ad->beta[n] * 2 <= ADAPT_STALL_CAP) { /* a cycle or plateau */
        ad->beta[n] *= 2;
    }
    if (ad->since[n] >= ADAPT_GIVE_UP) return adapt_give_up(st, n, k, r, 1, diag, nacc);
    ad->racc[n] = r;
    ad->acc[(*nacc)++] = (int)n;
    return 1;
}

/* After evaluation k: judges every active sample, takes the accepted ones
 * as the new base points, then x = xprev + step / beta. Returns the number
 * of samples left. */
static int adapt_round(inv_state *st, int64_t k, int nact, double *diag)
{
    inv_adapt *ad = &st->ad;
    int keep = 0, nacc = 0;
    for (int j = 0; j < nact; j++)
        if (adapt_judge(st, st->act[j], k, diag, &nacc)) st->act[keep++] = st->act[j];
    if (st->cfg.f64) {
        mn_inv_accept_f64(&st->d, st->z, st->y, st->D, ad->step, ad->xprev, st->x, ad->acc, nacc);
        mn_inv_trial_f64(&st->d, ad->step, ad->xprev, ad->beta, st->x, st->act, keep);
    } else {
        mn_inv_accept_f32(&st->d, st->z, st->y, st->D, ad->step, ad->xprev, st->x, ad->acc, nacc);
        mn_inv_trial_f32(&st->d, ad->step, ad->xprev, ad->beta, st->x, st->act, keep);
    }
    return keep;
}

/* Iterates the nact samples listed in st->act from st->x. */
static mg_status inv_iterate(mg_node *nd, inv_state *st, double *diag, int nact)
{
    if (st->cfg.adaptive) memset(st->ad.fixed, 0, (size_t)st->d.n); /* every run starts adaptive */
    for (int64_t k = 0; nact > 0; k++) {
        mg_status s = inv_eval(nd, st, nact);
        if (s != MG_OK) return s;
        inv_resid(st, nact);
        if (st->cfg.adaptive) {
            nact = adapt_round(st, k, nact, diag);
            continue;
        }
        nact = inv_retire(st, k, nact, diag);
        if (nact) inv_step(st, nact);
    }
    return MG_OK;
}

/* The float64 state for refine, made on first need (NULL if memory is
 * short: the samples then stay as float32 left them, reported). */
static inv_state *fine_state(mg_node *nd, inv_state *st)
{
    if (st->fine) return st->fine;
    inv_state *f = mg_calloc(1, sizeof *f);
    double *fd = mg_malloc((size_t)(3 * st->d.n) * sizeof(double));
    if (f) {
        f->d = st->d;
        f->mask = st->mask;
        f->cfg = st->cfg;
        f->cfg.f64 = 1;
        f->cfg.refine = 0;
    }
    if (!f || !fd || inv_alloc_buffers(nd, f) != MG_OK) {
        inv_free(f);
        mg_free(fd);
        mg_ctx_log(mg_node_ctx(nd), MG_LOG_DEBUG, "node '%s': no memory to refine stalled samples in float64",
                   mg_node_name(nd));
        return NULL;
    }
    st->fine = f;
    st->fine_diag = fd;
    return f;
}

/* refine: float32 samples that stopped without converging but close to the
 * tolerance (within REFINE_NEAR times it: the float32 floor, spec section
 * 4) go on in float64 from where they stopped; their diag adds the float64
 * evaluations and reports the float64 residual. */
/* 1 for a float32 sample that stopped unconverged near the tolerance (its
 * diag still the float32 one). */
static int refinable(const inv_state *st, const double *diag, int64_t n)
{
    return !diag[n * 3 + 2] && diag[n * 3 + 1] <= REFINE_NEAR * st->cfg.tol;
}

static mg_status inv_refine(mg_node *nd, inv_state *st, double *diag)
{
    const mn_dims *d = &st->d;
    int nr = 0;
    for (int64_t n = 0; n < d->n; n++) nr += refinable(st, diag, n);
    if (!nr) return MG_OK;
    inv_state *f = fine_state(nd, st);
    if (!f) return MG_OK;
    mn_wts_update(&f->w, in_f32(nd, MN_IN_W1), in_f32(nd, MN_IN_W2), in_f32(nd, MN_IN_W3));
    mn_eval64_set_t(&f->ev64, in_f32(nd, MN_IN_T));
    const int64_t per = d->c * d->hw;
    const float *z32 = st->z, *x32 = st->x;
    double *z64 = f->z, *x64 = f->x;
    nr = 0;
    for (int64_t n = 0; n < d->n; n++) {
        if (!refinable(st, diag, n)) continue;
        f->act[nr++] = (int)n;
        for (int64_t i = n * per; i < (n + 1) * per; i++) z64[i] = z32[i], x64[i] = x32[i];
    }
    mg_status s = inv_iterate(nd, f, st->fine_diag, nr);
    if (s != MG_OK) return s;
    float *x = st->x;
    for (int64_t n = 0; n < d->n; n++) {
        if (!refinable(st, diag, n)) continue;
        for (int64_t i = n * per; i < (n + 1) * per; i++) x[i] = (float)x64[i];
        diag[n * 3 + 0] += st->fine_diag[n * 3 + 0];
        diag[n * 3 + 1] = st->fine_diag[n * 3 + 1];
        diag[n * 3 + 2] = st->fine_diag[n * 3 + 2];
    }
    return MG_OK;
}

/* Logs non-convergence as a warning (and a debug summary otherwise). */
static void inv_report(mg_node *nd, const inv_state *st, const double *diag)
{
    int64_t bad = 0, worst = 0, most = 0;
    for (int64_t n = 0; n < st->d.n; n++) {
        if (!diag[n * 3 + 2]) {
            if (!bad || !(diag[n * 3 + 1] <= diag[worst * 3 + 1])) worst = n;
            bad++;
        }
        if (diag[n * 3] > diag[most * 3]) most = n;
    }
    mg_ctx *ctx = mg_node_ctx(nd);
    if (bad)
        mg_ctx_log(ctx, MG_LOG_WARN,
                   "node '%s' (mintnet.block_inverse): %" PRId64 " of %" PRId64 " samples did not converge "
                   "(max |z - f(x)| > tolerance %g after at most %" PRId64 " iterations, damping %g (%s), %s); worst: "
                   "sample %" PRId64 " with residual %g; see the diag output",
                   mg_node_name(nd), bad, st->d.n, st->cfg.tol, st->cfg.maxit, st->cfg.beta,
                   st->cfg.adaptive ? "adaptive" : "fixed", st->cfg.f64 ? "float64" : "float32", worst,
                   diag[worst * 3 + 1]);
    else
        mg_ctx_log(ctx, MG_LOG_DEBUG, "node '%s': all %" PRId64 " samples converged, at most %g iterations",
                   mg_node_name(nd), st->d.n, diag[most * 3]);
}

static mg_status inv_forward(mg_node *nd)
{
    inv_state *st = mg_node_state(nd);
    if (!st) return mg_node_fail(nd, MG_ERR_STATE, "forward before prepare");
    const mn_dims *d = &st->d;
    const int64_t cnt = d->n * d->c * d->hw;
    mg_tensor *xo = mg_node_output(nd, 0);
    mg_tensor zw, xw;
    mg_tensor_init(&zw, st->cfg.f64 ? MG_F64 : MG_F32, 1, &cnt, st->z);
    mg_tensor_init(&xw, st->cfg.f64 ? MG_F64 : MG_F32, 1, &cnt, st->x);
    mg_status s = mg_tensor_copy(&zw, mg_node_input(nd, MN_IN_X));
    if (s != MG_OK) return mg_node_fail(nd, s, "cannot convert z to the working precision");
    mn_wts_update(&st->w, in_f32(nd, MN_IN_W1), in_f32(nd, MN_IN_W2), in_f32(nd, MN_IN_W3));
    if (st->cfg.f64) {
        mn_eval64_set_t(&st->ev64, in_f32(nd, MN_IN_T));
        mn_inv_start_f64(d, st->z, st->ev64.tau, st->x);
    } else {
        mn_eval32_set_t(&st->ev, in_f32(nd, MN_IN_T));
        mn_inv_start_f32(d, st->z, st->ev.tau, st->x);
    }
    double *diag = mg_f64(mg_node_output(nd, 1));
    for (int n = 0; n < (int)d->n; n++) st->act[n] = n;
    s = inv_iterate(nd, st, diag, (int)d->n);
    if (s == MG_OK && st->cfg.refine) s = inv_refine(nd, st, diag);
    if (s != MG_OK) return s;
    inv_report(nd, st, diag);
    return mg_tensor_copy(xo, &xw);
}

static const char *const inv_attrs[] = {"mask", "latent", "damping", "tolerance", "max_iterations",
                                        "precision", "stop", "direct_samples", "adaptive", "refine", NULL};

const mg_op_def mn_block_inverse_def = {
    .struct_size = sizeof(mg_op_def),
    .abi_version = MG_ABI_VERSION,
    .name = "mintnet.block_inverse",
    .summary = "inverse of a MintNet block by damped fixed-point iteration; outputs x and diag[N,3]",
    .min_inputs = MN_NUM_IN,
    .max_inputs = MN_NUM_IN,
    .num_outputs = 2,
    .attr_names = inv_attrs,
    .infer = inv_infer,
    .prepare = inv_prepare,
    .forward = inv_forward,
    .backward = NULL,
    .release = inv_release,
};
