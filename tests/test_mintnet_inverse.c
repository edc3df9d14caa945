/* tests/test_mintnet_inverse.c: mintnet.block_inverse. Round trips
 * f^-1(f(x)) to 1e-4 in float32 and 1e-9 in float64 on well-conditioned
 * blocks; per-sample stopping and diagnostics; the published fixed-iteration
 * mode; a fixed damping that cannot converge is reported (diag and a warning
 * naming the node); adaptive damping (the default) recovers from that
 * damping, needs fewer evaluations than the fixed one, and stops a sample
 * that cannot reach the tolerance early at its best point; NaN input is
 * flagged, not looped on; and a whole small flow (A, B, squeeze, A, B)
 * built by the layer builders inverts. */
#include "test_mintnet_ref.h"

/* ---- log capture ------------------------------------------------------------------------- */

typedef struct logcap {
    int warnings;
    char last[1024];
} logcap;

static void capture(void *user, mg_log_level level, const char *msg)
{
    logcap *c = user;
    if (level != MG_LOG_WARN) return;
    c->warnings++;
    snprintf(c->last, sizeof c->last, "%s", msg);
}

/* ---- helpers ------------------------------------------------------------------------------ */

typedef struct inv_opts {
    double damping, tolerance;
    int64_t max_iterations;
    const char *precision, *stop;
    int adaptive; /* 0: the op's default; 1: true; -1: false */
    int refine;   /* likewise */
} inv_opts;

static mg_attrs *inv_attrs(char mask, const inv_opts *o)
{
    mg_attrs *a = tb_attrs(mask);
    if (o->damping > 0) mg_attrs_set_float(a, "damping", o->damping);
    if (o->tolerance > 0) mg_attrs_set_float(a, "tolerance", o->tolerance);
    if (o->max_iterations >= 0) mg_attrs_set_int(a, "max_iterations", o->max_iterations);
    if (o->precision) mg_attrs_set_str(a, "precision", o->precision);
    if (o->stop) mg_attrs_set_str(a, "stop", o->stop);
    if (o->adaptive) mg_attrs_set_int(a, "adaptive", o->adaptive > 0);
    if (o->refine) mg_attrs_set_int(a, "refine", o->refine > 0);
    return a;
}

/* z = f(x) of b (x's dtype), then x' = f^-1(z); returns max |x' - x| and the diag. */
static double round_trip(mg_ctx *ctx, tblock *b, const inv_opts *o, mg_tensor **diag)
{
    mg_attrs *fa = tb_attrs(b->mask), *ia = inv_attrs(b->mask, o);
    mg_tensor *z, *ld, *in[8], *xr;
    tb_run(ctx, "mintnet.block", b->in, fa, &z, &ld);
    memcpy(in, b->in, sizeof in);
    in[0] = z;
    tb_run(ctx, "mintnet.block_inverse", in, ia, &xr, diag);
    double err = tu_max_abs_diff(xr, b->in[0]);
    cr_assert_eq(xr->dtype, b->in[0]->dtype);
    mg_tensor_free(z);
    mg_tensor_free(ld);
    mg_tensor_free(xr);
    mg_attrs_free(fa);
    mg_attrs_free(ia);
    return err;
}

static const inv_opts defaults32 = {.max_iterations = -1};
static const inv_opts defaults64 = {.max_iterations = -1, .precision = "float64", .tolerance = 1e-12};

typedef struct geo {
    int64_t n, c, l, h, w;
} geo;

static const geo geos[] = {{4, 1, 4, 6, 6}, {3, 2, 3, 5, 4}, {2, 4, 1, 3, 3}, {2, 3, 2, 7, 5},
                           {2, 2, 9, 5, 6} /* L*C = 18: W2 on blocked activations */};

static void check_converged(const mg_tensor *diag, int64_t n, double tol, const char *what)
{
    for (int64_t i = 0; i < n; i++) {
        cr_expect_eq(mg_tensor_get(diag, i * 3 + 2), 1.0, "%s: sample %lld not converged", what, (long long)i);
        cr_expect_leq(mg_tensor_get(diag, i * 3 + 1), tol, "%s: residual %g", what, mg_tensor_get(diag, i * 3 + 1));
        cr_expect_lt(mg_tensor_get(diag, i * 3), 200, "%s: %g iterations", what, mg_tensor_get(diag, i * 3));
    }
}

