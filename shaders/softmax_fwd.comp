#version 450
// softmax_fwd: y (rows, cols) = softmax of each row of x (rows, cols),
// y = e^(x - max) / sum e^(x - max). Subtracting the row's max keeps every
// exponent <= 0: no overflow, and the largest term is exactly 1.
// One workgroup or one invocation per row; see row_kernel.glsl for the
// fixed order.
#extension GL_GOOGLE_include_directive : require

layout(local_size_x_id = 0) in;

#include "common.glsl"
#include "row_kernel.glsl"

layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) writeonly buffer Y { float y[]; };

layout(push_constant) uniform Push { // vkt_softmax_push
    uint rows;
    uint cols;
} pc;

void main() {
    uint row = row_index();
    if (row >= pc.rows) // uniform per workgroup where a workgroup shares a row
        return;
    uint base = row * pc.cols, tid = row_lane(), wg = row_lanes();

    float m = uintBitsToFloat(0xff800000u); // -inf
    for (uint c = tid; c < pc.cols; c += wg)
        m = max(m, x[base + c]);
    m = row_max(m);

    float s = 0.0;
    for (uint c = tid; c < pc.cols; c += wg)
        s += exp(x[base + c] - m);
    s = row_sum(s);

    for (uint c = tid; c < pc.cols; c += wg)
        y[base + c] = exp(x[base + c] - m) / s;
}
