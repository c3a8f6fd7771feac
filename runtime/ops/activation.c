/* activation.c: pointwise activations (ReLU, leaky ReLU, sigmoid, tanh,
 * GELU), row-wise softmax and inverted dropout, each forward and backward.
 * Pointwise ops see their tensors as flat arrays; softmax sees x as
 * (R, C) with C its last dimension. Backward ops take dy first, then the
 * forward tensor their derivative is cheapest from (the input x, or the
 * output y where the derivative is a function of y alone).
 *
 * Dimension legend: R rows, C columns (the last dimension), n elements. */
#include "op.h"

#include <math.h>
#include <stdio.h>

static vkt_result same_as_input_infer(const vkt_node *node, vkt_shape *out, char *err,
                                      size_t size) {
    (void)err;
    (void)size;
    out[0] = node->in[0]->shape;
    return VKT_OK;
}

/* Backward ops: inputs {dy, x or y}, both the shape of dx. */
static vkt_result backward_infer(const vkt_node *node, vkt_shape *out, char *err, size_t size) {
    const vkt_shape *dy = &node->in[0]->shape, *fwd = &node->in[1]->shape;
    if (!vkt_shape_equal(dy, fwd)) {
        bool takes_x = node->op == VKT_OP_RELU_BWD || node->op == VKT_OP_LEAKY_RELU_BWD ||
                       node->op == VKT_OP_GELU_BWD;
        char s1[64], s2[64];
        snprintf(err, size, "dy %s and %s %s must have the same shape",
                 vkt_shape_format(dy, s1, 64), takes_x ? "the forward input x" :
                 "the forward output y", vkt_shape_format(fwd, s2, 64));
        return VKT_ERROR_SHAPE;
    }
    out[0] = *dy;
    return VKT_OK;
}

/* Dropout ops: inputs {x or dy, hyper}. */
static vkt_result dropout_infer(const vkt_node *node, vkt_shape *out, char *err, size_t size) {
    const vkt_shape *hyper = &node->in[1]->shape;
    float rate = node->p.dropout.rate;
    if (!(rate >= 0.0f && rate <= 1.0f)) { /* also catches NaN */
        snprintf(err, size, "dropout rate %g must be in [0, 1]", (double)rate);
        return VKT_ERROR_INVALID_ARGUMENT;
    }
    if (hyper->ndim != 1 || hyper->dims[0] < VKT_HYPER_COUNT) {
        char s[64];
        snprintf(err, size, "hyper %s must be the 1-D hyperparameter buffer of %d floats",
                 vkt_shape_format(hyper, s, 64), VKT_HYPER_COUNT);
        return VKT_ERROR_SHAPE;
    }
    out[0] = node->in[0]->shape;
    return VKT_OK;
}

// ---- CPU reference

static int64_t in_numel(const vkt_node *node) { return vkt_shape_numel(&node->in[0]->shape); }

