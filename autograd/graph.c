/* autograd/graph.c */
#include "internal.h"
