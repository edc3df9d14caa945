#!/bin/sh
# examples/quickstart.sh: README command one. Trains the default small
# MintNet (examples/fashion_mintnet_small.yaml) on Fashion-MNIST, prints the
# test bits/dim, draws a sample grid and writes the training curve (and,
# when the `graph` command is built, a rendered graph) under runs/.
#
# Needs the Debian package dataset-fashion-mnist. About 3-4 minutes on a
# 2-core machine for the spec's 2000 steps. Environment overrides:
#   MINTGRAD (the binary), SPEC, RUN (run directory), STEPS.
set -eu
MINTGRAD=${MINTGRAD:-mintgrad}
SPEC=${SPEC:-examples/fashion_mintnet_small.yaml}
RUN=${RUN:-runs/fashion-small}
STEPS=${STEPS:-2000}

"$MINTGRAD" check "$SPEC" >/dev/null
"$MINTGRAD" train "$SPEC" --steps "$STEPS" --out "$RUN"
"$MINTGRAD" sample "$SPEC" --checkpoint "$RUN/checkpoint.safetensors" -o "$RUN/samples.png"
if "$MINTGRAD" graph --help >/dev/null 2>&1; then
    "$MINTGRAD" graph "$SPEC" --collapse -o "$RUN/graph.svg"
fi
echo "done: $RUN/samples.png, $RUN/curve.svg, $RUN/metrics.csv, $RUN/checkpoint.safetensors"
