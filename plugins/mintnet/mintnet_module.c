/* plugins/mintnet/mintnet_module.c: the entry point of the loadable MintNet
 * plugin (mintnet.so): the loader looks up MG_PLUGIN_INIT_SYMBOL. */
#include "mintnet.h"

mg_status mg_plugin_init(mg_registry *reg, const mg_host_api *host);

mg_status mg_plugin_init(mg_registry *reg, const mg_host_api *host) { return mg_mintnet_plugin_init(reg, host); }
