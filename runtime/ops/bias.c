/* bias.c: bias add broadcast over rows, and its gradient, the column sum.
 * x is viewed as (rows, cols) with cols its last dimension. */
#include "op.h"

#include <stdio.h>

static vkt_result bias_add_infer(const vkt_node *node, vkt_shape *out, char *err, size_t size) {
    const vkt_shape *x = &node->in[0]->shape, *bias = &node->in[1]->shape;
    char sx[64], sb[64];
    if (bias->ndim != 1 || bias->dims[0] != vkt_shape_cols(x)) {
        snprintf(err, size, "bias %s must be 1-D with the length of x %s's last dimension",
                 vkt_shape_format(bias, sb, 64), vkt_shape_format(x, sx, 64));
        return VKT_ERROR_SHAPE;
    }
    out[0] = *x;
    return VKT_OK;
}

static vkt_result column_sum_infer(const vkt_node *node, vkt_shape *out, char *err, size_t size) {
    (void)err;
    (void)size;
    out[0] = (vkt_shape){.ndim = 1, .dims = {vkt_shape_cols(&node->in[0]->shape)}};
    return VKT_OK;
}

// ---- CPU reference

static void bias_add_cpu(const vkt_node *node) {
    int64_t R = vkt_shape_rows(&node->in[0]->shape), C = vkt_shape_cols(&node->in[0]->shape);
    const float *x = vkt_view_host(&node->in[0]->view);    // (R, C)
    const float *bias = vkt_view_host(&node->in[1]->view); // (C)
    float *out = vkt_view_host(&node->out[0]->view);       // (R, C)
    for (int64_t r = 0; r < R; r++)
        for (int64_t c = 0; c < C; c++)
            out[r * C + c] = x[r * C + c] + bias[c];
}

static void column_sum_cpu(const vkt_node *node) {
    int64_t R = vkt_shape_rows(&node->in[0]->shape), C = vkt_shape_cols(&node->in[0]->shape);
    const float *x = vkt_view_host(&node->in[0]->view); // (R, C)
    float *out = vkt_view_host(&node->out[0]->view);    // (C)
    for (int64_t c = 0; c < C; c++) {
        double sum = node->p.reduce.accumulate ? out[c] : 0.0;
        for (int64_t r = 0; r < R; r++)
            sum += x[r * C + c];
        out[c] = (float)sum;
    }
}

// ---- Vulkan dispatch

static void bias_add_record(const vkt_node *node, vkt_recorder *rec) {
    const vkt_tuning *t = vkt_recorder_tuning(rec);
    vkt_bias_push push = {(uint32_t)vkt_shape_rows(&node->in[0]->shape),
                          (uint32_t)vkt_shape_cols(&node->in[0]->shape)};
    uint32_t spec[1] = {t->workgroup_1d};
    vkt_dispatch d = {
        .kernel = VKT_KERNEL_BIAS_ADD, .spec = spec, .spec_count = 1,
        .views = {&node->in[0]->view, &node->in[1]->view, &node->out[0]->view},
        .view_count = 3, .write_mask = 1u << 2,
        .push = &push, .push_size = sizeof push,
    };
    vkt_grid_1d((uint64_t)push.rows * push.cols, t->workgroup_1d, d.groups);
    vkt_record_dispatch(rec, &d);
}

/* One invocation per column walks all rows in a fixed order: deterministic,
 * no atomics, and adjacent invocations read adjacent addresses. */
static void column_sum_record(const vkt_node *node, vkt_recorder *rec) {
    const vkt_tuning *t = vkt_recorder_tuning(rec);
    vkt_column_sum_push push = {(uint32_t)vkt_shape_rows(&node->in[0]->shape),
                                (uint32_t)vkt_shape_cols(&node->in[0]->shape),
                                node->p.reduce.accumulate};
    uint32_t spec[1] = {t->reduce_wg};
    vkt_dispatch d = {
        .kernel = VKT_KERNEL_COLUMN_SUM, .spec = spec, .spec_count = 1,
        .views = {&node->in[0]->view, &node->out[0]->view},
        .view_count = 2, .write_mask = 1u << 1,
        .push = &push, .push_size = sizeof push,
    };
    vkt_grid_1d(push.cols, t->reduce_wg, d.groups);
    vkt_record_dispatch(rec, &d);
}

const vkt_op_def vkt_op_bias_add_def = {
    .name = "bias_add", .nin = 2, .nout = 1,
    .infer = bias_add_infer, .cpu = bias_add_cpu, .record = bias_add_record,
};

const vkt_op_def vkt_op_column_sum_def = {
    .name = "column_sum", .nin = 1, .nout = 1,
    .infer = column_sum_infer, .cpu = column_sum_cpu, .record = column_sum_record,
};
