/* neural_image: a network learns to paint an image, trained the way a game
 * or graphics engine would train one inside its own renderer.
 *
 * The program plays the engine. It creates its own Vulkan instance, device
 * and queue through the loader, owns its command buffers, and keeps the
 * image, a table of Fourier frequencies and the training batches in its own
 * buffers. It hands its device to vktrain (vktrain_vulkan.h), which trains
 * an MLP that maps a pixel position to its colour:
 *
 *   (x, y) -> Fourier features (2F) -> [Linear -> ReLU] x depth -> Linear
 *          -> sigmoid -> RGB,  loss: MSE against the image's colour.
 *
 * Every training step is one "frame" of the engine: its own compute shader
 * (fourier_features.comp) draws a batch of random pixels and writes their
 * features and colours into its buffers, then vkt_model_record_step records
 * the training step into the same command buffer; the model reads the
 * batch straight from the engine's buffers (wrapped tensors): no host
 * upload, no copy. For a snapshot the engine records evaluations of the
 * whole image chunk by chunk and copies the prediction out of vktrain's
 * buffer itself, writes a PNG and prints the PSNR.
 *
 *   neural_image [image.png] [--steps N] [--snapshot-every N] [--out PREFIX]
 *                [--size S] [--batch B] [--freqs F] [--sigma S] [--width W]
 *                [--depth D] [--lr LR] [--min-psnr DB] [--seed S] [--validation]
 *
 * Without an image it paints a generated colourful pattern (--size, 128 by
 * default). Snapshots come at steps 25, 50, 100, 200, ... and at the end,
 * or every N steps with --snapshot-every N. --out PREFIX writes
 * PREFIX_target.png and PREFIX_step<N>.png (default "neural_image"; ""
 * writes none). VKT_VALIDATION=1 or --validation turns on the Khronos
 * validation layer with synchronization validation on the engine's
 * instance; its messages are forwarded to vktrain and fail the run. The exit
 * status is 0 when the last snapshot reaches --min-psnr (28 dB by default
 * for the generated pattern, 0 for a given image).
 *
 * Built against libvktrain.so: linking the static library next to
 * libvulkan would clash (see vktrain_vulkan.h, LINKING). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <vktrain_vulkan.h>

#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_PNG
#define STBI_FAILURE_USERMSG
#include <stb/stb_image.h>
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb/stb_image_write.h>

static const uint32_t fourier_features_spirv[] =
#include "fourier_features.spv.h"
    ;

#define MAX_FREQS 256

typedef struct options {
    const char *image, *out;
    int size, steps, snapshot_every, batch, freqs, width, depth;
    float sigma, lr, min_psnr;
    uint64_t seed;
    bool validation, min_psnr_set;
} options;

static void die(const char *what) {
    fprintf(stderr, "neural_image: %s\n", what);
    exit(1);
}

#define VK_CHECK(expr)                                                                         \
    do {                                                                                       \
        VkResult vk_check_result_ = (expr);                                                    \
        if (vk_check_result_ != VK_SUCCESS) {                                                  \
            fprintf(stderr, "neural_image: %s failed (VkResult %d)\n", #expr,                  \
                    (int)vk_check_result_);                                                    \
            exit(1);                                                                           \
        }                                                                                      \
    } while (0)

#define VKT_CHECK(ctx, expr)                                                                   \
    do {                                                                                       \
        if ((expr) != VKT_OK) {                                                                \
            fprintf(stderr, "neural_image: %s: %s\n", #expr, vkt_context_last_error(ctx));     \
            exit(1);                                                                           \
        }                                                                                      \
    } while (0)

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---- The image */

typedef struct image {
    int width, height;
    float *rgb; /* (H, W, 3) in [0, 1] */
} image;

static float smoothstep01(float edge0, float edge1, float x) {
    float t = (x - edge0) / (edge1 - edge0);
    t = t < 0 ? 0 : t > 1 ? 1 : t;
    return t * t * (3 - 2 * t);
}

/* A colourful test card: slow colour waves, rings, a soft checker and a
 * few discs with anti-aliased edges a couple of pixels wide. Everything is
 * band-limited, as a real photo's detail is, so a small network can reach a
 * high PSNR in a few minutes on a CPU device. */
