/* vk_internal.h: the Vulkan backend's state, shared by its files. Device
 * functions go through a per-context volk table (never volk's globals), so a
 * host engine's own Vulkan function pointers are left alone. */
#ifndef VKT_VK_INTERNAL_H
#define VKT_VK_INTERNAL_H

#include "../ops/op.h"

#include <stdatomic.h>
#include <volk.h>

#include "vk_fault.h"

#define VK_MAX_BINDINGS (VKT_NODE_MAX_IN + VKT_NODE_MAX_OUT)
#define VK_MAX_SPEC 12

typedef struct vk_pipeline {
    vkt_kernel kernel;
    uint32_t spec[VK_MAX_SPEC];
    uint32_t spec_count;
    uint32_t texel_mask;
    VkPipeline pipeline;
} vk_pipeline;

/* A descriptor-set layout for dispatches with some texel-buffer bindings
 * (vkt_dispatch.texel_mask); all-storage layouts are vk_state's arrays. */
#define VK_MAX_TEXEL_LAYOUTS 16
typedef struct vk_texel_layout {
    uint32_t binding_count, texel_mask;
    VkDescriptorSetLayout set;
    VkPipelineLayout pipeline;
} vk_texel_layout;

/* Descriptor pools grow as a chain: whoever records owns the chain, so a
 * recorded command buffer keeps its descriptor sets, and the buffer views
 * its texel bindings name, as long as it lives. */
typedef struct vk_pool_chain {
    VkDescriptorPool *pools;
    uint32_t count, capacity;
    VkBufferView *views;
    uint32_t view_count, view_capacity;
} vk_pool_chain;

typedef struct vk_state {
    VkInstance instance;
    bool own_instance;
    VkPhysicalDevice physical_device;
    VkDevice device;
    bool own_device;
    VkQueue queue;
    uint32_t queue_family;
    struct VolkDeviceTable vk;
    VkDebugUtilsMessengerEXT messenger;
    atomic_uint_fast64_t validation_messages;
    bool validation;
    bool lost; /* a call reported VK_ERROR_DEVICE_LOST (vk_fault.h) */

    VkPhysicalDeviceProperties props;
    VkPhysicalDeviceMemoryProperties memory_props;
    uint32_t device_index;
    uint32_t subgroup_size;
    vkt_tuning tuning;

    VkShaderModule modules[VKT_KERNEL_COUNT];
    VkDescriptorSetLayout set_layouts[VK_MAX_BINDINGS + 1]; /* by binding count */
    VkPipelineLayout pipeline_layouts[VK_MAX_BINDINGS + 1];
    vk_texel_layout texel_layouts[VK_MAX_TEXEL_LAYOUTS];
    uint32_t texel_layout_count;
    /* R32 and R32G32B32A32 float uniform texel buffers work, and blocks are
     * created with that usage (vkt_recorder_texel_ok). */
    bool texel_buffers;
    bool timestamps; /* the queue family writes timestamps (vk_profile.c) */
    VkPipelineCache pipeline_cache;
    vk_pipeline *pipelines;
    uint32_t pipeline_count, pipeline_capacity;

    VkCommandPool command_pool;
    VkCommandBuffer eager_cmd; /* one-shot work: eager kernels, transfers */
    VkFence eager_fence;
    vk_pool_chain eager_pools;

    /* Fault planting for tests of the checkers (VKT_TEST_PERTURB=<kernel>):
     * that kernel's first push-constant word (its size) is one short, the
     * classic off-by-one. VKT_KERNEL_COUNT: none. */
    vkt_kernel perturbed_kernel;

    VkBuffer staging;
    VkDeviceMemory staging_memory;
    void *staging_mapped;
    uint64_t staging_size;

    /* One borrowed block per wrapped engine VkBuffer, so the recorder sees
     * tensors wrapping overlapping ranges of it as one memory (vk_external.c). */
    vkt_block **borrowed;
    uint32_t borrowed_count, borrowed_capacity;
} vk_state;

typedef struct vk_block {
    VkBuffer buffer;
    VkDeviceMemory memory; /* VK_NULL_HANDLE for a borrowed (engine) buffer */
    uint32_t refs;         /* borrowed blocks: tensors wrapping the buffer */
} vk_block;

static inline vk_state *vk_of(const vkt_context *ctx) { return (vk_state *)ctx->backend_state; }

