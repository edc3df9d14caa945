/* plugins/mintnet/mintnet_conv.c: the plugin's own 3x3 convolution (stride
 * 1, zero padding 1), in double for the f64 forward and the float64 inverse,
 * and in float for the float32 inverse once most samples have converged (it
 * runs on just the active samples, which the batch-sized oneDNN kernels
 * cannot) and for the f32 block's thin convolutions (mn_own_conv: the
 * forward and backward-data passes of W1 and W3; their weight gradients are
 * in mintnet_wgrad.c), where it beats them.
 *
 * The input is first copied into zero-bordered planes (H+2) x (W+2). In that
 * layout the nine taps of an output row block are nine constant offsets into
 * one contiguous span, so each input channel is one vectorised pass over the
 * block: acc[q] += sum_t w_t pad[q + off_t], where q runs over the
 * padded-width span and the two extra columns per row are dropped when the
 * block is written out. Two output channels share each pass (their nine
 * source loads are common; 18 weights, 9 sources and 2 sums fit the vector
 * registers). Sub-blocks the mask zeroes are skipped. Work is split over
 * (sample, pair of output channels, row block) with OpenMP. */
#include "mintnet.h"
#include "mintnet_simd.h"

#include <string.h>

/* Elements in one row-block accumulator (two of them on the stack). */
#define MN_CONV_SPAN 2048

#define MN_T float
#define MN_SFX f32
#include "mintnet_conv_tmpl.h"
#undef MN_T
#undef MN_SFX

void mn_pad_f32(const mn_conv3 *s, const float *x, float *pad) { pad_input_f32(s, x, pad, NULL, (int)s->n); }

#define MN_T double
#define MN_SFX f64
#include "mintnet_conv_tmpl.h"
