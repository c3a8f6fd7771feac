/* op.h: the op table, the single source of truth for what vktrain can compute.
 *
 * An op is a shape rule, a CPU reference (plain loops, the oracle) and a
 * Vulkan record function that emits kernel dispatches. Each op family lives in
 * one file in runtime/ops/ with a "CPU reference" and a "Vulkan dispatch"
 * section; its shaders are shaders/<op>*.comp; its tests tests/test_<family>.c.
 */
#ifndef VKT_OP_H
#define VKT_OP_H

#include "../core/internal.h"
#include "kernels.h"

typedef enum vkt_op {
    VKT_OP_MATMUL,
    VKT_OP_MATMUL_BIAS, /* in {A, B, bias (N)} out {C (M, N)}: C = op(A) op(B) + bias, then
                         * max(., 0) if p.matmul.relu; p.matmul as VKT_OP_MATMUL */
    VKT_OP_BIAS_ADD,
    VKT_OP_COLUMN_SUM,
    VKT_OP_ADD,
    VKT_OP_SUB,
    VKT_OP_MUL,
    VKT_OP_SCALE,
    VKT_OP_FILL,
    VKT_OP_RELU,
    VKT_OP_RELU_BWD,
    /* activation ops (activation.c) */
    VKT_OP_LEAKY_RELU,     /* in {x} out {y}; p.leaky_relu */
    VKT_OP_LEAKY_RELU_BWD, /* in {dy, x} out {dx}; p.leaky_relu */
    VKT_OP_SIGMOID,        /* in {x} out {y} */
    VKT_OP_SIGMOID_BWD,    /* in {dy, y} out {dx}: y the forward output */
    VKT_OP_TANH,           /* in {x} out {y} */
    VKT_OP_TANH_BWD,       /* in {dy, y} out {dx}: y the forward output */
    VKT_OP_GELU,           /* in {x} out {y}: tanh approximation */
    VKT_OP_GELU_BWD,       /* in {dy, x} out {dx} */
    VKT_OP_SOFTMAX,        /* in {x (R, C)} out {y}: over the last dim */
    VKT_OP_SOFTMAX_BWD,    /* in {dy, y} out {dx}: y the forward output */
    VKT_OP_DROPOUT,        /* in {x, hyper} out {y}; p.dropout */
    VKT_OP_DROPOUT_BWD,    /* in {dy, hyper} out {dx}; p.dropout, as the forward */
    /* loss and reduction ops (loss.c, reduce.c) */
    VKT_OP_SOFTMAX_CE, /* in {logits (B, C), labels (B)} out {loss (1), dlogits, row_loss (B)} */
    VKT_OP_MSE,        /* in {pred, target} out {loss (1), dpred, row_loss (R)} */
    VKT_OP_BCE_LOGITS, /* in {logits, target} out {loss (1), dlogits, row_loss (R)} */
    /* convolution and pooling ops (conv.c, pool.c) */
    VKT_OP_CONV2D,            /* in {x (B, C, H, W), w (K, C, R, S), bias (K)} out {y (B, K, Ho, Wo)}; p.conv */
    VKT_OP_CONV2D_BWD_INPUT,  /* in {dy, w} out {dx (B, C, in_h, in_w)}; p.conv */
    VKT_OP_CONV2D_BWD_WEIGHT, /* in {dy, x} out {dw (K, C, kernel_h, kernel_w)}; p.conv */
    VKT_OP_CONV2D_BWD_BIAS,   /* in {dy (B, K, Ho, Wo)} out {db (K)} */
    VKT_OP_MAXPOOL2D,         /* in {x (B, C, H, W)} out {y (B, C, Ho, Wo)}; p.pool */
    VKT_OP_MAXPOOL2D_BWD,     /* in {dy, x} out {dx}; p.pool */
    VKT_OP_AVGPOOL2D,         /* in {x (B, C, H, W)} out {y (B, C, Ho, Wo)}; p.pool */
    VKT_OP_AVGPOOL2D_BWD,     /* in {dy} out {dx (B, C, in_h, in_w)}; p.pool */
    /* optimizer ops (optimizer.c) */
    VKT_OP_SGD,          /* in {grad, hyper} out {param, momentum_buf} */
    VKT_OP_ADAM,         /* in {grad, hyper} out {param, m, v} */
    VKT_OP_SUM_SQUARES,  /* in {g} out {acc (1)}: acc (+)= sum(g^2) */
    VKT_OP_CLIP_SCALE,   /* in {sumsq (1)} out {hyper}: writes hyper[GRAD_SCALE] */
    VKT_OP_COUNT
} vkt_op;

