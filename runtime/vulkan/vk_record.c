/* vk_record.c: recording dispatches with the barriers they need, descriptor
 * sets (and the buffer views of texel bindings), and one-shot (eager)
 * submission. */
#include "vk_internal.h"

#include <stdlib.h>
#include <string.h>

/* Sets per pool; a chain grows by whole pools when one runs out. */
#define SETS_PER_POOL 256

const vkt_tuning *vkt_recorder_tuning(const vkt_recorder *rec) {
    return &vk_of(rec->ctx)->tuning;
}

/* Buffer views live as long as the descriptor sets that name them. */
static void destroy_views(vk_state *vk, vk_pool_chain *chain) {
    for (uint32_t i = 0; i < chain->view_count; i++)
        vk->vk.vkDestroyBufferView(vk->device, chain->views[i], NULL);
    chain->view_count = 0;
}

void vk_pool_chain_destroy(vk_state *vk, vk_pool_chain *chain) {
    for (uint32_t i = 0; i < chain->count; i++)
        vk->vk.vkDestroyDescriptorPool(vk->device, chain->pools[i], NULL);
    destroy_views(vk, chain);
    free(chain->pools);
    free(chain->views);
    *chain = (vk_pool_chain){0};
}

bool vkt_recorder_texel_ok(const vkt_recorder *rec, const vkt_view *view, bool vec4) {
    const vk_state *vk = vk_of(rec->ctx);
    const VkPhysicalDeviceLimits *lim = &vk->props.limits;
    uint64_t texel = vec4 ? 16 : 4;
    uint64_t align = lim->minTexelBufferOffsetAlignment ? lim->minTexelBufferOffsetAlignment : 1;
    /* An engine's wrapped buffer need not have texel-buffer usage. */
    uint64_t texels = (view->bytes + texel - 1) / texel;
    return vk->texel_buffers && !view->block->borrowed && view->offset % align == 0 &&
           view->offset % texel == 0 && texels <= lim->maxTexelBufferElements &&
           view->offset + texels * texel <= view->block->size;
}

/* A view of `v` as texels. A vec4 view's range is rounded up to whole
 * texels (allocations are 256-byte aligned and sized, so there is room);
 * the kernels never use the padding. */
static vkt_result texel_view(vkt_context *ctx, vk_pool_chain *chain, const vkt_view *v, bool vec4,
                             VkBufferView *out_view) {
    vk_state *vk = vk_of(ctx);
    if (chain->view_count == chain->view_capacity) {
        uint32_t cap = chain->view_capacity ? chain->view_capacity * 2 : 16;
        VkBufferView *p = realloc(chain->views, cap * sizeof *p);
        if (!p)
            return vkt_error(ctx, VKT_ERROR_OUT_OF_HOST_MEMORY, "out of host memory");
        chain->views = p;
        chain->view_capacity = cap;
    }
    uint64_t texel = vec4 ? 16 : 4;
    uint64_t range = (v->bytes + texel - 1) / texel * texel; /* fits: vkt_recorder_texel_ok */
    VK_TRY(ctx, vk->vk.vkCreateBufferView(
                    vk->device,
                    &(VkBufferViewCreateInfo){
                        .sType = VK_STRUCTURE_TYPE_BUFFER_VIEW_CREATE_INFO,
                        .buffer = ((vk_block *)v->block->backend_data)->buffer,
                        .format = vec4 ? VK_FORMAT_R32G32B32A32_SFLOAT : VK_FORMAT_R32_SFLOAT,
                        .offset = v->offset,
                        .range = range},
                    NULL, out_view));
    chain->views[chain->view_count++] = *out_view;
    return VKT_OK;
}

