/* test_cpu_fast.c: the fast CPU backend against the CPU reference, its
 * oracle. Every op with a fast kernel at awkward shapes (sizes of 1, primes,
 * sizes just past the built-in sgemm's blocks, all four matmul transposes,
 * accumulate, bias, ReLU), special values where an op has a rule for them
 * (ReLU at 0 and NaN, bad labels), the built-in sgemm on its own (it runs
 * only where OpenBLAS is missing), whole training runs on both backends,
 * and how a context is asked for and what it reports.
 *
 * Bounds: ops that are single fp32 operations, and the optimizers (the
 * reference's float formulas in the same order), must match exactly.
 * Sums in float get a bound that grows with the square root of their
 * length, still far below one term, so a dropped or repeated term fails.
 * Transcendentals in float (expf, tanhf against exp, tanh in double) get
 * a few float ulps. */
#include "harness.h"

#include "../runtime/cpu/cpu_fast.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static vkt_context *fast, *ref;

static vkt_context *fast_context(void) {
    vkt_context *ctx = NULL;
    vkt_result r = vkt_context_create(&(vkt_context_desc){.backend = VKT_BACKEND_CPU_FAST}, &ctx);
    cr_assert_eq(r, VKT_OK, "CPU fast context: %s", vkt_last_error());
    return ctx;
}

/* Criterion runs each test in its own process: the environment is ours. */
static void setup(void) {
    unsetenv("VKT_BACKEND");
    unsetenv("VKT_TEST_PERTURB");
    fast = fast_context();
    ref = h_cpu();
}
static void teardown(void) {
    h_finish(fast);
    h_finish(ref);
}
TestSuite(cpu_fast, .init = setup, .fini = teardown, .timeout = 600);

/* The ops whose fast kernels this file tests; a fast kernel added without
 * a test here fails cpu_fast.every_fast_kernel_is_tested. */
static const vkt_op tested_ops[] = {
    VKT_OP_MATMUL,      VKT_OP_MATMUL_BIAS, VKT_OP_BIAS_ADD,       VKT_OP_COLUMN_SUM,
    VKT_OP_ADD,         VKT_OP_SUB,         VKT_OP_MUL,            VKT_OP_SCALE,
    VKT_OP_FILL,        VKT_OP_RELU,        VKT_OP_RELU_BWD,       VKT_OP_LEAKY_RELU,
    VKT_OP_LEAKY_RELU_BWD, VKT_OP_SIGMOID,  VKT_OP_SIGMOID_BWD,    VKT_OP_TANH,
    VKT_OP_TANH_BWD,    VKT_OP_SOFTMAX,     VKT_OP_SOFTMAX_BWD,    VKT_OP_SOFTMAX_CE,
    VKT_OP_MSE,         VKT_OP_BCE_LOGITS,  VKT_OP_SGD,            VKT_OP_ADAM,
    VKT_OP_SUM_SQUARES, VKT_OP_CONV2D,      VKT_OP_CONV2D_BWD_INPUT, VKT_OP_CONV2D_BWD_WEIGHT,
    VKT_OP_CONV2D_BWD_BIAS, VKT_OP_MAXPOOL2D, VKT_OP_MAXPOOL2D_BWD,
};
#define TESTED_COUNT (sizeof tested_ops / sizeof tested_ops[0])

Test(cpu_fast, every_fast_kernel_is_tested) {
    for (uint32_t op = 0; op < VKT_OP_COUNT; op++) {
        bool listed = false;
        for (size_t i = 0; i < TESTED_COUNT; i++)
            listed = listed || tested_ops[i] == (vkt_op)op;
        cr_assert(!vkt_cpu_fast_kernel((vkt_op)op) || listed,
                  "op %s has a fast kernel but no test in test_cpu_fast.c",
                  vkt_op_get((vkt_op)op)->name);
        cr_assert(!listed || vkt_cpu_fast_kernel((vkt_op)op),
                  "op %s is listed as tested but has no fast kernel", vkt_op_get((vkt_op)op)->name);
    }
}

// ---- Matmul

/* Shapes of 1, primes, the MLP's, and sizes one past the built-in's blocks
 * (MC 64, KC 128, NC 128) so every block has a ragged edge. */
static const int64_t matmul_shapes[][3] = {
    {1, 1, 1},     {1, 33, 7},    {7, 1, 33},     {33, 7, 1},      {7, 33, 129},
    {129, 7, 33},  {33, 129, 1000}, {1000, 33, 7}, {65, 129, 257},  {128, 256, 784},
    {10, 128, 130}, {128, 10, 128},
};
#define MATMUL_SHAPE_COUNT (sizeof matmul_shapes / sizeof matmul_shapes[0])

/* fp32 sums of K products; |term| ~ 0.25 is far above the bound. */
static void matmul_case(vkt_op op, int64_t M, int64_t N, int64_t K, vkt_op_params p) {
    bool ta = p.matmul.transpose_a, tb = p.matmul.transpose_b;
    double bound = 1e-5 * sqrt((double)K);
    h_op_case c = {
        .op = op, .nin = op == VKT_OP_MATMUL_BIAS ? 3 : 2, .nout = 1, .params = p,
        .in_shapes = {ta ? h_shape2(K, M) : h_shape2(M, K), tb ? h_shape2(N, K) : h_shape2(K, N),
                      h_shape1(N)},
        .lo = -1, .hi = 1, .atol = bound, .rtol = bound,
        .seed = (uint64_t)(M * 1000003 + N * 1009 + K),
    };
    h_compare_op(fast, ref, &c);
}

