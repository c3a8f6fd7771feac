#version 450
// gelu_fwd: y = 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3), the
// tanh approximation of GELU. Evaluated as y = x sigmoid(2u), the same
// function (1 + tanh(u) = 2 sigmoid(2u)), because 1 + tanh(u) cancels
// catastrophically for negative x while the stable sigmoid stays accurate
// to a few ulp in both tails.
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"
#include "activation.glsl"

layout(local_size_x_id = 0) in;

layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) writeonly buffer Y { float y[]; };

const float BETA = 0.7978845608028654; // sqrt(2 / pi)
const float KAPPA = 0.044715;

layout(push_constant) uniform Push { // vkt_elementwise_push
    uint n;
    float scalar;
} pc;

void main() {
    uint i = linear_index();
    if (i >= pc.n)
        return;
    float v = x[i];
    y[i] = v * sigmoid_stable(2.0 * BETA * (v + KAPPA * v * v * v));
}
