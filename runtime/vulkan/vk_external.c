/* vk_external.c: vktrain inside an engine's Vulkan device (vktrain_vulkan.h):
 * the handles a context runs on, validation messages the engine forwards,
 * tensors that wrap the engine's VkBuffers, and training steps and
 * evaluations recorded into the engine's own command buffers.
 *
 * A recording is the model's node list recorded once into a secondary
 * command buffer (vk_program_create_secondary) with the bound inputs in
 * place of the model's own input memory. Each record call then adds to the
 * engine's primary: a barrier against earlier work, the step's
 * hyperparameters (vkCmdUpdateBuffer, so the learning-rate schedule and
 * Adam's bias corrections advance without a host upload or re-recording),
 * vkCmdExecuteCommands, and the barrier the engine asked for. */
#include "vk_internal.h"

#include "../graph/model.h"
#include "vktrain_vulkan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static VkBuffer view_buffer(const vkt_view *v) {
    return ((const vk_block *)v->block->backend_data)->buffer;
}

static vkt_result need_vulkan(const vkt_context *ctx, const char *fn) {
    if (ctx->backend != VKT_BACKEND_VULKAN)
        return vkt_error((vkt_context *)ctx, VKT_ERROR_BACKEND_MISMATCH,
                         "%s: the context runs the CPU backend; this needs a Vulkan context", fn);
    return VKT_OK;
}

vkt_result vkt_vulkan_query(const vkt_context *ctx, vkt_vulkan_info *out_info) {
    if (!ctx || !out_info)
        return vkt_error((vkt_context *)ctx, VKT_ERROR_INVALID_ARGUMENT,
                         "vkt_vulkan_query: %s is NULL", !ctx ? "ctx" : "out_info");
    vkt_result r = need_vulkan(ctx, "vkt_vulkan_query");
    if (r != VKT_OK)
        return r;
    const vk_state *vk = vk_of(ctx);
    *out_info = (vkt_vulkan_info){
        .instance = vk->instance,
        .physical_device = vk->physical_device,
        .device = vk->device,
        .queue = vk->queue,
        .queue_family_index = vk->queue_family,
        .api_version = vk->props.apiVersion,
        .adopted = !vk->own_device,
        .min_storage_buffer_offset_alignment = vk->props.limits.minStorageBufferOffsetAlignment,
        .max_storage_buffer_range = vk->props.limits.maxStorageBufferRange,
    };
    return VKT_OK;
}

/* The same counting as vktrain's own messenger (vk_device.c). The counter
 * is atomic and the log callback fixed at creation, so any thread may call. */
void vkt_vulkan_report_validation_message(vkt_context *ctx,
                                          VkDebugUtilsMessageSeverityFlagBitsEXT severity,
                                          const char *message) {
    if (!ctx || ctx->backend != VKT_BACKEND_VULKAN ||
        severity < VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT)
        return;
    atomic_fetch_add(&vk_of(ctx)->validation_messages, 1);
    vkt_log(ctx,
            severity >= VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT ? VKT_LOG_ERROR
                                                                      : VKT_LOG_WARNING,
            "validation: %s", message ? message : "(no message)");
}

/* ---- Wrapped engine buffers */

/* The borrowed block of `buffer`, shared by every tensor that wraps it, so
 * the recorder's hazard tracking (by block and range) sees overlapping
 * wraps as the same memory. */
