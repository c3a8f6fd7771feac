#version 450
// column_sum: out (cols) [+]= sum over rows of x (rows, cols). One invocation
// per column sums its rows in order: deterministic, no atomics.
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(local_size_x_id = 0) in;

layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) buffer Out { float result[]; };

layout(push_constant) uniform Push { // vkt_column_sum_push
    uint rows;
    uint cols;
    uint accumulate;
} pc;

void main() {
    uint c = linear_index();
    if (c >= pc.cols)
        return;
    float sum = pc.accumulate != 0 ? result[c] : 0.0;
    for (uint r = 0; r < pc.rows; r++)
        sum += x[r * pc.cols + c];
    result[c] = sum;
}
