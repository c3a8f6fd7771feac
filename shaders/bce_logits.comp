#version 450
// bce_logits: the per-row part of binary cross-entropy on logits x with
// targets t in [0, 1], both viewed as (rows, cols). Per element
//   l(x, t) = -t log sigmoid(x) - (1 - t) log(1 - sigmoid(x))
//           = max(x, 0) - x t + log(1 + e^-|x|)
// where the second form never overflows (e^-|x| <= 1). Its derivative is
// dl/dx = sigmoid(x) - t. So
//   row_loss[r] = sum_c l(x, t)
//   dlogits     = (sigmoid(x) - t) * grad_scale, grad_scale = 1 / numel
// reduce_sum.comp then forms loss = sum(row_loss) / numel. One workgroup or
// one invocation per row (row_kernel.glsl).
#extension GL_GOOGLE_include_directive : require

layout(local_size_x_id = 0) in;

#include "common.glsl"
#include "row_kernel.glsl"
#include "activation.glsl"

layout(std430, binding = 0) readonly buffer Logits { float logits[]; };
layout(std430, binding = 1) readonly buffer Target { float target[]; };
layout(std430, binding = 2) writeonly buffer DLogits { float dlogits[]; };
layout(std430, binding = 3) writeonly buffer RowLoss { float row_loss[]; };

layout(push_constant) uniform Push { // vkt_row_loss_push
    uint rows;
    uint cols;
    float grad_scale;
} pc;

void main() {
    uint row = row_index();
    if (row >= pc.rows) // uniform per workgroup where a workgroup shares a row
        return;
    uint base = row * pc.cols, tid = row_lane(), wg = row_lanes();

    float s = 0.0;
    for (uint c = tid; c < pc.cols; c += wg) {
        float x = logits[base + c], t = target[base + c];
        s += max(x, 0.0) - x * t + log1p_stable(exp(-abs(x)));
        // sigmoid(x) - t with e = sigmoid(-|x|): for x >= 0 it is
        // (1 - t) - e, which keeps its relative accuracy where the two
        // nearly cancel (x large, t = 1); for x < 0 it is e - t.
        float e = sigmoid_stable(-abs(x));
        dlogits[base + c] = (x >= 0.0 ? (1.0 - t) - e : e - t) * pc.grad_scale;
    }
    s = row_sum(s);
    if (row_leader())
        row_loss[row] = s;
}
