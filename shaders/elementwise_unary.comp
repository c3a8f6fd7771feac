#version 450
// elementwise_unary: out = x * scalar (scale) or out = scalar (fill).
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint OP = 0; // VKT_UNARY_SCALE, VKT_UNARY_FILL

layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) writeonly buffer Out { float result[]; };

layout(push_constant) uniform Push { // vkt_elementwise_push
    uint n;
    float scalar;
} pc;

void main() {
    uint i = linear_index();
    if (i >= pc.n)
        return;
    result[i] = OP == 0 ? x[i] * pc.scalar : pc.scalar;
}
