#version 450
// matmul_tiled: the matmul for GPUs. C (M, N) = op(A) (M, K) * op(B) (K, N)
// [+ C] [+ bias], [ReLU].
//
// Each workgroup computes a BM x BN tile of C (BM = WG_Y * TM rows, BN =
// WG_X * TN columns) and walks K in slices of BK: the workgroup first copies
// the BM x BK slice of op(A) and the BK x BN slice of op(B) into shared
// memory, each element read from global memory once per workgroup, with
// consecutive invocations reading consecutive addresses (coalesced) whichever
// way the operand is transposed; then every invocation accumulates its TM x
// TN outputs from shared memory. Each invocation's rows are strided by WG_Y
// and its columns by WG_X, so a warp reads consecutive shared-memory words.
// Shared rows are padded by one word so the transposing stores do not all
// hit one bank. Out-of-range elements are staged as 0 and not stored.
//
// CPU drivers run this slowly (shared memory is accessed lane by lane and
// barriers switch coroutines there): they use matmul_reg instead.
#extension GL_GOOGLE_include_directive : require
#include "matmul_common.glsl"

layout(local_size_x_id = 0, local_size_y_id = 1) in;
layout(constant_id = 0) const uint WG_X = 16;
layout(constant_id = 1) const uint WG_Y = 16;
layout(constant_id = 2) const uint TM = 4; // rows of C per invocation
layout(constant_id = 3) const uint TN = 4; // columns of C per invocation
layout(constant_id = 4) const uint BK = 16; // K slice per stage

const uint BM = WG_Y * TM;
const uint BN = WG_X * TN;
const uint AS_STRIDE = BM + 1;
const uint BS_STRIDE = BN + 1;

layout(std430, binding = 0) readonly buffer A { float a[]; };
layout(std430, binding = 1) readonly buffer B { float b[]; };

shared float As[BK * AS_STRIDE]; // As[kk * AS_STRIDE + r] = op(A)[row_base + r][k0 + kk]
shared float Bs[BK * BS_STRIDE]; // Bs[kk * BS_STRIDE + c] = op(B)[k0 + kk][col_base + c]

void main() {
    uint lx = gl_LocalInvocationID.x, ly = gl_LocalInvocationID.y;
    uint tid = ly * WG_X + lx;
    uint threads = WG_X * WG_Y;
    uint col_base = gl_WorkGroupID.x * BN;
    bool a_k_fast = pc.a_stride_k == 1; // A is stored K-contiguous
    bool b_n_fast = pc.b_stride_n == 1; // B is stored N-contiguous
    // Row tiles beyond the grid's 65535 limit are walked in a loop; the
    // bounds depend on the workgroup only, so barrier() stays in uniform
    // control flow.
    for (uint row_base = gl_WorkGroupID.y * BM; row_base < pc.m;
         row_base += gl_NumWorkGroups.y * BM) {
        float acc[TM][TN];
        for (uint i = 0; i < TM; i++)
            for (uint j = 0; j < TN; j++)
                acc[i][j] = 0.0;

        for (uint k0 = 0; k0 < pc.k; k0 += BK) {
            for (uint e = tid; e < BM * BK; e += threads) {
                uint r = a_k_fast ? e / BK : e % BM;
                uint kk = a_k_fast ? e % BK : e / BM;
                uint gr = row_base + r, gk = k0 + kk;
                As[kk * AS_STRIDE + r] = gr < pc.m && gk < pc.k
                                             ? a[gr * pc.a_stride_m + gk * pc.a_stride_k]
                                             : 0.0;
            }
            for (uint e = tid; e < BK * BN; e += threads) {
                uint c = b_n_fast ? e % BN : e / BK;
                uint kk = b_n_fast ? e / BN : e % BK;
                uint gc = col_base + c, gk = k0 + kk;
                Bs[kk * BS_STRIDE + c] = gc < pc.n && gk < pc.k
                                             ? b[gk * pc.b_stride_k + gc * pc.b_stride_n]
                                             : 0.0;
            }
            // Hazard: the reads below see every invocation's staged values.
            barrier();
            for (uint kk = 0; kk < BK; kk++) {
                float av[TM];
                float bv[TN];
                for (uint i = 0; i < TM; i++)
                    av[i] = As[kk * AS_STRIDE + ly + i * WG_Y];
                for (uint j = 0; j < TN; j++)
                    bv[j] = Bs[kk * BS_STRIDE + lx + j * WG_X];
                for (uint i = 0; i < TM; i++)
                    for (uint j = 0; j < TN; j++)
                        acc[i][j] = fma(av[i], bv[j], acc[i][j]);
            }
            // Hazard: the next slice's stores wait until everyone has read.
            barrier();
        }

        for (uint i = 0; i < TM; i++)
            for (uint j = 0; j < TN; j++) {
                uint row = row_base + ly + i * WG_Y, col = col_base + lx + j * WG_X;
                if (row < pc.m && col < pc.n)
                    store_c(row, col, acc[i][j]);
            }
    }
}
