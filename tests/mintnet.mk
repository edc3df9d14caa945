# tests/mintnet.mk: the MintNet plugin's suites. They link the plugin's
# convenience library statically (registered with mg_plugin_register_static)
# and share tests/test_mintnet_ref.h, a plain double-precision reference.
MN_TEST_CFLAGS = $(MG_TEST_CFLAGS) -I$(srcdir)/plugins/mintnet
MN_TEST_LDADD = plugins/mintnet/libmintnet_static.la $(MG_TEST_LDADD)
EXTRA_DIST += tests/test_mintnet_ref.h

MG_TESTS += tests/test_mintnet_logdet
tests_test_mintnet_logdet_SOURCES = tests/test_mintnet_logdet.c
tests_test_mintnet_logdet_CFLAGS = $(MN_TEST_CFLAGS)
tests_test_mintnet_logdet_LDADD = $(MN_TEST_LDADD)

MG_TESTS += tests/test_mintnet_grad
tests_test_mintnet_grad_SOURCES = tests/test_mintnet_grad.c
tests_test_mintnet_grad_CFLAGS = $(MN_TEST_CFLAGS)
tests_test_mintnet_grad_LDADD = $(MN_TEST_LDADD)

MG_TESTS += tests/test_mintnet_mask
tests_test_mintnet_mask_SOURCES = tests/test_mintnet_mask.c
tests_test_mintnet_mask_CFLAGS = $(MN_TEST_CFLAGS)
tests_test_mintnet_mask_LDADD = $(MN_TEST_LDADD)

MG_TESTS += tests/test_mintnet_inverse
tests_test_mintnet_inverse_SOURCES = tests/test_mintnet_inverse.c
tests_test_mintnet_inverse_CFLAGS = $(MN_TEST_CFLAGS)
tests_test_mintnet_inverse_LDADD = $(MN_TEST_LDADD)

MG_TESTS += tests/test_mintnet_layer
tests_test_mintnet_layer_SOURCES = tests/test_mintnet_layer.c
tests_test_mintnet_layer_CFLAGS = $(MN_TEST_CFLAGS)
tests_test_mintnet_layer_LDADD = $(MN_TEST_LDADD)
