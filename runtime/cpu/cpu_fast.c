/* cpu_fast.c: the fast CPU backend's op -> kernel table, and its kernels for
 * the linear-layer ops (matmul, matmul_bias, bias_add, column_sum), the
 * elementwise ops and the pointwise activations. Each does what its op's
 * reference in runtime/ops/ does, in float, in loops without calls or
 * loop-carried dependences so that the compiler vectorizes them. Ops without
 * a fast kernel run through their reference: dropout (its hash is already
 * integer work), GELU (float tanh of x^3 overflows long before the
 * reference's double does), clip_scale (one number) and average pooling
 * (not in the CNN step).
 *
 * Dimension legend: R rows, C columns (the last dimension), n elements. */
#include "cpu_fast.h"

#include <math.h>

// ---- Linear layers

static void sgemm_node(const vkt_node *node, const float *bias, bool relu) {
    const vkt_shape *a = &node->in[0]->shape, *b = &node->in[1]->shape;
    bool ta = node->p.matmul.transpose_a, tb = node->p.matmul.transpose_b;
    vkt_sgemm g = {
        .m = ta ? a->dims[1] : a->dims[0],
        .k = ta ? a->dims[0] : a->dims[1],
        .n = tb ? b->dims[0] : b->dims[1],
        .a = vkt_view_host(&node->in[0]->view),
        .b = vkt_view_host(&node->in[1]->view),
        .bias = bias,
        .c = vkt_view_host(&node->out[0]->view),
        .transpose_a = ta,
        .transpose_b = tb,
        .accumulate = node->p.matmul.accumulate,
        .relu = relu,
    };
    vkt_cpu_sgemm(&g);
}

static void matmul_fast(const vkt_node *node) { sgemm_node(node, NULL, false); }

static void matmul_bias_fast(const vkt_node *node) {
    sgemm_node(node, vkt_view_host(&node->in[2]->view), node->p.matmul.relu);
}

/* out may be x (the eager call allows it): each element is read before it
 * is written. */
static void bias_add_fast(const vkt_node *node) {
    int64_t R = vkt_shape_rows(&node->in[0]->shape), C = vkt_shape_cols(&node->in[0]->shape);
    const float *x = vkt_view_host(&node->in[0]->view);             // (R, C)
    const float *restrict bias = vkt_view_host(&node->in[1]->view); // (C)
    float *out = vkt_view_host(&node->out[0]->view);                // (R, C)
    for (int64_t r = 0; r < R; r++)
        for (int64_t c = 0; c < C; c++)
            out[r * C + c] = x[r * C + c] + bias[c];
}

/* Row by row, so that the inner loop runs along contiguous columns; each
 * column's sum is still in row order, in float. */
static void column_sum_fast(const vkt_node *node) {
    int64_t R = vkt_shape_rows(&node->in[0]->shape), C = vkt_shape_cols(&node->in[0]->shape);
    const float *restrict x = vkt_view_host(&node->in[0]->view); // (R, C)
    float *restrict out = vkt_view_host(&node->out[0]->view);    // (C)
    if (!node->p.reduce.accumulate)
        for (int64_t c = 0; c < C; c++)
            out[c] = 0.0f;
    for (int64_t r = 0; r < R; r++)
        for (int64_t c = 0; c < C; c++)
            out[c] += x[r * C + c];
}

// ---- Elementwise ops (in place allowed: the same index in and out)

static int64_t out_numel(const vkt_node *node) { return vkt_shape_numel(&node->out[0]->shape); }

static void add_fast(const vkt_node *node) {
    const float *a = vkt_view_host(&node->in[0]->view), *b = vkt_view_host(&node->in[1]->view);
    float *out = vkt_view_host(&node->out[0]->view); // (n)
    for (int64_t i = 0, n = out_numel(node); i < n; i++)
        out[i] = a[i] + b[i];
}

