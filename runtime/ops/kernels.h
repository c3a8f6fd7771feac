/* kernels.h: the compute kernels (one per shader) and their push-constant
 * structs. Each struct is mirrored field by field in its shader; the
 * _Static_asserts catch a C-side change that forgets the GLSL side. */
#ifndef VKT_KERNELS_H
#define VKT_KERNELS_H

#include <stdint.h>

typedef enum vkt_kernel {
    VKT_KERNEL_MATMUL,             /* shaders/matmul.comp */
    VKT_KERNEL_MATMUL_REG,         /* shaders/matmul_reg.comp */
    VKT_KERNEL_MATMUL_REG_SSBO,    /* shaders/matmul_reg_ssbo.comp */
    VKT_KERNEL_MATMUL_TILED,       /* shaders/matmul_tiled.comp */
    VKT_KERNEL_BIAS_ADD,           /* shaders/bias_add.comp */
    VKT_KERNEL_COLUMN_SUM,         /* shaders/column_sum.comp */
    VKT_KERNEL_ELEMENTWISE_BINARY, /* shaders/elementwise_binary.comp */
    VKT_KERNEL_ELEMENTWISE_UNARY,  /* shaders/elementwise_unary.comp */
    VKT_KERNEL_RELU_FWD,           /* shaders/relu_fwd.comp */
    VKT_KERNEL_RELU_BWD,           /* shaders/relu_bwd.comp */
    /* activation kernels */
    VKT_KERNEL_LEAKY_RELU_FWD,     /* shaders/leaky_relu_fwd.comp */
    VKT_KERNEL_LEAKY_RELU_BWD,     /* shaders/leaky_relu_bwd.comp */
    VKT_KERNEL_SIGMOID_FWD,        /* shaders/sigmoid_fwd.comp */
    VKT_KERNEL_SIGMOID_BWD,        /* shaders/sigmoid_bwd.comp */
    VKT_KERNEL_TANH_FWD,           /* shaders/tanh_fwd.comp */
    VKT_KERNEL_TANH_BWD,           /* shaders/tanh_bwd.comp */
    VKT_KERNEL_GELU_FWD,           /* shaders/gelu_fwd.comp */
    VKT_KERNEL_GELU_BWD,           /* shaders/gelu_bwd.comp */
    VKT_KERNEL_SOFTMAX_FWD,        /* shaders/softmax_fwd.comp */
    VKT_KERNEL_SOFTMAX_BWD,        /* shaders/softmax_bwd.comp */
    VKT_KERNEL_DROPOUT,            /* shaders/dropout.comp (both directions) */
    /* loss kernels */
    VKT_KERNEL_SOFTMAX_CE,         /* shaders/softmax_ce.comp */
    VKT_KERNEL_MSE,                /* shaders/mse.comp */
    VKT_KERNEL_BCE_LOGITS,         /* shaders/bce_logits.comp */
    VKT_KERNEL_REDUCE_SUM,         /* shaders/reduce_sum.comp */
    /* convolution and pooling kernels */
    VKT_KERNEL_CONV2D_FWD,         /* shaders/conv2d_fwd.comp */
    VKT_KERNEL_CONV2D_FWD_SUBGROUP, /* shaders/conv2d_fwd_subgroup.comp */
    VKT_KERNEL_CONV2D_BWD_INPUT,   /* shaders/conv2d_bwd_input.comp */
    VKT_KERNEL_CONV2D_BWD_INPUT_SUBGROUP, /* shaders/conv2d_bwd_input_subgroup.comp */
    VKT_KERNEL_CONV2D_BWD_WEIGHT,  /* shaders/conv2d_bwd_weight.comp */
    VKT_KERNEL_CONV2D_BWD_WEIGHT_SUBGROUP, /* shaders/conv2d_bwd_weight_subgroup.comp */
    VKT_KERNEL_CONV2D_BWD_BIAS,    /* shaders/conv2d_bwd_bias.comp */
    VKT_KERNEL_MAXPOOL2D_FWD,      /* shaders/maxpool2d_fwd.comp */
    VKT_KERNEL_MAXPOOL2D_BWD,      /* shaders/maxpool2d_bwd.comp */
    VKT_KERNEL_AVGPOOL2D_FWD,      /* shaders/avgpool2d_fwd.comp */
    VKT_KERNEL_AVGPOOL2D_BWD,      /* shaders/avgpool2d_bwd.comp */
    /* optimizer kernels */
    VKT_KERNEL_SGD,                /* shaders/sgd.comp */
    VKT_KERNEL_ADAM,               /* shaders/adam.comp */
    VKT_KERNEL_SUM_SQUARES,        /* shaders/sum_squares.comp */
    VKT_KERNEL_CLIP_SCALE,         /* shaders/clip_scale.comp */
    VKT_KERNEL_COUNT
} vkt_kernel;