Test(mintnet_inverse, round_trip_float32)
{
    mg_ctx *ctx = mn_ctx();
    for (size_t i = 0; i < sizeof geos / sizeof geos[0]; i++)
        for (int m = 0; m < 2; m++) {
            tblock b;
            tb_make(&b, geos[i].n, geos[i].c, geos[i].l, geos[i].h, geos[i].w, m ? 'B' : 'A', 0.15, 700 + 10 * i + m,
                    MG_F32);
            mg_tensor *diag;
            double err = round_trip(ctx, &b, &defaults32, &diag);
            cr_expect_leq(err, 1e-4, "geo %zu mask %c: float32 round trip error %g", i, b.mask, err);
            check_converged(diag, b.N, 1e-5, "float32");
            mg_tensor_free(diag);
            tb_free(&b);
        }
    mg_ctx_free(ctx);
}

Test(mintnet_inverse, round_trip_float64)
{
    mg_ctx *ctx = mn_ctx();
    for (size_t i = 0; i < sizeof geos / sizeof geos[0]; i++)
        for (int m = 0; m < 2; m++) {
            tblock b;
            tb_make(&b, geos[i].n, geos[i].c, geos[i].l, geos[i].h, geos[i].w, m ? 'B' : 'A', 0.15, 800 + 10 * i + m,
                    MG_F64);
            mg_tensor *diag;
            double err = round_trip(ctx, &b, &defaults64, &diag);
            cr_expect_leq(err, 1e-9, "geo %zu mask %c: float64 round trip error %g", i, b.mask, err);
            check_converged(diag, b.N, 1e-12, "float64");
            mg_tensor_free(diag);
            tb_free(&b);
        }
    mg_ctx_free(ctx);
}

/* The float32 iteration on the plugin's own convolution (used once few
 * samples remain) agrees with the one on the batch kernels. */
Test(mintnet_inverse, float32_direct_path)
{
    mg_ctx *ctx = mn_ctx();
    for (int m = 0; m < 2; m++) {
        tblock b;
        tb_make(&b, 3, 2, 3, 5, 4, m ? 'B' : 'A', 0.15, 980 + m, MG_F32);
        mg_attrs *fa = tb_attrs(b.mask);
        mg_tensor *z, *ld, *in[8], *x0, *x1, *d0, *d1;
        tb_run(ctx, "mintnet.block", b.in, fa, &z, &ld);
        memcpy(in, b.in, sizeof in);
        in[0] = z;
        mg_attrs *never = inv_attrs(b.mask, &defaults32), *always = inv_attrs(b.mask, &defaults32);
        mg_attrs_set_int(never, "direct_samples", 0);
        mg_attrs_set_int(always, "direct_samples", 3);
        tb_run(ctx, "mintnet.block_inverse", in, never, &x0, &d0);
        tb_run(ctx, "mintnet.block_inverse", in, always, &x1, &d1);
        cr_expect_leq(tu_max_abs_diff(x0, b.in[0]), 1e-4);
        cr_expect_leq(tu_max_abs_diff(x1, b.in[0]), 1e-4, "direct path error %g", tu_max_abs_diff(x1, b.in[0]));
        cr_expect_leq(tu_max_abs_diff(x0, x1), 1e-5);
        check_converged(d1, 3, 1e-5, "direct");
        cr_expect_leq(fabs(mg_tensor_get(d0, 0) - mg_tensor_get(d1, 0)), 1.0, "iterations %g vs %g",
                      mg_tensor_get(d0, 0), mg_tensor_get(d1, 0));
        mg_tensor_free(z);
        mg_tensor_free(ld);
        mg_tensor_free(x0);
        mg_tensor_free(x1);
        mg_tensor_free(d0);
        mg_tensor_free(d1);
        mg_attrs_free(fa);
        mg_attrs_free(never);
        mg_attrs_free(always);
        tb_free(&b);
    }
    mg_ctx_free(ctx);
}

/* Float64 arithmetic on f32 data: the iteration reaches f32 resolution. */
Test(mintnet_inverse, float64_precision_on_f32_tensors)
{
    mg_ctx *ctx = mn_ctx();
    tblock b;
    tb_make(&b, 3, 2, 3, 5, 5, 'B', 0.15, 900, MG_F32);
    inv_opts o = {.max_iterations = -1, .precision = "float64", .tolerance = 1e-9};
    mg_tensor *diag;
    double err = round_trip(ctx, &b, &o, &diag);
    cr_expect_leq(err, 2e-6, "float64 iteration on f32 tensors: error %g", err);
    check_converged(diag, b.N, 1e-9, "float64 on f32");
    mg_tensor_free(diag);
    tb_free(&b);
    mg_ctx_free(ctx);
}