static vkt_result borrowed_block(vkt_context *ctx, VkBuffer buffer, uint64_t end,
                                 vkt_block **out_block) {
    vk_state *vk = vk_of(ctx);
    for (uint32_t i = 0; i < vk->borrowed_count; i++) {
        vkt_block *block = vk->borrowed[i];
        vk_block *b = block->backend_data;
        if (b->buffer == buffer) {
            b->refs++;
            if (end > block->size)
                block->size = end;
            *out_block = block;
            return VKT_OK;
        }
    }
    if (vk->borrowed_count == vk->borrowed_capacity) {
        uint32_t cap = vk->borrowed_capacity ? vk->borrowed_capacity * 2 : 8;
        vkt_block **p = realloc(vk->borrowed, cap * sizeof *p);
        if (!p)
            return vkt_error(ctx, VKT_ERROR_OUT_OF_HOST_MEMORY, "out of host memory");
        vk->borrowed = p;
        vk->borrowed_capacity = cap;
    }
    vkt_block *block = calloc(1, sizeof *block);
    vk_block *b = calloc(1, sizeof *b);
    if (!block || !b) {
        free(block);
        free(b);
        return vkt_error(ctx, VKT_ERROR_OUT_OF_HOST_MEMORY, "out of host memory");
    }
    *b = (vk_block){.buffer = buffer, .refs = 1};
    /* size: the end of the furthest wrapped range, all vktrain knows of it. */
    *block = (vkt_block){.size = end, .backend_data = b, .borrowed = true};
    vk->borrowed[vk->borrowed_count++] = block;
    *out_block = block;
    return VKT_OK;
}

void vk_borrowed_release(vkt_context *ctx, vkt_block *block) {
    vk_state *vk = vk_of(ctx);
    vk_block *b = block->backend_data;
    if (--b->refs > 0)
        return;
    for (uint32_t i = 0; i < vk->borrowed_count; i++) {
        if (vk->borrowed[i] == block) {
            vk->borrowed[i] = vk->borrowed[--vk->borrowed_count];
            break;
        }
    }
    free(b);
    free(block->free_ranges);
    free(block);
}

vkt_result vkt_tensor_wrap_vulkan(vkt_context *ctx, VkBuffer buffer, VkDeviceSize offset,
                                  VkDeviceSize size, const vkt_tensor_desc *desc,
                                  vkt_tensor **out_tensor) {
    if (!ctx)
        return vkt_error(NULL, VKT_ERROR_INVALID_ARGUMENT, "vkt_tensor_wrap_vulkan: ctx is NULL");
    vkt_clear_error(ctx);
    vkt_result r = need_vulkan(ctx, "vkt_tensor_wrap_vulkan");
    if (r != VKT_OK)
        return r;
    if (!desc || !out_tensor || buffer == VK_NULL_HANDLE)
        return vkt_error(ctx, VKT_ERROR_INVALID_ARGUMENT, "vkt_tensor_wrap_vulkan: %s is NULL",
                         !desc ? "desc" : !out_tensor ? "out_tensor" : "buffer");
    const char *name = desc->name ? desc->name : "tensor";
    char what[96];
    snprintf(what, sizeof what, "vkt_tensor_wrap_vulkan '%s'", name);
    vkt_shape shape;
    r = vkt_shape_from_desc(ctx, what, desc->ndim, desc->dims, &shape);
    if (r != VKT_OK)
        return r;
    const VkPhysicalDeviceLimits *lim = &vk_of(ctx)->props.limits;
    uint64_t bytes = (uint64_t)vkt_shape_numel(&shape) * sizeof(float);
    uint64_t align = lim->minStorageBufferOffsetAlignment ? lim->minStorageBufferOffsetAlignment : 1;
    if (offset % align != 0)
        return vkt_error(ctx, VKT_ERROR_INVALID_ARGUMENT,
                         "%s: offset %llu is not a multiple of the device's "
                         "minStorageBufferOffsetAlignment (%llu)",
                         what, (unsigned long long)offset, (unsigned long long)align);
    if (size == VK_WHOLE_SIZE)
        size = bytes;
    if (size < bytes)
        return vkt_error(ctx, VKT_ERROR_SHAPE,
                         "%s: the buffer range holds %llu bytes, the tensor needs %llu", what,
                         (unsigned long long)size, (unsigned long long)bytes);
    if (bytes > lim->maxStorageBufferRange)
        return vkt_error(ctx, VKT_ERROR_UNSUPPORTED,
                         "%s: %llu bytes exceed the %u bytes one storage binding can address on "
                         "this device",
                         what, (unsigned long long)bytes, lim->maxStorageBufferRange);
    if (offset > UINT64_MAX - bytes)
        return vkt_error(ctx, VKT_ERROR_INVALID_ARGUMENT, "%s: offset + size overflows", what);
    vkt_tensor *t = calloc(1, sizeof *t);
    if (!t)
        return vkt_error(ctx, VKT_ERROR_OUT_OF_HOST_MEMORY, "%s: out of host memory", what);
    vkt_block *block = NULL;
    r = borrowed_block(ctx, buffer, offset + bytes, &block);
    if (r != VKT_OK) {
        free(t);
        return r;
    }
    t->ctx = ctx;
    snprintf(t->name, sizeof t->name, "%s", name);
    t->value = (vkt_value){.shape = shape, .view = {block, offset, bytes}, .name = t->name};
    ctx->live_tensors++;
    *out_tensor = t;
    return VKT_OK;
}

