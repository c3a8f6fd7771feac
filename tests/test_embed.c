/* test_embed.c: vktrain inside an engine's Vulkan device. The test plays the
 * engine: it makes its own instance (validation layer with synchronization
 * validation, a messenger that counts every warning and error), device,
 * queue, command buffers and an engine-style compute shader
 * (engine_fill.comp), hands them to vktrain and checks that
 *   - an adopted context trains exactly as a vktrain-made one;
 *   - steps and evaluations recorded into the engine's command buffers give
 *     the same losses, weights and outputs as vkt_model_step/_evaluate;
 *   - buffers the engine's shader writes train the model through wrapped
 *     tensors, and the engine reads a parameter through its VkBuffer;
 *   - adopting objects vktrain cannot use fails with a clear message;
 *   - an adopted and an owned context train side by side in two threads;
 * all with zero validation messages. Vulkan calls go through volk, which
 * the static library carries: device functions through the test's own
 * device table, as an engine's would. */
#include "harness.h"

#include <volk.h>

#include "vktrain_vulkan.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

static const uint32_t engine_fill_spirv[] =
#include "engine_fill.spv.h"
    ;

/* ---- The engine */

typedef struct engine {
    VkInstance instance;
    VkDebugUtilsMessengerEXT messenger;
    VkPhysicalDevice physical_device;
    VkDevice device;
    uint32_t family;
    VkQueue queue;
    struct VolkDeviceTable vk;
    VkCommandPool pool;
    VkCommandBuffer cmd;
    VkFence fence;
    /* engine_fill.comp */
    VkDescriptorSetLayout set_layout;
    VkPipelineLayout layout;
    VkPipeline fill;
    VkDescriptorPool descriptors;
    atomic_uint messages;             /* everything the layer said */
    _Atomic(vkt_context *) forward_to; /* the adopted context, told of each message */
} engine;

static VKAPI_ATTR VkBool32 VKAPI_CALL on_message(VkDebugUtilsMessageSeverityFlagBitsEXT severity,
                                                 VkDebugUtilsMessageTypeFlagsEXT types,
                                                 const VkDebugUtilsMessengerCallbackDataEXT *data,
                                                 void *user) {
    (void)types;
    engine *e = user;
    if (severity >= VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT) {
        atomic_fetch_add(&e->messages, 1);
        fprintf(stderr, "engine validation: %s\n", data->pMessage);
    }
    vkt_context *ctx = atomic_load(&e->forward_to);
    if (ctx)
        vkt_vulkan_report_validation_message(ctx, severity, data->pMessage);
    return VK_FALSE;
}

static void log_to_stderr(vkt_log_level level, const char *message, void *user) {
    (void)user;
    if (level >= VKT_LOG_WARNING)
        fprintf(stderr, "vktrain: %s\n", message);
}