#define VKT_NODE_MAX_IN 6
#define VKT_NODE_MAX_OUT 4

/* Per-op parameters; each op reads only its own member. */
typedef union vkt_op_params {
    struct {
        bool transpose_a, transpose_b, accumulate;
        bool relu; /* VKT_OP_MATMUL_BIAS only: ReLU after the bias */
    } matmul;
    struct {
        bool accumulate;
    } reduce;
    struct {
        float value;
    } scalar;
    /* activation params */
    struct {
        float slope; /* y = slope * x for x <= 0; PyTorch's default is 0.01 */
    } leaky_relu;
    struct {
        float rate;    /* probability of zeroing an element, in [0, 1] */
        uint32_t seed; /* the mask is a hash of (seed, hyper[VKT_HYPER_STEP], index) */
    } dropout;
    /* loss params */
    /* convolution and pooling params */
    /* Both axes share stride and pad; stride 0 means 1. conv2d reads
     * stride, pad; conv2d_bwd_input also in_h, in_w (the forward input's
     * size, ambiguous from dy when stride > 1); conv2d_bwd_weight also
     * kernel_h, kernel_w; conv2d_bwd_bias nothing. */
    struct {
        uint32_t stride, pad, kernel_h, kernel_w, in_h, in_w;
    } conv;
    /* Floor mode, no padding. kernel 0 means 2, stride 0 means kernel (as
     * PyTorch's stride=None). The forwards read kernel, stride; the
     * backwards also in_h, in_w (dx's size; maxpool2d_bwd takes 0 as x's
     * size). */
    struct {
        uint32_t kernel, stride, in_h, in_w;
    } pool;
    /* optimizer params */
    struct {
        float momentum, dampening, weight_decay; /* lr comes from hyper */
        bool nesterov;
    } sgd;
    struct {
        float beta1, beta2, eps, weight_decay; /* lr comes from hyper */
        bool decoupled; /* AdamW: decay the parameter, not the gradient */
    } adam;
    struct {
        float max_norm;
    } clip; /* VKT_OP_CLIP_SCALE; VKT_OP_SUM_SQUARES uses reduce.accumulate */
} vkt_op_params;

/* The per-step hyperparameter buffer: a small f32 device tensor the host
 * rewrites before every step (inside the recorded command buffer, from
 * staging), so learning-rate schedules and bias corrections change every
 * step without re-recording. Ops that need them take it as an input. */
enum {
    VKT_HYPER_LR = 0,       /* learning rate of this step */
    VKT_HYPER_BIAS1 = 1,    /* 1 - beta1^t (Adam bias correction) */
    VKT_HYPER_BIAS2 = 2,    /* 1 - beta2^t */
    VKT_HYPER_STEP = 3,     /* t, 1-based, exact up to 2^24 */
    VKT_HYPER_GRAD_SCALE = 4, /* 1, or the clip factor written on device */
    VKT_HYPER_COUNT = 8
};

typedef struct vkt_node {
    vkt_op op;
    const char *name; /* for error messages: a graph node's or a tensor's */
    uint32_t nin, nout;
    const vkt_value *in[VKT_NODE_MAX_IN];
    const vkt_value *out[VKT_NODE_MAX_OUT];
    vkt_op_params p;
} vkt_node;

/* The Vulkan backend's recorder; ops only call the functions below. */
typedef struct vkt_recorder vkt_recorder;

/* Device-chosen launch parameters (from the device's limits), passed to
 * kernels as specialization constants. */
