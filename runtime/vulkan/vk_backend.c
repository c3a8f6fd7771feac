/* vk_backend.c: the Vulkan backend's lifetime: logical device, queue,
 * command pool, per-device tuning, and the backend ops table. */
#include "vk_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Launch parameters from the device's limits. CPU devices (lavapipe) run a
 * workgroup's invocations as SIMD lanes, so they want small workgroups and
 * big per-invocation register blocks; GPUs want many invocations. */
void vk_tuning_choose(vk_state *vk) {
    const VkPhysicalDeviceLimits *lim = &vk->props.limits;
    bool cpu = vk->props.deviceType == VK_PHYSICAL_DEVICE_TYPE_CPU;
    uint32_t max_inv = lim->maxComputeWorkGroupInvocations;
    vkt_tuning t = {
        .subgroup_size = vk->subgroup_size,
        .workgroup_1d = cpu ? 64 : 256,
        .matmul_wg_x = cpu ? 8 : 16,
        .matmul_wg_y = cpu ? 4 : 16,
        .matmul_tm = 4,
        .matmul_tn = 4,
        .reduce_wg = 64,
        .conv_wg_x = cpu ? 8 : 16,
        .conv_wg_y = cpu ? 4 : 8,
        .conv_tm = 4,
        .conv_tn = 4,
        .conv_reduce_wg = cpu ? 64 : 128,
        .conv_batch_chunk = 8,
    };
    if (t.workgroup_1d > max_inv)
        t.workgroup_1d = max_inv;
    if (t.reduce_wg > max_inv)
        t.reduce_wg = max_inv;
    while (t.matmul_wg_x * t.matmul_wg_y > max_inv)
        t.matmul_wg_y /= 2;
    while (t.conv_wg_x * t.conv_wg_y > max_inv)
        t.conv_wg_y /= 2;
    /* conv2d_bwd_weight keeps conv_reduce_wg * tm * tn partial sums in
     * shared memory; Vulkan guarantees only 16 KiB. */
    while (t.conv_reduce_wg > max_inv ||
           t.conv_reduce_wg * t.conv_tm * t.conv_tn * 4 > lim->maxComputeSharedMemorySize)
        t.conv_reduce_wg /= 2;
    vk->tuning = t;
}

static vkt_result create_device(vkt_context *ctx, vk_state *vk) {
    vkt_device_info info;
    vk_device_info_fill(vk->physical_device, &info);
    if (!info.suitable)
        return vkt_error(ctx, VKT_ERROR_UNSUPPORTED, "device '%s' cannot be used: %s", info.name,
                         info.unsuitable_reason);
    uint32_t count = 0;
    vkGetPhysicalDeviceQueueFamilyProperties(vk->physical_device, &count, NULL);
    VkQueueFamilyProperties families[32];
    count = count > 32 ? 32 : count;
    vkGetPhysicalDeviceQueueFamilyProperties(vk->physical_device, &count, families);
    /* Prefer a compute-only family (async compute on GPUs), else any with compute. */
    uint32_t family = UINT32_MAX;
    for (uint32_t i = 0; i < count; i++) {
        if (!(families[i].queueFlags & VK_QUEUE_COMPUTE_BIT))
            continue;
        if (family == UINT32_MAX || !(families[i].queueFlags & VK_QUEUE_GRAPHICS_BIT))
            family = i;
    }
    float priority = 1.0f;
    VkDeviceCreateInfo create = {
        .sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO,
        .queueCreateInfoCount = 1,
        .pQueueCreateInfos = &(VkDeviceQueueCreateInfo){
            .sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO,
            .queueFamilyIndex = family,
            .queueCount = 1,
            .pQueuePriorities = &priority,
        },
    };
    VK_TRY(ctx, vkCreateDevice(vk->physical_device, &create, NULL, &vk->device));
    vk->own_device = true;
    vk->queue_family = family;
    return VKT_OK;
}