static image make_pattern(int size) {
    image im = {size, size, malloc((size_t)size * size * 3 * sizeof(float))};
    if (!im.rgb)
        die("out of memory");
    const float discs[4][6] = {/* cx, cy, radius, r, g, b */
                               {0.30f, 0.32f, 0.17f, 0.95f, 0.85f, 0.10f},
                               {0.70f, 0.36f, 0.13f, 0.10f, 0.80f, 0.95f},
                               {0.42f, 0.72f, 0.15f, 0.95f, 0.25f, 0.55f},
                               {0.78f, 0.76f, 0.09f, 0.25f, 0.95f, 0.35f}};
    float soft = 2.5f / (float)size; /* edge width: about 2.5 pixels */
    for (int py = 0; py < size; py++) {
        for (int px = 0; px < size; px++) {
            float x = (px + 0.5f) / size, y = (py + 0.5f) / size;
            float c[3] = {0.5f + 0.35f * sinf(6.2831853f * (0.9f * x + 0.2f)),
                          0.5f + 0.35f * sinf(6.2831853f * (0.7f * y + 0.5f * x)),
                          0.5f + 0.35f * cosf(6.2831853f * (0.8f * (x - y)))};
            float dx = x - 0.5f, dy = y - 0.5f;
            float rings = 0.12f * sinf(6.2831853f * 6.0f * sqrtf(dx * dx + dy * dy));
            float checker = 0.06f * sinf(6.2831853f * 4.0f * x) * sinf(6.2831853f * 4.0f * y);
            for (int k = 0; k < 3; k++)
                c[k] += rings * (k == 1 ? -1.0f : 1.0f) + checker;
            for (int d = 0; d < 4; d++) {
                float ex = x - discs[d][0], ey = y - discs[d][1];
                float r = sqrtf(ex * ex + ey * ey);
                float inside = 1.0f - smoothstep01(discs[d][2] - soft, discs[d][2] + soft, r);
                for (int k = 0; k < 3; k++)
                    c[k] += inside * (discs[d][3 + k] - c[k]);
            }
            for (int k = 0; k < 3; k++)
                im.rgb[((size_t)py * size + px) * 3 + k] = c[k] < 0 ? 0 : c[k] > 1 ? 1 : c[k];
        }
    }
    return im;
}

static image load_png(const char *path) {
    int w, h, n;
    unsigned char *pixels = stbi_load(path, &w, &h, &n, 3);
    if (!pixels) {
        fprintf(stderr, "neural_image: cannot read '%s': %s\n", path, stbi_failure_reason());
        exit(1);
    }
    image im = {w, h, malloc((size_t)w * h * 3 * sizeof(float))};
    if (!im.rgb)
        die("out of memory");
    for (size_t i = 0; i < (size_t)w * h * 3; i++)
        im.rgb[i] = pixels[i] / 255.0f;
    stbi_image_free(pixels);
    return im;
}

static void write_png(const char *prefix, const char *suffix, const image *im, const float *rgb) {
    if (!prefix || !*prefix)
        return;
    size_t n = (size_t)im->width * im->height * 3;
    unsigned char *bytes = malloc(n);
    if (!bytes)
        die("out of memory");
    for (size_t i = 0; i < n; i++) {
        float v = rgb[i] < 0 ? 0 : rgb[i] > 1 ? 1 : rgb[i];
        bytes[i] = (unsigned char)lrintf(v * 255.0f);
    }
    char path[1024];
    snprintf(path, sizeof path, "%s_%s.png", prefix, suffix);
    if (!stbi_write_png(path, im->width, im->height, 3, bytes, im->width * 3))
        fprintf(stderr, "neural_image: cannot write '%s'\n", path);
    free(bytes);
}

/* PSNR in dB of the prediction (clamped to [0, 1]) against the image. */
static double psnr(const image *im, const float *rgb) {
    size_t n = (size_t)im->width * im->height * 3;
    double se = 0.0;
    for (size_t i = 0; i < n; i++) {
        double v = rgb[i] < 0 ? 0 : rgb[i] > 1 ? 1 : rgb[i];
        se += (v - im->rgb[i]) * (v - im->rgb[i]);
    }
    double mse = se / (double)n;
    return mse > 0 ? 10.0 * log10(1.0 / mse) : 99.0;
}

/* ---- The engine's Vulkan objects */

typedef struct engine {
    VkInstance instance;
    VkDebugUtilsMessengerEXT messenger;
    VkPhysicalDevice physical_device;
    VkPhysicalDeviceProperties props;
    VkPhysicalDeviceMemoryProperties memory;
    VkDevice device;
    uint32_t family;
    VkQueue queue;
    VkCommandPool pool;
    VkCommandBuffer cmd;
    VkFence fence;
    vkt_context *vkt; /* told of validation messages */
    unsigned messages;
} engine;

typedef struct buffer {
    VkBuffer buffer;
    VkDeviceMemory memory;
    void *mapped; /* host-visible buffers */
    VkDeviceSize size;
} buffer;

static VKAPI_ATTR VkBool32 VKAPI_CALL on_validation(VkDebugUtilsMessageSeverityFlagBitsEXT severity,
                                                    VkDebugUtilsMessageTypeFlagsEXT types,
                                                    const VkDebugUtilsMessengerCallbackDataEXT *data,
                                                    void *user) {
    (void)types;
    engine *e = user;
    if (severity >= VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT) {
        e->messages++;
        fprintf(stderr, "validation: %s\n", data->pMessage);
    }
    if (e->vkt) /* vktrain counts them too: vkt_context_validation_messages */
        vkt_vulkan_report_validation_message(e->vkt, severity, data->pMessage);
    return VK_FALSE;
}

