#include "testutil.h"
Test(placeholder, train) { cr_assert(1); }
