/* pool.c: 2-D max and average pooling in NCHW, forward and backward, with
 * no padding and PyTorch's floor mode (a window that would hang over the
 * bottom or right edge is dropped).
 * reference: https://pytorch.org/docs/stable/generated/torch.nn.MaxPool2d.html
 * reference: https://pytorch.org/docs/stable/generated/torch.nn.AvgPool2d.html
 *
 * Node contracts (inputs; outputs; the p.pool fields read):
 *   maxpool2d      {x (B, C, H, W)}                 {y (B, C, Ho, Wo)}  kernel, stride
 *   maxpool2d_bwd  {dy (B, C, Ho, Wo), x (B, C, H, W)} {dx (B, C, H, W)} kernel, stride, in_h, in_w
 *   avgpool2d      {x (B, C, H, W)}                 {y (B, C, Ho, Wo)}  kernel, stride
 *   avgpool2d_bwd  {dy (B, C, Ho, Wo)}              {dx (B, C, in_h, in_w)} kernel, stride, in_h, in_w
 * with kernel 0 meaning 2, stride 0 meaning kernel, Ho = (H - kernel) /
 * stride + 1 rounded down, likewise Wo. maxpool2d_bwd takes in_h, in_w of 0
 * as x's size (and otherwise checks them against it); avgpool2d_bwd needs
 * them, since dy alone does not fix H when stride > 1.
 *
 * The backward kernels are gathers: each dx element visits the (few)
 * windows that contain it, so every element is written once, in a fixed
 * order, with no atomics.
 *
 * Dimension legend: B batch, C channels, H W input size, Ho Wo output size,
 * k kernel (window) size. */
#include "op.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

typedef struct pool_geom {
    int64_t planes, H, W, Ho, Wo, k, stride;
} pool_geom;

static int64_t pool_kernel(const vkt_node *node) {
    return node->p.pool.kernel ? node->p.pool.kernel : 2;
}

static int64_t pool_stride(const vkt_node *node) {
    return node->p.pool.stride ? node->p.pool.stride : pool_kernel(node);
}

static int64_t pool_out_len(int64_t in, int64_t k, int64_t stride) {
    return in < k ? 0 : (in - k) / stride + 1;
}

/* The geometry of any of the four ops; the operands are 4-D (checked by
 * the shape rule before this is called). */
static pool_geom pool_geometry(const vkt_node *node) {
    const vkt_shape *a = &node->in[0]->shape;
    pool_geom g = {.planes = a->dims[0] * a->dims[1], .k = pool_kernel(node),
                   .stride = pool_stride(node)};
    switch (node->op) {
    case VKT_OP_MAXPOOL2D:
    case VKT_OP_AVGPOOL2D:
        g.H = a->dims[2], g.W = a->dims[3];
        g.Ho = pool_out_len(g.H, g.k, g.stride), g.Wo = pool_out_len(g.W, g.k, g.stride);
        break;
    case VKT_OP_MAXPOOL2D_BWD:
        g.Ho = a->dims[2], g.Wo = a->dims[3];
        g.H = node->in[1]->shape.dims[2], g.W = node->in[1]->shape.dims[3];
        break;
    default: /* VKT_OP_AVGPOOL2D_BWD */
        g.Ho = a->dims[2], g.Wo = a->dims[3];
        g.H = node->p.pool.in_h, g.W = node->p.pool.in_w;
        break;
    }
    return g;
}

// ---- Shape rules

static bool check_4d(const vkt_shape *s, const char *what, char *err, size_t size) {
    if (s->ndim == 4)
        return true;
    char buf[64];
    snprintf(err, size, "%s %s must be 4-D (B, C, H, W)", what, vkt_shape_format(s, buf, 64));
    return false;
}

/* The window must fit in the (H, W) that `who` gave. */
static bool check_window(const pool_geom *g, const char *who, char *err, size_t size) {
    if (g->H >= g->k && g->W >= g->k)
        return true;
    snprintf(err, size, "%s %lldx%lld is smaller than the %lldx%lld pooling window", who,
             (long long)g->H, (long long)g->W, (long long)g->k, (long long)g->k);
    return false;
}

