/* internal.h: the context, tensor and memory structures shared by every layer
 * of the runtime, and the backend interface that the Vulkan and CPU backends
 * implement. Nothing here is public. */
#ifndef VKT_INTERNAL_H
#define VKT_INTERNAL_H

#include "vktrain.h"

#include <stdarg.h>
#include <stdint.h>

/* Internal invariants (never something the caller can cause). Overridable so
 * an embedding program can route them to its own crash handler. */
#ifndef VKT_ASSERT
#include <assert.h>
#define VKT_ASSERT(cond) assert(cond)
#endif

#define VKT_ERROR_MESSAGE_SIZE 512

typedef struct vkt_shape {
    int32_t ndim;
    int64_t dims[VKT_MAX_DIMS];
} vkt_shape;

int64_t vkt_shape_numel(const vkt_shape *shape);
/* rows = product of all but the last dimension, cols = last dimension. */
int64_t vkt_shape_rows(const vkt_shape *shape);
int64_t vkt_shape_cols(const vkt_shape *shape);
bool vkt_shape_equal(const vkt_shape *a, const vkt_shape *b);
/* Validates ndim and dims (1..4 dims, each >= 1, under 2^31 elements) and
 * builds a shape; errors are prefixed with `what`. */
vkt_result vkt_shape_from_desc(vkt_context *ctx, const char *what, int32_t ndim,
                               const int64_t *dims, vkt_shape *out_shape);
/* "(7, 33)" into buf; returns buf. */
const char *vkt_shape_format(const vkt_shape *shape, char *buf, size_t size);

/* One large allocation of backend memory that tensors are carved from. The
 * backend fills `host` when the memory is directly addressable by the CPU
 * (always on the CPU backend). */
typedef struct vkt_block {
    uint64_t size;
    void *host;
    void *backend_data;
    /* Free ranges, sorted by offset, coalesced. */
    struct vkt_range *free_ranges;
    uint32_t free_count, free_capacity;
    uint64_t bytes_used;
    /* Memory the caller owns (an engine's VkBuffer, vkt_tensor_wrap_vulkan):
     * not in ctx->blocks and never allocated from; vkt_memory_free hands it
     * back to the backend's block_destroy, which releases the block itself
     * when its last tensor goes. */
    bool borrowed;
} vkt_block;

typedef struct vkt_range {
    uint64_t offset, size;
} vkt_range;

/* A byte range of a block: where a tensor's data lives. */
typedef struct vkt_view {
    vkt_block *block;
    uint64_t offset;
    uint64_t bytes;
} vkt_view;

/* A tensor as the kernels see it: a shape and where its data is. Graph nodes
 * and eager tensors both refer to values. */
typedef struct vkt_value {
    vkt_shape shape;
    vkt_view view;
    const char *name;
} vkt_value;

/* ---- Backend interface ---------------------------------------------------- */

struct vkt_node;

/* A recorded program: nodes replayed as one unit. Before each run the host
 * writes the `uploads` (inputs, hyperparameters) through their host
 * pointers; after it reads the `downloads` (the loss). */
typedef struct vkt_program vkt_program;
typedef struct vkt_program_desc {
    const struct vkt_node *const *nodes;
    size_t node_count;
    const vkt_view *uploads;
    uint32_t upload_count;
    const vkt_view *downloads;
    uint32_t download_count;
} vkt_program_desc;

typedef struct vkt_program_stats {
    uint32_t dispatches, barriers, submits_per_run;
} vkt_program_stats;

typedef struct vkt_backend_ops {
    void (*destroy)(vkt_context *ctx);
    vkt_result (*block_create)(vkt_context *ctx, uint64_t size, vkt_block *block);
    void (*block_destroy)(vkt_context *ctx, vkt_block *block);
    vkt_result (*write)(vkt_context *ctx, const vkt_view *dst, const void *src, uint64_t bytes);
    vkt_result (*read)(vkt_context *ctx, const vkt_view *src, void *dst, uint64_t bytes);
    /* Runs nodes in order now and waits for them. */
    vkt_result (*run)(vkt_context *ctx, const struct vkt_node *const *nodes, size_t count);
    vkt_result (*wait_idle)(vkt_context *ctx);
    vkt_result (*program_create)(vkt_context *ctx, const vkt_program_desc *desc,
                                 vkt_program **out_program);
    void (*program_destroy)(vkt_context *ctx, vkt_program *program);
    void *(*program_upload_ptr)(vkt_program *program, uint32_t index);
    const void *(*program_download_ptr)(vkt_program *program, uint32_t index);
    vkt_result (*program_run)(vkt_context *ctx, vkt_program *program);
    void (*program_stats)(const vkt_program *program, vkt_program_stats *stats);
    void (*query)(const vkt_context *ctx, vkt_context_info *info);
} vkt_backend_ops;

#define VKT_MAX_BLOCKS 256

struct vkt_context {
    vkt_backend backend;
    const vkt_backend_ops *ops;
    void *backend_state;
    vkt_context_desc desc; /* copied; desc.device/external pointers cleared */
    vkt_block *blocks[VKT_MAX_BLOCKS];
    uint32_t block_count;
    uint64_t default_block_size;
    uint64_t max_tensor_bytes; /* largest range one binding can address */
    uint32_t alignment;
    uint64_t live_tensors;
    uint64_t programs_recorded, submits; /* counted by the backend */
    char error[VKT_ERROR_MESSAGE_SIZE];
};

struct vkt_tensor {
    vkt_context *ctx;
    vkt_value value;
    char name[64];
};

/* Records a failure on the context and returns `result`, so call sites read
 * `return vkt_error(ctx, VKT_ERROR_SHAPE, "...", ...)`. ctx may be NULL. */
vkt_result vkt_error(vkt_context *ctx, vkt_result result, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void vkt_clear_error(vkt_context *ctx);
void vkt_log(const vkt_context *ctx, vkt_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Allocates `bytes` (aligned) from the context's blocks, making a new block
 * when none has room. */
vkt_result vkt_memory_alloc(vkt_context *ctx, uint64_t bytes, vkt_view *out_view);
/* As vkt_memory_alloc for a region that is never bound whole (a planned
 * arena of many tensors): only each tensor must fit one binding. */
vkt_result vkt_memory_alloc_arena(vkt_context *ctx, uint64_t bytes, vkt_view *out_view);
void vkt_memory_free(vkt_context *ctx, const vkt_view *view);
void vkt_memory_release_all(vkt_context *ctx);

/* Host address of a view on a host-addressable block (CPU backend). */
static inline float *vkt_view_host(const vkt_view *view) {
    return (float *)((char *)view->block->host + view->offset);
}

/* Backend entry points, each in its own directory. */
vkt_result vkt_cpu_backend_init(vkt_context *ctx);
/* A CPU reference context whatever VKT_BACKEND says: the oracle that check
 * mode compares against must never be redirected to another backend. */
vkt_result vkt_reference_context_create(vkt_context **out_ctx);
/* The CPU backend again, running nodes through the fast float kernels of
 * runtime/cpu/cpu_fast.c where there is one. */
vkt_result vkt_cpu_fast_backend_init(vkt_context *ctx);
vkt_result vkt_vulkan_backend_init(vkt_context *ctx);

#endif