/* Each sample stops on its own: with zero biases f(0) = 0, so a zero
 * sample is solved by the starting point, while the others iterate. */
static void per_sample_stopping(mg_dtype dt)
{
    mg_ctx *ctx = mn_ctx();
    tblock b;
    tb_make(&b, 4, 2, 2, 4, 4, 'A', 0.3, 910, dt);
    for (int64_t k = 0; k < 32; k++) mg_tensor_set(b.in[0], k, 0);
    for (int i = MN_IN_B1; i <= MN_IN_B3; i += 2) mg_tensor_fill(b.in[i], 0);
    mg_tensor *diag;
    double err = round_trip(ctx, &b, dt == MG_F64 ? &defaults64 : &defaults32, &diag);
    cr_expect_leq(err, dt == MG_F64 ? 1e-9 : 1e-4);
    check_converged(diag, 4, dt == MG_F64 ? 1e-12 : 1e-5, "per sample");
    cr_expect_eq(mg_tensor_get(diag, 0), 0.0, "zero sample: %g iterations", mg_tensor_get(diag, 0));
    for (int n = 1; n < 4; n++) cr_expect_gt(mg_tensor_get(diag, 3 * n), 2.0);
    mg_tensor_free(diag);
    tb_free(&b);
    mg_ctx_free(ctx);
}

Test(mintnet_inverse, per_sample_stopping_float64) { per_sample_stopping(MG_F64); }
Test(mintnet_inverse, per_sample_stopping_float32) { per_sample_stopping(MG_F32); }

/* The published behaviour: exactly max_iterations steps, no test. */
Test(mintnet_inverse, fixed_iterations)
{
    mg_ctx *ctx = mn_ctx();
    tblock b;
    tb_make(&b, 3, 1, 4, 5, 5, 'A', 0.15, 920, MG_F32);
    inv_opts o = {.max_iterations = 100, .stop = "fixed"};
    mg_tensor *diag;
    double err = round_trip(ctx, &b, &o, &diag);
    cr_expect_leq(err, 1e-4, "fixed mode: error %g", err);
    for (int64_t i = 0; i < 3; i++) {
        cr_expect_eq(mg_tensor_get(diag, i * 3), 100.0);
        cr_expect_eq(mg_tensor_get(diag, i * 3 + 2), 1.0);
    }
    mg_tensor_free(diag);
    tb_free(&b);
    mg_ctx_free(ctx);
}

/* beta = 0.4 gives |1 - 1/beta| = 1.5 > 1: the fixed-damping iteration
 * diverges. The diag says so for every sample, and a warning names the node
 * and the count. */
Test(mintnet_inverse, non_convergence_is_reported)
{
    mg_ctx *ctx = mn_ctx();
    logcap cap = {0};
    mg_ctx_set_log(ctx, capture, &cap);
    for (int p = 0; p < 2; p++) {
        tblock b;
        tb_make(&b, 3, 2, 2, 4, 4, 'B', 0.15, 930 + p, p ? MG_F64 : MG_F32);
        inv_opts o = {.damping = 0.4, .max_iterations = 60, .precision = p ? "float64" : "float32", .adaptive = -1};
        mg_tensor *diag;
        int before = cap.warnings;
        double err = round_trip(ctx, &b, &o, &diag);
        cr_expect(!(err <= 1e-3), "%s: beta 0.4 should not reconstruct (error %g)", o.precision, err);
        for (int64_t i = 0; i < 3; i++) {
            cr_expect_eq(mg_tensor_get(diag, i * 3 + 2), 0.0, "%s: sample %lld flagged converged", o.precision,
                         (long long)i);
            cr_expect(!(mg_tensor_get(diag, i * 3 + 1) <= 1e-5), "%s: residual %g", o.precision,
                      mg_tensor_get(diag, i * 3 + 1));
        }
        cr_expect_eq(cap.warnings, before + 1, "%s: expected one warning", o.precision);
        cr_expect(strstr(cap.last, "node 'node'") && strstr(cap.last, "3 of 3 samples did not converge"),
                  "warning was: %s", cap.last);
        mg_tensor_free(diag);
        tb_free(&b);
    }
    mg_ctx_free(ctx);
}

/* Adaptive damping starting from that divergent beta = 0.4: the growing
 * residual is taken back and beta raised, so every sample converges. */
