# ops/local.mk: the built-in ops. ops/dnnl.c is the one file that calls oneDNN.
mginclude_HEADERS += ops/mintgrad/ops.h
libmintgrad_la_SOURCES += ops/internal.h ops/elem.h ops/builtin.c \
	ops/dnnl.h ops/dnnl.c ops/conv.c ops/matmul.c \
	ops/unary.c ops/binary.c ops/reduce.c ops/shape.c ops/loss.c
mginclude_HEADERS += ops/mintgrad/flow.h
libmintgrad_la_SOURCES += ops/layers.c ops/flow.c
