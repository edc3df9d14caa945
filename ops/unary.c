/* ops/unary.c: placeholder until the unary family lands. */
#include "internal.h"

mg_status mg_ops_register_unary(mg_registry *r)
{
    (void)r;
    return MG_OK;
}
