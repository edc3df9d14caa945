/* examples/plot.h: line charts as hand-written SVG (the training curve). */
#ifndef MG_EXAMPLES_PLOT_H
#define MG_EXAMPLES_PLOT_H

#include <mintgrad/mintgrad.h>

typedef struct plot_series {
    const char *name;     /* legend text */
    const char *color;    /* SVG color, e.g. "#1f77b4" */
    const double *x, *y;  /* [n]; non-finite y values are skipped */
    int64_t n;
    int dots;             /* 1: draw markers as well as the line */
} plot_series;

/* Writes an SVG line chart of the series (axes with round ticks, a legend)
 * to `path`. The y axis spans [ylo, yhi] (widened to round ticks); NAN for
 * either means the data's range; lines leaving the area are clipped.
 * MG_ERR_IO on failure (message names the path). */
mg_status plot_write_svg(mg_ctx *ctx, const char *path, const char *title, const char *xlabel,
                         const char *ylabel, const plot_series *s, int n_series, double ylo, double yhi);

#endif
