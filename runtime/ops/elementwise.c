/* elementwise.c: add, sub, mul of same-shaped tensors; scale and fill.
 * One shader per arity; the operation is a specialization constant, so each
 * pipeline compiles to exactly one operation. */
#include "op.h"

#include <stdio.h>

static vkt_result same_shape_infer(const vkt_node *node, vkt_shape *out, char *err, size_t size) {
    const vkt_shape *a = &node->in[0]->shape, *b = &node->in[1]->shape;
    if (!vkt_shape_equal(a, b)) {
        char sa[64], sb[64];
        snprintf(err, size, "a %s and b %s must have the same shape", vkt_shape_format(a, sa, 64),
                 vkt_shape_format(b, sb, 64));
        return VKT_ERROR_SHAPE;
    }
    out[0] = *a;
    return VKT_OK;
}

static vkt_result unary_infer(const vkt_node *node, vkt_shape *out, char *err, size_t size) {
    (void)err;
    (void)size;
    out[0] = node->in[0]->shape;
    return VKT_OK;
}

/* fill has no input: its output keeps the shape it was given. */
static vkt_result fill_infer(const vkt_node *node, vkt_shape *out, char *err, size_t size) {
    (void)err;
    (void)size;
    out[0] = node->out[0]->shape;
    return VKT_OK;
}

// ---- CPU reference

static int64_t out_numel(const vkt_node *node) { return vkt_shape_numel(&node->out[0]->shape); }

static void binary_cpu(const vkt_node *node, int op) {
    const float *a = vkt_view_host(&node->in[0]->view); // (n)
    const float *b = vkt_view_host(&node->in[1]->view); // (n)
    float *out = vkt_view_host(&node->out[0]->view);    // (n)
    for (int64_t i = 0, n = out_numel(node); i < n; i++)
        out[i] = op == VKT_BINARY_ADD ? a[i] + b[i] : op == VKT_BINARY_SUB ? a[i] - b[i] : a[i] * b[i];
}

static void add_cpu(const vkt_node *node) { binary_cpu(node, VKT_BINARY_ADD); }
static void sub_cpu(const vkt_node *node) { binary_cpu(node, VKT_BINARY_SUB); }
static void mul_cpu(const vkt_node *node) { binary_cpu(node, VKT_BINARY_MUL); }

static void scale_cpu(const vkt_node *node) {
    const float *x = vkt_view_host(&node->in[0]->view);
    float *out = vkt_view_host(&node->out[0]->view);
    for (int64_t i = 0, n = out_numel(node); i < n; i++)
        out[i] = x[i] * node->p.scalar.value;
}

static void fill_cpu(const vkt_node *node) {
    float *out = vkt_view_host(&node->out[0]->view);
    for (int64_t i = 0, n = out_numel(node); i < n; i++)
        out[i] = node->p.scalar.value;
}

// ---- Vulkan dispatch

static void add_record(const vkt_node *n, vkt_recorder *r) {
    vkt_record_pointwise_vec4(n, r, VKT_KERNEL_ELEMENTWISE_BINARY, VKT_BINARY_ADD);
}
static void sub_record(const vkt_node *n, vkt_recorder *r) {
    vkt_record_pointwise_vec4(n, r, VKT_KERNEL_ELEMENTWISE_BINARY, VKT_BINARY_SUB);
}
static void mul_record(const vkt_node *n, vkt_recorder *r) {
    vkt_record_pointwise_vec4(n, r, VKT_KERNEL_ELEMENTWISE_BINARY, VKT_BINARY_MUL);
}
/* scale and fill share the unary shader; fill binds its output twice (as the
 * unused input too) so both variants have the same layout. */
static void scale_record(const vkt_node *n, vkt_recorder *r) {
    vkt_record_pointwise_vec4(n, r, VKT_KERNEL_ELEMENTWISE_UNARY, VKT_UNARY_SCALE);
}
static void fill_record(const vkt_node *node, vkt_recorder *rec) {
    vkt_node as_unary = *node;
    as_unary.nin = 1;
    as_unary.in[0] = node->out[0];
    vkt_record_pointwise_vec4(&as_unary, rec, VKT_KERNEL_ELEMENTWISE_UNARY, VKT_UNARY_FILL);
}

const vkt_op_def vkt_op_add_def = {"add", 2, 1, same_shape_infer, add_cpu, add_record};
const vkt_op_def vkt_op_sub_def = {"sub", 2, 1, same_shape_infer, sub_cpu, sub_record};
const vkt_op_def vkt_op_mul_def = {"mul", 2, 1, same_shape_infer, mul_cpu, mul_record};
const vkt_op_def vkt_op_scale_def = {"scale", 1, 1, unary_infer, scale_cpu, scale_record};
const vkt_op_def vkt_op_fill_def = {"fill", 0, 1, fill_infer, fill_cpu, fill_record};