static void vk_destroy(vkt_context *ctx) {
    vk_state *vk = vk_of(ctx);
    if (!vk)
        return;
    if (vk->device && vk->vk.vkDestroyDevice) { /* the device table is loaded */
        if (vk->queue)
            vk->vk.vkQueueWaitIdle(vk->queue);
        vk_staging_destroy(vk);
        vk_pool_chain_destroy(vk, &vk->eager_pools);
        if (vk->eager_fence)
            vk->vk.vkDestroyFence(vk->device, vk->eager_fence, NULL);
        if (vk->command_pool)
            vk->vk.vkDestroyCommandPool(vk->device, vk->command_pool, NULL);
        vk_pipelines_destroy(vk);
        if (vk->own_device)
            vk->vk.vkDestroyDevice(vk->device, NULL);
    }
    if (vk->messenger) {
        /* Not volk's global pointer: it belongs to whichever instance was
         * loaded last (another context's, or vkt_device_list's, which lacks
         * debug utils and leaves it NULL). Ask this context's instance. */
        PFN_vkDestroyDebugUtilsMessengerEXT destroy_messenger =
            (PFN_vkDestroyDebugUtilsMessengerEXT)vkGetInstanceProcAddr(
                vk->instance, "vkDestroyDebugUtilsMessengerEXT");
        if (destroy_messenger)
            destroy_messenger(vk->instance, vk->messenger, NULL);
    }
    if (vk->own_instance && vk->instance)
        vkDestroyInstance(vk->instance, NULL);
    free(vk);
    ctx->backend_state = NULL;
}

static vkt_result vk_wait_idle(vkt_context *ctx) {
    vk_state *vk = vk_of(ctx);
    VK_TRY(ctx, vk->vk.vkQueueWaitIdle(vk->queue));
    return VKT_OK;
}

static void vk_query(const vkt_context *ctx, vkt_context_info *info) {
    const vk_state *vk = vk_of(ctx);
    snprintf(info->device_name, sizeof info->device_name, "%s", vk->props.deviceName);
    info->device_index = vk->device_index;
    info->subgroup_size = vk->subgroup_size;
    info->validation = vk->validation;
    info->adopted = !vk->own_device;
}

static const vkt_backend_ops vulkan_ops = {
    .destroy = vk_destroy,
    .block_create = vk_block_create,
    .block_destroy = vk_block_destroy,
    .write = vk_write,
    .read = vk_read,
    .run = vk_run,
    .wait_idle = vk_wait_idle,
    .query = vk_query,
    .program_create = vk_program_create,
    .program_destroy = vk_program_destroy,
    .program_upload_ptr = vk_program_upload_ptr,
    .program_download_ptr = vk_program_download_ptr,
    .program_run = vk_program_run,
    .program_stats = vk_program_stats,
};

uint64_t vkt_context_validation_messages(const vkt_context *ctx) {
    if (!ctx || ctx->backend != VKT_BACKEND_VULKAN)
        return 0;
    return atomic_load(&vk_of(ctx)->validation_messages);
}

/* Adopting an engine's device: take its handles as they are. */
static vkt_result adopt(vkt_context *ctx, vk_state *vk, const vkt_vulkan_external *ext) {
    if (!ext->instance || !ext->physical_device || !ext->device || !ext->queue)
        return vkt_error(ctx, VKT_ERROR_INVALID_ARGUMENT,
                         "desc->external: instance, physical_device, device and queue are all "
                         "required");
    if (ext->get_instance_proc_addr)
        volkInitializeCustom((PFN_vkGetInstanceProcAddr)ext->get_instance_proc_addr);
    vk->instance = (VkInstance)ext->instance;
    volkLoadInstanceOnly(vk->instance);
    vk->physical_device = (VkPhysicalDevice)ext->physical_device;
    vk->device = (VkDevice)ext->device;
    vk->queue = (VkQueue)ext->queue;
    vk->queue_family = ext->queue_family_index;
    uint32_t count = 0;
    vkGetPhysicalDeviceQueueFamilyProperties(vk->physical_device, &count, NULL);
    VkQueueFamilyProperties families[32];
    count = count > 32 ? 32 : count;
    vkGetPhysicalDeviceQueueFamilyProperties(vk->physical_device, &count, families);
    if (vk->queue_family >= count || !(families[vk->queue_family].queueFlags & VK_QUEUE_COMPUTE_BIT))
        return vkt_error(ctx, VKT_ERROR_UNSUPPORTED,
                         "desc->external: queue family %u does not support compute",
                         vk->queue_family);
    return VKT_OK;
}