Test(cpu_fast, matmul_all_transposes_accumulate_on_and_off) {
    for (size_t s = 0; s < MATMUL_SHAPE_COUNT; s++)
        for (int t = 0; t < 8; t++)
            matmul_case(VKT_OP_MATMUL, matmul_shapes[s][0], matmul_shapes[s][1],
                        matmul_shapes[s][2],
                        (vkt_op_params){.matmul = {t & 1, t & 2, t & 4, false}});
}

Test(cpu_fast, matmul_bias_relu_all_transposes) {
    for (size_t s = 0; s < MATMUL_SHAPE_COUNT; s++)
        for (int t = 0; t < 16; t++)
            matmul_case(VKT_OP_MATMUL_BIAS, matmul_shapes[s][0], matmul_shapes[s][1],
                        matmul_shapes[s][2],
                        (vkt_op_params){.matmul = {t & 1, t & 2, t & 4, t & 8}});
}

/* C = op(A) op(B) in double, then the epilogue in the reference's order. */
static void naive_sgemm(const vkt_sgemm *g, float *c) {
    for (int64_t m = 0; m < g->m; m++) {
        for (int64_t n = 0; n < g->n; n++) {
            double sum = 0.0;
            for (int64_t k = 0; k < g->k; k++)
                sum += (double)(g->transpose_a ? g->a[k * g->m + m] : g->a[m * g->k + k]) *
                       (g->transpose_b ? g->b[n * g->k + k] : g->b[k * g->n + n]);
            if (g->accumulate)
                sum += c[m * g->n + n];
            if (g->bias)
                sum += g->bias[n];
            float v = (float)sum;
            c[m * g->n + n] = g->relu ? (v > 0.0f ? v : 0.0f) : v;
        }
    }
}

/* One sgemm (the built-in, or whichever the backend uses) against the
 * double loop, C starting as NaN without accumulate: beta = 0 must not
 * read it. */
static void sgemm_case(void (*sgemm)(const vkt_sgemm *), int64_t M, int64_t N, int64_t K,
                       int flags) {
    size_t na = (size_t)(M * K), nb = (size_t)(K * N), nc = (size_t)(M * N);
    float *a = h_alloc_floats(na), *b = h_alloc_floats(nb), *bias = h_alloc_floats((size_t)N);
    float *got = h_alloc_floats(nc), *want = h_alloc_floats(nc);
    uint64_t seed = (uint64_t)(M * 7919 + N * 104729 + K * 31 + flags);
    h_random(a, na, seed, -1, 1);
    h_random(b, nb, seed + 1, -1, 1);
    h_random(bias, (size_t)N, seed + 2, -1, 1);
    vkt_sgemm g = {.m = M, .n = N, .k = K, .a = a, .b = b, .c = got,
                   .bias = flags & 8 ? bias : NULL, .transpose_a = flags & 1,
                   .transpose_b = flags & 2, .accumulate = flags & 4, .relu = flags & 16};
    if (g.accumulate)
        h_random(got, nc, seed + 3, -1, 1);
    else
        for (size_t i = 0; i < nc; i++)
            got[i] = NAN;
    memcpy(want, got, nc * sizeof *want);
    naive_sgemm(&g, want);
    sgemm(&g);
    char what[96];
    snprintf(what, sizeof what, "sgemm M%lld N%lld K%lld flags %d", (long long)M, (long long)N,
             (long long)K, flags);
    double bound = 1e-5 * sqrt((double)K);
    h_assert_close(got, want, nc, bound, bound, what);
    free(a);
    free(b);
    free(bias);
    free(got);
    free(want);
}

Test(cpu_fast, builtin_sgemm_every_block_edge) {
    const int64_t sizes[][3] = {{1, 1, 1},   {3, 5, 2},     {4, 8, 128},  {5, 9, 129},
                                {64, 128, 128}, {65, 129, 257}, {130, 257, 300}, {200, 7, 1}};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
        for (int flags = 0; flags < 32; flags++)
            sgemm_case(vkt_cpu_sgemm_builtin, sizes[s][0], sizes[s][1], sizes[s][2], flags);
}

Test(cpu_fast, backend_sgemm_ignores_stale_c) {
    for (int flags = 0; flags < 32; flags++)
        sgemm_case(vkt_cpu_sgemm, 33, 17, 65, flags);
}

/* For outputs that hold NaN or infinities by design (h_assert_close fails
 * on any): runs the node on both backends and requires NaN exactly where
 * the reference has NaN, the same infinities, and the bound elsewhere. */
static void compare_special(vkt_op op, vkt_op_params p, uint32_t nin, const vkt_shape *shapes,
                            const float *const *inputs, double atol, double rtol) {
    vkt_context *ctxs[2] = {fast, ref};
    h_node_run runs[2];
    for (int b = 0; b < 2; b++) {
        h_node_run_make(&runs[b], ctxs[b], op, p, nin, shapes, inputs);
        h_run(ctxs[b], &runs[b].node);
    }
    for (uint32_t o = 0; o < runs[0].node.nout; o++) {
        float *got = h_node_run_output(&runs[0], fast, o);
        float *want = h_node_run_output(&runs[1], ref, o);
        for (size_t i = 0, n = runs[0].v[nin + o].numel; i < n; i++) {
            bool ok = isnan(want[i]) ? isnan(got[i])
                      : isinf(want[i]) ? got[i] == want[i]
                                        : fabs((double)got[i] - want[i]) <=
                                              atol + rtol * fabs((double)want[i]);
            cr_assert(ok, "%s output %u element %zu is %.9g, expected %.9g",
                      vkt_op_get(op)->name, o, i, got[i], want[i]);
        }
        free(got);
        free(want);
    }
    h_node_run_free(&runs[0], fast);
    h_node_run_free(&runs[1], ref);
}

