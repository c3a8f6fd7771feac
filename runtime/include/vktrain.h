/* vktrain.h: the whole public API of vktrain, a neural-network training
 * runtime that runs GLSL compute shaders on any Vulkan device, with a CPU
 * reference backend that runs the very same kernels as plain C loops.
 *
 * OVERVIEW
 *   A vkt_context owns one backend: a Vulkan device (picked automatically,
 *   or chosen by the caller) or the CPU reference. Tensors live in memory the
 *   context sub-allocates from a few large blocks. Kernels run on tensors
 *   either one at a time ("eager" calls like vkt_matmul, one submit each, for
 *   experiments and tests) or, for training, as a whole graph recorded once
 *   into a command buffer and replayed every step (vkt_graph / vkt_model).
 *
 *       vkt_context *ctx;
 *       if (vkt_context_create(&(vkt_context_desc){0}, &ctx) != VKT_OK) ...
 *       vkt_tensor *a, *b, *c;
 *       vkt_tensor_create(ctx, &(vkt_tensor_desc){ .ndim = 2, .dims = {M, K} }, &a);
 *       ...
 *       vkt_tensor_upload(a, host_a, M * K);
 *       vkt_matmul(ctx, c, a, b, &(vkt_matmul_desc){ .transpose_b = true });
 *       vkt_tensor_download(c, host_c, M * N);
 *       vkt_tensor_destroy(a); ...
 *       vkt_context_destroy(ctx);
 *
 * DESCS
 *   Every *_desc struct is input whose zero value means "sensible default":
 *   fill it with designated initializers and leave out what you don't care
 *   about. Descs are copied at create time; the caller may free them after.
 *
 * ERRORS
 *   Every call that can fail returns a vkt_result (VKT_OK == 0) and writes its
 *   outputs through trailing out_ parameters, which are left untouched on
 *   failure. vkt_context_last_error() gives a human-readable message naming
 *   the argument, tensor, node, file or byte offset at fault. The library
 *   never exits, aborts or prints: diagnostics go to the optional log
 *   callback.
 *
 * OWNERSHIP
 *   Objects are created and destroyed in pairs; every destroy accepts NULL.
 *   A tensor or graph must be destroyed before the context that made it.
 *   vktrain frees what it allocates and never destroys what it borrowed
 *   (adopted Vulkan handles stay the caller's).
 *
 * THREADS
 *   A context and everything made from it is externally synchronized: use it
 *   from one thread at a time. Different contexts are independent and may be
 *   used from different threads concurrently.
 *
 * ENVIRONMENT
 *   VKT_BACKEND=cpu|vulkan   forces a backend (overrides the desc).
 *   VKT_DEVICE=N|substring   picks the Vulkan device by index or name.
 *   VKT_VALIDATION=1         enables the Khronos validation layer.
 *
 * Dimension legend used throughout: B batch, M N K matmul, C H W channels and
 * image size. Tensors are row-major: the last dimension is contiguous.
 */
#ifndef VKTRAIN_H
#define VKTRAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define VKT_API __declspec(dllexport)
#else
#define VKT_API __attribute__((visibility("default")))
#endif

/* ---- Results ------------------------------------------------------------ */

typedef enum vkt_result {
    VKT_OK = 0,
    VKT_ERROR_INVALID_ARGUMENT,   /* NULL handle, bad enum, bad count */
    VKT_ERROR_SHAPE,              /* shapes that do not fit together */
    VKT_ERROR_OUT_OF_HOST_MEMORY, /* malloc failed */
    VKT_ERROR_OUT_OF_DEVICE_MEMORY,
    VKT_ERROR_DEVICE_LOST,
    VKT_ERROR_NO_VULKAN,   /* no Vulkan loader could be loaded */
    VKT_ERROR_NO_DEVICE,   /* no (matching) Vulkan device */
    VKT_ERROR_UNSUPPORTED, /* the device lacks something vktrain needs */
    VKT_ERROR_VULKAN,      /* any other Vulkan failure */
    VKT_ERROR_IO,          /* a file could not be read or written */
    VKT_ERROR_CORRUPT_DATA, /* a file's content is malformed or truncated */
    VKT_ERROR_NON_FINITE,   /* a NaN or Inf appeared where it must not */
    VKT_ERROR_BACKEND_MISMATCH, /* objects from different contexts mixed */
    VKT_RESULT_COUNT
} vkt_result;

/* A static English name for a result code ("VKT_ERROR_SHAPE: shapes do not
 * fit"); never NULL, also for unknown values. */
VKT_API const char *vkt_result_string(vkt_result result);

/* ---- Context -------------------------------------------------------------- */

typedef struct vkt_context vkt_context;

typedef enum vkt_backend {
    VKT_BACKEND_DEFAULT = 0, /* Vulkan if a device exists, else CPU */
    VKT_BACKEND_VULKAN,      /* Vulkan or fail */
    VKT_BACKEND_CPU          /* the plain-C reference backend */
} vkt_backend;

