/* tests/plugins/noinit.c: a shared object that is not a mintgrad plugin: it
 * exports a function, but not mg_plugin_init. The loader must refuse it. */
#include <mintgrad/mintgrad.h>

int noinit_answer(void);

int noinit_answer(void) { return 42; }
