/* ops/conv.c: placeholder until the conv family lands. */
#include "internal.h"

mg_status mg_ops_register_conv(mg_registry *r)
{
    (void)r;
    return MG_OK;
}
