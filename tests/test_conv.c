/* test_conv.c: the convolution and pooling ops (conv.c, pool.c) on Vulkan
 * against their CPU references at awkward shapes, finite-difference checks
 * of their gradients on the CPU reference, maxpool's tie rule, and the
 * shape rules' messages.
 *
 * Bounds: a convolution output or gradient element is an fp32 sum of n
 * products of values in [-1, 1) (n = C R S, K R S or B Ho Wo), so the bound
 * grows with n but stays far below one term: a kernel that drops, repeats
 * or misplaces a single tap fails. Max pooling copies values and its
 * gradient adds at most a few dy in the same order as the reference, so
 * both must match exactly. The harness's guard words catch a write past
 * either end of every output. */
#include "harness.h"

#include "../runtime/vulkan/vk_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static vkt_context *gpu, *cpu;
static void setup(void) {
    gpu = h_vulkan();
    cpu = h_cpu();
}
static void teardown(void) {
    h_finish(gpu);
    h_finish(cpu);
}
TestSuite(conv, .init = setup, .fini = teardown, .timeout = 600);

/* One convolution: x (B, C, H, W), w (K, C, R, S). */
typedef struct conv_case {
    int64_t B, C, H, W, K, R, S;
    uint32_t stride, pad;
} conv_case;

/* Batch 1 and 3, channels 1, 3 and 5, images from 1x1 to 28x28 (odd and
 * non-square ones included), kernels 1x1, 3x3, 5x5 and rectangular,
 * stride 1 to 3 and pad 0 to 2. With stride 2 some cases leave input rows
 * that no window reaches (their dx is 0), which is what in_h, in_w are
 * for. */
static const conv_case conv_cases[] = {
    {1, 1, 1, 1, 1, 1, 1, 1, 0},    {3, 3, 5, 7, 5, 3, 3, 1, 1},   {1, 5, 5, 7, 3, 5, 5, 1, 0},
    {3, 1, 28, 28, 5, 3, 3, 2, 1},  {1, 3, 1, 1, 5, 3, 3, 1, 1},   {3, 5, 7, 5, 1, 1, 1, 2, 0},
    {1, 3, 28, 28, 3, 5, 5, 1, 2},  {3, 5, 6, 9, 4, 2, 4, 1, 1},   {1, 1, 5, 7, 3, 3, 3, 2, 0},
    {3, 3, 11, 8, 5, 5, 3, 3, 1},   {1, 5, 5, 7, 5, 5, 5, 1, 2},   {3, 1, 28, 28, 32, 3, 3, 1, 1},
    {1, 32, 14, 14, 64, 3, 3, 1, 1}, {3, 33, 7, 9, 17, 3, 3, 2, 1},
};

static int64_t out_len(int64_t in, int64_t k, uint32_t stride, uint32_t pad) {
    return (in + 2 * (int64_t)pad - k) / (stride ? stride : 1) + 1;
}

static vkt_op_params conv_params(const conv_case *c) {
    return (vkt_op_params){.conv = {.stride = c->stride, .pad = c->pad, .kernel_h = (uint32_t)c->R,
                                    .kernel_w = (uint32_t)c->S, .in_h = (uint32_t)c->H,
                                    .in_w = (uint32_t)c->W}};
}

/* All four conv ops of one geometry, GPU against CPU. */
static void conv_compare(const conv_case *c, uint64_t seed) {
    int64_t Ho = out_len(c->H, c->R, c->stride, c->pad), Wo = out_len(c->W, c->S, c->stride, c->pad);
    vkt_shape x = h_shape4(c->B, c->C, c->H, c->W), w = h_shape4(c->K, c->C, c->R, c->S);
    vkt_shape dy = h_shape4(c->B, c->K, Ho, Wo);
    vkt_op_params p = conv_params(c);
    double n_fwd = (double)(c->C * c->R * c->S), n_in = (double)(c->K * c->R * c->S);
    double n_w = (double)(c->B * Ho * Wo);
    h_op_case fwd = {.op = VKT_OP_CONV2D, .params = p, .nin = 3, .nout = 1,
                     .in_shapes = {x, w, h_shape1(c->K)}, .lo = -1, .hi = 1,
                     .atol = 1e-6 * n_fwd, .rtol = 1e-5, .seed = seed};
    h_compare_op(gpu, cpu, &fwd);
    h_op_case bwd_in = {.op = VKT_OP_CONV2D_BWD_INPUT, .params = p, .nin = 2, .nout = 1,
                        .in_shapes = {dy, w}, .lo = -1, .hi = 1,
                        .atol = 1e-6 * n_in, .rtol = 1e-5, .seed = seed + 1};
    h_compare_op(gpu, cpu, &bwd_in);
    h_op_case bwd_w = {.op = VKT_OP_CONV2D_BWD_WEIGHT, .params = p, .nin = 2, .nout = 1,
                       .in_shapes = {dy, x}, .lo = -1, .hi = 1,
                       .atol = 1e-6 * n_w, .rtol = 1e-5, .seed = seed + 2};
    h_compare_op(gpu, cpu, &bwd_w);
    h_op_case bwd_b = {.op = VKT_OP_CONV2D_BWD_BIAS, .nin = 1, .nout = 1,
                       .in_shapes = {dy}, .lo = -1, .hi = 1,
                       .atol = 1e-6 * n_w, .rtol = 1e-5, .seed = seed + 3};
    h_compare_op(gpu, cpu, &bwd_b);
}

