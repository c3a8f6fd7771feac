/* cpu_fast_conv.c: the fast CPU backend's 2-D convolution, all four ops of
 * conv.c, as im2col and sgemm one image at a time: the image's receptive
 * fields are unrolled into a column matrix col (C R S, Ho Wo), after which
 *   forward       y[b] (K, Ho Wo) = bias + w (K, C R S) col
 *   input grad    dcol (C R S, Ho Wo) = w^T dy[b] (K, Ho Wo), then col2im
 *                 adds each column entry back onto the pixel it came from
 *   weight grad   dw (K, C R S) = sum over b of dy[b] col^T
 *   bias grad     db[k] = sum of dy[b, k, :, :]
 * which is conv.c's reference regrouped (its comments derive each sum).
 * One image's columns (for the CNN's second layer 288 x 196 floats) stay in
 * cache between im2col and sgemm, where a whole batch's would not. Without
 * memory for them an op runs through its reference instead.
 *
 * Dimension legend: B batch, C input channels, H W input size, K output
 * channels, R S kernel size, Ho Wo output size, P = Ho Wo pixels. */
#include "cpu_fast.h"

#include <stdlib.h>
#include <string.h>

typedef struct conv_geom {
    int64_t B, C, H, W, K, R, S, Ho, Wo, stride, pad;
} conv_geom;

/* conv.c's conv_geometry: the sizes of any of the four ops from its
 * operands and params (the node has passed its shape rule). */
static conv_geom geometry(const vkt_node *node) {
    const vkt_shape *a = &node->in[0]->shape;
    conv_geom g = {.stride = node->p.conv.stride ? node->p.conv.stride : 1,
                   .pad = node->p.conv.pad};
    g.B = a->dims[0];
    if (node->op == VKT_OP_CONV2D) {
        const vkt_shape *w = &node->in[1]->shape;
        g.C = a->dims[1], g.H = a->dims[2], g.W = a->dims[3];
        g.K = w->dims[0], g.R = w->dims[2], g.S = w->dims[3];
        g.Ho = node->out[0]->shape.dims[2], g.Wo = node->out[0]->shape.dims[3];
        return g;
    }
    g.K = a->dims[1], g.Ho = a->dims[2], g.Wo = a->dims[3];
    if (node->op == VKT_OP_CONV2D_BWD_INPUT) {
        const vkt_shape *w = &node->in[1]->shape;
        g.C = w->dims[1], g.R = w->dims[2], g.S = w->dims[3];
        g.H = node->p.conv.in_h, g.W = node->p.conv.in_w;
    } else if (node->op == VKT_OP_CONV2D_BWD_WEIGHT) {
        const vkt_shape *x = &node->in[1]->shape;
        g.C = x->dims[1], g.H = x->dims[2], g.W = x->dims[3];
        g.R = node->p.conv.kernel_h, g.S = node->p.conv.kernel_w;
    }
    return g;
}

/* The output columns [lo, hi) whose input column ow * stride - pad + s is
 * inside the image; the others read padding. */
static void valid_columns(const conv_geom *g, int64_t s, int64_t *lo, int64_t *hi) {
    int64_t first = g->pad - s; /* ow * stride must reach it */
    *lo = first <= 0 ? 0 : (first + g->stride - 1) / g->stride;
    int64_t end = g->W + g->pad - s; /* ow * stride must stay below it */
    *hi = end <= 0 ? 0 : (end + g->stride - 1) / g->stride;
    *hi = *hi < g->Wo ? *hi : g->Wo;
    *lo = *lo < *hi ? *lo : *hi;
}

/* col[(c R + r) S + s][oh Wo + ow] = x[c, oh stride - pad + r, ow stride -
 * pad + s], 0 in the padding. */
