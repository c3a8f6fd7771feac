/* loss.c: the training losses, each fused with its gradient: softmax
 * cross-entropy on logits with integer labels, mean squared error, and
 * binary cross-entropy on logits. Each writes the scalar mean loss, the
 * gradient of that loss with respect to its first input, and a per-row
 * scratch vector: a per-row kernel writes the gradient and the row sums,
 * then reduce_sum (reduce.c) forms the mean in a fixed order.
 *
 * Node contracts (inputs; outputs):
 *   softmax_ce  {logits (B, C), labels (B)}  {loss (1), dlogits (B, C), row_loss (B)}
 *   mse         {pred, target}               {loss (1), dpred, row_loss (R)}
 *   bce_logits  {logits, target}             {loss (1), dlogits, row_loss (R)}
 * where mse and bce_logits view their inputs as (R, C), C the last dim.
 *
 * Dimension legend: B batch, C classes or columns, R rows, N all elements. */
#include "op.h"

#include <math.h>
#include <stdio.h>

static vkt_result softmax_ce_infer(const vkt_node *node, vkt_shape *out, char *err,
                                   size_t size) {
    const vkt_shape *logits = &node->in[0]->shape, *labels = &node->in[1]->shape;
    char s1[64], s2[64];
    if (logits->ndim != 2 || labels->ndim != 1 || labels->dims[0] != logits->dims[0]) {
        snprintf(err, size, "logits %s must be (B, C) and labels %s (B)",
                 vkt_shape_format(logits, s1, 64), vkt_shape_format(labels, s2, 64));
        return VKT_ERROR_SHAPE;
    }
    out[0] = (vkt_shape){.ndim = 1, .dims = {1}};
    out[1] = *logits;
    out[2] = (vkt_shape){.ndim = 1, .dims = {logits->dims[0]}};
    return VKT_OK;
}

/* mse and bce_logits: {input, target} of the same shape. */
static vkt_result pairwise_loss_infer(const vkt_node *node, vkt_shape *out, char *err,
                                      size_t size) {
    const vkt_shape *x = &node->in[0]->shape, *target = &node->in[1]->shape;
    if (!vkt_shape_equal(x, target)) {
        char s1[64], s2[64];
        snprintf(err, size, "%s %s and target %s must have the same shape",
                 node->op == VKT_OP_MSE ? "pred" : "logits", vkt_shape_format(x, s1, 64),
                 vkt_shape_format(target, s2, 64));
        return VKT_ERROR_SHAPE;
    }
    out[0] = (vkt_shape){.ndim = 1, .dims = {1}};
    out[1] = *x;
    out[2] = (vkt_shape){.ndim = 1, .dims = {vkt_shape_rows(x)}};
    return VKT_OK;
}

// ---- CPU reference

/* A label must be an integer class index in [0, C); NaN fails every
 * comparison and so is rejected too. */
static bool label_valid(float label, int64_t C) {
    return label >= 0.0f && (double)label < (double)C && label == floorf(label);
}

// reference: https://pytorch.org/docs/stable/generated/torch.nn.CrossEntropyLoss.html
/* Per row, with m = max_c x_c and s = sum_c e^(x_c - m):
 *   loss_b = -log softmax(x)_l = -(x_l - m - log s) = (m - x_l) + log s
 * and the mean over the batch is L = (1/B) sum_b loss_b. Differentiating,
 *   dloss_b/dx_c = e^(x_c - m) / s - [c == l] = softmax(x)_c - onehot_c
 *   dL/dx_bc    = (softmax(x_b)_c - onehot_c) / B.
 * A bad label (not an integer in [0, C)) makes that row's loss and gradient
 * NaN, so the batch loss is NaN and a NaN guard stops the step; the label is
 * clamped before it indexes anything. */
static void softmax_ce_cpu(const vkt_node *node) {
    int64_t B = node->in[0]->shape.dims[0], C = node->in[0]->shape.dims[1];
    const float *logits = vkt_view_host(&node->in[0]->view); // (B, C)
    const float *labels = vkt_view_host(&node->in[1]->view); // (B)
    float *loss = vkt_view_host(&node->out[0]->view);        // (1)
    float *dlogits = vkt_view_host(&node->out[1]->view);     // (B, C)
    float *row_loss = vkt_view_host(&node->out[2]->view);    // (B)
    for (int64_t b = 0; b < B; b++) {
        const float *x = logits + b * C;
        bool ok = label_valid(labels[b], C);
        int64_t label = ok ? (int64_t)labels[b] : 0;
        double x_label = x[label]; /* before dlogits, which may be x, is written */
        double m = -INFINITY, s = 0.0;
        for (int64_t c = 0; c < C; c++)
            m = fmax(m, x[c]);
        for (int64_t c = 0; c < C; c++)
            s += exp(x[c] - m);
        for (int64_t c = 0; c < C; c++) {
            double p = exp(x[c] - m) / s;
            dlogits[b * C + c] = ok ? (float)((p - (c == label ? 1.0 : 0.0)) / (double)B) : NAN;
        }
        row_loss[b] = ok ? (float)((m - x_label) + log(s)) : NAN;
    }
    loss[0] = (float)(vkt_cpu_sum(row_loss, B) / (double)B);
}

// reference: https://pytorch.org/docs/stable/generated/torch.nn.MSELoss.html (reduction='mean')
/* L = (1/N) sum_i (p_i - t_i)^2 over all N elements, so
 * dL/dp_i = 2 (p_i - t_i) / N. */