typedef enum vkt_log_level {
    VKT_LOG_DEBUG = 0,
    VKT_LOG_INFO,
    VKT_LOG_WARNING,
    VKT_LOG_ERROR
} vkt_log_level;

/* Called for diagnostics (validation-layer messages, device choice, errors).
 * May be called from a driver thread for validation messages. */
typedef void (*vkt_log_fn)(vkt_log_level level, const char *message, void *user_data);

/* An engine's Vulkan objects for vktrain to adopt instead of creating its
 * own. All are borrowed: vktrain never destroys them. The pointers are the
 * Vulkan handles (VkInstance, VkPhysicalDevice, VkDevice, VkQueue) and the
 * engine's vkGetInstanceProcAddr, passed as void* so this header does not
 * need vulkan.h; vktrain_vulkan.h has typed helpers. */
typedef struct vkt_vulkan_external {
    void *instance;
    void *physical_device;
    void *device;
    void *queue;
    uint32_t queue_family_index;
    void (*get_instance_proc_addr)(void); /* PFN_vkGetInstanceProcAddr; NULL: the loader's */
} vkt_vulkan_external;

typedef struct vkt_context_desc {
    vkt_backend backend; /* VKT_BACKEND env var overrides */
    /* Device choice: NULL picks the best (discrete > integrated > virtual >
     * CPU). Otherwise a decimal index into the device list or a substring of
     * the device name. VKT_DEVICE overrides. */
    const char *device;
    bool validation; /* Khronos validation layer + messenger; also VKT_VALIDATION=1 */
    vkt_log_fn log;
    void *log_user_data;
    /* Optional: adopt an engine's device (NULL: vktrain makes its own). */
    const vkt_vulkan_external *external;
} vkt_context_desc;

/* Creates a context. On failure *out_ctx is untouched and, where a context
 * could not be made at all, the reason is in vkt_last_error(). */
VKT_API vkt_result vkt_context_create(const vkt_context_desc *desc, vkt_context **out_ctx);

/* Waits for the device to go idle and frees everything the context made.
 * Accepts NULL. Tensors and graphs must already be destroyed. */
VKT_API void vkt_context_destroy(vkt_context *ctx);

/* The message of the last failed call on this context ("" if none). Valid
 * until the next call on the context. Accepts NULL (gives a static text). */
VKT_API const char *vkt_context_last_error(const vkt_context *ctx);

/* The message of the last failure on this thread that had no context to hold
 * it: vkt_context_create, vkt_device_list, data-set and file loading. */
VKT_API const char *vkt_last_error(void);

typedef struct vkt_context_info {
    vkt_backend backend;      /* VKT_BACKEND_VULKAN or VKT_BACKEND_CPU */
    char device_name[256];    /* "CPU reference" for the CPU backend */
    uint32_t device_index;    /* index in vkt_device_list order */
    uint32_t subgroup_size;
    bool validation;          /* validation layer active */
    bool adopted;             /* running on an engine's device */
    uint64_t bytes_reserved;  /* device memory held in blocks */
    uint64_t bytes_in_use;    /* of which handed out to tensors */
} vkt_context_info;

VKT_API vkt_result vkt_context_query(const vkt_context *ctx, vkt_context_info *out_info);

/* How many validation-layer messages of severity warning or error the
 * context has seen since it was created. Tests require zero. */
VKT_API uint64_t vkt_context_validation_messages(const vkt_context *ctx);

/* Blocks until all submitted work of the context has finished. */
VKT_API vkt_result vkt_context_wait_idle(vkt_context *ctx);

/* ---- Devices -------------------------------------------------------------- */

typedef enum vkt_device_type {
    VKT_DEVICE_OTHER = 0,
    VKT_DEVICE_INTEGRATED_GPU,
    VKT_DEVICE_DISCRETE_GPU,
    VKT_DEVICE_VIRTUAL_GPU,
    VKT_DEVICE_CPU
} vkt_device_type;

typedef struct vkt_device_info {
    char name[256];
    vkt_device_type type;
    uint32_t vendor_id, device_id;
    char driver_name[256];
    char driver_info[256];
    uint32_t api_version; /* VK_MAKE_API_VERSION encoding */
    uint32_t subgroup_size;
    uint32_t max_shared_memory;         /* bytes per workgroup */
    uint32_t max_workgroup_invocations; /* per workgroup */
    uint32_t max_workgroup_size[3];
    uint64_t max_storage_buffer_range;
    uint64_t device_local_bytes; /* largest device-local heap */
    bool fp16;                   /* shaderFloat16 */
    bool timestamps;             /* compute queue timestamps */
    bool suitable;               /* has what vktrain needs */
    char unsuitable_reason[128];
} vkt_device_info;