Test(conv, conv2d_all_directions_awkward_shapes) {
    for (size_t i = 0; i < COUNT(conv_cases); i++)
        conv_compare(&conv_cases[i], 100 + 10 * i);
}

/* The device picks the convolution kernels and their tiles (vk_tuning_choose):
 * here, a CPU device, the subgroup variants with 32-channel blocks. The
 * other devices' choices run here too by overriding the tuning of this
 * test's context: the plain implicit-GEMM kernels and the split-sum weight
 * gradient that GPUs get, and the subgroup kernels with the smallest
 * blocks (channels = the sharing group, one pixel per invocation). */
static void conv_compare_all(void) {
    for (size_t i = 0; i < COUNT(conv_cases); i++)
        conv_compare(&conv_cases[i], 200 + 10 * i);
}

Test(conv, conv2d_plain_kernels_as_on_gpus) {
    vkt_tuning *t = &vk_of(gpu)->tuning;
    t->conv_subgroup = 0;
    t->conv_wg = 64;
    t->conv_tm = 8;
    t->conv_tn = 4;
    t->conv_reduce_wg = 128;
    t->conv_dw_tile = 4;
    conv_compare_all();
    t->conv_wg = 8; /* and narrow blocks with partial workgroups */
    t->conv_tm = 3;
    t->conv_tn = 1;
    t->conv_reduce_wg = 24;
    t->conv_dw_tile = 2;
    t->conv_batch_chunk = 1;
    conv_compare_all();
}

Test(conv, conv2d_subgroup_kernels_small_blocks) {
    vkt_tuning *t = &vk_of(gpu)->tuning;
    if (!t->conv_subgroup)
        cr_skip_test("this device runs the plain kernels (no CPU device with subgroup shuffles)");
    t->conv_tm = t->conv_subgroup;
    t->conv_tn = 1;
    conv_compare_all();
}

/* stride 0 is the default, 1. */
Test(conv, conv2d_stride_zero_means_one) {
    conv_case c = {3, 3, 5, 7, 5, 3, 3, 0, 1};
    conv_compare(&c, 300);
}

/* More output pixels than 65535 workgroups cover along x: the forward's
 * and the input gradient's pixel tiles fold into z (conv.c) and the
 * shaders unfold them, and the pooling kernels' grid folds into y. */
Test(conv, grids_folded_past_65535_workgroups) {
    conv_case c = {3, 1, 1200, 1200, 1, 3, 3, 1, 1};
    vkt_shape x = h_shape4(3, 1, 1200, 1200);
    h_op_case fwd = {.op = VKT_OP_CONV2D, .params = conv_params(&c), .nin = 3, .nout = 1,
                     .in_shapes = {x, h_shape4(1, 1, 3, 3), h_shape1(1)}, .lo = -1, .hi = 1,
                     .atol = 1e-5, .rtol = 1e-5, .seed = 400};
    h_compare_op(gpu, cpu, &fwd);
    h_op_case bwd_in = {.op = VKT_OP_CONV2D_BWD_INPUT, .params = conv_params(&c), .nin = 2,
                        .nout = 1, .in_shapes = {x, h_shape4(1, 1, 3, 3)}, .lo = -1, .hi = 1,
                        .atol = 1e-5, .rtol = 1e-5, .seed = 401};
    h_compare_op(gpu, cpu, &bwd_in);
    vkt_op_params pool = {.pool = {.kernel = 3, .stride = 1}};
    vkt_shape y = h_shape4(3, 1, 1198, 1198);
    h_op_case maxpool_bwd = {.op = VKT_OP_MAXPOOL2D_BWD, .params = pool, .nin = 2, .nout = 1,
                             .in_shapes = {y, x}, .lo = -1, .hi = 1, .seed = 402};
    h_compare_op(gpu, cpu, &maxpool_bwd);
}

/* One pooling: x (B, C, H, W), window kernel x kernel (0: 2), stride (0:
 * the kernel). */
typedef struct pool_case {
    int64_t B, C, H, W;
    uint32_t kernel, stride;
} pool_case;

/* 1x1 images, odd sizes where floor mode drops the last row and column,
 * overlapping windows (stride < kernel), gaps (stride > kernel), and the
 * defaults. */
