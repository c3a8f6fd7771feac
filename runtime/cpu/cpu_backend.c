/* cpu_backend.c: the CPU backends. Blocks are host memory and programs run
 * their nodes in order. The reference backend runs every node through its
 * op's plain-C reference: the oracle every other result is compared
 * against. The fast backend (VKT_BACKEND_CPU_FAST) is the same backend but
 * for one thing: a node runs through its fast float kernel (cpu_fast.c)
 * where there is one. */
#include "cpu_fast.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Host blocks are allocated to this alignment so float loads are aligned. */
#define CPU_BLOCK_ALIGNMENT 64

/* Only the fast backend has state: the op whose kernel a test asked to be
 * wrong. The reference never takes it: the oracle stays exact. */
typedef struct cpu_fast_state {
    vkt_op perturbed; /* VKT_OP_COUNT: none */
} cpu_fast_state;

static void cpu_destroy(vkt_context *ctx) { free(ctx->backend_state); }

static vkt_result cpu_block_create(vkt_context *ctx, uint64_t size, vkt_block *block) {
    if (size > SIZE_MAX)
        return vkt_error(ctx, VKT_ERROR_OUT_OF_HOST_MEMORY, "block of %llu bytes is too large",
                         (unsigned long long)size);
    block->host = aligned_alloc(CPU_BLOCK_ALIGNMENT, (size_t)size);
    if (!block->host)
        return vkt_error(ctx, VKT_ERROR_OUT_OF_HOST_MEMORY,
                         "out of host memory for a %llu-byte block", (unsigned long long)size);
    return VKT_OK;
}

static void cpu_block_destroy(vkt_context *ctx, vkt_block *block) {
    (void)ctx;
    free(block->host);
}

static vkt_result cpu_write(vkt_context *ctx, const vkt_view *dst, const void *src, uint64_t bytes) {
    (void)ctx;
    memcpy((char *)dst->block->host + dst->offset, src, (size_t)bytes);
    return VKT_OK;
}

static vkt_result cpu_read(vkt_context *ctx, const vkt_view *src, void *dst, uint64_t bytes) {
    (void)ctx;
    memcpy(dst, (const char *)src->block->host + src->offset, (size_t)bytes);
    return VKT_OK;
}

/* The test hook's fault: the first output's last element is off by one,
 * as a kernel that misses its edge would leave it. */
static void perturb(const vkt_node *node) {
    const vkt_value *out = node->out[0];
    int64_t n = vkt_shape_numel(&out->shape);
    if (n > 0)
        vkt_view_host(&out->view)[n - 1] += 1.0f;
}

static vkt_result cpu_run(vkt_context *ctx, const vkt_node *const *nodes, size_t count) {
    const cpu_fast_state *fast = ctx->backend == VKT_BACKEND_CPU_FAST ? ctx->backend_state : NULL;
    for (size_t i = 0; i < count; i++) {
        vkt_cpu_fast_fn kernel = fast ? vkt_cpu_fast_kernel(nodes[i]->op) : NULL;
        if (!kernel) {
            vkt_op_get(nodes[i]->op)->cpu(nodes[i]);
            continue;
        }
        kernel(nodes[i]);
        if (nodes[i]->op == fast->perturbed)
            perturb(nodes[i]);
    }
    return VKT_OK;
}

/* A CPU program runs its nodes in order; uploads and downloads are the
 * values' own host memory, so there is nothing to copy. */
struct vkt_program {
    const vkt_node **nodes;
    size_t node_count;
    vkt_view *views; /* uploads, then downloads */
    uint32_t upload_count;
};

