#version 450
// maxpool2d_fwd: y (planes, Ho, Wo) = max over each k x k window of
// x (planes, H, W), stride apart, no padding, floor mode. One invocation per
// output element. The scan order and NaN rule are PyTorch's CPU kernel's
// (and pool.c's): row-major, a strictly greater value or a NaN takes over.
#extension GL_GOOGLE_include_directive : require

layout(local_size_x_id = 0) in;

#include "common.glsl"

layout(std430, binding = 0) readonly buffer X { float x[]; };  // (planes, H, W)
layout(std430, binding = 1) writeonly buffer Y { float y[]; }; // (planes, Ho, Wo)

layout(push_constant) uniform Push { // vkt_pool2d_push
    uint planes;
    uint in_h, in_w, out_h, out_w;
    uint kernel, stride;
} pc;

void main() {
    uint i = linear_index();
    if (i >= pc.planes * pc.out_h * pc.out_w)
        return;
    uint plane = i / (pc.out_h * pc.out_w), hw = i - plane * pc.out_h * pc.out_w;
    uint oh = hw / pc.out_w, ow = hw - oh * pc.out_w;
    uint at = (plane * pc.in_h + oh * pc.stride) * pc.in_w + ow * pc.stride;
    float best = -1.0 / 0.0;
    for (uint r = 0; r < pc.kernel; r++)
        for (uint s = 0; s < pc.kernel; s++) {
            float v = x[at + r * pc.in_w + s];
            if (v > best || isnan(v))
                best = v;
        }
    y[i] = best;
}
