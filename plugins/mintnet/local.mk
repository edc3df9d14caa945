# plugins/mintnet/local.mk: the MintNet plugin. Its sources form a
# convenience library (linked statically by tests and the timing program,
# which register it with mg_plugin_register_static) and the loadable module
# plugins/mintnet/mintnet.la (-module: the loader finds
# plugins/mintnet/.libs/mintnet.so in the build tree). The plugin includes
# only public mintgrad headers.
MN_SOURCES = plugins/mintnet/mintnet.h plugins/mintnet/mintnet_simd.h plugins/mintnet/mintnet_plugin.c \
	plugins/mintnet/mintnet_mask.c plugins/mintnet/mintnet_elem.c \
	plugins/mintnet/mintnet_elem_tmpl.h plugins/mintnet/mintnet_conv.c \
	plugins/mintnet/mintnet_conv_tmpl.h \
	plugins/mintnet/mintnet_eval64.c plugins/mintnet/mintnet_block.c \
	plugins/mintnet/mintnet_block_bwd.c plugins/mintnet/mintnet_wgrad.c plugins/mintnet/mintnet_blocked.c plugins/mintnet/mintnet_masked_conv.c \
	plugins/mintnet/mintnet_inverse.c plugins/mintnet/mintnet_layer.c

noinst_LTLIBRARIES = plugins/mintnet/libmintnet_static.la
plugins_mintnet_libmintnet_static_la_SOURCES = $(MN_SOURCES)
# -Wno-psabi: the 64-byte vector helpers are always inlined, so the
# GCC 4.6 ABI note about passing them by value does not apply.
plugins_mintnet_libmintnet_static_la_CFLAGS = $(AM_CFLAGS) -Wno-psabi

plugin_LTLIBRARIES += plugins/mintnet/mintnet.la
plugins_mintnet_mintnet_la_SOURCES = plugins/mintnet/mintnet_module.c
plugins_mintnet_mintnet_la_CFLAGS = $(AM_CFLAGS)
plugins_mintnet_mintnet_la_LDFLAGS = -module -avoid-version -no-undefined \
	-export-symbols-regex '^mg_(plugin_init|mintnet_plugin_init)$$'
plugins_mintnet_mintnet_la_LIBADD = plugins/mintnet/libmintnet_static.la libmintgrad.la $(OPENMP_CFLAGS) -lm

# Times forward+log-det, backward and inverse of the small model (spec section 7).
noinst_PROGRAMS += plugins/mintnet/mintnet_timing
plugins_mintnet_mintnet_timing_SOURCES = plugins/mintnet/mintnet_timing.c
plugins_mintnet_mintnet_timing_CFLAGS = $(AM_CFLAGS)
plugins_mintnet_mintnet_timing_LDADD = plugins/mintnet/libmintnet_static.la libmintgrad.la $(OPENMP_CFLAGS) -lm

EXTRA_DIST += docs/mintnet.md
