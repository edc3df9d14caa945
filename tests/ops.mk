# tests/ops.mk