/* Specialization constant 0 is always the workgroup's local_size_x. */

/* matmul_*: C (M, N) = op(A) op(B) [+ C] [+ bias], [ReLU]. Element (m, k) of
 * op(A) is at a[m * a_stride_m + k * a_stride_k]; likewise for B. Bindings:
 * 0 A, 1 B, 2 bias (N; any readable view when unused), 3 C. */
typedef struct vkt_matmul_push {
    uint32_t m, n, k;
    uint32_t a_stride_m, a_stride_k;
    uint32_t b_stride_k, b_stride_n;
    uint32_t flags; /* VKT_MATMUL_FLAG_* */
} vkt_matmul_push;
_Static_assert(sizeof(vkt_matmul_push) == 32, "mirror in shaders/matmul*.comp");
/* The epilogue, in this order: C_old added, bias added, ReLU. */
enum { VKT_MATMUL_FLAG_ACCUMULATE = 1, VKT_MATMUL_FLAG_BIAS = 2, VKT_MATMUL_FLAG_RELU = 4 };
/* The matmul kernels, chosen per device (vkt_tuning.matmul_variant). */
enum {
    VKT_MATMUL_SIMPLE = 0, /* matmul: scalar loads, any layout, any device */
    VKT_MATMUL_REG = 1,    /* matmul_reg: CPU devices; texel-buffer loads */
    VKT_MATMUL_REG_SSBO = 2, /* matmul_reg_ssbo: as REG with vec4 storage-buffer loads */
    VKT_MATMUL_TILED = 3,  /* matmul_tiled: GPUs; shared-memory tiles */
    VKT_MATMUL_VARIANT_COUNT
};
/* matmul spec: 0 local_size_x, 1 local_size_y, 2 TM rows per invocation,
 * 3 TN columns per invocation.
 * matmul_reg, matmul_reg_ssbo spec: 0 local_size_x, 1 local_size_y,
 * 2 TRANS_A, 3 TRANS_B, 4 A_MOD, 5 B_MOD (the operand's contiguous length
 * mod 4: it is read 4 floats at a time along it; 4: one float at a time),
 * 6 the push constant's flags, 7 VEC_C (N % 4 == 0: C stored 4 floats at a
 * time), 8 K_MOD (K % 4). The block per invocation is fixed at compile
 * time: */
#define VKT_MATMUL_REG_TM 16
#define VKT_MATMUL_REG_TN 8
/* matmul_tiled spec: 0 local_size_x, 1 local_size_y, 2 TM, 3 TN, 4 BK: each
 * workgroup computes (local_size_y TM) x (local_size_x TN) outputs, staging
 * BK-deep slices of A and B in shared memory. */

/* bias_add: out (rows, cols) = x + bias (cols). */
typedef struct vkt_bias_push {
    uint32_t rows, cols;
} vkt_bias_push;
_Static_assert(sizeof(vkt_bias_push) == 8, "mirror in shaders/bias_add.comp");

/* column_sum: out (cols) [+]= sum over rows of x (rows, cols). */
typedef struct vkt_column_sum_push {
    uint32_t rows, cols, accumulate;
} vkt_column_sum_push;
_Static_assert(sizeof(vkt_column_sum_push) == 12, "mirror in shaders/column_sum.comp");

/* elementwise kernels over n elements; `scalar` is the unary operand. */
typedef struct vkt_elementwise_push {
    uint32_t n;
    float scalar;
} vkt_elementwise_push;
_Static_assert(sizeof(vkt_elementwise_push) == 8, "mirror in shaders/elementwise*.comp");

/* spec 1 of elementwise_binary */
enum { VKT_BINARY_ADD = 0, VKT_BINARY_SUB = 1, VKT_BINARY_MUL = 2 };
/* spec 1 of elementwise_unary */
enum { VKT_UNARY_SCALE = 0, VKT_UNARY_FILL = 1 };

/* activation push constants */
/* The pointwise activations use vkt_elementwise_push (scalar: the leaky
 * ReLU slope). */
/* softmax_fwd, softmax_bwd: one workgroup per row of (rows, cols). */
typedef struct vkt_softmax_push {
    uint32_t rows, cols;
} vkt_softmax_push;
_Static_assert(sizeof(vkt_softmax_push) == 8, "mirror in shaders/softmax_*.comp");