static vkt_result cpu_program_create(vkt_context *ctx, const vkt_program_desc *desc,
                                     vkt_program **out_program) {
    vkt_program *p = calloc(1, sizeof *p);
    uint32_t view_count = desc->upload_count + desc->download_count;
    if (p) {
        p->nodes = malloc((desc->node_count ? desc->node_count : 1) * sizeof *p->nodes);
        p->views = malloc((view_count ? view_count : 1) * sizeof *p->views);
    }
    if (!p || !p->nodes || !p->views) {
        if (p) {
            free(p->nodes);
            free(p->views);
        }
        free(p);
        return vkt_error(ctx, VKT_ERROR_OUT_OF_HOST_MEMORY, "out of host memory for a program");
    }
    /* (memcpy from NULL is undefined even for zero bytes) */
    if (desc->node_count)
        memcpy(p->nodes, desc->nodes, desc->node_count * sizeof *p->nodes);
    p->node_count = desc->node_count;
    if (desc->upload_count)
        memcpy(p->views, desc->uploads, desc->upload_count * sizeof *p->views);
    if (desc->download_count)
        memcpy(p->views + desc->upload_count, desc->downloads,
               desc->download_count * sizeof *p->views);
    p->upload_count = desc->upload_count;
    *out_program = p;
    return VKT_OK;
}

static void cpu_program_destroy(vkt_context *ctx, vkt_program *p) {
    (void)ctx;
    if (!p)
        return;
    free(p->nodes);
    free(p->views);
    free(p);
}

static void *cpu_program_upload_ptr(vkt_program *p, uint32_t index) {
    return vkt_view_host(&p->views[index]);
}

static const void *cpu_program_download_ptr(vkt_program *p, uint32_t index) {
    return vkt_view_host(&p->views[p->upload_count + index]);
}

static vkt_result cpu_program_run(vkt_context *ctx, vkt_program *p) {
    return cpu_run(ctx, p->nodes, p->node_count);
}

static void cpu_program_stats(const vkt_program *p, vkt_program_stats *stats) {
    *stats = (vkt_program_stats){.dispatches = (uint32_t)p->node_count, .submits_per_run = 0};
}

static void cpu_query(const vkt_context *ctx, vkt_context_info *info) {
    if (ctx->backend == VKT_BACKEND_CPU_FAST)
        vkt_cpu_fast_describe(info->device_name, sizeof info->device_name);
    else
        snprintf(info->device_name, sizeof info->device_name, "CPU reference");
    info->subgroup_size = 1;
}

static const vkt_backend_ops cpu_ops = {
    .destroy = cpu_destroy,
    .block_create = cpu_block_create,
    .block_destroy = cpu_block_destroy,
    .write = cpu_write,
    .read = cpu_read,
    .run = cpu_run,
    .query = cpu_query,
    .program_create = cpu_program_create,
    .program_destroy = cpu_program_destroy,
    .program_upload_ptr = cpu_program_upload_ptr,
    .program_download_ptr = cpu_program_download_ptr,
    .program_run = cpu_program_run,
    .program_stats = cpu_program_stats,
};

vkt_result vkt_cpu_backend_init(vkt_context *ctx) {
    ctx->backend = VKT_BACKEND_CPU;
    ctx->ops = &cpu_ops;
    ctx->alignment = CPU_BLOCK_ALIGNMENT;
    ctx->default_block_size = 16u << 20;
    ctx->max_tensor_bytes = UINT64_MAX / 2;
    return VKT_OK;
}

vkt_result vkt_cpu_fast_backend_init(vkt_context *ctx) {
    cpu_fast_state *state = malloc(sizeof *state);
    if (!state)
        return vkt_error(ctx, VKT_ERROR_OUT_OF_HOST_MEMORY, "out of host memory for a context");
    vkt_cpu_backend_init(ctx);
    ctx->backend = VKT_BACKEND_CPU_FAST;
    ctx->backend_state = state;
    /* VKT_TEST_PERTURB=<op>, a test hook as on Vulkan (there it names a
     * kernel): that op's fast kernel gives a wrong result, to show that
     * the checkers notice. */
    state->perturbed = VKT_OP_COUNT;
    const char *name = getenv("VKT_TEST_PERTURB");
    for (uint32_t op = 0; name && op < VKT_OP_COUNT; op++) {
        if (vkt_cpu_fast_kernel((vkt_op)op) && strcmp(vkt_op_get((vkt_op)op)->name, name) == 0) {
            state->perturbed = (vkt_op)op;
            vkt_log(ctx, VKT_LOG_WARNING, "VKT_TEST_PERTURB: the fast '%s' is deliberately wrong",
                    name);
        }
    }
    return VKT_OK;
}
