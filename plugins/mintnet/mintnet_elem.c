/* plugins/mintnet/mintnet_elem.c: instantiates the elementwise kernels of
 * mintnet_elem_tmpl.h for float and double, plus the log-det reduction. */
#include "mintnet.h"
#include "mintnet_simd.h"

#include <math.h>

/* Elements per parallel chunk of the ELU kernel. */
#define MN_CHUNK 4096

/* Pixel tiles of 16..256 (a multiple of 16) with L x tile <= 8192 values:
 * long contiguous runs per row for the prefetcher, scratch in L2. */
int64_t mn_diag_tile(const mn_dims *d)
{
    int64_t p = 8192 / d->l;
    return p < 16 ? 16 : p > MN_TILE_MAX ? MN_TILE_MAX : p & ~(int64_t)15;
}

#define MN_T float
#define MN_IS_F32 1
#define MN_SFX f32
#define MN_LOG logf
#define MN_FABS fabsf
#define MN_WT(w, name) ((w)->name##f)
#include "mintnet_elem_tmpl.h"
#undef MN_T
#undef MN_IS_F32
#undef MN_SFX
#undef MN_LOG
#undef MN_FABS
#undef MN_WT

#define MN_T double
#define MN_IS_F32 0
#define MN_SFX f64
#define MN_LOG log
#define MN_FABS fabs
#define MN_WT(w, name) ((w)->name)
#include "mintnet_elem_tmpl.h"

void mn_logdet_sum(const mn_dims *d, const double *part, void *logdet, mg_dtype dt)
{
    const int64_t nt = (d->hw + mn_diag_tile(d) - 1) / mn_diag_tile(d), per = d->c * nt;
    for (int64_t n = 0; n < d->n; n++) {
        double s = 0;
        for (int64_t k = 0; k < per; k++) s += part[n * per + k];
        if (dt == MG_F64)
            ((double *)logdet)[n] = s;
        else
            ((float *)logdet)[n] = (float)s;
    }
}
