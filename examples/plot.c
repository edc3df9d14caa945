/* examples/plot.c: SVG line charts (see plot.h). */
#include "plot.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

enum { W = 720, H = 440, ML = 70, MR = 20, MT = 40, MB = 55 };

typedef struct axis { double lo, hi, step; } axis;

/* Round tick spacing (1, 2 or 5 times a power of ten) for about 6 ticks. */
static axis nice_axis(double lo, double hi)
{
    if (!(hi > lo)) {
        double d = fabs(lo) > 0 ? fabs(lo) * 0.1 : 1;
        lo -= d, hi += d;
    }
    double raw = (hi - lo) / 6, p = pow(10, floor(log10(raw))), f = raw / p;
    double step = (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * p;
    return (axis){floor(lo / step) * step, ceil(hi / step) * step, step};
}

static void data_range(const plot_series *s, int n, int use_y, double *lo, double *hi)
{
    *lo = INFINITY, *hi = -INFINITY;
    for (int k = 0; k < n; k++)
        for (int64_t i = 0; i < s[k].n; i++) {
            if (!isfinite(s[k].y[i]) || !isfinite(s[k].x[i])) continue;
            double v = use_y ? s[k].y[i] : s[k].x[i];
            if (v < *lo) *lo = v;
            if (v > *hi) *hi = v;
        }
    if (*lo > *hi) *lo = 0, *hi = 1;
}

static double px(const axis *a, double v) { return ML + (v - a->lo) / (a->hi - a->lo) * (W - ML - MR); }
static double py(const axis *a, double v) { return H - MB - (v - a->lo) / (a->hi - a->lo) * (H - MT - MB); }

static void draw_axes(FILE *f, const axis *ax, const axis *ay, const char *xl, const char *yl)
{
    fprintf(f, "<rect x='%d' y='%d' width='%d' height='%d' fill='white' stroke='#888'/>\n", ML, MT, W - ML - MR,
            H - MT - MB);
    for (double v = ax->lo; v <= ax->hi + ax->step / 2; v += ax->step)
        fprintf(f, "<line x1='%.1f' y1='%d' x2='%.1f' y2='%d' stroke='#eee'/><text x='%.1f' y='%d' "
                "text-anchor='middle'>%g</text>\n", px(ax, v), MT, px(ax, v), H - MB, px(ax, v), H - MB + 18, v);
    for (double v = ay->lo; v <= ay->hi + ay->step / 2; v += ay->step)
        fprintf(f, "<line x1='%d' y1='%.1f' x2='%d' y2='%.1f' stroke='#eee'/><text x='%d' y='%.1f' "
                "text-anchor='end'>%g</text>\n", ML, py(ay, v), W - MR, py(ay, v), ML - 6, py(ay, v) + 4, v);
    fprintf(f, "<text x='%d' y='%d' text-anchor='middle'>%s</text>\n", (ML + W - MR) / 2, H - 12, xl);
    fprintf(f, "<text x='16' y='%d' text-anchor='middle' transform='rotate(-90 16 %d)'>%s</text>\n",
            (MT + H - MB) / 2, (MT + H - MB) / 2, yl);
}

static void draw_series(FILE *f, const plot_series *s, int k, const axis *ax, const axis *ay)
{
    fprintf(f, "<polyline clip-path='url(#area)' fill='none' stroke='%s' stroke-width='1.5' points='", s->color);
    for (int64_t i = 0; i < s->n; i++)
        if (isfinite(s->y[i])) fprintf(f, "%.1f,%.1f ", px(ax, s->x[i]), py(ay, s->y[i]));
    fprintf(f, "'/>\n");
    for (int64_t i = 0; s->dots && i < s->n; i++)
        if (isfinite(s->y[i]))
            fprintf(f, "<circle clip-path='url(#area)' cx='%.1f' cy='%.1f' r='3' fill='%s'/>\n", px(ax, s->x[i]),
                    py(ay, s->y[i]), s->color);
    int ly = MT + 16 + 18 * k;
    fprintf(f, "<line x1='%d' y1='%d' x2='%d' y2='%d' stroke='%s' stroke-width='3'/><text x='%d' y='%d'>%s</text>\n",
            W - MR - 190, ly - 4, W - MR - 165, ly - 4, s->color, W - MR - 158, ly, s->name);
}

mg_status plot_write_svg(mg_ctx *ctx, const char *path, const char *title, const char *xlabel, const char *ylabel,
                         const plot_series *s, int n, double ylo_want, double yhi_want)
{
    FILE *f = fopen(path, "w");
    if (!f) return mg_ctx_fail(ctx, MG_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    double xlo, xhi, ylo, yhi;
    data_range(s, n, 0, &xlo, &xhi);
    data_range(s, n, 1, &ylo, &yhi);
    if (isfinite(ylo_want)) ylo = ylo_want;
    if (isfinite(yhi_want)) yhi = yhi_want;
    axis ax = nice_axis(xlo, xhi), ay = nice_axis(ylo, yhi);
    fprintf(f, "<svg xmlns='http://www.w3.org/2000/svg' width='%d' height='%d' font-family='sans-serif' "
            "font-size='12'>\n<rect width='100%%' height='100%%' fill='#fafafa'/>\n", W, H);
    fprintf(f, "<text x='%d' y='24' text-anchor='middle' font-size='15'>%s</text>\n", W / 2, title);
    draw_axes(f, &ax, &ay, xlabel, ylabel);
    fprintf(f, "<clipPath id='area'><rect x='%d' y='%d' width='%d' height='%d'/></clipPath>\n", ML, MT,
            W - ML - MR, H - MT - MB);
    for (int k = 0; k < n; k++) draw_series(f, &s[k], k, &ax, &ay);
    fprintf(f, "</svg>\n");
    int bad = ferror(f);
    if (fclose(f) != 0 || bad) return mg_ctx_fail(ctx, MG_ERR_IO, "%s: write failed", path);
    return MG_OK;
}