/* dropout: out = hash(seed, step, i) >= threshold ? in * scale : 0. */
typedef struct vkt_dropout_push {
    uint32_t n, threshold, seed;
    float scale;
} vkt_dropout_push;
_Static_assert(sizeof(vkt_dropout_push) == 16, "mirror in shaders/dropout.comp");
/* loss push constants */
/* softmax_ce, mse, bce_logits: one workgroup per row of (rows, cols);
 * the gradient is the per-element derivative times grad_scale. */
typedef struct vkt_row_loss_push {
    uint32_t rows, cols;
    float grad_scale;
} vkt_row_loss_push;
_Static_assert(sizeof(vkt_row_loss_push) == 12,
               "mirror in shaders/softmax_ce.comp, mse.comp, bce_logits.comp");

/* reduce_sum: out[0] = scale * sum of in (n), one workgroup. */
typedef struct vkt_reduce_sum_push {
    uint32_t n;
    float scale;
} vkt_reduce_sum_push;
_Static_assert(sizeof(vkt_reduce_sum_push) == 8, "mirror in shaders/reduce_sum.comp");
/* convolution and pooling push constants */
/* conv2d_*: the geometry of the forward convolution the kernel belongs to,
 * x (batch, in_c, in_h, in_w) * w (out_c, in_c, kernel_h, kernel_w) ->
 * y (batch, out_c, out_h, out_w), whichever direction it computes. */
typedef struct vkt_conv2d_push {
    uint32_t batch;
    uint32_t in_c, in_h, in_w;
    uint32_t out_c, out_h, out_w;
    uint32_t kernel_h, kernel_w;
    uint32_t stride, pad;
} vkt_conv2d_push;
_Static_assert(sizeof(vkt_conv2d_push) == 44, "mirror in shaders/conv2d_*.comp, conv2d_*.glsl");
/* conv2d_fwd*, conv2d_bwd_input*, conv2d_bwd_weight_subgroup spec:
 * 0 local_size_x, 1 TM channels per workgroup, 2 TN pixels (dw columns)
 * per invocation, 3 SG invocations sharing loads (1 in the plain kernels).
 * conv2d_bwd_weight spec: 0 local_size_x, 1 TM output channels, 2 TN input
 * channels, 3 batch items per unit of work. conv2d_bwd_bias spec:
 * 0 local_size_x. */

/* maxpool2d_*, avgpool2d_*: planes = batch * channels images of
 * (in_h, in_w) pooled to (out_h, out_w). */
typedef struct vkt_pool2d_push {
    uint32_t planes;
    uint32_t in_h, in_w, out_h, out_w;
    uint32_t kernel, stride;
} vkt_pool2d_push;
_Static_assert(sizeof(vkt_pool2d_push) == 28, "mirror in shaders/*pool2d_*.comp");
/* pool spec: 0 local_size_x; maxpool2d_bwd 1: one invocation per window
 * (needs stride >= kernel) instead of per dx element. */
/* optimizer push constants */
/* sgd: one step of torch.optim.SGD over n parameters; lr, t and the
 * gradient scale come from the hyper buffer. Booleans are 0 or 1. */
typedef struct vkt_sgd_push {
    uint32_t n;
    float momentum, dampening, weight_decay;
    uint32_t nesterov;
} vkt_sgd_push;
_Static_assert(sizeof(vkt_sgd_push) == 20, "mirror in shaders/sgd.comp");

/* adam: one step of torch.optim.Adam (decoupled: AdamW) over n parameters;
 * lr, the bias corrections and the gradient scale come from the hyper
 * buffer. */
typedef struct vkt_adam_push {
    uint32_t n;
    float beta1, beta2, eps, weight_decay;
    uint32_t decoupled;
} vkt_adam_push;
_Static_assert(sizeof(vkt_adam_push) == 24, "mirror in shaders/adam.comp");

/* sum_squares: acc (1) [+]= sum of g (n)^2, one workgroup. */
typedef struct vkt_sum_squares_push {
    uint32_t n, accumulate;
} vkt_sum_squares_push;
_Static_assert(sizeof(vkt_sum_squares_push) == 8, "mirror in shaders/sum_squares.comp");

/* clip_scale: hyper[VKT_HYPER_GRAD_SCALE] = min(1, max_norm / (sqrt(sumsq) + 1e-6)). */
typedef struct vkt_clip_scale_push {
    float max_norm;
} vkt_clip_scale_push;
_Static_assert(sizeof(vkt_clip_scale_push) == 4, "mirror in shaders/clip_scale.comp");

#endif
