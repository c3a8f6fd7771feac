#version 450
// leaky_relu_fwd: y = x > 0 ? x : slope * x, slope in pc.scalar.
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"
#include "activation.glsl"

layout(local_size_x_id = 0) in;

layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) writeonly buffer Y { float y[]; };

layout(push_constant) uniform Push { // vkt_elementwise_push
    uint n;
    float scalar;
} pc;

void main() {
    uint i = linear_index();
    if (i >= pc.n)
        return;
    float v = x[i];
    y[i] = v > 0.0 ? v : v * pc.scalar;
}
