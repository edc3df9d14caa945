# plugins/mintnet/local.mk
