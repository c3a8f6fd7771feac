/* vk_backend.c: the Vulkan backend's lifetime: logical device, queue,
 * command pool, per-device tuning, and the backend ops table. */
#include "vk_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* VKT_MATMUL=simple|reg|reg_ssbo|tiled overrides the device's choice (for
 * tests and benchmarks); anything else keeps it. */
static uint32_t matmul_variant(bool cpu, bool texel_buffers) {
    static const char *const names[VKT_MATMUL_VARIANT_COUNT] = {
        [VKT_MATMUL_SIMPLE] = "simple", [VKT_MATMUL_REG] = "reg",
        [VKT_MATMUL_REG_SSBO] = "reg_ssbo", [VKT_MATMUL_TILED] = "tiled"};
    uint32_t v = cpu ? VKT_MATMUL_REG : VKT_MATMUL_TILED;
    const char *env = getenv("VKT_MATMUL");
    for (uint32_t i = 0; env && i < VKT_MATMUL_VARIANT_COUNT; i++)
        if (strcmp(env, names[i]) == 0)
            v = i;
    if (v == VKT_MATMUL_REG && !texel_buffers)
        v = VKT_MATMUL_REG_SSBO;
    return v;
}

/* Launch parameters from the device's limits. CPU devices (lavapipe) run a
 * workgroup's invocations as SIMD lanes and load storage buffers lane by
 * lane, so their matmul is register-blocked with texel-buffer (gather)
 * loads and no shared memory (barriers cost more than they save there);
 * GPUs want many invocations and shared-memory tiles. Measurements behind
 * these choices: docs/performance.md. */
void vk_tuning_choose(vk_state *vk) {
    const VkPhysicalDeviceLimits *lim = &vk->props.limits;
    bool cpu = vk->props.deviceType == VK_PHYSICAL_DEVICE_TYPE_CPU;
    uint32_t max_inv = lim->maxComputeWorkGroupInvocations;
    uint32_t variant = matmul_variant(cpu, vk->texel_buffers);
    bool reg = variant == VKT_MATMUL_REG || variant == VKT_MATMUL_REG_SSBO;
    vkt_tuning t = {
        .subgroup_size = vk->subgroup_size,
        .workgroup_1d = cpu ? 64 : 256,
        .matmul_variant = variant,
        .matmul_wg_x = reg ? 8 : cpu ? 8 : 16,
        .matmul_wg_y = reg ? 1 : cpu ? 4 : 16,
        .matmul_tm = 4,
        .matmul_tn = 4,
        .matmul_tile_k = 16,
        .matmul_vec4 = 1,
        .reduce_wg = 64,
        .row_per_invocation_cols = 64,
        .conv_wg = cpu ? 8 : 64,
        .conv_tm = cpu ? 16 : 8,
        .conv_tn = 4,
        .conv_reduce_wg = cpu ? 64 : 128,
        .conv_dw_tile = 4,
        .conv_batch_chunk = 8,
    };
    if (t.workgroup_1d > max_inv)
        t.workgroup_1d = max_inv;
    if (t.reduce_wg > max_inv)
        t.reduce_wg = max_inv;
    /* VKT_MATMUL_WG=XxY overrides the matmul workgroup (for tuning). */
    const char *wg = getenv("VKT_MATMUL_WG");
    unsigned wx, wy;
    if (wg && sscanf(wg, "%ux%u", &wx, &wy) == 2 && wx && wy) {
        t.matmul_wg_x = wx;
        t.matmul_wg_y = wy;
    }
    /* VKT_ROW_COLS=N: rows of at most N columns get one invocation each
     * (0: every row a workgroup; for tuning and for tests of both shapes). */
    const char *row_cols = getenv("VKT_ROW_COLS");
    unsigned cols;
    if (row_cols && sscanf(row_cols, "%u", &cols) == 1)
        t.row_per_invocation_cols = cols;
    while (t.matmul_wg_x * t.matmul_wg_y > max_inv)
        t.matmul_wg_y /= 2;
    /* matmul_tiled stages tile_k x (rows + columns) floats of A and B. */
    while (t.matmul_tile_k > 4 && t.matmul_tile_k * (t.matmul_wg_y * t.matmul_tm +
                                                     t.matmul_wg_x * t.matmul_tn) * 4 >
                                      lim->maxComputeSharedMemorySize)
        t.matmul_tile_k /= 2;
    /* conv2d_bwd_weight keeps conv_reduce_wg * conv_dw_tile^2 partial sums
     * in shared memory; Vulkan guarantees only 16 KiB. */
    while (t.conv_reduce_wg > max_inv ||
           t.conv_reduce_wg * t.conv_dw_tile * t.conv_dw_tile * 4 > lim->maxComputeSharedMemorySize)
        t.conv_reduce_wg /= 2;
    /* On a CPU device every invocation's load from a buffer is a scalar
     * load of its own, and the convolutions' invocations all load the same
     * weights: one subgroup per workgroup then shares them by shuffles
     * (conv2d_*_subgroup.comp), which leaves room for 32 channels per
     * block. The subgroup is the SIMD width there, fixed for the device. */
    VkPhysicalDeviceSubgroupProperties subgroup = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES};
    vkGetPhysicalDeviceProperties2(vk->physical_device,
                                   &(VkPhysicalDeviceProperties2){
                                       .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2,
                                       .pNext = &subgroup});
    uint32_t sg = subgroup.subgroupSize;
    if (cpu && (subgroup.supportedStages & VK_SHADER_STAGE_COMPUTE_BIT) &&
        (subgroup.supportedOperations & VK_SUBGROUP_FEATURE_SHUFFLE_BIT) && sg >= 2 &&
        sg <= 32 && (sg & (sg - 1)) == 0 && sg <= max_inv) {
        t.conv_subgroup = sg;
        t.conv_wg = sg;
        t.conv_tm = 32;
    }
    while (t.conv_wg > max_inv)
        t.conv_wg /= 2;
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
    VK_TRY(ctx,
           VK_FAULT(DEVICE, vkCreateDevice(vk->physical_device, &create, NULL, &vk->device)));
    vk->own_device = true;
    vk->queue_family = family;
    return VKT_OK;
}

