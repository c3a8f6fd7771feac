/* optimizer.c: parameter updates and gradient-norm clipping as graph nodes.
 * The graph compiler appends, per parameter, one SGD or Adam node, and for
 * clipping one SUM_SQUARES node per gradient (accumulating into one scalar
 * after the first) followed by one CLIP_SCALE node.
 *
 * Everything that changes from step to step (learning rate, Adam's bias
 * corrections, the step number, the clip factor) is read from the hyper
 * buffer (VKT_HYPER_*), never from push constants, so a recorded command
 * buffer replays every step unchanged. Every update first multiplies the raw
 * gradient by hyper[VKT_HYPER_GRAD_SCALE]: 1, or the factor CLIP_SCALE wrote
 * on the device, which is exactly torch.nn.utils.clip_grad_norm_'s in-place
 * grad.mul_(clip_coef) without a second pass over the gradients.
 *
 * The float operations follow PyTorch's single-tensor implementations in
 * order, so results agree to rounding (the GPU may fuse a multiply-add).
 * Dimension legend: n parameters of any shape, flattened. */
#include "optimizer_update.h"

#include <math.h>
#include <stdio.h>

// ---- Shape rules

static bool is_hyper_shape(const vkt_shape *s) {
    return s->ndim == 1 && s->dims[0] >= VKT_HYPER_COUNT;
}

/* SGD and Adam: out[0] is the parameter (read-modify-write, so it already has
 * its shape); the gradient and every state buffer must have that shape. */
static vkt_result update_infer(const vkt_node *node, vkt_shape *out, char *err, size_t size) {
    static const char *const state_names[2][3] = {{"param", "momentum_buf", ""},
                                                  {"param", "m", "v"}};
    const char *const *names = state_names[node->op == VKT_OP_ADAM];
    const vkt_shape *param = &node->out[0]->shape;
    char s1[64], s2[64];
    if (param->ndim < 1 || param->ndim > VKT_MAX_DIMS) {
        snprintf(err, size, "param must have a shape (got %d dimensions)", (int)param->ndim);
        return VKT_ERROR_SHAPE;
    }
    if (!vkt_shape_equal(&node->in[0]->shape, param)) {
        snprintf(err, size, "grad %s must have the shape of param %s",
                 vkt_shape_format(&node->in[0]->shape, s1, 64), vkt_shape_format(param, s2, 64));
        return VKT_ERROR_SHAPE;
    }
    if (!is_hyper_shape(&node->in[1]->shape)) {
        snprintf(err, size, "hyper %s must be 1-D with at least %d elements",
                 vkt_shape_format(&node->in[1]->shape, s1, 64), VKT_HYPER_COUNT);
        return VKT_ERROR_SHAPE;
    }
    for (uint32_t o = 1; o < node->nout; o++) {
        if (!vkt_shape_equal(&node->out[o]->shape, param)) {
            snprintf(err, size, "%s %s must have the shape of param %s", names[o],
                     vkt_shape_format(&node->out[o]->shape, s1, 64),
                     vkt_shape_format(param, s2, 64));
            return VKT_ERROR_SHAPE;
        }
    }
    for (uint32_t o = 0; o < node->nout; o++)
        out[o] = *param;
    return VKT_OK;
}

/* acc is (1); an acc that already has a shape (accumulating) must be that. */
static vkt_result sum_squares_infer(const vkt_node *node, vkt_shape *out, char *err, size_t size) {
    const vkt_shape *acc = &node->out[0]->shape;
    char s[64];
    if (acc->ndim != 0 && vkt_shape_numel(acc) != 1) {
        snprintf(err, size, "acc %s must hold exactly one element", vkt_shape_format(acc, s, 64));
        return VKT_ERROR_SHAPE;
    }
    out[0] = (vkt_shape){.ndim = 1, .dims = {1}};
    return VKT_OK;
}

