/* vktrain_vulkan.h: vktrain inside a game or graphics engine's own Vulkan
 * device. Include it instead of vktrain.h: it includes vktrain.h and
 * <vulkan/vulkan.h>. Engines that load Vulkan through volk or a loader of
 * their own include volk.h (or define VK_NO_PROTOTYPES) first, as usual:
 * this header needs only the Vulkan types.
 *
 * OVERVIEW
 *   An engine hands vktrain its VkInstance, VkPhysicalDevice, VkDevice and a
 *   queue; vktrain then trains on that device, inside the engine's frames,
 *   on the engine's buffers:
 *
 *       vkt_context *ctx;
 *       vkt_vulkan_external ext = vkt_vulkan_external_make(instance, physical_device,
 *           device, queue_family, queue, VK_API_VERSION_1_2, vkGetInstanceProcAddr);
 *       vkt_context_create(&(vkt_context_desc){ .backend = VKT_BACKEND_VULKAN,
 *                                              .external = &ext }, &ctx);
 *       ... build a graph and a model as usual (vktrain.h) ...
 *       vkt_tensor *features;   // (B, F), written by an engine compute shader
 *       vkt_tensor_wrap_vulkan(ctx, engine_buffer, 0, B * F * sizeof(float),
 *           &(vkt_tensor_desc){ .ndim = 2, .dims = {B, F} }, &features);
 *       vkt_model_bind_input(model, x, features);
 *       // every frame, in the engine's own command buffer:
 *       vkCmdDispatch(cmd, ...);                    // the engine writes features
 *       vkt_model_record_step(model, cmd, &(vkt_record_desc){
 *           .after_stages = VK_PIPELINE_STAGE_FRAGMENT_SHADER_BIT,
 *           .after_access = VK_ACCESS_SHADER_READ_BIT });
 *       ...                                         // the engine's passes read the weights:
 *       vkt_model_query_vulkan_buffer(model, w, &buffer, &offset, &size);
 *       vkQueueSubmit(queue, ...);                  // the engine submits, as ever
 *
 * LINKING
 *   Link the shared library (libvktrain.so). vktrain loads Vulkan through
 *   volk, whose function pointers have the names of the Vulkan entry points
 *   (vkCreateInstance, ...); the shared library keeps them hidden, while
 *   linking the static library into a program that also links libvulkan
 *   (or its own volk) makes the two definitions collide.
 *
 * WHAT vktrain NEEDS FROM THE ENGINE'S OBJECTS
 *   - Vulkan 1.1 or later: the physical device's apiVersion and the
 *     instance's VkApplicationInfo::apiVersion (passed as api_version) must
 *     both be at least VK_API_VERSION_1_1.
 *   - A queue of a family with VK_QUEUE_COMPUTE_BIT (a graphics family has
 *     it on every conformant device). vktrain submits its own work (uploads,
 *     downloads, vkt_model_step) to that queue.
 *   - No device features and no device extensions: vktrain runs core
 *     compute shaders on storage buffers. It adapts to the device's limits.
 *   vkt_context_create checks these and fails with VKT_ERROR_UNSUPPORTED
 *   (VKT_ERROR_INVALID_ARGUMENT for a NULL handle, a physical device that
 *   is not the instance's or a queue family that does not exist), the
 *   message (vkt_last_error) naming what is missing.
 *
 * OWNERSHIP
 *   Adopted objects stay the engine's: vktrain never destroys the instance,
 *   the device or the queue. vktrain makes its own objects on the device
 *   (command pool, pipelines, descriptor pools, buffers and memory for
 *   tensors) and destroys them in vkt_context_destroy, which therefore must
 *   come before the engine destroys its VkDevice. Wrapped VkBuffers stay the
 *   engine's too: destroying a wrapped tensor frees only vktrain's record of
 *   it. vktrain's function pointers live in its own volk device table; the
 *   engine's function pointers are never touched.
 *
 * VALIDATION
 *   vktrain cannot add layers to an instance it did not create: enabling the
 *   validation layer (and its synchronization validation) is the engine's
 *   choice, and the engine owns the debug messenger. To have vktrain count
 *   validation messages for an adopted context (vkt_context_validation_
 *   messages, which tests require to stay 0) and pass them to its log
 *   callback, forward them from the engine's messenger callback with
 *   vkt_vulkan_report_validation_message. desc.validation on an adopted
 *   context only records that the engine enabled the layer
 *   (vkt_context_info.validation).
 *
 * THREADS AND SEVERAL CONTEXTS
 *   - As everywhere in vktrain, a context and everything made from it is
 *     used by one thread at a time.
 *   - VkQueue is externally synchronized in Vulkan. vktrain submits to the
 *     adopted queue and waits for its own submissions in vkt_model_step,
 *     vkt_model_evaluate, vkt_model_check, vkt_model_read, vkt_model_write,
 *     vkt_model_save, vkt_model_load, vkt_model_create, vkt_tensor_upload,
 *     vkt_tensor_download and the eager kernels (vkt_matmul, ...), and
 *     calls vkQueueWaitIdle, which also waits for the engine's work on the
 *     queue, in vkt_model_destroy, vkt_context_wait_idle,
 *     vkt_context_destroy and vkt_model_bind_input (when it replaces
 *     recordings). While one of these runs, no other thread may submit to,
 *     present on or wait for that queue.
 *   - The recording calls (vkt_model_record_step, vkt_model_record_evaluate)
 *     never submit or wait: they only record into the engine's command
 *     buffer, which, with its command pool, must not be used by another
 *     thread meanwhile.
 *   - Several contexts may live in one process, adopted and vktrain-made
 *     alike, and may be used from different threads at once. Create and
 *     destroy contexts from one thread at a time: vktrain's instance-level
 *     function pointers are process-wide inside the library. Two contexts
 *     may adopt the same device and queue; then the queue rule above spans
 *     both. Tensors and models never mix contexts.
 *
 * SYNCHRONIZATION CONTRACT of vkt_model_record_step and _record_evaluate
 *   What vktrain records into the engine's command buffer `cmd`, in order:
 *     1. A global memory barrier
 *          src  stages COMPUTE_SHADER | TRANSFER | desc->before_stages,
 *               access SHADER_WRITE | TRANSFER_WRITE | desc->before_access
 *          dst  stages COMPUTE_SHADER | TRANSFER,
 *               access SHADER_READ | SHADER_WRITE | TRANSFER_WRITE
 *               (evaluations: COMPUTE_SHADER, SHADER_READ | SHADER_WRITE).
 *        It orders everything earlier in submission order on the queue that
 *        ran in those stages (vktrain's previous steps, evaluations, uploads
 *        and downloads, and also the engine's compute dispatches and
 *        copies) before what follows.
 *     2. Training steps only: vkCmdUpdateBuffer of the model's small
 *        hyperparameter buffer (learning rate, Adam bias corrections, step
 *        number), then a barrier TRANSFER_WRITE -> COMPUTE_SHADER
 *        SHADER_READ | SHADER_WRITE.
 *     3. vkCmdExecuteCommands of a secondary command buffer vktrain recorded
 *        once: the dispatches, with vktrain's own barriers between them.
 *     4. Only if desc->after_stages is not 0: a global memory barrier
 *          src  COMPUTE_SHADER, SHADER_WRITE
 *          dst  desc->after_stages, desc->after_access.
 *   Before the call, the engine's duty: its writes of what vktrain reads
 *   (bound input tensors, wrapped buffers, anything it wrote through
 *   vkt_model_query_vulkan_buffer) must be made available and visible to
 *   VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT / VK_ACCESS_SHADER_READ_BIT, and its
 *   reads of what vktrain writes (parameters, optimizer state, outputs,
 *   the loss) must be finished before VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT
 *   (write-after-read). Barrier 1 already does this for compute-shader and
 *   transfer work; for any other stage (vertex, fragment, color attachment
 *   output, ...) name the stages and access in desc->before_stages and
 *   desc->before_access, or record the barrier yourself.
 *   After the call, the engine's duty: vktrain's last accesses are compute
 *   shader writes (VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT,
 *   VK_ACCESS_SHADER_WRITE_BIT) to parameters, optimizer state and the
 *   model's transient values (outputs, loss), and compute shader reads of
 *   the inputs. Before engine commands that read those results, or that
 *   overwrite an input vktrain read (write-after-read: the engine's shader
 *   writing the next batch), set desc->after_stages and desc->after_access
 *   (FRAGMENT_SHADER / SHADER_READ to sample the weights; TRANSFER /
 *   TRANSFER_READ to copy an output; COMPUTE_SHADER / SHADER_WRITE before
 *   a compute shader rewrites the input), or record such a barrier from
 *   COMPUTE_SHADER / SHADER_WRITE yourself.
 *   Across submissions: barriers order work on one queue only. Submit the
 *   command buffers that hold recordings to the adopted queue, the one
 *   vktrain's own submissions use. Otherwise order them against vktrain's
 *   work with semaphores, and transfer queue family ownership yourself if
 *   the family differs (vktrain's buffers are VK_SHARING_MODE_EXCLUSIVE).
 *   vktrain's own submissions (vkt_model_step, vkt_tensor_upload, ...)
 *   begin with barriers from the compute and transfer stages only: engine
 *   work of other stages on shared buffers must be finished or ordered by
 *   the engine first (a barrier at the end of its command buffer, or its
 *   fence).
 */
