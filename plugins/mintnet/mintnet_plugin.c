/* plugins/mintnet/mintnet_plugin.c: the MintNet plugin's registration: checks
 * the host's ABI, then registers the ops mintnet.masked_conv2d,
 * mintnet.block and mintnet.block_inverse and the layer type mintnet.block
 * through the host table. Linked statically by tests (register it with
 * mg_plugin_register_static(ctx, "mintnet", mg_mintnet_plugin_init)); the
 * shared object (mintnet_module.c) exports the same function as
 * mg_plugin_init. */
#include "mintnet.h"

#include <stddef.h>

/* 1 if the host table is recent enough to hold `fail`. */
static int host_has_fail(const mg_host_api *host)
{
    return host->struct_size >= offsetof(mg_host_api, fail) + sizeof host->fail && host->fail;
}

static mg_status check_host(const mg_host_api *host)
{
    if (!host) return MG_ERR_ARG;
    if (host->abi_version != MG_ABI_VERSION || host->struct_size < sizeof(mg_host_api)) {
        if (host_has_fail(host) && host->ctx)
            return host->fail(host->ctx, MG_ERR_ABI,
                              "mintnet plugin: built for ABI %u (host table %zu bytes), host offers ABI %u "
                              "(%zu bytes); rebuild the plugin against this mintgrad",
                              (unsigned)MG_ABI_VERSION, sizeof(mg_host_api), (unsigned)host->abi_version,
                              host->struct_size);
        return MG_ERR_ABI;
    }
    if (!host->add_op || !host->add_layer) return host->fail(host->ctx, MG_ERR_ABI, "mintnet plugin: host table "
                                                             "lacks add_op / add_layer");
    return MG_OK;
}

mg_status mg_mintnet_plugin_init(mg_registry *reg, const mg_host_api *host)
{
    mg_status s = check_host(host);
    if (s != MG_OK) return s;
    const mg_op_def *ops[] = {&mn_masked_conv_def, &mn_block_def, &mn_block_inverse_def};
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
        if ((s = host->add_op(reg, ops[i])) != MG_OK) return s;
    return host->add_layer(reg, &mn_block_layer_def);
}
