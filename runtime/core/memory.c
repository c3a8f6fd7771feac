/* memory.c: sub-allocation of tensors from a few large backend blocks.
 *
 * Each block keeps a sorted, coalesced list of free ranges; allocation is
 * first fit. Tensors are few and long-lived (a graph's whole arena is one
 * range), so a simple list beats anything cleverer here. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

static uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

static bool ranges_reserve(vkt_block *block, uint32_t count) {
    if (count <= block->free_capacity)
        return true;
    uint32_t cap = block->free_capacity ? block->free_capacity * 2 : 8;
    while (cap < count)
        cap *= 2;
    vkt_range *r = realloc(block->free_ranges, cap * sizeof *r);
    if (!r)
        return false;
    block->free_ranges = r;
    block->free_capacity = cap;
    return true;
}

static bool block_take(vkt_block *block, uint64_t bytes, uint64_t *out_offset) {
    for (uint32_t i = 0; i < block->free_count; i++) {
        vkt_range *r = &block->free_ranges[i];
        if (r->size < bytes)
            continue;
        *out_offset = r->offset;
        r->offset += bytes;
        r->size -= bytes;
        if (r->size == 0) {
            memmove(r, r + 1, (block->free_count - i - 1) * sizeof *r);
            block->free_count--;
        }
        block->bytes_used += bytes;
        return true;
    }
    return false;
}

static vkt_result block_give_back(vkt_block *block, uint64_t offset, uint64_t bytes) {
    uint32_t i = 0;
    while (i < block->free_count && block->free_ranges[i].offset < offset)
        i++;
    bool merge_prev = i > 0 && block->free_ranges[i - 1].offset + block->free_ranges[i - 1].size == offset;
    bool merge_next = i < block->free_count && offset + bytes == block->free_ranges[i].offset;
    block->bytes_used -= bytes;
    if (merge_prev && merge_next) {
        block->free_ranges[i - 1].size += bytes + block->free_ranges[i].size;
        memmove(&block->free_ranges[i], &block->free_ranges[i + 1],
                (block->free_count - i - 1) * sizeof(vkt_range));
        block->free_count--;
    } else if (merge_prev) {
        block->free_ranges[i - 1].size += bytes;
    } else if (merge_next) {
        block->free_ranges[i].offset = offset;
        block->free_ranges[i].size += bytes;
    } else {
        if (!ranges_reserve(block, block->free_count + 1))
            return VKT_ERROR_OUT_OF_HOST_MEMORY; /* the range leaks until the block goes */
        memmove(&block->free_ranges[i + 1], &block->free_ranges[i],
                (block->free_count - i) * sizeof(vkt_range));
        block->free_ranges[i] = (vkt_range){offset, bytes};
        block->free_count++;
    }
    return VKT_OK;
}

static vkt_result add_block(vkt_context *ctx, uint64_t size, vkt_block **out_block) {
    if (ctx->block_count == VKT_MAX_BLOCKS)
        return vkt_error(ctx, VKT_ERROR_OUT_OF_DEVICE_MEMORY,
                         "all %d memory blocks are in use", VKT_MAX_BLOCKS);
    vkt_block *block = calloc(1, sizeof *block);
    if (!block || !ranges_reserve(block, 8)) {
        free(block);
        return vkt_error(ctx, VKT_ERROR_OUT_OF_HOST_MEMORY, "out of host memory for a block");
    }
    block->size = size;
    vkt_result r = ctx->ops->block_create(ctx, size, block);
    if (r != VKT_OK) {
        free(block->free_ranges);
        free(block);
        return r;
    }
    block->free_ranges[0] = (vkt_range){0, size};
    block->free_count = 1;
    ctx->blocks[ctx->block_count++] = block;
    *out_block = block;
    return VKT_OK;
}

static vkt_result memory_alloc(vkt_context *ctx, uint64_t bytes, bool one_binding,
                               vkt_view *out_view) {
    uint64_t aligned = align_up(bytes ? bytes : 1, ctx->alignment);
    if (one_binding && aligned > ctx->max_tensor_bytes)
        return vkt_error(ctx, VKT_ERROR_OUT_OF_DEVICE_MEMORY,
                         "%llu bytes exceed the %llu bytes one storage binding can address on "
                         "this device",
                         (unsigned long long)bytes, (unsigned long long)ctx->max_tensor_bytes);
    uint64_t offset;
    for (uint32_t i = 0; i < ctx->block_count; i++) {
        if (block_take(ctx->blocks[i], aligned, &offset)) {
            *out_view = (vkt_view){ctx->blocks[i], offset, bytes};
            return VKT_OK;
        }
    }
    vkt_block *block = NULL;
    uint64_t size = aligned > ctx->default_block_size ? aligned : ctx->default_block_size;
    vkt_result r = add_block(ctx, size, &block);
    if (r != VKT_OK)
        return r;
    bool ok = block_take(block, aligned, &offset);
    VKT_ASSERT(ok);
    (void)ok;
    *out_view = (vkt_view){block, offset, bytes};
    return VKT_OK;
}

vkt_result vkt_memory_alloc(vkt_context *ctx, uint64_t bytes, vkt_view *out_view) {
    return memory_alloc(ctx, bytes, true, out_view);
}

vkt_result vkt_memory_alloc_arena(vkt_context *ctx, uint64_t bytes, vkt_view *out_view) {
    return memory_alloc(ctx, bytes, false, out_view);
}

void vkt_memory_free(vkt_context *ctx, const vkt_view *view) {
    if (!view->block)
        return;
    if (view->block->borrowed) {
        ctx->ops->block_destroy(ctx, view->block);
        return;
    }
    uint64_t aligned = align_up(view->bytes ? view->bytes : 1, ctx->alignment);
    if (block_give_back(view->block, view->offset, aligned) != VKT_OK)
        vkt_log(ctx, VKT_LOG_WARNING, "free-range list full; %llu bytes unusable until destroy",
                (unsigned long long)aligned);
}

void vkt_memory_release_all(vkt_context *ctx) {
    for (uint32_t i = 0; i < ctx->block_count; i++) {
        ctx->ops->block_destroy(ctx, ctx->blocks[i]);
        free(ctx->blocks[i]->free_ranges);
        free(ctx->blocks[i]);
    }
    ctx->block_count = 0;
}