#ifndef VKTRAIN_VULKAN_H
#define VKTRAIN_VULKAN_H

#include "vktrain.h"

#include <string.h>
#include <vulkan/vulkan.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Adopting the engine's device ------------------------------------------ */

/* Fills a vkt_vulkan_external with typed handles, for
 * vkt_context_desc.external. api_version is the VkApplicationInfo::
 * apiVersion the engine created `instance` with. get_instance_proc_addr is
 * the engine's vkGetInstanceProcAddr (NULL: the Vulkan loader's). */
static inline vkt_vulkan_external vkt_vulkan_external_make(
    VkInstance instance, VkPhysicalDevice physical_device, VkDevice device,
    uint32_t queue_family_index, VkQueue queue, uint32_t api_version,
    PFN_vkGetInstanceProcAddr get_instance_proc_addr) {
    vkt_vulkan_external ext;
    memset(&ext, 0, sizeof ext);
    ext.instance = (void *)instance;
    ext.physical_device = (void *)physical_device;
    ext.device = (void *)device;
    ext.queue = (void *)queue;
    ext.queue_family_index = queue_family_index;
    ext.api_version = api_version;
    ext.get_instance_proc_addr = (void (*)(void))get_instance_proc_addr;
    return ext;
}

/* The Vulkan objects a context runs on, adopted or its own. */
typedef struct vkt_vulkan_info {
    VkInstance instance;
    VkPhysicalDevice physical_device;
    VkDevice device;
    VkQueue queue;
    uint32_t queue_family_index;
    uint32_t api_version;        /* the physical device's */
    bool adopted;
    /* Where a wrapped buffer range may start (vkt_tensor_wrap_vulkan). */
    VkDeviceSize min_storage_buffer_offset_alignment;
    VkDeviceSize max_storage_buffer_range; /* the largest tensor, in bytes */
} vkt_vulkan_info;

