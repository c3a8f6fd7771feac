#version 450
// bias_add: out (rows, cols) = x (rows, cols) + bias (cols).
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(local_size_x_id = 0) in;

layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) readonly buffer Bias { float bias[]; };
layout(std430, binding = 2) writeonly buffer Out { float result[]; };

layout(push_constant) uniform Push { // vkt_bias_push
    uint rows;
    uint cols;
} pc;

void main() {
    uint i = linear_index();
    if (i >= pc.rows * pc.cols)
        return;
    result[i] = x[i] + bias[i % pc.cols];
}
