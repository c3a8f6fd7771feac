#version 450
// sgd: one step of torch.optim.SGD on n parameters (see runtime/ops/optimizer.c).
//   g = grad * scale [+ weight_decay * p]
//   with momentum: buf = (t == 1) ? g : momentum * buf + (1 - dampening) * g
//                  g = nesterov ? g + momentum * buf : buf
//   p -= lr * g
// lr, t and scale are read from the hyper buffer so the recorded command
// buffer serves every step. Without momentum the buffer is not touched.
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(local_size_x_id = 0) in;

layout(std430, binding = 0) readonly buffer Grad { float grad[]; };
layout(std430, binding = 1) readonly buffer Hyper { float hyper[]; };
layout(std430, binding = 2) buffer Param { float p[]; };
layout(std430, binding = 3) buffer MomentumBuf { float buf[]; };

layout(push_constant) uniform Push { // vkt_sgd_push
    uint n;
    float momentum;
    float dampening;
    float weight_decay;
    uint nesterov;
} pc;

// VKT_HYPER_* in runtime/ops/op.h
const uint HYPER_LR = 0;
const uint HYPER_STEP = 3;
const uint HYPER_GRAD_SCALE = 4;

void main() {
    uint i = linear_index();
    if (i >= pc.n)
        return;
    float g = grad[i] * hyper[HYPER_GRAD_SCALE];
    if (pc.weight_decay != 0.0)
        g = g + pc.weight_decay * p[i];
    if (pc.momentum != 0.0) {
        // torch starts the buffer as a copy of the first step's gradient
        float b = hyper[HYPER_STEP] <= 1.0 ? g : pc.momentum * buf[i] + (1.0 - pc.dampening) * g;
        buf[i] = b;
        g = pc.nesterov != 0 ? g + pc.momentum * b : b;
    }
    p[i] = p[i] - hyper[HYPER_LR] * g;
}
