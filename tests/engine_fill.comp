/* engine_fill.comp: an engine's own compute shader, as a game would have
 * one, used by test_embed to write training data into a buffer that vktrain
 * reads through a wrapped tensor. data[i] is a hash of (i, seed) mapped to
 * [-0.5, 0.5) exactly (24 bits over 2^24), so the host computes the very
 * same floats (test_embed.c: engine_value). */
#version 450

layout(local_size_x = 64) in;

layout(std430, binding = 0) writeonly buffer Out { float data[]; };

layout(push_constant) uniform Push {
    uint n;    /* floats to write */
    uint seed; /* which data set */
} pc;

void main() {
    uint i = gl_GlobalInvocationID.x;
    if (i >= pc.n)
        return;
    uint h = i * 2654435761u + pc.seed * 40503u;
    h ^= h >> 15;
    h *= 2246822519u;
    h ^= h >> 13;
    data[i] = float(h >> 8) * (1.0 / 16777216.0) - 0.5;
}