Test(mintnet_inverse, adaptive_recovers_from_divergent_damping)
{
    mg_ctx *ctx = mn_ctx();
    for (int p = 0; p < 2; p++) {
        tblock b;
        tb_make(&b, 3, 2, 2, 4, 4, 'B', 0.15, 930 + p, p ? MG_F64 : MG_F32);
        inv_opts o = {.damping = 0.4, .max_iterations = 60, .precision = p ? "float64" : "float32", .adaptive = 1};
        mg_tensor *diag;
        double err = round_trip(ctx, &b, &o, &diag);
        cr_expect_leq(err, 1e-4, "%s: error %g", o.precision, err);
        check_converged(diag, 3, 1e-5, o.precision);
        mg_tensor_free(diag);
        tb_free(&b);
    }
    mg_ctx_free(ctx);
}

/* Sum of the samples' iteration counts. */
static double total_iterations(const mg_tensor *diag, int64_t n)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += mg_tensor_get(diag, i * 3);
    return s;
}

/* On the same blocks, adaptive damping (from beta = 3.5) reaches the
 * tolerance in fewer evaluations than the fixed beta = 3.5. */
Test(mintnet_inverse, adaptive_needs_fewer_evaluations)
{
    mg_ctx *ctx = mn_ctx();
    for (size_t g = 0; g < sizeof geos / sizeof geos[0]; g++) {
        tblock b;
        tb_make(&b, geos[g].n, geos[g].c, geos[g].l, geos[g].h, geos[g].w, g % 2 ? 'B' : 'A', 0.3, 970 + g, MG_F64);
        inv_opts fixed = {.max_iterations = -1, .precision = "float64", .tolerance = 1e-10, .adaptive = -1};
        inv_opts adapt = fixed;
        adapt.adaptive = 1;
        mg_tensor *d1, *d2;
        double e1 = round_trip(ctx, &b, &fixed, &d1), e2 = round_trip(ctx, &b, &adapt, &d2);
        check_converged(d1, b.N, 1e-10, "fixed");
        check_converged(d2, b.N, 1e-10, "adaptive");
        cr_expect_leq(e1, 1e-8);
        cr_expect_leq(e2, 1e-8);
        double n1 = total_iterations(d1, b.N), n2 = total_iterations(d2, b.N);
        cr_expect_lt(n2, 0.7 * n1, "geometry %zu: adaptive %g evaluations, fixed %g", g, n2, n1);
        mg_tensor_free(d1);
        mg_tensor_free(d2);
        tb_free(&b);
    }
    mg_ctx_free(ctx);
}

/* Harder blocks (larger weights, so strongly coupled, badly conditioned
 * Jacobians, where the fixed damping's residual first grows by orders of
 * magnitude before it converges): wherever the published fixed damping
 * converges (in double, within 3000 iterations), the adaptive iteration
 * converges too, with at most 100 evaluations more (it falls back to the
 * fixed damping when it makes no headway). */
Test(mintnet_inverse, adaptive_converges_where_fixed_does)
{
    mg_ctx *ctx = mn_ctx();
    int compared = 0;
    for (int seed = 0; seed < 12; seed++) {
        const geo *g = &geos[seed % (int)(sizeof geos / sizeof geos[0])];
        tblock b;
        tb_make(&b, g->n, g->c, g->l, g->h, g->w, seed % 2 ? 'B' : 'A', 1.5 + 0.25 * (seed % 4), 1200 + seed, MG_F64);
        inv_opts fixed = {.max_iterations = 3000, .precision = "float64", .tolerance = 1e-8, .adaptive = -1};
        inv_opts adapt = {.max_iterations = 3000, .precision = "float64", .tolerance = 1e-8, .adaptive = 1};
        mg_tensor *d1, *d2;
        round_trip(ctx, &b, &fixed, &d1);
        round_trip(ctx, &b, &adapt, &d2);
        for (int64_t i = 0; i < b.N; i++) {
            if (mg_tensor_get(d1, i * 3 + 2) != 1.0) continue; /* the fixed damping fails here too */
            compared++;
            cr_expect_eq(mg_tensor_get(d2, i * 3 + 2), 1.0,
                         "seed %d sample %lld: fixed beta converged in %g iterations, adaptive did not (residual %g "
                         "after %g)", seed, (long long)i, mg_tensor_get(d1, i * 3), mg_tensor_get(d2, i * 3 + 1),
                         mg_tensor_get(d2, i * 3));
            cr_expect_leq(mg_tensor_get(d2, i * 3), mg_tensor_get(d1, i * 3) + 100, "seed %d sample %lld: %g against %g",
                          seed, (long long)i, mg_tensor_get(d2, i * 3), mg_tensor_get(d1, i * 3));
        }
        mg_tensor_free(d1);
        mg_tensor_free(d2);
        tb_free(&b);
    }
    cr_expect_gt(compared, 10, "only %d samples compared", compared);
    mg_ctx_free(ctx);
}