static void create_instance(engine *e, bool validation) {
    VkDebugUtilsMessengerCreateInfoEXT messenger = {
        .sType = VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT,
        .messageSeverity = VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT |
                           VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT,
        .messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT |
                       VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT |
                       VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT,
        .pfnUserCallback = on_validation,
        .pUserData = e,
    };
    VkValidationFeatureEnableEXT sync = VK_VALIDATION_FEATURE_ENABLE_SYNCHRONIZATION_VALIDATION_EXT;
    VkValidationFeaturesEXT features = {.sType = VK_STRUCTURE_TYPE_VALIDATION_FEATURES_EXT,
                                        .pNext = &messenger,
                                        .enabledValidationFeatureCount = 1,
                                        .pEnabledValidationFeatures = &sync};
    const char *layer = "VK_LAYER_KHRONOS_validation";
    const char *extension = VK_EXT_DEBUG_UTILS_EXTENSION_NAME;
    VkResult vr = vkCreateInstance(
        &(VkInstanceCreateInfo){
            .sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO,
            .pNext = validation ? &features : NULL,
            .pApplicationInfo = &(VkApplicationInfo){.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO,
                                                     .pApplicationName = "neural_image",
                                                     .apiVersion = VK_API_VERSION_1_1},
            .enabledLayerCount = validation ? 1 : 0,
            .ppEnabledLayerNames = &layer,
            .enabledExtensionCount = validation ? 1 : 0,
            .ppEnabledExtensionNames = &extension},
        NULL, &e->instance);
    if (vr == VK_ERROR_LAYER_NOT_PRESENT)
        die("the validation layer is not installed (Debian: vulkan-validationlayers)");
    VK_CHECK(vr);
    if (validation) {
        PFN_vkCreateDebugUtilsMessengerEXT create = (PFN_vkCreateDebugUtilsMessengerEXT)
            vkGetInstanceProcAddr(e->instance, "vkCreateDebugUtilsMessengerEXT");
        VK_CHECK(create(e->instance, &messenger, NULL, &e->messenger));
    }
}

/* The most capable device (discrete > integrated > virtual > CPU) and its
 * first family with compute, as a renderer that also trains would pick. */
static void create_device(engine *e) {
    VkPhysicalDevice devices[16];
    uint32_t count = 16;
    VkResult vr = vkEnumeratePhysicalDevices(e->instance, &count, devices);
    if ((vr != VK_SUCCESS && vr != VK_INCOMPLETE) || count == 0)
        die("no Vulkan device");
    static const int rank[] = {[VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU] = 4,
                               [VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU] = 3,
                               [VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU] = 2,
                               [VK_PHYSICAL_DEVICE_TYPE_CPU] = 1};
    int best = -1;
    for (uint32_t i = 0; i < count; i++) {
        VkPhysicalDeviceProperties p;
        vkGetPhysicalDeviceProperties(devices[i], &p);
        int r = p.deviceType <= VK_PHYSICAL_DEVICE_TYPE_CPU ? rank[p.deviceType] : 0;
        if (p.apiVersion >= VK_API_VERSION_1_1 && (best < 0 || r > rank[e->props.deviceType])) {
            best = (int)i;
            e->props = p;
        }
    }
    if (best < 0)
        die("no Vulkan 1.1 device");
    e->physical_device = devices[best];
    vkGetPhysicalDeviceMemoryProperties(e->physical_device, &e->memory);
    VkQueueFamilyProperties families[16];
    uint32_t family_count = 16;
    vkGetPhysicalDeviceQueueFamilyProperties(e->physical_device, &family_count, families);
    e->family = UINT32_MAX;
    for (uint32_t i = 0; i < family_count && e->family == UINT32_MAX; i++)
        if (families[i].queueFlags & VK_QUEUE_COMPUTE_BIT)
            e->family = i;
    if (e->family == UINT32_MAX)
        die("the device has no compute queue");
    float priority = 1.0f;
    VK_CHECK(vkCreateDevice(e->physical_device,
                            &(VkDeviceCreateInfo){
                                .sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO,
                                .queueCreateInfoCount = 1,
                                .pQueueCreateInfos = &(VkDeviceQueueCreateInfo){
                                    .sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO,
                                    .queueFamilyIndex = e->family,
                                    .queueCount = 1,
                                    .pQueuePriorities = &priority}},
                            NULL, &e->device));
    vkGetDeviceQueue(e->device, e->family, 0, &e->queue);
    VK_CHECK(vkCreateCommandPool(e->device,
                                 &(VkCommandPoolCreateInfo){
                                     .sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
                                     .flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT,
                                     .queueFamilyIndex = e->family},
                                 NULL, &e->pool));
    VK_CHECK(vkAllocateCommandBuffers(e->device,
                                      &(VkCommandBufferAllocateInfo){
                                          .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
                                          .commandPool = e->pool,
                                          .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
                                          .commandBufferCount = 1},
                                      &e->cmd));
    VK_CHECK(vkCreateFence(e->device,
                           &(VkFenceCreateInfo){.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO}, NULL,
                           &e->fence));
}

