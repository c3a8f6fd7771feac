#version 450
// probe_fma: peak FMA rate. Each invocation runs 8 independent chains of
// vec4 FMAs (enough independent work to hide the FMA latency), ITERATIONS
// times, and stores their sum so nothing is optimized away.
// FLOPs per invocation: iterations * 8 chains * 4 lanes * 2.
layout(local_size_x_id = 0) in;
layout(std430, binding = 0) writeonly buffer Out { float result[]; };
layout(push_constant) uniform Push { uint iterations; float seed; } pc;

void main() {
    vec4 a = vec4(pc.seed) + vec4(gl_GlobalInvocationID.x) * 1e-7;
    vec4 m = vec4(0.999999), c = vec4(1e-7);
    vec4 x0 = a, x1 = a + 1, x2 = a + 2, x3 = a + 3, x4 = a + 4, x5 = a + 5, x6 = a + 6, x7 = a + 7;
    for (uint i = 0; i < pc.iterations; i++) {
        x0 = fma(x0, m, c); x1 = fma(x1, m, c); x2 = fma(x2, m, c); x3 = fma(x3, m, c);
        x4 = fma(x4, m, c); x5 = fma(x5, m, c); x6 = fma(x6, m, c); x7 = fma(x7, m, c);
    }
    vec4 s = x0 + x1 + x2 + x3 + x4 + x5 + x6 + x7;
    result[gl_GlobalInvocationID.x] = s.x + s.y + s.z + s.w;
}