/* The same compiled inverse run twice gives the same result: per-sample
 * adaptive state (beta, a fallback to the fixed damping) does not leak from
 * one run into the next (it did: a sample that fell back once stayed on the
 * fixed damping in every later batch). Blocks as above, where some samples
 * fall back. */
Test(mintnet_inverse, adaptive_runs_do_not_leak_state)
{
    mg_ctx *ctx = mn_ctx();
    for (int seed = 1; seed < 6; seed += 2) {
        const geo *g = &geos[seed % (int)(sizeof geos / sizeof geos[0])];
        tblock b;
        tb_make(&b, g->n, g->c, g->l, g->h, g->w, seed % 2 ? 'B' : 'A', 1.5 + 0.25 * (seed % 4), 1200 + seed, MG_F64);
        inv_opts o = {.max_iterations = 3000, .precision = "float64", .tolerance = 1e-8, .adaptive = 1};
        mg_attrs *fa = tb_attrs(b.mask), *ia = inv_attrs(b.mask, &o);
        mg_tensor *z, *ld, *in[8];
        tb_run(ctx, "mintnet.block", b.in, fa, &z, &ld);
        memcpy(in, b.in, sizeof in);
        in[0] = z;
        trun r;
        tr_open(&r, ctx, "mintnet.block_inverse", in, 8, ia);
        tr_forward(&r);
        mg_tensor *x1 = mg_tensor_clone(tr_out(&r, 0)), *d1 = mg_tensor_clone(tr_out(&r, 1));
        tr_forward(&r);
        const mg_tensor *x2 = tr_out(&r, 0), *d2 = tr_out(&r, 1);
        for (int64_t i = 0; i < 3 * b.N; i++)
            cr_expect_eq(mg_tensor_get(d1, i), mg_tensor_get(d2, i), "seed %d: diag[%lld] %g then %g", seed,
                         (long long)i, mg_tensor_get(d1, i), mg_tensor_get(d2, i));
        cr_expect_eq(tu_max_abs_diff(x1, x2), 0.0, "seed %d: second run differs", seed);
        tr_close(&r);
        mg_tensor_free(x1);
        mg_tensor_free(d1);
        mg_tensor_free(z);
        mg_tensor_free(ld);
        mg_attrs_free(fa);
        mg_attrs_free(ia);
        tb_free(&b);
    }
    mg_ctx_free(ctx);
}

/* A tolerance float32 cannot reach: the adaptive iteration notices that it
 * no longer makes progress and stops long before max_iterations, at a good
 * point, reporting the sample as not converged. */
Test(mintnet_inverse, adaptive_stops_a_stalled_sample_early)
{
    mg_ctx *ctx = mn_ctx();
    logcap cap = {0};
    mg_ctx_set_log(ctx, capture, &cap);
    tblock b;
    tb_make(&b, 2, 2, 2, 4, 4, 'A', 0.3, 990, MG_F32);
    inv_opts o = {.max_iterations = 100000, .tolerance = 1e-12, .adaptive = 1, .refine = -1};
    mg_tensor *diag;
    double err = round_trip(ctx, &b, &o, &diag);
    cr_expect_leq(err, 1e-4, "error %g", err);
    for (int64_t i = 0; i < 2; i++) {
        cr_expect_eq(mg_tensor_get(diag, i * 3 + 2), 0.0, "sample %lld flagged converged", (long long)i);
        cr_expect_lt(mg_tensor_get(diag, i * 3), 500, "sample %lld: %g iterations", (long long)i,
                     mg_tensor_get(diag, i * 3));
        cr_expect_leq(mg_tensor_get(diag, i * 3 + 1), 1e-5, "residual %g", mg_tensor_get(diag, i * 3 + 1));
    }
    cr_expect_eq(cap.warnings, 1);
    mg_tensor_free(diag);
    tb_free(&b);
    mg_ctx_free(ctx);
}

/* A float32 tolerance just below what float32 reaches (1e-9: the blocks'
 * float32 residuals stall around 1e-7): without refine the samples stop
 * there, not converged; with it (the default) they are finished in float64,
 * converge, and their diag counts both phases. */
