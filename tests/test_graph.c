#include "testutil.h"
Test(placeholder, graph) { cr_assert(1); }