// ---- Bias, column sum, elementwise

static const vkt_shape rows_shapes[] = {{2, {1, 1}}, {2, {7, 33}}, {2, {1000, 7}},
                                        {2, {33, 1000}}, {4, {2, 3, 5, 7}}};
#define ROWS_COUNT (sizeof rows_shapes / sizeof rows_shapes[0])

Test(cpu_fast, bias_add_and_column_sum) {
    for (size_t s = 0; s < ROWS_COUNT; s++) {
        vkt_shape x = rows_shapes[s];
        int64_t R = vkt_shape_rows(&x), C = vkt_shape_cols(&x);
        h_op_case c = {.op = VKT_OP_BIAS_ADD, .nin = 2, .nout = 1, .in_shapes = {x, h_shape1(C)},
                       .lo = -1, .hi = 1, .seed = 11 + s};
        h_compare_op(fast, ref, &c);
        for (int acc = 0; acc < 2; acc++) {
            double bound = 1e-6 * sqrt((double)R);
            c = (h_op_case){.op = VKT_OP_COLUMN_SUM, .nin = 1, .nout = 1, .in_shapes = {x},
                            .params = {.reduce = {acc}}, .lo = -1, .hi = 1, .atol = bound,
                            .rtol = bound, .seed = 21 + s};
            h_compare_op(fast, ref, &c);
        }
    }
}

static const vkt_shape flat_shapes[] = {{1, {1}}, {1, {7}}, {2, {33, 129}}, {4, {2, 3, 5, 7}},
                                        {1, {1000}}, {1, {100003}}};
#define FLAT_COUNT (sizeof flat_shapes / sizeof flat_shapes[0])

static void pointwise_case(vkt_op op, uint32_t nin, vkt_op_params p, float lo, float hi,
                           double tol) {
    for (size_t s = 0; s < FLAT_COUNT; s++) {
        h_op_case c = {.op = op, .nin = nin, .nout = 1, .params = p, .lo = lo, .hi = hi,
                       .atol = tol, .rtol = tol, .seed = 100 * (uint64_t)op + s};
        for (uint32_t i = 0; i < nin; i++)
            c.in_shapes[i] = flat_shapes[s];
        if (nin == 0)
            c.out_shapes[0] = flat_shapes[s];
        h_compare_op(fast, ref, &c);
    }
}

Test(cpu_fast, elementwise_exact) {
    pointwise_case(VKT_OP_ADD, 2, (vkt_op_params){0}, -1, 1, 0);
    pointwise_case(VKT_OP_SUB, 2, (vkt_op_params){0}, -1, 1, 0);
    pointwise_case(VKT_OP_MUL, 2, (vkt_op_params){0}, -1, 1, 0);
    pointwise_case(VKT_OP_SCALE, 1, (vkt_op_params){.scalar = {-2.5f}}, -1, 1, 0);
    pointwise_case(VKT_OP_FILL, 0, (vkt_op_params){.scalar = {0.75f}}, -1, 1, 0);
}

Test(cpu_fast, relu_family_exact) {
    vkt_op_params leaky = {.leaky_relu = {0.01f}};
    pointwise_case(VKT_OP_RELU, 1, (vkt_op_params){0}, -1, 1, 0);
    pointwise_case(VKT_OP_RELU_BWD, 2, (vkt_op_params){0}, -1, 1, 0);
    pointwise_case(VKT_OP_LEAKY_RELU, 1, leaky, -1, 1, 0);
    pointwise_case(VKT_OP_LEAKY_RELU_BWD, 2, leaky, -1, 1, 0);
}

/* The rules at the edges: 0 and -0 take the "not positive" side, NaN too
 * (ReLU(NaN) = 0 as in the reference), infinities their sides. */
Test(cpu_fast, relu_family_special_values) {
    enum { N = 12 };
    const float x[N] = {0.0f, -0.0f, NAN, INFINITY, -INFINITY, 1e-40f,
                        -1e-40f, 1.0f, -1.0f, 3e38f, -3e38f, 0.5f};
    const float dy[N] = {1.0f, 2.0f, 3.0f, 4.0f, 5.0f, 6.0f, 7.0f, 8.0f, 9.0f, NAN, 11.0f, -1.0f};
    vkt_shape s = h_shape1(N);
    vkt_op_params none = {0}, leaky = {.leaky_relu = {0.01f}};
    const struct {
        vkt_op op;
        vkt_op_params p;
        uint32_t nin;
    } ops[] = {{VKT_OP_RELU, none, 1},
               {VKT_OP_RELU_BWD, none, 2},
               {VKT_OP_LEAKY_RELU, leaky, 1},
               {VKT_OP_LEAKY_RELU_BWD, leaky, 2}};
    vkt_shape shapes[2] = {s, s};
    for (size_t o = 0; o < sizeof ops / sizeof ops[0]; o++) {
        const float *inputs[2] = {ops[o].nin == 1 ? x : dy, x};
        compare_special(ops[o].op, ops[o].p, ops[o].nin, shapes, inputs, 0, 0);
    }
}

