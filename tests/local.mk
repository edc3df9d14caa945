# tests/local.mk: Criterion test programs, run by `make check`. Each suite's
# fragment adds its programs to MG_TESTS.
MG_TESTS =
MG_TEST_CFLAGS = $(AM_CFLAGS) $(CRITERION_CFLAGS)
MG_TEST_LDADD = libmintgrad.la $(CRITERION_LIBS) -lm
# One OpenMP thread and one Criterion worker per test program; make -j runs
# programs side by side.
# LSAN_OPTIONS only matters in --enable-sanitizers builds (tests/lsan.supp).
AM_TESTS_ENVIRONMENT = OMP_NUM_THREADS=1 CRITERION_JOBS=1; \
	LSAN_OPTIONS=suppressions=$(abs_top_srcdir)/tests/lsan.supp:print_suppressions=0; \
	export OMP_NUM_THREADS CRITERION_JOBS LSAN_OPTIONS;
EXTRA_DIST += tests/lsan.supp
EXTRA_DIST += tests/testutil.h

include tests/engine.mk
include tests/ops.mk
include tests/ops_dnnl.mk
include tests/mintnet.mk
include tests/driver.mk
include tests/dot.mk
include tests/plugin.mk
include tests/spec.mk
include tests/graphcmd.mk

if HAVE_CRITERION
check_PROGRAMS += $(MG_TESTS)
TESTS += $(MG_TESTS)
endif