static void create_buffer(engine *e, buffer *b, VkDeviceSize size, VkBufferUsageFlags usage,
                          bool host_visible) {
    b->size = size;
    b->mapped = NULL;
    VK_CHECK(vkCreateBuffer(e->device,
                            &(VkBufferCreateInfo){.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO,
                                                  .size = size,
                                                  .usage = usage,
                                                  .sharingMode = VK_SHARING_MODE_EXCLUSIVE},
                            NULL, &b->buffer));
    VkMemoryRequirements req;
    vkGetBufferMemoryRequirements(e->device, b->buffer, &req);
    VkMemoryPropertyFlags want = host_visible ? VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT |
                                                    VK_MEMORY_PROPERTY_HOST_COHERENT_BIT
                                              : VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT;
    uint32_t type = UINT32_MAX;
    for (uint32_t i = 0; i < e->memory.memoryTypeCount && type == UINT32_MAX; i++)
        if ((req.memoryTypeBits & (1u << i)) &&
            (e->memory.memoryTypes[i].propertyFlags & want) == want)
            type = i;
    if (type == UINT32_MAX)
        die("no suitable memory type");
    VK_CHECK(vkAllocateMemory(e->device,
                              &(VkMemoryAllocateInfo){.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO,
                                                      .allocationSize = req.size,
                                                      .memoryTypeIndex = type},
                              NULL, &b->memory));
    VK_CHECK(vkBindBufferMemory(e->device, b->buffer, b->memory, 0));
    if (host_visible)
        VK_CHECK(vkMapMemory(e->device, b->memory, 0, VK_WHOLE_SIZE, 0, &b->mapped));
}

static void destroy_buffer(engine *e, buffer *b) {
    vkDestroyBuffer(e->device, b->buffer, NULL);
    vkFreeMemory(e->device, b->memory, NULL);
}

static void begin_frame(engine *e) {
    VK_CHECK(vkResetCommandBuffer(e->cmd, 0));
    VK_CHECK(vkBeginCommandBuffer(
        e->cmd, &(VkCommandBufferBeginInfo){.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
                                            .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT}));
}

static void submit_and_wait(engine *e) {
    VK_CHECK(vkEndCommandBuffer(e->cmd));
    VK_CHECK(vkQueueSubmit(e->queue, 1,
                           &(VkSubmitInfo){.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO,
                                           .commandBufferCount = 1,
                                           .pCommandBuffers = &e->cmd},
                           e->fence));
    VK_CHECK(vkWaitForFences(e->device, 1, &e->fence, VK_TRUE, UINT64_MAX));
    VK_CHECK(vkResetFences(e->device, 1, &e->fence));
}

static void memory_barrier(VkCommandBuffer cmd, VkPipelineStageFlags src_stage,
                           VkAccessFlags src_access, VkPipelineStageFlags dst_stage,
                           VkAccessFlags dst_access) {
    VkMemoryBarrier b = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                         .srcAccessMask = src_access,
                         .dstAccessMask = dst_access};
    vkCmdPipelineBarrier(cmd, src_stage, dst_stage, 0, 1, &b, 0, NULL, 0, NULL);
}

/* Copies host data into a device-local buffer through a staging buffer. */
static void upload(engine *e, buffer *dst, const void *data, VkDeviceSize size) {
    buffer staging;
    create_buffer(e, &staging, size, VK_BUFFER_USAGE_TRANSFER_SRC_BIT, true);
    memcpy(staging.mapped, data, (size_t)size);
    begin_frame(e);
    vkCmdCopyBuffer(e->cmd, staging.buffer, dst->buffer, 1, &(VkBufferCopy){.size = size});
    /* Hazard: the features shader reads what the copy wrote (RAW). */
    memory_barrier(e->cmd, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_ACCESS_TRANSFER_WRITE_BIT,
                   VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_ACCESS_SHADER_READ_BIT);
    submit_and_wait(e);
    destroy_buffer(e, &staging);
}

/* ---- The engine's features pass: fourier_features.comp */

typedef struct features_pass {
    VkDescriptorSetLayout set_layout;
    VkPipelineLayout layout;
    VkPipeline pipeline;
    VkDescriptorPool pool;
    VkDescriptorSet set;
} features_pass;

typedef struct features_push {
    uint32_t count, width, height, nfreq, first, random, seed;
} features_push;

