# examples/local.mk: the `mintgrad` driver (installed), the quickstart script
# (README command one) and the driver's documentation. The example specs are
# listed in tests/spec.mk.
bin_PROGRAMS += mintgrad
mintgrad_SOURCES = examples/mintgrad.c examples/cli.c examples/cli.h \
	examples/cmd_check.c examples/cmd_train.c examples/cmd_eval.c examples/cmd_sample.c \
	examples/cmd_ops.c examples/cmd_graph.c examples/inverse_check.c examples/train.c examples/train.h \
	examples/evaluate.c examples/evaluate.h examples/data.c examples/data.h \
	examples/idx.c examples/idx.h examples/image.c examples/image.h \
	examples/plot.c examples/plot.h examples/progress.c examples/progress.h
mintgrad_CFLAGS = $(AM_CFLAGS) $(PNG_CFLAGS) $(ZLIB_CFLAGS)
mintgrad_LDADD = libmintgrad.la $(PNG_LIBS) $(ZLIB_LIBS) -lm
EXTRA_DIST += examples/quickstart.sh docs/driver.md
