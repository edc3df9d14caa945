# autograd/local.mk: the engine.
mginclude_HEADERS += autograd/mintgrad/core.h autograd/mintgrad/tensor.h \
	autograd/mintgrad/op.h autograd/mintgrad/graph.h autograd/mintgrad/optim.h \
	autograd/mintgrad/gradcheck.h autograd/mintgrad/mintgrad.h
libmintgrad_la_SOURCES += autograd/core.c autograd/tensor.c autograd/attrs.c \
	autograd/registry.c autograd/graph.c autograd/exec.c autograd/params.c \
	autograd/optim.c autograd/gradcheck.c autograd/internal.h
mginclude_HEADERS += autograd/mintgrad/dot.h
libmintgrad_la_SOURCES += autograd/dot.c
# YAML model specs and flow models built from them.
mginclude_HEADERS += autograd/mintgrad/spec.h autograd/mintgrad/model.h
libmintgrad_la_SOURCES += autograd/spec.c autograd/spec_yaml.c autograd/spec_args.c \
	autograd/spec_layers.c autograd/spec_internal.h \
	autograd/model.c
mginclude_HEADERS += autograd/mintgrad/checkpoint.h
libmintgrad_la_SOURCES += autograd/checkpoint.c
mginclude_HEADERS += autograd/mintgrad/layer.h autograd/mintgrad/plugin.h
libmintgrad_la_SOURCES += autograd/layer.c autograd/plugin.c
