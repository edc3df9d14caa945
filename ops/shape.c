/* ops/shape.c: placeholder until the shape family lands. */
#include "internal.h"

mg_status mg_ops_register_shape(mg_registry *r)
{
    (void)r;
    return MG_OK;
}
