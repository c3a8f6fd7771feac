#version 450
// softmax_bwd: dx (rows, cols) from dy and the forward output y, row by row:
// dx = y * (dy - sum_row(dy * y)). One workgroup per row.
#extension GL_GOOGLE_include_directive : require

layout(local_size_x_id = 0) in;

#include "workgroup_reduce.glsl"

layout(std430, binding = 0) readonly buffer DY { float dy[]; };
layout(std430, binding = 1) readonly buffer Y { float y[]; };
layout(std430, binding = 2) writeonly buffer DX { float dx[]; };

layout(push_constant) uniform Push { // vkt_softmax_push
    uint rows;
    uint cols;
} pc;

void main() {
    uint row = workgroup_row();
    if (row >= pc.rows) // the same for the whole workgroup: barriers stay uniform
        return;
    uint base = row * pc.cols, tid = gl_LocalInvocationID.x, wg = gl_WorkGroupSize.x;

    float dot = 0.0;
    for (uint c = tid; c < pc.cols; c += wg)
        dot += dy[base + c] * y[base + c];
    dot = workgroup_sum(dot);

    for (uint c = tid; c < pc.cols; c += wg)
        dx[base + c] = y[base + c] * (dy[base + c] - dot);
}
