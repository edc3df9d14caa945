# tests/driver.mk: checkpoints, IDX data, and the `mintgrad` driver.
MG_TESTS += tests/test_checkpoint
tests_test_checkpoint_SOURCES = tests/test_checkpoint.c
tests_test_checkpoint_CFLAGS = $(MG_TEST_CFLAGS)
tests_test_checkpoint_LDADD = $(MG_TEST_LDADD)
MG_TESTS += tests/test_idx
tests_test_idx_SOURCES = tests/test_idx.c examples/idx.c examples/data.c
tests_test_idx_CFLAGS = $(MG_TEST_CFLAGS) $(ZLIB_CFLAGS)
tests_test_idx_LDADD = $(MG_TEST_LDADD) $(ZLIB_LIBS)
# The driver suite runs the built binary; it also links the driver's helpers
# for unit tests of pictures and schedules.
MG_TESTS += tests/test_driver
tests_test_driver_SOURCES = tests/test_driver.c examples/train.c examples/cli.c examples/evaluate.c \
	examples/data.c examples/idx.c examples/image.c examples/plot.c examples/progress.c
tests_test_driver_CFLAGS = $(MG_TEST_CFLAGS) $(PNG_CFLAGS) $(ZLIB_CFLAGS) \
	-DMINTGRAD_BIN='"$(abs_top_builddir)/mintgrad$(EXEEXT)"' -DEXAMPLES_DIR='"$(abs_top_srcdir)/examples"'
tests_test_driver_LDADD = $(MG_TEST_LDADD) $(PNG_LIBS) $(ZLIB_LIBS)
EXTRA_tests_test_driver_DEPENDENCIES = mintgrad$(EXEEXT)
