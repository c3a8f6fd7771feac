/* vk_profile.c: per-dispatch device timestamps. A node list is recorded
 * into its own command buffer as a step would be (same recorder, same
 * barriers), with vkCmdWriteTimestamp after each barrier (just before the
 * dispatch) and after each dispatch, so
 *   gap    = start of dispatch i - end of dispatch i-1   (barrier, idle)
 *   kernel = end of dispatch i - start of dispatch i
 * and the gaps and kernels of all dispatches tile the whole span: per-node
 * times add up to the device time of the step. Timestamps use
 * BOTTOM_OF_PIPE: each marks the moment everything before it finished,
 * which on a GPU charges a dispatch for the drain of work it overlapped. */
#include "vk_profile.h"

#include "vk_fault.h"
#include "vk_internal.h"

#include <stdlib.h>
#include <time.h>

typedef struct vk_mark {
    uint32_t node;
    vkt_kernel kernel;
    bool barrier;
} vk_mark;

struct vk_profiler {
    VkQueryPool pool;
    uint32_t capacity, used; /* queries */
    uint32_t node;           /* the node being recorded */
    vk_mark *marks;          /* one per dispatch that got both timestamps */
    uint32_t mark_count;
    bool overflow; /* more dispatches than queries: record again, bigger */
};

static void timestamp(vkt_recorder *rec) {
    struct vk_profiler *p = rec->profiler;
    vk_of(rec->ctx)->vk.vkCmdWriteTimestamp(rec->cmd, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT,
                                            p->pool, p->used++);
}

void vk_profile_before_dispatch(vkt_recorder *rec) {
    struct vk_profiler *p = rec->profiler;
    /* Two for this dispatch, one for the final mark. */
    if (p->used + 3 > p->capacity) {
        p->overflow = true;
        return;
    }
    timestamp(rec);
}

void vk_profile_after_dispatch(vkt_recorder *rec, vkt_kernel kernel, bool barrier) {
    struct vk_profiler *p = rec->profiler;
    if (p->overflow)
        return;
    timestamp(rec);
    p->marks[p->mark_count++] = (vk_mark){p->node, kernel, barrier};
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

typedef struct profile_run {
    VkCommandBuffer cmd;
    VkFence fence;
    vk_pool_chain pools;
    struct vk_profiler prof;
} profile_run;

static void run_destroy(vk_state *vk, profile_run *run) {
    if (run->fence)
        vk->vk.vkDestroyFence(vk->device, run->fence, NULL);
    if (run->cmd)
        vk->vk.vkFreeCommandBuffers(vk->device, vk->command_pool, 1, &run->cmd);
    vk_pool_chain_destroy(vk, &run->pools);
    if (run->prof.pool)
        vk->vk.vkDestroyQueryPool(vk->device, run->prof.pool, NULL);
    free(run->prof.marks);
    *run = (profile_run){0};
}

static vkt_result record(vkt_context *ctx, profile_run *run, const vkt_node *const *nodes,
                         size_t count) {
    vk_state *vk = vk_of(ctx);
    VK_TRY(ctx, vk->vk.vkBeginCommandBuffer(
                    run->cmd, &(VkCommandBufferBeginInfo){
                                  .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
                                  .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT}));
    vk->vk.vkCmdResetQueryPool(run->cmd, run->prof.pool, 0, run->prof.capacity);
    /* Hazard: the dispatches against earlier submits' transfers and
     * dispatches on the same memory (the inputs were just uploaded). */
    VkMemoryBarrier barrier = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                               .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT |
                                                VK_ACCESS_TRANSFER_WRITE_BIT,
                               .dstAccessMask = VK_ACCESS_SHADER_READ_BIT |
                                                VK_ACCESS_SHADER_WRITE_BIT};
    vk->vk.vkCmdPipelineBarrier(run->cmd,
                                VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT |
                                    VK_PIPELINE_STAGE_TRANSFER_BIT,
                                VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, 0, 1, &barrier, 0, NULL, 0,
                                NULL);
    vkt_recorder rec;
    vk_recorder_begin(&rec, ctx, run->cmd, &run->pools);
    rec.profiler = &run->prof;
    timestamp(&rec);
    for (size_t i = 0; i < count; i++) {
        run->prof.node = (uint32_t)i;
        vkt_op_get(nodes[i]->op)->record(nodes[i], &rec);
    }
    timestamp(&rec);
    vkt_result r = vk_recorder_end(&rec);
    VkResult vr = vk->vk.vkEndCommandBuffer(run->cmd);
    return r != VKT_OK ? r : vk_check(ctx, vr, "vkEndCommandBuffer(profile)");
}

