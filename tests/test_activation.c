/* test_activation.c: leaky ReLU, sigmoid, tanh, GELU, softmax and dropout,
 * forward and backward: Vulkan against the CPU reference at awkward shapes
 * and extreme inputs, the CPU backward against finite differences of the
 * CPU forward, and dropout's mask (CPU and GPU bit-identical, new every
 * step, the same in the backward, keeping 1 - rate of the elements). */
#include "harness.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static vkt_context *gpu, *cpu;
static void setup(void) {
    gpu = h_vulkan();
    cpu = h_cpu();
}
static void teardown(void) {
    h_finish(gpu);
    h_finish(cpu);
}
TestSuite(activation, .init = setup, .fini = teardown, .timeout = 600);

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* Awkward shapes: single element, rows shorter and longer than a workgroup,
 * more rows than a workgroup, and a 4-D tensor. */
static vkt_shape shapes[6];
static void init_shapes(void) {
    shapes[0] = h_shape2(1, 1);
    shapes[1] = h_shape2(7, 33);
    shapes[2] = h_shape2(33, 7);
    shapes[3] = h_shape2(129, 10);
    shapes[4] = h_shape2(1000, 10);
    shapes[5] = h_shape4(3, 5, 7, 11);
}

/* ---- one node on one backend, with guard words around every value */

/* ---- GPU against CPU */

typedef struct pointwise_op {
    vkt_op fwd, bwd;
    bool bwd_takes_y; /* the backward's second input is the forward output */
    vkt_op_params p;
} pointwise_op;

static const pointwise_op pointwise_ops[] = {
    {VKT_OP_LEAKY_RELU, VKT_OP_LEAKY_RELU_BWD, false, {.leaky_relu = {0.01f}}},
    {VKT_OP_SIGMOID, VKT_OP_SIGMOID_BWD, true, {{0}}},
    {VKT_OP_TANH, VKT_OP_TANH_BWD, true, {{0}}},
    {VKT_OP_GELU, VKT_OP_GELU_BWD, false, {{0}}},
    {VKT_OP_SOFTMAX, VKT_OP_SOFTMAX_BWD, true, {{0}}},
};

static void compare(vkt_op op, vkt_op_params p, uint32_t nin, vkt_shape shape, float lo, float hi,
                    double atol, double rtol, uint64_t seed) {
    h_op_case c = {.op = op, .params = p, .nin = nin, .nout = 1, .lo = lo, .hi = hi,
                   .atol = atol, .rtol = rtol, .seed = seed};
    for (uint32_t i = 0; i < nin; i++)
        c.in_shapes[i] = shape;
    h_compare_op(gpu, cpu, &c);
}

/* fp32 with the driver's exp and tanh against double: a few ulp. A kernel
 * that reads or writes a neighbouring element is off by O(1). */
Test(activation, forward_gpu_matches_cpu) {
    init_shapes();
    for (size_t o = 0; o < COUNT(pointwise_ops); o++)
        for (size_t s = 0; s < COUNT(shapes); s++)
            compare(pointwise_ops[o].fwd, pointwise_ops[o].p, 1, shapes[s], -4, 4, 1e-6, 4e-6,
                    o * 100 + s);
}

/* A second slope, so a kernel that ignores the parameter fails. */
Test(activation, leaky_relu_slope_is_used) {
    init_shapes();
    vkt_op_params p = {.leaky_relu = {0.3f}};
    compare(VKT_OP_LEAKY_RELU, p, 1, shapes[1], -4, 4, 0, 0, 5);
    compare(VKT_OP_LEAKY_RELU_BWD, p, 2, shapes[1], -4, 4, 0, 0, 6);
}

Test(activation, backward_gpu_matches_cpu) {
    init_shapes();
    for (size_t o = 0; o < COUNT(pointwise_ops); o++)
        for (size_t s = 0; s < COUNT(shapes); s++) {
            /* a forward output lies in (-1, 1); a forward input anywhere */
            float r = pointwise_ops[o].bwd_takes_y ? 1.0f : 4.0f;
            compare(pointwise_ops[o].bwd, pointwise_ops[o].p, 2, shapes[s], -r, r, 2e-6, 4e-6,
                    o * 100 + s + 50);
        }
}

/* Inputs far outside any sensible range: no NaN or Inf may appear (the
 * comparison fails on a NaN or Inf on either side), and values still match. */