/* Fills *out_info for a Vulkan context; VKT_ERROR_BACKEND_MISMATCH for a
 * CPU one. */
VKT_API vkt_result vkt_vulkan_query(const vkt_context *ctx, vkt_vulkan_info *out_info);

/* Counts one validation-layer message against ctx, as if vktrain's own
 * messenger had seen it: messages of severity warning or error add to
 * vkt_context_validation_messages and go to the context's log callback.
 * Call it from the engine's VkDebugUtilsMessengerEXT callback for the
 * adopted contexts it wants counted. Safe from any thread, concurrently
 * with other calls on the context. */
VKT_API void vkt_vulkan_report_validation_message(vkt_context *ctx,
                                                  VkDebugUtilsMessageSeverityFlagBitsEXT severity,
                                                  const char *message);

/* ---- The engine's buffers as tensors ------------------------------------------- */

/* Makes a tensor whose data is bytes [offset, offset + numel * 4) of the
 * engine's `buffer`, f32, row-major as every tensor, without copying. The
 * buffer must belong to the context's device, have been created with
 * VK_BUFFER_USAGE_STORAGE_BUFFER_BIT (add TRANSFER_SRC/TRANSFER_DST to use
 * vkt_tensor_download/vkt_tensor_upload on it) and be bound to memory.
 * offset must be a multiple of minStorageBufferOffsetAlignment
 * (vkt_vulkan_info); size is the bytes of the engine's range, at least the
 * tensor's (VK_WHOLE_SIZE: exactly the tensor's). The tensor works wherever
 * a tensor does (eager kernels, vkt_model_bind_input). vktrain never frees
 * or destroys the buffer; vkt_tensor_destroy (before the buffer goes) ends
 * the wrapping. Several tensors may wrap ranges of one buffer; vktrain
 * orders its own accesses to overlapping ranges. */
