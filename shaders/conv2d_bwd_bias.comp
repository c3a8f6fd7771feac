#version 450
// conv2d_bwd_bias: db (K) = sum over b, oh, ow of dy (B, K, Ho, Wo): the bias
// was added to every output pixel of its channel.
//
// One workgroup per channel; its invocations stride over the pixels of each
// image (adjacent addresses, no index division), then add their partial
// sums in a fixed tree order (workgroup_reduce.glsl): deterministic, no
// atomics.
#extension GL_GOOGLE_include_directive : require

layout(local_size_x_id = 0) in;

#include "workgroup_reduce.glsl"

layout(std430, binding = 0) readonly buffer DY { float dy[]; };  // (B, K, Ho, Wo)
layout(std430, binding = 1) writeonly buffer DB { float db[]; }; // (K)

layout(push_constant) uniform Push { // vkt_conv2d_push
    uint batch;
    uint in_c, in_h, in_w;
    uint out_c, out_h, out_w;
    uint kernel_h, kernel_w;
    uint stride, pad;
} pc;

void main() {
    uint k = workgroup_row();
    // k is uniform across the workgroup, so this return keeps every
    // barrier in workgroup_sum in uniform control flow.
    if (k >= pc.out_c)
        return;
    uint plane = pc.out_h * pc.out_w;
    float sum = 0.0;
    for (uint b = 0; b < pc.batch; b++) {
        uint at = (b * pc.out_c + k) * plane;
        for (uint i = gl_LocalInvocationID.x; i < plane; i += gl_WorkGroupSize.x)
            sum += dy[at + i];
    }
    float total = workgroup_sum(sum);
    if (gl_LocalInvocationID.x == 0)
        db[k] = total;
}