Test(mintnet_inverse, refine_finishes_stalled_float32_samples_in_float64)
{
    mg_ctx *ctx = mn_ctx();
    tblock b;
    tb_make(&b, 3, 2, 3, 5, 4, 'A', 0.3, 1300, MG_F64);
    inv_opts plain = {.max_iterations = 400, .tolerance = 1e-9, .precision = "float32", .refine = -1};
    inv_opts refined = plain;
    refined.refine = 0; /* the default */
    mg_tensor *d1, *d2;
    double e1 = round_trip(ctx, &b, &plain, &d1), e2 = round_trip(ctx, &b, &refined, &d2);
    int stalled = 0;
    for (int64_t i = 0; i < b.N; i++) {
        stalled += mg_tensor_get(d1, i * 3 + 2) == 0.0;
        cr_expect_eq(mg_tensor_get(d2, i * 3 + 2), 1.0, "sample %lld not converged with refine (residual %g)",
                     (long long)i, mg_tensor_get(d2, i * 3 + 1));
        cr_expect_leq(mg_tensor_get(d2, i * 3 + 1), 1e-9);
    }
    cr_expect_gt(stalled, 0, "float32 alone reached 1e-9 everywhere: the test needs a tighter tolerance");
    cr_expect_lt(e2, e1, "refined error %g, float32 alone %g", e2, e1);
    mg_tensor_free(d1);
    mg_tensor_free(d2);
    tb_free(&b);
    mg_ctx_free(ctx);
}

/* A NaN sample stops at once, flagged; the others converge normally. */
Test(mintnet_inverse, nan_sample_is_flagged)
{
    mg_ctx *ctx = mn_ctx();
    logcap cap = {0};
    mg_ctx_set_log(ctx, capture, &cap);
    tblock b;
    tb_make(&b, 3, 1, 2, 4, 4, 'A', 0.15, 940, MG_F32);
    mg_attrs *fa = tb_attrs('A'), *ia = inv_attrs('A', &defaults32);
    mg_tensor *z, *ld, *in[8], *xr, *diag;
    tb_run(ctx, "mintnet.block", b.in, fa, &z, &ld);
    mg_tensor_set(z, 16 + 5, NAN);
    memcpy(in, b.in, sizeof in);
    in[0] = z;
    tb_run(ctx, "mintnet.block_inverse", in, ia, &xr, &diag);
    cr_expect_eq(mg_tensor_get(diag, 3 + 2), 0.0);
    cr_expect_eq(mg_tensor_get(diag, 3 + 0), 0.0, "NaN sample iterated %g times", mg_tensor_get(diag, 3));
    cr_expect_eq(mg_tensor_get(diag, 0 + 2), 1.0);
    cr_expect_eq(mg_tensor_get(diag, 6 + 2), 1.0);
    cr_expect(strstr(cap.last, "1 of 3 samples"), "warning was: %s", cap.last);
    for (int64_t k = 0; k < 16; k++) cr_expect_leq(fabs(mg_tensor_get(xr, k) - mg_tensor_get(b.in[0], k)), 1e-4);
    mg_tensor_free(z);
    mg_tensor_free(ld);
    mg_tensor_free(xr);
    mg_tensor_free(diag);
    mg_attrs_free(fa);
    mg_attrs_free(ia);
    tb_free(&b);
    mg_ctx_free(ctx);
}

/* max_iterations 0: x = z / tau, one evaluation for the residual. */
Test(mintnet_inverse, zero_iterations)
{
    mg_ctx *ctx = mn_ctx();
    logcap cap = {0};
    mg_ctx_set_log(ctx, capture, &cap);
    tblock b;
    tb_make(&b, 2, 1, 1, 3, 3, 'A', 0.15, 950, MG_F32);
    inv_opts o = {.max_iterations = 0};
    mg_attrs *ia = inv_attrs('A', &o);
    mg_tensor *xr, *diag;
    tb_run(ctx, "mintnet.block_inverse", b.in, ia, &xr, &diag);
    for (int64_t k = 0; k < 18; k++)
        cr_expect_float_eq(mg_tensor_get(xr, k), mg_tensor_get(b.in[0], k) / fabs(mg_tensor_get(b.in[7], k % 9)), 1e-6);
    cr_expect_eq(mg_tensor_get(diag, 0), 0.0);
    mg_tensor_free(xr);
    mg_tensor_free(diag);
    mg_attrs_free(ia);
    tb_free(&b);
    mg_ctx_free(ctx);
}

