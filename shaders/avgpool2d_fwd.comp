#version 450
// avgpool2d_fwd: y (planes, Ho, Wo) = the mean of each k x k window of
// x (planes, H, W), stride apart, no padding (so the divisor is always k^2),
// floor mode. One invocation per output element.
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
    float sum = 0.0;
    for (uint r = 0; r < pc.kernel; r++)
        for (uint s = 0; s < pc.kernel; s++)
            sum += x[at + r * pc.in_w + s];
    y[i] = sum / float(pc.kernel * pc.kernel);
}
