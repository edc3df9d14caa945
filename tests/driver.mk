# tests/driver.mk: checkpoints, IDX data, and the `mintgrad` driver.
MG_TESTS += tests/test_checkpoint
tests_test_checkpoint_SOURCES = tests/test_checkpoint.c
tests_test_checkpoint_CFLAGS = $(MG_TEST_CFLAGS)
tests_test_checkpoint_LDADD = $(MG_TEST_LDADD)