#define VK_OK(expr)                                                                            \
    do {                                                                                       \
        VkResult vk_ok_result_ = (expr);                                                       \
        cr_assert_eq(vk_ok_result_, VK_SUCCESS, "%s failed: %d", #expr, (int)vk_ok_result_);   \
    } while (0)

static void engine_instance(engine *e, uint32_t api_version) {
    cr_assert_eq(volkInitialize(), VK_SUCCESS, "no Vulkan loader");
    VkValidationFeatureEnableEXT enables[] = {
        VK_VALIDATION_FEATURE_ENABLE_SYNCHRONIZATION_VALIDATION_EXT};
    VkDebugUtilsMessengerCreateInfoEXT messenger = {
        .sType = VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT,
        .messageSeverity = VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT |
                           VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT,
        .messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT |
                       VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT |
                       VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT,
        .pfnUserCallback = on_message,
        .pUserData = e,
    };
    VkValidationFeaturesEXT features = {
        .sType = VK_STRUCTURE_TYPE_VALIDATION_FEATURES_EXT,
        .pNext = &messenger,
        .enabledValidationFeatureCount = 1,
        .pEnabledValidationFeatures = enables,
    };
    const char *layers[] = {"VK_LAYER_KHRONOS_validation"};
    const char *extensions[] = {VK_EXT_DEBUG_UTILS_EXTENSION_NAME};
    VK_OK(vkCreateInstance(
        &(VkInstanceCreateInfo){
            .sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO,
            .pNext = &features,
            .pApplicationInfo = &(VkApplicationInfo){.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO,
                                                     .pApplicationName = "test_embed engine",
                                                     .apiVersion = api_version},
            .enabledLayerCount = 1,
            .ppEnabledLayerNames = layers,
            .enabledExtensionCount = 1,
            .ppEnabledExtensionNames = extensions},
        NULL, &e->instance));
    volkLoadInstanceOnly(e->instance);
    /* Through this instance, not volk's global: another context may have
     * loaded the globals from an instance without debug utils. */
    PFN_vkCreateDebugUtilsMessengerEXT create = (PFN_vkCreateDebugUtilsMessengerEXT)
        vkGetInstanceProcAddr(e->instance, "vkCreateDebugUtilsMessengerEXT");
    cr_assert_not_null(create);
    VK_OK(create(e->instance, &messenger, NULL, &e->messenger));
}

/* The first device and its first compute family, one queue: what a small
 * engine does. */
static void engine_device(engine *e) {
    uint32_t count = 1;
    VkResult vr = vkEnumeratePhysicalDevices(e->instance, &count, &e->physical_device);
    cr_assert(vr == VK_SUCCESS || vr == VK_INCOMPLETE);
    cr_assert_eq(count, 1, "no Vulkan device");
    VkQueueFamilyProperties families[16];
    uint32_t family_count = 16;
    vkGetPhysicalDeviceQueueFamilyProperties(e->physical_device, &family_count, families);
    e->family = UINT32_MAX;
    for (uint32_t i = 0; i < family_count && e->family == UINT32_MAX; i++)
        if (families[i].queueFlags & VK_QUEUE_COMPUTE_BIT)
            e->family = i;
    cr_assert_neq(e->family, UINT32_MAX);
    float priority = 1.0f;
    VK_OK(vkCreateDevice(e->physical_device,
                         &(VkDeviceCreateInfo){
                             .sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO,
                             .queueCreateInfoCount = 1,
                             .pQueueCreateInfos = &(VkDeviceQueueCreateInfo){
                                 .sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO,
                                 .queueFamilyIndex = e->family,
                                 .queueCount = 1,
                                 .pQueuePriorities = &priority}},
                         NULL, &e->device));
    volkLoadDeviceTable(&e->vk, e->device);
    e->vk.vkGetDeviceQueue(e->device, e->family, 0, &e->queue);
}

static void engine_commands(engine *e) {
    VK_OK(e->vk.vkCreateCommandPool(e->device,
                                    &(VkCommandPoolCreateInfo){
                                        .sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
                                        .flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT,
                                        .queueFamilyIndex = e->family},
                                    NULL, &e->pool));
    VK_OK(e->vk.vkAllocateCommandBuffers(e->device,
                                         &(VkCommandBufferAllocateInfo){
                                             .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
                                             .commandPool = e->pool,
                                             .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
                                             .commandBufferCount = 1},
                                         &e->cmd));
    VK_OK(e->vk.vkCreateFence(e->device,
                              &(VkFenceCreateInfo){.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO},
                              NULL, &e->fence));
    VkDescriptorSetLayoutBinding binding = {.binding = 0,
                                            .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                                            .descriptorCount = 1,
                                            .stageFlags = VK_SHADER_STAGE_COMPUTE_BIT};
    VK_OK(e->vk.vkCreateDescriptorSetLayout(
        e->device,
        &(VkDescriptorSetLayoutCreateInfo){
            .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO,
            .bindingCount = 1,
            .pBindings = &binding},
        NULL, &e->set_layout));
    VkPushConstantRange push = {VK_SHADER_STAGE_COMPUTE_BIT, 0, 2 * sizeof(uint32_t)};
    VK_OK(e->vk.vkCreatePipelineLayout(e->device,
                                       &(VkPipelineLayoutCreateInfo){
                                           .sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO,
                                           .setLayoutCount = 1,
                                           .pSetLayouts = &e->set_layout,
                                           .pushConstantRangeCount = 1,
                                           .pPushConstantRanges = &push},
                                       NULL, &e->layout));
    VkShaderModule module;
    VK_OK(e->vk.vkCreateShaderModule(e->device,
                                     &(VkShaderModuleCreateInfo){
                                         .sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO,
                                         .codeSize = sizeof engine_fill_spirv,
                                         .pCode = engine_fill_spirv},
                                     NULL, &module));
    VK_OK(e->vk.vkCreateComputePipelines(
        e->device, VK_NULL_HANDLE, 1,
        &(VkComputePipelineCreateInfo){
            .sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO,
            .stage = {.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO,
                      .stage = VK_SHADER_STAGE_COMPUTE_BIT,
                      .module = module,
                      .pName = "main"},
            .layout = e->layout},
        NULL, &e->fill));
    e->vk.vkDestroyShaderModule(e->device, module, NULL);
    VkDescriptorPoolSize size = {VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, 8};
    VK_OK(e->vk.vkCreateDescriptorPool(e->device,
                                       &(VkDescriptorPoolCreateInfo){
                                           .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO,
                                           .maxSets = 8,
                                           .poolSizeCount = 1,
                                           .pPoolSizes = &size},
                                       NULL, &e->descriptors));
}

static void engine_create(engine *e, uint32_t api_version) {
    memset(e, 0, sizeof *e);
    atomic_init(&e->messages, 0);
    atomic_init(&e->forward_to, NULL);
    engine_instance(e, api_version);
    engine_device(e);
    /* The fill shader is SPIR-V 1.3 (Vulkan 1.1), invalid on a 1.0 device:
     * a 1.0 engine only gets as far as asking vktrain to adopt it. */
    if (api_version >= VK_API_VERSION_1_1)
        engine_commands(e);
}

/* Fails the test if the layer said anything, then tears the engine down. */
static void engine_destroy(engine *e) {
    if (e->device) {
        e->vk.vkDeviceWaitIdle(e->device);
        if (e->pool) {
            e->vk.vkDestroyDescriptorPool(e->device, e->descriptors, NULL);
            e->vk.vkDestroyPipeline(e->device, e->fill, NULL);
            e->vk.vkDestroyPipelineLayout(e->device, e->layout, NULL);
            e->vk.vkDestroyDescriptorSetLayout(e->device, e->set_layout, NULL);
            e->vk.vkDestroyFence(e->device, e->fence, NULL);
            e->vk.vkDestroyCommandPool(e->device, e->pool, NULL);
        }
        e->vk.vkDestroyDevice(e->device, NULL);
    }
    PFN_vkDestroyDebugUtilsMessengerEXT destroy = (PFN_vkDestroyDebugUtilsMessengerEXT)
        vkGetInstanceProcAddr(e->instance, "vkDestroyDebugUtilsMessengerEXT");
    destroy(e->instance, e->messenger, NULL);
    vkDestroyInstance(e->instance, NULL);
    cr_assert_eq(atomic_load(&e->messages), 0, "the engine's messenger saw %u message(s)",
                 atomic_load(&e->messages));
}

static vkt_vulkan_external engine_external(const engine *e, uint32_t api_version) {
    return vkt_vulkan_external_make(e->instance, e->physical_device, e->device, e->family,
                                    e->queue, api_version, vkGetInstanceProcAddr);
}

/* A context on the engine's device, told of the engine's validation
 * messages. */
static vkt_context *engine_adopt(engine *e) {
    vkt_vulkan_external ext = engine_external(e, VK_API_VERSION_1_1);
    vkt_context *ctx = NULL;
    vkt_result r = vkt_context_create(
        &(vkt_context_desc){.backend = VKT_BACKEND_VULKAN, .validation = true,
                            .log = log_to_stderr, .external = &ext},
        &ctx);
    cr_assert_eq(r, VKT_OK, "adopting the engine's device: %s", vkt_last_error());
    atomic_store(&e->forward_to, ctx);
    return ctx;
}

static void engine_unadopt(engine *e, vkt_context *ctx) {
    uint64_t messages = vkt_context_validation_messages(ctx);
    vkt_context_destroy(ctx);
    atomic_store(&e->forward_to, NULL);
    cr_assert_eq(messages, 0, "the adopted context counted %llu message(s)",
                 (unsigned long long)messages);
}

static void engine_begin(engine *e) {
    VK_OK(e->vk.vkResetCommandBuffer(e->cmd, 0));
    VK_OK(e->vk.vkBeginCommandBuffer(
        e->cmd, &(VkCommandBufferBeginInfo){.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
                                            .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT}));
}

static void engine_submit(engine *e) {
    VK_OK(e->vk.vkEndCommandBuffer(e->cmd));
    VK_OK(e->vk.vkQueueSubmit(e->queue, 1,
                              &(VkSubmitInfo){.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO,
                                              .commandBufferCount = 1,
                                              .pCommandBuffers = &e->cmd},
                              e->fence));
    VK_OK(e->vk.vkWaitForFences(e->device, 1, &e->fence, VK_TRUE, UINT64_MAX));
    VK_OK(e->vk.vkResetFences(e->device, 1, &e->fence));
}

/* An engine buffer with its own memory. */
typedef struct engine_buffer {
    VkBuffer buffer;
    VkDeviceMemory memory;
    void *mapped; /* host-visible ones */
    VkDeviceSize size;
} engine_buffer;

static void engine_buffer_create(engine *e, engine_buffer *b, VkDeviceSize size,
                                 VkBufferUsageFlags usage, bool host_visible) {
    memset(b, 0, sizeof *b);
    b->size = size;
    VK_OK(e->vk.vkCreateBuffer(e->device,
                               &(VkBufferCreateInfo){.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO,
                                                     .size = size,
                                                     .usage = usage,
                                                     .sharingMode = VK_SHARING_MODE_EXCLUSIVE},
                               NULL, &b->buffer));
    VkMemoryRequirements req;
    e->vk.vkGetBufferMemoryRequirements(e->device, b->buffer, &req);
    VkPhysicalDeviceMemoryProperties mp;
    vkGetPhysicalDeviceMemoryProperties(e->physical_device, &mp);
    VkMemoryPropertyFlags want = host_visible ? VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT |
                                                    VK_MEMORY_PROPERTY_HOST_COHERENT_BIT
                                              : VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT;
    uint32_t type = UINT32_MAX;
    for (uint32_t i = 0; i < mp.memoryTypeCount && type == UINT32_MAX; i++)
        if ((req.memoryTypeBits & (1u << i)) && (mp.memoryTypes[i].propertyFlags & want) == want)
            type = i;
    cr_assert_neq(type, UINT32_MAX);
    VK_OK(e->vk.vkAllocateMemory(e->device,
                                 &(VkMemoryAllocateInfo){
                                     .sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO,
                                     .allocationSize = req.size,
                                     .memoryTypeIndex = type},
                                 NULL, &b->memory));
    VK_OK(e->vk.vkBindBufferMemory(e->device, b->buffer, b->memory, 0));
    if (host_visible)
        VK_OK(e->vk.vkMapMemory(e->device, b->memory, 0, VK_WHOLE_SIZE, 0, &b->mapped));
}

static void engine_buffer_destroy(engine *e, engine_buffer *b) {
    e->vk.vkDestroyBuffer(e->device, b->buffer, NULL);
    e->vk.vkFreeMemory(e->device, b->memory, NULL);
}

/* Records engine_fill.comp writing n values of data set `seed` at the
 * start of b. The set is allocated per call from a pool reset by the
 * caller between submits. */
static void engine_record_fill(engine *e, const engine_buffer *b, uint32_t n, uint32_t seed) {
    VkDescriptorSet set;
    VK_OK(e->vk.vkAllocateDescriptorSets(e->device,
                                         &(VkDescriptorSetAllocateInfo){
                                             .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO,
                                             .descriptorPool = e->descriptors,
                                             .descriptorSetCount = 1,
                                             .pSetLayouts = &e->set_layout},
                                         &set));
    VkDescriptorBufferInfo info = {b->buffer, 0, (VkDeviceSize)n * sizeof(float)};
    e->vk.vkUpdateDescriptorSets(e->device, 1,
                                 &(VkWriteDescriptorSet){
                                     .sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET,
                                     .dstSet = set,
                                     .descriptorCount = 1,
                                     .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                                     .pBufferInfo = &info},
                                 0, NULL);
    uint32_t push[2] = {n, seed};
    e->vk.vkCmdBindPipeline(e->cmd, VK_PIPELINE_BIND_POINT_COMPUTE, e->fill);
    e->vk.vkCmdBindDescriptorSets(e->cmd, VK_PIPELINE_BIND_POINT_COMPUTE, e->layout, 0, 1, &set,
                                  0, NULL);
    e->vk.vkCmdPushConstants(e->cmd, e->layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, sizeof push,
                             push);
    e->vk.vkCmdDispatch(e->cmd, (n + 63) / 64, 1, 1);
}

/* What engine_fill.comp writes at index i for `seed`, bit for bit. */
static float engine_value(uint32_t i, uint32_t seed) {
    uint32_t h = i * 2654435761u + seed * 40503u;
    h ^= h >> 15;
    h *= 2246822519u;
    h ^= h >> 13;
    return (float)(h >> 8) * (1.0f / 16777216.0f) - 0.5f;
}

static void engine_values(float *out, uint32_t n, uint32_t seed) {
    for (uint32_t i = 0; i < n; i++)
        out[i] = engine_value(i, seed);
}

/* Copies `size` bytes at `offset` of `src` into readback at `dst_offset`
 * and makes them visible to the host after the fence. */
static void engine_record_readback(engine *e, VkBuffer src, VkDeviceSize offset,
                                   VkDeviceSize size, const engine_buffer *readback,
                                   VkDeviceSize dst_offset) {
    e->vk.vkCmdCopyBuffer(e->cmd, src, readback->buffer, 1,
                          &(VkBufferCopy){.srcOffset = offset, .dstOffset = dst_offset,
                                          .size = size});
    /* Hazard: the host reads what the copy wrote (RAW). */
    VkMemoryBarrier b = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                         .srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT,
                         .dstAccessMask = VK_ACCESS_HOST_READ_BIT};
    e->vk.vkCmdPipelineBarrier(e->cmd, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_PIPELINE_STAGE_HOST_BIT,
                               0, 1, &b, 0, NULL, 0, NULL);
}

