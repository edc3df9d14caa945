/* ops/reduce.c: placeholder until the reduce family lands. */
#include "internal.h"

mg_status mg_ops_register_reduce(mg_registry *r)
{
    (void)r;
    return MG_OK;
}