static void sub_fast(const vkt_node *node) {
    const float *a = vkt_view_host(&node->in[0]->view), *b = vkt_view_host(&node->in[1]->view);
    float *out = vkt_view_host(&node->out[0]->view); // (n)
    for (int64_t i = 0, n = out_numel(node); i < n; i++)
        out[i] = a[i] - b[i];
}

static void mul_fast(const vkt_node *node) {
    const float *a = vkt_view_host(&node->in[0]->view), *b = vkt_view_host(&node->in[1]->view);
    float *out = vkt_view_host(&node->out[0]->view); // (n)
    for (int64_t i = 0, n = out_numel(node); i < n; i++)
        out[i] = a[i] * b[i];
}

static void scale_fast(const vkt_node *node) {
    const float *x = vkt_view_host(&node->in[0]->view); // (n)
    float *out = vkt_view_host(&node->out[0]->view);    // (n)
    float s = node->p.scalar.value;
    for (int64_t i = 0, n = out_numel(node); i < n; i++)
        out[i] = x[i] * s;
}

static void fill_fast(const vkt_node *node) {
    float *out = vkt_view_host(&node->out[0]->view); // (n)
    float v = node->p.scalar.value;
    for (int64_t i = 0, n = out_numel(node); i < n; i++)
        out[i] = v;
}

// ---- Pointwise activations (the references' formulas, in float)

static void relu_fast(const vkt_node *node) {
    const float *x = vkt_view_host(&node->in[0]->view); // (n)
    float *y = vkt_view_host(&node->out[0]->view);      // (n)
    for (int64_t i = 0, n = out_numel(node); i < n; i++)
        y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

static void relu_bwd_fast(const vkt_node *node) {
    const float *dy = vkt_view_host(&node->in[0]->view); // (n)
    const float *x = vkt_view_host(&node->in[1]->view);  // (n)
    float *dx = vkt_view_host(&node->out[0]->view);      // (n)
    /* dy is loaded whatever the sign: a load under the condition would be
     * a branch (mispredicted half the time on a ReLU's inputs) where an
     * unconditional one makes a vector select. */
    for (int64_t i = 0, n = out_numel(node); i < n; i++) {
        float d = dy[i];
        dx[i] = x[i] > 0.0f ? d : 0.0f;
    }
}

static void leaky_relu_fast(const vkt_node *node) {
    const float *x = vkt_view_host(&node->in[0]->view); // (n)
    float *y = vkt_view_host(&node->out[0]->view);      // (n)
    float slope = node->p.leaky_relu.slope;
    /* x * 1 is x exactly: the product is unconditional, which the
     * vectorizer needs (a conditional multiply could raise a floating-point
     * exception the scalar code would not). */
    for (int64_t i = 0, n = out_numel(node); i < n; i++)
        y[i] = x[i] * (x[i] > 0.0f ? 1.0f : slope);
}

static void leaky_relu_bwd_fast(const vkt_node *node) {
    const float *dy = vkt_view_host(&node->in[0]->view); // (n)
    const float *x = vkt_view_host(&node->in[1]->view);  // (n)
    float *dx = vkt_view_host(&node->out[0]->view);      // (n)
    float slope = node->p.leaky_relu.slope;
    for (int64_t i = 0, n = out_numel(node); i < n; i++) /* as leaky_relu_fast */
        dx[i] = dy[i] * (x[i] > 0.0f ? 1.0f : slope);
}

/* Through e = e^-|x| <= 1, which never overflows, as the reference. */
static void sigmoid_fast(const vkt_node *node) {
    const float *x = vkt_view_host(&node->in[0]->view); // (n)
    float *y = vkt_view_host(&node->out[0]->view);      // (n)
    for (int64_t i = 0, n = out_numel(node); i < n; i++) {
        float e = expf(-fabsf(x[i]));
        y[i] = x[i] >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);
    }
}