/* ---- The network every test trains */

enum { B = 16, F = 12, HID = 24, OUT = 4, STEPS = 6 };

typedef struct net {
    vkt_graph *g;
    vkt_model *m;
    vkt_var x, t, pred, loss, w1, b2;
} net;

/* x (B, 3, 4) -> fc1 (flattening x: a reshape of the input) -> ReLU ->
 * dropout -> fc2 -> MSE against t (B, OUT). Adam with a cosine schedule, so
 * every step's hyperparameters differ, and dropout, whose mask depends on
 * the step number. */
static void net_make(vkt_context *ctx, net *n, uint64_t seed) {
    memset(n, 0, sizeof *n);
    cr_assert_eq(vkt_graph_create(ctx, &(vkt_graph_desc){.seed = seed}, &n->g), VKT_OK);
    n->x = vkt_graph_input(n->g, "x", 3, (int64_t[]){B, 3, 4});
    n->t = vkt_graph_input(n->g, "t", 2, (int64_t[]){B, OUT});
    vkt_var h = vkt_graph_relu(n->g, vkt_graph_linear(n->g, n->x, HID, "fc1"));
    h = vkt_graph_dropout(n->g, h, 0.25f);
    n->pred = vkt_graph_linear(n->g, h, OUT, "fc2");
    n->loss = vkt_graph_mse(n->g, n->pred, n->t);
    cr_assert_eq(vkt_graph_status(n->g), VKT_OK, "%s", vkt_graph_last_error(n->g));
    vkt_model_desc desc = {.loss = n->loss,
                           .optimizer = {.type = VKT_OPTIMIZER_ADAM, .lr = 2e-2f,
                                         .schedule = VKT_SCHEDULE_COSINE, .warmup_steps = 2,
                                         .total_steps = STEPS, .min_lr = 1e-3f}};
    cr_assert_eq(vkt_model_create(n->g, &desc, &n->m), VKT_OK, "%s",
                 vkt_context_last_error(ctx));
    n->w1 = vkt_graph_find(n->g, "fc1.weight");
    n->b2 = vkt_graph_find(n->g, "fc2.bias");
    cr_assert(n->w1 && n->b2);
}