static vkt_result clip_scale_infer(const vkt_node *node, vkt_shape *out, char *err, size_t size) {
    const vkt_shape *sumsq = &node->in[0]->shape, *hyper = &node->out[0]->shape;
    char s[64];
    if (sumsq->ndim < 1 || vkt_shape_numel(sumsq) != 1) {
        snprintf(err, size, "sumsq %s must hold exactly one element",
                 vkt_shape_format(sumsq, s, 64));
        return VKT_ERROR_SHAPE;
    }
    if (!is_hyper_shape(hyper)) {
        snprintf(err, size, "hyper %s must be 1-D with at least %d elements",
                 vkt_shape_format(hyper, s, 64), VKT_HYPER_COUNT);
        return VKT_ERROR_SHAPE;
    }
    out[0] = *hyper;
    return VKT_OK;
}

// ---- CPU reference

/* The updates themselves are optimizer_update.h, shared with the fast CPU
 * backend. */
static void sgd_cpu(const vkt_node *node) { vkt_sgd_update(node); }

static void adam_cpu(const vkt_node *node) { vkt_adam_update(node); }

/* The oracle sums in double; the kernel's float tree sum must match it to
 * rounding. */
static void sum_squares_cpu(const vkt_node *node) {
    const float *g = vkt_view_host(&node->in[0]->view); // (n)
    float *acc = vkt_view_host(&node->out[0]->view);    // (1)
    double sum = 0.0;
    for (int64_t i = 0, n = vkt_shape_numel(&node->in[0]->shape); i < n; i++)
        sum += (double)g[i] * g[i];
    acc[0] = node->p.reduce.accumulate ? (float)((double)acc[0] + sum) : (float)sum;
}

/* reference: https://pytorch.org/docs/stable/generated/torch.nn.utils.clip_grad_norm_.html
 * clip_coef = max_norm / (total_norm + 1e-6), clamped to at most 1. The
 * comparison is written so a NaN norm stays NaN, as torch.clamp keeps it. */
static void clip_scale_cpu(const vkt_node *node) {
    const float *sumsq = vkt_view_host(&node->in[0]->view); // (1)
    float *hyper = vkt_view_host(&node->out[0]->view);      // (VKT_HYPER_COUNT)
    float coef = node->p.clip.max_norm / (sqrtf(sumsq[0]) + 1e-6f);
    hyper[VKT_HYPER_GRAD_SCALE] = coef > 1.0f ? 1.0f : coef;
}

// ---- Vulkan dispatch

static void sgd_record(const vkt_node *node, vkt_recorder *rec) {
    const vkt_tuning *t = vkt_recorder_tuning(rec);
    vkt_sgd_push push = {
        .n = (uint32_t)vkt_shape_numel(&node->out[0]->shape),
        .momentum = node->p.sgd.momentum,
        .dampening = node->p.sgd.dampening,
        .weight_decay = node->p.sgd.weight_decay,
        .nesterov = node->p.sgd.nesterov,
    };
    uint32_t spec[1] = {t->workgroup_1d};
    vkt_dispatch d = {
        .kernel = VKT_KERNEL_SGD, .spec = spec, .spec_count = 1,
        .views = {&node->in[0]->view, &node->in[1]->view, &node->out[0]->view,
                  &node->out[1]->view},
        .view_count = 4,
        /* without momentum the buffer is untouched: claiming a write would
         * only add barriers */
        .write_mask = (1u << 2) | (push.momentum != 0.0f ? 1u << 3 : 0u),
        .push = &push, .push_size = sizeof push,
    };
    vkt_grid_1d(push.n, t->workgroup_1d, d.groups);
    vkt_record_dispatch(rec, &d);
}

