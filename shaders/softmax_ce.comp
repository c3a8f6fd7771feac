#version 450
// softmax_ce: the per-row part of fused softmax cross-entropy on logits
// (B, C) with integer class labels (B) stored as floats. For row b with
// label l, m = max_c x[c] and s = sum_c e^(x[c] - m):
//   row_loss[b]   = -log softmax(x)[l] = (m - x[l]) + log(s)
//   dlogits[b][c] = (softmax(x)[c] - [c == l]) * grad_scale, grad_scale = 1/B
// reduce_sum.comp then forms loss = sum(row_loss) / B. One workgroup or one
// invocation per row (row_kernel.glsl).
//
// s is summed as k + r, k the number of logits equal to m (each e^0 = 1)
// and r the sum over the others, so that log(s) = log1p((k - 1) + r): a
// confident, correct row has s near 1 and a small loss, which log(s) would
// give only to its absolute error but log1p to a few ulp.
//
// A label that is not an integer in [0, C) (or NaN) gives NaN in that row's
// loss and gradient, so a NaN guard catches it; the loads use a clamped
// label, so a bad label never reads outside the row.
#extension GL_GOOGLE_include_directive : require

layout(local_size_x_id = 0) in;

#include "common.glsl"
#include "row_kernel.glsl"
#include "activation.glsl"

layout(std430, binding = 0) readonly buffer Logits { float logits[]; };
layout(std430, binding = 1) readonly buffer Labels { float labels[]; };
layout(std430, binding = 2) writeonly buffer DLogits { float dlogits[]; };
layout(std430, binding = 3) writeonly buffer RowLoss { float row_loss[]; };

layout(push_constant) uniform Push { // vkt_row_loss_push
    uint rows;
    uint cols;
    float grad_scale;
} pc;

void main() {
    uint row = row_index();
    if (row >= pc.rows) // uniform per workgroup where a workgroup shares a row
        return;
    uint base = row * pc.cols, tid = row_lane(), wg = row_lanes();
    float nan = uintBitsToFloat(0x7fc00000u);

    float l = labels[row];
    bool ok = l >= 0.0 && l < float(pc.cols) && l == floor(l);
    uint label = ok ? uint(l) : 0u;
    // Read before any invocation writes dlogits, which may share the
    // logits' memory when a graph runs the op in place.
    float x_label = logits[base + label];

    float m = uintBitsToFloat(0xff800000u); // -inf
    for (uint c = tid; c < pc.cols; c += wg)
        m = max(m, logits[base + c]);
    m = row_max(m);

    float r = 0.0, k = 0.0;
    for (uint c = tid; c < pc.cols; c += wg) {
        float v = logits[base + c];
        if (v == m)
            k += 1.0;
        else
            r += exp(v - m);
    }
    r = row_sum(r);
    k = row_sum(k);
    float s = k + r;

    for (uint c = tid; c < pc.cols; c += wg) {
        float p = exp(logits[base + c] - m) / s;
        dlogits[base + c] = ok ? (p - (c == label ? 1.0 : 0.0)) * pc.grad_scale : nan;
    }
    if (row_leader())
        row_loss[row] = ok ? (m - x_label) + log1p_stable((k - 1.0) + r) : nan;
}