static void net_destroy(net *n) {
    vkt_model_destroy(n->m);
    vkt_graph_destroy(n->g);
}

/* Data set `seed` of step s: the engine shader's values, so the host and
 * the engine feed the same floats. */
static uint32_t x_seed(int s) { return 100u + (uint32_t)s; }
static uint32_t t_seed(int s) { return 500u + (uint32_t)s; }

static void host_step(net *n, int s, float *out_loss) {
    float x[B * F], t[B * OUT];
    engine_values(x, B * F, x_seed(s));
    engine_values(t, B * OUT, t_seed(s));
    vkt_feed feeds[2] = {{n->x, x, B * F}, {n->t, t, B * OUT}};
    cr_assert_eq(vkt_model_step(n->m, feeds, 2, out_loss), VKT_OK, "%s",
                 vkt_model_last_error(n->m));
}

static void assert_same_var(net *a, net *b, vkt_var var, size_t count, const char *what) {
    float *va = h_alloc_floats(count), *vb = h_alloc_floats(count);
    cr_assert_eq(vkt_model_read(a->m, var, va, count), VKT_OK);
    cr_assert_eq(vkt_model_read(b->m, var, vb, count), VKT_OK);
    cr_assert(memcmp(va, vb, count * sizeof(float)) == 0, "%s differs", what);
    free(va);
    free(vb);
}

