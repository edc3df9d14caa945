/* autograd/gradcheck.c */
#include "internal.h"