static vkt_result pool_chain_grow(vkt_context *ctx, vk_pool_chain *chain) {
    vk_state *vk = vk_of(ctx);
    if (chain->count == chain->capacity) {
        uint32_t cap = chain->capacity ? chain->capacity * 2 : 4;
        VkDescriptorPool *p = realloc(chain->pools, cap * sizeof *p);
        if (!p)
            return vkt_error(ctx, VKT_ERROR_OUT_OF_HOST_MEMORY, "out of host memory");
        chain->pools = p;
        chain->capacity = cap;
    }
    /* Texel bindings are rare (matmul operands): two per set on average. */
    VkDescriptorPoolSize sizes[2] = {
        {VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, SETS_PER_POOL * VK_MAX_BINDINGS},
        {VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER, SETS_PER_POOL * 2},
    };
    VK_TRY(ctx, vk->vk.vkCreateDescriptorPool(
                    vk->device,
                    &(VkDescriptorPoolCreateInfo){
                        .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO,
                        .maxSets = SETS_PER_POOL,
                        .poolSizeCount = vk->texel_buffers ? 2 : 1,
                        .pPoolSizes = sizes},
                    NULL, &chain->pools[chain->count]));
    chain->count++;
    return VKT_OK;
}

static vkt_result allocate_set(vkt_context *ctx, vk_pool_chain *chain,
                               VkDescriptorSetLayout layout, VkDescriptorSet *out_set) {
    vk_state *vk = vk_of(ctx);
    if (chain->count == 0) {
        vkt_result r = pool_chain_grow(ctx, chain);
        if (r != VKT_OK)
            return r;
    }
    for (int attempt = 0; attempt < 2; attempt++) {
        VkResult vr = vk->vk.vkAllocateDescriptorSets(
            vk->device,
            &(VkDescriptorSetAllocateInfo){
                .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO,
                .descriptorPool = chain->pools[chain->count - 1],
                .descriptorSetCount = 1,
                .pSetLayouts = &layout},
            out_set);
        if (vr == VK_SUCCESS)
            return VKT_OK;
        if (vr != VK_ERROR_OUT_OF_POOL_MEMORY && vr != VK_ERROR_FRAGMENTED_POOL)
            return vk_check(ctx, vr, "vkAllocateDescriptorSets");
        vkt_result r = pool_chain_grow(ctx, chain);
        if (r != VKT_OK)
            return r;
    }
    return vkt_error(ctx, VKT_ERROR_VULKAN, "vkAllocateDescriptorSets failed on a new pool");
}

void vk_recorder_begin(vkt_recorder *rec, vkt_context *ctx, VkCommandBuffer cmd,
                       vk_pool_chain *pools) {
    *rec = (vkt_recorder){.ctx = ctx, .cmd = cmd, .pools = pools};
}

vkt_result vk_recorder_end(vkt_recorder *rec) {
    free(rec->pending);
    rec->pending = NULL;
    return rec->status;
}

static bool conflicts(const vkt_recorder *rec, const vkt_view *view, bool write) {
    uint64_t begin = view->offset, end = view->offset + view->bytes;
    for (uint32_t i = 0; i < rec->pending_count; i++) {
        const vk_access *a = &rec->pending[i];
        if (a->block == view->block && begin < a->end && a->offset < end && (write || a->write))
            return true;
    }
    return false;
}

static void track(vkt_recorder *rec, const vkt_view *view, bool write) {
    if (rec->pending_count == rec->pending_capacity) {
        uint32_t cap = rec->pending_capacity ? rec->pending_capacity * 2 : 32;
        vk_access *p = realloc(rec->pending, cap * sizeof *p);
        if (!p) {
            rec->status = vkt_error(rec->ctx, VKT_ERROR_OUT_OF_HOST_MEMORY, "out of host memory");
            return;
        }
        rec->pending = p;
        rec->pending_capacity = cap;
    }
    rec->pending[rec->pending_count++] =
        (vk_access){view->block, view->offset, view->offset + view->bytes, write};
}

