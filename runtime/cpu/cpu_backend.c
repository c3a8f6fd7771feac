/* cpu_backend.c: the reference backend. Blocks are host memory and nodes run
 * through each op's plain-C reference: the oracle every GPU result is
 * compared against. */
#include "../ops/op.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Host blocks are allocated to this alignment so float loads are aligned. */
#define CPU_BLOCK_ALIGNMENT 64

static void cpu_destroy(vkt_context *ctx) { (void)ctx; }

static vkt_result cpu_block_create(vkt_context *ctx, uint64_t size, vkt_block *block) {
    if (size > SIZE_MAX)
        return vkt_error(ctx, VKT_ERROR_OUT_OF_HOST_MEMORY, "block of %llu bytes is too large",
                         (unsigned long long)size);
    block->host = aligned_alloc(CPU_BLOCK_ALIGNMENT, (size_t)size);
    if (!block->host)
        return vkt_error(ctx, VKT_ERROR_OUT_OF_HOST_MEMORY,
                         "out of host memory for a %llu-byte block", (unsigned long long)size);
    return VKT_OK;
}

static void cpu_block_destroy(vkt_context *ctx, vkt_block *block) {
    (void)ctx;
    free(block->host);
}

static vkt_result cpu_write(vkt_context *ctx, const vkt_view *dst, const void *src, uint64_t bytes) {
    (void)ctx;
    memcpy((char *)dst->block->host + dst->offset, src, (size_t)bytes);
    return VKT_OK;
}

static vkt_result cpu_read(vkt_context *ctx, const vkt_view *src, void *dst, uint64_t bytes) {
    (void)ctx;
    memcpy(dst, (const char *)src->block->host + src->offset, (size_t)bytes);
    return VKT_OK;
}

static vkt_result cpu_run(vkt_context *ctx, const vkt_node *const *nodes, size_t count) {
    (void)ctx;
    for (size_t i = 0; i < count; i++)
        vkt_op_get(nodes[i]->op)->cpu(nodes[i]);
    return VKT_OK;
}

static void cpu_query(const vkt_context *ctx, vkt_context_info *info) {
    (void)ctx;
    snprintf(info->device_name, sizeof info->device_name, "CPU reference");
    info->subgroup_size = 1;
}

static const vkt_backend_ops cpu_ops = {
    .destroy = cpu_destroy,
    .block_create = cpu_block_create,
    .block_destroy = cpu_block_destroy,
    .write = cpu_write,
    .read = cpu_read,
    .run = cpu_run,
    .query = cpu_query,
};

vkt_result vkt_cpu_backend_init(vkt_context *ctx) {
    ctx->backend = VKT_BACKEND_CPU;
    ctx->ops = &cpu_ops;
    ctx->alignment = CPU_BLOCK_ALIGNMENT;
    ctx->default_block_size = 16u << 20;
    ctx->max_tensor_bytes = UINT64_MAX / 2;
    return VKT_OK;
}
