/* op_table.c: the op table and helpers shared by the op files. */
#include "op.h"

static const vkt_op_def *const op_table[VKT_OP_COUNT] = {
    [VKT_OP_MATMUL] = &vkt_op_matmul_def,
    [VKT_OP_MATMUL_BIAS] = &vkt_op_matmul_bias_def,
    [VKT_OP_BIAS_ADD] = &vkt_op_bias_add_def,
    [VKT_OP_COLUMN_SUM] = &vkt_op_column_sum_def,
    [VKT_OP_ADD] = &vkt_op_add_def,
    [VKT_OP_SUB] = &vkt_op_sub_def,
    [VKT_OP_MUL] = &vkt_op_mul_def,
    [VKT_OP_SCALE] = &vkt_op_scale_def,
    [VKT_OP_FILL] = &vkt_op_fill_def,
    [VKT_OP_RELU] = &vkt_op_relu_def,
    [VKT_OP_RELU_BWD] = &vkt_op_relu_bwd_def,
    /* activation ops */
    [VKT_OP_LEAKY_RELU] = &vkt_op_leaky_relu_def,
    [VKT_OP_LEAKY_RELU_BWD] = &vkt_op_leaky_relu_bwd_def,
    [VKT_OP_SIGMOID] = &vkt_op_sigmoid_def,
    [VKT_OP_SIGMOID_BWD] = &vkt_op_sigmoid_bwd_def,
    [VKT_OP_TANH] = &vkt_op_tanh_def,
    [VKT_OP_TANH_BWD] = &vkt_op_tanh_bwd_def,
    [VKT_OP_GELU] = &vkt_op_gelu_def,
    [VKT_OP_GELU_BWD] = &vkt_op_gelu_bwd_def,
    [VKT_OP_SOFTMAX] = &vkt_op_softmax_def,
    [VKT_OP_SOFTMAX_BWD] = &vkt_op_softmax_bwd_def,
    [VKT_OP_DROPOUT] = &vkt_op_dropout_def,
    [VKT_OP_DROPOUT_BWD] = &vkt_op_dropout_bwd_def,
    /* loss ops */
    [VKT_OP_SOFTMAX_CE] = &vkt_op_softmax_ce_def,
    [VKT_OP_MSE] = &vkt_op_mse_def,
    [VKT_OP_BCE_LOGITS] = &vkt_op_bce_logits_def,
    /* convolution and pooling ops */
    [VKT_OP_CONV2D] = &vkt_op_conv2d_def,
    [VKT_OP_CONV2D_BWD_INPUT] = &vkt_op_conv2d_bwd_input_def,
    [VKT_OP_CONV2D_BWD_WEIGHT] = &vkt_op_conv2d_bwd_weight_def,
    [VKT_OP_CONV2D_BWD_BIAS] = &vkt_op_conv2d_bwd_bias_def,
    [VKT_OP_MAXPOOL2D] = &vkt_op_maxpool2d_def,
    [VKT_OP_MAXPOOL2D_BWD] = &vkt_op_maxpool2d_bwd_def,
    [VKT_OP_AVGPOOL2D] = &vkt_op_avgpool2d_def,
    [VKT_OP_AVGPOOL2D_BWD] = &vkt_op_avgpool2d_bwd_def,
    /* optimizer ops */
    [VKT_OP_SGD] = &vkt_op_sgd_def,
    [VKT_OP_ADAM] = &vkt_op_adam_def,
    [VKT_OP_SUM_SQUARES] = &vkt_op_sum_squares_def,
    [VKT_OP_CLIP_SCALE] = &vkt_op_clip_scale_def,
};

const vkt_op_def *vkt_op_get(vkt_op op) {
    return (unsigned)op < VKT_OP_COUNT ? op_table[op] : NULL;
}

uint32_t vkt_div_up(uint64_t n, uint32_t d) { return (uint32_t)((n + d - 1) / d); }

/* Vulkan guarantees at least 65535 workgroups per dimension; larger counts
 * spill into y and the shaders fold (x, y) back into one index. */
void vkt_grid_1d(uint64_t n, uint32_t wg, uint32_t groups[3]) {
    uint32_t total = vkt_div_up(n ? n : 1, wg);
    groups[0] = total < 65535 ? total : 65535;
    groups[1] = vkt_div_up(total, groups[0]);
    groups[2] = 1;
}

void vkt_row_grid(const vkt_tuning *t, uint32_t rows, uint32_t cols, uint32_t spec[2],
                  uint32_t groups[3]) {
    bool per_invocation = cols <= t->row_per_invocation_cols;
    spec[0] = per_invocation ? t->workgroup_1d : t->reduce_wg;
    spec[1] = per_invocation;
    /* Per invocation: rows threads in workgroups; per workgroup: one
     * workgroup (of reduce_wg invocations) per row. */
    vkt_grid_1d(per_invocation ? rows : (uint64_t)rows * spec[0], spec[0], groups);
}

static void record_pointwise(const vkt_node *node, vkt_recorder *rec, vkt_kernel kernel,
                             uint32_t variant, bool vec4_capable) {
    const vkt_tuning *t = vkt_recorder_tuning(rec);
    vkt_elementwise_push push = {(uint32_t)vkt_shape_numel(&node->out[0]->shape),
                                 node->p.scalar.value};
    uint32_t spec[3] = {t->workgroup_1d, variant, 0};
    vkt_dispatch d = {.kernel = kernel, .spec = spec, .spec_count = vec4_capable ? 3 : 2,
                      .push = &push, .push_size = sizeof push};
    for (uint32_t i = 0; i < node->nin; i++)
        d.views[d.view_count++] = &node->in[i]->view;
    d.write_mask = 1u << d.view_count;
    d.views[d.view_count++] = &node->out[0]->view;
    bool vec4 = vec4_capable;
    for (uint32_t i = 0; i < d.view_count; i++)
        vec4 = vec4 && d.views[i]->offset % 16 == 0;
    spec[2] = vec4;
    /* vec4: one invocation per whole vec4, then one per leftover float */
    vkt_grid_1d(vec4 ? push.n / 4 + push.n % 4 : push.n, t->workgroup_1d, d.groups);
    vkt_record_dispatch(rec, &d);
}

void vkt_record_pointwise(const vkt_node *node, vkt_recorder *rec, vkt_kernel kernel,
                          uint32_t variant) {
    record_pointwise(node, rec, kernel, variant, false);
}

void vkt_record_pointwise_vec4(const vkt_node *node, vkt_recorder *rec, vkt_kernel kernel,
                               uint32_t variant) {
    record_pointwise(node, rec, kernel, variant, true);
}