static const pool_case pool_cases[] = {
    {1, 1, 1, 1, 1, 1},   {1, 1, 2, 2, 0, 0},   {3, 5, 5, 7, 2, 2},  {1, 3, 28, 28, 2, 2},
    {3, 1, 7, 5, 3, 2},   {1, 5, 9, 9, 3, 3},   {3, 3, 6, 5, 2, 1},  {1, 1, 5, 7, 3, 0},
    {3, 3, 28, 28, 5, 2}, {1, 5, 11, 13, 2, 3}, {3, 32, 14, 14, 0, 0}, {1, 1, 1, 9, 1, 2},
};

static vkt_op_params pool_params(const pool_case *c) {
    return (vkt_op_params){.pool = {.kernel = c->kernel, .stride = c->stride,
                                    .in_h = (uint32_t)c->H, .in_w = (uint32_t)c->W}};
}

static vkt_shape pooled_shape(const pool_case *c) {
    int64_t k = c->kernel ? c->kernel : 2, s = c->stride ? c->stride : k;
    return h_shape4(c->B, c->C, (c->H - k) / s + 1, (c->W - k) / s + 1);
}

Test(conv, pooling_all_directions_awkward_shapes) {
    for (size_t i = 0; i < COUNT(pool_cases); i++) {
        const pool_case *c = &pool_cases[i];
        uint64_t seed = 500 + 10 * i;
        double k = c->kernel ? c->kernel : 2;
        vkt_shape x = h_shape4(c->B, c->C, c->H, c->W), y = pooled_shape(c);
        vkt_op_params p = pool_params(c);
        h_op_case maxpool = {.op = VKT_OP_MAXPOOL2D, .params = p, .nin = 1, .nout = 1,
                             .in_shapes = {x}, .lo = -1, .hi = 1, .seed = seed};
        h_compare_op(gpu, cpu, &maxpool);
        h_op_case maxpool_bwd = {.op = VKT_OP_MAXPOOL2D_BWD, .params = p, .nin = 2, .nout = 1,
                                 .in_shapes = {y, x}, .lo = -1, .hi = 1, .seed = seed + 1};
        h_compare_op(gpu, cpu, &maxpool_bwd);
        h_op_case avgpool = {.op = VKT_OP_AVGPOOL2D, .params = p, .nin = 1, .nout = 1,
                             .in_shapes = {x}, .lo = -1, .hi = 1, .atol = 1e-7 * k * k,
                             .rtol = 1e-6, .seed = seed + 2};
        h_compare_op(gpu, cpu, &avgpool);
        h_op_case avgpool_bwd = {.op = VKT_OP_AVGPOOL2D_BWD, .params = p, .nin = 1, .nout = 1,
                                 .in_shapes = {y}, .lo = -1, .hi = 1, .atol = 1e-7 * k * k,
                                 .rtol = 1e-6, .seed = seed + 3};
        h_compare_op(gpu, cpu, &avgpool_bwd);
    }
}

/* maxpool2d_bwd takes in_h, in_w of 0 as x's size. */
Test(conv, maxpool_bwd_default_input_size) {
    pool_case c = {3, 5, 5, 7, 2, 2};
    vkt_op_params p = {.pool = {.kernel = 2, .stride = 2}};
    h_op_case bwd = {.op = VKT_OP_MAXPOOL2D_BWD, .params = p, .nin = 2, .nout = 1,
                     .in_shapes = {pooled_shape(&c), h_shape4(3, 5, 5, 7)}, .lo = -1, .hi = 1,
                     .seed = 600};
    h_compare_op(gpu, cpu, &bwd);
}

/* Runs one node on ctx with the given input data; returns out[0]'s data. */
static float *run_node(vkt_context *ctx, vkt_op op, vkt_op_params p, uint32_t nin,
                       const vkt_shape *in_shapes, const float *const *inputs) {
    const vkt_op_def *def = vkt_op_get(op);
    h_value values[VKT_NODE_MAX_IN + 1];
    vkt_node node = {.op = op, .name = def->name, .p = p, .nin = nin, .nout = 1};
    for (uint32_t i = 0; i < nin; i++) {
        h_value_alloc(ctx, &values[i], in_shapes[i]);
        h_value_upload(ctx, &values[i], inputs[i]);
        node.in[i] = &values[i].value;
    }
    vkt_value out_shape = {0};
    node.out[0] = &out_shape;
    vkt_shape shape;
    char err[256] = "";
    cr_assert_eq(def->infer(&node, &shape, err, sizeof err), VKT_OK, "%s", err);
    h_value_alloc(ctx, &values[nin], shape);
    node.out[0] = &values[nin].value;
    h_run(ctx, &node);
    float *out = h_alloc_floats(values[nin].numel);
    h_value_download(ctx, &values[nin], out);
    for (uint32_t i = 0; i <= nin; i++)
        h_value_free(ctx, &values[i]);
    return out;
}

