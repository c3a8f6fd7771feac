#version 450
// relu_fwd: y = max(x, 0).
//
// With VEC4 (the host sets it when every binding starts 16-byte aligned)
// each invocation handles 4 consecutive elements through vec4 views of the
// same bindings, then one invocation per element past the last whole vec4:
// CPU drivers load storage buffers lane by lane, and one 16-byte load in
// place of four 4-byte ones is most of a pointwise kernel's time there.
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 2) const bool VEC4 = false;

layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) writeonly buffer Y { float y[]; };
layout(std430, binding = 0) readonly buffer X4 { vec4 x4[]; };
layout(std430, binding = 1) writeonly buffer Y4 { vec4 y4[]; };

layout(push_constant) uniform Push { // vkt_elementwise_push
    uint n;
    float scalar;
} pc;

void main() {
    uint i = linear_index();
    if (VEC4 && i < pc.n / 4) {
        vec4 v = x4[i];
        y4[i] = mix(vec4(0.0), v, greaterThan(v, vec4(0.0)));
        return;
    }
    if (VEC4)
        i += pc.n / 4 * 3; // the leftover elements: n/4*4 + (i - n/4)
    if (i >= pc.n)
        return;
    y[i] = x[i] > 0.0 ? x[i] : 0.0;
}