vkt_result vkt_tensor_query_vulkan_buffer(const vkt_tensor *tensor, VkBuffer *out_buffer,
                                          VkDeviceSize *out_offset, VkDeviceSize *out_size) {
    if (!tensor || !out_buffer || !out_offset || !out_size)
        return vkt_error(tensor ? tensor->ctx : NULL, VKT_ERROR_INVALID_ARGUMENT,
                         "vkt_tensor_query_vulkan_buffer: %s is NULL",
                         !tensor ? "tensor" : !out_buffer ? "out_buffer"
                                          : !out_offset   ? "out_offset"
                                                          : "out_size");
    vkt_result r = need_vulkan(tensor->ctx, "vkt_tensor_query_vulkan_buffer");
    if (r != VKT_OK)
        return r;
    *out_buffer = view_buffer(&tensor->value.view);
    *out_offset = tensor->value.view.offset;
    *out_size = tensor->value.view.bytes;
    return VKT_OK;
}

/* ---- Recordings into the engine's command buffers */

typedef struct vk_recordings {
    vkt_tensor **bound;           /* by var: the tensor an input reads, NULL if none */
    vkt_program *step, *evaluate; /* secondaries, made at the first record call */
} vk_recordings;

static void recordings_release(vkt_context *ctx, vk_recordings *rec) {
    if (rec->step)
        vk_program_destroy(ctx, rec->step);
    if (rec->evaluate)
        vk_program_destroy(ctx, rec->evaluate);
    rec->step = rec->evaluate = NULL;
}

/* The model's destroy hook; it has already waited for the queue. */
static void recordings_destroy(vkt_model *m) {
    vk_recordings *rec = m->vulkan;
    recordings_release(m->ctx, rec);
    free(rec->bound);
    free(rec);
    m->vulkan = NULL;
    m->vulkan_destroy = NULL;
}

static vkt_result model_usable(vkt_model *m, const char *fn, vk_recordings **out_rec) {
    if (!m)
        return vkt_error(NULL, VKT_ERROR_INVALID_ARGUMENT, "%s: model is NULL", fn);
    vkt_clear_error(m->ctx);
    vkt_result r = need_vulkan(m->ctx, fn);
    if (r != VKT_OK)
        return r;
    if (!m->vulkan) {
        vk_recordings *rec = calloc(1, sizeof *rec);
        vkt_tensor **bound = calloc(m->g->var_count, sizeof *bound);
        if (!rec || !bound) {
            free(rec);
            free(bound);
            return vkt_error(m->ctx, VKT_ERROR_OUT_OF_HOST_MEMORY, "%s: out of host memory", fn);
        }
        rec->bound = bound;
        m->vulkan = rec;
        m->vulkan_destroy = recordings_destroy;
    }
    *out_rec = m->vulkan;
    return VKT_OK;
}