/* Runs maxpool2d and its backward on both backends over one H x W image x
 * with k x k windows at `stride`, and checks y and dx against the flat
 * index of each window's expected first maximum. */
static void maxpool_tie_check(const float *x, int64_t H, int64_t W, uint32_t k, uint32_t stride,
                              const int *argmax) {
    int64_t Ho = (H - k) / stride + 1, Wo = (W - k) / stride + 1;
    int n_out = (int)(Ho * Wo), n_in = (int)(H * W);
    float dy[64], want_y[64], want_dx[64] = {0};
    cr_assert(n_out <= 64 && n_in <= 64);
    for (int i = 0; i < n_out; i++) {
        dy[i] = (float)(1 << i); /* powers of two: every sum is exact and unique */
        want_y[i] = x[argmax[i]];
        want_dx[argmax[i]] += dy[i];
    }
    vkt_op_params p = {.pool = {.kernel = k, .stride = stride}};
    vkt_shape sx = h_shape4(1, 1, H, W), sy = h_shape4(1, 1, Ho, Wo);
    vkt_context *ctxs[2] = {cpu, gpu};
    for (int b = 0; b < 2; b++) {
        const char *name = b ? "Vulkan" : "CPU";
        const float *fwd_in[1] = {x};
        float *y = run_node(ctxs[b], VKT_OP_MAXPOOL2D, p, 1, &sx, fwd_in);
        for (int i = 0; i < n_out; i++)
            cr_assert_eq(y[i], want_y[i], "%s, stride %u: y[%d] = %g, expected %g", name, stride,
                         i, y[i], want_y[i]);
        const vkt_shape bwd_shapes[2] = {sy, sx};
        const float *bwd_in[2] = {dy, x};
        float *dx = run_node(ctxs[b], VKT_OP_MAXPOOL2D_BWD, p, 2, bwd_shapes, bwd_in);
        for (int i = 0; i < n_in; i++)
            cr_assert_eq(dx[i], want_dx[i], "%s, stride %u: dx[%d] = %g, expected %g (the "
                         "gradient must go to each window's first maximum)", name, stride, i,
                         dx[i], want_dx[i]);
        free(y);
        free(dx);
    }
}

/* Ties go to the first maximum in row-major order, as PyTorch's CPU kernel:
 * one 4x5 image with many ties, 2x2 windows at stride 1 (overlapping, so an
 * element can be the first maximum of several windows and collect all
 * their dy) and at stride 2, checked on both backends against a hand-made
 * expectation. */
Test(conv, maxpool_ties_route_to_first_maximum) {
    const float x[] = {1, 1, 0, 5, 5,
                       1, 1, 2, 5, 5,
                       3, 3, 3, 0, 0,
                       3, 3, 0, 0, -1};
    /* The 3x4 windows in row-major order, their elements and the flat
     * index of their first maximum (a strictly greater value takes over):
     *  (0,0) {x0=1,x1=1,x5=1,x6=1}         -> 0
     *  (0,1) {x1=1,x2=0,x6=1,x7=2}         -> 7
     *  (0,2) {x2=0,x3=5,x7=2,x8=5}         -> 3
     *  (0,3) {x3=5,x4=5,x8=5,x9=5}         -> 3
     *  (1,0) {x5=1,x6=1,x10=3,x11=3}       -> 10
     *  (1,1) {x6=1,x7=2,x11=3,x12=3}       -> 11
     *  (1,2) {x7=2,x8=5,x12=3,x13=0}       -> 8
     *  (1,3) {x8=5,x9=5,x13=0,x14=0}       -> 8
     *  (2,0) {x10=3,x11=3,x15=3,x16=3}     -> 10
     *  (2,1) {x11=3,x12=3,x16=3,x17=0}     -> 11
     *  (2,2) {x12=3,x13=0,x17=0,x18=0}     -> 12
     *  (2,3) {x13=0,x14=0,x18=0,x19=-1}    -> 13 */
    const int argmax[12] = {0, 7, 3, 3, 10, 11, 8, 8, 10, 11, 12, 13};
    maxpool_tie_check(x, 4, 5, 2, 1, argmax);
    /* Stride 2: windows that do not overlap, which maxpool2d_bwd computes
     * window by window; column 4 is in no window (floor mode), so its dx
     * is 0.
     *  (0,0) {x0=1,x1=1,x5=1,x6=1}         -> 0
     *  (0,1) {x2=0,x3=5,x7=2,x8=5}         -> 3
     *  (1,0) {x10=3,x11=3,x15=3,x16=3}     -> 10
     *  (1,1) {x12=3,x13=0,x17=0,x18=0}     -> 12 */
    const int argmax_stride2[4] = {0, 3, 10, 12};
    maxpool_tie_check(x, 4, 5, 2, 2, argmax_stride2);
}

