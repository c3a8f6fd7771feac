/* test_loss.c: softmax cross-entropy, MSE and BCE-with-logits, and the
 * reduce_sum kernel that forms their means: Vulkan against the CPU
 * reference at awkward shapes and extreme logits, each loss's gradient
 * output against finite differences of its loss output, bad labels, and
 * run-to-run determinism. */
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
TestSuite(loss, .init = setup, .fini = teardown, .timeout = 600);

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static const int64_t shapes2d[][2] = {{1, 1}, {7, 33}, {33, 7}, {129, 10}, {1000, 10}};

/* ---- one node on one backend, with guard words around every value */

/* Losses take no params. */
static void run_make(h_node_run *r, vkt_context *ctx, vkt_op op, uint32_t nin,
                     const vkt_shape *in_shapes, const float *const *inputs) {
    h_node_run_make(r, ctx, op, (vkt_op_params){0}, nin, in_shapes, inputs);
}
/* Integer labels as floats, spread over the classes. */
static float *make_labels(int64_t B, int64_t C, uint64_t seed) {
    float *labels = h_alloc_floats((size_t)B);
    h_random(labels, (size_t)B, seed, 0, (float)C);
    for (int64_t b = 0; b < B; b++)
        labels[b] = floorf(labels[b]);
    return labels;
}

/* ---- GPU against CPU
 *
 * All three outputs are compared: loss, gradient, per-row losses. The loss
 * is O(1) and the gradients O(1/B) or O(1/N), so the absolute tolerance is
 * tiny and the relative one a few fp32 ulp of a long sum: dropping, adding
 * or shifting one element of a row or of the reduction fails. */

static void ce_case(int64_t B, int64_t C, float lo, float hi, uint64_t seed) {
    float *labels = make_labels(B, C, seed);
    h_op_case c = {.op = VKT_OP_SOFTMAX_CE, .nin = 2, .nout = 3,
                   .in_shapes = {h_shape2(B, C), h_shape1(B)}, .inputs = {NULL, labels},
                   .lo = lo, .hi = hi, .atol = 1e-9, .rtol = 1e-5, .seed = seed};
    h_compare_op(gpu, cpu, &c);
    free(labels);
}

Test(loss, softmax_ce_gpu_matches_cpu) {
    for (size_t s = 0; s < COUNT(shapes2d); s++)
        ce_case(shapes2d[s][0], shapes2d[s][1], -4, 4, s + 1);
    ce_case(3, 1000, -4, 4, 10); /* rows longer than the workgroup */
}

/* Logits of +-80 overflow e^x in fp32 without the log-sum-exp max. */
Test(loss, softmax_ce_large_logits) {
    ce_case(129, 10, -80, 80, 11);
    ce_case(7, 33, -80, 80, 12);
    /* the label's logit far below the others: loss ~ 1e4, no Inf; and a
     * logit near fp32's limit, whose e^(x - m) must not overflow */
    float logits[6] = {-1e4f, 1e4f, 0, 3e38f, 1e38f, 0}, labels[2] = {0, 0};
    h_op_case c = {.op = VKT_OP_SOFTMAX_CE, .nin = 2, .nout = 3,
                   .in_shapes = {h_shape2(2, 3), h_shape1(2)}, .inputs = {logits, labels},
                   .atol = 1e-9, .rtol = 1e-5};
    h_compare_op(gpu, cpu, &c);
}

static void pairwise_case(vkt_op op, vkt_shape shape, float lo, float hi, const float *target,
                          uint64_t seed) {
    h_op_case c = {.op = op, .nin = 2, .nout = 3, .in_shapes = {shape, shape},
                   .inputs = {NULL, target}, .lo = lo, .hi = hi, .atol = 1e-9, .rtol = 1e-5,
                   .seed = seed};
    h_compare_op(gpu, cpu, &c);
}

static vkt_shape loss_shapes[7];
static void init_shapes(void) {
    for (size_t s = 0; s < COUNT(shapes2d); s++)
        loss_shapes[s] = h_shape2(shapes2d[s][0], shapes2d[s][1]);
    loss_shapes[5] = h_shape4(3, 5, 7, 11);
    loss_shapes[6] = h_shape1(333);
}

