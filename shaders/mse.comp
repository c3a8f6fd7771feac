#version 450
// mse: the per-row part of the mean squared error of pred and target, both
// viewed as (rows, cols):
//   row_loss[r] = sum_c (pred - target)^2
//   dpred       = (pred - target) * grad_scale, grad_scale = 2 / numel
// reduce_sum.comp then forms loss = sum(row_loss) / numel. One workgroup per
// row.
#extension GL_GOOGLE_include_directive : require

layout(local_size_x_id = 0) in;

#include "workgroup_reduce.glsl"

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
    uint row = workgroup_row();
    if (row >= pc.rows) // the same for the whole workgroup: barriers stay uniform
        return;
    uint base = row * pc.cols, tid = gl_LocalInvocationID.x, wg = gl_WorkGroupSize.x;

    float s = 0.0;
    for (uint c = tid; c < pc.cols; c += wg) {
        float d = pred[base + c] - target[base + c];
        s += d * d;
        dpred[base + c] = d * pc.grad_scale;
    }
    s = workgroup_sum(s);
    if (tid == 0)
        row_loss[row] = s;
}