/* A window holding a NaN gives NaN (PyTorch propagates it) and its
 * gradient goes to the last NaN of the window (a NaN always takes over in
 * PyTorch's scan); both backends agree. */
Test(conv, maxpool_nan_propagates) {
    const float x[] = {1, NAN, 0, 2,
                       NAN, 3, 4, 5};
    vkt_op_params p = {.pool = {.kernel = 2, .stride = 2}};
    vkt_shape sx = h_shape4(1, 1, 2, 4), sy = h_shape4(1, 1, 1, 2);
    const float dy[] = {10, 20};
    const float want_dx[] = {0, 0, 0, 0, 10, 0, 0, 20};
    vkt_context *ctxs[2] = {cpu, gpu};
    for (int b = 0; b < 2; b++) {
        const char *name = b ? "Vulkan" : "CPU";
        const float *fwd_in[1] = {x};
        float *y = run_node(ctxs[b], VKT_OP_MAXPOOL2D, p, 1, &sx, fwd_in);
        cr_assert(isnan(y[0]) && y[1] == 5.0f, "%s: y = (%g, %g)", name, y[0], y[1]);
        const vkt_shape bwd_shapes[2] = {sy, sx};
        const float *bwd_in[2] = {dy, x};
        float *dx = run_node(ctxs[b], VKT_OP_MAXPOOL2D_BWD, p, 2, bwd_shapes, bwd_in);
        for (int i = 0; i < 8; i++)
            cr_assert_eq(dx[i], want_dx[i], "%s: dx[%d] = %g, expected %g", name, i, dx[i],
                         want_dx[i]);
        free(y);
        free(dx);
    }
}

/* Fixed-order sums: two runs of the split-sum kernels give the same bits. */
Test(conv, gradients_are_deterministic) {
    conv_case c = {3, 32, 14, 14, 64, 3, 3, 1, 1};
    int64_t Ho = out_len(c.H, c.R, 1, 1), Wo = out_len(c.W, c.S, 1, 1);
    vkt_shape shapes[2] = {h_shape4(c.B, c.K, Ho, Wo), h_shape4(c.B, c.C, c.H, c.W)};
    size_t n0 = (size_t)vkt_shape_numel(&shapes[0]), n1 = (size_t)vkt_shape_numel(&shapes[1]);
    float *dy = h_alloc_floats(n0), *x = h_alloc_floats(n1);
    h_random(dy, n0, 700, -1, 1);
    h_random(x, n1, 701, -1, 1);
    const float *in[2] = {dy, x};
    size_t n_dw = (size_t)(c.K * c.C * c.R * c.S);
    float *a = run_node(gpu, VKT_OP_CONV2D_BWD_WEIGHT, conv_params(&c), 2, shapes, in);
    float *b = run_node(gpu, VKT_OP_CONV2D_BWD_WEIGHT, conv_params(&c), 2, shapes, in);
    cr_assert(memcmp(a, b, n_dw * sizeof(float)) == 0, "conv2d_bwd_weight differs between runs");
    float *da = run_node(gpu, VKT_OP_CONV2D_BWD_BIAS, conv_params(&c), 1, shapes, in);
    float *db = run_node(gpu, VKT_OP_CONV2D_BWD_BIAS, conv_params(&c), 1, shapes, in);
    cr_assert(memcmp(da, db, (size_t)c.K * sizeof(float)) == 0,
              "conv2d_bwd_bias differs between runs");
    free(a), free(b), free(da), free(db), free(dy), free(x);
}

// ---- Shape rules

static vkt_result infer(vkt_op op, vkt_op_params p, uint32_t nin, const vkt_shape *shapes,
                        char *err) {
    vkt_value v[3];
    vkt_node node = {.op = op, .nin = nin, .nout = 1, .p = p};
    for (uint32_t i = 0; i < nin; i++) {
        v[i] = (vkt_value){.shape = shapes[i]};
        node.in[i] = &v[i];
    }
    vkt_value out = {0};
    node.out[0] = &out;
    vkt_shape shape[VKT_NODE_MAX_OUT];
    err[0] = '\0';
    return vkt_op_get(op)->infer(&node, shape, err, 256);
}

/* Fails unless the rule rejects the node with a message containing every
 * one of the words (the operands and params at fault). */
static void expect_error(vkt_op op, vkt_op_params p, uint32_t nin, const vkt_shape *shapes,
                         const char *word1, const char *word2) {
    char err[256];
    cr_assert_eq(infer(op, p, nin, shapes, err), VKT_ERROR_SHAPE, "%s accepted a bad node",
                 vkt_op_get(op)->name);
    cr_assert(strstr(err, word1) && (!word2 || strstr(err, word2)),
              "%s: message '%s' should name '%s'%s%s", vkt_op_get(op)->name, err, word1,
              word2 ? " and " : "", word2 ? word2 : "");
}