/* expf, tanhf against exp, tanh in double, over inputs well past the
 * linear range (x in [-20, 20)). */
Test(cpu_fast, sigmoid_tanh_and_backward) {
    pointwise_case(VKT_OP_SIGMOID, 1, (vkt_op_params){0}, -20, 20, 1e-6);
    pointwise_case(VKT_OP_TANH, 1, (vkt_op_params){0}, -20, 20, 1e-6);
    pointwise_case(VKT_OP_SIGMOID_BWD, 2, (vkt_op_params){0}, -1, 1, 1e-6);
    pointwise_case(VKT_OP_TANH_BWD, 2, (vkt_op_params){0}, -1, 1, 1e-6);
}

// ---- Row-wise ops and losses

Test(cpu_fast, softmax_and_backward) {
    for (size_t s = 0; s < ROWS_COUNT; s++) {
        vkt_shape x = rows_shapes[s];
        double C = (double)vkt_shape_cols(&x);
        h_op_case c = {.op = VKT_OP_SOFTMAX, .nin = 1, .nout = 1, .in_shapes = {x},
                       .lo = -8, .hi = 8, .atol = 1e-7, .rtol = 1e-5, .seed = 31 + s};
        h_compare_op(fast, ref, &c);
        c = (h_op_case){.op = VKT_OP_SOFTMAX_BWD, .nin = 2, .nout = 1, .in_shapes = {x, x},
                        .lo = 0, .hi = 1, .atol = 1e-6 * sqrt(C), .rtol = 1e-5, .seed = 41 + s};
        h_compare_op(fast, ref, &c);
    }
}

/* Labels: valid ones, then bad ones (negative, C, fractional, NaN) whose
 * rows must be NaN in the loss and the gradient, as in the reference. */
static void softmax_ce_case(int64_t B, int64_t C, bool bad_labels, uint64_t seed) {
    float *labels = h_alloc_floats((size_t)B);
    for (int64_t b = 0; b < B; b++)
        labels[b] = (float)((b * 7 + 3) % C);
    if (bad_labels) {
        const float bad[4] = {-1.0f, (float)C, 0.5f, NAN};
        for (int64_t b = 0; b < B && b < 4; b++)
            labels[b * 2 < B ? b * 2 : b] = bad[b];
    }
    float *logits = h_alloc_floats((size_t)(B * C));
    h_random(logits, (size_t)(B * C), seed, -8, 8);
    vkt_shape shapes[2] = {h_shape2(B, C), h_shape1(B)};
    const float *inputs[2] = {logits, labels};
    compare_special(VKT_OP_SOFTMAX_CE, (vkt_op_params){0}, 2, shapes, inputs, 1e-6, 1e-5);
    free(logits);
    free(labels);
}

