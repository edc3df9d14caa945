# tests/engine.mk: tensors, attributes, registry, graphs, optimizers, gradcheck.
MG_TESTS += tests/test_tensor tests/test_graph tests/test_optim tests/test_gradcheck tests/test_train
tests_test_tensor_SOURCES = tests/test_tensor.c
tests_test_tensor_CFLAGS = $(MG_TEST_CFLAGS)
tests_test_tensor_LDADD = $(MG_TEST_LDADD)
tests_test_graph_SOURCES = tests/test_graph.c
tests_test_graph_CFLAGS = $(MG_TEST_CFLAGS)
tests_test_graph_LDADD = $(MG_TEST_LDADD)
tests_test_optim_SOURCES = tests/test_optim.c
tests_test_optim_CFLAGS = $(MG_TEST_CFLAGS)
tests_test_optim_LDADD = $(MG_TEST_LDADD)
tests_test_gradcheck_SOURCES = tests/test_gradcheck.c
tests_test_gradcheck_CFLAGS = $(MG_TEST_CFLAGS)
tests_test_gradcheck_LDADD = $(MG_TEST_LDADD)
tests_test_train_SOURCES = tests/test_train.c
tests_test_train_CFLAGS = $(MG_TEST_CFLAGS)
tests_test_train_LDADD = $(MG_TEST_LDADD)