typedef struct vkt_tuning {
    uint32_t subgroup_size;
    uint32_t workgroup_1d;  /* elementwise kernels */
    uint32_t matmul_variant;           /* VKT_MATMUL_*: which kernel the matmul ops run */
    uint32_t matmul_wg_x, matmul_wg_y; /* invocations per workgroup */
    uint32_t matmul_tm, matmul_tn;     /* outputs per invocation (rows, cols); not REG */
    uint32_t matmul_tile_k;            /* TILED: K slice staged in shared memory */
    uint32_t matmul_vec4;              /* REG: read operands 4 floats at a time (else 1) */
    uint32_t reduce_wg;               /* column-sum workgroup, and a row's in row kernels */
    /* Row kernels (softmax, losses) give each row of at most this many
     * columns one invocation instead of a workgroup. */
    uint32_t row_per_invocation_cols;
    /* conv2d: the implicit-GEMM kernels (forward, input gradient, and the
     * weight gradient's subgroup kernel) give a workgroup of conv_wg
     * invocations conv_tm channels and each invocation conv_tn pixels;
     * conv_subgroup > 0 selects their variants where that many invocations
     * share loads through subgroup shuffles (CPU devices). The plain
     * weight gradient gives a conv_reduce_wg workgroup a conv_dw_tile
     * square block and work units of conv_batch_chunk images; the bias
     * gradient uses conv_reduce_wg too. */
    uint32_t conv_wg, conv_tm, conv_tn, conv_subgroup;
    uint32_t conv_reduce_wg, conv_dw_tile, conv_batch_chunk;
} vkt_tuning;

const vkt_tuning *vkt_recorder_tuning(const vkt_recorder *rec);

/* One kernel dispatch. views[i] is bound at binding i; bit i of write_mask
 * says the kernel writes binding i (the recorder uses this to place only the
 * barriers that are needed). Bindings are storage buffers, except where bit
 * i of texel_mask is set: a read-only uniform texel buffer (GLSL
 * samplerBuffer), viewed as R32G32B32A32_SFLOAT where bit i of
 * texel_vec4_mask is set (texelFetch gives 4 consecutive floats; the view
 * must start 16-byte aligned) and R32_SFLOAT otherwise. Texel bindings need
 * vkt_recorder_texel_ok first: CPU drivers fetch texels with vector gathers
 * where they load storage buffers lane by lane. */
typedef struct vkt_dispatch {
    vkt_kernel kernel;
    const uint32_t *spec; /* specialization constants 0..spec_count-1 */
    uint32_t spec_count;
    const vkt_view *views[VKT_NODE_MAX_IN + VKT_NODE_MAX_OUT];
    uint32_t view_count;
    uint32_t write_mask;
    uint32_t texel_mask, texel_vec4_mask;
    const void *push;
    uint32_t push_size;
    uint32_t groups[3];
} vkt_dispatch;

void vkt_record_dispatch(vkt_recorder *rec, const vkt_dispatch *dispatch);
/* Whether `view` can be bound as a uniform texel buffer of R32G32B32A32
 * (vec4) or R32 texels on this device: format support, the offset
 * alignment and maxTexelBufferElements. */
bool vkt_recorder_texel_ok(const vkt_recorder *rec, const vkt_view *view, bool vec4);

typedef struct vkt_op_def {
    const char *name;
    uint32_t nin, nout;
    /* Checks the inputs' shapes and writes the output shapes. On a mismatch
     * writes a message (naming operands by role) to err and returns
     * VKT_ERROR_SHAPE. Outputs that already have a shape (accumulating
     * ops) are passed in out_shapes as given. */
    vkt_result (*infer)(const vkt_node *node, vkt_shape *out_shapes, char *err, size_t err_size);
    void (*cpu)(const vkt_node *node);
    void (*record)(const vkt_node *node, vkt_recorder *rec);
} vkt_op_def;

const vkt_op_def *vkt_op_get(vkt_op op);

/* Op definitions, one per op family file. */
extern const vkt_op_def vkt_op_matmul_def, vkt_op_matmul_bias_def;
/* Records C (M, N) = op(A) op(B) with the device's fastest matmul kernel, for
 * ops that compute a matmul on raw views (im2col convolutions): flags are
 * VKT_MATMUL_FLAG_*, bias (N floats) is read with VKT_MATMUL_FLAG_BIAS and
 * may be NULL otherwise. Element (m, k) of op(A) is at a[m * K + k], or at
 * a[k * M + m] with transpose_a; likewise for B. */
