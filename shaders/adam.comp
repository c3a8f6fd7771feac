#version 450
// adam: one step of torch.optim.Adam, or AdamW when decoupled, on n
// parameters (see runtime/ops/optimizer.c).
//   Adam:  g = grad * scale [+ weight_decay * p]
//   AdamW: p *= 1 - lr * weight_decay; g = grad * scale
//   m = beta1 * m + (1 - beta1) * g
//   v = beta2 * v + (1 - beta2) * g * g
//   p -= (lr / bias1) * m / (sqrt(v) / sqrt(bias2) + eps)
// lr, bias1 = 1 - beta1^t, bias2 = 1 - beta2^t and scale are read from the
// hyper buffer so the recorded command buffer serves every step.
//
// With VEC4 each invocation updates 4 consecutive parameters through vec4
// views of the same bindings (the host sets it when every binding starts
// 16-byte aligned): CPU drivers load storage buffers lane by lane, so one
// 16-byte load instead of four 4-byte ones per array is most of the
// kernel's time there. The n % 4 parameters past the last whole vec4 take
// one invocation each after the vec4 ones.
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(local_size_x_id = 0) in;

layout(constant_id = 1) const bool VEC4 = false;

layout(std430, binding = 0) readonly buffer Grad { float grad[]; };
layout(std430, binding = 1) readonly buffer Hyper { float hyper[]; };
layout(std430, binding = 2) buffer Param { float p[]; };
layout(std430, binding = 3) buffer M { float m[]; };
layout(std430, binding = 4) buffer V { float v[]; };
// The same memory as vec4s (used only with VEC4).
layout(std430, binding = 0) readonly buffer Grad4 { vec4 grad4[]; };
layout(std430, binding = 2) buffer Param4 { vec4 p4[]; };
layout(std430, binding = 3) buffer M4 { vec4 m4[]; };
layout(std430, binding = 4) buffer V4 { vec4 v4[]; };

layout(push_constant) uniform Push { // vkt_adam_push
    uint n;
    float beta1;
    float beta2;
    float eps;
    float weight_decay;
    uint decoupled;
} pc;

// VKT_HYPER_* in runtime/ops/op.h
const uint HYPER_LR = 0;
const uint HYPER_BIAS1 = 1;
const uint HYPER_BIAS2 = 2;
const uint HYPER_GRAD_SCALE = 4;

// One update of 4 (or, through .x, 1) parameters; returns the new param
// and updates the moments in place.
vec4 adam_update(vec4 grad_in, vec4 param, inout vec4 mi, inout vec4 vi) {
    float lr = hyper[HYPER_LR];
    vec4 g = grad_in * hyper[HYPER_GRAD_SCALE];
    if (pc.decoupled != 0)
        param = param * (1.0 - lr * pc.weight_decay);
    else if (pc.weight_decay != 0.0)
        g = g + pc.weight_decay * param;
    mi = pc.beta1 * mi + (1.0 - pc.beta1) * g;
    vi = pc.beta2 * vi + (1.0 - pc.beta2) * g * g;
    float step_size = lr / hyper[HYPER_BIAS1];
    vec4 denom = sqrt(vi) / sqrt(hyper[HYPER_BIAS2]) + pc.eps;
    return param - step_size * mi / denom;
}

void update_one(uint i) {
    vec4 mi = vec4(m[i]), vi = vec4(v[i]);
    float param = adam_update(vec4(grad[i]), vec4(p[i]), mi, vi).x;
    m[i] = mi.x;
    v[i] = vi.x;
    p[i] = param;
}

void main() {
    uint i = linear_index();
    if (!VEC4) {
        if (i < pc.n)
            update_one(i);
        return;
    }
    uint whole = pc.n / 4;
    if (i < whole) {
        vec4 mi = m4[i], vi = v4[i];
        vec4 param = adam_update(grad4[i], p4[i], mi, vi);
        m4[i] = mi;
        v4[i] = vi;
        p4[i] = param;
    } else if (whole * 4 + (i - whole) < pc.n) {
        update_one(whole * 4 + (i - whole));
    }
}
