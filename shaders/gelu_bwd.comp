#version 450
// gelu_bwd: dx = dy * dy/dx of the tanh-approximated GELU, x the forward
// input. With u = b (x + k x^3) and t = tanh(u), y = 0.5 x (1 + t), so
//   dy/dx = 0.5 (1 + t) + 0.5 x (1 - t^2) b (1 + 3 k x^2).
// Evaluated through s = sigmoid(2u), where 1 + t = 2s and 1 - t = 2(1 - s):
//   dy/dx = s + 2 x s (1 - s) b (1 + 3 k x^2)
// because 1 + t and 1 - t^2 cancel catastrophically in fp32 once |t| nears
// 1, while s and 1 - s from e^-|2u| keep their relative accuracy.
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(local_size_x_id = 0) in;

layout(std430, binding = 0) readonly buffer DY { float dy[]; };
layout(std430, binding = 1) readonly buffer X { float x[]; };
layout(std430, binding = 2) writeonly buffer DX { float dx[]; };

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
    float u2 = 2.0 * BETA * (v + KAPPA * v * v * v);
    float e = exp(-abs(u2));     // in [0, 1]: no overflow
    float lo = e / (1.0 + e);    // sigmoid(-|2u|)
    float hi = 1.0 / (1.0 + e);  // sigmoid(|2u|)
    float s = u2 >= 0.0 ? hi : lo, one_minus_s = u2 >= 0.0 ? lo : hi;
    // Beyond |x| = 20, s (1 - s) is exactly 0 but x^2 may overflow to inf,
    // and 0 * inf is NaN; on the clamped x the (zero) term stays finite.
    float xc = clamp(v, -20.0, 20.0);
    float slope = s + 2.0 * xc * (s * one_minus_s) * BETA * (1.0 + 3.0 * KAPPA * xc * xc);
    dx[i] = dy[i] * slope;
}
