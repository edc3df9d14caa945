/* autograd/tensor.c */
#include "internal.h"
