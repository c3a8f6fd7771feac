/* context.c: creating and destroying contexts, backend choice, errors and
 * logging. */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local char thread_error[VKT_ERROR_MESSAGE_SIZE];

const char *vkt_result_string(vkt_result result) {
    switch (result) {
    case VKT_OK: return "VKT_OK: success";
    case VKT_ERROR_INVALID_ARGUMENT: return "VKT_ERROR_INVALID_ARGUMENT: an argument is invalid";
    case VKT_ERROR_SHAPE: return "VKT_ERROR_SHAPE: tensor shapes do not fit together";
    case VKT_ERROR_OUT_OF_HOST_MEMORY: return "VKT_ERROR_OUT_OF_HOST_MEMORY: out of host memory";
    case VKT_ERROR_OUT_OF_DEVICE_MEMORY: return "VKT_ERROR_OUT_OF_DEVICE_MEMORY: out of device memory";
    case VKT_ERROR_DEVICE_LOST: return "VKT_ERROR_DEVICE_LOST: the Vulkan device was lost";
    case VKT_ERROR_NO_VULKAN: return "VKT_ERROR_NO_VULKAN: no Vulkan loader found";
    case VKT_ERROR_NO_DEVICE: return "VKT_ERROR_NO_DEVICE: no suitable Vulkan device";
    case VKT_ERROR_UNSUPPORTED: return "VKT_ERROR_UNSUPPORTED: the device lacks a needed feature";
    case VKT_ERROR_VULKAN: return "VKT_ERROR_VULKAN: a Vulkan call failed";
    case VKT_ERROR_IO: return "VKT_ERROR_IO: a file could not be read or written";
    case VKT_ERROR_CORRUPT_DATA: return "VKT_ERROR_CORRUPT_DATA: malformed or truncated data";
    case VKT_ERROR_NON_FINITE: return "VKT_ERROR_NON_FINITE: a NaN or Inf value appeared";
    case VKT_ERROR_BACKEND_MISMATCH: return "VKT_ERROR_BACKEND_MISMATCH: objects from different contexts";
    case VKT_ERROR_CHECK_FAILED: return "VKT_ERROR_CHECK_FAILED: the device disagrees with the CPU reference";
    case VKT_RESULT_COUNT: break;
    }
    return "unknown vkt_result";
}

vkt_result vkt_error(vkt_context *ctx, vkt_result result, const char *fmt, ...) {
    char *buf = ctx ? ctx->error : thread_error;
    va_list args;
    va_start(args, fmt);
    vsnprintf(buf, VKT_ERROR_MESSAGE_SIZE, fmt, args);
    va_end(args);
    if (ctx)
        vkt_log(ctx, VKT_LOG_ERROR, "%s", buf);
    return result;
}

void vkt_clear_error(vkt_context *ctx) {
    if (ctx)
        ctx->error[0] = '\0';
}

void vkt_log(const vkt_context *ctx, vkt_log_level level, const char *fmt, ...) {
    if (!ctx || !ctx->desc.log)
        return;
    char buf[1024];
    va_list args;
    va_start(args, fmt);
    vsnprintf(buf, sizeof buf, fmt, args);
    va_end(args);
    ctx->desc.log(level, buf, ctx->desc.log_user_data);
}

const char *vkt_context_last_error(const vkt_context *ctx) {
    return ctx ? ctx->error : "no context (NULL)";
}

const char *vkt_last_error(void) { return thread_error; }

/* Environment overrides win over the desc so a user can redirect any program
 * without recompiling it. */
static vkt_result apply_environment(vkt_context_desc *desc) {
    const char *backend = getenv("VKT_BACKEND");
    if (backend && *backend) {
        if (strcmp(backend, "cpu") == 0)
            desc->backend = VKT_BACKEND_CPU;
        else if (strcmp(backend, "cpu-fast") == 0)
            desc->backend = VKT_BACKEND_CPU_FAST;
        else if (strcmp(backend, "vulkan") == 0)
            desc->backend = VKT_BACKEND_VULKAN;
        else
            return vkt_error(NULL, VKT_ERROR_INVALID_ARGUMENT,
                             "VKT_BACKEND='%s' is not 'cpu', 'cpu-fast' or 'vulkan'", backend);
    }
    const char *validation = getenv("VKT_VALIDATION");
    if (validation && *validation)
        desc->validation = strcmp(validation, "0") != 0;
    return VKT_OK;
}

