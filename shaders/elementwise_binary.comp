#version 450
// elementwise_binary: out = a OP b over n elements (OP: add, sub, mul).
// VEC4 as in relu_fwd.comp: 4 elements per invocation through vec4 views
// where every binding starts 16-byte aligned, then one per leftover float.
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint OP = 0; // VKT_BINARY_ADD, _SUB, _MUL
layout(constant_id = 2) const bool VEC4 = false;

layout(std430, binding = 0) readonly buffer A { float a[]; };
layout(std430, binding = 1) readonly buffer B { float b[]; };
layout(std430, binding = 2) writeonly buffer Out { float result[]; };
layout(std430, binding = 0) readonly buffer A4 { vec4 a4[]; };
layout(std430, binding = 1) readonly buffer B4 { vec4 b4[]; };
layout(std430, binding = 2) writeonly buffer Out4 { vec4 result4[]; };

layout(push_constant) uniform Push { // vkt_elementwise_push
    uint n;
    float scalar;
} pc;

// For float and vec4 alike.
#define APPLY(x, y) (OP == 0 ? (x) + (y) : OP == 1 ? (x) - (y) : (x) * (y))

void main() {
    uint i = linear_index();
    if (VEC4 && i < pc.n / 4) {
        result4[i] = APPLY(a4[i], b4[i]);
        return;
    }
    if (VEC4)
        i += pc.n / 4 * 3; // the leftover elements: n/4*4 + (i - n/4)
    if (i >= pc.n)
        return;
    result[i] = APPLY(a[i], b[i]);
}
