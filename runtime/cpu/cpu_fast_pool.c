/* cpu_fast_pool.c: the fast CPU backend's max pooling, forward and
 * backward. The reference (pool.c) finds each window's maximum with a
 * branch per element, which random activations mispredict half the time;
 * here the scan is the same (row-major, a strictly greater value or a NaN
 * takes over, so ties go to the first maximum and the last NaN wins) but
 * written as selects, which compile to conditional moves. Average pooling
 * runs through its reference.
 *
 * Dimension legend: planes = B C images of H x W pooled to Ho x Wo by k x k
 * windows, stride apart. */
#include "cpu_fast.h"

#include <math.h>
#include <string.h>

typedef struct pool_geom {
    int64_t planes, H, W, Ho, Wo, k, stride;
} pool_geom;

/* pool.c's pool_geometry for the two max-pooling ops: kernel 0 means 2,
 * stride 0 means the kernel; maxpool2d_bwd's input size is x's. */
static pool_geom geometry(const vkt_node *node) {
    const vkt_shape *a = &node->in[0]->shape;
    pool_geom g = {.planes = a->dims[0] * a->dims[1]};
    g.k = node->p.pool.kernel ? node->p.pool.kernel : 2;
    g.stride = node->p.pool.stride ? node->p.pool.stride : g.k;
    const vkt_shape *in = node->op == VKT_OP_MAXPOOL2D ? a : &node->in[1]->shape;
    const vkt_shape *out = node->op == VKT_OP_MAXPOOL2D ? &node->out[0]->shape : a;
    g.H = in->dims[2], g.W = in->dims[3];
    g.Ho = out->dims[2], g.Wo = out->dims[3];
    return g;
}

/* The index in its plane of window (oh, ow)'s maximum, by the reference's
 * rule (window_argmax in pool.c). */
static int64_t window_argmax(const float *plane, const pool_geom *g, int64_t oh, int64_t ow) {
    int64_t top = oh * g->stride, left = ow * g->stride;
    int64_t best = top * g->W + left;
    float best_value = -INFINITY;
    for (int64_t r = 0; r < g->k; r++) {
        for (int64_t s = 0; s < g->k; s++) {
            int64_t at = (top + r) * g->W + left + s;
            float v = plane[at];
            bool take = v > best_value || v != v;
            best_value = take ? v : best_value;
            best = take ? at : best;
        }
    }
    return best;
}

void vkt_cpu_fast_maxpool2d(const vkt_node *node) {
    pool_geom g = geometry(node);
    const float *x = vkt_view_host(&node->in[0]->view); // (B, C, H, W)
    float *y = vkt_view_host(&node->out[0]->view);      // (B, C, Ho, Wo)
    for (int64_t p = 0; p < g.planes; p++) {
        const float *plane = x + p * g.H * g.W;
        for (int64_t oh = 0; oh < g.Ho; oh++)
            for (int64_t ow = 0; ow < g.Wo; ow++)
                y[(p * g.Ho + oh) * g.Wo + ow] = plane[window_argmax(plane, &g, oh, ow)];
    }
}

/* dy of each window goes to its maximum; overlapping windows add up. */
void vkt_cpu_fast_maxpool2d_bwd(const vkt_node *node) {
    pool_geom g = geometry(node);
    const float *dy = vkt_view_host(&node->in[0]->view); // (B, C, Ho, Wo)
    const float *x = vkt_view_host(&node->in[1]->view);  // (B, C, H, W)
    float *dx = vkt_view_host(&node->out[0]->view);      // (B, C, H, W)
    memset(dx, 0, (size_t)(g.planes * g.H * g.W) * sizeof *dx);
    for (int64_t p = 0; p < g.planes; p++) {
        const float *plane = x + p * g.H * g.W;
        float *dplane = dx + p * g.H * g.W;
        for (int64_t oh = 0; oh < g.Ho; oh++)
            for (int64_t ow = 0; ow < g.Wo; ow++)
                dplane[window_argmax(plane, &g, oh, ow)] += dy[(p * g.Ho + oh) * g.Wo + ow];
    }
}