static vkt_result pool_fwd_infer(const vkt_node *node, vkt_shape *out, char *err, size_t size) {
    const vkt_shape *x = &node->in[0]->shape;
    if (!check_4d(x, "x", err, size))
        return VKT_ERROR_SHAPE;
    pool_geom g = pool_geometry(node);
    char who[80], s[64];
    snprintf(who, sizeof who, "x %s", vkt_shape_format(x, s, 64));
    if (!check_window(&g, who, err, size))
        return VKT_ERROR_SHAPE;
    out[0] = (vkt_shape){.ndim = 4, .dims = {x->dims[0], x->dims[1], g.Ho, g.Wo}};
    return VKT_OK;
}

/* dy must be the pooled size of dx's (H, W), with dx's batch and channels. */
static bool check_dy(const vkt_node *node, const pool_geom *g, const vkt_shape *dx, char *err,
                     size_t size) {
    const vkt_shape *dy = &node->in[0]->shape;
    int64_t ho = pool_out_len(g->H, g->k, g->stride), wo = pool_out_len(g->W, g->k, g->stride);
    if (dy->dims[0] == dx->dims[0] && dy->dims[1] == dx->dims[1] && dy->dims[2] == ho &&
        dy->dims[3] == wo)
        return true;
    char s1[64], s2[64];
    snprintf(err, size, "dy %s must be (%lld, %lld, %lld, %lld): dx %s pooled by a %lldx%lld "
             "window with stride %lld", vkt_shape_format(dy, s1, 64), (long long)dx->dims[0],
             (long long)dx->dims[1], (long long)ho, (long long)wo, vkt_shape_format(dx, s2, 64),
             (long long)g->k, (long long)g->k, (long long)g->stride);
    return false;
}

static vkt_result maxpool2d_bwd_infer(const vkt_node *node, vkt_shape *out, char *err,
                                      size_t size) {
    const vkt_shape *dy = &node->in[0]->shape, *x = &node->in[1]->shape;
    if (!check_4d(dy, "dy", err, size) || !check_4d(x, "x", err, size))
        return VKT_ERROR_SHAPE;
    char s[64], who[80];
    uint32_t in_h = node->p.pool.in_h, in_w = node->p.pool.in_w;
    if ((in_h && in_h != x->dims[2]) || (in_w && in_w != x->dims[3])) {
        snprintf(err, size, "params in_h, in_w (%u, %u) differ from the size of x %s", in_h,
                 in_w, vkt_shape_format(x, s, 64));
        return VKT_ERROR_SHAPE;
    }
    pool_geom g = pool_geometry(node);
    snprintf(who, sizeof who, "x %s", vkt_shape_format(x, s, 64));
    if (!check_window(&g, who, err, size) || !check_dy(node, &g, x, err, size))
        return VKT_ERROR_SHAPE;
    out[0] = *x;
    return VKT_OK;
}

static vkt_result avgpool2d_bwd_infer(const vkt_node *node, vkt_shape *out, char *err,
                                      size_t size) {
    const vkt_shape *dy = &node->in[0]->shape;
    if (!check_4d(dy, "dy", err, size))
        return VKT_ERROR_SHAPE;
    if (node->p.pool.in_h == 0 || node->p.pool.in_w == 0) {
        snprintf(err, size, "params in_h and in_w (%u, %u) must give the forward input's size",
                 node->p.pool.in_h, node->p.pool.in_w);
        return VKT_ERROR_SHAPE;
    }
    pool_geom g = pool_geometry(node);
    vkt_shape dx = {.ndim = 4, .dims = {dy->dims[0], dy->dims[1], g.H, g.W}};
    if (vkt_shape_numel(&dx) >= ((int64_t)1 << 31)) {
        char s[64];
        snprintf(err, size, "dx %s would have 2^31 or more elements", vkt_shape_format(&dx, s, 64));
        return VKT_ERROR_SHAPE;
    }
    if (!check_window(&g, "params in_h, in_w", err, size) || !check_dy(node, &g, &dx, err, size))
        return VKT_ERROR_SHAPE;
    out[0] = dx;
    return VKT_OK;
}

// ---- CPU reference

/* Index in its plane of the maximum of window (oh, ow), as PyTorch's CPU
 * kernel picks it: scanning in row-major order, a strictly greater value or
 * a NaN takes over, so ties go to the first maximum and a NaN wins. */
static int64_t window_argmax(const float *plane, const pool_geom *g, int64_t oh, int64_t ow) {
    int64_t best = oh * g->stride * g->W + ow * g->stride;
    float best_value = -INFINITY;
    for (int64_t r = 0; r < g->k; r++)
        for (int64_t s = 0; s < g->k; s++) {
            int64_t at = (oh * g->stride + r) * g->W + ow * g->stride + s;
            if (plane[at] > best_value || isnan(plane[at])) {
                best_value = plane[at];
                best = at;
            }
        }
    return best;
}

