# tests/graphcmd.mk: the `mintgrad graph` command, run as the built binary.
MG_TESTS += tests/test_graph_cmd
tests_test_graph_cmd_SOURCES = tests/test_graph_cmd.c
tests_test_graph_cmd_CFLAGS = $(MG_TEST_CFLAGS) $(GVC_CFLAGS) \
	-DMG_DRIVER='"$(abs_top_builddir)/mintgrad$(EXEEXT)"' -DMG_EXAMPLES_DIR='"$(abs_top_srcdir)/examples"'
tests_test_graph_cmd_LDADD = $(MG_TEST_LDADD) $(GVC_LIBS)
EXTRA_tests_test_graph_cmd_DEPENDENCIES = mintgrad$(EXEEXT)