Test(loss, mse_gpu_matches_cpu) {
    init_shapes();
    for (size_t s = 0; s < COUNT(loss_shapes); s++)
        pairwise_case(VKT_OP_MSE, loss_shapes[s], -2, 2, NULL, s + 20);
}

/* Targets in [0, 1]: hard labels, soft labels. */
static float *make_targets(size_t n, uint64_t seed, bool hard) {
    float *t = h_alloc_floats(n);
    h_random(t, n, seed, 0, 1);
    if (hard)
        for (size_t i = 0; i < n; i++)
            t[i] = t[i] < 0.5f ? 0.0f : 1.0f;
    return t;
}

Test(loss, bce_logits_gpu_matches_cpu) {
    init_shapes();
    for (size_t s = 0; s < COUNT(loss_shapes); s++) {
        size_t n = (size_t)vkt_shape_numel(&loss_shapes[s]);
        float *t = make_targets(n, s, s % 2);
        pairwise_case(VKT_OP_BCE_LOGITS, loss_shapes[s], -6, 6, t, s + 30);
        free(t);
    }
}

Test(loss, bce_logits_large_logits) {
    for (int hard = 0; hard < 2; hard++) {
        float *t = make_targets(1290, 40 + hard, hard);
        pairwise_case(VKT_OP_BCE_LOGITS, h_shape2(129, 10), -80, 80, t, 41);
        free(t);
    }
    /* the extremes: nothing overflows (1e30 keeps the fp32 row sums of
     * the wrong-side terms, ~|x| each, finite), and where the loss is tiny,
     * e^-|x| at |x| = 10 or 20, it keeps its relative accuracy */
    float x[8] = {-1e30f, -1e4f, -20, -10, 10, 20, 1e4f, 1e30f};
    float t[8] = {1, 0, 0, 0, 1, 1, 1, 0};
    h_op_case c = {.op = VKT_OP_BCE_LOGITS, .nin = 2, .nout = 3,
                   .in_shapes = {h_shape2(4, 2), h_shape2(4, 2)}, .inputs = {x, t},
                   .atol = 1e-9, .rtol = 1e-5};
    h_compare_op(gpu, cpu, &c);
}

/* The reduction across the per-row losses, at lengths around the
 * workgroup size and far beyond it (each invocation then folds many), via
 * MSE on a column vector: one row per element. */
Test(loss, reduce_sum_lengths) {
    const int64_t lengths[] = {1, 2, 63, 64, 65, 127, 1000, 100000};
    for (size_t k = 0; k < COUNT(lengths); k++)
        pairwise_case(VKT_OP_MSE, h_shape2(lengths[k], 1), -2, 2, NULL, 50 + k);
    pairwise_case(VKT_OP_MSE, h_shape2(1, 100000), -2, 2, NULL, 60); /* one long row */
}

/* ---- finite differences of the loss output on the CPU backend */

/* Multiples of 2^-12 so that x +- eps (a power of two) is exact in fp32. */
static float *grad_inputs(size_t n, uint64_t seed, float lo, float hi) {
    float *x = h_alloc_floats(n);
    h_random(x, n, seed, lo, hi);
    for (size_t i = 0; i < n; i++)
        x[i] = roundf(x[i] * 4096.0f) / 4096.0f;
    return x;
}

/* The gradient output (out 1) must be d loss / d input 0, where the loss is
 * out 0. Step 2^-6: the loss is O(1) and rounded to fp32 (1e-7), so the
 * estimate is good to ~1e-5, and the losses are smooth enough that the
 * truncation error is smaller still; gradients are O(1/N), and a wrong one
 * is off by at least that. */
static void loss_grad_check(vkt_op op, vkt_shape shape, vkt_shape second_shape,
                            const float *second, float lo, float hi, uint64_t seed) {
    size_t n = (size_t)vkt_shape_numel(&shape);
    float *x = grad_inputs(n, seed, lo, hi);
    vkt_shape shapes[2] = {shape, second_shape};
    const float *inputs[2] = {x, second};
    h_node_run r;
    run_make(&r, cpu, op, 2, shapes, inputs);
    double *numeric = malloc(n * sizeof(double));
    cr_assert_not_null(numeric);
    const float one = 1.0f;
    h_numeric_grad(cpu, &r.node, 0, 0, &one, 1.0 / 64, numeric);
    float *want = h_alloc_floats(n);
    for (size_t i = 0; i < n; i++)
        want[i] = (float)numeric[i];
    float *grad = h_node_run_output(&r, cpu, 1);
    char what[96];
    snprintf(what, sizeof what, "%s gradient against finite differences of its loss",
             vkt_op_get(op)->name);
    h_assert_close(grad, want, n, 2e-5, 2e-3, what);
    h_node_run_free(&r, cpu);
    free(x), free(numeric), free(want), free(grad);
}