Test(activation, extreme_inputs_stay_finite) {
    static const float extremes[] = {-3e38f, -1e30f, -1e10f, -200, -100, -88.8f, -80, -30,
                                     -10, -1e-30f, 0, 1e-30f, 10, 30, 80, 88.8f, 100, 200,
                                     1e10f, 1e30f, 3e38f};
    vkt_shape s = h_shape2(1, COUNT(extremes));
    vkt_op fwd[] = {VKT_OP_SIGMOID, VKT_OP_TANH, VKT_OP_GELU, VKT_OP_LEAKY_RELU};
    vkt_op bwd[] = {VKT_OP_GELU_BWD, VKT_OP_LEAKY_RELU_BWD};
    float *ones = h_alloc_floats(COUNT(extremes));
    for (size_t i = 0; i < COUNT(extremes); i++)
        ones[i] = 1.0f;
    for (size_t o = 0; o < COUNT(fwd); o++) {
        h_op_case c = {.op = fwd[o], .params = {.leaky_relu = {0.01f}}, .nin = 1, .nout = 1,
                       .in_shapes = {s}, .inputs = {extremes}, .atol = 1e-6, .rtol = 4e-6};
        h_compare_op(gpu, cpu, &c);
    }
    for (size_t o = 0; o < COUNT(bwd); o++) {
        h_op_case c = {.op = bwd[o], .params = {.leaky_relu = {0.01f}}, .nin = 2, .nout = 1,
                       .in_shapes = {s, s}, .inputs = {ones, extremes}, .atol = 1e-6,
                       .rtol = 4e-6};
        h_compare_op(gpu, cpu, &c);
    }
    free(ones);
}

/* Logits of +-80 overflow e^x in fp32 without the max subtraction; a row
 * with one huge logit must give exactly one 1 and zeros. */
Test(activation, softmax_large_logits) {
    compare(VKT_OP_SOFTMAX, (vkt_op_params){{0}}, 1, h_shape2(129, 10), -80, 80, 1e-6, 4e-6, 7);
    compare(VKT_OP_SOFTMAX, (vkt_op_params){{0}}, 1, h_shape2(3, 1000), -80, 80, 1e-6, 4e-6, 8);
    float x[6] = {1e4f, -1e4f, 0, -3e38f, 3e38f, 0};
    h_op_case c = {.op = VKT_OP_SOFTMAX, .nin = 1, .nout = 1, .in_shapes = {h_shape2(2, 3)},
                   .inputs = {x}, .atol = 0, .rtol = 0};
    h_compare_op(gpu, cpu, &c);
}

/* Rows of up to 2000 columns: many columns per invocation, and the
 * workgroup tree with all invocations busy. */
Test(activation, softmax_long_rows) {
    int64_t cols[] = {63, 64, 65, 2000};
    for (size_t i = 0; i < COUNT(cols); i++) {
        compare(VKT_OP_SOFTMAX, (vkt_op_params){{0}}, 1, h_shape2(5, cols[i]), -4, 4, 1e-7,
                1e-5, 20 + i);
        compare(VKT_OP_SOFTMAX_BWD, (vkt_op_params){{0}}, 2, h_shape2(5, cols[i]), -1, 1, 1e-6,
                1e-5, 30 + i);
    }
}

/* More rows than one grid dimension can hold (65535 workgroups): the grid
 * folds into y and the kernel unfolds it. */
Test(activation, softmax_many_rows) {
    compare(VKT_OP_SOFTMAX, (vkt_op_params){{0}}, 1, h_shape2(70001, 3), -4, 4, 1e-7, 1e-5, 40);
}

/* ---- finite differences on the CPU backend */

/* Multiples of 2^-12 so that x +- eps (a power of two) is exact in fp32;
 * |x| >= 0.05 keeps leaky ReLU's kink out of the differences. */
static void grad_inputs(float *x, size_t n, uint64_t seed, float lo, float hi) {
    h_random(x, n, seed, lo, hi);
    for (size_t i = 0; i < n; i++) {
        float q = roundf(x[i] * 4096.0f) / 4096.0f;
        if (fabsf(q) < 0.05f)
            q += q < 0 ? -0.05f : 0.05f;
        x[i] = q;
    }
}

/* With L = sum_j dy_j y_j, the backward's dx must equal dL/dx, estimated by
 * central differences of the forward. `hyper`, when not NULL, is the
 * second input of both (dropout). Step 2^-7: truncation error ~eps^2 and
 * fp32 rounding of y ~1e-7 / eps, both well under the tolerance, while a
 * wrong derivative is off by O(0.1) or more. */