static void im2col(const conv_geom *g, const float *x, float *col) {
    int64_t P = g->Ho * g->Wo;
    for (int64_t c = 0; c < g->C; c++)
        for (int64_t r = 0; r < g->R; r++)
            for (int64_t s = 0; s < g->S; s++) {
                float *row = col + ((c * g->R + r) * g->S + s) * P; // (Ho, Wo)
                int64_t lo, hi;
                valid_columns(g, s, &lo, &hi);
                for (int64_t oh = 0; oh < g->Ho; oh++) {
                    float *out = row + oh * g->Wo;
                    int64_t ih = oh * g->stride - g->pad + r;
                    if (ih < 0 || ih >= g->H) {
                        memset(out, 0, (size_t)g->Wo * sizeof *out);
                        continue;
                    }
                    const float *in = x + (c * g->H + ih) * g->W; // (W)
                    for (int64_t ow = 0; ow < lo; ow++)
                        out[ow] = 0.0f;
                    if (g->stride == 1) /* contiguous: a vector copy */
                        for (int64_t ow = lo; ow < hi; ow++)
                            out[ow] = in[ow + s - g->pad];
                    else
                        for (int64_t ow = lo; ow < hi; ow++)
                            out[ow] = in[ow * g->stride + s - g->pad];
                    for (int64_t ow = hi; ow < g->Wo; ow++)
                        out[ow] = 0.0f;
                }
            }
}

/* The adjoint of im2col: every column entry is added onto the pixel it was
 * read from (padding entries are dropped). dx must start at zero. */
static void col2im(const conv_geom *g, const float *col, float *dx) {
    int64_t P = g->Ho * g->Wo;
    for (int64_t c = 0; c < g->C; c++)
        for (int64_t r = 0; r < g->R; r++)
            for (int64_t s = 0; s < g->S; s++) {
                const float *row = col + ((c * g->R + r) * g->S + s) * P; // (Ho, Wo)
                int64_t lo, hi;
                valid_columns(g, s, &lo, &hi);
                for (int64_t oh = 0; oh < g->Ho; oh++) {
                    int64_t ih = oh * g->stride - g->pad + r;
                    if (ih < 0 || ih >= g->H)
                        continue;
                    float *out = dx + (c * g->H + ih) * g->W; // (W)
                    for (int64_t ow = lo; ow < hi; ow++)
                        out[ow * g->stride + s - g->pad] += row[oh * g->Wo + ow];
                }
            }
}

/* A 1x1 kernel with stride 1 and no padding reads the image as it is. */
static bool image_is_col(const conv_geom *g) {
    return g->R == 1 && g->S == 1 && g->stride == 1 && g->pad == 0;
}

static float *alloc_col(const conv_geom *g) {
    return malloc((size_t)(g->C * g->R * g->S * g->Ho * g->Wo) * sizeof(float));
}

void vkt_cpu_fast_conv2d(const vkt_node *node) {
    conv_geom g = geometry(node);
    const float *x = vkt_view_host(&node->in[0]->view);    // (B, C, H, W)
    const float *w = vkt_view_host(&node->in[1]->view);    // (K, C, R, S)
    const float *bias = vkt_view_host(&node->in[2]->view); // (K)
    float *y = vkt_view_host(&node->out[0]->view);         // (B, K, Ho, Wo)
    int64_t CRS = g.C * g.R * g.S, P = g.Ho * g.Wo;
    float *col = image_is_col(&g) ? NULL : alloc_col(&g); // (C R S, P)
    if (!col && !image_is_col(&g)) {
        vkt_op_get(node->op)->cpu(node);
        return;
    }
    for (int64_t b = 0; b < g.B; b++) {
        const float *xb = x + b * g.C * g.H * g.W;
        if (col)
            im2col(&g, xb, col);
        /* the bias first, then accumulate: y = bias + w col */
        float *yb = y + b * g.K * P; // (K, P)
        for (int64_t k = 0; k < g.K; k++)
            for (int64_t i = 0; i < P; i++)
                yb[k * P + i] = bias[k];
        vkt_sgemm mm = {
            .m = g.K, .n = P, .k = CRS, .a = w, .b = col ? col : xb, .c = yb, .accumulate = true};
        vkt_cpu_sgemm(&mm);
    }
    free(col);
}