static void create_features_pass(engine *e, features_pass *f, const buffer *bufs[4]) {
    VkDescriptorSetLayoutBinding bindings[4];
    for (uint32_t i = 0; i < 4; i++)
        bindings[i] = (VkDescriptorSetLayoutBinding){.binding = i,
                                                     .descriptorType =
                                                         VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                                                     .descriptorCount = 1,
                                                     .stageFlags = VK_SHADER_STAGE_COMPUTE_BIT};
    VK_CHECK(vkCreateDescriptorSetLayout(
        e->device,
        &(VkDescriptorSetLayoutCreateInfo){
            .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO,
            .bindingCount = 4,
            .pBindings = bindings},
        NULL, &f->set_layout));
    VK_CHECK(vkCreatePipelineLayout(
        e->device,
        &(VkPipelineLayoutCreateInfo){
            .sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO,
            .setLayoutCount = 1,
            .pSetLayouts = &f->set_layout,
            .pushConstantRangeCount = 1,
            .pPushConstantRanges = &(VkPushConstantRange){VK_SHADER_STAGE_COMPUTE_BIT, 0,
                                                          sizeof(features_push)}},
        NULL, &f->layout));
    VkShaderModule module;
    VK_CHECK(vkCreateShaderModule(e->device,
                                  &(VkShaderModuleCreateInfo){
                                      .sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO,
                                      .codeSize = sizeof fourier_features_spirv,
                                      .pCode = fourier_features_spirv},
                                  NULL, &module));
    VK_CHECK(vkCreateComputePipelines(
        e->device, VK_NULL_HANDLE, 1,
        &(VkComputePipelineCreateInfo){
            .sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO,
            .stage = {.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO,
                      .stage = VK_SHADER_STAGE_COMPUTE_BIT,
                      .module = module,
                      .pName = "main"},
            .layout = f->layout},
        NULL, &f->pipeline));
    vkDestroyShaderModule(e->device, module, NULL);
    VK_CHECK(vkCreateDescriptorPool(
        e->device,
        &(VkDescriptorPoolCreateInfo){
            .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO,
            .maxSets = 1,
            .poolSizeCount = 1,
            .pPoolSizes = &(VkDescriptorPoolSize){VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, 4}},
        NULL, &f->pool));
    VK_CHECK(vkAllocateDescriptorSets(e->device,
                                      &(VkDescriptorSetAllocateInfo){
                                          .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO,
                                          .descriptorPool = f->pool,
                                          .descriptorSetCount = 1,
                                          .pSetLayouts = &f->set_layout},
                                      &f->set));
    VkDescriptorBufferInfo infos[4];
    VkWriteDescriptorSet writes[4];
    for (uint32_t i = 0; i < 4; i++) {
        infos[i] = (VkDescriptorBufferInfo){bufs[i]->buffer, 0, VK_WHOLE_SIZE};
        writes[i] = (VkWriteDescriptorSet){.sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET,
                                           .dstSet = f->set,
                                           .dstBinding = i,
                                           .descriptorCount = 1,
                                           .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                                           .pBufferInfo = &infos[i]};
    }
    vkUpdateDescriptorSets(e->device, 4, writes, 0, NULL);
}

static void destroy_features_pass(engine *e, features_pass *f) {
    vkDestroyDescriptorPool(e->device, f->pool, NULL);
    vkDestroyPipeline(e->device, f->pipeline, NULL);
    vkDestroyPipelineLayout(e->device, f->layout, NULL);
    vkDestroyDescriptorSetLayout(e->device, f->set_layout, NULL);
}

static void record_features(engine *e, const features_pass *f, const features_push *push) {
    vkCmdBindPipeline(e->cmd, VK_PIPELINE_BIND_POINT_COMPUTE, f->pipeline);
    vkCmdBindDescriptorSets(e->cmd, VK_PIPELINE_BIND_POINT_COMPUTE, f->layout, 0, 1, &f->set, 0,
                            NULL);
    vkCmdPushConstants(e->cmd, f->layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, sizeof *push, push);
    vkCmdDispatch(e->cmd, (push->count + 63) / 64, 1, 1);
}

/* ---- Options */

static void usage(void) {
    fprintf(stderr,
            "usage: neural_image [image.png] [--steps N] [--snapshot-every N] [--out PREFIX]\n"
            "                    [--size S] [--batch B] [--freqs F] [--sigma S] [--width W]\n"
            "                    [--depth D] [--lr LR] [--min-psnr DB] [--seed S] "
            "[--validation]\n");
    exit(2);
}

