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
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(local_size_x_id = 0) in;

layout(std430, binding = 0) readonly buffer Grad { float grad[]; };
layout(std430, binding = 1) readonly buffer Hyper { float hyper[]; };
layout(std430, binding = 2) buffer Param { float p[]; };
layout(std430, binding = 3) buffer M { float m[]; };
layout(std430, binding = 4) buffer V { float v[]; };

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

void main() {
    uint i = linear_index();
    if (i >= pc.n)
        return;
    float lr = hyper[HYPER_LR];
    float g = grad[i] * hyper[HYPER_GRAD_SCALE];
    float param = p[i];
    if (pc.decoupled != 0)
        param = param * (1.0 - lr * pc.weight_decay);
    else if (pc.weight_decay != 0.0)
        g = g + pc.weight_decay * param;
    float mi = pc.beta1 * m[i] + (1.0 - pc.beta1) * g;
    float vi = pc.beta2 * v[i] + (1.0 - pc.beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    float step_size = lr / hyper[HYPER_BIAS1];
    float denom = sqrt(vi) / sqrt(hyper[HYPER_BIAS2]) + pc.eps;
    p[i] = param - step_size * mi / denom;
}
