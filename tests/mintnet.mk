# tests/mintnet.mk
