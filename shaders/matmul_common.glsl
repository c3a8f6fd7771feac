// matmul_common.glsl: what every matmul kernel shares: the push constants,
// the bias and C bindings, and the epilogue that stores one element of C.
// Bindings 0 (A) and 1 (B) are each kernel's own: storage or texel buffers.

layout(std430, binding = 2) readonly buffer Bias { float bias[]; };
layout(std430, binding = 3) buffer C { float c[]; };
// The same bindings 4 floats at a time, for store_c4.
layout(std430, binding = 2) readonly buffer Bias4 { vec4 bias4[]; };
layout(std430, binding = 3) buffer C4 { vec4 c4[]; };

layout(push_constant) uniform Push { // vkt_matmul_push
    uint m, n, k;
    uint a_stride_m, a_stride_k; // element (m, k) of op(A) is a[m * a_stride_m + k * a_stride_k]
    uint b_stride_k, b_stride_n; // element (k, n) of op(B) is b[k * b_stride_k + n * b_stride_n]
    uint flags;                  // VKT_MATMUL_FLAG_*
} pc;

const uint FLAG_ACCUMULATE = 1;
const uint FLAG_BIAS = 2;
const uint FLAG_RELU = 4;

// Where the epilogue takes its flags from: the push constants, or (CPU
// kernels) a specialization constant. A CPU driver runs both sides of every
// branch under a lane mask, so a runtime flag costs its whole path anyway,
// while a constant one is gone before the code is generated.
#ifndef EPILOGUE_FLAGS
#define EPILOGUE_FLAGS pc.flags
#endif

// The epilogue, in the order the CPU reference applies it: the old C, the
// bias, then ReLU (written as a select so NaN maps to 0 as in relu_fwd).
void store_c(uint row, uint col, float v) {
    uint idx = row * pc.n + col;
    if ((EPILOGUE_FLAGS & FLAG_ACCUMULATE) != 0)
        v += c[idx];
    if ((EPILOGUE_FLAGS & FLAG_BIAS) != 0)
        v += bias[col];
    if ((EPILOGUE_FLAGS & FLAG_RELU) != 0)
        v = v > 0.0 ? v : 0.0;
    c[idx] = v;
}

// store_c for C[row][col..col+3], col % 4 == 0 and N % 4 == 0: a CPU driver
// stores lane by lane, so one 4-float store costs about what one float does.
void store_c4(uint row, uint col, vec4 v) {
    uint idx = (row * pc.n + col) / 4;
    if ((EPILOGUE_FLAGS & FLAG_ACCUMULATE) != 0)
        v += c4[idx];
    if ((EPILOGUE_FLAGS & FLAG_BIAS) != 0)
        v += bias4[col / 4];
    if ((EPILOGUE_FLAGS & FLAG_RELU) != 0)
        v = mix(vec4(0.0), v, greaterThan(v, vec4(0.0)));
    c4[idx] = v;
}
