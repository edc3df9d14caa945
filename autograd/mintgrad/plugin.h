/* mintgrad/plugin.h: the plugin ABI. A plugin is a shared object (libtool
 * -module) that exports one function, MG_PLUGIN_INIT_SYMBOL, of type
 * mg_plugin_init_fn. The loader calls it with the context's registry and a
 * host table; the plugin checks the host's ABI version and table size, then
 * registers its ops and layer types through the table. If init fails, every
 * op and layer it registered is removed again and the library is unloaded.
 *
 * Plugins include only installed mintgrad headers and link against
 * libmintgrad for the node accessors and kernels (mintgrad/ops.h). The same
 * init function can be called directly to link a plugin statically
 * (mg_plugin_register_static). */
#ifndef MINTGRAD_PLUGIN_H
#define MINTGRAD_PLUGIN_H

#include <mintgrad/layer.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MG_PLUGIN_INIT_SYMBOL "mg_plugin_init"

typedef struct mg_host_api {
    size_t struct_size;      /* sizeof(mg_host_api) of the host */
    uint32_t abi_version;    /* MG_ABI_VERSION of the host */
    const char *version;     /* library version string */
    mg_ctx *ctx;
    mg_status (*add_op)(mg_registry *r, const mg_op_def *def);
    mg_status (*add_layer)(mg_registry *r, const mg_layer_def *def);
    mg_status (*fail)(mg_ctx *ctx, mg_status status, const char *fmt, ...);
    void (*log)(mg_ctx *ctx, mg_log_level level, const char *fmt, ...);
} mg_host_api;

/* A plugin's entry point. Returns MG_OK, or a failure after reporting it
 * through host->fail. */
typedef mg_status (*mg_plugin_init_fn)(mg_registry *reg, const mg_host_api *host);

/* Loads a plugin by name ("mintnet") or path ("./libfoo.so"). Names are
 * looked up as "<name>.so" and "lib<name>.so"... in MINTGRAD_PLUGIN_PATH
 * (colon-separated), then the build tree, then the installed plugin
 * directory. Loading a plugin twice is a no-op. Errors: MG_ERR_NOTFOUND
 * (no file; the message lists the directories searched), MG_ERR_PLUGIN
 * (dlopen failure, missing init symbol, init failure), MG_ERR_ABI,
 * MG_ERR_EXISTS (an op or layer name already registered). */
mg_status mg_plugin_load(mg_ctx *ctx, const char *name_or_path);
/* Registers a statically linked plugin under `name`, with the same checks
 * and rollback as a loaded one. */
mg_status mg_plugin_register_static(mg_ctx *ctx, const char *name, mg_plugin_init_fn init);
/* Plugins loaded on ctx, in load order. */
int mg_plugin_count(const mg_ctx *ctx);
const char *mg_plugin_name(const mg_ctx *ctx, int i);
/* The host table the library hands plugins (for tests and static linking). */
const mg_host_api *mg_plugin_host(mg_ctx *ctx);

#ifdef __cplusplus
}
#endif
#endif