static vkt_result init_device(vkt_context *ctx, vk_state *vk) {
    vkt_result r = vk_loader_init(ctx);
    if (r != VKT_OK)
        return r;
    if (ctx->desc.external) {
        r = adopt(ctx, vk, ctx->desc.external);
    } else {
        r = vk_instance_create(ctx, ctx->desc.validation, &vk->instance, &vk->messenger);
        if (r != VKT_OK)
            return r;
        vk->own_instance = true;
        vk->validation = ctx->desc.validation;
        r = vk_pick_device(ctx, vk->instance, ctx->desc.device, &vk->physical_device,
                           &vk->device_index);
        if (r == VKT_OK)
            r = create_device(ctx, vk);
    }
    if (r != VKT_OK)
        return r;
    volkLoadDeviceTable(&vk->vk, vk->device);
    if (vk->own_device)
        vk->vk.vkGetDeviceQueue(vk->device, vk->queue_family, 0, &vk->queue);

    VkPhysicalDeviceSubgroupProperties subgroup = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES};
    VkPhysicalDeviceProperties2 props = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2,
                                         .pNext = &subgroup};
    vkGetPhysicalDeviceProperties2(vk->physical_device, &props);
    vk->props = props.properties;
    vk->subgroup_size = subgroup.subgroupSize;
    vkGetPhysicalDeviceMemoryProperties(vk->physical_device, &vk->memory_props);
    vk_tuning_choose(vk);
    vk->perturbed_kernel = VKT_KERNEL_COUNT;
    const char *perturb = getenv("VKT_TEST_PERTURB");
    for (uint32_t k = 0; perturb && k < VKT_KERNEL_COUNT; k++) {
        size_t bytes;
        const char *name;
        vk_kernel_spirv((vkt_kernel)k, &bytes, &name);
        if (strcmp(name, perturb) == 0) {
            vk->perturbed_kernel = (vkt_kernel)k;
            vkt_log(ctx, VKT_LOG_WARNING, "VKT_TEST_PERTURB: kernel '%s' is deliberately wrong",
                    name);
        }
    }

    VK_TRY(ctx, vk->vk.vkCreateCommandPool(
                    vk->device,
                    &(VkCommandPoolCreateInfo){
                        .sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
                        .flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT,
                        .queueFamilyIndex = vk->queue_family},
                    NULL, &vk->command_pool));
    VK_TRY(ctx, vk->vk.vkAllocateCommandBuffers(
                    vk->device,
                    &(VkCommandBufferAllocateInfo){
                        .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
                        .commandPool = vk->command_pool,
                        .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
                        .commandBufferCount = 1},
                    &vk->eager_cmd));
    VK_TRY(ctx, vk->vk.vkCreateFence(vk->device,
                                     &(VkFenceCreateInfo){.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO},
                                     NULL, &vk->eager_fence));
    return vk_pipelines_init(ctx);
}

vkt_result vkt_vulkan_backend_init(vkt_context *ctx) {
    vk_state *vk = calloc(1, sizeof *vk);
    if (!vk)
        return vkt_error(ctx, VKT_ERROR_OUT_OF_HOST_MEMORY, "out of host memory");
    atomic_init(&vk->validation_messages, 0);
    ctx->backend = VKT_BACKEND_VULKAN;
    ctx->ops = &vulkan_ops;
    ctx->backend_state = vk;
    vkt_result r = init_device(ctx, vk);
    if (r != VKT_OK) {
        vk_destroy(ctx);
        ctx->ops = NULL;
        return r;
    }
    /* Offsets stay aligned for any device's minStorageBufferOffsetAlignment
     * (at most 256 by the spec). */
    ctx->alignment = 256;
    ctx->default_block_size = 64u << 20;
    ctx->max_tensor_bytes = vk->props.limits.maxStorageBufferRange;
    return VKT_OK;
}
