/* eager.c: the public one-kernel-at-a-time entry points (vkt_matmul, ...).
 * Each builds a one-node graph from tensors, checks it with the op's shape
 * rule and runs it on the context's backend. */
#include "op.h"

#include <stdio.h>
#include <string.h>

typedef struct eager_call {
    const char *fn;
    const vkt_tensor *in[VKT_NODE_MAX_IN];
    const char *in_roles[VKT_NODE_MAX_IN];
    vkt_tensor *out;
    const char *out_role;
    bool out_may_alias; /* elementwise ops may write in place */
} eager_call;

static bool views_overlap(const vkt_view *a, const vkt_view *b) {
    return a->block == b->block && a->offset < b->offset + b->bytes &&
           b->offset < a->offset + a->bytes;
}

static vkt_result run_eager(vkt_context *ctx, vkt_op op, const vkt_op_params *params,
                            const eager_call *call) {
    const vkt_op_def *def = vkt_op_get(op);
    if (!ctx)
        return vkt_error(NULL, VKT_ERROR_INVALID_ARGUMENT, "%s: ctx is NULL", call->fn);
    vkt_clear_error(ctx);
    vkt_node node = {.op = op, .nin = def->nin, .nout = 1};
    if (params)
        node.p = *params;
    for (uint32_t i = 0; i <= def->nin; i++) {
        const vkt_tensor *t = i < def->nin ? call->in[i] : call->out;
        const char *role = i < def->nin ? call->in_roles[i] : call->out_role;
        if (!t)
            return vkt_error(ctx, VKT_ERROR_INVALID_ARGUMENT, "%s: %s is NULL", call->fn, role);
        if (t->ctx != ctx)
            return vkt_error(ctx, VKT_ERROR_BACKEND_MISMATCH,
                             "%s: %s '%s' belongs to another context", call->fn, role, t->name);
        if (i < def->nin)
            node.in[i] = &t->value;
    }
    node.out[0] = &call->out->value;
    node.name = call->out->name;
    vkt_shape shape;
    char err[256] = "";
    if (def->infer(&node, &shape, err, sizeof err) != VKT_OK)
        return vkt_error(ctx, VKT_ERROR_SHAPE, "%s: %s", call->fn, err);
    if (!vkt_shape_equal(&shape, &call->out->value.shape)) {
        char want[64], have[64];
        return vkt_error(ctx, VKT_ERROR_SHAPE, "%s: %s '%s' has shape %s, expected %s", call->fn,
                         call->out_role, call->out->name,
                         vkt_shape_format(&call->out->value.shape, have, 64),
                         vkt_shape_format(&shape, want, 64));
    }
    if (!call->out_may_alias) {
        for (uint32_t i = 0; i < def->nin; i++)
            if (views_overlap(&node.in[i]->view, &call->out->value.view))
                return vkt_error(ctx, VKT_ERROR_INVALID_ARGUMENT,
                                 "%s: %s '%s' may not be the same tensor as %s", call->fn,
                                 call->out_role, call->out->name, call->in_roles[i]);
    }
    const vkt_node *nodes[1] = {&node};
    return ctx->ops->run(ctx, nodes, 1);
}

vkt_result vkt_matmul(vkt_context *ctx, vkt_tensor *c, const vkt_tensor *a, const vkt_tensor *b,
                      const vkt_matmul_desc *desc) {
    vkt_matmul_desc d = desc ? *desc : (vkt_matmul_desc){0};
    vkt_op_params p = {.matmul = {d.transpose_a, d.transpose_b, d.accumulate}};
    return run_eager(ctx, VKT_OP_MATMUL, &p,
                     &(eager_call){"vkt_matmul", {a, b}, {"a", "b"}, c, "c", false});
}

vkt_result vkt_bias_add(vkt_context *ctx, vkt_tensor *out, const vkt_tensor *x,
                        const vkt_tensor *bias) {
    return run_eager(ctx, VKT_OP_BIAS_ADD, NULL,
                     &(eager_call){"vkt_bias_add", {x, bias}, {"x", "bias"}, out, "out", true});
}

vkt_result vkt_column_sum(vkt_context *ctx, vkt_tensor *out, const vkt_tensor *x,
                          bool accumulate) {
    vkt_op_params p = {.reduce = {accumulate}};
    return run_eager(ctx, VKT_OP_COLUMN_SUM, &p,
                     &(eager_call){"vkt_column_sum", {x}, {"x"}, out, "out", false});
}

#define BINARY(fn, OP)                                                                          \
    vkt_result fn(vkt_context *ctx, vkt_tensor *out, const vkt_tensor *a, const vkt_tensor *b) { \
        return run_eager(ctx, OP, NULL, &(eager_call){#fn, {a, b}, {"a", "b"}, out, "out", true}); \
    }
BINARY(vkt_add, VKT_OP_ADD)
BINARY(vkt_sub, VKT_OP_SUB)
BINARY(vkt_mul, VKT_OP_MUL)

vkt_result vkt_scale(vkt_context *ctx, vkt_tensor *out, const vkt_tensor *x, float scale) {
    vkt_op_params p = {.scalar = {scale}};
    return run_eager(ctx, VKT_OP_SCALE, &p,
                     &(eager_call){"vkt_scale", {x}, {"x"}, out, "out", true});
}

vkt_result vkt_fill(vkt_context *ctx, vkt_tensor *out, float value) {
    vkt_op_params p = {.scalar = {value}};
    return run_eager(ctx, VKT_OP_FILL, &p, &(eager_call){"vkt_fill", {0}, {0}, out, "out", true});
}

vkt_result vkt_relu(vkt_context *ctx, vkt_tensor *out, const vkt_tensor *x) {
    return run_eager(ctx, VKT_OP_RELU, NULL,
                     &(eager_call){"vkt_relu", {x}, {"x"}, out, "out", true});
}

vkt_result vkt_relu_backward(vkt_context *ctx, vkt_tensor *dx, const vkt_tensor *dy,
                             const vkt_tensor *x) {
    return run_eager(ctx, VKT_OP_RELU_BWD, NULL,
                     &(eager_call){"vkt_relu_backward", {dy, x}, {"dy", "x"}, dx, "dx", true});
}
