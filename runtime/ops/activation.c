/* activation.c: ReLU forward and backward.
 * reference: https://pytorch.org/docs/stable/generated/torch.nn.ReLU.html */
#include "op.h"

#include <stdio.h>

static vkt_result relu_infer(const vkt_node *node, vkt_shape *out, char *err, size_t size) {
    (void)err;
    (void)size;
    out[0] = node->in[0]->shape;
    return VKT_OK;
}

/* inputs: dy, x (the forward input) */
static vkt_result relu_bwd_infer(const vkt_node *node, vkt_shape *out, char *err, size_t size) {
    const vkt_shape *dy = &node->in[0]->shape, *x = &node->in[1]->shape;
    if (!vkt_shape_equal(dy, x)) {
        char s1[64], s2[64];
        snprintf(err, size, "dy %s and x %s must have the same shape",
                 vkt_shape_format(dy, s1, 64), vkt_shape_format(x, s2, 64));
        return VKT_ERROR_SHAPE;
    }
    out[0] = *x;
    return VKT_OK;
}

// ---- CPU reference

static void relu_cpu(const vkt_node *node) {
    const float *x = vkt_view_host(&node->in[0]->view);
    float *y = vkt_view_host(&node->out[0]->view);
    for (int64_t i = 0, n = vkt_shape_numel(&node->in[0]->shape); i < n; i++)
        y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

/* forward: y = max(x, 0), so dy/dx = 1 where x > 0 and 0 elsewhere (PyTorch
 * also takes 0 at x == 0). */
static void relu_bwd_cpu(const vkt_node *node) {
    const float *dy = vkt_view_host(&node->in[0]->view);
    const float *x = vkt_view_host(&node->in[1]->view);
    float *dx = vkt_view_host(&node->out[0]->view);
    for (int64_t i = 0, n = vkt_shape_numel(&node->in[0]->shape); i < n; i++)
        dx[i] = x[i] > 0.0f ? dy[i] : 0.0f;
}

// ---- Vulkan dispatch

static void relu_record(const vkt_node *n, vkt_recorder *r) {
    vkt_record_pointwise(n, r, VKT_KERNEL_RELU_FWD, 0);
}
static void relu_bwd_record(const vkt_node *n, vkt_recorder *r) {
    vkt_record_pointwise(n, r, VKT_KERNEL_RELU_BWD, 0);
}

const vkt_op_def vkt_op_relu_def = {"relu", 1, 1, relu_infer, relu_cpu, relu_record};
const vkt_op_def vkt_op_relu_bwd_def = {"relu_bwd", 2, 1, relu_bwd_infer, relu_bwd_cpu,
                                        relu_bwd_record};
