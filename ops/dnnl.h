/* ops/dnnl.h: private interface to ops/dnnl.c, the one file that calls oneDNN. */
#ifndef MG_OPS_DNNL_H
#define MG_OPS_DNNL_H
#include <mintgrad/mintgrad.h>
#endif
