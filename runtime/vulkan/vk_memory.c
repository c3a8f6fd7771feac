/* vk_memory.c: device-local blocks (one VkBuffer each, tensors are ranges of
 * it) and host transfers through a persistently mapped staging buffer. */
#include "vk_internal.h"

#include <stdlib.h>
#include <string.h>

/* Staging grows to this size at most; larger transfers go in pieces. */
#define STAGING_MAX ((uint64_t)32 << 20)

vkt_result vk_find_memory_type(vkt_context *ctx, uint32_t type_bits, VkMemoryPropertyFlags want,
                               uint32_t *out_index) {
    const VkPhysicalDeviceMemoryProperties *mp = &vk_of(ctx)->memory_props;
    for (uint32_t i = 0; i < mp->memoryTypeCount; i++) {
        if ((type_bits & (1u << i)) && (mp->memoryTypes[i].propertyFlags & want) == want) {
            *out_index = i;
            return VKT_OK;
        }
    }
    return vkt_error(ctx, VKT_ERROR_UNSUPPORTED, "no memory type with properties 0x%x",
                     (unsigned)want);
}

vkt_result vk_buffer_create(vkt_context *ctx, uint64_t size, VkBufferUsageFlags usage,
                            VkMemoryPropertyFlags want, VkBuffer *out_buffer,
                            VkDeviceMemory *out_memory) {
    vk_state *vk = vk_of(ctx);
    VkBuffer buffer;
    VK_TRY(ctx, vk->vk.vkCreateBuffer(vk->device,
                                      &(VkBufferCreateInfo){
                                          .sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO,
                                          .size = size,
                                          .usage = usage,
                                          .sharingMode = VK_SHARING_MODE_EXCLUSIVE},
                                      NULL, &buffer));
    VkMemoryRequirements req;
    vk->vk.vkGetBufferMemoryRequirements(vk->device, buffer, &req);
    uint32_t type = 0;
    vkt_result r = vk_find_memory_type(ctx, req.memoryTypeBits, want, &type);
    VkDeviceMemory memory = VK_NULL_HANDLE;
    if (r == VKT_OK) {
        VkResult vr = VK_FAULT(ALLOCATION, vk->vk.vkAllocateMemory(vk->device,
                                              &(VkMemoryAllocateInfo){
                                                  .sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO,
                                                  .allocationSize = req.size,
                                                  .memoryTypeIndex = type},
                                              NULL, &memory));
        r = vk_check(ctx, vr, "vkAllocateMemory");
    }
    if (r == VKT_OK)
        r = vk_check(ctx, vk->vk.vkBindBufferMemory(vk->device, buffer, memory, 0),
                     "vkBindBufferMemory");
    if (r != VKT_OK) {
        if (memory)
            vk->vk.vkFreeMemory(vk->device, memory, NULL);
        vk->vk.vkDestroyBuffer(vk->device, buffer, NULL);
        return r;
    }
    *out_buffer = buffer;
    *out_memory = memory;
    return VKT_OK;
}

vkt_result vk_block_create(vkt_context *ctx, uint64_t size, vkt_block *block) {
    vk_block *b = calloc(1, sizeof *b);
    if (!b)
        return vkt_error(ctx, VKT_ERROR_OUT_OF_HOST_MEMORY, "out of host memory");
    /* Texel usage lets kernels read tensors through buffer views
     * (vkt_dispatch.texel_mask). */
    VkBufferUsageFlags usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT |
                               VK_BUFFER_USAGE_TRANSFER_SRC_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT;
    if (vk_of(ctx)->texel_buffers)
        usage |= VK_BUFFER_USAGE_UNIFORM_TEXEL_BUFFER_BIT;
    vkt_result r = vk_buffer_create(ctx, size, usage, VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT,
                                    &b->buffer, &b->memory);
    if (r != VKT_OK) {
        free(b);
        return r;
    }
    block->backend_data = b;
    return VKT_OK;
}

void vk_block_destroy(vkt_context *ctx, vkt_block *block) {
    if (block->borrowed) { /* the engine's buffer: never ours to destroy */
        vk_borrowed_release(ctx, block);
        return;
    }
    vk_state *vk = vk_of(ctx);
    vk_block *b = block->backend_data;
    vk->vk.vkDestroyBuffer(vk->device, b->buffer, NULL);
    vk->vk.vkFreeMemory(vk->device, b->memory, NULL);
    free(b);
}

