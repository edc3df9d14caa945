#!/bin/sh
# examples/quickstart.sh: README command one. From a fresh clone: installs
# what it needs (Debian packages, as root), builds in _build/ unless
# MINTGRAD names a binary, then trains the default small MintNet
# (examples/fashion_mintnet_small.yaml) on Fashion-MNIST, prints the test
# bits/dim, draws a sample grid, and writes the training curve, metrics and a
# rendered graph under runs/.
#
# About 3 minutes of training on an otherwise idle 2-core machine for the
# spec's 2000 steps. Environment overrides: MINTGRAD (the binary), SPEC, RUN
# (run directory), STEPS.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
if [ -z "${MINTGRAD:-}" ]; then
    tests/install-deps.sh dataset-fashion-mnist
    if [ ! -x _build/mintgrad ]; then
        echo "building mintgrad in _build/ ..."
        autoreconf -fi >/dev/null 2>&1
        mkdir -p _build
        (cd _build && ../configure -q && make -j"$(nproc)" >/dev/null)
    fi
    MINTGRAD=$top/_build/mintgrad
fi
# OpenMP threads that sleep instead of spinning while they wait: a little
# slower on an idle machine, several times faster on a busy one.
OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
export OMP_WAIT_POLICY
SPEC=${SPEC:-examples/fashion_mintnet_small.yaml}
RUN=${RUN:-runs/fashion-small}
STEPS=${STEPS:-2000}

"$MINTGRAD" check "$SPEC" >/dev/null
"$MINTGRAD" train "$SPEC" --steps "$STEPS" --out "$RUN"
"$MINTGRAD" sample "$SPEC" --checkpoint "$RUN/checkpoint.safetensors" -o "$RUN/samples.png"
"$MINTGRAD" graph "$SPEC" --collapse -o "$RUN/graph.svg"
echo "done: $RUN/samples.png, $RUN/curve.svg, $RUN/metrics.csv, $RUN/checkpoint.safetensors"
