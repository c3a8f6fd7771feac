/* vk_kernels.c: the SPIR-V of every kernel, compiled from shaders/ by glslc
 * at build time and embedded here; nothing is read from disk at run time. */
#include "vk_internal.h"

#define SPIRV(name) static const uint32_t name##_spv[] =
SPIRV(matmul)
#include "matmul.spv.h"
;
SPIRV(matmul_reg)
#include "matmul_reg.spv.h"
;
SPIRV(matmul_reg_ssbo)
#include "matmul_reg_ssbo.spv.h"
;
SPIRV(matmul_tiled)
#include "matmul_tiled.spv.h"
;
SPIRV(bias_add)
#include "bias_add.spv.h"
;
SPIRV(column_sum)
#include "column_sum.spv.h"
;
SPIRV(elementwise_binary)
#include "elementwise_binary.spv.h"
;
SPIRV(elementwise_unary)
#include "elementwise_unary.spv.h"
;
SPIRV(relu_fwd)
#include "relu_fwd.spv.h"
;
SPIRV(relu_bwd)
#include "relu_bwd.spv.h"
;
/* activation spirv */
SPIRV(leaky_relu_fwd)
#include "leaky_relu_fwd.spv.h"
;
SPIRV(leaky_relu_bwd)
#include "leaky_relu_bwd.spv.h"
;
SPIRV(sigmoid_fwd)
#include "sigmoid_fwd.spv.h"
;
SPIRV(sigmoid_bwd)
#include "sigmoid_bwd.spv.h"
;
SPIRV(tanh_fwd)
#include "tanh_fwd.spv.h"
;
SPIRV(tanh_bwd)
#include "tanh_bwd.spv.h"
;
SPIRV(gelu_fwd)
#include "gelu_fwd.spv.h"
;
SPIRV(gelu_bwd)
#include "gelu_bwd.spv.h"
;
SPIRV(softmax_fwd)
#include "softmax_fwd.spv.h"
;
SPIRV(softmax_bwd)
#include "softmax_bwd.spv.h"
;
SPIRV(dropout)
#include "dropout.spv.h"
;
/* loss spirv */
SPIRV(softmax_ce)
#include "softmax_ce.spv.h"
;
SPIRV(mse)
#include "mse.spv.h"
;
SPIRV(bce_logits)
#include "bce_logits.spv.h"
;
SPIRV(reduce_sum)
#include "reduce_sum.spv.h"
;
/* convolution and pooling spirv */
SPIRV(conv2d_fwd)
#include "conv2d_fwd.spv.h"
;
SPIRV(conv2d_fwd_subgroup)
#include "conv2d_fwd_subgroup.spv.h"
;
SPIRV(conv2d_bwd_input)
#include "conv2d_bwd_input.spv.h"
;
SPIRV(conv2d_bwd_input_subgroup)
#include "conv2d_bwd_input_subgroup.spv.h"
;
SPIRV(conv2d_bwd_weight)
#include "conv2d_bwd_weight.spv.h"
;
SPIRV(conv2d_bwd_weight_subgroup)
#include "conv2d_bwd_weight_subgroup.spv.h"
;
SPIRV(conv2d_bwd_bias)
#include "conv2d_bwd_bias.spv.h"
;
SPIRV(maxpool2d_fwd)
#include "maxpool2d_fwd.spv.h"
;
SPIRV(maxpool2d_bwd)
#include "maxpool2d_bwd.spv.h"
;
SPIRV(avgpool2d_fwd)
#include "avgpool2d_fwd.spv.h"
;
SPIRV(avgpool2d_bwd)
#include "avgpool2d_bwd.spv.h"
;
/* optimizer spirv */
SPIRV(sgd)
#include "sgd.spv.h"
;
SPIRV(adam)
#include "adam.spv.h"
;
SPIRV(sum_squares)
#include "sum_squares.spv.h"
;
SPIRV(clip_scale)
#include "clip_scale.spv.h"
;

typedef struct kernel_source {
    const char *name;
    const uint32_t *words;
    size_t bytes;
} kernel_source;