void vk_staging_destroy(vk_state *vk) {
    if (vk->staging)
        vk->vk.vkDestroyBuffer(vk->device, vk->staging, NULL);
    if (vk->staging_memory)
        vk->vk.vkFreeMemory(vk->device, vk->staging_memory, NULL);
    vk->staging = VK_NULL_HANDLE;
    vk->staging_memory = VK_NULL_HANDLE;
    vk->staging_mapped = NULL;
    vk->staging_size = 0;
}

/* Grows the staging buffer to hold `bytes` (capped at STAGING_MAX). Kept
 * between calls: first touches of new host memory are slow. */
static vkt_result staging_reserve(vkt_context *ctx, uint64_t bytes) {
    vk_state *vk = vk_of(ctx);
    if (bytes > STAGING_MAX)
        bytes = STAGING_MAX;
    if (vk->staging_size >= bytes)
        return VKT_OK;
    uint64_t size = vk->staging_size ? vk->staging_size : (1u << 20);
    while (size < bytes)
        size *= 2;
    vk_staging_destroy(vk);
    vkt_result r = vk_buffer_create(ctx, size,
                                    VK_BUFFER_USAGE_TRANSFER_SRC_BIT |
                                        VK_BUFFER_USAGE_TRANSFER_DST_BIT,
                                    VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT |
                                        VK_MEMORY_PROPERTY_HOST_COHERENT_BIT,
                                    &vk->staging, &vk->staging_memory);
    if (r != VKT_OK)
        return r;
    VkResult vr = vk->vk.vkMapMemory(vk->device, vk->staging_memory, 0, VK_WHOLE_SIZE, 0,
                                     &vk->staging_mapped);
    if (vr != VK_SUCCESS) {
        vk_staging_destroy(vk);
        return vk_check(ctx, vr, "vkMapMemory(staging)");
    }
    vk->staging_size = size;
    return VKT_OK;
}

/* Copies one piece between staging and a block; vk_begin_eager's barrier
 * orders it after earlier work on the block. */
static vkt_result copy_piece(vkt_context *ctx, const vkt_view *view, uint64_t offset,
                             uint64_t bytes, bool to_device) {
    vk_state *vk = vk_of(ctx);
    vkt_result r = vk_begin_eager(ctx);
    if (r != VKT_OK)
        return r;
    VkCommandBuffer cmd = vk->eager_cmd;
    VkBuffer block = ((vk_block *)view->block->backend_data)->buffer;
    VkBufferCopy region = {
        .srcOffset = to_device ? 0 : view->offset + offset,
        .dstOffset = to_device ? view->offset + offset : 0,
        .size = bytes,
    };
    if (to_device)
        vk->vk.vkCmdCopyBuffer(cmd, vk->staging, block, 1, &region);
    else
        vk->vk.vkCmdCopyBuffer(cmd, block, vk->staging, 1, &region);
    /* Hazard: later dispatches read what the copy wrote; the host reads staging. */
    VkMemoryBarrier after = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                             .srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT,
                             .dstAccessMask = VK_ACCESS_SHADER_READ_BIT |
                                              VK_ACCESS_SHADER_WRITE_BIT |
                                              VK_ACCESS_HOST_READ_BIT};
    vk->vk.vkCmdPipelineBarrier(cmd, VK_PIPELINE_STAGE_TRANSFER_BIT,
                                VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_HOST_BIT,
                                0, 1, &after, 0, NULL, 0, NULL);
    return vk_submit_eager(ctx);
}

vkt_result vk_write(vkt_context *ctx, const vkt_view *dst, const void *src, uint64_t bytes) {
    vkt_result r = staging_reserve(ctx, bytes);
    vk_state *vk = vk_of(ctx);
    for (uint64_t done = 0; r == VKT_OK && done < bytes;) {
        uint64_t piece = bytes - done < vk->staging_size ? bytes - done : vk->staging_size;
        memcpy(vk->staging_mapped, (const char *)src + done, (size_t)piece);
        r = copy_piece(ctx, dst, done, piece, true);
        done += piece;
    }
    return r;
}

vkt_result vk_read(vkt_context *ctx, const vkt_view *src, void *dst, uint64_t bytes) {
    vkt_result r = staging_reserve(ctx, bytes);
    vk_state *vk = vk_of(ctx);
    for (uint64_t done = 0; r == VKT_OK && done < bytes;) {
        uint64_t piece = bytes - done < vk->staging_size ? bytes - done : vk->staging_size;
        r = copy_piece(ctx, src, done, piece, false);
        if (r == VKT_OK)
            memcpy((char *)dst + done, vk->staging_mapped, (size_t)piece);
        done += piece;
    }
    return r;
}