static options parse_options(int argc, char **argv) {
    options o = {.out = "neural_image", .size = 128, .steps = 400, .snapshot_every = 0,
                 .batch = 4096, .freqs = 64, .width = 64, .depth = 3, .sigma = 8.0f,
                 .lr = 1e-2f, .min_psnr = 28.0f, .seed = 1};
    const char *env = getenv("VKT_VALIDATION");
    o.validation = env && *env && strcmp(env, "0") != 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has_value = i + 1 < argc;
        if (strcmp(a, "--validation") == 0)
            o.validation = true;
        else if (a[0] != '-' && !o.image)
            o.image = a;
        else if (!has_value)
            usage();
        else if (strcmp(a, "--steps") == 0)
            o.steps = atoi(argv[++i]);
        else if (strcmp(a, "--snapshot-every") == 0) {
            o.snapshot_every = atoi(argv[++i]);
            if (o.snapshot_every < 1)
                usage();
        }
        else if (strcmp(a, "--out") == 0)
            o.out = argv[++i];
        else if (strcmp(a, "--size") == 0)
            o.size = atoi(argv[++i]);
        else if (strcmp(a, "--batch") == 0)
            o.batch = atoi(argv[++i]);
        else if (strcmp(a, "--freqs") == 0)
            o.freqs = atoi(argv[++i]);
        else if (strcmp(a, "--sigma") == 0)
            o.sigma = strtof(argv[++i], NULL);
        else if (strcmp(a, "--width") == 0)
            o.width = atoi(argv[++i]);
        else if (strcmp(a, "--depth") == 0)
            o.depth = atoi(argv[++i]);
        else if (strcmp(a, "--lr") == 0)
            o.lr = strtof(argv[++i], NULL);
        else if (strcmp(a, "--min-psnr") == 0) {
            o.min_psnr = strtof(argv[++i], NULL);
            o.min_psnr_set = true;
        } else if (strcmp(a, "--seed") == 0)
            o.seed = strtoull(argv[++i], NULL, 10);
        else
            usage();
    }
    if (o.steps < 1 || o.size < 8 || o.size > 4096 || o.batch < 64 ||
        o.freqs < 1 || o.freqs > MAX_FREQS || o.width < 1 || o.depth < 1 || o.depth > 8 ||
        !(o.lr > 0))
        usage();
    if (o.image && !o.min_psnr_set)
        o.min_psnr = 0.0f; /* a photo's reachable PSNR depends on the photo */
    return o;
}

/* Gaussian frequencies (cycles per image side) of standard deviation
 * sigma, from a seeded splitmix64 through Box-Muller. */
static void make_frequencies(float *freqs, int count, float sigma, uint64_t seed) {
    uint64_t state = seed;
    for (int i = 0; i < 2 * count; i += 2) {
        double u[2];
        for (int k = 0; k < 2; k++) {
            uint64_t z = (state += 0x9E3779B97F4A7C15ull);
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
            u[k] = ((z ^ (z >> 31)) >> 11) * (1.0 / 9007199254740992.0);
        }
        double r = sqrt(-2.0 * log(1.0 - u[0]));
        freqs[i] = (float)(sigma * r * cos(6.283185307179586 * u[1]));
        freqs[i + 1] = (float)(sigma * r * sin(6.283185307179586 * u[1]));
    }
}

/* ---- Training */

/* Snapshots at 25, 50, 100, ... (the image emerging), or every `every`
 * steps; always at the last. */
static bool snapshot_due(int step, int every, int last) {
    if (step == last)
        return true;
    if (every > 0)
        return step % every == 0;
    for (int s = 25; s <= step; s *= 2)
        if (s == step)
            return true;
    return false;
}

typedef struct trainer {
    vkt_context *ctx;
    vkt_graph *g;
    vkt_model *model;
    vkt_var x, t, prediction, loss;
    vkt_tensor *features, *targets; /* the engine's buffers, wrapped */
} trainer;

static void build_model(trainer *tr, const options *o, const buffer *features,
                        const buffer *targets) {
    int64_t B = o->batch, F2 = 2 * o->freqs;
    vkt_graph_create(tr->ctx, &(vkt_graph_desc){.seed = o->seed}, &tr->g);
    tr->x = vkt_graph_input(tr->g, "features", 2, (int64_t[]){B, F2});
    tr->t = vkt_graph_input(tr->g, "colour", 2, (int64_t[]){B, 3});
    vkt_var h = tr->x;
    for (int l = 0; l < o->depth; l++) {
        char name[16];
        snprintf(name, sizeof name, "fc%d", l + 1);
        h = vkt_graph_relu(tr->g, vkt_graph_linear_init(tr->g, h, o->width,
                                                        VKT_INIT_KAIMING_UNIFORM, name));
    }
    tr->prediction = vkt_graph_sigmoid(tr->g, vkt_graph_linear(tr->g, h, 3, "rgb"));
    tr->loss = vkt_graph_mse(tr->g, tr->prediction, tr->t);
    if (vkt_graph_status(tr->g) != VKT_OK)
        die(vkt_graph_last_error(tr->g));
    vkt_model_desc desc = {.loss = tr->loss,
                           .optimizer = {.type = VKT_OPTIMIZER_ADAM, .lr = o->lr,
                                         .schedule = VKT_SCHEDULE_COSINE, .warmup_steps = 50,
                                         .total_steps = (uint32_t)o->steps,
                                         .min_lr = o->lr * 0.02f}};
    VKT_CHECK(tr->ctx, vkt_model_create(tr->g, &desc, &tr->model));
    /* The model reads its batches where the engine's shader writes them. */
    VKT_CHECK(tr->ctx, vkt_tensor_wrap_vulkan(tr->ctx, features->buffer, 0, features->size,
                                              &(vkt_tensor_desc){.ndim = 2, .dims = {B, F2},
                                                                 .name = "features"},
                                              &tr->features));
    VKT_CHECK(tr->ctx, vkt_tensor_wrap_vulkan(tr->ctx, targets->buffer, 0, targets->size,
                                              &(vkt_tensor_desc){.ndim = 2, .dims = {B, 3},
                                                                 .name = "colour"},
                                              &tr->targets));
    VKT_CHECK(tr->ctx, vkt_model_bind_input(tr->model, tr->x, tr->features));
    VKT_CHECK(tr->ctx, vkt_model_bind_input(tr->model, tr->t, tr->targets));
}

