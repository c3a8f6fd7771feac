#version 450
// conv2d_bwd_weight: dw (K, C, R, S) from dy (B, K, Ho, Wo) and x (B, C, H, W).
//
// Every product of the forward went through one weight, so
//     dw[k, c, r, s] = sum over b, oh, ow of
//         dy[b, k, oh, ow] * x[b, c, oh * stride - pad + r, ow * stride - pad + s]
// with taps in the padding contributing nothing.
//
// The portable kernel (conv2d_bwd_weight_subgroup.comp serves CPU devices).
// dw is small and each element is a long sum (B*Ho*Wo terms), so one
// workgroup computes one TM x TN block of (k, c) at one tap (r, s) and its
// invocations split the sum, giving a GPU enough workgroups: the work units are (output pixel, chunk of
// BCHUNK images), consecutive invocations take consecutive pixels (adjacent
// addresses), and within a unit the images are walked with no index
// arithmetic. Fixing the tap per workgroup makes the padding test one per
// unit, shared by the whole block. The partial sums are then added in
// invocation order through shared memory: a fixed order, no atomics.

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint TM = 4;     // output channels (k) per workgroup
layout(constant_id = 2) const uint TN = 4;     // input channels (c) per workgroup
layout(constant_id = 3) const uint BCHUNK = 8; // images per work unit

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

shared float partial[TM * TN * gl_WorkGroupSize.x];

void main() {
    uint lid = gl_LocalInvocationID.x;
    uint c0 = gl_WorkGroupID.x * TN, k0 = gl_WorkGroupID.y * TM;
    uint tap = gl_WorkGroupID.z;
    uint r = tap / pc.kernel_w, s = tap - r * pc.kernel_w;
    uint plane_in = pc.in_h * pc.in_w, plane_out = pc.out_h * pc.out_w;
    // No early return: every invocation must reach the barrier. Block rows
    // and columns past K or C compute on a clamped (valid) channel and are
    // not stored.
    uint dy_ch[TM], x_ch[TN];
    for (uint i = 0; i < TM; i++)
        dy_ch[i] = min(k0 + i, pc.out_c - 1) * plane_out;
    for (uint j = 0; j < TN; j++)
        x_ch[j] = min(c0 + j, pc.in_c - 1) * plane_in;
    uint dy_img = pc.out_c * plane_out, x_img = pc.in_c * plane_in; // image strides

    float acc[TM][TN];
    for (uint i = 0; i < TM; i++)
        for (uint j = 0; j < TN; j++)
            acc[i][j] = 0.0;

    uint chunks = (pc.batch + BCHUNK - 1) / BCHUNK;
    uint units = plane_out * chunks;
    for (uint u = lid; u < units; u += gl_WorkGroupSize.x) {
        uint chunk = u / plane_out, hw = u - chunk * plane_out;
        uint oh = hw / pc.out_w, ow = hw - oh * pc.out_w;
        int ih = int(oh * pc.stride + r) - int(pc.pad);
        int iw = int(ow * pc.stride + s) - int(pc.pad);
        if (ih < 0 || ih >= int(pc.in_h) || iw < 0 || iw >= int(pc.in_w))
            continue;
        uint b0 = chunk * BCHUNK, b1 = min(b0 + BCHUNK, pc.batch);
        uint dy_at = b0 * dy_img + hw;
        uint x_at = b0 * x_img + uint(ih) * pc.in_w + uint(iw);
        for (uint b = b0; b < b1; b++, dy_at += dy_img, x_at += x_img) {
            float dv[TM], xv[TN];
            for (uint i = 0; i < TM; i++)
                dv[i] = dy[dy_at + dy_ch[i]];
            for (uint j = 0; j < TN; j++)
                xv[j] = x[x_at + x_ch[j]];
            for (uint i = 0; i < TM; i++)
                for (uint j = 0; j < TN; j++)
                    acc[i][j] = fma(dv[i], xv[j], acc[i][j]);
        }
    }

    for (uint i = 0; i < TM; i++)
        for (uint j = 0; j < TN; j++)
            partial[(i * TN + j) * gl_WorkGroupSize.x + lid] = acc[i][j];
    barrier();
    uint taps = pc.kernel_h * pc.kernel_w;
    for (uint e = lid; e < TM * TN; e += gl_WorkGroupSize.x) {
        uint k = k0 + e / TN, c = c0 + e % TN;
        if (k >= pc.out_c || c >= pc.in_c)
            continue;
        float sum = 0.0;
        for (uint l = 0; l < gl_WorkGroupSize.x; l++)
            sum += partial[e * gl_WorkGroupSize.x + l];
        dw[(k * pc.in_c + c) * taps + tap] = sum;
    }
}