Test(conv, shape_errors_name_the_operand) {
    char err[256];
    vkt_op_params p = {.conv = {.stride = 1, .pad = 1, .kernel_h = 3, .kernel_w = 3, .in_h = 5,
                                .in_w = 7}};
    vkt_shape x = h_shape4(2, 3, 5, 7), w = h_shape4(4, 3, 3, 3), bias = h_shape1(4);
    vkt_shape dy = h_shape4(2, 4, 5, 7);
    vkt_shape ok[3] = {x, w, bias};
    cr_assert_eq(infer(VKT_OP_CONV2D, p, 3, ok, err), VKT_OK, "%s", err);

    expect_error(VKT_OP_CONV2D, p, 3, (vkt_shape[]){h_shape2(2, 3), w, bias}, "x (2, 3)", "4-D");
    expect_error(VKT_OP_CONV2D, p, 3, (vkt_shape[]){x, h_shape4(4, 2, 3, 3), bias},
                 "w (4, 2, 3, 3)", "x (2, 3, 5, 7)");
    expect_error(VKT_OP_CONV2D, p, 3, (vkt_shape[]){x, w, h_shape1(3)}, "bias (3)", "K = 4");
    expect_error(VKT_OP_CONV2D, (vkt_op_params){.conv = {.stride = 1}}, 3,
                 (vkt_shape[]){h_shape4(2, 3, 2, 7), w, bias}, "kernel", "x 2x7");

    vkt_shape in_ok[2] = {dy, w};
    cr_assert_eq(infer(VKT_OP_CONV2D_BWD_INPUT, p, 2, in_ok, err), VKT_OK, "%s", err);
    expect_error(VKT_OP_CONV2D_BWD_INPUT, p, 2, (vkt_shape[]){h_shape4(2, 5, 5, 7), w},
                 "dy (2, 5, 5, 7)", "w (4, 3, 3, 3)");
    expect_error(VKT_OP_CONV2D_BWD_INPUT, (vkt_op_params){.conv = {.stride = 1, .pad = 1}}, 2,
                 in_ok, "in_h", NULL);
    expect_error(VKT_OP_CONV2D_BWD_INPUT,
                 (vkt_op_params){.conv = {.stride = 1, .pad = 1, .in_h = 6, .in_w = 7}}, 2, in_ok,
                 "dy (2, 4, 5, 7)", "in_h");

    vkt_shape w_ok[2] = {dy, x};
    cr_assert_eq(infer(VKT_OP_CONV2D_BWD_WEIGHT, p, 2, w_ok, err), VKT_OK, "%s", err);
    expect_error(VKT_OP_CONV2D_BWD_WEIGHT, p, 2, (vkt_shape[]){dy, h_shape4(3, 3, 5, 7)},
                 "dy (2, 4, 5, 7)", "x (3, 3, 5, 7)");
    expect_error(VKT_OP_CONV2D_BWD_WEIGHT, (vkt_op_params){.conv = {.stride = 1, .pad = 1}}, 2,
                 w_ok, "kernel_h", NULL);
    expect_error(VKT_OP_CONV2D_BWD_WEIGHT,
                 (vkt_op_params){.conv = {.stride = 2, .pad = 1, .kernel_h = 3, .kernel_w = 3}},
                 2, w_ok, "dy (2, 4, 5, 7)", "x");
    expect_error(VKT_OP_CONV2D_BWD_BIAS, p, 1, (vkt_shape[]){h_shape2(4, 35)}, "dy (4, 35)",
                 NULL);

    vkt_op_params pool = {.pool = {.kernel = 2, .stride = 2}};
    vkt_shape px = h_shape4(2, 3, 5, 7), py = h_shape4(2, 3, 2, 3);
    cr_assert_eq(infer(VKT_OP_MAXPOOL2D, pool, 1, &px, err), VKT_OK, "%s", err);
    expect_error(VKT_OP_MAXPOOL2D, pool, 1, (vkt_shape[]){h_shape2(5, 7)}, "x (5, 7)", NULL);
    expect_error(VKT_OP_AVGPOOL2D, (vkt_op_params){.pool = {.kernel = 6}}, 1, &px,
                 "x (2, 3, 5, 7)", "6x6");
    cr_assert_eq(infer(VKT_OP_MAXPOOL2D_BWD, pool, 2, (vkt_shape[]){py, px}, err), VKT_OK, "%s",
                 err);
    expect_error(VKT_OP_MAXPOOL2D_BWD, pool, 2, (vkt_shape[]){h_shape4(2, 3, 3, 3), px},
                 "dy (2, 3, 3, 3)", "x (2, 3, 5, 7)");
    expect_error(VKT_OP_MAXPOOL2D_BWD, (vkt_op_params){.pool = {.kernel = 2, .in_h = 6}}, 2,
                 (vkt_shape[]){py, px}, "in_h", "x (2, 3, 5, 7)");
    vkt_op_params avg = {.pool = {.kernel = 2, .stride = 2, .in_h = 5, .in_w = 7}};
    cr_assert_eq(infer(VKT_OP_AVGPOOL2D_BWD, avg, 1, &py, err), VKT_OK, "%s", err);
    expect_error(VKT_OP_AVGPOOL2D_BWD, pool, 1, &py, "in_h", NULL);
    expect_error(VKT_OP_AVGPOOL2D_BWD, avg, 1, (vkt_shape[]){h_shape4(2, 3, 2, 4)},
                 "dy (2, 3, 2, 4)", NULL);
}