static void maxpool2d_cpu(const vkt_node *node) {
    pool_geom g = pool_geometry(node);
    const float *x = vkt_view_host(&node->in[0]->view); // (B, C, H, W)
    float *y = vkt_view_host(&node->out[0]->view);      // (B, C, Ho, Wo)
    for (int64_t p = 0; p < g.planes; p++)
        for (int64_t oh = 0; oh < g.Ho; oh++)
            for (int64_t ow = 0; ow < g.Wo; ow++)
                y[(p * g.Ho + oh) * g.Wo + ow] =
                    x[p * g.H * g.W + window_argmax(x + p * g.H * g.W, &g, oh, ow)];
}

/* In the forward pass y[oh, ow] = x[argmax of its window], a copy, so its
 * gradient dy[oh, ow] goes to that one element: dx is zero except at the
 * windows' maxima, and an element that is the maximum of several
 * (overlapping) windows collects all their gradients. Written here as the
 * obvious scatter; each dx element receives at most ceil(k / stride)^2
 * terms, so these float sums are short. */
static void maxpool2d_bwd_cpu(const vkt_node *node) {
    pool_geom g = pool_geometry(node);
    const float *dy = vkt_view_host(&node->in[0]->view); // (B, C, Ho, Wo)
    const float *x = vkt_view_host(&node->in[1]->view);  // (B, C, H, W)
    float *dx = vkt_view_host(&node->out[0]->view);      // (B, C, H, W)
    memset(dx, 0, (size_t)(g.planes * g.H * g.W) * sizeof *dx);
    for (int64_t p = 0; p < g.planes; p++)
        for (int64_t oh = 0; oh < g.Ho; oh++)
            for (int64_t ow = 0; ow < g.Wo; ow++)
                dx[p * g.H * g.W + window_argmax(x + p * g.H * g.W, &g, oh, ow)] +=
                    dy[(p * g.Ho + oh) * g.Wo + ow];
}

/* y[oh, ow] = the mean of its k x k window (no padding, so the divisor is
 * always k^2, as PyTorch's count_include_pad makes no difference). */
static void avgpool2d_cpu(const vkt_node *node) {
    pool_geom g = pool_geometry(node);
    const float *x = vkt_view_host(&node->in[0]->view); // (B, C, H, W)
    float *y = vkt_view_host(&node->out[0]->view);      // (B, C, Ho, Wo)
    for (int64_t p = 0; p < g.planes; p++)
        for (int64_t oh = 0; oh < g.Ho; oh++)
            for (int64_t ow = 0; ow < g.Wo; ow++) {
                double sum = 0.0;
                for (int64_t r = 0; r < g.k; r++)
                    for (int64_t s = 0; s < g.k; s++)
                        sum += x[(p * g.H + oh * g.stride + r) * g.W + ow * g.stride + s];
                y[(p * g.Ho + oh) * g.Wo + ow] = (float)(sum / (double)(g.k * g.k));
            }
}

/* The windows along one axis that contain input index i: those o in
 * [0, out_len) with o * stride <= i < o * stride + k, i.e. o from
 * floor((i - k) / stride) + 1 (or 0) to floor(i / stride); lo > hi when none
 * does (an element past the last window in floor mode). */
static void windows_containing(int64_t i, const pool_geom *g, int64_t out_len, int64_t *lo,
                               int64_t *hi) {
    *lo = i < g->k ? 0 : (i - g->k) / g->stride + 1;
    *hi = i / g->stride < out_len - 1 ? i / g->stride : out_len - 1;
}

/* y[oh, ow] = sum of its window / k^2, so every element of window (oh, ow)
 * gets dy[oh, ow] / k^2: dx[ih, iw] = sum over the windows containing
 * (ih, iw) of dy / k^2 (zero for elements no window covers). */
