# tests/dot.mk: DOT export of graphs and Graphviz rendering.
MG_TESTS += tests/test_dot
tests_test_dot_SOURCES = tests/test_dot.c
tests_test_dot_CFLAGS = $(MG_TEST_CFLAGS) $(GVC_CFLAGS) -DMG_GOLDEN_DIR='"$(abs_top_srcdir)/tests/golden"'
tests_test_dot_LDADD = $(MG_TEST_LDADD) $(GVC_LIBS)
EXTRA_DIST += tests/golden/mlp_forward.dot tests/golden/mlp_backward.dot \
	tests/golden/flow_expanded.dot tests/golden/flow_expanded_boxes.dot \
	tests/golden/flow_collapsed.dot tests/golden/names.dot