// ---- Finite-difference gradients (CPU reference only)

static vkt_context *ref;
static void grad_setup(void) { ref = h_cpu(); }
static void grad_teardown(void) { h_finish(ref); }
TestSuite(conv_gradients, .init = grad_setup, .fini = grad_teardown, .timeout = 120);

/* Values of one check come from the harness's pool and are freed together. */
static h_value *value(vkt_shape shape, uint64_t seed, float lo, float hi) {
    return h_pool_value(ref, shape, seed, lo, hi);
}

static void release_values(void) { h_pool_release(ref); }

/* Runs a node on the CPU after checking that its output has the shape the
 * op's rule gives: the reference kernels trust their shapes. */
static void run(vkt_op op, vkt_op_params p, uint32_t nin, h_value *const *in, h_value *out,
                vkt_node *node) {
    *node = (vkt_node){.op = op, .name = vkt_op_get(op)->name, .p = p, .nin = nin, .nout = 1,
                       .out = {&out->value}};
    for (uint32_t i = 0; i < nin; i++)
        node->in[i] = &in[i]->value;
    vkt_shape want;
    char err[256] = "";
    cr_assert_eq(vkt_op_get(op)->infer(node, &want, err, sizeof err), VKT_OK, "%s", err);
    cr_assert(vkt_shape_equal(&want, &out->value.shape), "%s: output shape differs", node->name);
    h_run(ref, node);
}

/* Compares d(sum w * out) / d in[in_index] by central differences with the
 * analytic gradient already computed into `analytic`. The forward outputs
 * round to fp32, and that rounding divided by 2 eps is the numeric side's
 * error (~1e-5 for these sizes), against O(0.1..1) for a wrong term. */
static void check_grad(const vkt_node *node, uint32_t in_index, const h_value *w, double eps,
                       const h_value *analytic, const char *what) {
    size_t n = analytic->numel;
    cr_assert_eq(n, (size_t)vkt_shape_numel(&node->in[in_index]->shape));
    double *numeric = calloc(n, sizeof *numeric);
    float *numeric_f = h_alloc_floats(n), *got = h_alloc_floats(n);
    cr_assert_not_null(numeric);
    h_numeric_grad(ref, node, in_index, 0, vkt_view_host(&w->value.view), eps, numeric);
    for (size_t i = 0; i < n; i++)
        numeric_f[i] = (float)numeric[i];
    h_value_download(ref, analytic, got);
    h_assert_close(got, numeric_f, n, 2e-4, 2e-3, what);
    free(numeric);
    free(numeric_f);
    free(got);
}

/* y = conv2d(x, w, bias), L = sum W * y: the three backward ops with dy = W
 * must give dL/dx, dL/dw and dL/dbias. */
static void conv_grad_case(const conv_case *c, uint64_t seed) {
    int64_t Ho = out_len(c->H, c->R, c->stride, c->pad), Wo = out_len(c->W, c->S, c->stride, c->pad);
    vkt_shape sx = h_shape4(c->B, c->C, c->H, c->W), sw = h_shape4(c->K, c->C, c->R, c->S);
    vkt_shape sy = h_shape4(c->B, c->K, Ho, Wo);
    vkt_op_params p = conv_params(c);
    h_value *x = value(sx, seed, -1, 1), *w = value(sw, seed + 1, -1, 1);
    h_value *bias = value(h_shape1(c->K), seed + 2, -1, 1), *y = value(sy, seed + 3, 0, 0);
    h_value *weights = value(sy, seed + 4, -1, 1);
    h_value *dx = value(sx, seed + 5, 0, 0), *dw = value(sw, seed + 6, 0, 0);
    h_value *db = value(h_shape1(c->K), seed + 7, 0, 0);
    vkt_node fwd, node;
    run(VKT_OP_CONV2D, p, 3, (h_value *[]){x, w, bias}, y, &fwd);
    run(VKT_OP_CONV2D_BWD_INPUT, p, 2, (h_value *[]){weights, w}, dx, &node);
    run(VKT_OP_CONV2D_BWD_WEIGHT, p, 2, (h_value *[]){weights, x}, dw, &node);
    run(VKT_OP_CONV2D_BWD_BIAS, p, 1, (h_value *[]){weights}, db, &node);
    char what[128];
    int len = snprintf(what, sizeof what, "conv2d B%lld C%lld %lldx%lld K%lld %lldx%lld s%u p%u",
                       (long long)c->B, (long long)c->C, (long long)c->H, (long long)c->W,
                       (long long)c->K, (long long)c->R, (long long)c->S, c->stride, c->pad);
    snprintf(what + len, sizeof what - (size_t)len, " dx");
    check_grad(&fwd, 0, weights, 1e-2, dx, what);
    snprintf(what + len, sizeof what - (size_t)len, " dw");
    check_grad(&fwd, 1, weights, 1e-2, dw, what);
    snprintf(what + len, sizeof what - (size_t)len, " dbias");
    check_grad(&fwd, 2, weights, 1e-2, db, what);
    release_values();
}

