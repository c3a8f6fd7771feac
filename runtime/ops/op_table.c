/* op_table.c: the op table and helpers shared by the op files. */
#include "op.h"

static const vkt_op_def *const op_table[VKT_OP_COUNT] = {
    [VKT_OP_MATMUL] = &vkt_op_matmul_def,
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
    /* loss ops */
    /* optimizer ops */
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

void vkt_record_pointwise(const vkt_node *node, vkt_recorder *rec, vkt_kernel kernel,
                          uint32_t variant) {
    const vkt_tuning *t = vkt_recorder_tuning(rec);
    vkt_elementwise_push push = {(uint32_t)vkt_shape_numel(&node->out[0]->shape),
                                 node->p.scalar.value};
    uint32_t spec[2] = {t->workgroup_1d, variant};
    vkt_dispatch d = {.kernel = kernel, .spec = spec, .spec_count = 2,
                      .push = &push, .push_size = sizeof push};
    for (uint32_t i = 0; i < node->nin; i++)
        d.views[d.view_count++] = &node->in[i]->view;
    d.write_mask = 1u << d.view_count;
    d.views[d.view_count++] = &node->out[0]->view;
    vkt_grid_1d(push.n, t->workgroup_1d, d.groups);
    vkt_record_dispatch(rec, &d);
}
