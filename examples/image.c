/* examples/image.c: PNG image grids through libpng (see image.h). */
#include "image.h"

#include <errno.h>
#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BORDER 2

typedef struct grid {
    int64_t rows, cols, cell_h, cell_w, width, height;
    uint8_t *rgb;        /* [height, width, 3] */
} grid;

static uint8_t to_byte(float v)
{
    if (v <= 0) return 0;
    if (v >= 1) return 255;
    return (uint8_t)lrintf(v * 255.0f);
}

/* Draws image i into its cell; a marked image gets a red frame. */
static void grid_draw(grid *g, int64_t i, const float *img, int64_t c, int64_t h, int64_t w, int marked)
{
    int64_t y0 = (i / g->cols) * g->cell_h + BORDER, x0 = (i % g->cols) * g->cell_w + BORDER;
    for (int64_t y = -BORDER; marked && y < h + BORDER; y++)
        for (int64_t x = -BORDER; x < w + BORDER; x++) {
            uint8_t *p = g->rgb + ((y0 + y) * g->width + x0 + x) * 3;
            p[0] = 230, p[1] = 20, p[2] = 20;
        }
    for (int64_t y = 0; y < h; y++)
        for (int64_t x = 0; x < w; x++) {
            uint8_t *p = g->rgb + ((y0 + y) * g->width + x0 + x) * 3;
            for (int k = 0; k < 3; k++) {
                float v = img[((c == 3 ? k : 0) * h + y) * w + x];
                p[k] = isnan(v) ? (k == 1 ? 0 : 255) : to_byte(v);
            }
        }
}

/* Writes g to an open file; returns NULL or libpng's error message. */
static const char *png_write_rgb(FILE *f, const grid *g)
{
    static char err[256];
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info) {
        png_destroy_write_struct(&png, NULL);
        return "libpng: out of memory";
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        snprintf(err, sizeof err, "libpng failed writing the image: %s", errno ? strerror(errno) : "?");
        return err;
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)g->width, (png_uint_32)g->height, 8, PNG_COLOR_TYPE_RGB,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int64_t y = 0; y < g->height; y++) png_write_row(png, g->rgb + y * g->width * 3);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    return NULL;
}

static mg_status write_file(mg_ctx *ctx, const char *path, const grid *g)
{
    size_t n = strlen(path) + 8;
    char *tmp = mg_malloc(n);
    if (!tmp) return mg_ctx_fail(ctx, MG_ERR_NOMEM, "out of memory");
    snprintf(tmp, n, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        mg_status s = mg_ctx_fail(ctx, MG_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
        mg_free(tmp);
        return s;
    }
    errno = 0;
    const char *err = png_write_rgb(f, g);
    if (fclose(f) != 0 && !err) err = strerror(errno);
    if (!err && rename(tmp, path) != 0) err = strerror(errno);
    if (err) remove(tmp);
    mg_free(tmp);
    return err ? mg_ctx_fail(ctx, MG_ERR_IO, "%s: %s", path, err) : MG_OK;
}

mg_status image_write_grid(mg_ctx *ctx, const char *path, const float *x, int64_t n, int64_t c, int64_t h,
                           int64_t w, int cols, const uint8_t *mark)
{
    if (n <= 0 || c <= 0 || h <= 0 || w <= 0 || h > 4096 || w > 4096)
        return mg_ctx_fail(ctx, MG_ERR_ARG, "%s: bad image grid of %lld images of %lldx%lldx%lld", path,
                           (long long)n, (long long)c, (long long)h, (long long)w);
    grid g = {.cols = cols > 0 ? cols : (int64_t)ceil(sqrt((double)n))};
    if (g.cols > n) g.cols = n;
    g.rows = (n + g.cols - 1) / g.cols;
    g.cell_h = h + 2 * BORDER, g.cell_w = w + 2 * BORDER;
    g.width = g.cols * g.cell_w, g.height = g.rows * g.cell_h;
    g.rgb = mg_malloc((size_t)(g.width * g.height * 3));
    if (!g.rgb) return mg_ctx_fail(ctx, MG_ERR_NOMEM, "%s: out of memory", path);
    memset(g.rgb, 40, (size_t)(g.width * g.height * 3));
    for (int64_t i = 0; i < n; i++) grid_draw(&g, i, x + i * c * h * w, c, h, w, mark && mark[i]);
    mg_status s = write_file(ctx, path, &g);
    mg_free(g.rgb);
    return s;
}
