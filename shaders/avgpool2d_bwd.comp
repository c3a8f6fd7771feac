#version 450
// avgpool2d_bwd: dx (planes, H, W) from dy (planes, Ho, Wo). The forward
// gave every element of window (oh, ow) a weight of 1 / k^2 in y[oh, ow], so
//     dx[ih, iw] = sum over the windows (oh, ow) containing (ih, iw) of dy / k^2
// (zero where no window reaches in floor mode). A gather: one invocation per
// dx element, each written once, no atomics.
#extension GL_GOOGLE_include_directive : require

layout(local_size_x_id = 0) in;

#include "common.glsl"

layout(std430, binding = 0) readonly buffer DY { float dy[]; };  // (planes, Ho, Wo)
layout(std430, binding = 1) writeonly buffer DX { float dx[]; }; // (planes, H, W)

layout(push_constant) uniform Push { // vkt_pool2d_push
    uint planes;
    uint in_h, in_w, out_h, out_w;
    uint kernel, stride;
} pc;

// As in maxpool2d_bwd.comp: the windows along one axis containing index i.
void windows_containing(uint i, uint out_len, out uint lo, out uint hi) {
    lo = i < pc.kernel ? 0u : (i - pc.kernel) / pc.stride + 1u;
    hi = min(i / pc.stride, out_len - 1u);
}

void main() {
    uint i = linear_index();
    uint plane_in = pc.in_h * pc.in_w;
    if (i >= pc.planes * plane_in)
        return;
    uint plane = i / plane_in, hw = i - plane * plane_in;
    uint ih = hw / pc.in_w, iw = hw - ih * pc.in_w;
    uint oh0, oh1, ow0, ow1;
    windows_containing(ih, pc.out_h, oh0, oh1);
    windows_containing(iw, pc.out_w, ow0, ow1);
    uint dy_plane = plane * pc.out_h * pc.out_w;
    float sum = 0.0;
    for (uint oh = oh0; oh <= oh1; oh++)
        for (uint ow = ow0; ow <= ow1; ow++)
            sum += dy[dy_plane + oh * pc.out_w + ow];
    dx[i] = sum / float(pc.kernel * pc.kernel);
}
