#version 450
// reduce_sum: out[0] = scale * sum of in (n), in one workgroup, so the order
// of the additions is fixed (see workgroup_reduce.glsl): no atomics, the
// same bits on every run. Meant for short vectors such as per-row losses;
// the losses use it to form their mean.
#extension GL_GOOGLE_include_directive : require

layout(local_size_x_id = 0) in;

#include "workgroup_reduce.glsl"

layout(std430, binding = 0) readonly buffer In { float src[]; };
layout(std430, binding = 1) writeonly buffer Out { float dst[]; };

layout(push_constant) uniform Push { // vkt_reduce_sum_push
    uint n;
    float scale;
} pc;

void main() {
    // Launched as exactly one workgroup; any other would race on dst[0].
    if (workgroup_row() != 0)
        return;
    uint tid = gl_LocalInvocationID.x;
    float s = 0.0;
    for (uint i = tid; i < pc.n; i += gl_WorkGroupSize.x)
        s += src[i];
    s = workgroup_sum(s);
    if (tid == 0)
        dst[0] = pc.scale * s;
}
