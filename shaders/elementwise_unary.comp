#version 450
// elementwise_unary: out = x * scalar (scale) or out = scalar (fill).
// VEC4 as in relu_fwd.comp.
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint OP = 0; // VKT_UNARY_SCALE, VKT_UNARY_FILL
layout(constant_id = 2) const bool VEC4 = false;

layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) writeonly buffer Out { float result[]; };
layout(std430, binding = 0) readonly buffer X4 { vec4 x4[]; };
layout(std430, binding = 1) writeonly buffer Out4 { vec4 result4[]; };

layout(push_constant) uniform Push { // vkt_elementwise_push
    uint n;
    float scalar;
} pc;

void main() {
    uint i = linear_index();
    if (VEC4 && i < pc.n / 4) {
        result4[i] = OP == 0 ? x4[i] * pc.scalar : vec4(pc.scalar);
        return;
    }
    if (VEC4)
        i += pc.n / 4 * 3; // the leftover elements: n/4*4 + (i - n/4)
    if (i >= pc.n)
        return;
    result[i] = OP == 0 ? x[i] * pc.scalar : pc.scalar;
}