static vkt_result init_backend(vkt_context *ctx) {
    switch (ctx->desc.backend) {
    case VKT_BACKEND_CPU:
        return vkt_cpu_backend_init(ctx);
    case VKT_BACKEND_CPU_FAST:
        return vkt_cpu_fast_backend_init(ctx);
    case VKT_BACKEND_VULKAN:
        return vkt_vulkan_backend_init(ctx);
    case VKT_BACKEND_DEFAULT: {
        vkt_result r = vkt_vulkan_backend_init(ctx);
        /* Falling back is right when there is no Vulkan at all, not when
         * the user named a device that does not exist: say so instead. The
         * fallback is the fast CPU backend: a machine without a device
         * should still train at native speed; the reference is for
         * checking, and VKT_BACKEND=cpu still asks for it. */
        const char *env_device = getenv("VKT_DEVICE");
        bool device_named = ctx->desc.device || (env_device && *env_device);
        if ((r == VKT_ERROR_NO_VULKAN || r == VKT_ERROR_NO_DEVICE) && !device_named) {
            vkt_log(ctx, VKT_LOG_INFO, "no Vulkan device (%s); using the fast CPU backend",
                    ctx->error);
            vkt_clear_error(ctx);
            return vkt_cpu_fast_backend_init(ctx);
        }
        return r;
    }
    }
    return vkt_error(ctx, VKT_ERROR_INVALID_ARGUMENT, "desc->backend = %d is not a vkt_backend",
                     (int)ctx->desc.backend);
}

static vkt_result context_create(const vkt_context_desc *desc, bool environment,
                                 vkt_context **out_ctx) {
    thread_error[0] = '\0';
    if (!desc || !out_ctx)
        return vkt_error(NULL, VKT_ERROR_INVALID_ARGUMENT, "vkt_context_create: %s is NULL",
                         !desc ? "desc" : "out_ctx");
    vkt_context *ctx = calloc(1, sizeof *ctx);
    if (!ctx)
        return vkt_error(NULL, VKT_ERROR_OUT_OF_HOST_MEMORY, "vkt_context_create: out of memory");
    ctx->desc = *desc;
    vkt_result r = environment ? apply_environment(&ctx->desc) : VKT_OK;
    if (r == VKT_OK)
        r = init_backend(ctx);
    if (r != VKT_OK) {
        if (ctx->error[0])
            snprintf(thread_error, sizeof thread_error, "%s", ctx->error);
        free(ctx);
        return r;
    }
    /* The desc's pointers are the caller's; keep only what stays valid. */
    ctx->desc.device = NULL;
    ctx->desc.external = NULL;
    *out_ctx = ctx;
    return VKT_OK;
}

vkt_result vkt_context_create(const vkt_context_desc *desc, vkt_context **out_ctx) {
    return context_create(desc, true, out_ctx);
}

vkt_result vkt_reference_context_create(vkt_context **out_ctx) {
    return context_create(&(vkt_context_desc){.backend = VKT_BACKEND_CPU}, false, out_ctx);
}

void vkt_context_destroy(vkt_context *ctx) {
    if (!ctx)
        return;
    if (ctx->live_tensors)
        vkt_log(ctx, VKT_LOG_WARNING, "context destroyed with %llu live tensors",
                (unsigned long long)ctx->live_tensors);
    if (ctx->ops->wait_idle)
        ctx->ops->wait_idle(ctx);
    vkt_memory_release_all(ctx);
    ctx->ops->destroy(ctx);
    free(ctx);
}

vkt_result vkt_context_query(const vkt_context *ctx, vkt_context_info *out_info) {
    if (!ctx || !out_info)
        return vkt_error((vkt_context *)ctx, VKT_ERROR_INVALID_ARGUMENT,
                         "vkt_context_query: %s is NULL", !ctx ? "ctx" : "out_info");
    vkt_context_info info = {.backend = ctx->backend};
    for (uint32_t i = 0; i < ctx->block_count; i++) {
        info.bytes_reserved += ctx->blocks[i]->size;
        info.bytes_in_use += ctx->blocks[i]->bytes_used;
    }
    info.programs_recorded = ctx->programs_recorded;
    info.submits = ctx->submits;
    ctx->ops->query(ctx, &info);
    *out_info = info;
    return VKT_OK;
}

vkt_result vkt_context_wait_idle(vkt_context *ctx) {
    if (!ctx)
        return vkt_error(NULL, VKT_ERROR_INVALID_ARGUMENT, "vkt_context_wait_idle: ctx is NULL");
    return ctx->ops->wait_idle ? ctx->ops->wait_idle(ctx) : VKT_OK;
}
