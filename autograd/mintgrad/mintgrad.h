/* mintgrad/mintgrad.h: the whole public API in one include. */
#ifndef MINTGRAD_MINTGRAD_H
#define MINTGRAD_MINTGRAD_H

#include <mintgrad/core.h>
#include <mintgrad/tensor.h>
#include <mintgrad/op.h>
#include <mintgrad/graph.h>
#include <mintgrad/optim.h>
#include <mintgrad/gradcheck.h>
#include <mintgrad/dot.h>
#include <mintgrad/ops.h>
#include <mintgrad/layer.h>
#include <mintgrad/plugin.h>
#include <mintgrad/flow.h>
#include <mintgrad/checkpoint.h>
#include <mintgrad/spec.h>
#include <mintgrad/model.h>

#endif