VKT_API vkt_result vkt_tensor_wrap_vulkan(vkt_context *ctx, VkBuffer buffer, VkDeviceSize offset,
                                          VkDeviceSize size, const vkt_tensor_desc *desc,
                                          vkt_tensor **out_tensor);

/* Where a tensor's data is: a range of a VkBuffer (vktrain's own, or the
 * engine's for a wrapped tensor) that engine shaders may bind as a storage
 * buffer under the synchronization contract above. */
VKT_API vkt_result vkt_tensor_query_vulkan_buffer(const vkt_tensor *tensor, VkBuffer *out_buffer,
                                                  VkDeviceSize *out_offset,
                                                  VkDeviceSize *out_size);

/* ---- Models inside the engine's command buffers ---------------------------------- */

/* Makes the model's recordings (vkt_model_record_step/_evaluate) read the
 * graph input `input` straight from `tensor` (of the same context, with the
 * input's element count; typically a wrapped engine buffer) instead of the
 * model's own input memory. NULL unbinds. Inputs that are not bound are
 * read from the model's own input memory: the values last fed to
 * vkt_model_step/_evaluate, or what the engine wrote into the range that
 * vkt_model_query_vulkan_buffer gives. vkt_model_step and _evaluate keep
 * taking host feeds and are not affected. The tensor must outlive the
 * binding. A binding change frees the model's earlier recordings (they are
 * made again at the next record call), after waiting for the adopted queue
 * to go idle: engine command buffers that executed them become invalid and
 * must be recorded again, and none may still be pending on another queue. */
VKT_API vkt_result vkt_model_bind_input(vkt_model *model, vkt_var input, vkt_tensor *tensor);

/* Where a model variable's data is, as a range of a VkBuffer: a parameter
 * ("fc1.weight", for an engine shader that runs the network itself), an
 * optimizer state, an input (the bound tensor's range when bound), or a
 * value the forward pass computes (outputs, the loss: valid after a step
 * or evaluation until the model's next one). Gradient temporaries share
 * memory and are not meaningful between steps. */
VKT_API vkt_result vkt_model_query_vulkan_buffer(const vkt_model *model, vkt_var var,
                                                 VkBuffer *out_buffer, VkDeviceSize *out_offset,
                                                 VkDeviceSize *out_size);

/* Extra barriers around a recording, in the engine's terms (see the
 * synchronization contract at the top). Zero means none: the engine
 * records its own. */
typedef struct vkt_record_desc {
    /* Engine work earlier in submission order whose writes vktrain reads,
     * or whose reads of vktrain's buffers must finish first. */
    VkPipelineStageFlags before_stages;
    VkAccessFlags before_access;
    /* Engine work later in submission order that reads vktrain's results
     * or overwrites its inputs. */
    VkPipelineStageFlags after_stages;
    VkAccessFlags after_access;
} vkt_record_desc;

/* Records one training step of `model` (forward, loss, backward,
 * optimizer; the same work as vkt_model_step) into the engine's primary
 * command buffer `cmd`, which must be in the recording state, outside a
 * render pass, from a command pool of the adopted queue family. Inputs
 * come from the bound tensors (vkt_model_bind_input) or the model's own
 * input memory; nothing is uploaded from the host. The step is step
 * t = vkt_model_info.step + 1: its learning rate (schedule) and Adam bias
 * corrections are computed now and written by the command buffer itself,
 * and the model counts the step as taken now (checkpoints, the schedule).
 * So submit each recorded step once; submitting the command buffer again
 * repeats step t's hyperparameters. Several steps may be recorded into one
 * command buffer. The loss stays on the device: read it with
 * vkt_model_read after the engine's fence, or copy it from the range
 * vkt_model_query_vulkan_buffer gives. desc may be NULL. The first call
 * (and the first after a binding change) records the secondary command
 * buffer, which compiles pipelines not made yet: do it at load time. */
VKT_API vkt_result vkt_model_record_step(vkt_model *model, VkCommandBuffer cmd,
                                         const vkt_record_desc *desc);

/* Records a forward pass (evaluation mode: dropout off, no update; the
 * same work as vkt_model_evaluate) into `cmd`, under the same rules as
 * vkt_model_record_step. Outputs (e.g. the prediction) and the loss are
 * then in the ranges vkt_model_query_vulkan_buffer gives. */
VKT_API vkt_result vkt_model_record_evaluate(vkt_model *model, VkCommandBuffer cmd,
                                             const vkt_record_desc *desc);

#ifdef __cplusplus
}
#endif

#endif /* VKTRAIN_VULKAN_H */
