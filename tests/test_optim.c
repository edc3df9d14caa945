#include "testutil.h"
Test(placeholder, optim) { cr_assert(1); }
