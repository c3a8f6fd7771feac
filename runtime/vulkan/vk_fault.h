/* vk_fault.h: injected Vulkan failures for tests, and the lost-device state.
 *
 * Out-of-memory and device-lost errors are rare on a developer's machine and
 * common in the field (an engine filling VRAM, a driver reset under a long
 * training run), so the paths that handle them would otherwise never run.
 * Each Vulkan call that can fail that way and that vktrain makes goes through
 * VK_FAULT at its call site; a test arms a kind with "fail the Nth call with
 * this VkResult" and checks that the error comes back as a vkt_result with a
 * message, that nothing leaks, and that the context stays usable or can be
 * destroyed.
 *
 * Arming is process-wide (the hooks must also reach context creation, before
 * any context exists) and one-shot: only the Nth call counted since arming
 * fails, the ones after it succeed again, as after a transient shortage.
 * Programs can arm from the environment without recompiling:
 *
 *   VKT_TEST_FAULT=KIND:N:RESULT[,KIND:N:RESULT...]
 *     KIND    device | alloc | pipeline | submit
 *     N       which call fails, from 1
 *     RESULT  oom (VK_ERROR_OUT_OF_DEVICE_MEMORY) | lost (VK_ERROR_DEVICE_LOST)
 *
 * e.g. VKT_TEST_FAULT=submit:5:lost. Read once, at the first hook call.
 * Unarmed, a hook costs a couple of loads. */
#ifndef VKT_VK_FAULT_H
#define VKT_VK_FAULT_H

#include "../core/internal.h"

#include <volk.h>

typedef enum vk_fault_kind {
    VK_FAULT_DEVICE = 0, /* vkCreateDevice: context creation */
    VK_FAULT_ALLOCATION, /* vkAllocateMemory: blocks, staging, program io buffers */
    VK_FAULT_PIPELINE,   /* vkCreateShaderModule and vkCreateComputePipelines */
    VK_FAULT_SUBMIT,     /* vkQueueSubmit: eager calls, transfers, steps */
    VK_FAULT_KIND_COUNT
} vk_fault_kind;

/* Makes the nth call of `kind` from now on (1 = the next one) return
 * `result` instead of reaching the driver. nth 0 only counts calls. Resets
 * that kind's count. Not thread-safe against hooks running concurrently. */
void vk_fault_arm(vk_fault_kind kind, uint64_t nth, VkResult result);
/* Disarms every kind and resets the counts. */
void vk_fault_disarm(void);
/* Calls of `kind` counted since it was armed (0 while nothing is armed). */
uint64_t vk_fault_calls(vk_fault_kind kind);
/* Failures injected since the process started. */
uint64_t vk_fault_injected(void);

/* The hooks VK_FAULT uses. */
bool vk_fault_fires(vk_fault_kind kind);
VkResult vk_fault_result(vk_fault_kind kind);

/* `call` (a Vulkan call returning VkResult), unless an armed fault of KIND
 * fires: then the injected VkResult, and the driver is not called. */
#define VK_FAULT(KIND, call)                                                                   \
    (vk_fault_fires(VK_FAULT_##KIND) ? vk_fault_result(VK_FAULT_##KIND) : (call))

/* A device that reported VK_ERROR_DEVICE_LOST stays lost (the spec allows
 * no recovery of a VkDevice): vk_check marks the context, and submit paths
 * then fail at once with VKT_ERROR_DEVICE_LOST instead of calling into a
 * dead device. The context can still be destroyed. */
void vk_mark_lost(vkt_context *ctx);
vkt_result vk_lost_error(vkt_context *ctx, const char *what);

#endif
