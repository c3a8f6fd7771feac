/* conv.c: 2-D convolution in NCHW (a cross-correlation, as PyTorch's) and
 * its three gradients, each its own op so autodiff emits only the ones it
 * needs (no input gradient for the first layer, say).
 * reference: https://pytorch.org/docs/stable/generated/torch.nn.functional.conv2d.html
 *
 * Node contracts (inputs; outputs; the p.conv fields read):
 *   conv2d             {x (B, C, H, W), w (K, C, R, S), bias (K)}  {y (B, K, Ho, Wo)}
 *                      stride, pad
 *   conv2d_bwd_input   {dy (B, K, Ho, Wo), w (K, C, R, S)}         {dx (B, C, in_h, in_w)}
 *                      stride, pad, in_h, in_w
 *   conv2d_bwd_weight  {dy (B, K, Ho, Wo), x (B, C, H, W)}         {dw (K, C, kernel_h, kernel_w)}
 *                      stride, pad, kernel_h, kernel_w
 *   conv2d_bwd_bias    {dy (B, K, Ho, Wo)}                         {db (K)}
 * where Ho = (H + 2 pad - R) / stride + 1 rounded down, likewise Wo; stride
 * and pad apply to both axes and stride 0 means 1. The backward ops need the
 * sizes they cannot recover from dy: with stride > 1 several H give one Ho.
 *
 * The GPU kernels are implicit GEMMs, register-blocked, so no im2col
 * buffer is ever written or read (for the CNN's second layer at batch 128
 * it would be 29 MB per direction, and no scratch outputs are needed): the
 * forward is (K) x (C R S) times (C R S) x (B Ho Wo), the input gradient
 * (C) x (K R S) times (K R S) x (B H W), the weight gradient
 * (K) x (B Ho Wo) times (B Ho Wo) x (C R S). Each invocation computes a
 * TM x TN block and loops over the kernel taps (r, s) outside and the
 * channels inside, so the padding test is made once per tap and the inner
 * loop is loads and FMAs only. All invocations of a workgroup share its TM
 * channels, so on CPU devices (where every invocation's load is a scalar
 * load of its own, and loads, not FMAs, set the speed) the *_subgroup
 * kernels load each shared value once per SG invocations and pass it on by
 * subgroup shuffles; tools/bench_conv.c measures them.
 *
 * Dimension legend: B batch, C input channels, H W input size, K output
 * channels, R S kernel size, Ho Wo output size. */
#include "op.h"

#include <stdio.h>

typedef struct conv_geom {
    int64_t B, C, H, W, K, R, S, Ho, Wo, stride, pad;
} conv_geom;

static int64_t conv_stride(const vkt_node *node) {
    return node->p.conv.stride ? node->p.conv.stride : 1;
}

/* Output length of one axis, or 0 when the kernel does not fit. */
static int64_t conv_out_len(int64_t in, int64_t kernel, int64_t stride, int64_t pad) {
    return in + 2 * pad < kernel ? 0 : (in + 2 * pad - kernel) / stride + 1;
}

/* The geometry of any of the four ops, from its operands and params. The
 * callers have checked that the operands are 4-D (infer) or that the whole
 * node passed its shape rule (CPU and record). */
static conv_geom conv_geometry(const vkt_node *node) {
    const vkt_shape *a = &node->in[0]->shape;
    conv_geom g = {.stride = conv_stride(node), .pad = node->p.conv.pad};
    switch (node->op) {
    case VKT_OP_CONV2D: {
        const vkt_shape *w = &node->in[1]->shape;
        g.B = a->dims[0], g.C = a->dims[1], g.H = a->dims[2], g.W = a->dims[3];
        g.K = w->dims[0], g.R = w->dims[2], g.S = w->dims[3];
        g.Ho = conv_out_len(g.H, g.R, g.stride, g.pad);
        g.Wo = conv_out_len(g.W, g.S, g.stride, g.pad);
        break;
    }
    case VKT_OP_CONV2D_BWD_INPUT: {
        const vkt_shape *w = &node->in[1]->shape;
        g.B = a->dims[0], g.K = a->dims[1], g.Ho = a->dims[2], g.Wo = a->dims[3];
        g.C = w->dims[1], g.R = w->dims[2], g.S = w->dims[3];
        g.H = node->p.conv.in_h, g.W = node->p.conv.in_w;
        break;
    }
    case VKT_OP_CONV2D_BWD_WEIGHT: {
        const vkt_shape *x = &node->in[1]->shape;
        g.B = a->dims[0], g.K = a->dims[1], g.Ho = a->dims[2], g.Wo = a->dims[3];
        g.C = x->dims[1], g.H = x->dims[2], g.W = x->dims[3];
        g.R = node->p.conv.kernel_h, g.S = node->p.conv.kernel_w;
        break;
    }
    default: /* VKT_OP_CONV2D_BWD_BIAS */
        g.B = a->dims[0], g.K = a->dims[1], g.Ho = a->dims[2], g.Wo = a->dims[3];
        break;
    }
    return g;
}

