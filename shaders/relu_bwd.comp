#version 450
// relu_bwd: dx = x > 0 ? dy : 0, with x the forward input (or its output:
// both are positive at the same places). VEC4 as in relu_fwd.comp.
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 2) const bool VEC4 = false;

layout(std430, binding = 0) readonly buffer DY { float dy[]; };
layout(std430, binding = 1) readonly buffer X { float x[]; };
layout(std430, binding = 2) writeonly buffer DX { float dx[]; };
layout(std430, binding = 0) readonly buffer DY4 { vec4 dy4[]; };
layout(std430, binding = 1) readonly buffer X4 { vec4 x4[]; };
layout(std430, binding = 2) writeonly buffer DX4 { vec4 dx4[]; };

layout(push_constant) uniform Push { // vkt_elementwise_push
    uint n;
    float scalar;
} pc;

void main() {
    uint i = linear_index();
    if (VEC4 && i < pc.n / 4) {
        dx4[i] = mix(vec4(0.0), dy4[i], greaterThan(x4[i], vec4(0.0)));
        return;
    }
    if (VEC4)
        i += pc.n / 4 * 3; // the leftover elements: n/4*4 + (i - n/4)
    if (i >= pc.n)
        return;
    dx[i] = x[i] > 0.0 ? dy[i] : 0.0;
}
