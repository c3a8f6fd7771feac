#version 450
// probe_copy_ssbo: memory bandwidth through storage buffers, one float (VEC
// 0) or 4 floats (VEC 1) per load and store: dst = src.
layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint VEC = 0;
layout(std430, binding = 0) readonly buffer Src { float src[]; };
layout(std430, binding = 0) readonly buffer Src4 { vec4 src4[]; };
layout(std430, binding = 1) writeonly buffer Dst { float dst[]; };
layout(std430, binding = 1) writeonly buffer Dst4 { vec4 dst4[]; };
layout(push_constant) uniform Push { uint n; float seed; } pc; // n: floats, or vec4s

void main() {
    uint i = gl_GlobalInvocationID.x;
    if (i >= pc.n)
        return;
    if (VEC != 0)
        dst4[i] = src4[i];
    else
        dst[i] = src[i];
}