// ---- Shape rules

static bool check_4d(const vkt_shape *s, const char *what, const char *layout, char *err,
                     size_t size) {
    if (s->ndim == 4)
        return true;
    char buf[64];
    snprintf(err, size, "%s %s must be 4-D %s", what, vkt_shape_format(s, buf, 64), layout);
    return false;
}

/* The kernels index with 32-bit integers; inputs are bounded when they are
 * created, but an output can be larger than every input (a big in_h). */
static bool check_out_size(const vkt_shape *out, const char *what, char *err, size_t size) {
    if (vkt_shape_numel(out) < ((int64_t)1 << 31))
        return true;
    char buf[64];
    snprintf(err, size, "%s %s would have 2^31 or more elements", what,
             vkt_shape_format(out, buf, 64));
    return false;
}

/* The kernel (R, S) must fit in the padded input (H, W), and (Ho, Wo) is
 * then the output size; `who` names the operand or params that gave H, W. */
static bool check_window(const conv_geom *g, const char *who, char *err, size_t size) {
    if (g->H + 2 * g->pad >= g->R && g->W + 2 * g->pad >= g->S)
        return true;
    snprintf(err, size, "the %lldx%lld kernel does not fit in %s %lldx%lld padded by %lld",
             (long long)g->R, (long long)g->S, who, (long long)g->H, (long long)g->W,
             (long long)g->pad);
    return false;
}

static vkt_result conv2d_infer(const vkt_node *node, vkt_shape *out, char *err, size_t size) {
    const vkt_shape *x = &node->in[0]->shape, *w = &node->in[1]->shape, *bias = &node->in[2]->shape;
    char s1[64], s2[64];
    if (!check_4d(x, "x", "(B, C, H, W)", err, size) ||
        !check_4d(w, "w", "(K, C, R, S)", err, size))
        return VKT_ERROR_SHAPE;
    if (w->dims[1] != x->dims[1]) {
        snprintf(err, size, "w %s has C = %lld input channels but x %s has %lld",
                 vkt_shape_format(w, s1, 64), (long long)w->dims[1], vkt_shape_format(x, s2, 64),
                 (long long)x->dims[1]);
        return VKT_ERROR_SHAPE;
    }
    if (bias->ndim != 1 || bias->dims[0] != w->dims[0]) {
        snprintf(err, size, "bias %s must be 1-D of length K = %lld, the output channels of w %s",
                 vkt_shape_format(bias, s1, 64), (long long)w->dims[0],
                 vkt_shape_format(w, s2, 64));
        return VKT_ERROR_SHAPE;
    }
    conv_geom g = conv_geometry(node);
    if (!check_window(&g, "x", err, size))
        return VKT_ERROR_SHAPE;
    out[0] = (vkt_shape){.ndim = 4, .dims = {g.B, g.K, g.Ho, g.Wo}};
    return check_out_size(&out[0], "y", err, size) ? VKT_OK : VKT_ERROR_SHAPE;
}

/* dy must be the output of a forward with the geometry g (its H, W from
 * `who`). */
static bool check_dy_matches(const vkt_node *node, const conv_geom *g, const char *who, char *err,
                             size_t size) {
    int64_t ho = conv_out_len(g->H, g->R, g->stride, g->pad);
    int64_t wo = conv_out_len(g->W, g->S, g->stride, g->pad);
    if (ho == g->Ho && wo == g->Wo)
        return true;
    char s1[64];
    snprintf(err, size, "dy %s is not the output size of a %lldx%lld input (%s) with a %lldx%lld "
             "kernel, stride %lld and pad %lld, which is %lldx%lld",
             vkt_shape_format(&node->in[0]->shape, s1, 64), (long long)g->H, (long long)g->W,
             who, (long long)g->R, (long long)g->S, (long long)g->stride, (long long)g->pad,
             (long long)ho, (long long)wo);
    return false;
}

