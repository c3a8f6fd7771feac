// conv2d_bwd_input.glsl: the body of conv2d_bwd_input.comp and
// conv2d_bwd_input_subgroup.comp.
//
// dx (B, C, H, W) from dy (B, K, Ho, Wo) and w (K, C, R, S). The forward
// multiplied x[b, c, ih, iw] by w[k, c, r, s] into y[b, k, oh, ow] wherever
// oh * stride - pad + r = ih (and likewise for the columns), so
//     dx[b, c, ih, iw] = sum over k, r, s of dy[b, k, oh, ow] * w[k, c, r, s]
// over the taps where oh = (ih + pad - r) / stride is an integer in [0, Ho)
// (and ow likewise). Computed as a gather, so each dx element is written
// once, in a fixed order: an implicit GEMM with rows the C input channels,
// columns the B*H*W input pixels and the sum over (r, s, k), blocked as
// in conv2d_fwd.glsl (a workgroup's TM channels are shared by all its
// invocations, each invocation has TN pixels). The taps are the outer loop,
// so whether a pixel has an output behind a tap is decided once per tap,
// and the inner loop over k is loads and FMAs only. The subgroup variant
// shares the weight loads as conv2d_fwd_subgroup.comp does.

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint TM = 8; // input channels per workgroup (a multiple of SG)
layout(constant_id = 2) const uint TN = 4; // input pixels per invocation
layout(constant_id = 3) const uint SG = 1; // invocations that share weight loads

layout(std430, binding = 0) readonly buffer DY { float dy[]; };  // (B, K, Ho, Wo)
layout(std430, binding = 1) readonly buffer Wt { float w[]; };   // (K, C, R, S)
layout(std430, binding = 2) writeonly buffer DX { float dx[]; }; // (B, C, H, W)

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
    uint plane_in = pc.in_h * pc.in_w;
    uint pixels = pc.batch * plane_in;
    uint tile = gl_WorkGroupID.x + gl_WorkGroupID.z * gl_NumWorkGroups.x;
    uint pix0 = tile * gl_WorkGroupSize.x * TN + gl_LocalInvocationID.x;
    uint c0 = gl_WorkGroupID.y * TM;
#ifdef CONV2D_SUBGROUP
    uint lane = gl_SubgroupInvocationID % SG;
    uint share_base = gl_SubgroupInvocationID - lane;
#else
    const uint lane = 0;
#endif
    // No early return: clamped pixels and channels, stores guarded.
    uint plane_out = pc.out_h * pc.out_w;
    uint taps = pc.kernel_h * pc.kernel_w;
    int st = int(pc.stride);
    int th0[TN], tw0[TN]; // ih + pad, iw + pad: tap (r, s) reaches oh = (th0 - r) / stride
    uint dy_img[TN];      // start of each pixel's image in dy
    uint dx_at[TN];       // each pixel's element of dx's channel 0
    for (uint j = 0; j < TN; j++) {
        uint p = min(pix0 + j * gl_WorkGroupSize.x, pixels - 1);
        uint b = p / plane_in, hw = p - b * plane_in;
        uint ih = hw / pc.in_w, iw = hw - ih * pc.in_w;
        th0[j] = int(ih + pc.pad);
        tw0[j] = int(iw + pc.pad);
        dy_img[j] = b * pc.out_c * plane_out;
        dx_at[j] = b * pc.in_c * plane_in + hw;
    }
    uint w_col[TM / SG]; // the channels c0 + q*SG + lane whose weights this one loads
    for (uint q = 0; q < TM / SG; q++)
        w_col[q] = min(c0 + q * SG + lane, pc.in_c - 1) * taps;
    uint w_k = pc.in_c * taps; // w's stride between output channels

    float acc[TM][TN];
    for (uint i = 0; i < TM; i++)
        for (uint j = 0; j < TN; j++)
            acc[i][j] = 0.0;

    for (uint r = 0; r < pc.kernel_h; r++) {
        for (uint s = 0; s < pc.kernel_w; s++) {
            uint dy_at[TN];
            bool hit[TN];
            for (uint j = 0; j < TN; j++) {
                int th = th0[j] - int(r), tw = tw0[j] - int(s);
                // int / truncates toward zero, so negative th and tw are
                // rejected by their own test, not by the multiple check
                int oh = th / st, ow = tw / st;
                hit[j] = th >= 0 && tw >= 0 && oh * st == th && ow * st == tw &&
                         oh < int(pc.out_h) && ow < int(pc.out_w);
                dy_at[j] = hit[j] ? dy_img[j] + uint(oh) * pc.out_w + uint(ow) : 0u;
            }
            uint tap = r * pc.kernel_w + s;
            for (uint k = 0; k < pc.out_c; k++) {
                float dv[TN], mine[TM / SG];
                for (uint j = 0; j < TN; j++) {
                    float v = dy[dy_at[j] + k * plane_out];
                    dv[j] = hit[j] ? v : 0.0;
                }
                for (uint q = 0; q < TM / SG; q++)
                    mine[q] = w[k * w_k + w_col[q] + tap];
                for (uint q = 0; q < TM / SG; q++)
                    for (uint l = 0; l < SG; l++) {
                        float wv = SHARE(mine[q], l); // weight of channel c0 + q*SG + l
                        for (uint j = 0; j < TN; j++)
                            acc[q * SG + l][j] = fma(wv, dv[j], acc[q * SG + l][j]);
                    }
            }
        }
    }

    for (uint i = 0; i < TM; i++) {
        uint c = c0 + i;
        if (c >= pc.in_c)
            break;
        for (uint j = 0; j < TN; j++) {
            if (pix0 + j * gl_WorkGroupSize.x >= pixels)
                break;
            dx[dx_at[j] + c * plane_in] = acc[i][j];
        }
    }
}