static void mse_cpu(const vkt_node *node) {
    int64_t R = vkt_shape_rows(&node->in[0]->shape), C = vkt_shape_cols(&node->in[0]->shape);
    int64_t N = R * C;
    const float *pred = vkt_view_host(&node->in[0]->view);   // (R, C)
    const float *target = vkt_view_host(&node->in[1]->view); // (R, C)
    float *loss = vkt_view_host(&node->out[0]->view);        // (1)
    float *dpred = vkt_view_host(&node->out[1]->view);       // (R, C)
    float *row_loss = vkt_view_host(&node->out[2]->view);    // (R)
    for (int64_t r = 0; r < R; r++) {
        double s = 0.0;
        for (int64_t c = r * C; c < (r + 1) * C; c++) {
            double d = (double)pred[c] - target[c];
            s += d * d;
            dpred[c] = (float)(2.0 * d / (double)N);
        }
        row_loss[r] = (float)s;
    }
    loss[0] = (float)(vkt_cpu_sum(row_loss, R) / (double)N);
}

/* sigmoid(x) through e^-|x| <= 1, as in activation.c. */
static double sigmoid_of(double x) {
    double e = exp(-fabs(x));
    return x >= 0.0 ? 1.0 / (1.0 + e) : e / (1.0 + e);
}

// reference: https://pytorch.org/docs/stable/generated/torch.nn.BCEWithLogitsLoss.html
/* Per element, with s = sigmoid(x):
 *   l = -t log s - (1 - t) log(1 - s)
 * and since log s = -log(1 + e^-x), log(1 - s) = -x - log(1 + e^-x):
 *   l = x - x t + log(1 + e^-x) = max(x, 0) - x t + log(1 + e^-|x|)
 * (the last form, the one PyTorch uses, never overflows). Differentiating
 * the middle form, dl/dx = 1 - t - e^-x / (1 + e^-x) = s - t, so for the
 * mean L = (1/N) sum l, dL/dx = (s - t) / N. */
static void bce_logits_cpu(const vkt_node *node) {
    int64_t R = vkt_shape_rows(&node->in[0]->shape), C = vkt_shape_cols(&node->in[0]->shape);
    int64_t N = R * C;
    const float *logits = vkt_view_host(&node->in[0]->view); // (R, C)
    const float *target = vkt_view_host(&node->in[1]->view); // (R, C)
    float *loss = vkt_view_host(&node->out[0]->view);        // (1)
    float *dlogits = vkt_view_host(&node->out[1]->view);     // (R, C)
    float *row_loss = vkt_view_host(&node->out[2]->view);    // (R)
    for (int64_t r = 0; r < R; r++) {
        double s = 0.0;
        for (int64_t c = r * C; c < (r + 1) * C; c++) {
            double x = logits[c], t = target[c];
            s += fmax(x, 0.0) - x * t + log1p(exp(-fabs(x)));
            dlogits[c] = (float)((sigmoid_of(x) - t) / (double)N);
        }
        row_loss[r] = (float)s;
    }
    loss[0] = (float)(vkt_cpu_sum(row_loss, R) / (double)N);
}

// ---- Vulkan dispatch

/* The per-row kernel (a workgroup or an invocation per row) writes the gradient and the
 * row sums; reduce_sum then writes loss = sum(row_loss) * loss_scale. The
 * recorder places the barrier between them (row_loss is written, then
 * read). */
static void record_row_loss(const vkt_node *node, vkt_recorder *rec, vkt_kernel kernel,
                            const vkt_shape *rows_cols, float grad_scale, float loss_scale) {
    const vkt_tuning *t = vkt_recorder_tuning(rec);
    vkt_row_loss_push push = {(uint32_t)vkt_shape_rows(rows_cols),
                              (uint32_t)vkt_shape_cols(rows_cols), grad_scale};
    uint32_t spec[2];
    vkt_dispatch d = {
        .kernel = kernel, .spec = spec, .spec_count = 2,
        .views = {&node->in[0]->view, &node->in[1]->view, &node->out[1]->view,
                  &node->out[2]->view},
        .view_count = 4, .write_mask = (1u << 2) | (1u << 3),
        .push = &push, .push_size = sizeof push,
    };
    vkt_row_grid(t, push.rows, push.cols, spec, d.groups);
    vkt_record_dispatch(rec, &d);
    vkt_record_reduce_sum(rec, &node->out[2]->view, push.rows, &node->out[0]->view, loss_scale);
}

static void softmax_ce_record(const vkt_node *node, vkt_recorder *rec) {
    const vkt_shape *logits = &node->in[0]->shape;
    float inv_batch = (float)(1.0 / (double)logits->dims[0]);
    record_row_loss(node, rec, VKT_KERNEL_SOFTMAX_CE, logits, inv_batch, inv_batch);
}

static void mse_record(const vkt_node *node, vkt_recorder *rec) {
    const vkt_shape *pred = &node->in[0]->shape;
    double n = (double)vkt_shape_numel(pred);
    record_row_loss(node, rec, VKT_KERNEL_MSE, pred, (float)(2.0 / n), (float)(1.0 / n));
}

static void bce_logits_record(const vkt_node *node, vkt_recorder *rec) {
    const vkt_shape *logits = &node->in[0]->shape;
    float inv_n = (float)(1.0 / (double)vkt_shape_numel(logits));
    record_row_loss(node, rec, VKT_KERNEL_BCE_LOGITS, logits, inv_n, inv_n);
}

const vkt_op_def vkt_op_softmax_ce_def = {"softmax_ce", 2, 3, softmax_ce_infer, softmax_ce_cpu,
                                          softmax_ce_record};
const vkt_op_def vkt_op_mse_def = {"mse", 2, 3, pairwise_loss_infer, mse_cpu, mse_record};
const vkt_op_def vkt_op_bce_logits_def = {"bce_logits", 2, 3, pairwise_loss_infer,
                                          bce_logits_cpu, bce_logits_record};