static vkt_result conv2d_bwd_input_infer(const vkt_node *node, vkt_shape *out, char *err,
                                         size_t size) {
    const vkt_shape *dy = &node->in[0]->shape, *w = &node->in[1]->shape;
    char s1[64], s2[64];
    if (!check_4d(dy, "dy", "(B, K, Ho, Wo)", err, size) ||
        !check_4d(w, "w", "(K, C, R, S)", err, size))
        return VKT_ERROR_SHAPE;
    if (dy->dims[1] != w->dims[0]) {
        snprintf(err, size, "dy %s has %lld channels but w %s has K = %lld output channels",
                 vkt_shape_format(dy, s1, 64), (long long)dy->dims[1],
                 vkt_shape_format(w, s2, 64), (long long)w->dims[0]);
        return VKT_ERROR_SHAPE;
    }
    if (node->p.conv.in_h == 0 || node->p.conv.in_w == 0) {
        snprintf(err, size, "params in_h and in_w (%u, %u) must give the forward input's size",
                 node->p.conv.in_h, node->p.conv.in_w);
        return VKT_ERROR_SHAPE;
    }
    conv_geom g = conv_geometry(node);
    if (!check_window(&g, "params in_h, in_w", err, size) ||
        !check_dy_matches(node, &g, "params in_h, in_w", err, size))
        return VKT_ERROR_SHAPE;
    out[0] = (vkt_shape){.ndim = 4, .dims = {g.B, g.C, g.H, g.W}};
    return check_out_size(&out[0], "dx", err, size) ? VKT_OK : VKT_ERROR_SHAPE;
}

static vkt_result conv2d_bwd_weight_infer(const vkt_node *node, vkt_shape *out, char *err,
                                          size_t size) {
    const vkt_shape *dy = &node->in[0]->shape, *x = &node->in[1]->shape;
    char s1[64], s2[64];
    if (!check_4d(dy, "dy", "(B, K, Ho, Wo)", err, size) ||
        !check_4d(x, "x", "(B, C, H, W)", err, size))
        return VKT_ERROR_SHAPE;
    if (dy->dims[0] != x->dims[0]) {
        snprintf(err, size, "dy %s and x %s must have the same batch size",
                 vkt_shape_format(dy, s1, 64), vkt_shape_format(x, s2, 64));
        return VKT_ERROR_SHAPE;
    }
    if (node->p.conv.kernel_h == 0 || node->p.conv.kernel_w == 0) {
        snprintf(err, size, "params kernel_h and kernel_w (%u, %u) must give the kernel size",
                 node->p.conv.kernel_h, node->p.conv.kernel_w);
        return VKT_ERROR_SHAPE;
    }
    conv_geom g = conv_geometry(node);
    if (!check_window(&g, "x", err, size) || !check_dy_matches(node, &g, "x", err, size))
        return VKT_ERROR_SHAPE;
    out[0] = (vkt_shape){.ndim = 4, .dims = {g.K, g.C, g.R, g.S}};
    return check_out_size(&out[0], "dw", err, size) ? VKT_OK : VKT_ERROR_SHAPE;
}

static vkt_result conv2d_bwd_bias_infer(const vkt_node *node, vkt_shape *out, char *err,
                                        size_t size) {
    const vkt_shape *dy = &node->in[0]->shape;
    if (!check_4d(dy, "dy", "(B, K, Ho, Wo)", err, size))
        return VKT_ERROR_SHAPE;
    out[0] = (vkt_shape){.ndim = 1, .dims = {dy->dims[1]}};
    return VKT_OK;
}

// ---- CPU reference

/* y[b, k, oh, ow] = bias[k] + sum over c, r, s of
 *     x[b, c, oh * stride - pad + r, ow * stride - pad + s] * w[k, c, r, s]
 * with x taken as 0 outside the image (the padding). */