/* Lists the Vulkan devices. Call with out_infos NULL to get the count, then
 * with an array of *inout_count entries. *out_preferred receives the index
 * vktrain would pick by default (honouring VKT_DEVICE); may be NULL. */
VKT_API vkt_result vkt_device_list(uint32_t *inout_count, vkt_device_info *out_infos,
                                   uint32_t *out_preferred);

/* ---- Tensors -------------------------------------------------------------- */

#define VKT_MAX_DIMS 4

typedef struct vkt_tensor vkt_tensor;

typedef struct vkt_tensor_desc {
    int32_t ndim;                 /* 1 to VKT_MAX_DIMS */
    int64_t dims[VKT_MAX_DIMS];   /* each >= 1; row-major */
    const char *name;             /* for error messages; copied; may be NULL */
} vkt_tensor_desc;

typedef struct vkt_tensor_info {
    int32_t ndim;
    int64_t dims[VKT_MAX_DIMS];
    int64_t numel;
    const char *name;
} vkt_tensor_info;

/* Creates an f32 tensor. Its content is undefined until uploaded or filled. */
VKT_API vkt_result vkt_tensor_create(vkt_context *ctx, const vkt_tensor_desc *desc,
                                     vkt_tensor **out_tensor);

/* Frees the tensor's memory. Accepts NULL. */
VKT_API void vkt_tensor_destroy(vkt_tensor *tensor);

/* Copies count floats (must equal the tensor's element count) from host
 * memory into the tensor, blocking until done. */
VKT_API vkt_result vkt_tensor_upload(vkt_tensor *tensor, const float *data, size_t count);

/* Copies the tensor into count floats of host memory, blocking until done. */
VKT_API vkt_result vkt_tensor_download(const vkt_tensor *tensor, float *out_data, size_t count);

VKT_API vkt_result vkt_tensor_query(const vkt_tensor *tensor, vkt_tensor_info *out_info);

/* ---- Eager kernels ------------------------------------------------------------
 * Each runs one kernel now (one submit, waits for it) on the context's
 * backend. Shapes are checked first; the error names the tensor at fault.
 * Outputs must already exist with the right shape. An output may not alias
 * an input unless the function says so. */

typedef struct vkt_matmul_desc {
    bool transpose_a; /* use A^T: A is stored (K, M) */
    bool transpose_b; /* use B^T: B is stored (N, K) */
    bool accumulate;  /* C += op(A) op(B) instead of C = op(A) op(B) */
} vkt_matmul_desc;

/* C (M, N) = op(A) (M, K) * op(B) (K, N). All three are 2-D. */
VKT_API vkt_result vkt_matmul(vkt_context *ctx, vkt_tensor *c, const vkt_tensor *a,
                              const vkt_tensor *b, const vkt_matmul_desc *desc);

/* out (R, C) = x (R, C) + bias (C) broadcast over rows. x may be 1-D to 4-D;
 * its last dimension must equal bias's length. out may alias x. */
VKT_API vkt_result vkt_bias_add(vkt_context *ctx, vkt_tensor *out, const vkt_tensor *x,
                                const vkt_tensor *bias);

/* out (C) = sum over rows of x (R, C): the bias gradient. With accumulate,
 * out += the sum. */
VKT_API vkt_result vkt_column_sum(vkt_context *ctx, vkt_tensor *out, const vkt_tensor *x,
                                  bool accumulate);

/* Elementwise on same-shaped tensors; out may alias a or b. */
VKT_API vkt_result vkt_add(vkt_context *ctx, vkt_tensor *out, const vkt_tensor *a,
                           const vkt_tensor *b);
VKT_API vkt_result vkt_sub(vkt_context *ctx, vkt_tensor *out, const vkt_tensor *a,
                           const vkt_tensor *b);
VKT_API vkt_result vkt_mul(vkt_context *ctx, vkt_tensor *out, const vkt_tensor *a,
                           const vkt_tensor *b);
/* out = x * scale; out may alias x. */
VKT_API vkt_result vkt_scale(vkt_context *ctx, vkt_tensor *out, const vkt_tensor *x,
                             float scale);
/* Every element of out = value. */
VKT_API vkt_result vkt_fill(vkt_context *ctx, vkt_tensor *out, float value);

/* out = max(x, 0). out may alias x. */
VKT_API vkt_result vkt_relu(vkt_context *ctx, vkt_tensor *out, const vkt_tensor *x);
/* dx = dy where x > 0, else 0. x is the forward input. dx may alias dy. */
VKT_API vkt_result vkt_relu_backward(vkt_context *ctx, vkt_tensor *dx, const vkt_tensor *dy,
                                     const vkt_tensor *x);

/* ---- Graphs and training ------------------------------------------------------ */

/* ---- Data sets ------------------------------------------------------------------ */

#ifdef __cplusplus
}
#endif

#endif /* VKTRAIN_H */
