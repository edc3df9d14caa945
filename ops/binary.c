/* ops/binary.c: placeholder until the binary family lands. */
#include "internal.h"

mg_status mg_ops_register_binary(mg_registry *r)
{
    (void)r;
    return MG_OK;
}
