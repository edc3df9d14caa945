/* autograd/exec.c */
#include "internal.h"