/* Evaluates the whole image chunk by chunk in one command buffer and copies
 * each chunk's prediction from vktrain's buffer into `readback`. */
static void snapshot(engine *e, trainer *tr, const features_pass *f, const options *o,
                     const image *im, buffer *readback) {
    VkBuffer pred;
    VkDeviceSize pred_offset, pred_size;
    VKT_CHECK(tr->ctx, vkt_model_query_vulkan_buffer(tr->model, tr->prediction, &pred,
                                                     &pred_offset, &pred_size));
    uint32_t pixels = (uint32_t)im->width * (uint32_t)im->height;
    begin_frame(e);
    for (uint32_t first = 0; first < pixels; first += (uint32_t)o->batch) {
        uint32_t n = pixels - first < (uint32_t)o->batch ? pixels - first : (uint32_t)o->batch;
        features_push push = {(uint32_t)o->batch, (uint32_t)im->width, (uint32_t)im->height,
                              (uint32_t)o->freqs, first, 0, 0};
        record_features(e, f, &push);
        /* vktrain's leading barrier orders the features shader's writes
         * before the evaluation; the trailing one the evaluation's
         * prediction before the copy (RAW) and its reads of the features
         * before the next chunk's shader (WAR). */
        VKT_CHECK(tr->ctx, vkt_model_record_evaluate(
                               tr->model, e->cmd,
                               &(vkt_record_desc){.after_stages =
                                                      VK_PIPELINE_STAGE_TRANSFER_BIT |
                                                      VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT,
                                                  .after_access = VK_ACCESS_TRANSFER_READ_BIT |
                                                                  VK_ACCESS_SHADER_WRITE_BIT}));
        vkCmdCopyBuffer(e->cmd, pred, readback->buffer, 1,
                        &(VkBufferCopy){.srcOffset = pred_offset,
                                        .dstOffset = (VkDeviceSize)first * 3 * sizeof(float),
                                        .size = (VkDeviceSize)n * 3 * sizeof(float)});
    }
    /* Hazard: the host reads what the copies wrote (RAW). */
    memory_barrier(e->cmd, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_ACCESS_TRANSFER_WRITE_BIT,
                   VK_PIPELINE_STAGE_HOST_BIT, VK_ACCESS_HOST_READ_BIT);
    submit_and_wait(e);
}

