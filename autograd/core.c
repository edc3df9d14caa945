/* autograd/core.c */
#include "internal.h"