static void vk_destroy(vkt_context *ctx);

/* The instance functions vk_destroy calls are process-wide (volk). */
static void vk_destroy_locked(vkt_context *ctx) {
    vk_global_lock();
    vk_destroy(ctx);
    vk_global_unlock();
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
    free(vk->borrowed); /* wrapped tensors still alive were leaked by the caller */
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
    .destroy = vk_destroy_locked,
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

/* The physical device must be one the instance enumerates: handles of
 * another instance would make every later call undefined. Also gives the
 * device's index for vkt_context_info. */
static vkt_result find_adopted_device(vkt_context *ctx, vk_state *vk) {
    uint32_t count = 0;
    VK_TRY(ctx, vkEnumeratePhysicalDevices(vk->instance, &count, NULL));
    VkPhysicalDevice devices[32];
    count = count > 32 ? 32 : count;
    VkResult vr = vkEnumeratePhysicalDevices(vk->instance, &count, devices);
    if (vr != VK_SUCCESS && vr != VK_INCOMPLETE)
        return vk_check(ctx, vr, "vkEnumeratePhysicalDevices");
    for (uint32_t i = 0; i < count; i++) {
        if (devices[i] == vk->physical_device) {
            vk->device_index = i;
            return VKT_OK;
        }
    }
    return vkt_error(ctx, VKT_ERROR_INVALID_ARGUMENT,
                     "desc->external: physical_device is not one of the %u device(s) of "
                     "desc->external->instance",
                     count);
}

/* Vulkan 1.1 on both sides: vktrain calls 1.1 commands
 * (vkGetPhysicalDeviceProperties2 for the subgroup size) and its shaders
 * are SPIR-V 1.3. Only 1.0 commands are used until this has passed. */
static vkt_result check_adopted_version(vkt_context *ctx, const VkPhysicalDeviceProperties *props,
                                        uint32_t instance_version) {
    if (props->apiVersion < VK_API_VERSION_1_1)
        return vkt_error(ctx, VKT_ERROR_UNSUPPORTED,
                         "desc->external: device '%s' supports Vulkan %u.%u only; vktrain needs "
                         "Vulkan 1.1",
                         props->deviceName, VK_API_VERSION_MAJOR(props->apiVersion),
                         VK_API_VERSION_MINOR(props->apiVersion));
    if (instance_version < VK_API_VERSION_1_1)
        return vkt_error(ctx, VKT_ERROR_UNSUPPORTED,
                         "desc->external: the instance was created with apiVersion %u.%u; vktrain "
                         "needs Vulkan 1.1 (VkApplicationInfo::apiVersion >= "
                         "VK_API_VERSION_1_1, passed as api_version)",
                         VK_API_VERSION_MAJOR(instance_version),
                         VK_API_VERSION_MINOR(instance_version));
    return VKT_OK;
}

/* The adopted queue's family must run compute shaders. The error names a
 * family that would do. */
static vkt_result check_adopted_family(vkt_context *ctx, vk_state *vk) {
    uint32_t count = 0;
    vkGetPhysicalDeviceQueueFamilyProperties(vk->physical_device, &count, NULL);
    VkQueueFamilyProperties families[32];
    count = count > 32 ? 32 : count;
    vkGetPhysicalDeviceQueueFamilyProperties(vk->physical_device, &count, families);
    uint32_t compute = UINT32_MAX;
    for (uint32_t i = 0; i < count && compute == UINT32_MAX; i++)
        if (families[i].queueFlags & VK_QUEUE_COMPUTE_BIT)
            compute = i;
    char hint[64] = "";
    if (compute != UINT32_MAX)
        snprintf(hint, sizeof hint, " (family %u has it)", compute);
    if (vk->queue_family >= count)
        return vkt_error(ctx, VKT_ERROR_INVALID_ARGUMENT,
                         "desc->external: queue_family_index %u does not exist: the device has "
                         "%u queue families%s",
                         vk->queue_family, count, hint);
    if (!(families[vk->queue_family].queueFlags & VK_QUEUE_COMPUTE_BIT))
        return vkt_error(ctx, VKT_ERROR_UNSUPPORTED,
                         "desc->external: queue family %u lacks VK_QUEUE_COMPUTE_BIT, which "
                         "vktrain needs to dispatch its kernels%s",
                         vk->queue_family, hint);
    return VKT_OK;
}

/* Adopting an engine's device: take its handles as they are, after checking
 * that vktrain can work with them. The engine owns the validation layer
 * and its messenger (vkt_vulkan_report_validation_message). */
static vkt_result adopt(vkt_context *ctx, vk_state *vk, const vkt_vulkan_external *ext) {
    const char *missing = !ext->instance          ? "instance"
                          : !ext->physical_device ? "physical_device"
                          : !ext->device          ? "device"
                          : !ext->queue           ? "queue"
                                                  : NULL;
    if (missing)
        return vkt_error(ctx, VKT_ERROR_INVALID_ARGUMENT,
                         "desc->external->%s is NULL: instance, physical_device, device and "
                         "queue are all required",
                         missing);
    if (ext->get_instance_proc_addr)
        volkInitializeCustom((PFN_vkGetInstanceProcAddr)ext->get_instance_proc_addr);
    vk->instance = (VkInstance)ext->instance;
    volkLoadInstanceOnly(vk->instance);
    vk->physical_device = (VkPhysicalDevice)ext->physical_device;
    vk->device = (VkDevice)ext->device;
    vk->queue = (VkQueue)ext->queue;
    vk->queue_family = ext->queue_family_index;
    vk->validation = ctx->desc.validation;
    vkt_result r = find_adopted_device(ctx, vk);
    if (r != VKT_OK)
        return r;
    VkPhysicalDeviceProperties props;
    vkGetPhysicalDeviceProperties(vk->physical_device, &props);
    r = check_adopted_version(ctx, &props,
                              ext->api_version ? ext->api_version : VK_API_VERSION_1_1);
    if (r != VKT_OK)
        return r;
    r = check_adopted_family(ctx, vk);
    if (r == VKT_OK)
        vkt_log(ctx, VKT_LOG_INFO, "adopted the engine's Vulkan device: %s, queue family %u",
                props.deviceName, vk->queue_family);
    return r;
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
    vk->texel_buffers = true;
    const VkFormat texel_formats[2] = {VK_FORMAT_R32_SFLOAT, VK_FORMAT_R32G32B32A32_SFLOAT};
    for (int i = 0; i < 2; i++) {
        VkFormatProperties fp;
        vkGetPhysicalDeviceFormatProperties(vk->physical_device, texel_formats[i], &fp);
        if (!(fp.bufferFeatures & VK_FORMAT_FEATURE_UNIFORM_TEXEL_BUFFER_BIT))
            vk->texel_buffers = false;
    }
    uint32_t family_count = 0;
    vkGetPhysicalDeviceQueueFamilyProperties(vk->physical_device, &family_count, NULL);
    VkQueueFamilyProperties families[32];
    family_count = family_count > 32 ? 32 : family_count;
    vkGetPhysicalDeviceQueueFamilyProperties(vk->physical_device, &family_count, families);
    vk->timestamps = vk->queue_family < family_count &&
                     families[vk->queue_family].timestampValidBits > 0 &&
                     vk->props.limits.timestampPeriod > 0.0f;
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
    vk_global_lock();
    vkt_result r = init_device(ctx, vk);
    if (r != VKT_OK)
        vk_destroy(ctx);
    vk_global_unlock();
    if (r != VKT_OK) {
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