static void avgpool2d_bwd_cpu(const vkt_node *node) {
    pool_geom g = pool_geometry(node);
    const float *dy = vkt_view_host(&node->in[0]->view); // (B, C, Ho, Wo)
    float *dx = vkt_view_host(&node->out[0]->view);      // (B, C, H, W)
    double area = (double)(g.k * g.k);
    for (int64_t p = 0; p < g.planes; p++)
        for (int64_t ih = 0; ih < g.H; ih++)
            for (int64_t iw = 0; iw < g.W; iw++) {
                int64_t oh0, oh1, ow0, ow1;
                windows_containing(ih, &g, g.Ho, &oh0, &oh1);
                windows_containing(iw, &g, g.Wo, &ow0, &ow1);
                double sum = 0.0;
                for (int64_t oh = oh0; oh <= oh1; oh++)
                    for (int64_t ow = ow0; ow <= ow1; ow++)
                        sum += dy[(p * g.Ho + oh) * g.Wo + ow];
                dx[(p * g.H + ih) * g.W + iw] = (float)(sum / area);
            }
}

// ---- Vulkan dispatch

/* One invocation per element of out[0] (y for the forwards, dx for the
 * backwards), or per window where `per_window`; inputs bound first, then
 * out[0]. Spec: 0 the workgroup size, 1 per_window. */
static void pool_record(const vkt_node *node, vkt_recorder *rec, vkt_kernel kernel,
                        bool per_window) {
    const vkt_tuning *t = vkt_recorder_tuning(rec);
    pool_geom g = pool_geometry(node);
    vkt_pool2d_push push = {
        .planes = (uint32_t)g.planes,
        .in_h = (uint32_t)g.H, .in_w = (uint32_t)g.W,
        .out_h = (uint32_t)g.Ho, .out_w = (uint32_t)g.Wo,
        .kernel = (uint32_t)g.k, .stride = (uint32_t)g.stride,
    };
    uint32_t spec[2] = {t->workgroup_1d, per_window};
    vkt_dispatch d = {.kernel = kernel, .spec = spec, .spec_count = per_window ? 2 : 1,
                      .push = &push, .push_size = sizeof push};
    for (uint32_t i = 0; i < node->nin; i++)
        d.views[d.view_count++] = &node->in[i]->view;
    d.write_mask = 1u << d.view_count;
    d.views[d.view_count++] = &node->out[0]->view;
    uint64_t n = per_window ? (uint64_t)(g.planes * g.Ho * g.Wo)
                            : (uint64_t)vkt_shape_numel(&node->out[0]->shape);
    vkt_grid_1d(n, t->workgroup_1d, d.groups);
    vkt_record_dispatch(rec, &d);
}

static void maxpool2d_record(const vkt_node *node, vkt_recorder *rec) {
    pool_record(node, rec, VKT_KERNEL_MAXPOOL2D_FWD, false);
}
/* Windows that do not overlap (stride >= kernel) let one invocation per
 * window write its whole cell of dx: each x element is read once instead of
 * once per dx element (shaders/maxpool2d_bwd.comp). */
static void maxpool2d_bwd_record(const vkt_node *node, vkt_recorder *rec) {
    pool_record(node, rec, VKT_KERNEL_MAXPOOL2D_BWD, pool_stride(node) >= pool_kernel(node));
}
static void avgpool2d_record(const vkt_node *node, vkt_recorder *rec) {
    pool_record(node, rec, VKT_KERNEL_AVGPOOL2D_FWD, false);
}
static void avgpool2d_bwd_record(const vkt_node *node, vkt_recorder *rec) {
    pool_record(node, rec, VKT_KERNEL_AVGPOOL2D_BWD, false);
}

const vkt_op_def vkt_op_maxpool2d_def = {
    .name = "maxpool2d", .nin = 1, .nout = 1,
    .infer = pool_fwd_infer, .cpu = maxpool2d_cpu, .record = maxpool2d_record,
};

const vkt_op_def vkt_op_maxpool2d_bwd_def = {
    .name = "maxpool2d_bwd", .nin = 2, .nout = 1,
    .infer = maxpool2d_bwd_infer, .cpu = maxpool2d_bwd_cpu, .record = maxpool2d_bwd_record,
};

const vkt_op_def vkt_op_avgpool2d_def = {
    .name = "avgpool2d", .nin = 1, .nout = 1,
    .infer = pool_fwd_infer, .cpu = avgpool2d_cpu, .record = avgpool2d_record,
};

const vkt_op_def vkt_op_avgpool2d_bwd_def = {
    .name = "avgpool2d_bwd", .nin = 1, .nout = 1,
    .infer = avgpool2d_bwd_infer, .cpu = avgpool2d_bwd_cpu, .record = avgpool2d_bwd_record,
};
