// matmul_reg.glsl: the body of the register-blocked matmul kernels for CPU
// devices (matmul_reg.comp reads A and B through texel buffers,
// matmul_reg_ssbo.comp through storage buffers). The including file defines
// FETCH4_A(i) / FETCH4_B(i), the i-th group of 4 floats, and FETCH1_A(i) /
// FETCH1_B(i), the i-th float, of its A and B bindings.
//
// C (M, N) = op(A) (M, K) * op(B) (K, N) [+ C] [+ bias], [ReLU].
//
// Why it looks like this: a CPU driver (lavapipe) runs 8 invocations as the
// 8 lanes of one SIMD register, loads memory lane by lane (texel fetches as
// vector gathers, storage buffers with a branch per lane) and runs both
// sides of every branch under a lane mask. Loads, not FMAs, bound the speed.
// So each invocation owns a TM x TN block of C (every loaded float feeds TN
// or TM FMAs), reads 4 floats per load, the code is fully unrolled with
// compile-time sizes so the block never lives in addressable memory, and
// every choice (transposes, alignment, epilogue) is a specialization
// constant, folded away before code generation.
//
// An operand is read 4 floats at a time along its contiguous dimension: K
// for A as is and for B transposed, M for A transposed, N for B as is. Rows
// need not start on a 4-float boundary: the residue MOD = (contiguous
// length) % 4 is a specialization constant, and because row0 and col0 are
// multiples of 4, every group's offset within its aligned 4-float texel is
// a compile-time constant too; a misaligned group is assembled from two
// neighbouring texels with a fixed shuffle. MOD == 4 means the operand's
// binding cannot be read in groups at all (an unaligned view): one float
// per load. Rows and columns past the edge read clamped valid texels and
// are not stored, so edge blocks cost what full ones do.

#extension GL_EXT_control_flow_attributes : require

layout(local_size_x_id = 0, local_size_y_id = 1) in;
layout(constant_id = 2) const uint TRANS_A = 0;
layout(constant_id = 3) const uint TRANS_B = 0;
layout(constant_id = 4) const uint A_MOD = 0; // contiguous length of A % 4, or 4: one float per load
layout(constant_id = 5) const uint B_MOD = 0;
layout(constant_id = 6) const uint FLAGS = 0; // the push constant's flags, folded in
layout(constant_id = 7) const uint VEC_C = 0; // N % 4 == 0: store 4 floats at a time
layout(constant_id = 8) const uint K_MOD = 0; // K % 4: the tail after the 4-wide K loop
#define EPILOGUE_FLAGS FLAGS
#include "matmul_common.glsl"

#define TM 16 // rows of C per invocation: VKT_MATMUL_REG_TM
#define TN 8  // columns of C per invocation: VKT_MATMUL_REG_TN

const uint SCALAR = 4;

// The 4 floats that start s floats into lo (continuing into hi).
vec4 shift4(vec4 lo, vec4 hi, uint s) {
    return s == 0 ? lo : s == 1 ? vec4(lo.yzw, hi.x) : s == 2 ? vec4(lo.zw, hi.xy)
                                                       : vec4(lo.w, hi.xyz);
}