Test(mintnet_inverse, bad_attributes)
{
    mg_ctx *ctx = mn_ctx();
    logcap cap = {0};
    mg_ctx_set_log(ctx, capture, &cap);
    tblock b;
    tb_make(&b, 1, 1, 1, 3, 3, 'A', 0.15, 960, MG_F32);
    static const char *const keys[] = {"damping", "precision", "stop", "max_iterations", "mask", "adaptive",
                                       "refine"};
    for (int k = 0; k < 7; k++) {
        mg_attrs *a = tb_attrs('A');
        if (k == 0) mg_attrs_set_float(a, "damping", -1);
        if (k == 1) mg_attrs_set_str(a, "precision", "float16");
        if (k == 2) mg_attrs_set_str(a, "stop", "never");
        if (k == 3) mg_attrs_set_int(a, "max_iterations", -5);
        if (k == 4) mg_attrs_set_str(a, "mask", "C");
        if (k == 5) mg_attrs_set_str(a, "stop", "fixed"), mg_attrs_set_int(a, "adaptive", 1);
        if (k == 6) mg_attrs_set_str(a, "precision", "float64"), mg_attrs_set_int(a, "refine", 1);
        mg_graph *g;
        mg_graph_new(ctx, &g);
        mg_value in[8], out[2];
        for (int i = 0; i < 8; i++) {
            char name[8];
            snprintf(name, sizeof name, "in%d", i);
            in[i] = mg_graph_input(g, name, MG_F32, b.in[i]->rank, b.in[i]->shape);
        }
        mg_status s = mg_graph_node(g, "mintnet.block_inverse", "inv", in, 8, a, out, 2, NULL);
        cr_expect_eq(s, MG_ERR_ATTR, "%s: got %s", keys[k], mg_status_name(s));
        cr_expect(strstr(mg_ctx_error(ctx), keys[k]), "%s: message '%s'", keys[k], mg_ctx_error(ctx));
        mg_graph_free(g);
        mg_attrs_free(a);
    }
    tb_free(&b);
    mg_ctx_free(ctx);
}

/* ---- a whole flow -------------------------------------------------------------------------- */

static void build_layer(mg_ctx *ctx, mg_params *ps, mg_rng *rng, const char *type, int index, const mg_attrs *args,
                        const int64_t in_shape[3], mg_layer_build *b, char *prefix)
{
    sprintf(prefix, "flow.%d", index);
    *b = (mg_layer_build){.struct_size = sizeof *b, .ctx = ctx, .params = ps, .index = index, .prefix = prefix,
                          .type = type, .args = args, .rng = rng};
    memcpy(b->in_shape, in_shape, 3 * sizeof(int64_t));
    const mg_layer_def *def = mg_registry_find_layer(mg_ctx_registry(ctx), type);
    cr_assert_not_null(def);
    cr_assert_eq(def->out_shape(b, b->out_shape), MG_OK, "%s", mg_ctx_error(ctx));
    if (def->init_params) cr_assert_eq(def->init_params(b), MG_OK, "%s", mg_ctx_error(ctx));
}