void vkt_record_dispatch(vkt_recorder *rec, const vkt_dispatch *d) {
    if (rec->status != VKT_OK)
        return;
    if (d->view_count < 1 || d->view_count > VK_MAX_BINDINGS) { /* an op's bug, not the caller's */
        rec->status = vkt_error(rec->ctx, VKT_ERROR_INVALID_ARGUMENT,
                                "kernel %d binds %u buffers (1 to %d allowed)", (int)d->kernel,
                                d->view_count, VK_MAX_BINDINGS);
        return;
    }
    vkt_context *ctx = rec->ctx;
    vk_state *vk = vk_of(ctx);
    VkPipeline pipeline;
    VkDescriptorSetLayout set_layout;
    VkPipelineLayout layout;
    rec->status = vk_pipeline_get(ctx, d->kernel, d->spec, d->spec_count, d->view_count,
                                  d->texel_mask, &pipeline);
    if (rec->status == VKT_OK)
        rec->status = vk_layout_get(ctx, d->view_count, d->texel_mask, &set_layout, &layout);
    VkDescriptorSet set;
    if (rec->status == VKT_OK)
        rec->status = allocate_set(ctx, rec->pools, set_layout, &set);
    if (rec->status != VKT_OK)
        return;

    VkDescriptorBufferInfo buffers[VK_MAX_BINDINGS];
    VkBufferView texels[VK_MAX_BINDINGS];
    VkWriteDescriptorSet writes[VK_MAX_BINDINGS];
    bool need_barrier = false;
    /* view_count <= VK_MAX_BINDINGS was checked above; the bound is repeated
     * so the compiler can see the arrays are never overrun. */
    uint32_t bindings = d->view_count < VK_MAX_BINDINGS ? d->view_count : VK_MAX_BINDINGS;
    for (uint32_t i = 0; i < bindings; i++) {
        const vkt_view *v = d->views[i];
        writes[i] = (VkWriteDescriptorSet){.sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET,
                                           .dstSet = set,
                                           .dstBinding = i,
                                           .descriptorCount = 1,
                                           .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                                           .pBufferInfo = &buffers[i]};
        if ((d->texel_mask >> i) & 1) {
            VKT_ASSERT(!((d->write_mask >> i) & 1));
            rec->status = texel_view(ctx, rec->pools, v, (d->texel_vec4_mask >> i) & 1, &texels[i]);
            if (rec->status != VKT_OK)
                return;
            writes[i].descriptorType = VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER;
            writes[i].pBufferInfo = NULL;
            writes[i].pTexelBufferView = &texels[i];
        } else {
            buffers[i] = (VkDescriptorBufferInfo){((vk_block *)v->block->backend_data)->buffer,
                                                  v->offset, v->bytes};
        }
        need_barrier = need_barrier || conflicts(rec, v, (d->write_mask >> i) & 1);
    }
    vk->vk.vkUpdateDescriptorSets(vk->device, d->view_count, writes, 0, NULL);

    if (need_barrier) {
        /* Hazard: this dispatch reads or overwrites a range that a dispatch
         * since the last barrier wrote (RAW/WAW), or overwrites one it read
         * (WAR). A global memory barrier covers all three. */
        VkMemoryBarrier barrier = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                                   .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT |
                                                    VK_ACCESS_SHADER_READ_BIT,
                                   .dstAccessMask = VK_ACCESS_SHADER_READ_BIT |
                                                    VK_ACCESS_SHADER_WRITE_BIT};
        vk->vk.vkCmdPipelineBarrier(rec->cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT,
                                    VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, 0, 1, &barrier, 0, NULL,
                                    0, NULL);
        rec->pending_count = 0;
        rec->barrier_count++;
    }
    for (uint32_t i = 0; i < d->view_count; i++)
        track(rec, d->views[i], (d->write_mask >> i) & 1);

    uint32_t push[32];
    const void *push_data = d->push;
    if (d->kernel == vk->perturbed_kernel && d->push_size >= 4 && d->push_size <= sizeof push) {
        memcpy(push, d->push, d->push_size);
        push[0] = push[0] > 0 ? push[0] - 1 : 0;
        push_data = push;
    }
    if (rec->profiler) /* after the barrier: the gap since the last dispatch is its cost */
        vk_profile_before_dispatch(rec);
    vk->vk.vkCmdBindPipeline(rec->cmd, VK_PIPELINE_BIND_POINT_COMPUTE, pipeline);
    vk->vk.vkCmdBindDescriptorSets(rec->cmd, VK_PIPELINE_BIND_POINT_COMPUTE, layout, 0, 1, &set, 0,
                                   NULL);
    if (d->push_size)
        vk->vk.vkCmdPushConstants(rec->cmd, layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, d->push_size,
                                  push_data);
    vk->vk.vkCmdDispatch(rec->cmd, d->groups[0], d->groups[1], d->groups[2]);
    rec->dispatch_count++;
    if (rec->profiler)
        vk_profile_after_dispatch(rec, d->kernel, need_barrier);
}

