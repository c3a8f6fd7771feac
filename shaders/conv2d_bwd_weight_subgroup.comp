#version 450
// conv2d_bwd_weight_subgroup: dw (K, C, R, S) from dy (B, K, Ho, Wo) and
// x (B, C, H, W), for CPU devices with subgroup shuffles.
//
//     dw[k, c, r, s] = sum over b, oh, ow of
//         dy[b, k, oh, ow] * x[b, c, oh * stride - pad + r, ow * stride - pad + s]
//
// conv2d_bwd_weight.comp splits each long sum across a workgroup, which
// suits GPUs; but there every load is distinct, and on a CPU device, where
// each invocation's load is a scalar load of its own, loads are the cost.
// Here dw is a GEMM with rows k and columns (c, r, s) (its flat layout):
// a workgroup computes TM rows (the same for all its invocations) by wg*TN
// columns, each invocation all TM rows of TN columns (strided by the
// workgroup size), summing over (b, oh, ow) in order. At each step all
// invocations need the same TM values of dy, so each group of SG
// invocations loads TM / SG of them and passes them around with
// subgroupShuffle, as conv2d_fwd_subgroup.comp does with the weights. One
// invocation sums whole: deterministic, no atomics, no shared memory.

#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_shuffle : require

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint TM = 8; // output channels per workgroup (a multiple of SG)
layout(constant_id = 2) const uint TN = 4; // dw columns (c, r, s) per invocation
layout(constant_id = 3) const uint SG = 8; // invocations that share dy loads

layout(std430, binding = 0) readonly buffer DY { float dy[]; };  // (B, K, Ho, Wo)
layout(std430, binding = 1) readonly buffer X { float x[]; };    // (B, C, H, W)
layout(std430, binding = 2) writeonly buffer DW { float dw[]; }; // (K, C, R, S)

layout(push_constant) uniform Push { // vkt_conv2d_push
    uint batch;
    uint in_c, in_h, in_w;
    uint out_c, out_h, out_w;
    uint kernel_h, kernel_w;
    uint stride, pad;
} pc;

void main() {
    uint taps = pc.kernel_h * pc.kernel_w, cols = pc.in_c * taps;
    uint tile = gl_WorkGroupID.x + gl_WorkGroupID.z * gl_NumWorkGroups.x;
    uint col0 = tile * gl_WorkGroupSize.x * TN + gl_LocalInvocationID.x;
    uint k0 = gl_WorkGroupID.y * TM;
    uint lane = gl_SubgroupInvocationID % SG;         // which dy rows this one loads
    uint share_base = gl_SubgroupInvocationID - lane; // first of its SG sharers
    uint plane_in = pc.in_h * pc.in_w, plane_out = pc.out_h * pc.out_w;
    // No early return (the shuffles need every invocation): columns and
    // rows past the end compute on clamped, valid ones and are not stored.
    uint x_ch[TN]; // each column's channel offset within an image of x
    int dr[TN], ds[TN]; // each column's tap offset from a window's top-left
    for (uint j = 0; j < TN; j++) {
        uint col = min(col0 + j * gl_WorkGroupSize.x, cols - 1);
        uint c = col / taps, tap = col - c * taps;
        uint r = tap / pc.kernel_w, s = tap - r * pc.kernel_w;
        x_ch[j] = c * plane_in;
        dr[j] = int(r) - int(pc.pad);
        ds[j] = int(s) - int(pc.pad);
    }
    uint dy_row[TM / SG]; // the rows k0 + q*SG + lane this one loads
    for (uint q = 0; q < TM / SG; q++)
        dy_row[q] = min(k0 + q * SG + lane, pc.out_c - 1) * plane_out;

    float acc[TM][TN];
    for (uint i = 0; i < TM; i++)
        for (uint j = 0; j < TN; j++)
            acc[i][j] = 0.0;

    for (uint b = 0; b < pc.batch; b++) {
        uint dy_b = b * pc.out_c * plane_out, x_b = b * pc.in_c * plane_in;
        for (uint oh = 0; oh < pc.out_h; oh++) {
            // The row test once per output row; a tap in the padding reads
            // its channel's first element (valid) and selects 0.
            bool row_in[TN];
            uint x_row[TN];
            for (uint j = 0; j < TN; j++) {
                int ih = int(oh * pc.stride) + dr[j];
                row_in[j] = ih >= 0 && ih < int(pc.in_h);
                x_row[j] = x_b + x_ch[j] + (row_in[j] ? uint(ih) * pc.in_w : 0u);
            }
            for (uint ow = 0; ow < pc.out_w; ow++) {
                uint hw = oh * pc.out_w + ow;
                float mine[TM / SG], xv[TN];
                for (uint q = 0; q < TM / SG; q++)
                    mine[q] = dy[dy_b + dy_row[q] + hw];
                for (uint j = 0; j < TN; j++) {
                    int iw = int(ow * pc.stride) + ds[j];
                    bool inside = row_in[j] && iw >= 0 && iw < int(pc.in_w);
                    float v = x[inside ? x_row[j] + uint(iw) : x_b + x_ch[j]];
                    xv[j] = inside ? v : 0.0;
                }
                for (uint q = 0; q < TM / SG; q++)
                    for (uint l = 0; l < SG; l++) {
                        float dv = subgroupShuffle(mine[q], share_base + l); // row k0 + q*SG + l
                        for (uint j = 0; j < TN; j++)
                            acc[q * SG + l][j] = fma(dv, xv[j], acc[q * SG + l][j]);
                    }
            }
        }
    }

    for (uint i = 0; i < TM; i++) {
        uint k = k0 + i;
        if (k >= pc.out_c)
            break;
        for (uint j = 0; j < TN; j++) {
            uint col = col0 + j * gl_WorkGroupSize.x;
            if (col >= cols)
                break;
            dw[k * cols + col] = acc[i][j];
        }
    }
}
