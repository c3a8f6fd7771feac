/* vktrain.h: the whole public API of vktrain, a neural-network training
 * runtime that runs GLSL compute shaders on any Vulkan device, with a CPU
 * reference backend that runs the very same kernels as plain C loops, and a
 * fast CPU backend (OpenBLAS matmuls where available) for machines without
 * a Vulkan device.
 *
 * OVERVIEW
 *   A vkt_context owns one backend: a Vulkan device (picked automatically,
 *   or chosen by the caller), the CPU reference or the fast CPU backend.
 *   Tensors live in memory the
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
 *   VKT_BACKEND=cpu|cpu-fast|vulkan   forces a backend (overrides the desc).
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
    VKT_ERROR_CHECK_FAILED, /* check mode found kernels that disagree with the CPU */
    VKT_RESULT_COUNT
} vkt_result;

/* A static English name for a result code ("VKT_ERROR_SHAPE: shapes do not
 * fit"); never NULL, also for unknown values. */
VKT_API const char *vkt_result_string(vkt_result result);

/* ---- Context -------------------------------------------------------------- */

typedef struct vkt_context vkt_context;

typedef enum vkt_backend {
    VKT_BACKEND_DEFAULT = 0, /* Vulkan if a device exists, else CPU fast */
    VKT_BACKEND_VULKAN,      /* Vulkan or fail */
    VKT_BACKEND_CPU,         /* the plain-C reference backend: the oracle */
    /* The reference's memory and programs with fast float kernels: OpenBLAS
     * sgemm when vktrain was built with it (else a blocked sgemm of its
     * own), vectorizable loops for the rest. Validated against
     * VKT_BACKEND_CPU; results agree to float rounding, not bit for bit. */
    VKT_BACKEND_CPU_FAST
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
    /* VkApplicationInfo::apiVersion the instance was created with
     * (VK_MAKE_API_VERSION); vktrain needs 1.1. 0: taken to be 1.1. */
    uint32_t api_version;
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
    vkt_backend backend;      /* VKT_BACKEND_VULKAN, _CPU or _CPU_FAST */
    /* "CPU reference" for the CPU backend; for CPU fast what does its
     * matmuls: "CPU (OpenBLAS 0.3.21, 2 threads)" or "CPU (built-in sgemm)" */
    char device_name[256];
    uint32_t device_index;    /* index in vkt_device_list order */
    uint32_t subgroup_size;
    bool validation;          /* validation layer active */
    bool adopted;             /* running on an engine's device */
    uint64_t bytes_reserved;  /* device memory held in blocks */
    uint64_t bytes_in_use;    /* of which handed out to tensors */
    uint64_t programs_recorded; /* command buffers recorded for models */
    uint64_t submits;           /* queue submissions so far */
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

/* ---- Graphs and training ------------------------------------------------------
 * A vkt_graph describes a network symbolically: inputs, parameters and the
 * layers between them. Builder calls return a vkt_var (a symbolic tensor,
 * never 0) and check shapes at once; on a mistake they return 0, and the
 * graph keeps the first error (vkt_graph_status / vkt_graph_last_error,
 * naming the node), so a chain of calls can be checked once at the end:
 *
 *     vkt_graph *g;
 *     vkt_graph_create(ctx, &(vkt_graph_desc){ .seed = 42 }, &g);
 *     vkt_var x = vkt_graph_input(g, "x", 2, (int64_t[]){ B, 784 });
 *     vkt_var y = vkt_graph_input(g, "labels", 1, (int64_t[]){ B });
 *     vkt_var h = vkt_graph_relu(g, vkt_graph_linear(g, x, 128, "fc1"));
 *     vkt_var logits = vkt_graph_linear(g, h, 10, "fc2");
 *     vkt_var loss = vkt_graph_softmax_cross_entropy(g, logits, y);
 *     if (vkt_graph_status(g) != VKT_OK) puts(vkt_graph_last_error(g));
 *
 * vkt_model_create then compiles it: reverse-mode autodiff appends gradient
 * nodes, the optimizer appends update nodes, a planner places every tensor
 * in one arena by lifetime, and the Vulkan backend records the whole
 * training step (upload, forward, loss, backward, update) into one command
 * buffer that every vkt_model_step replays with one submit. Evaluation has
 * its own forward-only command buffer. The CPU backends run the same nodes
 * in order: the reference through the reference kernels, CPU fast through
 * its float kernels where it has one. */

typedef struct vkt_graph vkt_graph;
typedef int32_t vkt_var; /* 0 means "no variable" (a failed builder call) */

typedef struct vkt_graph_desc {
    uint64_t seed; /* parameter initialisation and dropout masks */
} vkt_graph_desc;

/* How a parameter is initialised (fan_in/fan_out from its shape: for a
 * (out, in) weight fan_in = in). The default matches PyTorch's nn.Linear:
 * weight and bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)). */
typedef enum vkt_init {
    VKT_INIT_DEFAULT = 0,
    VKT_INIT_KAIMING_UNIFORM, /* U(+-sqrt(6 / fan_in)): ReLU-family layers */
    VKT_INIT_XAVIER_UNIFORM,  /* U(+-sqrt(6 / (fan_in + fan_out))): tanh/sigmoid */
    VKT_INIT_ZEROS,
    VKT_INIT_ONES
} vkt_init;

VKT_API vkt_result vkt_graph_create(vkt_context *ctx, const vkt_graph_desc *desc,
                                    vkt_graph **out_graph);
/* Accepts NULL. Models compiled from the graph stay valid. */
VKT_API void vkt_graph_destroy(vkt_graph *graph);
/* VKT_OK, or the first error a builder call met. */
VKT_API vkt_result vkt_graph_status(const vkt_graph *graph);
VKT_API const char *vkt_graph_last_error(const vkt_graph *graph);

/* Data fed at every step (batch first). Labels for cross-entropy are class
 * indices stored as floats. */
VKT_API vkt_var vkt_graph_input(vkt_graph *g, const char *name, int32_t ndim,
                                const int64_t *dims);
/* A trainable tensor, initialised from the graph's seed. */
VKT_API vkt_var vkt_graph_parameter(vkt_graph *g, const char *name, int32_t ndim,
                                    const int64_t *dims, vkt_init init);
/* y (B, out) = x (B, in) W^T + b with W (out, in) "<name>.weight" and b (out)
 * "<name>.bias", as torch.nn.Linear. x of more than 2 dims is flattened to
 * (B, rest). */
VKT_API vkt_var vkt_graph_linear(vkt_graph *g, vkt_var x, int64_t out_features,
                                 const char *name);
/* As vkt_graph_linear with a chosen weight initialisation. */
VKT_API vkt_var vkt_graph_linear_init(vkt_graph *g, vkt_var x, int64_t out_features,
                                      vkt_init init, const char *name);
VKT_API vkt_var vkt_graph_matmul(vkt_graph *g, vkt_var a, vkt_var b, bool transpose_a,
                                 bool transpose_b);
VKT_API vkt_var vkt_graph_add(vkt_graph *g, vkt_var a, vkt_var b); /* residuals */
VKT_API vkt_var vkt_graph_relu(vkt_graph *g, vkt_var x);
VKT_API vkt_var vkt_graph_leaky_relu(vkt_graph *g, vkt_var x, float negative_slope);
VKT_API vkt_var vkt_graph_sigmoid(vkt_graph *g, vkt_var x);
VKT_API vkt_var vkt_graph_tanh(vkt_graph *g, vkt_var x);
VKT_API vkt_var vkt_graph_gelu(vkt_graph *g, vkt_var x); /* tanh approximation */
VKT_API vkt_var vkt_graph_softmax(vkt_graph *g, vkt_var x); /* over the last dim */
/* Zeroes elements with probability `rate` and scales the rest by
 * 1/(1-rate) while training; the identity in evaluation. */
VKT_API vkt_var vkt_graph_dropout(vkt_graph *g, vkt_var x, float rate);
/* Same data, new shape (same element count); a view, no copy. */
VKT_API vkt_var vkt_graph_reshape(vkt_graph *g, vkt_var x, int32_t ndim, const int64_t *dims);
/* (B, ...) -> (B, rest). */
VKT_API vkt_var vkt_graph_flatten(vkt_graph *g, vkt_var x);
/* y (B, K, Ho, Wo) = conv2d(x (B, C, H, W)) with a square kernel, weight
 * "<name>.weight" (K, C, kernel, kernel) and bias "<name>.bias" (K), as
 * torch.nn.Conv2d (Kaiming-uniform default initialisation like PyTorch's);
 * Ho = (H + 2 padding - kernel) / stride + 1. */
VKT_API vkt_var vkt_graph_conv2d(vkt_graph *g, vkt_var x, int64_t out_channels, int32_t kernel,
                                 int32_t stride, int32_t padding, const char *name);
/* Max / average over kernel x kernel windows of (B, C, H, W), as
 * torch.nn.MaxPool2d / AvgPool2d (no padding, floor mode); stride 0 means
 * the kernel size. */
VKT_API vkt_var vkt_graph_max_pool2d(vkt_graph *g, vkt_var x, int32_t kernel, int32_t stride);
VKT_API vkt_var vkt_graph_avg_pool2d(vkt_graph *g, vkt_var x, int32_t kernel, int32_t stride);

/* Losses: a scalar, the mean over the batch (elements for MSE and BCE). */
VKT_API vkt_var vkt_graph_softmax_cross_entropy(vkt_graph *g, vkt_var logits, vkt_var labels);
VKT_API vkt_var vkt_graph_mse(vkt_graph *g, vkt_var prediction, vkt_var target);
VKT_API vkt_var vkt_graph_bce_with_logits(vkt_graph *g, vkt_var logits, vkt_var target);

typedef struct vkt_var_info {
    int32_t ndim;
    int64_t dims[VKT_MAX_DIMS];
    const char *name;
    bool is_parameter, is_input;
} vkt_var_info;
VKT_API vkt_result vkt_graph_query_var(const vkt_graph *g, vkt_var var, vkt_var_info *out_info);
/* Finds a variable by name ("fc1.weight"); 0 when absent. */
VKT_API vkt_var vkt_graph_find(const vkt_graph *g, const char *name);

/* ---- Models: a compiled graph with its optimizer ---- */

typedef struct vkt_model vkt_model;

typedef enum vkt_optimizer_type {
    VKT_OPTIMIZER_ADAM = 0, /* torch.optim.Adam */
    VKT_OPTIMIZER_ADAMW,    /* torch.optim.AdamW */
    VKT_OPTIMIZER_SGD       /* torch.optim.SGD */
} vkt_optimizer_type;

typedef enum vkt_schedule_type {
    VKT_SCHEDULE_CONSTANT = 0,
    VKT_SCHEDULE_STEP,   /* lr * gamma^floor(step / step_size), as StepLR per step */
    VKT_SCHEDULE_COSINE  /* linear warm-up, then cosine from lr down to min_lr */
} vkt_schedule_type;

typedef struct vkt_optimizer_desc {
    vkt_optimizer_type type;
    float lr;           /* 0: 1e-3 for Adam/AdamW, 1e-2 for SGD */
    float beta1, beta2; /* 0: 0.9, 0.999 */
    float eps;          /* 0: 1e-8 */
    float weight_decay; /* 0 for Adam/SGD; AdamW's 0 means 1e-2 unless no_weight_decay */
    bool no_weight_decay; /* force 0 for AdamW */
    float momentum, dampening; /* SGD */
    bool nesterov;             /* SGD */
    float clip_grad_norm;      /* > 0: clip the global gradient norm to this */
    vkt_schedule_type schedule;
    uint32_t warmup_steps;     /* cosine: linear warm-up from 0 */
    uint32_t total_steps;      /* cosine: steps until min_lr */
    float min_lr;              /* cosine floor */
    uint32_t step_size;        /* step schedule */
    float gamma;               /* step schedule; 0: 0.1 */
} vkt_optimizer_desc;

typedef struct vkt_model_desc {
    vkt_var loss; /* a loss variable of the graph */
    vkt_optimizer_desc optimizer;
    /* The model runs a linear layer's matmul, bias add and a ReLU after it
     * as one kernel where nothing else reads the tensors between them; those
     * tensors then do not exist (vkt_model_read refuses them). true keeps
     * every node as built. */
    bool no_fusion;
} vkt_model_desc;

/* Compiles `graph` for training `loss`. The graph may be destroyed after. */
VKT_API vkt_result vkt_model_create(vkt_graph *graph, const vkt_model_desc *desc,
                                    vkt_model **out_model);
VKT_API void vkt_model_destroy(vkt_model *model); /* accepts NULL */

/* Host data for one input variable; count must equal its element count. */
typedef struct vkt_feed {
    vkt_var var;
    const float *data;
    size_t count;
} vkt_feed;

/* One training step: uploads the feeds (every input must be fed), runs
 * forward, loss, backward and the optimizer as one submit of the recorded
 * command buffer, and returns the loss (may be NULL). A NaN or Inf loss
 * returns VKT_ERROR_NON_FINITE naming the step; the step has been applied by
 * then (see check mode below for finding the node that produced it). After
 * VKT_ERROR_DEVICE_LOST every later call that needs the device fails the
 * same way at once: destroy the context and start again from a checkpoint. */
VKT_API vkt_result vkt_model_step(vkt_model *model, const vkt_feed *feeds, uint32_t feed_count,
                                  float *out_loss);
/* Forward only (dropout off, no update) with the evaluation command buffer;
 * returns the loss; read outputs (e.g. logits) with vkt_model_read after. */
VKT_API vkt_result vkt_model_evaluate(vkt_model *model, const vkt_feed *feeds,
                                      uint32_t feed_count, float *out_loss);
/* Copies a variable's current value (a parameter, or a tensor computed by the
 * last step or evaluation) to host memory. */
VKT_API vkt_result vkt_model_read(vkt_model *model, vkt_var var, float *out, size_t count);
/* Overwrites a parameter (e.g. loaded weights). */
VKT_API vkt_result vkt_model_write(vkt_model *model, vkt_var var, const float *data,
                                   size_t count);

typedef struct vkt_model_info {
    uint32_t forward_nodes, backward_nodes, optimizer_nodes;
    uint32_t dispatches_per_step; /* kernels in the recorded step */
    uint32_t barriers_per_step;   /* pipeline barriers between them */
    uint32_t submits_per_step;    /* always 1 */
    uint64_t step;                /* steps taken */
    uint64_t parameter_count;     /* trainable floats */
    uint64_t planned_bytes;       /* arena after lifetime-based reuse */
    uint64_t unplanned_bytes;     /* sum of all transient tensors */
    uint64_t persistent_bytes;    /* parameters, gradients, optimizer state */
} vkt_model_info;
VKT_API vkt_result vkt_model_query(const vkt_model *model, vkt_model_info *out_info);
VKT_API const char *vkt_model_last_error(const vkt_model *model);

/* Check mode (also VKT_CHECK=1 on every step): runs one training step node by
 * node on the model's device, and runs every node again through the CPU
 * reference on the very same inputs, reporting each node whose output
 * differs beyond tolerance. The step is really taken (weights update).
 *
 * It also finds where NaN or Inf began: the first node, in step order,
 * whose output holds a non-finite value although everything it read was
 * finite (non_finite_node), or, when the first non-finite value was already
 * there before the step, that value (non_finite_input: a fed input, or a
 * parameter or optimizer state that an earlier step broke). With VKT_CHECK=1
 * vkt_model_step then returns VKT_ERROR_NON_FINITE naming it.
 *
 * After vkt_model_step reports a non-finite loss the step has been applied,
 * so the weights hold its NaN or Inf: reload the last checkpoint
 * (vkt_model_load) and repeat that step's batch with vkt_model_check (or
 * VKT_CHECK=1) to see which node produced it. */
typedef struct vkt_check_entry {
    char node[64];
    const char *op;
    double max_abs_error, max_rel_error;
} vkt_check_entry;
typedef struct vkt_check_report {
    uint32_t nodes_checked;
    uint32_t failures; /* entries filled: min(failures, 32) */
    vkt_check_entry entries[32];
    uint32_t non_finite_nodes;  /* nodes that wrote a NaN or Inf, wherever it came from */
    char non_finite_node[64];   /* where it began ("" if nowhere) */
    const char *non_finite_op;  /* that node's op, or NULL */
    char non_finite_output[64]; /* that node's first non-finite output */
    char non_finite_input[64];  /* or: the value non-finite before the step ("" if none) */
} vkt_check_report;
VKT_API vkt_result vkt_model_check(vkt_model *model, const vkt_feed *feeds, uint32_t feed_count,
                                   vkt_check_report *out_report);

/* Profiling (also VKT_PROFILE=1, see below): runs one training step, really
 * taken like vkt_model_step, as its own command buffer with a device
 * timestamp after every barrier and after every dispatch, and reports where
 * the time went: per node (its dispatches plus the barriers and idle time
 * just before them, so the nodes' times add up to device_ms), per kernel,
 * and the share outside kernels (barriers, launches, idle). On the CPU
 * backends each node is timed with the host clock instead. A queue without
 * timestamps gives VKT_ERROR_UNSUPPORTED.
 *
 * VKT_PROFILE=1 profiles the third step of every model (the first two warm
 * caches up) and sends the table (vkt_profile_format) to the log callback at
 * VKT_LOG_INFO, line by line; VKT_PROFILE=<file> appends it to that file. */
#define VKT_PROFILE_MAX_NODES 256
#define VKT_PROFILE_MAX_KERNELS 64
typedef struct vkt_profile_node {
    char node[64];
    const char *op;
    const char *kernel;   /* the first kernel it dispatched ("" on the CPU backend) */
    uint32_t dispatches;
    double ms;            /* its dispatches and the gaps (barriers, idle) before them */
    double kernel_ms;     /* its dispatches alone */
} vkt_profile_node;
typedef struct vkt_profile_kernel {
    const char *kernel;   /* shader name (op name on the CPU backend) */
    uint32_t dispatches;
    double ms;
} vkt_profile_kernel;
typedef struct vkt_profile_report {
    bool device_timestamps; /* false: host clock per node (CPU backend) */
    double wall_ms;         /* host: submit to fence of the profiled step */
    double device_ms;       /* first to last timestamp: sum of nodes' ms + tail_ms */
    double kernels_ms;      /* sum of the dispatches' own times */
    double idle_ms;         /* device_ms - kernels_ms: barriers, launches, idle */
    double tail_ms;         /* after the last dispatch */
    uint32_t dispatches, barriers;
    float loss;             /* the step's loss */
    uint32_t node_count;    /* nodes in the step; nodes[] holds the first VKT_PROFILE_MAX_NODES */
    vkt_profile_node nodes[VKT_PROFILE_MAX_NODES];
    uint32_t kernel_count;  /* kernels[] sorted by time, the slowest first */
    vkt_profile_kernel kernels[VKT_PROFILE_MAX_KERNELS];
} vkt_profile_report;
VKT_API vkt_result vkt_model_profile(vkt_model *model, const vkt_feed *feeds, uint32_t feed_count,
                                     vkt_profile_report *out_report);
/* Writes the report as a text table (nodes, kernels, totals) into buf (may
 * be NULL when size is 0) and returns the length of the whole table, as
 * snprintf does. */
VKT_API size_t vkt_profile_format(const vkt_profile_report *report, char *buf, size_t size);

/* ---- Checkpoints ----
 * A checkpoint is a safetensors file (8-byte little-endian header length, a
 * JSON header, then the raw little-endian data) that holds what resuming
 * training needs: every parameter under its graph name ("fc1.weight"), every
 * optimizer state tensor ("fc1.weight.exp_avg" and "fc1.weight.exp_avg_sq"
 * for Adam/AdamW, "fc1.weight.momentum" for SGD), all F32 with their shapes,
 * and string metadata: "format": "vktrain", "step" (steps taken: the bias
 * corrections, the learning-rate schedule and dropout masks depend on it),
 * "epoch", and the caller's own pairs (a batcher's state, the optimizer type,
 * ...). Any safetensors reader can open it (tools/read_checkpoint.py shows
 * one in a few lines of Python).
 *
 *     vkt_batcher_info bi;
 *     vkt_batcher_query(batches, &bi);
 *     char pos[64];
 *     snprintf(pos, sizeof pos, "%llu", (unsigned long long)bi.state.position);
 *     vkt_model_save(model, "run.safetensors", &(vkt_checkpoint_desc){
 *         .epoch = bi.state.epoch, .metadata_count = 1,
 *         .metadata = (vkt_checkpoint_entry[]){{"batcher.position", pos}}});
 *     ...
 *     vkt_checkpoint_info info;
 *     if (vkt_model_load(model, "run.safetensors", &info) != VKT_OK)
 *         fprintf(stderr, "%s\n", vkt_model_last_error(model));
 *     const char *p = vkt_checkpoint_info_find(&info, "batcher.position");
 */

#define VKT_CHECKPOINT_MAX_METADATA 32 /* pairs in a file vktrain writes, with the 3 reserved */
#define VKT_CHECKPOINT_KEY_SIZE 64     /* bytes of a key, with its NUL */
#define VKT_CHECKPOINT_VALUE_SIZE 256  /* bytes of a value, with its NUL */

/* A metadata pair to save; both strings are copied into the file. */
typedef struct vkt_checkpoint_entry {
    const char *key;
    const char *value;
} vkt_checkpoint_entry;

typedef struct vkt_checkpoint_desc {
    uint64_t epoch; /* stored as "epoch" */
    const vkt_checkpoint_entry *metadata;
    uint32_t metadata_count;
} vkt_checkpoint_desc;

typedef struct vkt_checkpoint_pair {
    char key[VKT_CHECKPOINT_KEY_SIZE];
    char value[VKT_CHECKPOINT_VALUE_SIZE];
} vkt_checkpoint_pair;

typedef struct vkt_checkpoint_info {
    uint64_t step;  /* restored into the model */
    uint64_t epoch;
    uint32_t tensor_count;
    uint32_t metadata_count;   /* pairs filled, in file order, reserved ones included */
    uint32_t metadata_skipped; /* pairs of the file that did not fit (too many, too long) */
    vkt_checkpoint_pair metadata[VKT_CHECKPOINT_MAX_METADATA];
} vkt_checkpoint_info;

/* Writes the model's parameters, optimizer state, step count, desc->epoch
 * and desc->metadata (desc may be NULL) to `path` as a safetensors file,
 * without changing the model. The file is replaced atomically: written to
 * "<path>.tmp-<pid>-<n>", flushed to disk, renamed over path and the
 * directory synced, so a crash at any moment leaves either the old complete
 * file or the new one (a killed writer may leave its temporary file
 * behind). Keys must be non-empty, unique, none of "format", "step",
 * "epoch", and shorter than VKT_CHECKPOINT_KEY_SIZE; values shorter than
 * VKT_CHECKPOINT_VALUE_SIZE; both valid UTF-8; at most
 * VKT_CHECKPOINT_MAX_METADATA - 3 pairs: so vkt_model_load returns them all
 * (VKT_ERROR_INVALID_ARGUMENT otherwise). A model two of whose tensors
 * share a name (names are cut at 63 bytes) can be neither saved nor loaded
 * (VKT_ERROR_INVALID_ARGUMENT). A file system error gives VKT_ERROR_IO
 * naming the path and the system's reason. */
VKT_API vkt_result vkt_model_save(vkt_model *model, const char *path,
                                  const vkt_checkpoint_desc *desc);

/* Reads a checkpoint into the model: parameters, optimizer state and the
 * step count, so training continues exactly as if it had not stopped. The
 * whole file is checked before the model is touched, and on any error the
 * model is left unchanged (a device failure while the checked values are
 * being copied in is the one exception):
 *   VKT_ERROR_IO            the file cannot be opened or read;
 *   VKT_ERROR_CORRUPT_DATA  anything malformed, inconsistent or truncated
 *                           (header length, JSON, offsets that do not tile
 *                           the data section, a bad "step"): the message
 *                           names the file and the byte offset at fault;
 *   VKT_ERROR_UNSUPPORTED   a tensor that is not F32;
 *   VKT_ERROR_SHAPE         the file does not fit the model: a parameter or
 *                           state tensor of the model is missing, has another
 *                           shape (both shapes named), or the file holds a
 *                           tensor the model does not have (e.g. SGD's
 *                           momentum offered to an Adam model).
 * A file without "step" or "epoch" metadata (written by another tool) gives
 * 0 for them. out_info (may be NULL) receives the step, epoch and metadata. */
VKT_API vkt_result vkt_model_load(vkt_model *model, const char *path,
                                  vkt_checkpoint_info *out_info);

/* The value of `key` in a loaded checkpoint's metadata, or NULL. */
VKT_API const char *vkt_checkpoint_info_find(const vkt_checkpoint_info *info, const char *key);

/* ---- Data sets ------------------------------------------------------------------ */
/* A vkt_dataset holds N labelled samples in host memory: f32 features
 * (count, sample dims...) and f32 labels (count) that hold class indices
 * 0..classes-1, ready to be copied batch by batch into tensors. A vkt_batcher
 * walks a data set in batches, shuffled per epoch in an order that depends
 * only on the seed (the same on every machine), optionally preparing the next
 * batch on a background thread while the caller trains on the current one.
 *
 *     vkt_dataset *train;
 *     if (vkt_dataset_load_fashion_mnist(&(vkt_fashion_mnist_desc){0}, &train) != VKT_OK)
 *         fprintf(stderr, "%s\n", vkt_last_error());
 *     vkt_batcher *batches;
 *     vkt_batcher_create(train, &(vkt_batcher_desc){ .batch_size = 64, .seed = 1,
 *                        .drop_last = true, .prefetch = true }, &batches);
 *     for (uint64_t step = 0; step < steps; step++) {
 *         vkt_batch batch;
 *         vkt_batcher_next_view(batches, &batch);
 *         vkt_tensor_upload(x, batch.features, batch.count * sample_size);
 *         ...
 *     }
 *     vkt_batcher_destroy(batches);
 *     vkt_dataset_destroy(train);
 *
 * None of these calls needs a context: a failure's message is in
 * vkt_last_error(). A data set is immutable once made, so several threads
 * and batchers may read it at once; it must outlive its batchers. A batcher
 * is externally synchronized (its prefetch thread is its own business).
 *
 * IDX FILES
 *   The MNIST container: 4 magic bytes (0, 0, type, ndim), ndim big-endian
 *   u32 dimensions, then the elements row-major. vktrain reads unsigned-byte
 *   files (type 0x08): images (count, ...) with 1 to 3 sample dimensions
 *   (magic 0x00000802 to 0x00000804) and labels (count) (magic 0x00000801),
 *   gzip'd or plain. Everything in a file is checked before it is trusted;
 *   files that declare more than 4 GiB of data are refused. Errors:
 *   VKT_ERROR_IO for a missing or unreadable file, VKT_ERROR_UNSUPPORTED for
 *   a valid IDX file of another element type, VKT_ERROR_CORRUPT_DATA for
 *   anything malformed or truncated (including a damaged gzip stream, image
 *   and label counts that differ, a label not below the class count). The
 *   message names the file and the byte offset at fault; for a gzip'd file
 *   the offset counts decompressed bytes (for damage inside the compressed
 *   stream it is where decompression failed, within 64 KiB of the fault).
 */

/* Up to 3 sample dimensions, so a batch (B, sample dims...) fits a tensor. */
#define VKT_MAX_SAMPLE_DIMS (VKT_MAX_DIMS - 1)

/* Mean and standard deviation over all pixels of the Fashion-MNIST
 * training images scaled to [0, 1]: pass them as mean/std to standardise. */
#define VKT_FASHION_MNIST_MEAN 0.28604060f
#define VKT_FASHION_MNIST_STD 0.35302424f

typedef struct vkt_dataset vkt_dataset;

typedef struct vkt_idx_desc {
    const char *images_path; /* IDX images file, gzip'd or plain */
    const char *labels_path; /* IDX labels file with as many entries */
    /* Pixels p become p / 255 in [0, 1]; with std > 0 then (p / 255 - mean)
     * / std. std 0 (the default) leaves them in [0, 1]. */
    float mean, std;
    bool flatten;     /* sample shape (H * W) instead of (1, H, W) */
    uint32_t classes; /* 0: the largest label + 1; else every label must be below it */
} vkt_idx_desc;

/* Loads an image/label pair of IDX files into a new data set. Samples of
 * 2-D images (H, W) get the shape (1, H, W) (one channel, ready for
 * convolutions) or (H * W) with flatten; other sample shapes are kept. */
VKT_API vkt_result vkt_dataset_load_idx(const vkt_idx_desc *desc, vkt_dataset **out_dataset);

typedef struct vkt_fashion_mnist_desc {
    /* The folder holding the four files (train-images-idx3-ubyte.gz ...;
     * gunzipped copies without .gz are found too). NULL: $VKT_DATA_DIR/
     * fashion-mnist if VKT_DATA_DIR is set, else /usr/share/datasets/
     * fashion-mnist, where Debian's dataset-fashion-mnist package puts it. */
    const char *dir;
    bool test;    /* the 10000-image test split instead of the 60000 training images */
    float mean, std; /* as in vkt_idx_desc; VKT_FASHION_MNIST_MEAN/_STD standardise */
    bool flatten;    /* samples (784) instead of (1, 28, 28) */
} vkt_fashion_mnist_desc;

/* Loads Fashion-MNIST (10 classes of 28x28 grey clothing images). A missing
 * file gives VKT_ERROR_IO with its path and how to install the data. */
VKT_API vkt_result vkt_dataset_load_fashion_mnist(const vkt_fashion_mnist_desc *desc,
                                                  vkt_dataset **out_dataset);

typedef struct vkt_dataset_desc {
    uint32_t count;                               /* samples, >= 1 */
    int32_t sample_ndim;                          /* 1 to VKT_MAX_SAMPLE_DIMS */
    int64_t sample_dims[VKT_MAX_SAMPLE_DIMS];     /* each >= 1 */
    uint32_t classes;                             /* 0: the largest label + 1 */
    const float *features; /* (count, sample dims...): finite values, copied */
    const float *labels;   /* (count): whole numbers 0..classes-1, copied */
} vkt_dataset_desc;

/* Makes a data set from the caller's own samples (both arrays are copied).
 * Non-finite features give VKT_ERROR_NON_FINITE, a label that is not a
 * class index VKT_ERROR_INVALID_ARGUMENT naming its sample. */
VKT_API vkt_result vkt_dataset_create(const vkt_dataset_desc *desc, vkt_dataset **out_dataset);

/* A new, independent data set holding samples first..first+count-1 of ds
 * (e.g. the first 1000 for a quick test, or a validation split), with ds's
 * class count. */
VKT_API vkt_result vkt_dataset_subset(const vkt_dataset *ds, uint32_t first, uint32_t count,
                                      vkt_dataset **out_dataset);

/* Frees the data set. Accepts NULL. Its batchers must be destroyed first. */
VKT_API void vkt_dataset_destroy(vkt_dataset *ds);

typedef struct vkt_dataset_info {
    uint32_t count;
    int32_t sample_ndim;
    int64_t sample_dims[VKT_MAX_SAMPLE_DIMS];
    size_t sample_size;    /* floats per sample: the product of sample_dims */
    uint32_t classes;
    const float *features; /* (count, sample_size), valid while ds lives */
    const float *labels;   /* (count) */
} vkt_dataset_info;

VKT_API vkt_result vkt_dataset_query(const vkt_dataset *ds, vkt_dataset_info *out_info);

/* ---- Batches ---- */

typedef struct vkt_batcher vkt_batcher;

typedef struct vkt_batcher_desc {
    uint32_t batch_size; /* 0: 32 */
    /* Order: by default each epoch is a fresh shuffle of the data set that
     * depends only on (seed, epoch): Fisher-Yates over the indices 0..N-1
     * (for i = N-1 down to 1, swap i with j uniform in [0, i], drawn as
     * x % (i+1) from the first splitmix64 output x not below 2^64 mod (i+1))
     * driven by splitmix64 whose state starts at seed ^ splitmix64_mix(epoch),
     * splitmix64_mix being the generator's output function. Identical on
     * every machine and independent of earlier epochs. */
    uint64_t seed;
    bool sequential; /* no shuffling: dataset order every epoch (evaluation) */
    /* Skip an epoch's last batch when it is short, so every batch has
     * batch_size samples (a training graph has a fixed batch dimension). */
    bool drop_last;
    /* Prepare the next batch on a background thread while the caller uses
     * the current one. Batches are identical with and without it. */
    bool prefetch;
} vkt_batcher_desc;

/* Where a batcher is: enough to continue the same sequence of batches
 * later (store it in a checkpoint). */
typedef struct vkt_batcher_state {
    uint64_t seed;
    uint64_t epoch;    /* the epoch the next batch comes from, from 0 */
    uint64_t position; /* samples of that epoch already handed out */
} vkt_batcher_state;

typedef struct vkt_batcher_info {
    vkt_batcher_state state;
    uint32_t batch_size;
    uint64_t batches_per_epoch;
    size_t sample_size;    /* floats per sample */
} vkt_batcher_info;

/* A batch: count samples (batch_size, or fewer for an epoch's last batch
 * without drop_last). Pointers into the batcher, valid until its next
 * next/next_view/restore/destroy call. */
typedef struct vkt_batch {
    const float *features; /* (count, sample_size) */
    const float *labels;   /* (count) */
    uint32_t count;
    uint64_t epoch;        /* which epoch the batch belongs to */
    uint64_t index;        /* which batch of its epoch: position / batch_size */
} vkt_batch;

/* Makes a batcher over ds (borrowed: it must outlive the batcher), at
 * epoch 0 position 0. With drop_last, ds must hold at least one full batch.
 * With prefetch it starts a thread; failing to start one is an error. */
VKT_API vkt_result vkt_batcher_create(const vkt_dataset *ds, const vkt_batcher_desc *desc,
                                      vkt_batcher **out_batcher);

/* Stops the prefetch thread (waiting for a batch in progress) and frees the
 * batcher. Accepts NULL. */
VKT_API void vkt_batcher_destroy(vkt_batcher *b);

/* Copies the next batch into the caller's buffers: features_out holds
 * batch_size * sample_size floats, labels_out batch_size floats; *out_count
 * gets the number of samples written. After an epoch's last batch the next
 * call starts the next epoch: the batcher never runs dry. */
VKT_API vkt_result vkt_batcher_next(vkt_batcher *b, float *features_out, float *labels_out,
                                    uint32_t *out_count);

/* The next batch without copying: *out_batch points into the batcher's own
 * buffer (with prefetch, the other buffer is being filled meanwhile). The
 * same sequence of batches as vkt_batcher_next. */
VKT_API vkt_result vkt_batcher_next_view(vkt_batcher *b, vkt_batch *out_batch);

VKT_API vkt_result vkt_batcher_query(const vkt_batcher *b, vkt_batcher_info *out_info);

/* Moves the batcher to a state read earlier from vkt_batcher_query (say,
 * from a checkpoint): the batches that follow are those that followed then.
 * position must be below the epoch's sample count (N, or with drop_last the
 * last start of a full batch); it need not be a multiple of batch_size. */
VKT_API vkt_result vkt_batcher_restore(vkt_batcher *b, const vkt_batcher_state *state);

#ifdef __cplusplus
}
#endif

#endif /* VKTRAIN_H */
