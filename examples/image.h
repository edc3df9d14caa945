/* examples/image.h: image grids as PNG files (through libpng). */
#ifndef MG_EXAMPLES_IMAGE_H
#define MG_EXAMPLES_IMAGE_H

#include <mintgrad/mintgrad.h>

/* Writes n images x [n, c, h, w] (f32, values in [0, 1], clamped; NaN shown
 * as magenta) as an RGB PNG grid of `cols` columns (0: about square) with a
 * 2-pixel border. c is 1 (gray) or 3 (RGB); otherwise channel 0 is shown.
 * If mark is not NULL, images with mark[i] != 0 get a red frame (e.g.
 * samples whose inverse did not converge). The file is written to a
 * temporary name and renamed, so a failure leaves no half image. MG_ERR_IO
 * or MG_ERR_BACKEND (libpng) with the path in the message. */
mg_status image_write_grid(mg_ctx *ctx, const char *path, const float *x, int64_t n, int64_t c, int64_t h,
                           int64_t w, int cols, const uint8_t *mark);

#endif
