#version 450
// elementwise_binary: out = a OP b over n elements (OP: add, sub, mul).
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint OP = 0; // VKT_BINARY_ADD, _SUB, _MUL

layout(std430, binding = 0) readonly buffer A { float a[]; };
layout(std430, binding = 1) readonly buffer B { float b[]; };
layout(std430, binding = 2) writeonly buffer Out { float result[]; };

layout(push_constant) uniform Push { // vkt_elementwise_push
    uint n;
    float scalar;
} pc;

void main() {
    uint i = linear_index();
    if (i >= pc.n)
        return;
    if (OP == 0)
        result[i] = a[i] + b[i];
    else if (OP == 1)
        result[i] = a[i] - b[i];
    else
        result[i] = a[i] * b[i];
}
