#version 450
// clip_scale: hyper[GRAD_SCALE] = min(1, max_norm / (sqrt(sumsq) + 1e-6)),
// torch.nn.utils.clip_grad_norm_'s clip coefficient, written on the device
// so the optimizer kernels that follow scale the gradients without the host
// reading the norm back. Only that one element of hyper is written.
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(local_size_x_id = 0) in;

layout(std430, binding = 0) readonly buffer SumSq { float sumsq[]; };
layout(std430, binding = 1) buffer Hyper { float hyper[]; };

layout(push_constant) uniform Push { // vkt_clip_scale_push
    float max_norm;
} pc;

const uint HYPER_GRAD_SCALE = 4; // VKT_HYPER_GRAD_SCALE in runtime/ops/op.h

void main() {
    if (gl_GlobalInvocationID.x != 0)
        return;
    float coef = pc.max_norm / (sqrt(sumsq[0]) + 1e-6);
    // written as a comparison so a NaN norm stays NaN, as torch.clamp keeps it
    hyper[HYPER_GRAD_SCALE] = coef > 1.0 ? 1.0 : coef;
}
