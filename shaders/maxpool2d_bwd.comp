#version 450
// maxpool2d_bwd: dx (planes, H, W) from dy (planes, Ho, Wo) and the forward
// input x. The forward copied each window's first maximum to y, so its
// gradient goes to that element alone:
//     dx[ih, iw] = sum of dy[oh, ow] over the windows (oh, ow) that contain
//                  (ih, iw) and whose first maximum it is.
// Every dx element is written exactly once, in a fixed order, with no
// atomics, in one of two ways (spec constant CELLS):
//   CELLS = 0, any stride: one invocation per dx element gathers from the
//     (at most ceil(k / stride)^2) windows containing it, re-finding each
//     one's maximum, in row-major window order (the order in which pool.c's
//     scatter adds).
//   CELLS = 1, stride >= kernel (windows do not overlap, the usual 2x2 / 2
//     case): one invocation per window finds its maximum once and writes
//     the whole stride x stride cell at the window's corner (dy at the
//     maximum, 0 elsewhere); the last row and column of cells reach to the
//     image edge, covering what floor mode leaves out. Each x element is
//     loaded once instead of once per dx element.
#extension GL_GOOGLE_include_directive : require

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint CELLS = 0;

#include "common.glsl"

layout(std430, binding = 0) readonly buffer DY { float dy[]; };  // (planes, Ho, Wo)
layout(std430, binding = 1) readonly buffer X { float x[]; };    // (planes, H, W)
layout(std430, binding = 2) writeonly buffer DX { float dx[]; }; // (planes, H, W)

layout(push_constant) uniform Push { // vkt_pool2d_push
    uint planes;
    uint in_h, in_w, out_h, out_w;
    uint kernel, stride;
} pc;

// Index in its plane of the first maximum of the window whose first element
// is `top`, scanned as pool.c's window_argmax: a strictly greater value or a
// NaN takes over.
uint window_argmax(uint x_plane, uint top) {
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
    return best;
}

// The windows along one axis that contain index i: o * stride <= i <
// o * stride + kernel, clipped to [0, out_len); empty (lo > hi) for an
// element past the last window.
void windows_containing(uint i, uint out_len, out uint lo, out uint hi) {
    lo = i < pc.kernel ? 0u : (i - pc.kernel) / pc.stride + 1u;
    hi = min(i / pc.stride, out_len - 1u);
}

void gather(uint i) {
    uint plane_in = pc.in_h * pc.in_w;
    uint plane = i / plane_in, hw = i - plane * plane_in;
    uint ih = hw / pc.in_w, iw = hw - ih * pc.in_w;
    uint oh0, oh1, ow0, ow1;
    windows_containing(ih, pc.out_h, oh0, oh1);
    windows_containing(iw, pc.out_w, ow0, ow1);
    uint x_plane = plane * plane_in, dy_plane = plane * pc.out_h * pc.out_w;
    float sum = 0.0;
    for (uint oh = oh0; oh <= oh1; oh++)
        for (uint ow = ow0; ow <= ow1; ow++)
            if (window_argmax(x_plane, oh * pc.stride * pc.in_w + ow * pc.stride) == hw)
                sum += dy[dy_plane + oh * pc.out_w + ow];
    dx[i] = sum;
}

void cell(uint i) {
    uint plane_out = pc.out_h * pc.out_w, plane_in = pc.in_h * pc.in_w;
    uint plane = i / plane_out, hw = i - plane * plane_out;
    uint oh = hw / pc.out_w, ow = hw - oh * pc.out_w;
    uint x_plane = plane * plane_in;
    uint top = oh * pc.stride * pc.in_w + ow * pc.stride;
    uint best = window_argmax(x_plane, top);
    float g = dy[i];
    uint rows = oh + 1 == pc.out_h ? pc.in_h - oh * pc.stride : pc.stride;
    uint cols = ow + 1 == pc.out_w ? pc.in_w - ow * pc.stride : pc.stride;
    for (uint r = 0; r < rows; r++)
        for (uint s = 0; s < cols; s++) {
            uint at = top + r * pc.in_w + s;
            dx[x_plane + at] = at == best ? g : 0.0;
        }
}

void main() {
    uint i = linear_index();
    if (CELLS != 0) {
        if (i < pc.planes * pc.out_h * pc.out_w)
            cell(i);
    } else {
        if (i < pc.planes * pc.in_h * pc.in_w)
            gather(i);
    }
}
