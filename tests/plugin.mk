# tests/plugin.mk: the plugin loader, the layer registry with the built-in
# squeeze layer, and the logit op with the flow helpers. The test plugins in
# tests/plugins/ are libtool modules built for `make check` only: -rpath
# makes libtool produce real shared objects (tests/plugins/.libs/<name>.so),
# which the loader tests open by path and through MINTGRAD_PLUGIN_PATH.
MG_TESTS += tests/test_plugin tests/test_layers tests/test_flow_ops

MG_TEST_PLUGINS = tests/plugins/example.la tests/plugins/noinit.la tests/plugins/badabi.la \
	tests/plugins/dupop.la tests/plugins/failinit.la tests/plugins/hello.la
check_LTLIBRARIES = $(MG_TEST_PLUGINS)
MG_TEST_PLUGIN_LDFLAGS = -module -avoid-version -rpath /nowhere -no-undefined
tests_plugins_example_la_SOURCES = tests/plugins/example.c
tests_plugins_example_la_LDFLAGS = $(MG_TEST_PLUGIN_LDFLAGS)
tests_plugins_example_la_LIBADD = libmintgrad.la -lm
tests_plugins_noinit_la_SOURCES = tests/plugins/noinit.c
tests_plugins_noinit_la_LDFLAGS = $(MG_TEST_PLUGIN_LDFLAGS)
tests_plugins_badabi_la_SOURCES = tests/plugins/badabi.c
tests_plugins_badabi_la_LDFLAGS = $(MG_TEST_PLUGIN_LDFLAGS)
tests_plugins_badabi_la_LIBADD = libmintgrad.la
tests_plugins_dupop_la_SOURCES = tests/plugins/dupop.c
tests_plugins_dupop_la_LDFLAGS = $(MG_TEST_PLUGIN_LDFLAGS)
tests_plugins_dupop_la_LIBADD = libmintgrad.la
tests_plugins_failinit_la_SOURCES = tests/plugins/failinit.c
tests_plugins_failinit_la_LDFLAGS = $(MG_TEST_PLUGIN_LDFLAGS)
tests_plugins_failinit_la_LIBADD = libmintgrad.la
tests_plugins_hello_la_SOURCES = tests/plugins/hello.c
tests_plugins_hello_la_LDFLAGS = $(MG_TEST_PLUGIN_LDFLAGS)
tests_plugins_hello_la_LIBADD = libmintgrad.la -lm

# test_plugin also links the example plugin statically (no mg_plugin_init).
tests_test_plugin_SOURCES = tests/test_plugin.c tests/plugins/example.c
tests_test_plugin_CPPFLAGS = $(AM_CPPFLAGS) -DMG_PLUGIN_STATIC \
	-DMG_TEST_PLUGIN_DIR='"$(abs_builddir)/tests/plugins/.libs"' \
	-DMG_TEST_BUILD_PLUGIN_DIR='"$(abs_top_builddir)/plugins"'
tests_test_plugin_CFLAGS = $(MG_TEST_CFLAGS)
tests_test_plugin_LDADD = $(MG_TEST_LDADD)
EXTRA_tests_test_plugin_DEPENDENCIES = $(MG_TEST_PLUGINS)
tests_test_layers_SOURCES = tests/test_layers.c
tests_test_layers_CFLAGS = $(MG_TEST_CFLAGS)
tests_test_layers_LDADD = $(MG_TEST_LDADD)
tests_test_flow_ops_SOURCES = tests/test_flow_ops.c
tests_test_flow_ops_CFLAGS = $(MG_TEST_CFLAGS)
tests_test_flow_ops_LDADD = $(MG_TEST_LDADD)
