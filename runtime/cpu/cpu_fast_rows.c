/* cpu_fast_rows.c: the fast CPU backend's row-wise ops: softmax and its
 * backward, and the losses fused with their gradients (softmax
 * cross-entropy, MSE, BCE with logits). The references (activation.c,
 * loss.c) work in double; these in float, with the same formulas, the same
 * row-max shift and the same rule for bad labels, so the derivations next
 * to the references hold here too.
 *
 * Dimension legend: B batch, C classes or columns, R rows, N all elements. */
#include "cpu_fast.h"

#include <math.h>

/* The reference's rule (loss.c): an integer class index in [0, C); NaN
 * fails every comparison. */
static bool label_valid(float label, int64_t C) {
    return label >= 0.0f && (double)label < (double)C && label == floorf(label);
}

static float row_max(const float *x, int64_t C) {
    float m = -INFINITY;
    for (int64_t c = 0; c < C; c++)
        m = fmaxf(m, x[c]);
    return m;
}

static float sum_floats(const float *x, int64_t n) {
    float sum = 0.0f;
    for (int64_t i = 0; i < n; i++)
        sum += x[i];
    return sum;
}

/* y = e^(x - max) / sum e^(x - max); the exponentials are stored in y on
 * the way (y may be x: each x[c] is read before y[c] is written). */
void vkt_cpu_fast_softmax(const vkt_node *node) {
    int64_t R = vkt_shape_rows(&node->in[0]->shape), C = vkt_shape_cols(&node->in[0]->shape);
    const float *x = vkt_view_host(&node->in[0]->view); // (R, C)
    float *y = vkt_view_host(&node->out[0]->view);      // (R, C)
    for (int64_t r = 0; r < R; r++) {
        const float *xr = x + r * C;
        float *yr = y + r * C;
        float m = row_max(xr, C), s = 0.0f;
        for (int64_t c = 0; c < C; c++) {
            yr[c] = expf(xr[c] - m);
            s += yr[c];
        }
        for (int64_t c = 0; c < C; c++)
            yr[c] = yr[c] / s;
    }
}

/* dx_i = y_i (dy_i - sum_j dy_j y_j), as derived in activation.c. */
void vkt_cpu_fast_softmax_bwd(const vkt_node *node) {
    int64_t R = vkt_shape_rows(&node->in[0]->shape), C = vkt_shape_cols(&node->in[0]->shape);
    const float *dy = vkt_view_host(&node->in[0]->view); // (R, C)
    const float *y = vkt_view_host(&node->in[1]->view);  // (R, C)
    float *dx = vkt_view_host(&node->out[0]->view);      // (R, C)
    for (int64_t r = 0; r < R; r++) {
        float dot = 0.0f;
        for (int64_t c = 0; c < C; c++)
            dot += dy[r * C + c] * y[r * C + c];
        for (int64_t c = 0; c < C; c++)
            dx[r * C + c] = y[r * C + c] * (dy[r * C + c] - dot);
    }
}

/* Per row: loss_b = (m - x_l) + log s and dL/dx_bc = (e_c / s - [c == l]) / B
 * with e_c = e^(x_c - m), s = sum_c e_c (derived in loss.c). A bad label
 * makes the row's loss and gradient NaN, and is never used as an index. */
void vkt_cpu_fast_softmax_ce(const vkt_node *node) {
    int64_t B = node->in[0]->shape.dims[0], C = node->in[0]->shape.dims[1];
    const float *logits = vkt_view_host(&node->in[0]->view); // (B, C)
    const float *labels = vkt_view_host(&node->in[1]->view); // (B)
    float *loss = vkt_view_host(&node->out[0]->view);        // (1)
    float *dlogits = vkt_view_host(&node->out[1]->view);     // (B, C)
    float *row_loss = vkt_view_host(&node->out[2]->view);    // (B)
    float inv_batch = (float)(1.0 / (double)B);
    for (int64_t b = 0; b < B; b++) {
        const float *x = logits + b * C;
        float *d = dlogits + b * C; /* may be x: see vkt_cpu_fast_softmax */
        bool ok = label_valid(labels[b], C);
        int64_t label = ok ? (int64_t)labels[b] : 0;
        float x_label = x[label]; /* before d is written */
        float m = row_max(x, C), s = 0.0f;
        for (int64_t c = 0; c < C; c++) {
            d[c] = expf(x[c] - m);
            s += d[c];
        }
        float scale = ok ? inv_batch / s : NAN;
        for (int64_t c = 0; c < C; c++)
            d[c] = d[c] * scale;
        d[label] -= inv_batch;
        row_loss[b] = ok ? (m - x_label) + logf(s) : NAN;
    }
    loss[0] = sum_floats(row_loss, B) * inv_batch;
}

/* L = (1/N) sum (p - t)^2, dL/dp = 2 (p - t) / N. */
void vkt_cpu_fast_mse(const vkt_node *node) {
    int64_t R = vkt_shape_rows(&node->in[0]->shape), C = vkt_shape_cols(&node->in[0]->shape);
    double N = (double)(R * C);
    const float *pred = vkt_view_host(&node->in[0]->view);   // (R, C)
    const float *target = vkt_view_host(&node->in[1]->view); // (R, C)
    float *loss = vkt_view_host(&node->out[0]->view);        // (1)
    float *dpred = vkt_view_host(&node->out[1]->view);       // (R, C)
    float *row_loss = vkt_view_host(&node->out[2]->view);    // (R)
    float grad_scale = (float)(2.0 / N);
    for (int64_t r = 0; r < R; r++) {
        float s = 0.0f;
        for (int64_t c = r * C; c < (r + 1) * C; c++) {
            float d = pred[c] - target[c];
            s += d * d;
            dpred[c] = d * grad_scale;
        }
        row_loss[r] = s;
    }
    loss[0] = sum_floats(row_loss, R) * (float)(1.0 / N);
}

/* l = max(x, 0) - x t + log(1 + e^-|x|), dl/dx = sigmoid(x) - t, both over
 * N for the mean (derived in loss.c); sigmoid through e^-|x| <= 1. */
void vkt_cpu_fast_bce_logits(const vkt_node *node) {
    int64_t R = vkt_shape_rows(&node->in[0]->shape), C = vkt_shape_cols(&node->in[0]->shape);
    float inv_n = (float)(1.0 / (double)(R * C));
    const float *logits = vkt_view_host(&node->in[0]->view); // (R, C)
    const float *target = vkt_view_host(&node->in[1]->view); // (R, C)
    float *loss = vkt_view_host(&node->out[0]->view);        // (1)
    float *dlogits = vkt_view_host(&node->out[1]->view);     // (R, C)
    float *row_loss = vkt_view_host(&node->out[2]->view);    // (R)
    for (int64_t r = 0; r < R; r++) {
        float s = 0.0f;
        for (int64_t c = r * C; c < (r + 1) * C; c++) {
            float x = logits[c], t = target[c];
            float e = expf(-fabsf(x));
            float sigmoid = x >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);
            s += fmaxf(x, 0.0f) - x * t + log1pf(e);
            dlogits[c] = (sigmoid - t) * inv_n;
        }
        row_loss[r] = s;
    }
    loss[0] = sum_floats(row_loss, R) * inv_n;
}
