// conv2d_fwd.glsl: the body of conv2d_fwd.comp and conv2d_fwd_subgroup.comp.
//
// y (B, K, Ho, Wo) = x (B, C, H, W) (*) w (K, C, R, S) + bias (K), a
// cross-correlation with zero padding, as PyTorch's conv2d.
//
// An implicit GEMM: rows are the K output channels, columns the B*Ho*Wo
// output pixels, and the sum runs over the taps (r, s) and the input
// channels c. A workgroup computes TM channels (the same for all its
// invocations) by wg*TN pixels; each invocation all TM channels of TN
// pixels, strided by the workgroup size so that neighbouring invocations
// read neighbouring x and write neighbouring y. The taps are the outer
// loop: which pixels fall in the padding is decided once per tap, and the
// inner loop over c is loads and FMAs only. No im2col matrix is stored.
//
// All invocations of a workgroup need the same TM weights at every step.
// On a GPU they are one broadcast read. On a CPU device each invocation's
// load is a scalar load of its own, so conv2d_fwd_subgroup.comp has each
// group of SG invocations load TM / SG of them (one each) and pass them
// around with subgroupShuffle: SG times fewer loads for the same FMAs.

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint TM = 8; // output channels per workgroup (a multiple of SG)
layout(constant_id = 2) const uint TN = 4; // output pixels per invocation
layout(constant_id = 3) const uint SG = 1; // invocations that share weight loads

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

#ifdef CONV2D_SUBGROUP
#define SHARE(v, l) subgroupShuffle(v, share_base + (l))
#else
#define SHARE(v, l) (v)
#endif

void main() {
    uint plane_out = pc.out_h * pc.out_w;
    uint pixels = pc.batch * plane_out;
    // Pixel tiles past 65535 workgroups are folded into z (conv.c).
    uint tile = gl_WorkGroupID.x + gl_WorkGroupID.z * gl_NumWorkGroups.x;
    uint pix0 = tile * gl_WorkGroupSize.x * TN + gl_LocalInvocationID.x;
    uint k0 = gl_WorkGroupID.y * TM;
#ifdef CONV2D_SUBGROUP
    uint lane = gl_SubgroupInvocationID % SG;            // which weights this one loads
    uint share_base = gl_SubgroupInvocationID - lane;    // first of its SG sharers
#else
    const uint lane = 0;
#endif
    // No early return (the shuffles need every invocation): pixels and
    // channels past the end compute on clamped, valid ones and are not
    // stored.
    uint plane_in = pc.in_h * pc.in_w;
    uint taps = pc.kernel_h * pc.kernel_w;
    int ih0[TN], iw0[TN]; // top-left of each pixel's window in x (may be in the padding)
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
    uint w_row[TM / SG]; // the weight rows (channels k0 + q*SG + lane) this one loads
    for (uint q = 0; q < TM / SG; q++)
        w_row[q] = min(k0 + q * SG + lane, pc.out_c - 1) * pc.in_c * taps;

    float acc[TM][TN];
    for (uint i = 0; i < TM; i++)
        for (uint j = 0; j < TN; j++)
            acc[i][j] = 0.0;

    for (uint r = 0; r < pc.kernel_h; r++) {
        for (uint s = 0; s < pc.kernel_w; s++) {
            // A pixel whose tap falls in the padding reads element 0 of its
            // channel (always valid) and selects 0: the loads stay
            // unconditional.
            uint x_at[TN];
            bool inside[TN];
            for (uint j = 0; j < TN; j++) {
                int ih = ih0[j] + int(r), iw = iw0[j] + int(s);
                inside[j] = ih >= 0 && ih < int(pc.in_h) && iw >= 0 && iw < int(pc.in_w);
                x_at[j] = inside[j] ? x_img[j] + uint(ih) * pc.in_w + uint(iw) : 0u;
            }
            uint tap = r * pc.kernel_w + s;
            for (uint c = 0; c < pc.in_c; c++) {
                float xv[TN], mine[TM / SG];
                for (uint j = 0; j < TN; j++) {
                    float v = x[x_at[j] + c * plane_in];
                    xv[j] = inside[j] ? v : 0.0;
                }
                for (uint q = 0; q < TM / SG; q++)
                    mine[q] = w[w_row[q] + c * taps + tap];
                for (uint q = 0; q < TM / SG; q++)
                    for (uint l = 0; l < SG; l++) {
                        float wv = SHARE(mine[q], l); // weight of channel k0 + q*SG + l
                        for (uint j = 0; j < TN; j++)
                            acc[q * SG + l][j] = fma(wv, xv[j], acc[q * SG + l][j]);
                    }
            }
        }
    }

    for (uint i = 0; i < TM; i++) {
        uint k = k0 + i;
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
