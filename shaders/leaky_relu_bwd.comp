#version 450
// leaky_relu_bwd: dx = x > 0 ? dy : slope * dy, x the forward input,
// slope in pc.scalar.
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"
#include "activation.glsl"

layout(local_size_x_id = 0) in;

layout(std430, binding = 0) readonly buffer DY { float dy[]; };
layout(std430, binding = 1) readonly buffer X { float x[]; };
layout(std430, binding = 2) writeonly buffer DX { float dx[]; };

layout(push_constant) uniform Push { // vkt_elementwise_push
    uint n;
    float scalar;
} pc;

void main() {
    uint i = linear_index();
    if (i >= pc.n)
        return;
    dx[i] = x[i] > 0.0 ? dy[i] : dy[i] * pc.scalar;
}
