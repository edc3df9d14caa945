# tests/ops.mk: the built-in ops with our own OpenMP kernels: unary,
# binary (broadcasting), reductions, shape ops, losses.
MG_TESTS += tests/test_unary tests/test_binary tests/test_reduce tests/test_shape tests/test_loss
tests_test_unary_SOURCES = tests/test_unary.c
tests_test_unary_CFLAGS = $(MG_TEST_CFLAGS)
tests_test_unary_LDADD = $(MG_TEST_LDADD)
tests_test_binary_SOURCES = tests/test_binary.c
tests_test_binary_CFLAGS = $(MG_TEST_CFLAGS)
tests_test_binary_LDADD = $(MG_TEST_LDADD)
tests_test_reduce_SOURCES = tests/test_reduce.c
tests_test_reduce_CFLAGS = $(MG_TEST_CFLAGS)
tests_test_reduce_LDADD = $(MG_TEST_LDADD)
tests_test_shape_SOURCES = tests/test_shape.c
tests_test_shape_CFLAGS = $(MG_TEST_CFLAGS)
tests_test_shape_LDADD = $(MG_TEST_LDADD)
tests_test_loss_SOURCES = tests/test_loss.c
tests_test_loss_CFLAGS = $(MG_TEST_CFLAGS)
tests_test_loss_LDADD = $(MG_TEST_LDADD)
