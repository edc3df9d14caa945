/* autograd/registry.c */
#include "internal.h"
