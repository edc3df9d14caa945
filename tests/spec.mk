# tests/spec.mk: YAML model specs and the flow models built from them.
MG_TESTS += tests/test_spec tests/test_model
tests_test_spec_SOURCES = tests/test_spec.c tests/specs/stub_layers.h
tests_test_spec_CFLAGS = $(MG_TEST_CFLAGS) -DMG_SRCDIR='"$(abs_top_srcdir)"'
tests_test_spec_LDADD = $(MG_TEST_LDADD)
tests_test_model_SOURCES = tests/test_model.c tests/specs/stub_layers.h
tests_test_model_CFLAGS = $(MG_TEST_CFLAGS) -DMG_SRCDIR='"$(abs_top_srcdir)"'
# The MintNet plugin is linked statically for the tests of real models.
tests_test_model_LDADD = plugins/mintnet/libmintnet_static.la $(MG_TEST_LDADD)
EXTRA_DIST += examples/fashion_mintnet_small.yaml examples/mnist_mintnet.yaml \
	examples/cifar10_mintnet.yaml examples/tiny.yaml docs/specs.md \
	tests/specs/alias_cycle.yaml tests/specs/bad_enum.yaml tests/specs/duplicate_key.yaml \
	tests/specs/empty.yaml tests/specs/missing_dataset.yaml tests/specs/missing_required.yaml \
	tests/specs/odd_squeeze.yaml tests/specs/out_of_range.yaml tests/specs/syntax.yaml \
	tests/specs/two_docs.yaml tests/specs/two_keys.yaml tests/specs/unknown_arg.yaml \
	tests/specs/unknown_key.yaml tests/specs/unknown_layer.yaml tests/specs/unknown_plugin.yaml \
	tests/specs/wrong_type.yaml
