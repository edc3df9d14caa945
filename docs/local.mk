# docs/local.mk: `make docs` draws the computation graphs of the shipped
# example models into docs/graphs/ (in the source tree: the SVGs are
# committed and shown by docs/graphs.md and the README) with the built
# `mintgrad graph` command. Override the destination with
# `make docs MG_GRAPHS_DIR=/some/dir`. Each picture is
# <model>-<view>[-collapsed].svg:
#   tiny, fashion_small  forward (collapsed and expanded), backward, inverse
#   mnist                forward collapsed only (its expanded views are huge)
# All run top to bottom: in the expanded views each layer's parameters are
# one table beside its op, so the layers stack in one narrow column.
MG_GRAPHS_DIR = $(abs_top_srcdir)/docs/graphs
MG_GRAPH = $(abs_top_builddir)/mintgrad$(EXEEXT) graph
MG_EX = $(abs_top_srcdir)/examples

.PHONY: docs docs-graphs
docs: docs-graphs

docs-graphs: mintgrad$(EXEEXT)
	@$(MKDIR_P) $(MG_GRAPHS_DIR)
	$(MG_GRAPH) $(MG_EX)/tiny.yaml --collapse -o $(MG_GRAPHS_DIR)/tiny-forward-collapsed.svg
	$(MG_GRAPH) $(MG_EX)/tiny.yaml -o $(MG_GRAPHS_DIR)/tiny-forward.svg
	$(MG_GRAPH) $(MG_EX)/tiny.yaml --view backward -o $(MG_GRAPHS_DIR)/tiny-backward.svg
	$(MG_GRAPH) $(MG_EX)/tiny.yaml --view inverse -o $(MG_GRAPHS_DIR)/tiny-inverse.svg
	$(MG_GRAPH) $(MG_EX)/fashion_mintnet_small.yaml --collapse \
		-o $(MG_GRAPHS_DIR)/fashion_small-forward-collapsed.svg
	$(MG_GRAPH) $(MG_EX)/fashion_mintnet_small.yaml -o $(MG_GRAPHS_DIR)/fashion_small-forward.svg
	$(MG_GRAPH) $(MG_EX)/fashion_mintnet_small.yaml --view backward \
		-o $(MG_GRAPHS_DIR)/fashion_small-backward.svg
	$(MG_GRAPH) $(MG_EX)/fashion_mintnet_small.yaml --view inverse \
		-o $(MG_GRAPHS_DIR)/fashion_small-inverse.svg
	$(MG_GRAPH) $(MG_EX)/mnist_mintnet.yaml --collapse -o $(MG_GRAPHS_DIR)/mnist-forward-collapsed.svg

EXTRA_DIST += docs/architecture.md docs/driver.md docs/graphs.md docs/plugins.md \
	docs/mintnet.md docs/specs.md docs/performance.md docs/performance.svg \
	docs/graphs/tiny-forward-collapsed.svg docs/graphs/tiny-forward.svg docs/graphs/tiny-backward.svg \
	docs/graphs/tiny-inverse.svg docs/graphs/fashion_small-forward-collapsed.svg \
	docs/graphs/fashion_small-forward.svg docs/graphs/fashion_small-backward.svg \
	docs/graphs/fashion_small-inverse.svg docs/graphs/mnist-forward-collapsed.svg