void vkt_cpu_fast_conv2d_bwd_input(const vkt_node *node) {
    conv_geom g = geometry(node);
    const float *dy = vkt_view_host(&node->in[0]->view); // (B, K, Ho, Wo)
    const float *w = vkt_view_host(&node->in[1]->view);  // (K, C, R, S)
    float *dx = vkt_view_host(&node->out[0]->view);      // (B, C, H, W)
    int64_t CRS = g.C * g.R * g.S, P = g.Ho * g.Wo, HW = g.H * g.W;
    bool direct = image_is_col(&g) && P == HW;
    float *col = direct ? NULL : alloc_col(&g); // (C R S, P)
    if (!col && !direct) {
        vkt_op_get(node->op)->cpu(node);
        return;
    }
    for (int64_t b = 0; b < g.B; b++) {
        float *dxb = dx + b * g.C * HW; // (C, H, W)
        vkt_sgemm mm = {.m = CRS,
                        .n = P,
                        .k = g.K,
                        .a = w,
                        .b = dy + b * g.K * P,
                        .c = col ? col : dxb,
                        .transpose_a = true};
        vkt_cpu_sgemm(&mm);
        if (col) {
            memset(dxb, 0, (size_t)(g.C * HW) * sizeof *dxb);
            col2im(&g, col, dxb);
        }
    }
    free(col);
}

void vkt_cpu_fast_conv2d_bwd_weight(const vkt_node *node) {
    conv_geom g = geometry(node);
    const float *dy = vkt_view_host(&node->in[0]->view); // (B, K, Ho, Wo)
    const float *x = vkt_view_host(&node->in[1]->view);  // (B, C, H, W)
    float *dw = vkt_view_host(&node->out[0]->view);      // (K, C, R, S)
    int64_t CRS = g.C * g.R * g.S, P = g.Ho * g.Wo;
    bool direct = image_is_col(&g) && P == g.H * g.W;
    float *col = direct ? NULL : alloc_col(&g); // (C R S, P)
    if (!col && !direct) {
        vkt_op_get(node->op)->cpu(node);
        return;
    }
    for (int64_t b = 0; b < g.B; b++) {
        const float *xb = x + b * g.C * g.H * g.W;
        if (col)
            im2col(&g, xb, col);
        vkt_sgemm mm = {.m = g.K,
                        .n = CRS,
                        .k = P,
                        .a = dy + b * g.K * P,
                        .b = col ? col : xb,
                        .c = dw,
                        .transpose_b = true,
                        .accumulate = b > 0};
        vkt_cpu_sgemm(&mm);
    }
    free(col);
}

/* Eight float partial sums per plane (as vkt_cpu_fast_sum_squares), the
 * planes added in double. */
void vkt_cpu_fast_conv2d_bwd_bias(const vkt_node *node) {
    enum { LANES = 8 };
    conv_geom g = geometry(node);
    const float *dy = vkt_view_host(&node->in[0]->view); // (B, K, Ho, Wo)
    float *db = vkt_view_host(&node->out[0]->view);      // (K)
    int64_t P = g.Ho * g.Wo, body = P / LANES * LANES;
    for (int64_t k = 0; k < g.K; k++) {
        double sum = 0.0;
        for (int64_t b = 0; b < g.B; b++) {
            const float *plane = dy + (b * g.K + k) * P; // (P)
            float part[LANES] = {0.0f};
            for (int64_t i = 0; i < body; i += LANES)
                for (int l = 0; l < LANES; l++)
                    part[l] += plane[i + l];
            for (int l = 0; l < LANES; l++)
                sum += part[l];
            for (int64_t i = body; i < P; i++)
                sum += plane[i];
        }
        db[k] = (float)sum;
    }
}