Test(conv_gradients, conv2d_wrt_x_w_and_bias) {
    const conv_case cases[] = {
        {1, 1, 1, 1, 1, 1, 1, 1, 0}, {1, 2, 4, 5, 3, 3, 3, 1, 1}, {2, 3, 5, 4, 2, 3, 3, 2, 1},
        {1, 1, 6, 7, 2, 5, 5, 1, 2}, {2, 2, 5, 5, 2, 1, 1, 2, 0}, {1, 3, 4, 6, 2, 2, 3, 3, 1},
        {2, 1, 7, 5, 1, 3, 3, 2, 0},
    };
    for (size_t i = 0; i < COUNT(cases); i++)
        conv_grad_case(&cases[i], 800 + 20 * i);
}

/* Max pooling is piecewise linear: with all values distinct and at least
 * 0.01 apart, a perturbation of eps = 1e-3 never changes a window's
 * maximum, so central differences are exact up to rounding. */
static void maxpool_grad_case(const pool_case *c, uint64_t seed) {
    vkt_shape sx = h_shape4(c->B, c->C, c->H, c->W), sy = pooled_shape(c);
    vkt_op_params p = pool_params(c);
    h_value *x = value(sx, seed, 0, 0);
    float *data = vkt_view_host(&x->value.view);
    size_t n = x->numel;
    for (size_t i = 0; i < n; i++)
        data[i] = 0.01f * (float)i - 0.005f * (float)n;
    uint64_t state = seed;
    for (size_t i = n; i > 1; i--) { /* Fisher-Yates with an LCG: a fixed shuffle */
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        size_t j = (size_t)((state >> 33) % i);
        float t = data[i - 1];
        data[i - 1] = data[j];
        data[j] = t;
    }
    h_value *y = value(sy, seed + 1, 0, 0), *weights = value(sy, seed + 2, -1, 1);
    h_value *dx = value(sx, seed + 3, 0, 0);
    vkt_node fwd, node;
    run(VKT_OP_MAXPOOL2D, p, 1, (h_value *[]){x}, y, &fwd);
    run(VKT_OP_MAXPOOL2D_BWD, p, 2, (h_value *[]){weights, x}, dx, &node);
    check_grad(&fwd, 0, weights, 1e-3, dx, "maxpool2d dx");
    release_values();
}

/* Average pooling is linear. */
static void avgpool_grad_case(const pool_case *c, uint64_t seed) {
    vkt_shape sx = h_shape4(c->B, c->C, c->H, c->W), sy = pooled_shape(c);
    vkt_op_params p = pool_params(c);
    h_value *x = value(sx, seed, -1, 1), *y = value(sy, seed + 1, 0, 0);
    h_value *weights = value(sy, seed + 2, -1, 1), *dx = value(sx, seed + 3, 0, 0);
    vkt_node fwd, node;
    run(VKT_OP_AVGPOOL2D, p, 1, (h_value *[]){x}, y, &fwd);
    run(VKT_OP_AVGPOOL2D_BWD, p, 1, (h_value *[]){weights}, dx, &node);
    check_grad(&fwd, 0, weights, 1e-2, dx, "avgpool2d dx");
    release_values();
}

Test(conv_gradients, maxpool_and_avgpool) {
    const pool_case cases[] = {
        {1, 1, 1, 1, 1, 1}, {2, 3, 4, 4, 0, 0}, {1, 2, 5, 7, 2, 2}, {2, 1, 7, 5, 3, 2},
        {1, 2, 6, 5, 2, 1}, {1, 1, 7, 8, 2, 3},
    };
    for (size_t i = 0; i < COUNT(cases); i++) {
        maxpool_grad_case(&cases[i], 900 + 10 * i);
        avgpool_grad_case(&cases[i], 1000 + 10 * i);
    }
}