static void conv2d_cpu(const vkt_node *node) {
    conv_geom g = conv_geometry(node);
    const float *x = vkt_view_host(&node->in[0]->view);    // (B, C, H, W)
    const float *w = vkt_view_host(&node->in[1]->view);    // (K, C, R, S)
    const float *bias = vkt_view_host(&node->in[2]->view); // (K)
    float *y = vkt_view_host(&node->out[0]->view);         // (B, K, Ho, Wo)
    for (int64_t b = 0; b < g.B; b++)
        for (int64_t k = 0; k < g.K; k++)
            for (int64_t oh = 0; oh < g.Ho; oh++)
                for (int64_t ow = 0; ow < g.Wo; ow++) {
                    double sum = 0.0;
                    for (int64_t c = 0; c < g.C; c++)
                        for (int64_t r = 0; r < g.R; r++)
                            for (int64_t s = 0; s < g.S; s++) {
                                int64_t ih = oh * g.stride - g.pad + r;
                                int64_t iw = ow * g.stride - g.pad + s;
                                if (ih < 0 || ih >= g.H || iw < 0 || iw >= g.W)
                                    continue;
                                sum += (double)x[((b * g.C + c) * g.H + ih) * g.W + iw] *
                                       w[((k * g.C + c) * g.R + r) * g.S + s];
                            }
                    y[((b * g.K + k) * g.Ho + oh) * g.Wo + ow] = (float)(sum + bias[k]);
                }
}

/* In the forward pass x[b, c, ih, iw] was multiplied by w[k, c, r, s] into
 * y[b, k, oh, ow] for every (k, r, s) with oh * stride - pad + r = ih and
 * ow * stride - pad + s = iw, so
 *     dx[b, c, ih, iw] = sum over k, r, s of dy[b, k, oh, ow] * w[k, c, r, s]
 * over the taps where oh = (ih + pad - r) / stride is an integer in
 * [0, Ho), and likewise ow. */
static void conv2d_bwd_input_cpu(const vkt_node *node) {
    conv_geom g = conv_geometry(node);
    const float *dy = vkt_view_host(&node->in[0]->view); // (B, K, Ho, Wo)
    const float *w = vkt_view_host(&node->in[1]->view);  // (K, C, R, S)
    float *dx = vkt_view_host(&node->out[0]->view);      // (B, C, H, W)
    for (int64_t b = 0; b < g.B; b++)
        for (int64_t c = 0; c < g.C; c++)
            for (int64_t ih = 0; ih < g.H; ih++)
                for (int64_t iw = 0; iw < g.W; iw++) {
                    double sum = 0.0;
                    for (int64_t k = 0; k < g.K; k++)
                        for (int64_t r = 0; r < g.R; r++)
                            for (int64_t s = 0; s < g.S; s++) {
                                int64_t th = ih + g.pad - r, tw = iw + g.pad - s;
                                if (th < 0 || tw < 0 || th % g.stride || tw % g.stride)
                                    continue;
                                int64_t oh = th / g.stride, ow = tw / g.stride;
                                if (oh >= g.Ho || ow >= g.Wo)
                                    continue;
                                sum += (double)dy[((b * g.K + k) * g.Ho + oh) * g.Wo + ow] *
                                       w[((k * g.C + c) * g.R + r) * g.S + s];
                            }
                    dx[((b * g.C + c) * g.H + ih) * g.W + iw] = (float)sum;
                }
}

/* The same products, grouped by the weight they went through:
 *     dw[k, c, r, s] = sum over b, oh, ow of
 *         dy[b, k, oh, ow] * x[b, c, oh * stride - pad + r, ow * stride - pad + s]
 * (padding contributes nothing). */
static void conv2d_bwd_weight_cpu(const vkt_node *node) {
    conv_geom g = conv_geometry(node);
    const float *dy = vkt_view_host(&node->in[0]->view); // (B, K, Ho, Wo)
    const float *x = vkt_view_host(&node->in[1]->view);  // (B, C, H, W)
    float *dw = vkt_view_host(&node->out[0]->view);      // (K, C, R, S)
    for (int64_t k = 0; k < g.K; k++)
        for (int64_t c = 0; c < g.C; c++)
            for (int64_t r = 0; r < g.R; r++)
                for (int64_t s = 0; s < g.S; s++) {
                    double sum = 0.0;
                    for (int64_t b = 0; b < g.B; b++)
                        for (int64_t oh = 0; oh < g.Ho; oh++)
                            for (int64_t ow = 0; ow < g.Wo; ow++) {
                                int64_t ih = oh * g.stride - g.pad + r;
                                int64_t iw = ow * g.stride - g.pad + s;
                                if (ih < 0 || ih >= g.H || iw < 0 || iw >= g.W)
                                    continue;
                                sum += (double)dy[((b * g.K + k) * g.Ho + oh) * g.Wo + ow] *
                                       x[((b * g.C + c) * g.H + ih) * g.W + iw];
                            }
                    dw[((k * g.C + c) * g.R + r) * g.S + s] = (float)sum;
                }
}

