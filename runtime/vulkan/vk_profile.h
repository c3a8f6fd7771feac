/* vk_profile.h: timing a node list on the Vulkan backend with device
 * timestamps around every dispatch (vk_profile.c), for the backend-free
 * profiler in runtime/graph/profile.c. No Vulkan types here. */
#ifndef VKT_VK_PROFILE_H
#define VKT_VK_PROFILE_H

#include "../ops/op.h"

typedef struct vkt_dispatch_timing {
    uint32_t node;      /* index into the node list */
    const char *kernel; /* the kernel's (shader's) name */
    bool barrier;       /* a pipeline barrier preceded it */
    double gap_ms;      /* from the end of the previous dispatch (or the start): barrier, idle */
    double kernel_ms;   /* the dispatch itself */
} vkt_dispatch_timing;

typedef struct vkt_node_timings {
    vkt_dispatch_timing *dispatches; /* malloc'd: the caller frees it */
    uint32_t dispatch_count;
    double device_ms; /* first to last timestamp */
    double tail_ms;   /* from the last dispatch's end to the last timestamp */
    double wall_ms;   /* the host's submit-to-fence time */
} vkt_node_timings;

/* Records `nodes` into a fresh command buffer with a timestamp after every
 * barrier and after every dispatch, runs it once and waits for it. The
 * nodes' inputs must already be in device memory. VKT_ERROR_UNSUPPORTED
 * when the queue has no timestamps. */
vkt_result vkt_vulkan_time_nodes(vkt_context *ctx, const vkt_node *const *nodes, size_t count,
                                 vkt_node_timings *out);

#endif