// reference: https://pytorch.org/docs/stable/generated/torch.nn.ReLU.html
static void relu_cpu(const vkt_node *node) {
    const float *x = vkt_view_host(&node->in[0]->view); // (n)
    float *y = vkt_view_host(&node->out[0]->view);      // (n)
    for (int64_t i = 0, n = in_numel(node); i < n; i++)
        y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

/* forward: y = max(x, 0), so dy/dx = 1 where x > 0 and 0 elsewhere (PyTorch
 * also takes 0 at x == 0). */
static void relu_bwd_cpu(const vkt_node *node) {
    const float *dy = vkt_view_host(&node->in[0]->view); // (n)
    const float *x = vkt_view_host(&node->in[1]->view);  // (n)
    float *dx = vkt_view_host(&node->out[0]->view);      // (n)
    for (int64_t i = 0, n = in_numel(node); i < n; i++)
        dx[i] = x[i] > 0.0f ? dy[i] : 0.0f;
}

// reference: https://pytorch.org/docs/stable/generated/torch.nn.LeakyReLU.html
static void leaky_relu_cpu(const vkt_node *node) {
    const float *x = vkt_view_host(&node->in[0]->view); // (n)
    float *y = vkt_view_host(&node->out[0]->view);      // (n)
    float slope = node->p.leaky_relu.slope;
    for (int64_t i = 0, n = in_numel(node); i < n; i++)
        y[i] = x[i] > 0.0f ? x[i] : x[i] * slope;
}

/* forward: y = x for x > 0, slope * x otherwise, so dy/dx = 1 or slope;
 * at x == 0 PyTorch takes the slope side, and so do we. */
static void leaky_relu_bwd_cpu(const vkt_node *node) {
    const float *dy = vkt_view_host(&node->in[0]->view); // (n)
    const float *x = vkt_view_host(&node->in[1]->view);  // (n)
    float *dx = vkt_view_host(&node->out[0]->view);      // (n)
    float slope = node->p.leaky_relu.slope;
    for (int64_t i = 0, n = in_numel(node); i < n; i++)
        dx[i] = x[i] > 0.0f ? dy[i] : dy[i] * slope;
}

/* Through e = e^-|x| in (0, 1], which never overflows: sigmoid(|x|) =
 * 1 / (1 + e) and sigmoid(-|x|) = e / (1 + e). The shaders use the same
 * form (shaders/activation.glsl). */
static double sigmoid_stable(double x) {
    double e = exp(-fabs(x));
    return x >= 0.0 ? 1.0 / (1.0 + e) : e / (1.0 + e);
}

// reference: https://pytorch.org/docs/stable/generated/torch.nn.Sigmoid.html
static void sigmoid_cpu(const vkt_node *node) {
    const float *x = vkt_view_host(&node->in[0]->view); // (n)
    float *y = vkt_view_host(&node->out[0]->view);      // (n)
    for (int64_t i = 0, n = in_numel(node); i < n; i++)
        y[i] = (float)sigmoid_stable(x[i]);
}

/* forward: y = 1 / (1 + e^-x), so dy/dx = e^-x / (1 + e^-x)^2 = y (1 - y):
 * the derivative needs only the forward output. */
static void sigmoid_bwd_cpu(const vkt_node *node) {
    const float *dy = vkt_view_host(&node->in[0]->view); // (n)
    const float *y = vkt_view_host(&node->in[1]->view);  // (n)
    float *dx = vkt_view_host(&node->out[0]->view);      // (n)
    for (int64_t i = 0, n = in_numel(node); i < n; i++)
        dx[i] = (float)((double)dy[i] * y[i] * (1.0 - y[i]));
}

// reference: https://pytorch.org/docs/stable/generated/torch.nn.Tanh.html
static void tanh_cpu(const vkt_node *node) {
    const float *x = vkt_view_host(&node->in[0]->view); // (n)
    float *y = vkt_view_host(&node->out[0]->view);      // (n)
    for (int64_t i = 0, n = in_numel(node); i < n; i++)
        y[i] = (float)tanh(x[i]);
}

/* forward: y = tanh(x), so dy/dx = 1 - tanh(x)^2 = 1 - y^2. */
static void tanh_bwd_cpu(const vkt_node *node) {
    const float *dy = vkt_view_host(&node->in[0]->view); // (n)
    const float *y = vkt_view_host(&node->in[1]->view);  // (n)
    float *dx = vkt_view_host(&node->out[0]->view);      // (n)
    for (int64_t i = 0, n = in_numel(node); i < n; i++)
        dx[i] = (float)((double)dy[i] * (1.0 - (double)y[i] * y[i]));
}

#define GELU_BETA 0.7978845608028654 /* sqrt(2 / pi) */
#define GELU_KAPPA 0.044715

// reference: https://pytorch.org/docs/stable/generated/torch.nn.GELU.html
// (approximate='tanh'): y = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
static void gelu_cpu(const vkt_node *node) {
    const float *x = vkt_view_host(&node->in[0]->view); // (n)
    float *y = vkt_view_host(&node->out[0]->view);      // (n)
    for (int64_t i = 0, n = in_numel(node); i < n; i++) {
        double v = x[i];
        y[i] = (float)(0.5 * v * (1.0 + tanh(GELU_BETA * (v + GELU_KAPPA * v * v * v))));
    }
}

/* forward: y = 0.5 x (1 + t), t = tanh(u), u = b (x + k x^3). So
 *   dy/dx = 0.5 (1 + t) + 0.5 x dt/dx
 *   dt/dx = (1 - t^2) du/dx = (1 - t^2) b (1 + 3 k x^2)
 * (PyTorch's GeluBackward with approximate='tanh' is the same formula). */
static void gelu_bwd_cpu(const vkt_node *node) {
    const float *dy = vkt_view_host(&node->in[0]->view); // (n)
    const float *x = vkt_view_host(&node->in[1]->view);  // (n)
    float *dx = vkt_view_host(&node->out[0]->view);      // (n)
    for (int64_t i = 0, n = in_numel(node); i < n; i++) {
        double v = x[i];
        double t = tanh(GELU_BETA * (v + GELU_KAPPA * v * v * v));
        double slope = 0.5 * (1.0 + t) +
                       0.5 * v * (1.0 - t * t) * GELU_BETA * (1.0 + 3.0 * GELU_KAPPA * v * v);
        dx[i] = (float)(dy[i] * slope);
    }
}

// reference: https://pytorch.org/docs/stable/generated/torch.nn.Softmax.html (dim=-1)
/* y = e^(x - max) / sum e^(x - max): subtracting the row max changes
 * nothing mathematically and keeps every exponent <= 0. */
static void softmax_cpu(const vkt_node *node) {
    int64_t R = vkt_shape_rows(&node->in[0]->shape), C = vkt_shape_cols(&node->in[0]->shape);
    const float *x = vkt_view_host(&node->in[0]->view); // (R, C)
    float *y = vkt_view_host(&node->out[0]->view);      // (R, C)
    for (int64_t r = 0; r < R; r++) {
        const float *xr = x + r * C;
        double m = -INFINITY, s = 0.0;
        for (int64_t c = 0; c < C; c++)
            m = fmax(m, xr[c]);
        for (int64_t c = 0; c < C; c++)
            s += exp(xr[c] - m);
        for (int64_t c = 0; c < C; c++)
            y[r * C + c] = (float)(exp(xr[c] - m) / s);
    }
}

/* forward, per row: y_j = e^x_j / sum_k e^x_k, whose Jacobian is
 * dy_j/dx_i = y_j ([i == j] - y_i). So
 *   dx_i = sum_j dy_j y_j ([i == j] - y_i) = y_i (dy_i - sum_j dy_j y_j). */
static void softmax_bwd_cpu(const vkt_node *node) {
    int64_t R = vkt_shape_rows(&node->in[0]->shape), C = vkt_shape_cols(&node->in[0]->shape);
    const float *dy = vkt_view_host(&node->in[0]->view); // (R, C)
    const float *y = vkt_view_host(&node->in[1]->view);  // (R, C)
    float *dx = vkt_view_host(&node->out[0]->view);      // (R, C)
    for (int64_t r = 0; r < R; r++) {
        double dot = 0.0;
        for (int64_t c = 0; c < C; c++)
            dot += (double)dy[r * C + c] * y[r * C + c];
        for (int64_t c = 0; c < C; c++)
            dx[r * C + c] = (float)(y[r * C + c] * (dy[r * C + c] - dot));
    }
}

/* The dropout mask, mirrored exactly in shaders/dropout.comp: the PCG hash
 * of Jarzynski and Olano ("Hash Functions for GPU Rendering", JCGT 2020),
 * chained over (seed, step, element index). Integer-only, wrapping 32-bit
 * arithmetic, so both sides draw the same bits. */
static uint32_t pcg_hash(uint32_t v) {
    uint32_t state = v * 747796405u + 2891336453u;
    uint32_t word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
    return (word >> 22u) ^ word;
}

static uint32_t dropout_hash(uint32_t seed, uint32_t step, uint32_t i) {
    return pcg_hash(i + pcg_hash(step + pcg_hash(seed)));
}

/* The training step from the hyper buffer; a NaN, negative or too large
 * value (undefined to convert) reads as 0, as in the shader. */
static uint32_t hyper_step(const float *hyper) {
    float s = hyper[VKT_HYPER_STEP];
    return s >= 0.0f && s < 4294967296.0f ? (uint32_t)s : 0u;
}

/* An element is kept when its hash is >= rate * 2^32, which happens with
 * probability 1 - rate; kept elements are scaled by 1 / (1 - rate) so the
 * expectation is unchanged. rate == 1 keeps (almost) nothing and scales by
 * 0 rather than by infinity. Shared by the CPU reference and the dispatch so
 * both use the very same threshold and scale. */
static vkt_dropout_push dropout_push(const vkt_node *node) {
    double rate = node->p.dropout.rate;
    double threshold = rate * 4294967296.0;
    return (vkt_dropout_push){
        .n = (uint32_t)in_numel(node),
        .threshold = threshold >= 4294967295.0 ? 4294967295u : (uint32_t)threshold,
        .seed = node->p.dropout.seed,
        .scale = rate >= 1.0 ? 0.0f : (float)(1.0 / (1.0 - rate)),
    };
}

// reference: https://pytorch.org/docs/stable/generated/torch.nn.Dropout.html
/* One function for both directions: y = x * m * scale with the mask m a
 * function of (seed, step, i) only, so dy/dx = m * scale and the backward
 * dx = dy * m * scale is this same map applied to dy. */
static void dropout_cpu(const vkt_node *node) {
    const float *src = vkt_view_host(&node->in[0]->view);   // (n): x or dy
    const float *hyper = vkt_view_host(&node->in[1]->view); // (VKT_HYPER_COUNT)
    float *dst = vkt_view_host(&node->out[0]->view);        // (n): y or dx
    vkt_dropout_push p = dropout_push(node);
    uint32_t step = hyper_step(hyper);
    for (uint32_t i = 0; i < p.n; i++)
        dst[i] = dropout_hash(p.seed, step, i) >= p.threshold ? src[i] * p.scale : 0.0f;
}

// ---- Vulkan dispatch

static void relu_record(const vkt_node *n, vkt_recorder *r) {
    vkt_record_pointwise_vec4(n, r, VKT_KERNEL_RELU_FWD, 0);
}
static void relu_bwd_record(const vkt_node *n, vkt_recorder *r) {
    vkt_record_pointwise_vec4(n, r, VKT_KERNEL_RELU_BWD, 0);
}

/* The pointwise helper passes p.scalar.value as the push constant's scalar;
 * the leaky ReLU kernels read their slope from there. */
static void leaky_record(const vkt_node *node, vkt_recorder *rec, vkt_kernel kernel) {
    vkt_node with_scalar = *node;
    with_scalar.p.scalar.value = node->p.leaky_relu.slope;
    vkt_record_pointwise(&with_scalar, rec, kernel, 0);
}
static void leaky_relu_record(const vkt_node *n, vkt_recorder *r) {
    leaky_record(n, r, VKT_KERNEL_LEAKY_RELU_FWD);
}
static void leaky_relu_bwd_record(const vkt_node *n, vkt_recorder *r) {
    leaky_record(n, r, VKT_KERNEL_LEAKY_RELU_BWD);
}
static void sigmoid_record(const vkt_node *n, vkt_recorder *r) {
    vkt_record_pointwise(n, r, VKT_KERNEL_SIGMOID_FWD, 0);
}
static void sigmoid_bwd_record(const vkt_node *n, vkt_recorder *r) {
    vkt_record_pointwise(n, r, VKT_KERNEL_SIGMOID_BWD, 0);
}
static void tanh_record(const vkt_node *n, vkt_recorder *r) {
    vkt_record_pointwise(n, r, VKT_KERNEL_TANH_FWD, 0);
}
static void tanh_bwd_record(const vkt_node *n, vkt_recorder *r) {
    vkt_record_pointwise(n, r, VKT_KERNEL_TANH_BWD, 0);
}
static void gelu_record(const vkt_node *n, vkt_recorder *r) {
    vkt_record_pointwise(n, r, VKT_KERNEL_GELU_FWD, 0);
}
static void gelu_bwd_record(const vkt_node *n, vkt_recorder *r) {
    vkt_record_pointwise(n, r, VKT_KERNEL_GELU_BWD, 0);
}

/* One workgroup per row (the row's max and sum are workgroup reductions in
 * a fixed order, so long rows use the whole workgroup) or, for short rows,
 * one invocation per row: see vkt_row_grid. */
static void softmax_dispatch(const vkt_node *node, vkt_recorder *rec, vkt_kernel kernel) {
    const vkt_tuning *t = vkt_recorder_tuning(rec);
    const vkt_shape *x = &node->in[0]->shape;
    vkt_softmax_push push = {(uint32_t)vkt_shape_rows(x), (uint32_t)vkt_shape_cols(x)};
    uint32_t spec[2];
    vkt_dispatch d = {.kernel = kernel, .spec = spec, .spec_count = 2,
                      .push = &push, .push_size = sizeof push};
    vkt_row_grid(t, push.rows, push.cols, spec, d.groups);
    for (uint32_t i = 0; i < node->nin; i++)
        d.views[d.view_count++] = &node->in[i]->view;
    d.write_mask = 1u << d.view_count;
    d.views[d.view_count++] = &node->out[0]->view;
    vkt_record_dispatch(rec, &d);
}
static void softmax_record(const vkt_node *n, vkt_recorder *r) {
    softmax_dispatch(n, r, VKT_KERNEL_SOFTMAX_FWD);
}
static void softmax_bwd_record(const vkt_node *n, vkt_recorder *r) {
    softmax_dispatch(n, r, VKT_KERNEL_SOFTMAX_BWD);
}

/* Forward and backward dispatch the same kernel: see dropout_cpu. */
static void dropout_record(const vkt_node *node, vkt_recorder *rec) {
    const vkt_tuning *t = vkt_recorder_tuning(rec);
    vkt_dropout_push push = dropout_push(node);
    uint32_t spec[1] = {t->workgroup_1d};
    vkt_dispatch d = {
        .kernel = VKT_KERNEL_DROPOUT, .spec = spec, .spec_count = 1,
        .views = {&node->in[0]->view, &node->in[1]->view, &node->out[0]->view},
        .view_count = 3, .write_mask = 1u << 2,
        .push = &push, .push_size = sizeof push,
    };
    vkt_grid_1d(push.n, t->workgroup_1d, d.groups);
    vkt_record_dispatch(rec, &d);
}

#define DEF(name, nin, infer, fn) \
    {#name, nin, 1, infer, fn##_cpu, fn##_record}
const vkt_op_def vkt_op_relu_def = DEF(relu, 1, same_as_input_infer, relu);
const vkt_op_def vkt_op_relu_bwd_def = DEF(relu_bwd, 2, backward_infer, relu_bwd);
const vkt_op_def vkt_op_leaky_relu_def = DEF(leaky_relu, 1, same_as_input_infer, leaky_relu);
const vkt_op_def vkt_op_leaky_relu_bwd_def =
    DEF(leaky_relu_bwd, 2, backward_infer, leaky_relu_bwd);
const vkt_op_def vkt_op_sigmoid_def = DEF(sigmoid, 1, same_as_input_infer, sigmoid);
const vkt_op_def vkt_op_sigmoid_bwd_def = DEF(sigmoid_bwd, 2, backward_infer, sigmoid_bwd);
const vkt_op_def vkt_op_tanh_def = DEF(tanh, 1, same_as_input_infer, tanh);
const vkt_op_def vkt_op_tanh_bwd_def = DEF(tanh_bwd, 2, backward_infer, tanh_bwd);
const vkt_op_def vkt_op_gelu_def = DEF(gelu, 1, same_as_input_infer, gelu);
const vkt_op_def vkt_op_gelu_bwd_def = DEF(gelu_bwd, 2, backward_infer, gelu_bwd);
const vkt_op_def vkt_op_softmax_def = DEF(softmax, 1, same_as_input_infer, softmax);
const vkt_op_def vkt_op_softmax_bwd_def = DEF(softmax_bwd, 2, backward_infer, softmax_bwd);
const vkt_op_def vkt_op_dropout_def = {"dropout", 2, 1, dropout_infer, dropout_cpu,
                                       dropout_record};
const vkt_op_def vkt_op_dropout_bwd_def = {"dropout_bwd", 2, 1, dropout_infer, dropout_cpu,
                                           dropout_record};
