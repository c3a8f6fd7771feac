/* fourier_features.comp: the engine's own shader in neural_image. For each
 * of `count` pixels it writes the Fourier features of the pixel's position
 * (the network's input) and the pixel's colour (the training target), so a
 * batch never leaves the GPU. Training batches take pixels at random (a
 * hash of the step and the lane); evaluation chunks take `count` pixels in
 * order from `first`.
 *
 * The encoding (Tancik et al., "Fourier Features Let Networks Learn High
 * Frequency Functions in Low Dimensional Domains", 2020): for pixel centre
 * uv in [0, 1)^2 and frequencies f_k (cycles per image side),
 *     features[2k] = sin(2 pi f_k . uv),  features[2k + 1] = cos(2 pi f_k . uv). */
#version 450

layout(local_size_x = 64) in;

layout(std430, binding = 0) readonly buffer Image { float image[]; };      // (H, W, 3)
layout(std430, binding = 1) readonly buffer Freqs { vec2 freqs[]; };       // (F)
layout(std430, binding = 2) writeonly buffer Features { float features[]; }; // (count, 2F)
layout(std430, binding = 3) writeonly buffer Targets { float targets[]; };   // (count, 3)

layout(push_constant) uniform Push {
    uint count;  /* pixels to write */
    uint width, height;
    uint nfreq;  /* F */
    uint first;  /* evaluation: the first pixel */
    uint random; /* 1: training batch, pixels drawn by hash */
    uint seed;   /* training: the step */
} pc;

uint hash(uint x) {
    x ^= x >> 16;
    x *= 0x7feb352du;
    x ^= x >> 15;
    x *= 0x846ca68bu;
    x ^= x >> 16;
    return x;
}

void main() {
    uint i = gl_GlobalInvocationID.x;
    if (i >= pc.count)
        return;
    uint pixels = pc.width * pc.height;
    uint p = pc.random != 0u ? hash(i ^ hash(pc.seed + 0x9e3779b9u)) % pixels
                             : min(pc.first + i, pixels - 1u);
    vec2 uv = (vec2(float(p % pc.width), float(p / pc.width)) + 0.5) /
              vec2(float(pc.width), float(pc.height));
    uint row = i * 2u * pc.nfreq;
    for (uint k = 0u; k < pc.nfreq; k++) {
        float angle = 6.28318530718 * dot(freqs[k], uv);
        features[row + 2u * k] = sin(angle);
        features[row + 2u * k + 1u] = cos(angle);
    }
    for (uint c = 0u; c < 3u; c++)
        targets[i * 3u + c] = image[p * 3u + c];
}