/* bias[k] was added to every y[b, k, oh, ow]: db[k] = sum of dy[b, k, :, :]. */
static void conv2d_bwd_bias_cpu(const vkt_node *node) {
    conv_geom g = conv_geometry(node);
    const float *dy = vkt_view_host(&node->in[0]->view); // (B, K, Ho, Wo)
    float *db = vkt_view_host(&node->out[0]->view);      // (K)
    int64_t plane = g.Ho * g.Wo;
    for (int64_t k = 0; k < g.K; k++) {
        double sum = 0.0;
        for (int64_t b = 0; b < g.B; b++)
            for (int64_t i = 0; i < plane; i++)
                sum += dy[(b * g.K + k) * plane + i];
        db[k] = (float)sum;
    }
}

// ---- Vulkan dispatch

static vkt_conv2d_push conv_push(const conv_geom *g) {
    return (vkt_conv2d_push){
        .batch = (uint32_t)g->B,
        .in_c = (uint32_t)g->C, .in_h = (uint32_t)g->H, .in_w = (uint32_t)g->W,
        .out_c = (uint32_t)g->K, .out_h = (uint32_t)g->Ho, .out_w = (uint32_t)g->Wo,
        .kernel_h = (uint32_t)g->R, .kernel_w = (uint32_t)g->S,
        .stride = (uint32_t)g->stride, .pad = (uint32_t)g->pad,
    };
}

/* The implicit-GEMM kernels (forward, input gradient, and the weight
 * gradient's subgroup variant): `cols` columns (pixels) in tiles of
 * wg * TN along x, folded into z past 65535 tiles (the shaders unfold
 * them), and `rows` channels in blocks of TM along y. The last view is the
 * output. With tuning.conv_subgroup set, `sg_kernel` runs instead of
 * `kernel`: groups of that many invocations share loads by shuffles. A
 * block never has more rows than the op (rounded up to the sharing
 * group), so few-channel layers waste no FMAs on clamped rows. */
static void record_implicit_gemm(vkt_recorder *rec, vkt_kernel kernel, vkt_kernel sg_kernel,
                                 const vkt_conv2d_push *push, const vkt_view *const *views,
                                 uint32_t view_count, uint64_t cols, uint64_t rows) {
    const vkt_tuning *t = vkt_recorder_tuning(rec);
    uint32_t sg = t->conv_subgroup ? t->conv_subgroup : 1;
    uint64_t rows_up = (rows + sg - 1) / sg * sg;
    uint32_t tm = rows_up < t->conv_tm ? (uint32_t)rows_up : t->conv_tm;
    uint32_t spec[4] = {t->conv_wg, tm, t->conv_tn, sg};
    vkt_dispatch d = {
        .kernel = t->conv_subgroup ? sg_kernel : kernel, .spec = spec, .spec_count = 4,
        .view_count = view_count, .write_mask = 1u << (view_count - 1),
        .push = push, .push_size = sizeof *push,
    };
    for (uint32_t i = 0; i < view_count; i++)
        d.views[i] = views[i];
    uint32_t tiles = vkt_div_up(cols, t->conv_wg * t->conv_tn);
    d.groups[0] = tiles < 65535 ? tiles : 65535;
    d.groups[1] = vkt_div_up(rows, tm);
    d.groups[2] = vkt_div_up(tiles, d.groups[0]);
    vkt_record_dispatch(rec, &d);
}

static void conv2d_record(const vkt_node *node, vkt_recorder *rec) {
    conv_geom g = conv_geometry(node);
    vkt_conv2d_push push = conv_push(&g);
    const vkt_view *views[4] = {&node->in[0]->view, &node->in[1]->view, &node->in[2]->view,
                                &node->out[0]->view};
    record_implicit_gemm(rec, VKT_KERNEL_CONV2D_FWD, VKT_KERNEL_CONV2D_FWD_SUBGROUP, &push, views,
                         4, (uint64_t)(g.B * g.Ho * g.Wo), (uint64_t)g.K);
}

static void conv2d_bwd_input_record(const vkt_node *node, vkt_recorder *rec) {
    conv_geom g = conv_geometry(node);
    vkt_conv2d_push push = conv_push(&g);
    const vkt_view *views[3] = {&node->in[0]->view, &node->in[1]->view, &node->out[0]->view};
    record_implicit_gemm(rec, VKT_KERNEL_CONV2D_BWD_INPUT, VKT_KERNEL_CONV2D_BWD_INPUT_SUBGROUP,
                         &push, views, 3, (uint64_t)(g.B * g.H * g.W), (uint64_t)g.C);
}