void vkt_record_matmul(vkt_recorder *rec, const vkt_view *a, const vkt_view *b,
                       const vkt_view *bias, const vkt_view *c, uint32_t M, uint32_t N,
                       uint32_t K, bool transpose_a, bool transpose_b, uint32_t flags);
extern const vkt_op_def vkt_op_bias_add_def, vkt_op_column_sum_def;
extern const vkt_op_def vkt_op_add_def, vkt_op_sub_def, vkt_op_mul_def;
extern const vkt_op_def vkt_op_scale_def, vkt_op_fill_def;
extern const vkt_op_def vkt_op_relu_def, vkt_op_relu_bwd_def;
/* activation op defs */
extern const vkt_op_def vkt_op_leaky_relu_def, vkt_op_leaky_relu_bwd_def;
extern const vkt_op_def vkt_op_sigmoid_def, vkt_op_sigmoid_bwd_def;
extern const vkt_op_def vkt_op_tanh_def, vkt_op_tanh_bwd_def;
extern const vkt_op_def vkt_op_gelu_def, vkt_op_gelu_bwd_def;
extern const vkt_op_def vkt_op_softmax_def, vkt_op_softmax_bwd_def;
extern const vkt_op_def vkt_op_dropout_def, vkt_op_dropout_bwd_def;
/* loss op defs */
extern const vkt_op_def vkt_op_softmax_ce_def, vkt_op_mse_def, vkt_op_bce_logits_def;
/* Records out[0] (one float) = scale * sum of in (n floats) as one workgroup
 * (deterministic order; for short vectors such as per-row losses). */
void vkt_record_reduce_sum(vkt_recorder *rec, const vkt_view *in, uint32_t n,
                           const vkt_view *out, float scale);
/* The CPU counterpart's sum: in order, in double. */
double vkt_cpu_sum(const float *in, int64_t n);
/* convolution and pooling op defs */
extern const vkt_op_def vkt_op_conv2d_def, vkt_op_conv2d_bwd_input_def;
extern const vkt_op_def vkt_op_conv2d_bwd_weight_def, vkt_op_conv2d_bwd_bias_def;
extern const vkt_op_def vkt_op_maxpool2d_def, vkt_op_maxpool2d_bwd_def;
extern const vkt_op_def vkt_op_avgpool2d_def, vkt_op_avgpool2d_bwd_def;
/* optimizer op defs */
extern const vkt_op_def vkt_op_sgd_def, vkt_op_adam_def;
extern const vkt_op_def vkt_op_sum_squares_def, vkt_op_clip_scale_def;

/* Helpers for op files. */
uint32_t vkt_div_up(uint64_t n, uint32_t d);
/* Number of workgroups along x (and y when x would exceed the device's
 * limit) for n items in groups of `wg`; writes groups[0..1]. */
void vkt_grid_1d(uint64_t n, uint32_t wg, uint32_t groups[3]);

/* The launch of a row kernel (shaders/row_kernel.glsl) over rows x cols:
 * writes its spec constants {workgroup size, ROW_PER_INVOCATION} and grid. */
void vkt_row_grid(const vkt_tuning *t, uint32_t rows, uint32_t cols, uint32_t spec[2],
                  uint32_t groups[3]);
/* Records a kernel that maps node->in[0..nin) to node->out[0] element by
 * element over out[0]'s element count, with push {n, p.scalar.value} and
 * spec {workgroup_1d, variant}. */
void vkt_record_pointwise(const vkt_node *node, vkt_recorder *rec, vkt_kernel kernel,
                          uint32_t variant);
/* As vkt_record_pointwise for kernels with a VEC4 path (specialization
 * constant 2, see shaders/relu_fwd.comp): 4 elements per invocation where
 * every view starts 16-byte aligned. */
void vkt_record_pointwise_vec4(const vkt_node *node, vkt_recorder *rec, vkt_kernel kernel,
                               uint32_t variant);

#endif