vkt_result vkt_model_bind_input(vkt_model *m, vkt_var input, vkt_tensor *tensor) {
    vk_recordings *rec;
    vkt_result r = model_usable(m, "vkt_model_bind_input", &rec);
    if (r != VKT_OK)
        return r;
    if (!graph_var_valid(m->g, input) || m->g->vars[input].kind != VAR_INPUT)
        return vkt_error(m->ctx, VKT_ERROR_INVALID_ARGUMENT,
                         "vkt_model_bind_input: var %d is not an input of the model", (int)input);
    const graph_var *gv = &m->g->vars[input];
    if (tensor && tensor->ctx != m->ctx)
        return vkt_error(m->ctx, VKT_ERROR_BACKEND_MISMATCH,
                         "vkt_model_bind_input: tensor '%s' belongs to another context",
                         tensor->name);
    if (tensor && vkt_shape_numel(&tensor->value.shape) != vkt_shape_numel(&gv->shape)) {
        char a[64], b[64];
        return vkt_error(m->ctx, VKT_ERROR_SHAPE,
                         "vkt_model_bind_input: input '%s' %s needs %lld elements, tensor '%s' "
                         "%s has %lld",
                         gv->name, vkt_shape_format(&gv->shape, a, sizeof a),
                         (long long)vkt_shape_numel(&gv->shape), tensor->name,
                         vkt_shape_format(&tensor->value.shape, b, sizeof b),
                         (long long)vkt_shape_numel(&tensor->value.shape));
    }
    if (rec->bound[input] == tensor)
        return VKT_OK;
    if (rec->step || rec->evaluate) {
        /* Freeing a secondary that a pending primary executes is undefined:
         * wait for what was submitted to the queue vktrain knows. */
        r = m->ctx->ops->wait_idle(m->ctx);
        if (r != VKT_OK)
            return r;
        recordings_release(m->ctx, rec);
    }
    rec->bound[input] = tensor;
    return VKT_OK;
}

vkt_result vkt_model_query_vulkan_buffer(const vkt_model *m, vkt_var var, VkBuffer *out_buffer,
                                         VkDeviceSize *out_offset, VkDeviceSize *out_size) {
    const char *fn = "vkt_model_query_vulkan_buffer";
    if (!m)
        return vkt_error(NULL, VKT_ERROR_INVALID_ARGUMENT, "%s: model is NULL", fn);
    vkt_clear_error(m->ctx);
    vkt_result r = need_vulkan(m->ctx, fn);
    if (r != VKT_OK)
        return r;
    if (!out_buffer || !out_offset || !out_size)
        return vkt_error(m->ctx, VKT_ERROR_INVALID_ARGUMENT, "%s: %s is NULL", fn,
                         !out_buffer ? "out_buffer" : !out_offset ? "out_offset" : "out_size");
    if (!graph_var_valid(m->g, var))
        return vkt_error(m->ctx, VKT_ERROR_INVALID_ARGUMENT, "%s: var %d is not in the model", fn,
                         (int)var);
    if (m->g->vars[graph_root(m->g, var)].fused_away)
        return vkt_error(m->ctx, VKT_ERROR_INVALID_ARGUMENT,
                         "%s: '%s' was fused into the node that reads it and is never stored "
                         "(vkt_model_desc.no_fusion keeps it)",
                         fn, m->g->vars[var].name);
    vkt_view view = m->values[var].view;
    const vk_recordings *rec = m->vulkan;
    vkt_var root = graph_root(m->g, var);
    if (rec && rec->bound[root]) {
        uint64_t bytes = view.bytes;
        view = rec->bound[root]->value.view;
        view.bytes = bytes;
    }
    *out_buffer = view_buffer(&view);
    *out_offset = view.offset;
    *out_size = view.bytes;
    return VKT_OK;
}

/* Records the secondary with every bound input (and reshape of one) read
 * from its tensor: the nodes point at m->values, so those views are swapped
 * for the recording and put back after. */
static vkt_result record_secondary(vkt_model *m, const vk_recordings *rec, bool train,
                                   vkt_program **out_program) {
    uint32_t nv = m->g->var_count;
    vkt_view *saved = malloc(nv * sizeof *saved);
    if (!saved)
        return vkt_error(m->ctx, VKT_ERROR_OUT_OF_HOST_MEMORY, "out of host memory");
    for (uint32_t v = 1; v < nv; v++) {
        saved[v] = m->values[v].view;
        const vkt_tensor *t = rec->bound[graph_root(m->g, (vkt_var)v)];
        if (t) {
            m->values[v].view = t->value.view;
            m->values[v].view.bytes = saved[v].bytes;
        }
    }
    vkt_result r = train ? vk_program_create_secondary(m->ctx, m->train_list, m->g->node_count,
                                                       out_program)
                         : vk_program_create_secondary(m->ctx, m->eval_list, m->eval_count,
                                                       out_program);
    for (uint32_t v = 1; v < nv; v++)
        m->values[v].view = saved[v];
    free(saved);
    return r;
}