void main() {
    uint col0 = (gl_WorkGroupID.x * gl_WorkGroupSize.x + gl_LocalInvocationID.x) * TN;
    uint block_rows = gl_WorkGroupSize.y * TM;
    // The last whole texel of each operand (vec4 reads clamp to it).
    uint a_last = (pc.m * pc.k + 3) / 4 - 1;
    uint b_last = (pc.k * pc.n + 3) / 4 - 1;
    // Row blocks beyond the grid's 65535 limit are walked in a loop.
    for (uint block = gl_WorkGroupID.y * block_rows; block < pc.m;
         block += gl_NumWorkGroups.y * block_rows) {
        uint row0 = block + gl_LocalInvocationID.y * TM;

        // Where each row of the block starts in A: for A as is, the texel
        // that holds its first float (which sits (i * A_MOD) % 4 floats in);
        // one float at a time, the float itself, of a clamped valid row. A
        // transposed computes its group addresses per k. Likewise for B.
        uint a_at[TM];
        [[unroll]] for (uint i = 0; i < TM; i++) {
            uint s = (i * A_MOD) % 4;
            a_at[i] = A_MOD == SCALAR ? min(row0 + i, pc.m - 1) * pc.a_stride_m
                                      : ((row0 + i) * pc.k - s) / 4;
        }
        uint b_at[TN];
        [[unroll]] for (uint j = 0; j < TN; j++) {
            uint s = (j * B_MOD) % 4;
            b_at[j] = B_MOD == SCALAR ? min(col0 + j, pc.n - 1) * pc.b_stride_n
                                      : ((col0 + j) * pc.k - s) / 4;
        }

        float acc[TM][TN];
        [[unroll]] for (uint i = 0; i < TM; i++)
            [[unroll]] for (uint j = 0; j < TN; j++)
                acc[i][j] = 0.0;

        // K-contiguous rows that start mid-texel need texels t and t + 1 at
        // each step; t + 1 is the next step's t, carried over so each step
        // still fetches one texel per row.
        vec4 a_carry[TM];
        if (A_MOD != SCALAR && TRANS_A == 0)
            [[unroll]] for (uint i = 0; i < TM; i++)
                if ((i * A_MOD) % 4 != 0)
                    a_carry[i] = FETCH4_A(min(a_at[i], a_last));
        vec4 b_carry[TN];
        if (B_MOD != SCALAR && TRANS_B != 0)
            [[unroll]] for (uint j = 0; j < TN; j++)
                if ((j * B_MOD) % 4 != 0)
                    b_carry[j] = FETCH4_B(min(b_at[j], b_last));

        uint k4 = pc.k & ~3u;
        for (uint k = 0; k < k4; k += 4) {
            vec4 av[TM]; // av[i][kk] = op(A)[row0 + i][k + kk]
            if (A_MOD == SCALAR) {
                [[unroll]] for (uint i = 0; i < TM; i++)
                    [[unroll]] for (uint kk = 0; kk < 4; kk++)
                        av[i][kk] = FETCH1_A(a_at[i] + (k + kk) * pc.a_stride_k);
            } else if (TRANS_A == 0) {
                [[unroll]] for (uint i = 0; i < TM; i++) {
                    uint s = (i * A_MOD) % 4, t = a_at[i] + k / 4;
                    if (s == 0) {
                        av[i] = FETCH4_A(min(t, a_last));
                    } else {
                        vec4 hi = FETCH4_A(min(t + 1, a_last));
                        av[i] = shift4(a_carry[i], hi, s);
                        a_carry[i] = hi;
                    }
                }
            } else {
                [[unroll]] for (uint kk = 0; kk < 4; kk++) {
                    uint s = (kk * A_MOD) % 4;
                    uint t = ((k + kk) * pc.m + row0 - s) / 4;
                    vec4 g[TM / 4 + 1];
                    [[unroll]] for (uint q = 0; q <= TM / 4; q++)
                        if (q < TM / 4 || s != 0) // the extra texel only when misaligned
                            g[q] = FETCH4_A(min(t + q, a_last));
                    [[unroll]] for (uint q = 0; q < TM / 4; q++) {
                        vec4 v = s == 0 ? g[q] : shift4(g[q], g[q + 1], s);
                        av[4 * q][kk] = v.x;
                        av[4 * q + 1][kk] = v.y;
                        av[4 * q + 2][kk] = v.z;
                        av[4 * q + 3][kk] = v.w;
                    }
                }
            }
            vec4 bv[TN]; // bv[j][kk] = op(B)[k + kk][col0 + j]
            if (B_MOD == SCALAR) {
                [[unroll]] for (uint j = 0; j < TN; j++)
                    [[unroll]] for (uint kk = 0; kk < 4; kk++)
                        bv[j][kk] = FETCH1_B((k + kk) * pc.b_stride_k + b_at[j]);
            } else if (TRANS_B != 0) {
                [[unroll]] for (uint j = 0; j < TN; j++) {
                    uint s = (j * B_MOD) % 4, t = b_at[j] + k / 4;
                    if (s == 0) {
                        bv[j] = FETCH4_B(min(t, b_last));
                    } else {
                        vec4 hi = FETCH4_B(min(t + 1, b_last));
                        bv[j] = shift4(b_carry[j], hi, s);
                        b_carry[j] = hi;
                    }
                }
            } else {
                [[unroll]] for (uint kk = 0; kk < 4; kk++) {
                    uint s = (kk * B_MOD) % 4;
                    uint t = ((k + kk) * pc.n + col0 - s) / 4;
                    vec4 g[TN / 4 + 1];
                    [[unroll]] for (uint q = 0; q <= TN / 4; q++)
                        if (q < TN / 4 || s != 0) // the extra texel only when misaligned
                            g[q] = FETCH4_B(min(t + q, b_last));
                    [[unroll]] for (uint q = 0; q < TN / 4; q++) {
                        vec4 v = s == 0 ? g[q] : shift4(g[q], g[q + 1], s);
                        bv[4 * q][kk] = v.x;
                        bv[4 * q + 1][kk] = v.y;
                        bv[4 * q + 2][kk] = v.z;
                        bv[4 * q + 3][kk] = v.w;
                    }
                }
            }
            [[unroll]] for (uint kk = 0; kk < 4; kk++)
                [[unroll]] for (uint i = 0; i < TM; i++)
                    [[unroll]] for (uint j = 0; j < TN; j++)
                        acc[i][j] = fma(av[i][kk], bv[j][kk], acc[i][j]);
        }

        // The K % 4 last values of K, unrolled: K_MOD is a constant.
        [[unroll]] for (uint kt = 0; kt < K_MOD; kt++) {
            uint k = k4 + kt;
            float av[TM];
            if (A_MOD == SCALAR) {
                [[unroll]] for (uint i = 0; i < TM; i++)
                    av[i] = FETCH1_A(a_at[i] + k * pc.a_stride_k);
            } else if (TRANS_A == 0) {
                [[unroll]] for (uint i = 0; i < TM; i++) {
                    uint f = (i * A_MOD) % 4 + kt; // float offset from the texel a_at[i] + k4 / 4
                    av[i] = FETCH4_A(min(a_at[i] + k4 / 4 + f / 4, a_last))[f % 4];
                }
            } else {
                uint s = (kt * A_MOD) % 4;
                uint t = (k * pc.m + row0 - s) / 4;
                vec4 g[TM / 4 + 1];
                [[unroll]] for (uint q = 0; q <= TM / 4; q++)
                    if (q < TM / 4 || s != 0)
                        g[q] = FETCH4_A(min(t + q, a_last));
                [[unroll]] for (uint q = 0; q < TM / 4; q++) {
                    vec4 v = s == 0 ? g[q] : shift4(g[q], g[q + 1], s);
                    av[4 * q] = v.x;
                    av[4 * q + 1] = v.y;
                    av[4 * q + 2] = v.z;
                    av[4 * q + 3] = v.w;
                }
            }
            float bv[TN];
            if (B_MOD == SCALAR) {
                [[unroll]] for (uint j = 0; j < TN; j++)
                    bv[j] = FETCH1_B(k * pc.b_stride_k + b_at[j]);
            } else if (TRANS_B != 0) {
                [[unroll]] for (uint j = 0; j < TN; j++) {
                    uint f = (j * B_MOD) % 4 + kt;
                    bv[j] = FETCH4_B(min(b_at[j] + k4 / 4 + f / 4, b_last))[f % 4];
                }
            } else {
                uint s = (kt * B_MOD) % 4;
                uint t = (k * pc.n + col0 - s) / 4;
                vec4 g[TN / 4 + 1];
                [[unroll]] for (uint q = 0; q <= TN / 4; q++)
                    if (q < TN / 4 || s != 0)
                        g[q] = FETCH4_B(min(t + q, b_last));
                [[unroll]] for (uint q = 0; q < TN / 4; q++) {
                    vec4 v = s == 0 ? g[q] : shift4(g[q], g[q + 1], s);
                    bv[4 * q] = v.x;
                    bv[4 * q + 1] = v.y;
                    bv[4 * q + 2] = v.z;
                    bv[4 * q + 3] = v.w;
                }
            }
            [[unroll]] for (uint i = 0; i < TM; i++)
                [[unroll]] for (uint j = 0; j < TN; j++)
                    acc[i][j] = fma(av[i], bv[j], acc[i][j]);
        }

        // No `break` here: loops with one do not unroll, and one dynamic
        // index into acc would move the whole block from registers to memory.
        if (VEC_C != 0) {
            [[unroll]] for (uint i = 0; i < TM; i++)
                [[unroll]] for (uint q = 0; q < TN / 4; q++)
                    if (row0 + i < pc.m && col0 + 4 * q < pc.n)
                        store_c4(row0 + i, col0 + 4 * q,
                                 vec4(acc[i][4 * q], acc[i][4 * q + 1], acc[i][4 * q + 2],
                                      acc[i][4 * q + 3]));
        } else {
            [[unroll]] for (uint i = 0; i < TM; i++)
                [[unroll]] for (uint j = 0; j < TN; j++)
                    if (row0 + i < pc.m && col0 + j < pc.n)
                        store_c(row0 + i, col0 + j, acc[i][j]);
        }
    }
}