Test(loss, softmax_ce_gradient_matches_finite_differences) {
    const int64_t dims[][2] = {{7, 33}, {33, 7}, {1, 5}};
    for (size_t s = 0; s < COUNT(dims); s++) {
        float *labels = make_labels(dims[s][0], dims[s][1], s + 70);
        loss_grad_check(VKT_OP_SOFTMAX_CE, h_shape2(dims[s][0], dims[s][1]),
                        h_shape1(dims[s][0]), labels, -3, 3, s + 71);
        free(labels);
    }
}

Test(loss, mse_gradient_matches_finite_differences) {
    vkt_shape shapes[] = {h_shape2(7, 33), h_shape2(33, 7), h_shape4(2, 3, 4, 5)};
    for (size_t s = 0; s < COUNT(shapes); s++) {
        size_t n = (size_t)vkt_shape_numel(&shapes[s]);
        float *target = h_alloc_floats(n);
        h_random(target, n, s + 80, -1, 1);
        loss_grad_check(VKT_OP_MSE, shapes[s], shapes[s], target, -1, 1, s + 81);
        free(target);
    }
}

Test(loss, bce_logits_gradient_matches_finite_differences) {
    vkt_shape shapes[] = {h_shape2(7, 33), h_shape2(33, 7), h_shape4(2, 3, 4, 5)};
    for (size_t s = 0; s < COUNT(shapes); s++) {
        size_t n = (size_t)vkt_shape_numel(&shapes[s]);
        float *target = make_targets(n, s + 90, s == 1);
        loss_grad_check(VKT_OP_BCE_LOGITS, shapes[s], shapes[s], target, -5, 5, s + 91);
        free(target);
    }
}

/* ---- bad labels */

/* Labels that are negative, too large, fractional, NaN or infinite make
 * their row's loss and gradient NaN (so the batch loss is NaN) without any
 * read or write out of bounds (the guard words around every value are
 * checked on download); the good rows are unaffected. */
Test(loss, softmax_ce_bad_labels_give_nan) {
    const int64_t C = 5;
    const float labels[] = {0, -1, 5, 2.5f, NAN, 4, 1e30f, -INFINITY, INFINITY, 4.0000005f,
                            -0.0f, 3};
    const bool good[] = {1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 1};
    const int64_t B = (int64_t)COUNT(labels);
    float *logits = h_alloc_floats((size_t)(B * C));
    h_random(logits, (size_t)(B * C), 5, -3, 3);
    vkt_shape shapes[2] = {h_shape2(B, C), h_shape1(B)};
    const float *inputs[2] = {logits, labels};
    vkt_context *ctxs[2] = {cpu, gpu};
    float *results[2][3];
    for (int k = 0; k < 2; k++) {
        h_node_run r;
        run_make(&r, ctxs[k], VKT_OP_SOFTMAX_CE, 2, shapes, inputs);
        h_run(ctxs[k], &r.node);
        for (uint32_t o = 0; o < 3; o++)
            results[k][o] = h_node_run_output(&r, ctxs[k], o);
        h_node_run_free(&r, ctxs[k]);
        const char *backend = k ? "GPU" : "CPU";
        cr_assert(isnan(results[k][0][0]), "%s: loss %g with bad labels", backend,
                  (double)results[k][0][0]);
        for (int64_t b = 0; b < B; b++) {
            cr_assert_eq(isnan(results[k][2][b]), !good[b], "%s: row %lld (label %g) loss %g",
                         backend, (long long)b, (double)labels[b], (double)results[k][2][b]);
            for (int64_t c = 0; c < C; c++)
                cr_assert_eq(isnan(results[k][1][b * C + c]), !good[b],
                             "%s: row %lld (label %g) gradient %g", backend, (long long)b,
                             (double)labels[b], (double)results[k][1][b * C + c]);
        }
    }
    for (int64_t b = 0; b < B; b++)
        if (good[b]) {
            h_assert_close(&results[1][2][b], &results[0][2][b], 1, 1e-9, 1e-5, "row loss");
            h_assert_close(&results[1][1][b * C], &results[0][1][b * C], (size_t)C, 1e-9, 1e-5,
                           "row gradient");
        }
    for (int k = 0; k < 2; k++)
        for (int o = 0; o < 3; o++)
            free(results[k][o]);
    free(logits);
}

