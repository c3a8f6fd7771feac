#version 450
// tanh_bwd: dx = dy * (1 - y^2), y the forward output.
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"
#include "activation.glsl"

layout(local_size_x_id = 0) in;

layout(std430, binding = 0) readonly buffer DY { float dy[]; };
layout(std430, binding = 1) readonly buffer Y { float y[]; };
layout(std430, binding = 2) writeonly buffer DX { float dx[]; };

layout(push_constant) uniform Push { // vkt_elementwise_push
    uint n;
    float scalar;
} pc;

void main() {
    uint i = linear_index();
    if (i >= pc.n)
        return;
    float t = y[i];
    dx[i] = dy[i] * (1.0 - t * t);
}
