#version 450
// conv2d_fwd: y (B, K, Ho, Wo) = x (B, C, H, W) (*) w (K, C, R, S) + bias (K),
// a cross-correlation with zero padding, as PyTorch's conv2d.
//
// An implicit GEMM, register-blocked like matmul.comp: rows are the K output
// channels, columns the B*Ho*Wo output pixels, and the sum runs over
// (c, r, s). Each invocation computes TM channels (strided by the workgroup
// height) by TN pixels (strided by the workgroup width, so neighbouring
// invocations read neighbouring x and write neighbouring y). The taps (r, s)
// are the outer loop: which pixels fall in the padding is decided once per
// tap, and the inner loop over c is plain loads and FMAs. Nothing like an
// im2col matrix is ever stored.

layout(local_size_x_id = 0, local_size_y_id = 1) in;
layout(constant_id = 2) const uint TM = 4; // output channels per invocation
layout(constant_id = 3) const uint TN = 4; // output pixels per invocation

layout(std430, binding = 0) readonly buffer X { float x[]; };        // (B, C, H, W)
layout(std430, binding = 1) readonly buffer Wt { float w[]; };       // (K, C, R, S)
layout(std430, binding = 2) readonly buffer Bias { float bias[]; };  // (K)
layout(std430, binding = 3) writeonly buffer Y { float y[]; };       // (B, K, Ho, Wo)

layout(push_constant) uniform Push { // vkt_conv2d_push
    uint batch;
    uint in_c, in_h, in_w;
    uint out_c, out_h, out_w;
    uint kernel_h, kernel_w;
    uint stride, pad;
} pc;

void main() {
    uint plane_out = pc.out_h * pc.out_w;
    uint pixels = pc.batch * plane_out;
    // Pixel tiles past 65535 workgroups are folded into z (conv.c).
    uint tile = gl_WorkGroupID.x + gl_WorkGroupID.z * gl_NumWorkGroups.x;
    uint pix0 = tile * gl_WorkGroupSize.x * TN + gl_LocalInvocationID.x;
    uint k0 = gl_WorkGroupID.y * gl_WorkGroupSize.y * TM + gl_LocalInvocationID.y;
    if (pix0 >= pixels || k0 >= pc.out_c)
        return;

    uint plane_in = pc.in_h * pc.in_w;
    uint taps = pc.kernel_h * pc.kernel_w;
    // Out-of-range pixels and channels of the block compute on a clamped
    // (valid) one and are not stored: no branches in the inner loop.
    int ih0[TN], iw0[TN]; // top-left of each pixel's window, in x (may be in the padding)
    uint x_img[TN];       // start of each pixel's image in x
    uint y_at[TN];        // each pixel's element of y's channel 0
    for (uint j = 0; j < TN; j++) {
        uint p = min(pix0 + j * gl_WorkGroupSize.x, pixels - 1);
        uint b = p / plane_out, hw = p - b * plane_out;
        uint oh = hw / pc.out_w, ow = hw - oh * pc.out_w;
        ih0[j] = int(oh * pc.stride) - int(pc.pad);
        iw0[j] = int(ow * pc.stride) - int(pc.pad);
        x_img[j] = b * pc.in_c * plane_in;
        y_at[j] = b * pc.out_c * plane_out + hw;
    }
    uint w_row[TM];
    for (uint i = 0; i < TM; i++)
        w_row[i] = min(k0 + i * gl_WorkGroupSize.y, pc.out_c - 1) * pc.in_c * taps;

    float acc[TM][TN];
    for (uint i = 0; i < TM; i++)
        for (uint j = 0; j < TN; j++)
            acc[i][j] = 0.0;

    for (uint r = 0; r < pc.kernel_h; r++) {
        for (uint s = 0; s < pc.kernel_w; s++) {
            // A pixel whose tap falls in the padding reads element 0 of its
            // channel (always valid) and multiplies by nothing: the select
            // below, not a branch, keeps the loads unconditional.
            uint x_at[TN];
            bool inside[TN];
            for (uint j = 0; j < TN; j++) {
                int ih = ih0[j] + int(r), iw = iw0[j] + int(s);
                inside[j] = ih >= 0 && ih < int(pc.in_h) && iw >= 0 && iw < int(pc.in_w);
                x_at[j] = inside[j] ? x_img[j] + uint(ih) * pc.in_w + uint(iw) : 0u;
            }
            uint tap = r * pc.kernel_w + s;
            for (uint c = 0; c < pc.in_c; c++) {
                float xv[TN], wv[TM];
                for (uint j = 0; j < TN; j++) {
                    float v = x[x_at[j] + c * plane_in];
                    xv[j] = inside[j] ? v : 0.0;
                }
                for (uint i = 0; i < TM; i++)
                    wv[i] = w[w_row[i] + c * taps + tap];
                for (uint i = 0; i < TM; i++)
                    for (uint j = 0; j < TN; j++)
                        acc[i][j] = fma(wv[i], xv[j], acc[i][j]);
            }
        }
    }

    for (uint i = 0; i < TM; i++) {
        uint k = k0 + i * gl_WorkGroupSize.y;
        if (k >= pc.out_c)
            break;
        float bk = bias[k];
        for (uint j = 0; j < TN; j++) {
            if (pix0 + j * gl_WorkGroupSize.x >= pixels)
                break;
            y[y_at[j] + k * plane_out] = acc[i][j] + bk;
        }
    }
}
