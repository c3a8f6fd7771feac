#version 450
// mse: the per-row part of the mean squared error of pred and target, both
// viewed as (rows, cols):
//   row_loss[r] = sum_c (pred - target)^2
//   dpred       = (pred - target) * grad_scale, grad_scale = 2 / numel
// reduce_sum.comp then forms loss = sum(row_loss) / numel. One workgroup or
// one invocation per row (row_kernel.glsl).
#extension GL_GOOGLE_include_directive : require

layout(local_size_x_id = 0) in;

#include "common.glsl"
#include "row_kernel.glsl"

layout(std430, binding = 0) readonly buffer Pred { float pred[]; };
layout(std430, binding = 1) readonly buffer Target { float target[]; };
layout(std430, binding = 2) writeonly buffer DPred { float dpred[]; };
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
        float d = pred[base + c] - target[base + c];
        s += d * d;
        dpred[base + c] = d * pc.grad_scale;
    }
    s = row_sum(s);
    if (row_leader())
        row_loss[row] = s;
}