static void grad_check(const pointwise_op *op, vkt_shape shape, const float *hyper, float lo,
                       float hi, uint64_t seed) {
    size_t n = (size_t)vkt_shape_numel(&shape);
    float *x = h_alloc_floats(n), *dy = h_alloc_floats(n);
    grad_inputs(x, n, seed, lo, hi);
    h_random(dy, n, seed + 1, -1, 1);
    vkt_shape hyper_shape = h_shape1(VKT_HYPER_COUNT);
    vkt_shape fwd_shapes[2] = {shape, hyper_shape};
    const float *fwd_inputs[2] = {x, hyper};
    h_node_run f;
    h_node_run_make(&f, cpu, op->fwd, op->p, hyper ? 2 : 1, fwd_shapes, fwd_inputs);
    h_run(cpu, &f.node);

    double *numeric = malloc(n * sizeof(double));
    cr_assert_not_null(numeric);
    h_numeric_grad(cpu, &f.node, 0, 0, dy, 1.0 / 128, numeric);
    float *want = h_alloc_floats(n);
    for (size_t i = 0; i < n; i++)
        want[i] = (float)numeric[i];

    float *y = h_node_run_output(&f, cpu, 0);
    vkt_shape bwd_shapes[2] = {shape, hyper ? hyper_shape : shape};
    const float *bwd_inputs[2] = {dy, hyper ? hyper : op->bwd_takes_y ? y : x};
    h_node_run b;
    h_node_run_make(&b, cpu, op->bwd, op->p, 2, bwd_shapes, bwd_inputs);
    h_run(cpu, &b.node);
    float *dx = h_node_run_output(&b, cpu, 0);
    char what[96];
    snprintf(what, sizeof what, "%s against finite differences of %s",
             vkt_op_get(op->bwd)->name, vkt_op_get(op->fwd)->name);
    h_assert_close(dx, want, n, 2e-4, 1e-3, what);

    h_node_run_free(&f, cpu);
    h_node_run_free(&b, cpu);
    free(x), free(dy), free(y), free(dx), free(want), free(numeric);
}

Test(activation, backward_matches_finite_differences) {
    for (size_t o = 0; o < COUNT(pointwise_ops); o++) {
        grad_check(&pointwise_ops[o], h_shape2(7, 33), NULL, -4, 4, 100 + o);
        grad_check(&pointwise_ops[o], h_shape2(33, 7), NULL, -4, 4, 200 + o);
    }
    pointwise_op steep = {VKT_OP_LEAKY_RELU, VKT_OP_LEAKY_RELU_BWD, false, {.leaky_relu = {0.3f}}};
    grad_check(&steep, h_shape2(7, 33), NULL, -4, 4, 300);
}

Test(activation, dropout_backward_matches_finite_differences) {
    float hyper[VKT_HYPER_COUNT] = {[VKT_HYPER_STEP] = 5};
    pointwise_op op = {VKT_OP_DROPOUT, VKT_OP_DROPOUT_BWD, false,
                       {.dropout = {.rate = 0.4f, .seed = 17}}};
    grad_check(&op, h_shape2(7, 33), hyper, -4, 4, 400);
}

/* ---- dropout */

static float *dropout_run(vkt_context *ctx, vkt_op op, float rate, uint32_t seed, float step,
                          const float *src, vkt_shape shape) {
    float hyper[VKT_HYPER_COUNT] = {[VKT_HYPER_LR] = 0.1f, [VKT_HYPER_STEP] = step};
    vkt_shape shapes2[2] = {shape, h_shape1(VKT_HYPER_COUNT)};
    const float *inputs[2] = {src, hyper};
    h_node_run r;
    h_node_run_make(&r, ctx, op, (vkt_op_params){.dropout = {rate, seed}}, 2, shapes2, inputs);
    h_run(ctx, &r.node);
    float *out = h_node_run_output(&r, ctx, 0);
    h_node_run_free(&r, ctx);
    return out;
}

static size_t count_kept(const float *y, size_t n) {
    size_t kept = 0;
    for (size_t i = 0; i < n; i++)
        kept += y[i] != 0.0f;
    return kept;
}

/* The same bits on both backends, forward and backward, every shape and
 * rate, including rate 0 (identity) and 1 (all zero). */