#define KERNEL(id, name) [id] = {#name, name##_spv, sizeof name##_spv}
static const kernel_source kernels[VKT_KERNEL_COUNT] = {
    KERNEL(VKT_KERNEL_MATMUL, matmul),
    KERNEL(VKT_KERNEL_MATMUL_REG, matmul_reg),
    KERNEL(VKT_KERNEL_MATMUL_REG_SSBO, matmul_reg_ssbo),
    KERNEL(VKT_KERNEL_MATMUL_TILED, matmul_tiled),
    KERNEL(VKT_KERNEL_BIAS_ADD, bias_add),
    KERNEL(VKT_KERNEL_COLUMN_SUM, column_sum),
    KERNEL(VKT_KERNEL_ELEMENTWISE_BINARY, elementwise_binary),
    KERNEL(VKT_KERNEL_ELEMENTWISE_UNARY, elementwise_unary),
    KERNEL(VKT_KERNEL_RELU_FWD, relu_fwd),
    KERNEL(VKT_KERNEL_RELU_BWD, relu_bwd),
    /* activation kernels */
    KERNEL(VKT_KERNEL_LEAKY_RELU_FWD, leaky_relu_fwd),
    KERNEL(VKT_KERNEL_LEAKY_RELU_BWD, leaky_relu_bwd),
    KERNEL(VKT_KERNEL_SIGMOID_FWD, sigmoid_fwd),
    KERNEL(VKT_KERNEL_SIGMOID_BWD, sigmoid_bwd),
    KERNEL(VKT_KERNEL_TANH_FWD, tanh_fwd),
    KERNEL(VKT_KERNEL_TANH_BWD, tanh_bwd),
    KERNEL(VKT_KERNEL_GELU_FWD, gelu_fwd),
    KERNEL(VKT_KERNEL_GELU_BWD, gelu_bwd),
    KERNEL(VKT_KERNEL_SOFTMAX_FWD, softmax_fwd),
    KERNEL(VKT_KERNEL_SOFTMAX_BWD, softmax_bwd),
    KERNEL(VKT_KERNEL_DROPOUT, dropout),
    /* loss kernels */
    KERNEL(VKT_KERNEL_SOFTMAX_CE, softmax_ce),
    KERNEL(VKT_KERNEL_MSE, mse),
    KERNEL(VKT_KERNEL_BCE_LOGITS, bce_logits),
    KERNEL(VKT_KERNEL_REDUCE_SUM, reduce_sum),
    /* convolution and pooling kernels */
    KERNEL(VKT_KERNEL_CONV2D_FWD, conv2d_fwd),
    KERNEL(VKT_KERNEL_CONV2D_FWD_SUBGROUP, conv2d_fwd_subgroup),
    KERNEL(VKT_KERNEL_CONV2D_BWD_INPUT, conv2d_bwd_input),
    KERNEL(VKT_KERNEL_CONV2D_BWD_INPUT_SUBGROUP, conv2d_bwd_input_subgroup),
    KERNEL(VKT_KERNEL_CONV2D_BWD_WEIGHT, conv2d_bwd_weight),
    KERNEL(VKT_KERNEL_CONV2D_BWD_WEIGHT_SUBGROUP, conv2d_bwd_weight_subgroup),
    KERNEL(VKT_KERNEL_CONV2D_BWD_BIAS, conv2d_bwd_bias),
    KERNEL(VKT_KERNEL_MAXPOOL2D_FWD, maxpool2d_fwd),
    KERNEL(VKT_KERNEL_MAXPOOL2D_BWD, maxpool2d_bwd),
    KERNEL(VKT_KERNEL_AVGPOOL2D_FWD, avgpool2d_fwd),
    KERNEL(VKT_KERNEL_AVGPOOL2D_BWD, avgpool2d_bwd),
    /* optimizer kernels */
    KERNEL(VKT_KERNEL_SGD, sgd),
    KERNEL(VKT_KERNEL_ADAM, adam),
    KERNEL(VKT_KERNEL_SUM_SQUARES, sum_squares),
    KERNEL(VKT_KERNEL_CLIP_SCALE, clip_scale),
};

const uint32_t *vk_kernel_spirv(vkt_kernel kernel, size_t *out_bytes, const char **out_name) {
    *out_bytes = kernels[kernel].bytes;
    *out_name = kernels[kernel].name;
    return kernels[kernel].words;
}
