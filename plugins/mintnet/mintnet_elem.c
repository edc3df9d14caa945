/* plugins/mintnet/mintnet_elem.c: instantiates the elementwise kernels of
 * mintnet_elem_tmpl.h for float and double, plus the log-det reduction. */
#include "mintnet.h"

#include <math.h>

/* Elements per parallel chunk of the ELU kernel. */
#define MN_CHUNK 4096

int64_t mn_diag_tile(const mn_dims *d)
{
    if (d->l <= 64) return MN_TILE_MAX;
    int64_t p = 4096 / d->l;
    return p < 8 ? 8 : p;
}

#define MN_T float
#define MN_SFX f32
#define MN_EXP expf
#define MN_EXPM1 expm1f
#define MN_LOG logf
#define MN_FABS fabsf
#define MN_WT(w, name) ((w)->name##f)
#include "mintnet_elem_tmpl.h"
#undef MN_T
#undef MN_SFX
#undef MN_EXP
#undef MN_EXPM1
#undef MN_LOG
#undef MN_FABS
#undef MN_WT

#define MN_T double
#define MN_SFX f64
#define MN_EXP exp
#define MN_EXPM1 expm1
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