/* ---- Tests */

Test(embed, adopted_device_trains_like_an_owned_one) {
    engine e;
    engine_create(&e, VK_API_VERSION_1_1);
    vkt_context *adopted = engine_adopt(&e);
    vkt_context *owned = h_vulkan();
    vkt_context_info info;
    cr_assert_eq(vkt_context_query(adopted, &info), VKT_OK);
    cr_assert(info.adopted && info.validation);
    vkt_vulkan_info vi;
    cr_assert_eq(vkt_vulkan_query(adopted, &vi), VKT_OK);
    cr_assert(vi.adopted && vi.device == e.device && vi.queue == e.queue);
    cr_assert_eq(vi.queue_family_index, e.family);

    net a, b;
    net_make(adopted, &a, 7);
    net_make(owned, &b, 7);
    for (int s = 0; s < STEPS; s++) {
        float la, lb;
        host_step(&a, s, &la);
        host_step(&b, s, &lb);
        cr_assert(memcmp(&la, &lb, sizeof la) == 0, "step %d: loss %.9g (adopted) vs %.9g", s,
                  la, lb);
    }
    assert_same_var(&a, &b, a.w1, HID * F, "fc1.weight");
    net_destroy(&a);
    net_destroy(&b);
    h_finish(owned);
    engine_unadopt(&e, adopted);
    engine_destroy(&e);
}

/* Model `rec` reads its inputs from tensors the host uploads, and its steps
 * are recorded into the engine's command buffer, which also copies each
 * step's loss into a readback buffer: the losses, weights and evaluation
 * must equal those of `ref`, stepped by vkt_model_step on the same data. */
Test(embed, recorded_steps_match_model_step) {
    engine e;
    engine_create(&e, VK_API_VERSION_1_1);
    vkt_context *ctx = engine_adopt(&e);
    net ref, rec;
    net_make(ctx, &ref, 3);
    net_make(ctx, &rec, 3);
    vkt_tensor *x, *t;
    cr_assert_eq(vkt_tensor_create(ctx, &(vkt_tensor_desc){.ndim = 2, .dims = {B, F}, .name = "x"},
                                   &x), VKT_OK);
    cr_assert_eq(vkt_tensor_create(ctx, &(vkt_tensor_desc){.ndim = 2, .dims = {B, OUT}}, &t),
                 VKT_OK);
    cr_assert_eq(vkt_model_bind_input(rec.m, rec.x, x), VKT_OK, "%s", vkt_context_last_error(ctx));
    cr_assert_eq(vkt_model_bind_input(rec.m, rec.t, t), VKT_OK);
    engine_buffer readback;
    engine_buffer_create(&e, &readback, 4096, VK_BUFFER_USAGE_TRANSFER_DST_BIT, true);
    VkBuffer loss_buffer;
    VkDeviceSize loss_offset, loss_size;
    cr_assert_eq(vkt_model_query_vulkan_buffer(rec.m, rec.loss, &loss_buffer, &loss_offset,
                                               &loss_size),
                 VKT_OK);
    cr_assert_eq(loss_size, sizeof(float));

    for (int s = 0; s < STEPS; s++) {
        float want;
        host_step(&ref, s, &want);
        float xs[B * F], ts[B * OUT];
        engine_values(xs, B * F, x_seed(s));
        engine_values(ts, B * OUT, t_seed(s));
        cr_assert_eq(vkt_tensor_upload(x, xs, B * F), VKT_OK);
        cr_assert_eq(vkt_tensor_upload(t, ts, B * OUT), VKT_OK);
        engine_begin(&e);
        cr_assert_eq(vkt_model_record_step(rec.m, e.cmd,
                                           &(vkt_record_desc){
                                               .after_stages = VK_PIPELINE_STAGE_TRANSFER_BIT,
                                               .after_access = VK_ACCESS_TRANSFER_READ_BIT}),
                     VKT_OK, "%s", vkt_context_last_error(ctx));
        engine_record_readback(&e, loss_buffer, loss_offset, sizeof(float), &readback,
                               (VkDeviceSize)s * sizeof(float));
        engine_submit(&e);
        float got;
        memcpy(&got, (const char *)readback.mapped + s * sizeof(float), sizeof got);
        cr_assert(memcmp(&got, &want, sizeof got) == 0, "step %d: recorded loss %.9g, model step %.9g",
                  s, got, want);
    }
    vkt_model_info info;
    cr_assert_eq(vkt_model_query(rec.m, &info), VKT_OK);
    cr_assert_eq(info.step, STEPS, "recorded steps are counted");
    assert_same_var(&ref, &rec, ref.w1, HID * F, "fc1.weight after the steps");
    assert_same_var(&ref, &rec, ref.b2, OUT, "fc2.bias after the steps");

    /* Evaluation: data set 99 through both paths. */
    float xs[B * F], ts[B * OUT], want, got;
    engine_values(xs, B * F, 99);
    engine_values(ts, B * OUT, 98);
    vkt_feed feeds[2] = {{ref.x, xs, B * F}, {ref.t, ts, B * OUT}};
    cr_assert_eq(vkt_model_evaluate(ref.m, feeds, 2, &want), VKT_OK);
    cr_assert_eq(vkt_tensor_upload(x, xs, B * F), VKT_OK);
    cr_assert_eq(vkt_tensor_upload(t, ts, B * OUT), VKT_OK);
    engine_begin(&e);
    cr_assert_eq(vkt_model_record_evaluate(rec.m, e.cmd, NULL), VKT_OK);
    engine_submit(&e);
    cr_assert_eq(vkt_model_read(rec.m, rec.loss, &got, 1), VKT_OK);
    cr_assert(memcmp(&got, &want, sizeof got) == 0, "evaluation loss %.9g vs %.9g", got, want);
    assert_same_var(&ref, &rec, ref.pred, B * OUT, "the evaluation's prediction");

    engine_buffer_destroy(&e, &readback);
    net_destroy(&ref);
    net_destroy(&rec);
    vkt_tensor_destroy(x);
    vkt_tensor_destroy(t);
    engine_unadopt(&e, ctx);
    engine_destroy(&e);
}

