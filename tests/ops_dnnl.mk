# tests/ops_dnnl.mk: the oneDNN-backed ops: conv2d (and its kernel API), matmul, linear.
MG_TESTS += tests/test_conv tests/test_matmul
tests_test_conv_SOURCES = tests/test_conv.c
tests_test_conv_CFLAGS = $(MG_TEST_CFLAGS)
tests_test_conv_LDADD = $(MG_TEST_LDADD)
tests_test_matmul_SOURCES = tests/test_matmul.c
tests_test_matmul_CFLAGS = $(MG_TEST_CFLAGS)
tests_test_matmul_LDADD = $(MG_TEST_LDADD)