/* ---- determinism */

/* Fixed reduction order: two runs give the same bits. */
Test(loss, gpu_losses_are_deterministic) {
    const int64_t B = 1000, C = 10;
    float *logits = h_alloc_floats((size_t)(B * C));
    h_random(logits, (size_t)(B * C), 9, -5, 5);
    float *labels = make_labels(B, C, 10);
    float *target = make_targets((size_t)(B * C), 11, false);
    const vkt_op ops[] = {VKT_OP_SOFTMAX_CE, VKT_OP_MSE, VKT_OP_BCE_LOGITS};
    for (size_t k = 0; k < COUNT(ops); k++) {
        vkt_shape shapes[2] = {h_shape2(B, C), ops[k] == VKT_OP_SOFTMAX_CE ? h_shape1(B)
                                                                           : h_shape2(B, C)};
        const float *inputs[2] = {logits, ops[k] == VKT_OP_SOFTMAX_CE ? labels : target};
        float first = 0;
        for (int rep = 0; rep < 3; rep++) {
            h_node_run r;
            run_make(&r, gpu, ops[k], 2, shapes, inputs);
            h_run(gpu, &r.node);
            float *loss = h_node_run_output(&r, gpu, 0);
            if (rep == 0)
                first = loss[0];
            cr_assert(memcmp(&first, loss, sizeof first) == 0, "%s: run %d gave %.9g, run 0 %.9g",
                      vkt_op_get(ops[k])->name, rep, (double)loss[0], (double)first);
            free(loss);
            h_node_run_free(&r, gpu);
        }
    }
    free(logits), free(labels), free(target);
}

/* ---- shape rules */

Test(loss, shape_rules_reject_bad_nodes) {
    struct {
        vkt_op op;
        vkt_shape a, b;
    } bad[] = {
        {VKT_OP_SOFTMAX_CE, h_shape2(4, 3), h_shape1(5)},
        {VKT_OP_SOFTMAX_CE, h_shape1(4), h_shape1(4)},
        {VKT_OP_SOFTMAX_CE, h_shape2(4, 3), h_shape2(4, 1)},
        {VKT_OP_MSE, h_shape2(4, 3), h_shape2(3, 4)},
        {VKT_OP_BCE_LOGITS, h_shape2(4, 3), h_shape1(12)},
    };
    for (size_t k = 0; k < COUNT(bad); k++) {
        vkt_value va = {.shape = bad[k].a}, vb = {.shape = bad[k].b};
        vkt_node node = {.op = bad[k].op, .nin = 2, .nout = 3, .in = {&va, &vb}};
        vkt_shape out[VKT_NODE_MAX_OUT];
        char err[256] = "";
        cr_assert_eq(vkt_op_get(bad[k].op)->infer(&node, out, err, sizeof err), VKT_ERROR_SHAPE,
                     "case %zu accepted", k);
        cr_assert(strlen(err) > 0, "case %zu: no message", k);
    }
    /* and the output shapes of a good node */
    vkt_value va = {.shape = h_shape4(2, 3, 4, 5)}, vb = va;
    vkt_node node = {.op = VKT_OP_MSE, .nin = 2, .nout = 3, .in = {&va, &vb}};
    vkt_shape out[VKT_NODE_MAX_OUT];
    char err[256] = "";
    cr_assert_eq(vkt_op_get(VKT_OP_MSE)->infer(&node, out, err, sizeof err), VKT_OK);
    cr_assert(out[0].ndim == 1 && out[0].dims[0] == 1);
    cr_assert(vkt_shape_equal(&out[1], &va.shape));
    cr_assert(out[2].ndim == 1 && out[2].dims[0] == 24);
}