/* The engine's shader writes each batch into its own buffers, which the
 * model reads through wrapped tensors; two steps share the last command
 * buffer; the engine reads fc1.weight through its VkBuffer with its own
 * copy. Everything must equal host-fed vkt_model_step. */
Test(embed, engine_shader_feeds_wrapped_buffers) {
    engine e;
    engine_create(&e, VK_API_VERSION_1_2);
    vkt_context *ctx = engine_adopt(&e);
    vkt_vulkan_info vi;
    cr_assert_eq(vkt_vulkan_query(ctx, &vi), VKT_OK);
    net ref, rec;
    net_make(ctx, &ref, 11);
    net_make(ctx, &rec, 11);
    /* x and t live in one engine buffer: t after x at an aligned offset. */
    VkDeviceSize align = vi.min_storage_buffer_offset_alignment;
    VkDeviceSize t_offset = ((VkDeviceSize)B * F * sizeof(float) + align - 1) / align * align;
    engine_buffer data, readback;
    engine_buffer_create(&e, &data, t_offset + B * OUT * sizeof(float),
                         VK_BUFFER_USAGE_STORAGE_BUFFER_BIT, false);
    engine_buffer_create(&e, &readback, HID * F * sizeof(float), VK_BUFFER_USAGE_TRANSFER_DST_BIT,
                         true);
    vkt_tensor *x, *t;
    cr_assert_eq(vkt_tensor_wrap_vulkan(ctx, data.buffer, 0, t_offset,
                                        &(vkt_tensor_desc){.ndim = 3, .dims = {B, 3, 4},
                                                           .name = "engine x"},
                                        &x),
                 VKT_OK, "%s", vkt_context_last_error(ctx));
    cr_assert_eq(vkt_tensor_wrap_vulkan(ctx, data.buffer, t_offset, VK_WHOLE_SIZE,
                                        &(vkt_tensor_desc){.ndim = 2, .dims = {B, OUT}}, &t),
                 VKT_OK, "%s", vkt_context_last_error(ctx));
    VkBuffer qb;
    VkDeviceSize qo, qs;
    cr_assert_eq(vkt_tensor_query_vulkan_buffer(t, &qb, &qo, &qs), VKT_OK);
    cr_assert(qb == data.buffer && qo == t_offset && qs == B * OUT * sizeof(float));
    cr_assert_eq(vkt_model_bind_input(rec.m, rec.x, x), VKT_OK);
    cr_assert_eq(vkt_model_bind_input(rec.m, rec.t, t), VKT_OK);
    cr_assert_eq(vkt_model_query_vulkan_buffer(rec.m, rec.t, &qb, &qo, &qs), VKT_OK);
    cr_assert(qb == data.buffer && qo == t_offset, "a bound input is where its tensor is");

    float want[STEPS];
    for (int s = 0; s < STEPS; s++)
        host_step(&ref, s, &want[s]);
    /* One step per command buffer, then the last two in one. The fill of
     * t goes through an offset descriptor, so it is recorded by hand. */
    for (int s = 0; s < STEPS; s++) {
        if (s != STEPS - 1) { /* the last step continues the previous command buffer */
            engine_begin(&e);
            e.vk.vkResetDescriptorPool(e.device, e.descriptors, 0);
        }
        engine_record_fill(&e, &data, B * F, x_seed(s));
        VkDescriptorSet set;
        VK_OK(e.vk.vkAllocateDescriptorSets(e.device,
                                            &(VkDescriptorSetAllocateInfo){
                                                .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO,
                                                .descriptorPool = e.descriptors,
                                                .descriptorSetCount = 1,
                                                .pSetLayouts = &e.set_layout},
                                            &set));
        VkDescriptorBufferInfo info = {data.buffer, t_offset, B * OUT * sizeof(float)};
        e.vk.vkUpdateDescriptorSets(e.device, 1,
                                    &(VkWriteDescriptorSet){
                                        .sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET,
                                        .dstSet = set,
                                        .descriptorCount = 1,
                                        .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                                        .pBufferInfo = &info},
                                    0, NULL);
        uint32_t push[2] = {B * OUT, t_seed(s)};
        e.vk.vkCmdBindDescriptorSets(e.cmd, VK_PIPELINE_BIND_POINT_COMPUTE, e.layout, 0, 1, &set,
                                     0, NULL);
        e.vk.vkCmdPushConstants(e.cmd, e.layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, sizeof push,
                                push);
        e.vk.vkCmdDispatch(e.cmd, (B * OUT + 63) / 64, 1, 1);
        /* vktrain's leading barrier covers the compute writes above; the
         * trailing one makes the next fill wait for the step's reads. */
        cr_assert_eq(vkt_model_record_step(rec.m, e.cmd,
                                           &(vkt_record_desc){
                                               .after_stages = VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT,
                                               .after_access = VK_ACCESS_SHADER_WRITE_BIT}),
                     VKT_OK, "%s", vkt_context_last_error(ctx));
        if (s != STEPS - 2)
            engine_submit(&e);
        if (s < STEPS - 2) {
            float got;
            cr_assert_eq(vkt_model_read(rec.m, rec.loss, &got, 1), VKT_OK);
            cr_assert(memcmp(&got, &want[s], sizeof got) == 0,
                      "step %d: engine-fed loss %.9g, host-fed %.9g", s, got, want[s]);
        }
    }
    float got;
    cr_assert_eq(vkt_model_read(rec.m, rec.loss, &got, 1), VKT_OK);
    cr_assert(memcmp(&got, &want[STEPS - 1], sizeof got) == 0, "last loss %.9g vs %.9g", got,
              want[STEPS - 1]);

    /* fc1.weight through its VkBuffer, copied by the engine. */
    VkBuffer wb;
    VkDeviceSize wo, ws;
    cr_assert_eq(vkt_model_query_vulkan_buffer(rec.m, rec.w1, &wb, &wo, &ws), VKT_OK);
    cr_assert_eq(ws, HID * F * sizeof(float));
    engine_begin(&e);
    /* Hazard: the copy reads what vktrain's optimizer wrote (RAW). */
    VkMemoryBarrier mb = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                          .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT,
                          .dstAccessMask = VK_ACCESS_TRANSFER_READ_BIT};
    e.vk.vkCmdPipelineBarrier(e.cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT,
                              VK_PIPELINE_STAGE_TRANSFER_BIT, 0, 1, &mb, 0, NULL, 0, NULL);
    engine_record_readback(&e, wb, wo, ws, &readback, 0);
    engine_submit(&e);
    float *w = h_alloc_floats(HID * F);
    cr_assert_eq(vkt_model_read(ref.m, ref.w1, w, HID * F), VKT_OK);
    cr_assert(memcmp(w, readback.mapped, HID * F * sizeof(float)) == 0,
              "fc1.weight read through its VkBuffer differs from the host-fed model's");
    free(w);

    net_destroy(&ref);
    net_destroy(&rec);
    vkt_tensor_destroy(x);
    vkt_tensor_destroy(t);
    engine_buffer_destroy(&e, &data);
    engine_buffer_destroy(&e, &readback);
    engine_unadopt(&e, ctx);
    engine_destroy(&e);
}

