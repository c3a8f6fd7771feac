/* shape.c: small helpers on tensor shapes. */
#include "internal.h"

#include <stdio.h>

int64_t vkt_shape_numel(const vkt_shape *shape) {
    int64_t n = 1;
    for (int32_t i = 0; i < shape->ndim; i++)
        n *= shape->dims[i];
    return n;
}

int64_t vkt_shape_cols(const vkt_shape *shape) { return shape->dims[shape->ndim - 1]; }

int64_t vkt_shape_rows(const vkt_shape *shape) {
    return vkt_shape_numel(shape) / vkt_shape_cols(shape);
}

bool vkt_shape_equal(const vkt_shape *a, const vkt_shape *b) {
    if (a->ndim != b->ndim)
        return false;
    for (int32_t i = 0; i < a->ndim; i++)
        if (a->dims[i] != b->dims[i])
            return false;
    return true;
}

const char *vkt_shape_format(const vkt_shape *shape, char *buf, size_t size) {
    size_t used = (size_t)snprintf(buf, size, "(");
    for (int32_t i = 0; i < shape->ndim && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, i ? ", %lld" : "%lld",
                                 (long long)shape->dims[i]);
    if (used < size)
        snprintf(buf + used, size - used, ")");
    return buf;
}
