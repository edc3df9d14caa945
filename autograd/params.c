/* autograd/params.c */
#include "internal.h"