int main(int argc, char **argv) {
    options o = parse_options(argc, argv);
    image im = o.image ? load_png(o.image) : make_pattern(o.size);
    uint32_t pixels = (uint32_t)im.width * (uint32_t)im.height;
    printf("image: %s, %d x %d\n", o.image ? o.image : "generated pattern", im.width,
           im.height);

    /* The engine's device, made as any renderer makes it. */
    engine e = {0};
    create_instance(&e, o.validation);
    create_device(&e);
    printf("device: %s%s\n", e.props.deviceName, o.validation ? " (validation on)" : "");

    /* ... and handed to vktrain. */
    vkt_vulkan_external ext = vkt_vulkan_external_make(e.instance, e.physical_device, e.device,
                                                       e.family, e.queue, VK_API_VERSION_1_1,
                                                       vkGetInstanceProcAddr);
    trainer tr = {0};
    if (vkt_context_create(&(vkt_context_desc){.backend = VKT_BACKEND_VULKAN,
                                               .validation = o.validation,
                                               .external = &ext},
                           &tr.ctx) != VKT_OK) {
        fprintf(stderr, "neural_image: %s\n", vkt_last_error());
        return 1;
    }
    e.vkt = tr.ctx;

    /* The engine's buffers: the image, the frequencies, one batch. */
    buffer image_buf, freq_buf, features_buf, targets_buf, readback;
    VkBufferUsageFlags storage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT;
    create_buffer(&e, &image_buf, (VkDeviceSize)pixels * 3 * sizeof(float),
                  storage | VK_BUFFER_USAGE_TRANSFER_DST_BIT, false);
    create_buffer(&e, &freq_buf, (VkDeviceSize)o.freqs * 2 * sizeof(float),
                  storage | VK_BUFFER_USAGE_TRANSFER_DST_BIT, false);
    create_buffer(&e, &features_buf, (VkDeviceSize)o.batch * 2 * o.freqs * sizeof(float), storage,
                  false);
    create_buffer(&e, &targets_buf, (VkDeviceSize)o.batch * 3 * sizeof(float), storage, false);
    create_buffer(&e, &readback, (VkDeviceSize)pixels * 3 * sizeof(float),
                  VK_BUFFER_USAGE_TRANSFER_DST_BIT, true);
    float freqs[2 * MAX_FREQS];
    make_frequencies(freqs, o.freqs, o.sigma, o.seed);
    upload(&e, &image_buf, im.rgb, image_buf.size);
    upload(&e, &freq_buf, freqs, freq_buf.size);
    features_pass f;
    create_features_pass(&e, &f, (const buffer *[4]){&image_buf, &freq_buf, &features_buf,
                                                       &targets_buf});

    build_model(&tr, &o, &features_buf, &targets_buf);
    vkt_model_info info;
    vkt_model_query(tr.model, &info);
    printf("MLP: %d Fourier frequencies (sigma %.1f) -> %d x %d ReLU -> RGB, %llu parameters; "
           "batch %d, Adam lr %g (cosine), %d steps\n",
           o.freqs, o.sigma, o.depth, o.width, (unsigned long long)info.parameter_count, o.batch,
           o.lr, o.steps);
    write_png(o.out, "target", &im, im.rgb);

    double start = now_seconds(), last_psnr = 0.0;
    for (int step = 1; step <= o.steps; step++) {
        /* One engine frame: draw a batch with the engine's shader, then
         * train on it. */
        begin_frame(&e);
        features_push push = {(uint32_t)o.batch, (uint32_t)im.width, (uint32_t)im.height,
                              (uint32_t)o.freqs, 0, 1, (uint32_t)step};
        record_features(&e, &f, &push);
        /* After the step: the next frame's features shader overwrites the
         * batch this step read (WAR). */
        VKT_CHECK(tr.ctx, vkt_model_record_step(
                              tr.model, e.cmd,
                              &(vkt_record_desc){.after_stages =
                                                     VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT,
                                                 .after_access = VK_ACCESS_SHADER_WRITE_BIT}));
        submit_and_wait(&e);

        if (snapshot_due(step, o.snapshot_every, o.steps)) {
            float loss;
            VKT_CHECK(tr.ctx, vkt_model_read(tr.model, tr.loss, &loss, 1));
            snapshot(&e, &tr, &f, &o, &im, &readback);
            last_psnr = psnr(&im, readback.mapped);
            char suffix[32];
            snprintf(suffix, sizeof suffix, "step%05d", step);
            write_png(o.out, suffix, &im, readback.mapped);
            printf("step %5d  batch loss %.5f  PSNR %6.2f dB  %6.1f s\n", step, loss, last_psnr,
                   now_seconds() - start);
            fflush(stdout);
        }
    }
    double seconds = now_seconds() - start;
    uint64_t messages = vkt_context_validation_messages(tr.ctx);
    printf("trained %d steps in %.1f s (%.1f ms per step, snapshots included): PSNR %.2f dB%s\n",
           o.steps, seconds, 1e3 * seconds / o.steps, last_psnr,
           o.validation ? "" : " (validation off)");
    if (o.validation)
        printf("validation messages: %llu\n", (unsigned long long)messages);

    /* vktrain first: it made objects on the engine's device. */
    vkt_model_destroy(tr.model);
    vkt_graph_destroy(tr.g);
    vkt_tensor_destroy(tr.features);
    vkt_tensor_destroy(tr.targets);
    vkt_context_destroy(tr.ctx);
    e.vkt = NULL;
    destroy_features_pass(&e, &f);
    destroy_buffer(&e, &image_buf);
    destroy_buffer(&e, &freq_buf);
    destroy_buffer(&e, &features_buf);
    destroy_buffer(&e, &targets_buf);
    destroy_buffer(&e, &readback);
    vkDestroyFence(e.device, e.fence, NULL);
    vkDestroyCommandPool(e.device, e.pool, NULL);
    vkDestroyDevice(e.device, NULL);
    if (e.messenger) {
        PFN_vkDestroyDebugUtilsMessengerEXT destroy = (PFN_vkDestroyDebugUtilsMessengerEXT)
            vkGetInstanceProcAddr(e.instance, "vkDestroyDebugUtilsMessengerEXT");
        destroy(e.instance, e.messenger, NULL);
    }
    vkDestroyInstance(e.instance, NULL);
    free(im.rgb);
    if (messages || e.messages) {
        fprintf(stderr, "neural_image: %u validation message(s)\n", e.messages);
        return 1;
    }
    return last_psnr >= o.min_psnr ? 0 : 1;
}
