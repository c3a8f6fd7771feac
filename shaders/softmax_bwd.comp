#version 450
// softmax_bwd: dx (rows, cols) from dy and the forward output y, row by row:
// dx = y * (dy - sum_row(dy * y)). One workgroup or one invocation per row
// (row_kernel.glsl).
#extension GL_GOOGLE_include_directive : require

layout(local_size_x_id = 0) in;

#include "common.glsl"
#include "row_kernel.glsl"

layout(std430, binding = 0) readonly buffer DY { float dy[]; };
layout(std430, binding = 1) readonly buffer Y { float y[]; };
layout(std430, binding = 2) writeonly buffer DX { float dx[]; };

layout(push_constant) uniform Push { // vkt_softmax_push
    uint rows;
    uint cols;
} pc;

void main() {
    uint row = row_index();
    if (row >= pc.rows) // uniform per workgroup where a workgroup shares a row
        return;
    uint base = row * pc.cols, tid = row_lane(), wg = row_lanes();

    float dot = 0.0;
    for (uint c = tid; c < pc.cols; c += wg)
        dot += dy[base + c] * y[base + c];
    dot = row_sum(dot);

    for (uint c = tid; c < pc.cols; c += wg)
        dx[base + c] = y[base + c] * (dy[base + c] - dot);
}
