#version 450
// sum_squares: acc (1) [+]= sum of g (n)^2, for the global gradient norm.
// One workgroup: invocation j sums elements j, j + WG, j + 2 WG, ... (a
// compensated sum, so long strides keep their accuracy), then
// workgroup_sum adds the partial sums in a fixed tree. No atomics: the same
// device gives the same bits on every run.
#extension GL_GOOGLE_include_directive : require

layout(local_size_x_id = 0) in;

#include "workgroup_reduce.glsl"

layout(std430, binding = 0) readonly buffer G { float g[]; };
layout(std430, binding = 1) buffer Acc { float acc[]; };

layout(push_constant) uniform Push { // vkt_sum_squares_push
    uint n;
    uint accumulate;
} pc;

void main() {
    // Kahan summation: c carries the low-order bits each addition drops.
    float sum = 0.0, c = 0.0;
    for (uint i = gl_LocalInvocationID.x; i < pc.n; i += gl_WorkGroupSize.x) {
        float y = g[i] * g[i] - c;
        float t = sum + y;
        c = (t - sum) - y;
        sum = t;
    }
    float total = workgroup_sum(sum);
    if (gl_LocalInvocationID.x == 0)
        acc[0] = pc.accumulate != 0 ? acc[0] + total : total;
}