static void expect_adopt_error(const vkt_vulkan_external *ext, vkt_result want, const char *text) {
    vkt_context *ctx = NULL;
    vkt_result r = vkt_context_create(
        &(vkt_context_desc){.backend = VKT_BACKEND_VULKAN, .external = ext}, &ctx);
    cr_assert_eq(r, want, "got %s (%s), expected %s", vkt_result_string(r), vkt_last_error(),
                 vkt_result_string(want));
    cr_assert_null(ctx);
    cr_assert(strstr(vkt_last_error(), text), "the message '%s' does not mention '%s'",
              vkt_last_error(), text);
}

Test(embed, adopting_what_vktrain_cannot_use_fails_clearly) {
    engine e;
    engine_create(&e, VK_API_VERSION_1_1);
    vkt_vulkan_external ext = engine_external(&e, VK_API_VERSION_1_1);

    ext.queue_family_index = 99;
    expect_adopt_error(&ext, VKT_ERROR_INVALID_ARGUMENT, "queue_family_index 99 does not exist");
    /* A family without compute, where the device has one (lavapipe has a
     * single family that does everything). */
    VkQueueFamilyProperties families[16];
    uint32_t family_count = 16;
    vkGetPhysicalDeviceQueueFamilyProperties(e.physical_device, &family_count, families);
    for (uint32_t i = 0; i < family_count; i++) {
        if (!(families[i].queueFlags & VK_QUEUE_COMPUTE_BIT)) {
            ext.queue_family_index = i;
            expect_adopt_error(&ext, VKT_ERROR_UNSUPPORTED, "lacks VK_QUEUE_COMPUTE_BIT");
            break;
        }
    }
    ext = engine_external(&e, VK_API_VERSION_1_1);
    ext.queue = NULL;
    expect_adopt_error(&ext, VKT_ERROR_INVALID_ARGUMENT, "desc->external->queue is NULL");
    /* An instance created for Vulkan 1.0: vktrain calls 1.1 commands. */
    ext = engine_external(&e, VK_API_VERSION_1_0);
    expect_adopt_error(&ext, VKT_ERROR_UNSUPPORTED, "vktrain needs Vulkan 1.1");
    /* A physical device of another instance. */
    vkt_context *owned = h_vulkan();
    vkt_vulkan_info other;
    cr_assert_eq(vkt_vulkan_query(owned, &other), VKT_OK);
    ext = engine_external(&e, VK_API_VERSION_1_1);
    ext.physical_device = other.physical_device;
    expect_adopt_error(&ext, VKT_ERROR_INVALID_ARGUMENT, "physical_device is not one of");
    h_finish(owned);

    /* After all that, the engine's objects still work for vktrain. */
    vkt_context *ctx = engine_adopt(&e);
    engine_unadopt(&e, ctx);
    engine_destroy(&e);
}

Test(embed, engine_on_vulkan_1_0_is_refused) {
    engine e;
    engine_create(&e, VK_API_VERSION_1_0);
    vkt_vulkan_external ext = engine_external(&e, VK_API_VERSION_1_0);
    expect_adopt_error(&ext, VKT_ERROR_UNSUPPORTED, "apiVersion 1.0");
    engine_destroy(&e);
}

