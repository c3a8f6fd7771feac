#version 450
// dropout: out = keep ? in * scale : 0, for both directions: the forward
// maps x to y and the backward dy to dx with the identical mask, because
// both regenerate it from (seed, step, element index).
//
// keep = dropout_hash(seed, step, i) >= threshold, threshold = rate * 2^32,
// so an element is kept with probability 1 - rate. step is read from the
// hyper buffer on the device, so a recorded command buffer draws a new mask
// every training step. The hash is integer-only and mirrored exactly in
// runtime/ops/activation.c, so CPU and GPU masks are bit-identical.
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(local_size_x_id = 0) in;

layout(std430, binding = 0) readonly buffer In { float src[]; };
layout(std430, binding = 1) readonly buffer Hyper { float hyper[]; };
layout(std430, binding = 2) writeonly buffer Out { float dst[]; };

layout(push_constant) uniform Push { // vkt_dropout_push
    uint n;
    uint threshold; // keep when hash >= threshold
    uint seed;
    float scale;    // 1 / (1 - rate), 0 when rate == 1
} pc;

const uint HYPER_STEP = 3; // VKT_HYPER_STEP in runtime/ops/op.h

// The PCG hash of Jarzynski and Olano, "Hash Functions for GPU Rendering"
// (JCGT 2020): one LCG step and one output permutation; good avalanche on
// consecutive inputs.
uint pcg_hash(uint v) {
    uint state = v * 747796405u + 2891336453u;
    uint word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
    return (word >> 22u) ^ word;
}

uint dropout_hash(uint seed, uint step, uint i) {
    return pcg_hash(i + pcg_hash(step + pcg_hash(seed)));
}

void main() {
    uint i = linear_index();
    if (i >= pc.n)
        return;
    // A NaN, negative or huge step reads as 0 (the same rule as the C side,
    // where converting such a float to an integer would be undefined).
    float s = hyper[HYPER_STEP];
    uint step = s >= 0.0 && s < 4294967296.0 ? uint(s) : 0u;
    bool keep = dropout_hash(pc.seed, step, i) >= pc.threshold;
    dst[i] = keep ? src[i] * pc.scale : 0.0;
}