vkt_result vk_begin_eager(vkt_context *ctx) {
    vk_state *vk = vk_of(ctx);
    if (vk->lost)
        return vk_lost_error(ctx, "eager submit");
    VK_TRY(ctx, vk->vk.vkResetCommandBuffer(vk->eager_cmd, 0));
    VK_TRY(ctx, vk->vk.vkBeginCommandBuffer(
                    vk->eager_cmd,
                    &(VkCommandBufferBeginInfo){
                        .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
                        .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT}));
    /* Hazard: this submit's copies and dispatches against what earlier
     * submits' copies and dispatches wrote or read. */
    VkMemoryBarrier barrier = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                               .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT |
                                                VK_ACCESS_TRANSFER_WRITE_BIT,
                               .dstAccessMask = VK_ACCESS_SHADER_READ_BIT |
                                                VK_ACCESS_SHADER_WRITE_BIT |
                                                VK_ACCESS_TRANSFER_READ_BIT |
                                                VK_ACCESS_TRANSFER_WRITE_BIT};
    VkPipelineStageFlags stages =
        VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT;
    vk->vk.vkCmdPipelineBarrier(vk->eager_cmd, stages, stages, 0, 1, &barrier, 0, NULL, 0, NULL);
    return VKT_OK;
}

/* Ends, submits and waits for the eager command buffer, then recycles its
 * descriptor sets. */
vkt_result vk_submit_wait(vkt_context *ctx, VkCommandBuffer cmd, VkFence fence,
                          const char *what) {
    vk_state *vk = vk_of(ctx);
    if (vk->lost)
        return vk_lost_error(ctx, what);
    VK_TRY(ctx, VK_FAULT(SUBMIT, vk->vk.vkQueueSubmit(vk->queue, 1,
                                     &(VkSubmitInfo){.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO,
                                                     .commandBufferCount = 1,
                                                     .pCommandBuffers = &cmd},
                                     fence)));
    ctx->submits++;
    VkResult vr = vk->vk.vkWaitForFences(vk->device, 1, &fence, VK_TRUE, UINT64_MAX);
    vk->vk.vkResetFences(vk->device, 1, &fence);
    return vk_check(ctx, vr, what);
}

vkt_result vk_submit_eager(vkt_context *ctx) {
    vk_state *vk = vk_of(ctx);
    VK_TRY(ctx, vk->vk.vkEndCommandBuffer(vk->eager_cmd));
    vkt_result r = vk_submit_wait(ctx, vk->eager_cmd, vk->eager_fence, "eager submit");
    for (uint32_t i = 0; i < vk->eager_pools.count; i++)
        vk->vk.vkResetDescriptorPool(vk->device, vk->eager_pools.pools[i], 0);
    destroy_views(vk, &vk->eager_pools);
    return r;
}

vkt_result vk_run(vkt_context *ctx, const vkt_node *const *nodes, size_t count) {
    vk_state *vk = vk_of(ctx);
    vkt_result r = vk_begin_eager(ctx);
    if (r != VKT_OK)
        return r;
    vkt_recorder rec;
    vk_recorder_begin(&rec, ctx, vk->eager_cmd, &vk->eager_pools);
    for (size_t i = 0; i < count; i++)
        vkt_op_get(nodes[i]->op)->record(nodes[i], &rec);
    r = vk_recorder_end(&rec);
    if (r != VKT_OK) {
        vk->vk.vkEndCommandBuffer(vk->eager_cmd);
        return r;
    }
    return vk_submit_eager(ctx);
}
