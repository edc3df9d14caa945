/* autograd/optim.c */
#include "internal.h"