Test(activation, dropout_cpu_and_gpu_bit_identical) {
    init_shapes();
    const float rates[] = {0.0f, 0.1f, 0.5f, 0.9f, 1.0f};
    for (size_t s = 0; s < COUNT(shapes); s++)
        for (size_t k = 0; k < COUNT(rates); k++)
            for (int dir = 0; dir < 2; dir++) {
                vkt_op op = dir ? VKT_OP_DROPOUT_BWD : VKT_OP_DROPOUT;
                size_t n = (size_t)vkt_shape_numel(&shapes[s]);
                float *x = h_alloc_floats(n);
                h_random(x, n, s * 10 + k, -2, 2);
                float *a = dropout_run(cpu, op, rates[k], 1234, 3, x, shapes[s]);
                float *b = dropout_run(gpu, op, rates[k], 1234, 3, x, shapes[s]);
                cr_assert(memcmp(a, b, n * sizeof(float)) == 0,
                          "dropout masks differ: shape %zu rate %g", s, (double)rates[k]);
                if (rates[k] == 0.0f)
                    cr_assert(memcmp(a, x, n * sizeof(float)) == 0, "rate 0 is not identity");
                if (rates[k] == 1.0f)
                    cr_assert_eq(count_kept(a, n), 0, "rate 1 kept elements");
                free(x), free(a), free(b);
            }
}

/* The fraction kept is binomial: within 5 standard deviations of 1 - rate,
 * and every kept element is scaled by exactly 1 / (1 - rate). */
Test(activation, dropout_keep_rate_and_scale) {
    const size_t n = 200000;
    float *ones = h_alloc_floats(n);
    for (size_t i = 0; i < n; i++)
        ones[i] = 1.0f;
    const float rates[] = {0.1f, 0.25f, 0.5f, 0.9f};
    for (size_t k = 0; k < COUNT(rates); k++) {
        float *y = dropout_run(gpu, VKT_OP_DROPOUT, rates[k], 99, 1, ones, h_shape1(n));
        double p = 1.0 - rates[k], kept = (double)count_kept(y, n) / n;
        double sigma = sqrt(p * (1 - p) / n);
        cr_assert(fabs(kept - p) < 5 * sigma, "rate %g kept %.5f, expected %.5f +- %.5f",
                  (double)rates[k], kept, p, 5 * sigma);
        float scale = (float)(1.0 / (1.0 - rates[k]));
        for (size_t i = 0; i < n; i++)
            cr_assert(y[i] == 0.0f || y[i] == scale, "element %zu is %g", i, (double)y[i]);
        /* neighbours independent: P(both kept) ~ p^2 */
        size_t pairs = 0;
        for (size_t i = 0; i + 1 < n; i++)
            pairs += y[i] != 0.0f && y[i + 1] != 0.0f;
        double both = (double)pairs / (n - 1), q = p * p;
        cr_assert(fabs(both - q) < 5 * sqrt(q * (1 - q) / n) * 2, "neighbours kept together "
                  "%.5f, expected %.5f", both, q);
        free(y);
    }
    free(ones);
}

/* A new step (or seed) gives a new, independent mask: the two agree where
 * both keep or both drop, probability p^2 + (1 - p)^2. */
Test(activation, dropout_mask_changes_with_step_and_seed) {
    const size_t n = 100000;
    const double p = 0.5;
    float *ones = h_alloc_floats(n);
    for (size_t i = 0; i < n; i++)
        ones[i] = 1.0f;
    float *base = dropout_run(gpu, VKT_OP_DROPOUT, 0.5f, 7, 1, ones, h_shape1(n));
    float *other[3] = {dropout_run(gpu, VKT_OP_DROPOUT, 0.5f, 7, 2, ones, h_shape1(n)),
                       dropout_run(gpu, VKT_OP_DROPOUT, 0.5f, 7, 1000000, ones, h_shape1(n)),
                       dropout_run(gpu, VKT_OP_DROPOUT, 0.5f, 8, 1, ones, h_shape1(n))};
    double q = p * p + (1 - p) * (1 - p);
    for (int k = 0; k < 3; k++) {
        size_t same = 0;
        for (size_t i = 0; i < n; i++)
            same += (base[i] != 0.0f) == (other[k][i] != 0.0f);
        double agree = (double)same / n;
        cr_assert(fabs(agree - q) < 5 * sqrt(q * (1 - q) / n),
                  "mask %d agrees with the base mask on %.4f of elements, expected %.4f", k,
                  agree, q);
        free(other[k]);
    }
    /* the same step again gives the same mask */
    float *again = dropout_run(gpu, VKT_OP_DROPOUT, 0.5f, 7, 1, ones, h_shape1(n));
    cr_assert(memcmp(base, again, n * sizeof(float)) == 0, "same step, different mask");
    free(again), free(base), free(ones);
}

