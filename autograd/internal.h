/* autograd/internal.h: engine-private structures shared by the autograd files. */
#ifndef MG_AUTOGRAD_INTERNAL_H
#define MG_AUTOGRAD_INTERNAL_H
#include <mintgrad/mintgrad.h>
#endif
