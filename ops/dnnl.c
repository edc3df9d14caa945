/* ops/dnnl.c: the one place that talks to oneDNN. */
#include "dnnl.h"
