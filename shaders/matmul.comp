#version 450
// matmul: C (M, N) = op(A) (M, K) * op(B) (K, N) [+ C] [+ bias], [ReLU].
// The simple variant: any layout, any alignment, any device; the others
// (matmul_reg*, matmul_tiled) fall back to it where their conditions fail.
//
// Register-blocked: each invocation computes a TM x TN block of C, so every
// value loaded from A is used TN times and every value from B TM times. The
// block's rows are strided by the workgroup height and its columns by the
// workgroup width, so neighbouring invocations read neighbouring columns of B
// and write neighbouring columns of C. Transposes are strides (push
// constants), so one pipeline serves all four transpose combinations.
// Workgroup and block sizes are specialization constants chosen per device.
#extension GL_GOOGLE_include_directive : require
#include "matmul_common.glsl"

layout(local_size_x_id = 0, local_size_y_id = 1) in;
layout(constant_id = 2) const uint TM = 4; // rows of C per invocation
layout(constant_id = 3) const uint TN = 4; // columns of C per invocation

layout(std430, binding = 0) readonly buffer A { float a[]; };
layout(std430, binding = 1) readonly buffer B { float b[]; };

void main() {
    uint col0 = gl_WorkGroupID.x * gl_WorkGroupSize.x * TN + gl_LocalInvocationID.x;
    // Row blocks beyond the grid's 65535 limit are walked in a loop.
    uint block_rows = gl_WorkGroupSize.y * TM;
    for (uint block = gl_WorkGroupID.y * block_rows; block < pc.m;
         block += gl_NumWorkGroups.y * block_rows) {
        uint row0 = block + gl_LocalInvocationID.y;
        // Out-of-range rows and columns read a clamped (valid) address and
        // are simply not stored: no branches in the inner loop.
        uint a_base[TM];
        for (uint i = 0; i < TM; i++)
            a_base[i] = min(row0 + i * gl_WorkGroupSize.y, pc.m - 1) * pc.a_stride_m;
        uint b_base[TN];
        for (uint j = 0; j < TN; j++)
            b_base[j] = min(col0 + j * gl_WorkGroupSize.x, pc.n - 1) * pc.b_stride_n;

        float acc[TM][TN];
        for (uint i = 0; i < TM; i++)
            for (uint j = 0; j < TN; j++)
                acc[i][j] = 0.0;

        for (uint kk = 0; kk < pc.k; kk++) {
            float av[TM];
            float bv[TN];
            for (uint i = 0; i < TM; i++)
                av[i] = a[a_base[i] + kk * pc.a_stride_k];
            for (uint j = 0; j < TN; j++)
                bv[j] = b[kk * pc.b_stride_k + b_base[j]];
            for (uint i = 0; i < TM; i++)
                for (uint j = 0; j < TN; j++)
                    acc[i][j] = fma(av[i], bv[j], acc[i][j]);
        }

        for (uint i = 0; i < TM; i++) {
            uint row = row0 + i * gl_WorkGroupSize.y;
            if (row >= pc.m)
                break;
            for (uint j = 0; j < TN; j++) {
                uint col = col0 + j * gl_WorkGroupSize.x;
                if (col >= pc.n)
                    break;
                store_c(row, col, acc[i][j]);
            }
        }
    }
}
