/* vk_program.c: a whole step recorded once into a command buffer and
 * replayed with one submit per run.
 *
 * Layout of the recorded commands:
 *   barrier (earlier runs' writes)  ->  copy uploads from the io buffer
 *   barrier (copies -> shaders)     ->  every node's dispatches (with the
 *                                       recorder's minimal barriers)
 *   barrier (shaders -> copies)     ->  copy downloads into the io buffer
 *   barrier (copies -> host reads)
 * The io buffer is host-visible and persistently mapped: the host writes the
 * next batch and hyperparameters there before the submit and reads the loss
 * after the fence. Nothing is allocated or recorded per run.
 *
 * A secondary program (vk_program_create_secondary) holds only the node
 * dispatches, for an engine to execute inside its own command buffer
 * (vk_external.c records the barriers and hyperparameters around it). Both
 * kinds record their nodes through record_nodes. */
#include "vk_internal.h"

#include <stdlib.h>
#include <string.h>

struct vkt_program {
    VkCommandBuffer cmd;
    VkFence fence;
    vk_pool_chain pools;
    VkBuffer io;
    VkDeviceMemory io_memory;
    char *io_mapped;
    uint64_t *io_offsets; /* uploads, then downloads */
    uint32_t upload_count, download_count;
    vkt_program_stats stats;
};

static void barrier(vk_state *vk, VkCommandBuffer cmd, VkPipelineStageFlags src_stage,
                    VkAccessFlags src_access, VkPipelineStageFlags dst_stage,
                    VkAccessFlags dst_access) {
    VkMemoryBarrier b = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                         .srcAccessMask = src_access,
                         .dstAccessMask = dst_access};
    vk->vk.vkCmdPipelineBarrier(cmd, src_stage, dst_stage, 0, 1, &b, 0, NULL, 0, NULL);
}

static VkBuffer block_buffer(const vkt_view *v) {
    return ((vk_block *)v->block->backend_data)->buffer;
}

static void copies(vk_state *vk, vkt_program *p, const vkt_view *views, uint32_t first,
                   uint32_t count, bool to_device) {
    for (uint32_t i = 0; i < count; i++) {
        const vkt_view *v = &views[i];
        VkBufferCopy region = {
            .srcOffset = to_device ? p->io_offsets[first + i] : v->offset,
            .dstOffset = to_device ? v->offset : p->io_offsets[first + i],
            .size = v->bytes,
        };
        if (to_device)
            vk->vk.vkCmdCopyBuffer(p->cmd, p->io, block_buffer(v), 1, &region);
        else
            vk->vk.vkCmdCopyBuffer(p->cmd, block_buffer(v), p->io, 1, &region);
    }
}

/* Records the nodes' dispatches, with the recorder's minimal barriers
 * between them, into cmd: the one path for both kinds of program. */
static vkt_result record_nodes(vkt_context *ctx, VkCommandBuffer cmd, vk_pool_chain *pools,
                               const vkt_node *const *nodes, size_t count,
                               vkt_program_stats *stats) {
    vkt_recorder rec;
    vk_recorder_begin(&rec, ctx, cmd, pools);
    for (size_t i = 0; i < count; i++)
        vkt_op_get(nodes[i]->op)->record(nodes[i], &rec);
    *stats = (vkt_program_stats){rec.dispatch_count, rec.barrier_count, 1};
    return vk_recorder_end(&rec);
}

static vkt_result record(vkt_context *ctx, vkt_program *p, const vkt_program_desc *desc) {
    vk_state *vk = vk_of(ctx);
    VK_TRY(ctx, vk->vk.vkBeginCommandBuffer(
                    p->cmd, &(VkCommandBufferBeginInfo){
                                .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO}));
    const VkPipelineStageFlags work =
        VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT;
    /* Hazard: this run's copies and dispatches against the previous run's
     * (and eager calls') reads and writes of the same memory. */
    barrier(vk, p->cmd, work, VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT, work,
            VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT |
                VK_ACCESS_TRANSFER_READ_BIT | VK_ACCESS_TRANSFER_WRITE_BIT);
    copies(vk, p, desc->uploads, 0, desc->upload_count, true);
    /* Hazard: the dispatches read what the upload copies wrote. */
    barrier(vk, p->cmd, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_ACCESS_TRANSFER_WRITE_BIT,
            VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT,
            VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT);
    vkt_result r = record_nodes(ctx, p->cmd, &p->pools, desc->nodes, desc->node_count, &p->stats);
    if (r != VKT_OK) {
        vk->vk.vkEndCommandBuffer(p->cmd);
        return r;
    }
    /* Hazard: the download copies read what the dispatches wrote. */
    barrier(vk, p->cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_ACCESS_SHADER_WRITE_BIT,
            VK_PIPELINE_STAGE_TRANSFER_BIT, VK_ACCESS_TRANSFER_READ_BIT);
    copies(vk, p, desc->downloads, desc->upload_count, desc->download_count, false);
    /* Hazard: the host reads what the download copies wrote. */
    barrier(vk, p->cmd, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_ACCESS_TRANSFER_WRITE_BIT,
            VK_PIPELINE_STAGE_HOST_BIT, VK_ACCESS_HOST_READ_BIT);
    VK_TRY(ctx, vk->vk.vkEndCommandBuffer(p->cmd));
    ctx->programs_recorded++;
    return VKT_OK;
}

static void program_destroy(vkt_context *ctx, vkt_program *p) {
    if (!p)
        return;
    vk_state *vk = vk_of(ctx);
    if (p->fence)
        vk->vk.vkDestroyFence(vk->device, p->fence, NULL);
    if (p->cmd)
        vk->vk.vkFreeCommandBuffers(vk->device, vk->command_pool, 1, &p->cmd);
    vk_pool_chain_destroy(vk, &p->pools);
    if (p->io)
        vk->vk.vkDestroyBuffer(vk->device, p->io, NULL);
    if (p->io_memory)
        vk->vk.vkFreeMemory(vk->device, p->io_memory, NULL);
    free(p->io_offsets);
    free(p);
}

