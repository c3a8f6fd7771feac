#version 450
// maxpool2d_bwd: dx (planes, H, W) from dy (planes, Ho, Wo) and the forward
// input x. The forward copied each window's first maximum to y, so its
// gradient goes to that element alone:
//     dx[ih, iw] = sum of dy[oh, ow] over the windows (oh, ow) that contain
//                  (ih, iw) and whose first maximum it is.
// A gather: one invocation per dx element re-finds the maximum of each of
// the (at most ceil(k / stride)^2) windows containing it, so every element
// is written once, in a fixed order, with no atomics. The windows are
// visited in row-major order, the order in which pool.c's scatter adds.
#extension GL_GOOGLE_include_directive : require

layout(local_size_x_id = 0) in;

#include "common.glsl"

layout(std430, binding = 0) readonly buffer DY { float dy[]; };  // (planes, Ho, Wo)
layout(std430, binding = 1) readonly buffer X { float x[]; };    // (planes, H, W)
layout(std430, binding = 2) writeonly buffer DX { float dx[]; }; // (planes, H, W)

layout(push_constant) uniform Push { // vkt_pool2d_push
    uint planes;
    uint in_h, in_w, out_h, out_w;
    uint kernel, stride;
} pc;

// The windows along one axis that contain index i: o * stride <= i <
// o * stride + kernel, clipped to [0, out_len); empty (lo > hi) for an
// element past the last window.
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
    uint x_plane = plane * plane_in, dy_plane = plane * pc.out_h * pc.out_w;
    float sum = 0.0;
    for (uint oh = oh0; oh <= oh1; oh++)
        for (uint ow = ow0; ow <= ow1; ow++) {
            uint top = oh * pc.stride * pc.in_w + ow * pc.stride; // window's first element
            uint best = top;
            float best_value = -1.0 / 0.0;
            for (uint r = 0; r < pc.kernel; r++)
                for (uint s = 0; s < pc.kernel; s++) {
                    uint at = top + r * pc.in_w + s;
                    float v = x[x_plane + at];
                    if (v > best_value || isnan(v)) {
                        best_value = v;
                        best = at;
                    }
                }
            if (best == hw)
                sum += dy[dy_plane + oh * pc.out_w + ow];
        }
    dx[i] = sum;
}