/* dy/dx = y (1 - y), from the forward output. */
static void sigmoid_bwd_fast(const vkt_node *node) {
    const float *dy = vkt_view_host(&node->in[0]->view); // (n)
    const float *y = vkt_view_host(&node->in[1]->view);  // (n)
    float *dx = vkt_view_host(&node->out[0]->view);      // (n)
    for (int64_t i = 0, n = out_numel(node); i < n; i++)
        dx[i] = dy[i] * y[i] * (1.0f - y[i]);
}

static void tanh_fast(const vkt_node *node) {
    const float *x = vkt_view_host(&node->in[0]->view); // (n)
    float *y = vkt_view_host(&node->out[0]->view);      // (n)
    for (int64_t i = 0, n = out_numel(node); i < n; i++)
        y[i] = tanhf(x[i]);
}

/* dy/dx = 1 - y^2, from the forward output. */
static void tanh_bwd_fast(const vkt_node *node) {
    const float *dy = vkt_view_host(&node->in[0]->view); // (n)
    const float *y = vkt_view_host(&node->in[1]->view);  // (n)
    float *dx = vkt_view_host(&node->out[0]->view);      // (n)
    for (int64_t i = 0, n = out_numel(node); i < n; i++)
        dx[i] = dy[i] * (1.0f - y[i] * y[i]);
}

// ---- The table

static const vkt_cpu_fast_fn fast_kernels[VKT_OP_COUNT] = {
    [VKT_OP_MATMUL] = matmul_fast,
    [VKT_OP_MATMUL_BIAS] = matmul_bias_fast,
    [VKT_OP_BIAS_ADD] = bias_add_fast,
    [VKT_OP_COLUMN_SUM] = column_sum_fast,
    [VKT_OP_ADD] = add_fast,
    [VKT_OP_SUB] = sub_fast,
    [VKT_OP_MUL] = mul_fast,
    [VKT_OP_SCALE] = scale_fast,
    [VKT_OP_FILL] = fill_fast,
    [VKT_OP_RELU] = relu_fast,
    [VKT_OP_RELU_BWD] = relu_bwd_fast,
    [VKT_OP_LEAKY_RELU] = leaky_relu_fast,
    [VKT_OP_LEAKY_RELU_BWD] = leaky_relu_bwd_fast,
    [VKT_OP_SIGMOID] = sigmoid_fast,
    [VKT_OP_SIGMOID_BWD] = sigmoid_bwd_fast,
    [VKT_OP_TANH] = tanh_fast,
    [VKT_OP_TANH_BWD] = tanh_bwd_fast,
    [VKT_OP_SOFTMAX] = vkt_cpu_fast_softmax,
    [VKT_OP_SOFTMAX_BWD] = vkt_cpu_fast_softmax_bwd,
    [VKT_OP_SOFTMAX_CE] = vkt_cpu_fast_softmax_ce,
    [VKT_OP_MSE] = vkt_cpu_fast_mse,
    [VKT_OP_BCE_LOGITS] = vkt_cpu_fast_bce_logits,
    [VKT_OP_CONV2D] = vkt_cpu_fast_conv2d,
    [VKT_OP_CONV2D_BWD_INPUT] = vkt_cpu_fast_conv2d_bwd_input,
    [VKT_OP_CONV2D_BWD_WEIGHT] = vkt_cpu_fast_conv2d_bwd_weight,
    [VKT_OP_CONV2D_BWD_BIAS] = vkt_cpu_fast_conv2d_bwd_bias,
    [VKT_OP_MAXPOOL2D] = vkt_cpu_fast_maxpool2d,
    [VKT_OP_MAXPOOL2D_BWD] = vkt_cpu_fast_maxpool2d_bwd,
    [VKT_OP_SGD] = vkt_cpu_fast_sgd,
    [VKT_OP_ADAM] = vkt_cpu_fast_adam,
    [VKT_OP_SUM_SQUARES] = vkt_cpu_fast_sum_squares,
};

vkt_cpu_fast_fn vkt_cpu_fast_kernel(vkt_op op) {
    return (unsigned)op < VKT_OP_COUNT ? fast_kernels[op] : NULL;
}