static vkt_result setup(vkt_context *ctx, profile_run *run, uint32_t capacity) {
    vk_state *vk = vk_of(ctx);
    run->prof.capacity = capacity;
    run->prof.marks = calloc(capacity, sizeof *run->prof.marks);
    if (!run->prof.marks)
        return vkt_error(ctx, VKT_ERROR_OUT_OF_HOST_MEMORY, "out of host memory for a profile");
    VK_TRY(ctx, vk->vk.vkCreateQueryPool(
                    vk->device,
                    &(VkQueryPoolCreateInfo){.sType = VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO,
                                             .queryType = VK_QUERY_TYPE_TIMESTAMP,
                                             .queryCount = capacity},
                    NULL, &run->prof.pool));
    VK_TRY(ctx, vk->vk.vkAllocateCommandBuffers(
                    vk->device,
                    &(VkCommandBufferAllocateInfo){
                        .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
                        .commandPool = vk->command_pool,
                        .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
                        .commandBufferCount = 1},
                    &run->cmd));
    VK_TRY(ctx, vk->vk.vkCreateFence(
                    vk->device, &(VkFenceCreateInfo){.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO},
                    NULL, &run->fence));
    return VKT_OK;
}

/* Timestamps (ticks of timestampPeriod ns) to per-dispatch milliseconds. */
static void fill(const vk_state *vk, const profile_run *run, const uint64_t *ticks,
                 vkt_node_timings *out) {
    double ms_per_tick = (double)vk->props.limits.timestampPeriod * 1e-6;
    const struct vk_profiler *p = &run->prof;
    size_t bytes;
    for (uint32_t i = 0; i < p->mark_count; i++) {
        vkt_dispatch_timing *d = &out->dispatches[i];
        uint64_t prev = ticks[2 * i], start = ticks[2 * i + 1], end = ticks[2 * i + 2];
        d->node = p->marks[i].node;
        vk_kernel_spirv(p->marks[i].kernel, &bytes, &d->kernel);
        d->barrier = p->marks[i].barrier;
        d->gap_ms = start > prev ? (double)(start - prev) * ms_per_tick : 0.0;
        d->kernel_ms = end > start ? (double)(end - start) * ms_per_tick : 0.0;
    }
    /* Queries: the first mark, then (start, end) per dispatch, then the last. */
    uint64_t first = ticks[0], last = ticks[p->used - 1];
    uint64_t last_end = ticks[2 * p->mark_count];
    out->dispatch_count = p->mark_count;
    out->device_ms = last > first ? (double)(last - first) * ms_per_tick : 0.0;
    out->tail_ms = last > last_end ? (double)(last - last_end) * ms_per_tick : 0.0;
}

static vkt_result run_once(vkt_context *ctx, profile_run *run, vkt_node_timings *out) {
    vk_state *vk = vk_of(ctx);
    double t0 = now_ms();
    vkt_result submitted = vk_submit_wait(ctx, run->cmd, run->fence, "profiled step");
    if (submitted != VKT_OK)
        return submitted;
    out->wall_ms = now_ms() - t0;
    uint64_t *ticks = calloc(run->prof.used, sizeof *ticks);
    out->dispatches = calloc(run->prof.mark_count ? run->prof.mark_count : 1,
                             sizeof *out->dispatches);
    if (!ticks || !out->dispatches) {
        free(ticks);
        free(out->dispatches);
        out->dispatches = NULL;
        return vkt_error(ctx, VKT_ERROR_OUT_OF_HOST_MEMORY, "out of host memory for a profile");
    }
    VkResult vr = vk->vk.vkGetQueryPoolResults(
        vk->device, run->prof.pool, 0, run->prof.used, run->prof.used * sizeof *ticks, ticks,
        sizeof *ticks, VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT);
    if (vr == VK_SUCCESS)
        fill(vk, run, ticks, out);
    free(ticks);
    if (vr != VK_SUCCESS) {
        free(out->dispatches);
        out->dispatches = NULL;
    }
    return vk_check(ctx, vr, "vkGetQueryPoolResults(profile)");
}

vkt_result vkt_vulkan_time_nodes(vkt_context *ctx, const vkt_node *const *nodes, size_t count,
                                 vkt_node_timings *out) {
    vk_state *vk = vk_of(ctx);
    if (vk->lost)
        return vk_lost_error(ctx, "profile");
    if (!vk->timestamps)
        return vkt_error(ctx, VKT_ERROR_UNSUPPORTED,
                         "profiling: the queue of device '%s' does not write timestamps",
                         vk->props.deviceName);
    *out = (vkt_node_timings){0};
    /* Most ops dispatch one or two kernels; a list with more records again. */
    uint32_t capacity = 2 * (uint32_t)count * 2 + 8;
    for (;;) {
        profile_run run = {0};
        vkt_result r = setup(ctx, &run, capacity);
        if (r == VKT_OK)
            r = record(ctx, &run, nodes, count);
        if (r == VKT_OK && run.prof.overflow) {
            run_destroy(vk, &run);
            capacity *= 2;
            continue;
        }
        if (r == VKT_OK)
            r = run_once(ctx, &run, out);
        run_destroy(vk, &run);
        return r;
    }
}