Test(embed, wrapping_and_binding_errors_name_the_problem) {
    engine e;
    engine_create(&e, VK_API_VERSION_1_1);
    vkt_context *ctx = engine_adopt(&e);
    vkt_vulkan_info vi;
    cr_assert_eq(vkt_vulkan_query(ctx, &vi), VKT_OK);
    engine_buffer data;
    engine_buffer_create(&e, &data, 4096, VK_BUFFER_USAGE_STORAGE_BUFFER_BIT, false);
    vkt_tensor *tensor = NULL;
    vkt_tensor_desc desc = {.ndim = 2, .dims = {B, OUT}, .name = "targets"};
    if (vi.min_storage_buffer_offset_alignment > 4) {
        cr_assert_eq(vkt_tensor_wrap_vulkan(ctx, data.buffer, 4, VK_WHOLE_SIZE, &desc, &tensor),
                     VKT_ERROR_INVALID_ARGUMENT);
        cr_assert(strstr(vkt_context_last_error(ctx), "minStorageBufferOffsetAlignment"));
    }
    cr_assert_eq(vkt_tensor_wrap_vulkan(ctx, data.buffer, 0, 16, &desc, &tensor),
                 VKT_ERROR_SHAPE);
    cr_assert(strstr(vkt_context_last_error(ctx), "'targets'"), "%s",
              vkt_context_last_error(ctx));
    cr_assert_null(tensor);
    cr_assert_eq(vkt_tensor_wrap_vulkan(ctx, data.buffer, 0, 4096, &desc, &tensor), VKT_OK);
    net n;
    net_make(ctx, &n, 1);
    cr_assert_eq(vkt_model_bind_input(n.m, n.x, tensor), VKT_ERROR_SHAPE);
    cr_assert(strstr(vkt_context_last_error(ctx), "input 'x'"), "%s",
                     vkt_context_last_error(ctx));
    cr_assert_eq(vkt_model_bind_input(n.m, n.w1, tensor), VKT_ERROR_INVALID_ARGUMENT);
    cr_assert_eq(vkt_model_bind_input(n.m, n.t, tensor), VKT_OK);
    cr_assert_eq(vkt_model_bind_input(n.m, n.t, NULL), VKT_OK);
    cr_assert_eq(vkt_model_record_step(n.m, VK_NULL_HANDLE, NULL), VKT_ERROR_INVALID_ARGUMENT);
    net_destroy(&n);

    /* Nothing of this is for the CPU backend. */
    vkt_context *cpu = h_cpu();
    cr_assert_eq(vkt_tensor_wrap_vulkan(cpu, data.buffer, 0, 4096, &desc, &tensor),
                 VKT_ERROR_BACKEND_MISMATCH);
    net c;
    net_make(cpu, &c, 1);
    cr_assert_eq(vkt_model_record_step(c.m, e.cmd, NULL), VKT_ERROR_BACKEND_MISMATCH);
    cr_assert(strstr(vkt_context_last_error(cpu), "vkt_model_record_step"));
    net_destroy(&c);
    vkt_context_destroy(cpu);

    vkt_tensor_destroy(tensor);
    engine_buffer_destroy(&e, &data);
    engine_unadopt(&e, ctx);
    engine_destroy(&e);
}

/* ---- Two contexts, two threads */

typedef struct trainer {
    net n;
    int first_set;
    float losses[STEPS];
} trainer;

static void *train_thread(void *arg) {
    trainer *tr = arg;
    for (int s = 0; s < STEPS; s++) {
        float x[B * F], t[B * OUT];
        engine_values(x, B * F, x_seed(s + tr->first_set));
        engine_values(t, B * OUT, t_seed(s + tr->first_set));
        vkt_feed feeds[2] = {{tr->n.x, x, B * F}, {tr->n.t, t, B * OUT}};
        if (vkt_model_step(tr->n.m, feeds, 2, &tr->losses[s]) != VKT_OK)
            tr->losses[s] = -1.0f; /* the main thread fails the test */
    }
    return NULL;
}

/* An adopted and an owned context train different models at the same
 * time, each from its own thread, and get exactly what each gets alone. */
Test(embed, adopted_and_owned_contexts_train_side_by_side) {
    engine e;
    engine_create(&e, VK_API_VERSION_1_1);
    vkt_context *adopted = engine_adopt(&e);
    vkt_context *owned = h_vulkan();
    trainer together[2] = {{.first_set = 0}, {.first_set = 40}};
    net_make(adopted, &together[0].n, 5);
    net_make(owned, &together[1].n, 6);
    pthread_t threads[2];
    for (int i = 0; i < 2; i++)
        cr_assert_eq(pthread_create(&threads[i], NULL, train_thread, &together[i]), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(threads[i], NULL);

    vkt_context *ctxs[2] = {adopted, owned};
    for (int i = 0; i < 2; i++) {
        trainer alone = {.first_set = together[i].first_set};
        net_make(ctxs[i], &alone.n, i == 0 ? 5 : 6);
        train_thread(&alone);
        for (int s = 0; s < STEPS; s++)
            cr_assert(memcmp(&alone.losses[s], &together[i].losses[s], sizeof(float)) == 0,
                      "%s context, step %d: %.9g together, %.9g alone",
                      i == 0 ? "adopted" : "owned", s, together[i].losses[s], alone.losses[s]);
        assert_same_var(&alone.n, &together[i].n, alone.n.w1, HID * F, "fc1.weight");
        net_destroy(&alone.n);
        net_destroy(&together[i].n);
    }
    h_finish(owned);
    engine_unadopt(&e, adopted);
    engine_destroy(&e);
}