/* The backward regenerates the forward's mask: dx is dy * scale exactly
 * where y kept x, and 0 where it dropped it. */
Test(activation, dropout_backward_uses_forward_mask) {
    const size_t n = 5000;
    float *x = h_alloc_floats(n), *dy = h_alloc_floats(n);
    h_random(x, n, 1, 0.5f, 2);
    h_random(dy, n, 2, 0.5f, 2);
    for (float step = 1; step <= 3; step++) {
        float *y = dropout_run(gpu, VKT_OP_DROPOUT, 0.3f, 42, step, x, h_shape1(n));
        float *dx = dropout_run(gpu, VKT_OP_DROPOUT_BWD, 0.3f, 42, step, dy, h_shape1(n));
        float scale = (float)(1.0 / 0.7);
        for (size_t i = 0; i < n; i++) {
            cr_assert_eq(y[i] != 0.0f, dx[i] != 0.0f, "element %zu: mask differs", i);
            cr_assert(dx[i] == 0.0f || dx[i] == dy[i] * scale, "element %zu: %g", i,
                      (double)dx[i]);
        }
        free(y), free(dx);
    }
    free(x), free(dy);
}

/* A step that is not a valid count reads as 0 on both backends, never as
 * an undefined conversion. */
Test(activation, dropout_odd_step_values) {
    const size_t n = 1000;
    float *x = h_alloc_floats(n);
    h_random(x, n, 3, -1, 1);
    const float steps[] = {NAN, -5.0f, 1e20f, 0.0f};
    float *zero = dropout_run(cpu, VKT_OP_DROPOUT, 0.5f, 1, 0, x, h_shape1(n));
    for (size_t k = 0; k < COUNT(steps); k++) {
        float *a = dropout_run(cpu, VKT_OP_DROPOUT, 0.5f, 1, steps[k], x, h_shape1(n));
        float *b = dropout_run(gpu, VKT_OP_DROPOUT, 0.5f, 1, steps[k], x, h_shape1(n));
        cr_assert(memcmp(a, b, n * sizeof(float)) == 0, "step %g: CPU and GPU differ",
                  (double)steps[k]);
        cr_assert(memcmp(a, zero, n * sizeof(float)) == 0, "step %g is not read as 0",
                  (double)steps[k]);
        free(a), free(b);
    }
    free(zero), free(x);
}

/* ---- shape rules */

static vkt_result infer(vkt_op op, vkt_op_params p, vkt_shape a, vkt_shape b, char *err) {
    vkt_value va = {.shape = a}, vb = {.shape = b};
    vkt_node node = {.op = op, .nin = 2, .nout = 1, .in = {&va, &vb}, .p = p};
    vkt_shape out[VKT_NODE_MAX_OUT];
    return vkt_op_get(op)->infer(&node, out, err, 256);
}

Test(activation, shape_rules_reject_bad_nodes) {
    char err[256];
    vkt_op_params none = {{0}};
    cr_assert_eq(infer(VKT_OP_SIGMOID_BWD, none, h_shape2(2, 3), h_shape2(3, 2), err),
                 VKT_ERROR_SHAPE);
    cr_assert(strstr(err, "(2, 3)") && strstr(err, "(3, 2)"), "%s", err);
    cr_assert_eq(infer(VKT_OP_SOFTMAX_BWD, none, h_shape2(2, 3), h_shape1(6), err),
                 VKT_ERROR_SHAPE);
    vkt_shape hyper = h_shape1(VKT_HYPER_COUNT);
    cr_assert_eq(infer(VKT_OP_DROPOUT, (vkt_op_params){.dropout = {0.5f, 0}}, h_shape1(9), hyper,
                       err), VKT_OK, "%s", err);
    cr_assert_eq(infer(VKT_OP_DROPOUT, (vkt_op_params){.dropout = {0.5f, 0}}, h_shape1(9),
                       h_shape1(2), err), VKT_ERROR_SHAPE);
    const float bad_rates[] = {-0.1f, 1.5f, NAN};
    for (size_t k = 0; k < COUNT(bad_rates); k++)
        cr_assert_eq(infer(VKT_OP_DROPOUT_BWD, (vkt_op_params){.dropout = {bad_rates[k], 0}},
                           h_shape1(9), hyper, err), VKT_ERROR_INVALID_ARGUMENT);
}