static vkt_result program_setup(vkt_context *ctx, vkt_program *p, const vkt_program_desc *desc) {
    vk_state *vk = vk_of(ctx);
    uint32_t n = desc->upload_count + desc->download_count;
    p->io_offsets = calloc(n ? n : 1, sizeof *p->io_offsets);
    if (!p->io_offsets)
        return vkt_error(ctx, VKT_ERROR_OUT_OF_HOST_MEMORY, "out of host memory for a program");
    uint64_t size = 0;
    for (uint32_t i = 0; i < n; i++) {
        const vkt_view *v = i < desc->upload_count ? &desc->uploads[i]
                                                   : &desc->downloads[i - desc->upload_count];
        p->io_offsets[i] = size;
        size += (v->bytes + 255) / 256 * 256;
    }
    vkt_result r = vk_buffer_create(ctx, size ? size : 256,
                                    VK_BUFFER_USAGE_TRANSFER_SRC_BIT |
                                        VK_BUFFER_USAGE_TRANSFER_DST_BIT,
                                    VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT |
                                        VK_MEMORY_PROPERTY_HOST_COHERENT_BIT,
                                    &p->io, &p->io_memory);
    if (r != VKT_OK)
        return r;
    void *mapped;
    VK_TRY(ctx, vk->vk.vkMapMemory(vk->device, p->io_memory, 0, VK_WHOLE_SIZE, 0, &mapped));
    p->io_mapped = mapped;
    VK_TRY(ctx, vk->vk.vkAllocateCommandBuffers(
                    vk->device,
                    &(VkCommandBufferAllocateInfo){
                        .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
                        .commandPool = vk->command_pool,
                        .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
                        .commandBufferCount = 1},
                    &p->cmd));
    VK_TRY(ctx, vk->vk.vkCreateFence(
                    vk->device, &(VkFenceCreateInfo){.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO},
                    NULL, &p->fence));
    p->upload_count = desc->upload_count;
    p->download_count = desc->download_count;
    return record(ctx, p, desc);
}

vkt_result vk_program_create(vkt_context *ctx, const vkt_program_desc *desc,
                             vkt_program **out_program) {
    vkt_program *p = calloc(1, sizeof *p);
    if (!p)
        return vkt_error(ctx, VKT_ERROR_OUT_OF_HOST_MEMORY, "out of host memory for a program");
    vkt_result r = program_setup(ctx, p, desc);
    if (r != VKT_OK) {
        program_destroy(ctx, p);
        return r;
    }
    *out_program = p;
    return VKT_OK;
}

void vk_program_destroy(vkt_context *ctx, vkt_program *p) { program_destroy(ctx, p); }

void *vk_program_upload_ptr(vkt_program *p, uint32_t index) {
    return p->io_mapped + p->io_offsets[index];
}

const void *vk_program_download_ptr(vkt_program *p, uint32_t index) {
    return p->io_mapped + p->io_offsets[p->upload_count + index];
}

vkt_result vk_program_run(vkt_context *ctx, vkt_program *p) {
    return vk_submit_wait(ctx, p->cmd, p->fence, "step");
}

void vk_program_stats(const vkt_program *p, vkt_program_stats *stats) { *stats = p->stats; }

static vkt_result secondary_setup(vkt_context *ctx, vkt_program *p, const vkt_node *const *nodes,
                                  size_t node_count) {
    vk_state *vk = vk_of(ctx);
    VK_TRY(ctx, vk->vk.vkAllocateCommandBuffers(
                    vk->device,
                    &(VkCommandBufferAllocateInfo){
                        .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
                        .commandPool = vk->command_pool,
                        .level = VK_COMMAND_BUFFER_LEVEL_SECONDARY,
                        .commandBufferCount = 1},
                    &p->cmd));
    /* Simultaneous use: an engine may execute it several times in one
     * primary (several steps per frame) and in primaries of frames still in
     * flight. No render pass is inherited: these are compute dispatches. */
    VK_TRY(ctx, vk->vk.vkBeginCommandBuffer(
                    p->cmd, &(VkCommandBufferBeginInfo){
                                .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
                                .flags = VK_COMMAND_BUFFER_USAGE_SIMULTANEOUS_USE_BIT,
                                .pInheritanceInfo = &(VkCommandBufferInheritanceInfo){
                                    .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_INHERITANCE_INFO}}));
    vkt_result r = record_nodes(ctx, p->cmd, &p->pools, nodes, node_count, &p->stats);
    p->stats.submits_per_run = 0; /* the engine submits */
    if (r != VKT_OK) {
        vk->vk.vkEndCommandBuffer(p->cmd);
        return r;
    }
    VK_TRY(ctx, vk->vk.vkEndCommandBuffer(p->cmd));
    ctx->programs_recorded++;
    return VKT_OK;
}

vkt_result vk_program_create_secondary(vkt_context *ctx, const vkt_node *const *nodes,
                                       size_t node_count, vkt_program **out_program) {
    vkt_program *p = calloc(1, sizeof *p);
    if (!p)
        return vkt_error(ctx, VKT_ERROR_OUT_OF_HOST_MEMORY, "out of host memory for a program");
    vkt_result r = secondary_setup(ctx, p, nodes, node_count);
    if (r != VKT_OK) {
        program_destroy(ctx, p);
        return r;
    }
    *out_program = p;
    return VKT_OK;
}

VkCommandBuffer vk_program_command_buffer(const vkt_program *p) { return p->cmd; }