static void memory_barrier(const vk_state *vk, VkCommandBuffer cmd, VkPipelineStageFlags src_stages,
                           VkAccessFlags src_access, VkPipelineStageFlags dst_stages,
                           VkAccessFlags dst_access) {
    VkMemoryBarrier b = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                         .srcAccessMask = src_access,
                         .dstAccessMask = dst_access};
    vk->vk.vkCmdPipelineBarrier(cmd, src_stages, dst_stages, 0, 1, &b, 0, NULL, 0, NULL);
}

static vkt_result record(vkt_model *m, VkCommandBuffer cmd, const vkt_record_desc *desc,
                         bool train, const char *fn) {
    vk_recordings *rec;
    vkt_result r = model_usable(m, fn, &rec);
    if (r != VKT_OK)
        return r;
    if (cmd == VK_NULL_HANDLE)
        return vkt_error(m->ctx, VKT_ERROR_INVALID_ARGUMENT, "%s: cmd is NULL", fn);
    if (train && !m->g->hyper)
        return vkt_error(m->ctx, VKT_ERROR_INVALID_ARGUMENT, "%s: the model has no optimizer",
                         fn);
    vkt_program **program = train ? &rec->step : &rec->evaluate;
    if (!*program) {
        r = record_secondary(m, rec, train, program);
        if (r != VKT_OK)
            return r;
    }
    const vk_state *vk = vk_of(m->ctx);
    vkt_record_desc d = desc ? *desc : (vkt_record_desc){0};

    /* Hazard: this run's dispatches (and the hyperparameter update) against
     * earlier work on the same memory: vktrain's previous steps,
     * evaluations, uploads and downloads (RAW, WAW, WAR), the engine's
     * compute and transfer writes of the inputs (RAW), and whatever engine
     * stages the caller names in desc. */
    VkPipelineStageFlags ours = VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT |
                                (train ? VK_PIPELINE_STAGE_TRANSFER_BIT : 0);
    memory_barrier(vk, cmd,
                   VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT |
                       d.before_stages,
                   VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT | d.before_access,
                   ours,
                   VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT |
                       (train ? VK_ACCESS_TRANSFER_WRITE_BIT : 0));
    if (train) {
        float hyper[VKT_HYPER_COUNT];
        optimizer_hyper_values(&m->opt, m->step + 1, hyper);
        const vkt_view *hv = &m->values[m->g->hyper].view;
        vk->vk.vkCmdUpdateBuffer(cmd, view_buffer(hv), hv->offset, sizeof hyper, hyper);
        /* Hazard: the optimizer and dropout read the hyperparameters just
         * written, and gradient clipping rewrites one of them (RAW, WAW). */
        memory_barrier(vk, cmd, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_ACCESS_TRANSFER_WRITE_BIT,
                       VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT,
                       VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT);
    }
    VkCommandBuffer secondary = vk_program_command_buffer(*program);
    vk->vk.vkCmdExecuteCommands(cmd, 1, &secondary);
    if (d.after_stages) {
        /* Hazard: the engine's later commands read what this run wrote
         * (RAW) or overwrite what it read (WAR). */
        memory_barrier(vk, cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_ACCESS_SHADER_WRITE_BIT,
                       d.after_stages, d.after_access);
    }
    if (train)
        m->step++;
    return VKT_OK;
}

vkt_result vkt_model_record_step(vkt_model *m, VkCommandBuffer cmd, const vkt_record_desc *desc) {
    return record(m, cmd, desc, true, "vkt_model_record_step");
}

vkt_result vkt_model_record_evaluate(vkt_model *m, VkCommandBuffer cmd,
                                     const vkt_record_desc *desc) {
    return record(m, cmd, desc, false, "vkt_model_record_evaluate");
}