static void adam_record(const vkt_node *node, vkt_recorder *rec) {
    const vkt_tuning *t = vkt_recorder_tuning(rec);
    vkt_adam_push push = {
        .n = (uint32_t)vkt_shape_numel(&node->out[0]->shape),
        .beta1 = node->p.adam.beta1,
        .beta2 = node->p.adam.beta2,
        .eps = node->p.adam.eps,
        .weight_decay = node->p.adam.weight_decay,
        .decoupled = node->p.adam.decoupled,
    };
    /* Four parameters per invocation where every binding but the hyper
     * buffer starts 16-byte aligned (see shaders/adam.comp). */
    const vkt_view *arrays[4] = {&node->in[0]->view, &node->out[0]->view, &node->out[1]->view,
                                 &node->out[2]->view};
    bool vec4 = true;
    for (int i = 0; i < 4; i++)
        vec4 = vec4 && arrays[i]->offset % 16 == 0;
    uint32_t spec[2] = {t->workgroup_1d, vec4};
    vkt_dispatch d = {
        .kernel = VKT_KERNEL_ADAM, .spec = spec, .spec_count = 2,
        .views = {&node->in[0]->view, &node->in[1]->view, &node->out[0]->view,
                  &node->out[1]->view, &node->out[2]->view},
        .view_count = 5,
        .write_mask = (1u << 2) | (1u << 3) | (1u << 4),
        .push = &push, .push_size = sizeof push,
    };
    vkt_grid_1d(vec4 ? push.n / 4 + push.n % 4 : push.n, t->workgroup_1d, d.groups);
    vkt_record_dispatch(rec, &d);
}

/* A single workgroup walks the whole gradient in a fixed order and reduces
 * in shared memory: deterministic and atomic-free, at the price of using one
 * workgroup's bandwidth (fine next to the update kernels' own pass). */
static void sum_squares_record(const vkt_node *node, vkt_recorder *rec) {
    const vkt_tuning *t = vkt_recorder_tuning(rec);
    vkt_sum_squares_push push = {(uint32_t)vkt_shape_numel(&node->in[0]->shape),
                                 node->p.reduce.accumulate};
    uint32_t spec[1] = {t->reduce_wg};
    vkt_dispatch d = {
        .kernel = VKT_KERNEL_SUM_SQUARES, .spec = spec, .spec_count = 1,
        .views = {&node->in[0]->view, &node->out[0]->view},
        .view_count = 2, .write_mask = 1u << 1,
        .push = &push, .push_size = sizeof push,
        .groups = {1, 1, 1},
    };
    vkt_record_dispatch(rec, &d);
}

/* One invocation: the factor is a single number. */
static void clip_scale_record(const vkt_node *node, vkt_recorder *rec) {
    vkt_clip_scale_push push = {node->p.clip.max_norm};
    uint32_t spec[1] = {1};
    vkt_dispatch d = {
        .kernel = VKT_KERNEL_CLIP_SCALE, .spec = spec, .spec_count = 1,
        .views = {&node->in[0]->view, &node->out[0]->view},
        .view_count = 2, .write_mask = 1u << 1,
        .push = &push, .push_size = sizeof push,
        .groups = {1, 1, 1},
    };
    vkt_record_dispatch(rec, &d);
}

const vkt_op_def vkt_op_sgd_def = {
    .name = "sgd", .nin = 2, .nout = 2,
    .infer = update_infer, .cpu = sgd_cpu, .record = sgd_record,
};

const vkt_op_def vkt_op_adam_def = {
    .name = "adam", .nin = 2, .nout = 3,
    .infer = update_infer, .cpu = adam_cpu, .record = adam_record,
};

const vkt_op_def vkt_op_sum_squares_def = {
    .name = "sum_squares", .nin = 1, .nout = 1,
    .infer = sum_squares_infer, .cpu = sum_squares_cpu, .record = sum_squares_record,
};

const vkt_op_def vkt_op_clip_scale_def = {
    .name = "clip_scale", .nin = 1, .nout = 1,
    .infer = clip_scale_infer, .cpu = clip_scale_cpu, .record = clip_scale_record,
};