Test(cpu_fast, softmax_cross_entropy) {
    const int64_t shapes[][2] = {{1, 1}, {1, 10}, {7, 33}, {128, 10}, {129, 10}, {3, 1000}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        softmax_ce_case(shapes[s][0], shapes[s][1], false, 51 + s);
    softmax_ce_case(9, 10, true, 61);
    softmax_ce_case(1, 3, true, 62);
}

Test(cpu_fast, mse_and_bce_with_logits) {
    for (size_t s = 0; s < ROWS_COUNT; s++) {
        vkt_shape x = rows_shapes[s];
        h_op_case c = {.op = VKT_OP_MSE, .nin = 2, .nout = 3, .in_shapes = {x, x},
                       .lo = -1, .hi = 1, .atol = 1e-6, .rtol = 1e-5, .seed = 71 + s};
        h_compare_op(fast, ref, &c);
        /* targets in [0, 1) from the same range as the logits: fine for
         * the formula, which takes any real target */
        c = (h_op_case){.op = VKT_OP_BCE_LOGITS, .nin = 2, .nout = 3, .in_shapes = {x, x},
                        .lo = -4, .hi = 4, .atol = 1e-6, .rtol = 1e-5, .seed = 81 + s};
        h_compare_op(fast, ref, &c);
    }
}

// ---- Optimizers

/* A valid hyper buffer at step 3 with a clip factor, or at step 1 (SGD's
 * momentum buffer starts from the gradient then). */
static void hyper_values(float *h, int step) {
    memset(h, 0, VKT_HYPER_COUNT * sizeof *h);
    h[VKT_HYPER_LR] = 1e-2f;
    h[VKT_HYPER_BIAS1] = 1.0f - powf(0.9f, (float)step);
    h[VKT_HYPER_BIAS2] = 1.0f - powf(0.999f, (float)step);
    h[VKT_HYPER_STEP] = (float)step;
    h[VKT_HYPER_GRAD_SCALE] = 0.5f;
}

/* The updates are the reference's float operations in the same order:
 * the very same bits. The state (param, moments) starts in [0, 1), the
 * gradient in [-1, 1). */
static void update_case(vkt_op op, vkt_op_params p, int step) {
    for (size_t s = 0; s < FLAT_COUNT; s++) {
        vkt_shape x = flat_shapes[s];
        size_t n = (size_t)vkt_shape_numel(&x);
        float *grad = h_alloc_floats(n), hyper[VKT_HYPER_COUNT];
        h_random(grad, n, 91 + s, -1, 1);
        hyper_values(hyper, step);
        h_op_case c = {.op = op, .nin = 2, .nout = op == VKT_OP_ADAM ? 3 : 2,
                       .params = p, .in_shapes = {x, h_shape1(VKT_HYPER_COUNT)},
                       .out_shapes = {x, x, x}, .inputs = {grad, hyper},
                       .lo = 0, .hi = 1, .seed = 101 + s};
        h_compare_op(fast, ref, &c);
        free(grad);
    }
}

Test(cpu_fast, adam_and_adamw_same_bits) {
    vkt_op_params p = {.adam = {0.9f, 0.999f, 1e-8f, 0.0f, false}};
    update_case(VKT_OP_ADAM, p, 3);
    p.adam.weight_decay = 1e-2f; /* coupled: added to the gradient */
    update_case(VKT_OP_ADAM, p, 3);
    p.adam.decoupled = true;     /* AdamW */
    update_case(VKT_OP_ADAM, p, 1);
}

Test(cpu_fast, sgd_same_bits) {
    update_case(VKT_OP_SGD, (vkt_op_params){.sgd = {0}}, 3);
    vkt_op_params p = {.sgd = {0.9f, 0.1f, 1e-4f, false}};
    update_case(VKT_OP_SGD, p, 1);
    update_case(VKT_OP_SGD, p, 3);
    p.sgd.nesterov = true;
    p.sgd.dampening = 0.0f;
    update_case(VKT_OP_SGD, p, 3);
}

Test(cpu_fast, sum_squares) {
    for (size_t s = 0; s < FLAT_COUNT; s++) {
        for (int acc = 0; acc < 2; acc++) {
            h_op_case c = {.op = VKT_OP_SUM_SQUARES, .nin = 1, .nout = 1,
                           .params = {.reduce = {acc}}, .in_shapes = {flat_shapes[s]},
                           .out_shapes = {h_shape1(1)}, .lo = -1, .hi = 1, .atol = 1e-6,
                           .rtol = 1e-6, .seed = 111 + s};
            h_compare_op(fast, ref, &c);
        }
    }
}

// ---- Convolution

/* Geometries that cover every path of im2col and col2im: padding on every
 * side, stride 2 with rows and columns no window reaches (floor mode),
 * kernels taller than wide and the reverse, a 1x1 kernel read in place
 * (stride 1, no padding) and one that is not (stride 2), and the CNN's
 * layers. */
static const struct {
    int64_t B, C, H, W, K, R, S, stride, pad;
} convs[] = {
    {2, 3, 7, 9, 5, 3, 3, 1, 1},   {1, 1, 28, 28, 4, 3, 3, 1, 1}, {3, 2, 9, 6, 3, 3, 3, 2, 0},
    {2, 5, 5, 5, 7, 1, 1, 1, 0},   {2, 3, 8, 7, 4, 3, 3, 2, 1},   {1, 2, 6, 6, 3, 5, 5, 1, 2},
    {2, 3, 5, 7, 2, 1, 1, 2, 0},   {1, 2, 7, 9, 3, 2, 3, 1, 1},   {1, 2, 9, 7, 3, 3, 1, 2, 1},
    {4, 32, 14, 14, 64, 3, 3, 1, 1}, {4, 1, 28, 28, 32, 3, 3, 1, 1},
};

static int64_t out_len(int64_t in, int64_t k, int64_t stride, int64_t pad) {
    return (in + 2 * pad - k) / stride + 1;
}

Test(cpu_fast, conv2d_and_its_gradients) {
    for (size_t i = 0; i < sizeof convs / sizeof convs[0]; i++) {
        int64_t B = convs[i].B, C = convs[i].C, H = convs[i].H, W = convs[i].W;
        int64_t K = convs[i].K, R = convs[i].R, S = convs[i].S;
        int64_t st = convs[i].stride, pad = convs[i].pad;
        int64_t Ho = out_len(H, R, st, pad), Wo = out_len(W, S, st, pad);
        vkt_op_params p = {.conv = {(uint32_t)st, (uint32_t)pad, (uint32_t)R, (uint32_t)S,
                                    (uint32_t)H, (uint32_t)W}};
        double fwd = 1e-5 * sqrt((double)(C * R * S)), bwd_in = 1e-5 * sqrt((double)(K * R * S));
        double bwd_w = 1e-5 * sqrt((double)(B * Ho * Wo));
        h_op_case c = {.op = VKT_OP_CONV2D, .nin = 3, .nout = 1, .params = p,
                       .in_shapes = {h_shape4(B, C, H, W), h_shape4(K, C, R, S), h_shape1(K)},
                       .lo = -1, .hi = 1, .atol = fwd, .rtol = fwd, .seed = 121 + i};
        h_compare_op(fast, ref, &c);
        c = (h_op_case){.op = VKT_OP_CONV2D_BWD_INPUT, .nin = 2, .nout = 1, .params = p,
                        .in_shapes = {h_shape4(B, K, Ho, Wo), h_shape4(K, C, R, S)},
                        .lo = -1, .hi = 1, .atol = bwd_in, .rtol = bwd_in, .seed = 131 + i};
        h_compare_op(fast, ref, &c);
        c = (h_op_case){.op = VKT_OP_CONV2D_BWD_WEIGHT, .nin = 2, .nout = 1, .params = p,
                        .in_shapes = {h_shape4(B, K, Ho, Wo), h_shape4(B, C, H, W)},
                        .lo = -1, .hi = 1, .atol = bwd_w, .rtol = bwd_w, .seed = 141 + i};
        h_compare_op(fast, ref, &c);
        c = (h_op_case){.op = VKT_OP_CONV2D_BWD_BIAS, .nin = 1, .nout = 1, .params = p,
                        .in_shapes = {h_shape4(B, K, Ho, Wo)}, .lo = -1, .hi = 1,
                        .atol = bwd_w, .rtol = bwd_w, .seed = 151 + i};
        h_compare_op(fast, ref, &c);
    }
}

// ---- Max pooling

/* Overlapping windows (stride < kernel, so dx sums), floor mode (rows and
 * columns no window reaches), the defaults (kernel 0 = 2, stride 0 =
 * kernel), and the CNN's shape. */
static const struct {
    int64_t B, C, H, W;
    uint32_t k, stride;
} pools[] = {{2, 3, 7, 9, 2, 2}, {1, 2, 28, 28, 0, 0}, {2, 3, 9, 8, 3, 2},
             {1, 1, 5, 5, 3, 1}, {3, 2, 6, 7, 2, 3}, {8, 32, 28, 28, 2, 2}};

static void maxpool_case(size_t i, const float *x) {
    int64_t B = pools[i].B, C = pools[i].C, H = pools[i].H, W = pools[i].W;
    int64_t k = pools[i].k ? pools[i].k : 2, st = pools[i].stride ? pools[i].stride : k;
    int64_t Ho = (H - k) / st + 1, Wo = (W - k) / st + 1;
    vkt_op_params p = {.pool = {pools[i].k, pools[i].stride, 0, 0}};
    vkt_shape shapes[2] = {h_shape4(B, C, H, W)};
    const float *inputs[2] = {x};
    compare_special(VKT_OP_MAXPOOL2D, p, 1, shapes, inputs, 0, 0);
    size_t ny = (size_t)(B * C * Ho * Wo);
    float *dy = h_alloc_floats(ny);
    h_random(dy, ny, 161 + i, -1, 1);
    shapes[0] = h_shape4(B, C, Ho, Wo);
    shapes[1] = h_shape4(B, C, H, W);
    inputs[0] = dy;
    inputs[1] = x;
    /* overlapping windows sum at most k^2 terms in float */
    compare_special(VKT_OP_MAXPOOL2D_BWD, p, 2, shapes, inputs, 1e-6, 1e-6);
    free(dy);
}

/* Random inputs, then inputs full of the tie and NaN cases: values from a
 * set of three (ties everywhere), with NaN and -infinity sprinkled in
 * (a window of only -infinity takes its first element). */
Test(cpu_fast, maxpool_and_backward_ties_and_nan) {
    for (size_t i = 0; i < sizeof pools / sizeof pools[0]; i++) {
        size_t n = (size_t)(pools[i].B * pools[i].C * pools[i].H * pools[i].W);
        float *x = h_alloc_floats(n);
        h_random(x, n, 171 + i, -1, 1);
        maxpool_case(i, x);
        const float special[6] = {0.5f, -1.0f, 0.5f, 2.0f, -INFINITY, NAN};
        for (size_t j = 0; j < n; j++) {
            uint64_t pick = (j * 2654435761u) >> 7;
            x[j] = pick % 13 == 0 ? special[4 + (pick / 13) % 2] : special[pick % 4];
        }
        for (size_t j = 0; j < n && j < 8; j++)
            x[j] = -INFINITY;
        maxpool_case(i, x);
        free(x);
    }
}

// ---- In place, through the public API

/* bias_add and the pointwise ops may write over their input; the fast
 * kernels read each element before writing it. */
Test(cpu_fast, in_place_eager_calls) {
    enum { R = 33, C = 17 };
    float x[R * C], bias[C], got[R * C], want[R * C];
    h_random(x, R * C, 5, -1, 1);
    h_random(bias, C, 6, -1, 1);
    vkt_context *ctxs[2] = {fast, ref};
    float *outs[2] = {got, want};
    for (int b = 0; b < 2; b++) {
        vkt_tensor *t, *tb;
        cr_assert_eq(vkt_tensor_create(ctxs[b], &(vkt_tensor_desc){.ndim = 2, .dims = {R, C}}, &t),
                     VKT_OK);
        cr_assert_eq(vkt_tensor_create(ctxs[b], &(vkt_tensor_desc){.ndim = 1, .dims = {C}}, &tb),
                     VKT_OK);
        cr_assert_eq(vkt_tensor_upload(t, x, R * C), VKT_OK);
        cr_assert_eq(vkt_tensor_upload(tb, bias, C), VKT_OK);
        cr_assert_eq(vkt_bias_add(ctxs[b], t, t, tb), VKT_OK, "%s",
                     vkt_context_last_error(ctxs[b]));
        cr_assert_eq(vkt_relu(ctxs[b], t, t), VKT_OK);
        cr_assert_eq(vkt_scale(ctxs[b], t, t, -3.0f), VKT_OK);
        cr_assert_eq(vkt_add(ctxs[b], t, t, t), VKT_OK);
        cr_assert_eq(vkt_tensor_download(t, outs[b], R * C), VKT_OK);
        vkt_tensor_destroy(t);
        vkt_tensor_destroy(tb);
    }
    h_assert_close(got, want, R * C, 0, 0, "bias_add, relu, scale, add in place");
}

// ---- Whole training runs

typedef struct run_result {
    float losses[16];
    float *weights; /* the first layer's weight after the last step */
    size_t weight_count;
} run_result;

enum { IN = 784, B = 32 };

/* The Fashion-MNIST MLP (784-256-128-10, ReLU, cross-entropy; fused
 * linear+ReLU) with Adam, or (sgd) a sigmoid/tanh net on MSE with SGD,
 * Nesterov momentum and gradient clipping, every node unfused. */
static void train(vkt_context *ctx, bool sgd, int steps, run_result *out) {
    vkt_graph *g;
    cr_assert_eq(vkt_graph_create(ctx, &(vkt_graph_desc){.seed = 5}, &g), VKT_OK);
    vkt_var x = vkt_graph_input(g, "x", 2, (int64_t[]){B, IN});
    vkt_var y = sgd ? vkt_graph_input(g, "y", 2, (int64_t[]){B, 10})
                    : vkt_graph_input(g, "y", 1, (int64_t[]){B});
    vkt_var loss;
    vkt_model_desc desc = {.optimizer = {.type = VKT_OPTIMIZER_ADAM}};
    if (!sgd) {
        vkt_var h = vkt_graph_relu(g, vkt_graph_linear(g, x, 256, "fc1"));
        h = vkt_graph_relu(g, vkt_graph_linear(g, h, 128, "fc2"));
        loss = vkt_graph_softmax_cross_entropy(g, vkt_graph_linear(g, h, 10, "fc3"), y);
    } else {
        vkt_var h = vkt_graph_tanh(g, vkt_graph_linear(g, x, 64, "fc1"));
        h = vkt_graph_sigmoid(g, vkt_graph_linear(g, h, 10, "fc2"));
        loss = vkt_graph_mse(g, h, y);
        desc.optimizer = (vkt_optimizer_desc){.type = VKT_OPTIMIZER_SGD, .lr = 0.1f,
                                              .momentum = 0.9f, .nesterov = true,
                                              .weight_decay = 1e-4f, .clip_grad_norm = 0.5f};
        desc.no_fusion = true;
    }
    desc.loss = loss;
    cr_assert_eq(vkt_graph_status(g), VKT_OK, "%s", vkt_graph_last_error(g));
    vkt_model *m;
    cr_assert_eq(vkt_model_create(g, &desc, &m), VKT_OK, "%s", vkt_context_last_error(ctx));
    float *xs = h_alloc_floats(B * IN), ys[B * 10];
    h_random(xs, B * IN, 17, -1, 1);
    if (sgd)
        h_random(ys, B * 10, 18, 0, 1);
    else
        for (int b = 0; b < B; b++)
            ys[b] = (float)(b % 10);
    vkt_feed feeds[2] = {{x, xs, B * IN}, {y, ys, sgd ? B * 10 : B}};
    for (int t = 0; t < steps; t++)
        cr_assert_eq(vkt_model_step(m, feeds, 2, &out->losses[t]), VKT_OK, "step %d: %s", t,
                     vkt_context_last_error(ctx));
    out->weight_count = (size_t)(sgd ? 64 : 256) * IN;
    out->weights = h_alloc_floats(out->weight_count);
    cr_assert_eq(vkt_model_read(m, vkt_graph_find(g, "fc1.weight"), out->weights,
                                out->weight_count),
                 VKT_OK);
    free(xs);
    vkt_model_destroy(m);
    vkt_graph_destroy(g);
}

/* Float rounding differs between the backends from the first matmul on,
 * and training carries it along; the losses must stay together to well
 * below what one wrong gradient or update would change. */
static void compare_runs(bool sgd) {
    enum { STEPS = 8 };
    run_result a, b;
    train(fast, sgd, STEPS, &a);
    train(ref, sgd, STEPS, &b);
    for (int t = 0; t < STEPS; t++)
        cr_assert(fabsf(a.losses[t] - b.losses[t]) <= 1e-5f * fabsf(b.losses[t]) + 1e-6f,
                  "step %d: loss %.9g on CPU fast, %.9g on the reference", t, a.losses[t],
                  b.losses[t]);
    cr_assert(a.losses[STEPS - 1] < a.losses[0], "the loss did not go down (%g -> %g)",
              a.losses[0], a.losses[STEPS - 1]);
    h_assert_close(a.weights, b.weights, a.weight_count, 1e-5, 1e-4,
                   "fc1.weight after training");
    free(a.weights);
    free(b.weights);
}

Test(cpu_fast, mlp_adam_training_matches_reference) { compare_runs(false); }

Test(cpu_fast, sgd_clip_training_matches_reference) { compare_runs(true); }

// ---- Choosing the backend

static void assert_fast_info(vkt_context *ctx) {
    vkt_context_info info;
    cr_assert_eq(vkt_context_query(ctx, &info), VKT_OK);
    cr_assert_eq(info.backend, VKT_BACKEND_CPU_FAST);
    char want[256];
    vkt_cpu_fast_describe(want, sizeof want);
    cr_assert_str_eq(info.device_name, want);
    /* "CPU (OpenBLAS 0.3.21, 2 threads)" or "CPU (built-in sgemm)" */
    cr_assert(strncmp(want, "CPU (OpenBLAS ", 14) == 0 ||
                  strcmp(want, "CPU (built-in sgemm)") == 0,
              "device name '%s'", want);
    cr_assert_eq(info.subgroup_size, 1);
}

Test(cpu_fast, desc_and_environment_select_it) {
    assert_fast_info(fast);
    setenv("VKT_BACKEND", "cpu-fast", 1);
    vkt_context *ctx = NULL;
    cr_assert_eq(vkt_context_create(&(vkt_context_desc){.backend = VKT_BACKEND_VULKAN}, &ctx),
                 VKT_OK, "%s", vkt_last_error());
    assert_fast_info(ctx);
    vkt_context_destroy(ctx);
    /* and VKT_BACKEND=cpu is still the reference */
    setenv("VKT_BACKEND", "cpu", 1);
    cr_assert_eq(vkt_context_create(&(vkt_context_desc){.backend = VKT_BACKEND_CPU_FAST}, &ctx),
                 VKT_OK, "%s", vkt_last_error());
    vkt_context_info info;
    cr_assert_eq(vkt_context_query(ctx, &info), VKT_OK);
    cr_assert_eq(info.backend, VKT_BACKEND_CPU);
    cr_assert_str_eq(info.device_name, "CPU reference");
    vkt_context_destroy(ctx);
    setenv("VKT_BACKEND", "cpu_fast", 1);
    cr_assert_eq(vkt_context_create(&(vkt_context_desc){0}, &ctx), VKT_ERROR_INVALID_ARGUMENT);
    cr_assert(strstr(vkt_last_error(), "'cpu-fast'"), "%s", vkt_last_error());
}

/* VKT_TEST_PERTURB=<op> breaks that op's fast kernel (the checkers' test
 * hook) and never the reference. */
Test(cpu_fast, perturb_hook_breaks_only_the_fast_kernel) {
    setenv("VKT_TEST_PERTURB", "bias_add", 1);
    vkt_context *broken = fast_context(), *oracle = h_cpu();
    float x[6] = {1, 2, 3, 4, 5, 6}, bias[3] = {10, 20, 30}, out[2][6];
    vkt_context *ctxs[2] = {broken, oracle};
    for (int b = 0; b < 2; b++) {
        vkt_tensor *t, *tb, *o;
        cr_assert_eq(vkt_tensor_create(ctxs[b], &(vkt_tensor_desc){.ndim = 2, .dims = {2, 3}}, &t),
                     VKT_OK);
        cr_assert_eq(vkt_tensor_create(ctxs[b], &(vkt_tensor_desc){.ndim = 1, .dims = {3}}, &tb),
                     VKT_OK);
        cr_assert_eq(vkt_tensor_create(ctxs[b], &(vkt_tensor_desc){.ndim = 2, .dims = {2, 3}}, &o),
                     VKT_OK);
        cr_assert_eq(vkt_tensor_upload(t, x, 6), VKT_OK);
        cr_assert_eq(vkt_tensor_upload(tb, bias, 3), VKT_OK);
        cr_assert_eq(vkt_bias_add(ctxs[b], o, t, tb), VKT_OK);
        cr_assert_eq(vkt_tensor_download(o, out[b], 6), VKT_OK);
        vkt_tensor_destroy(t);
        vkt_tensor_destroy(tb);
        vkt_tensor_destroy(o);
    }
    const float want[6] = {11, 22, 33, 14, 25, 36};
    h_assert_close(out[1], want, 6, 0, 0, "the reference under VKT_TEST_PERTURB");
    h_assert_close(out[0], want, 5, 0, 0, "the perturbed fast bias_add before its last element");
    cr_assert_eq(out[0][5], want[5] + 1.0f, "the last element is not off by one: %g", out[0][5]);
    vkt_context_destroy(broken);
    vkt_context_destroy(oracle);
}

/* Check mode's oracle is the reference even when VKT_BACKEND points every
 * context at the fast backend: a broken fast kernel is caught and named. */
Test(cpu_fast, check_mode_compares_with_the_reference_under_vkt_backend) {
    setenv("VKT_BACKEND", "cpu-fast", 1);
    setenv("VKT_TEST_PERTURB", "column_sum", 1);
    vkt_context *ctx = fast_context();
    vkt_graph *g;
    cr_assert_eq(vkt_graph_create(ctx, &(vkt_graph_desc){.seed = 3}, &g), VKT_OK);
    vkt_var x = vkt_graph_input(g, "x", 2, (int64_t[]){5, 7});
    vkt_var y = vkt_graph_input(g, "y", 1, (int64_t[]){5});
    vkt_var h = vkt_graph_relu(g, vkt_graph_linear(g, x, 6, "fc1"));
    vkt_var loss = vkt_graph_softmax_cross_entropy(g, vkt_graph_linear(g, h, 3, "fc2"), y);
    vkt_model *m;
    cr_assert_eq(vkt_model_create(g, &(vkt_model_desc){.loss = loss}, &m), VKT_OK, "%s",
                 vkt_context_last_error(ctx));
    float xs[35], ys[5] = {0, 1, 2, 0, 1};
    h_random(xs, 35, 4, -1, 1);
    vkt_feed feeds[2] = {{x, xs, 35}, {y, ys, 5}};
    vkt_check_report report;
    cr_assert_eq(vkt_model_check(m, feeds, 2, &report), VKT_OK, "%s",
                 vkt_context_last_error(ctx));
    cr_assert_geq(report.failures, 1, "a perturbed column_sum passed check mode");
    cr_assert_str_eq(report.entries[0].op, "column_sum");
    cr_assert_str_eq(report.entries[0].node, "fc2.db");
    vkt_model_destroy(m);
    vkt_graph_destroy(g);
    vkt_context_destroy(ctx);
}