Test(mintnet_inverse, whole_flow_inverts)
{
    mg_ctx *ctx = mn_ctx();
    mg_params *ps;
    mg_params_new(&ps);
    mg_rng rng;
    mg_rng_seed(&rng, 5);
    const char *types[5] = {"mintnet.block", "mintnet.block", "squeeze", "mintnet.block", "mintnet.block"};
    mg_attrs *args[5];
    for (int i = 0; i < 5; i++) args[i] = mg_attrs_new();
    mg_attrs_set_str(args[0], "mask", "A");
    mg_attrs_set_int(args[0], "latent", 3);
    mg_attrs_set_str(args[1], "mask", "B");
    mg_attrs_set_int(args[1], "latent", 3);
    mg_attrs_set_int(args[2], "factor", 2);
    mg_attrs_set_str(args[3], "mask", "A");
    mg_attrs_set_int(args[3], "latent", 1);
    mg_attrs_set_str(args[4], "mask", "B");
    mg_attrs_set_int(args[4], "latent", 1);
    mg_attrs *model = mg_attrs_new();
    mg_attrs_set_float(model, "inverse.tolerance", 1e-6);
    mg_layer_build b[5];
    char prefix[5][16];
    int64_t shape[3] = {2, 6, 6};
    for (int i = 0; i < 5; i++) {
        build_layer(ctx, ps, &rng, types[i], i, args[i], shape, &b[i], prefix[i]);
        b[i].model = model;
        memcpy(shape, b[i].out_shape, sizeof shape);
    }
    for (int i = 0; i < mg_params_count(ps); i++) {
        mg_param *p = mg_params_at(ps, i);
        const char *leaf = strrchr(p->name, '.') + 1;
        if (leaf[0] == 'w') mg_tensor_rand_uniform(p->value, &rng, -0.1, 0.1);
        if (leaf[0] == 't') mg_tensor_rand_uniform(p->value, &rng, 0.7, 1.3);
    }
    /* forward graph */
    mg_graph *g;
    mg_graph_new(ctx, &g);
    const int64_t sx[4] = {3, 2, 6, 6};
    mg_value x = mg_graph_input(g, "x", MG_F32, 4, sx), h = x, ld;
    for (int i = 0; i < 5; i++) {
        b[i].g = g;
        mg_graph_push_scope(g, prefix[i], types[i]);
        cr_assert_eq(mg_registry_find_layer(mg_ctx_registry(ctx), types[i])->forward(&b[i], h, &h, &ld), MG_OK, "%s",
                     mg_ctx_error(ctx));
        mg_graph_pop_scope(g);
    }
    /* inverse graph, layers in reverse */
    const mg_tensor *zd = mg_graph_value_desc(g, h);
    mg_graph *gi;
    mg_graph_new(ctx, &gi);
    mg_value z = mg_graph_input(gi, "z", MG_F32, 4, zd->shape), r = z, diag[5];
    for (int i = 4; i >= 0; i--) {
        b[i].g = gi;
        mg_graph_push_scope(gi, prefix[i], types[i]);
        cr_assert_eq(mg_registry_find_layer(mg_ctx_registry(ctx), types[i])->inverse(&b[i], r, &r, &diag[i]), MG_OK,
                     "%s", mg_ctx_error(ctx));
        mg_graph_pop_scope(gi);
    }
    cr_expect(!mg_value_ok(diag[2]), "squeeze is exact: no diag");
    /* the model's tolerance reached the inverse nodes */
    int found = 0;
    for (int k = 0; k < mg_graph_num_nodes(gi); k++)
        if (strcmp(mg_graph_node_op(gi, k)->name, "mintnet.block_inverse") == 0) {
            found++;
            cr_expect_float_eq(mg_attrs_float(mg_graph_node_attrs(gi, k), "tolerance", 0), 1e-6, 1e-15);
        }
    cr_expect_eq(found, 4);
    /* run both */
    mg_exec *ef, *ei;
    mg_compile_opts of = {.struct_size = sizeof of, .outputs = &h, .n_outputs = 1};
    cr_assert_eq(mg_graph_compile(g, &of, &ef), MG_OK, "%s", mg_ctx_error(ctx));
    mg_value outs[5] = {r, diag[0], diag[1], diag[3], diag[4]};
    mg_compile_opts oi = {.struct_size = sizeof oi, .outputs = outs, .n_outputs = 5};
    cr_assert_eq(mg_graph_compile(gi, &oi, &ei), MG_OK, "%s", mg_ctx_error(ctx));
    mg_tensor *xd = tu_rand(MG_F32, 4, sx, -1.5, 1.5, 6);
    mg_tensor_copy(mg_exec_tensor(ef, x), xd);
    cr_assert_eq(mg_exec_forward(ef), MG_OK);
    mg_tensor_copy(mg_exec_tensor(ei, z), mg_exec_tensor(ef, h));
    cr_assert_eq(mg_exec_forward(ei), MG_OK, "%s", mg_ctx_error(ctx));
    double err = tu_max_abs_diff(mg_exec_tensor(ei, r), xd);
    cr_expect_leq(err, 1e-4, "whole flow round trip error %g", err);
    cr_expect_gt(tu_max_abs_diff(mg_exec_tensor(ef, h), xd), 0.05, "the flow is nearly the identity");
    for (int k = 1; k < 5; k++)
        for (int n = 0; n < 3; n++) cr_expect_eq(mg_tensor_get(mg_exec_tensor(ei, outs[k]), n * 3 + 2), 1.0);
    mg_tensor_free(xd);
    mg_exec_free(ef);
    mg_exec_free(ei);
    mg_graph_free(g);
    mg_graph_free(gi);
    for (int i = 0; i < 5; i++) mg_attrs_free(args[i]);
    mg_attrs_free(model);
    mg_params_free(ps);
    mg_ctx_free(ctx);
}