/* On CPU devices with subgroup shuffles: dw as an implicit GEMM of K rows
 * by C*R*S columns, each invocation summing whole (see
 * conv2d_bwd_weight_subgroup.comp). Elsewhere one workgroup per (TM output
 * channels, TN input channels, tap): its invocations split the long sum
 * over (b, oh, ow) and add their partial sums in a fixed order, so there
 * are enough workgroups for a GPU even though dw is small, and no atomics.
 * A layer with fewer channels than the tile (the first, C = 1) gets a
 * narrower tile instead of idle lanes. */
static void conv2d_bwd_weight_record(const vkt_node *node, vkt_recorder *rec) {
    const vkt_tuning *t = vkt_recorder_tuning(rec);
    conv_geom g = conv_geometry(node);
    vkt_conv2d_push push = conv_push(&g);
    if (t->conv_subgroup) {
        const vkt_view *views[3] = {&node->in[0]->view, &node->in[1]->view, &node->out[0]->view};
        record_implicit_gemm(rec, VKT_KERNEL_CONV2D_BWD_WEIGHT,
                             VKT_KERNEL_CONV2D_BWD_WEIGHT_SUBGROUP, &push, views, 3,
                             (uint64_t)(g.C * g.R * g.S), (uint64_t)g.K);
        return;
    }
    uint32_t tm = g.K < t->conv_dw_tile ? (uint32_t)g.K : t->conv_dw_tile;
    uint32_t tn = g.C < t->conv_dw_tile ? (uint32_t)g.C : t->conv_dw_tile;
    uint32_t spec[4] = {t->conv_reduce_wg, tm, tn, t->conv_batch_chunk};
    vkt_dispatch d = {
        .kernel = VKT_KERNEL_CONV2D_BWD_WEIGHT, .spec = spec, .spec_count = 4,
        .views = {&node->in[0]->view, &node->in[1]->view, &node->out[0]->view},
        .view_count = 3, .write_mask = 1u << 2,
        .push = &push, .push_size = sizeof push,
        .groups = {vkt_div_up((uint64_t)g.C, tn), vkt_div_up((uint64_t)g.K, tm),
                   (uint32_t)(g.R * g.S)},
    };
    vkt_record_dispatch(rec, &d);
}

/* One workgroup per output channel, folded into y past 65535 channels. */
static void conv2d_bwd_bias_record(const vkt_node *node, vkt_recorder *rec) {
    const vkt_tuning *t = vkt_recorder_tuning(rec);
    conv_geom g = conv_geometry(node);
    vkt_conv2d_push push = conv_push(&g);
    uint32_t spec[1] = {t->conv_reduce_wg};
    vkt_dispatch d = {
        .kernel = VKT_KERNEL_CONV2D_BWD_BIAS, .spec = spec, .spec_count = 1,
        .views = {&node->in[0]->view, &node->out[0]->view},
        .view_count = 2, .write_mask = 1u << 1,
        .push = &push, .push_size = sizeof push,
    };
    vkt_grid_1d((uint64_t)g.K, 1, d.groups);
    vkt_record_dispatch(rec, &d);
}

const vkt_op_def vkt_op_conv2d_def = {
    .name = "conv2d", .nin = 3, .nout = 1,
    .infer = conv2d_infer, .cpu = conv2d_cpu, .record = conv2d_record,
};

const vkt_op_def vkt_op_conv2d_bwd_input_def = {
    .name = "conv2d_bwd_input", .nin = 2, .nout = 1,
    .infer = conv2d_bwd_input_infer, .cpu = conv2d_bwd_input_cpu,
    .record = conv2d_bwd_input_record,
};

const vkt_op_def vkt_op_conv2d_bwd_weight_def = {
    .name = "conv2d_bwd_weight", .nin = 2, .nout = 1,
    .infer = conv2d_bwd_weight_infer, .cpu = conv2d_bwd_weight_cpu,
    .record = conv2d_bwd_weight_record,
};

const vkt_op_def vkt_op_conv2d_bwd_bias_def = {
    .name = "conv2d_bwd_bias", .nin = 1, .nout = 1,
    .infer = conv2d_bwd_bias_infer, .cpu = conv2d_bwd_bias_cpu,
    .record = conv2d_bwd_bias_record,
};
