#include "testutil.h"
Test(placeholder, tensor) { cr_assert(1); }