/* Maps a VkResult to a vkt_result and records a message naming `what`. */
vkt_result vk_check(vkt_context *ctx, VkResult result, const char *what);
#define VK_TRY(ctx, expr)                                                                      \
    do {                                                                                       \
        VkResult vk_try_result_ = (expr);                                                      \
        if (vk_try_result_ != VK_SUCCESS)                                                      \
            return vk_check((ctx), vk_try_result_, #expr);                                     \
    } while (0)

/* vk_device.c */
void vk_global_lock(void);
void vk_global_unlock(void);
vkt_result vk_loader_init(vkt_context *ctx);
vkt_result vk_instance_create(vkt_context *ctx, bool validation, VkInstance *out_instance,
                              VkDebugUtilsMessengerEXT *out_messenger);
void vk_device_info_fill(VkPhysicalDevice pd, vkt_device_info *info);
vkt_result vk_pick_device(vkt_context *ctx, VkInstance instance, const char *request,
                          VkPhysicalDevice *out_device, uint32_t *out_index);
void vk_tuning_choose(vk_state *vk);

/* vk_memory.c */
vkt_result vk_find_memory_type(vkt_context *ctx, uint32_t type_bits, VkMemoryPropertyFlags want,
                               uint32_t *out_index);
vkt_result vk_buffer_create(vkt_context *ctx, uint64_t size, VkBufferUsageFlags usage,
                            VkMemoryPropertyFlags want, VkBuffer *out_buffer,
                            VkDeviceMemory *out_memory);
vkt_result vk_block_create(vkt_context *ctx, uint64_t size, vkt_block *block);
void vk_block_destroy(vkt_context *ctx, vkt_block *block);
vkt_result vk_write(vkt_context *ctx, const vkt_view *dst, const void *src, uint64_t bytes);
vkt_result vk_read(vkt_context *ctx, const vkt_view *src, void *dst, uint64_t bytes);
void vk_staging_destroy(vk_state *vk);

/* vk_pipeline.c */
vkt_result vk_pipelines_init(vkt_context *ctx);
void vk_pipelines_destroy(vk_state *vk);
vkt_result vk_pipeline_get(vkt_context *ctx, vkt_kernel kernel, const uint32_t *spec,
                           uint32_t spec_count, uint32_t binding_count, uint32_t texel_mask,
                           VkPipeline *out_pipeline);
/* The set and pipeline layouts of binding_count bindings, texel buffers
 * where texel_mask has a bit, storage buffers elsewhere. */
vkt_result vk_layout_get(vkt_context *ctx, uint32_t binding_count, uint32_t texel_mask,
                         VkDescriptorSetLayout *out_set, VkPipelineLayout *out_layout);
const uint32_t *vk_kernel_spirv(vkt_kernel kernel, size_t *out_bytes, const char **out_name);

/* A byte range some dispatch since the last barrier read or wrote. */
typedef struct vk_access {
    const vkt_block *block;
    uint64_t offset, end;
    bool write;
} vk_access;

/* Records dispatches into a command buffer, placing a barrier only where a
 * dispatch touches a range that an earlier one since the last barrier wrote
 * (read-after-write, write-after-write) or read (write-after-read). */
struct vkt_recorder {
    vkt_context *ctx;
    VkCommandBuffer cmd;
    vk_pool_chain *pools;
    vk_access *pending;
    uint32_t pending_count, pending_capacity;
    uint32_t dispatch_count, barrier_count;
    vkt_result status; /* first failure; later dispatches are skipped */
    struct vk_profiler *profiler; /* NULL, or timestamps around every dispatch */
};

/* vk_record.c */
void vk_recorder_begin(vkt_recorder *rec, vkt_context *ctx, VkCommandBuffer cmd,
                       vk_pool_chain *pools);
/* Frees the recorder's scratch and returns its status. */
vkt_result vk_recorder_end(vkt_recorder *rec);
vkt_result vk_begin_eager(vkt_context *ctx);
vkt_result vk_submit_eager(vkt_context *ctx);
/* Every submit goes through here: refuses a lost device, honours fault
 * injection, counts the submit, waits for the fence and resets it. */
vkt_result vk_submit_wait(vkt_context *ctx, VkCommandBuffer cmd, VkFence fence,
                          const char *what);
vkt_result vk_run(vkt_context *ctx, const vkt_node *const *nodes, size_t count);
void vk_pool_chain_destroy(vk_state *vk, vk_pool_chain *chain);

/* vk_profile.c: the recorder's hooks; `barrier` says a barrier precedes
 * the dispatch. */
void vk_profile_before_dispatch(vkt_recorder *rec);
void vk_profile_after_dispatch(vkt_recorder *rec, vkt_kernel kernel, bool barrier);

/* vk_program.c */
vkt_result vk_program_create(vkt_context *ctx, const vkt_program_desc *desc,
                             vkt_program **out_program);
void vk_program_destroy(vkt_context *ctx, vkt_program *program);
void *vk_program_upload_ptr(vkt_program *program, uint32_t index);
const void *vk_program_download_ptr(vkt_program *program, uint32_t index);
vkt_result vk_program_run(vkt_context *ctx, vkt_program *program);
void vk_program_stats(const vkt_program *program, vkt_program_stats *stats);
/* A program an engine runs inside its own command buffer: the nodes
 * recorded once into a secondary command buffer (simultaneous use, no io
 * copies), for vkCmdExecuteCommands. */
vkt_result vk_program_create_secondary(vkt_context *ctx, const vkt_node *const *nodes,
                                       size_t node_count, vkt_program **out_program);
VkCommandBuffer vk_program_command_buffer(const vkt_program *program);

/* vk_external.c: a borrowed block loses one wrapping tensor (vk_block_destroy
 * sends borrowed blocks here). */
void vk_borrowed_release(vkt_context *ctx, vkt_block *block);

#endif
