/* tensor.c: user-visible tensors (f32, 1 to 4 dims) and host transfers. */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Element counts this large cannot be addressed by a 32-bit shader index; a
 * shape beyond it is a mistake long before it is a memory problem. */
#define VKT_MAX_NUMEL ((int64_t)1 << 31) /* exclusive; numel * dims[i] < 2^62: no overflow */

vkt_result vkt_shape_from_desc(vkt_context *ctx, const char *what, int32_t ndim,
                               const int64_t *dims, vkt_shape *out_shape) {
    if (ndim < 1 || ndim > VKT_MAX_DIMS)
        return vkt_error(ctx, VKT_ERROR_INVALID_ARGUMENT,
                         "%s: ndim = %d, must be 1 to %d", what, (int)ndim, VKT_MAX_DIMS);
    vkt_shape shape = {.ndim = ndim};
    int64_t numel = 1;
    for (int32_t i = 0; i < ndim; i++) {
        if (dims[i] < 1)
            return vkt_error(ctx, VKT_ERROR_INVALID_ARGUMENT,
                             "%s: dims[%d] = %lld, must be >= 1", what, (int)i,
                             (long long)dims[i]);
        if (dims[i] >= VKT_MAX_NUMEL || numel * dims[i] >= VKT_MAX_NUMEL)
            return vkt_error(ctx, VKT_ERROR_INVALID_ARGUMENT,
                             "%s: more than 2^31 elements", what);
        numel *= dims[i];
        shape.dims[i] = dims[i];
    }
    *out_shape = shape;
    return VKT_OK;
}

vkt_result vkt_tensor_create(vkt_context *ctx, const vkt_tensor_desc *desc,
                             vkt_tensor **out_tensor) {
    if (!ctx)
        return vkt_error(NULL, VKT_ERROR_INVALID_ARGUMENT, "vkt_tensor_create: ctx is NULL");
    vkt_clear_error(ctx);
    if (!desc || !out_tensor)
        return vkt_error(ctx, VKT_ERROR_INVALID_ARGUMENT, "vkt_tensor_create: %s is NULL",
                         !desc ? "desc" : "out_tensor");
    const char *name = desc->name ? desc->name : "tensor";
    char what[96];
    snprintf(what, sizeof what, "vkt_tensor_create '%s'", name);
    vkt_shape shape;
    vkt_result r = vkt_shape_from_desc(ctx, what, desc->ndim, desc->dims, &shape);
    if (r != VKT_OK)
        return r;
    vkt_tensor *t = calloc(1, sizeof *t);
    if (!t)
        return vkt_error(ctx, VKT_ERROR_OUT_OF_HOST_MEMORY, "%s: out of host memory", what);
    r = vkt_memory_alloc(ctx, (uint64_t)vkt_shape_numel(&shape) * sizeof(float), &t->value.view);
    if (r != VKT_OK) {
        free(t);
        return r;
    }
    t->ctx = ctx;
    snprintf(t->name, sizeof t->name, "%s", name);
    t->value.shape = shape;
    t->value.name = t->name;
    ctx->live_tensors++;
    *out_tensor = t;
    return VKT_OK;
}

void vkt_tensor_destroy(vkt_tensor *tensor) {
    if (!tensor)
        return;
    vkt_memory_free(tensor->ctx, &tensor->value.view);
    tensor->ctx->live_tensors--;
    free(tensor);
}

static vkt_result check_transfer(const vkt_tensor *tensor, const void *data, size_t count,
                                 const char *fn) {
    if (!tensor)
        return vkt_error(NULL, VKT_ERROR_INVALID_ARGUMENT, "%s: tensor is NULL", fn);
    vkt_context *ctx = tensor->ctx;
    vkt_clear_error(ctx);
    if (!data)
        return vkt_error(ctx, VKT_ERROR_INVALID_ARGUMENT, "%s '%s': data is NULL", fn,
                         tensor->name);
    int64_t numel = vkt_shape_numel(&tensor->value.shape);
    if ((int64_t)count != numel)
        return vkt_error(ctx, VKT_ERROR_INVALID_ARGUMENT,
                         "%s '%s': count = %zu but the tensor has %lld elements", fn,
                         tensor->name, count, (long long)numel);
    return VKT_OK;
}

vkt_result vkt_tensor_upload(vkt_tensor *tensor, const float *data, size_t count) {
    vkt_result r = check_transfer(tensor, data, count, "vkt_tensor_upload");
    if (r != VKT_OK)
        return r;
    return tensor->ctx->ops->write(tensor->ctx, &tensor->value.view, data, count * sizeof(float));
}

vkt_result vkt_tensor_download(const vkt_tensor *tensor, float *out_data, size_t count) {
    vkt_result r = check_transfer(tensor, out_data, count, "vkt_tensor_download");
    if (r != VKT_OK)
        return r;
    return tensor->ctx->ops->read(tensor->ctx, &tensor->value.view, out_data,
                                  count * sizeof(float));
}

vkt_result vkt_tensor_query(const vkt_tensor *tensor, vkt_tensor_info *out_info) {
    if (!tensor || !out_info)
        return vkt_error(tensor ? tensor->ctx : NULL, VKT_ERROR_INVALID_ARGUMENT,
                         "vkt_tensor_query: %s is NULL", !tensor ? "tensor" : "out_info");
    vkt_tensor_info info = {.ndim = tensor->value.shape.ndim,
                            .numel = vkt_shape_numel(&tensor->value.shape),
                            .name = tensor->name};
    memcpy(info.dims, tensor->value.shape.dims, sizeof info.dims);
    *out_info = info;
    return VKT_OK;
}
