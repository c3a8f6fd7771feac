#version 450
// probe_copy_texel: memory bandwidth reading through a uniform texel buffer
// (R32G32B32A32 texels: 4 floats per fetch) and storing 4 floats per
// invocation to a storage buffer: dst = src.
layout(local_size_x_id = 0) in;
layout(binding = 0) uniform samplerBuffer src;
layout(std430, binding = 1) writeonly buffer Dst4 { vec4 dst4[]; };
layout(push_constant) uniform Push { uint n; float seed; } pc; // n: vec4s

void main() {
    uint i = gl_GlobalInvocationID.x;
    if (i >= pc.n)
        return;
    dst4[i] = texelFetch(src, int(i));
}
