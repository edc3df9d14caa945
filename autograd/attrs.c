/* autograd/attrs.c */
#include "internal.h"
