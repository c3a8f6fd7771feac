/* test_kernels.c: every foundation kernel (matmul, bias add, column sum,
 * elementwise, ReLU) on Vulkan against its CPU reference, at awkward shapes,
 * and finite-difference checks of their gradients on the CPU reference.
 *
 * Bounds: add, sub, mul, scale, fill, bias add and ReLU are single correctly
 * rounded fp32 operations (or none), so the GPU must match the reference
 * exactly. Sums (matmul, column sum) get a bound proportional to their
 * length, still far below the size of one term, so a kernel that drops,
 * repeats or shifts a single term fails. The harness's guard words catch a
 * write one element past either end. */
#include "harness.h"

#include "../runtime/vulkan/vk_internal.h"

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
TestSuite(kernels, .init = setup, .fini = teardown, .timeout = 600);

/* 1-D, 2-D and 4-D shapes with sizes of 1, primes and sizes just past a
 * power of two, so no workgroup or tile ever divides them evenly. */
static const vkt_shape awkward[] = {
    {1, {1}},          {1, {7}},          {1, {33}},           {1, {129}},
    {1, {1000}},       {2, {1, 1}},       {2, {1, 1000}},      {2, {1000, 1}},
    {2, {7, 33}},      {2, {33, 129}},    {2, {129, 7}},       {4, {1, 1, 1, 1}},
    {4, {2, 3, 5, 7}}, {4, {3, 1, 33, 1}}, {4, {1, 7, 1, 129}},
};
#define AWKWARD_COUNT (sizeof awkward / sizeof awkward[0])

static uint64_t shape_seed(const vkt_shape *s, uint64_t salt) {
    uint64_t seed = salt * 0x9E3779B97F4A7C15ull;
    for (int32_t i = 0; i < s->ndim; i++)
        seed = seed * 1000003u + (uint64_t)s->dims[i];
    return seed;
}

/* fp32 sums of K products: the error grows with K; the bound still fails
 * a kernel that drops or repeats a single term (|term| ~ 0.25 >> bound). */
static void matmul_case(int64_t M, int64_t N, int64_t K, bool ta, bool tb, bool acc) {
    h_op_case c = {
        .op = VKT_OP_MATMUL, .nin = 2, .nout = 1,
        .params = {.matmul = {ta, tb, acc}},
        .in_shapes = {ta ? h_shape2(K, M) : h_shape2(M, K), tb ? h_shape2(N, K) : h_shape2(K, N)},
        .lo = -1, .hi = 1, .atol = 1e-5 * (double)K, .rtol = 1e-5,
        .seed = (uint64_t)(M * 1000003 + N * 1009 + K),
    };
    h_compare_op(gpu, cpu, &c);
}

Test(kernels, matmul_awkward_shapes_all_transposes) {
    const int64_t shapes[][3] = {{1, 1, 1},  {1, 33, 7},  {7, 1, 33},  {33, 7, 1},
                                 {7, 33, 129}, {129, 7, 33}, {33, 129, 1000}, {1000, 33, 7}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int t = 0; t < 4; t++)
            matmul_case(shapes[s][0], shapes[s][1], shapes[s][2], t & 1, t & 2, false);
}

Test(kernels, matmul_accumulate) {
    for (int t = 0; t < 4; t++)
        matmul_case(33, 7, 129, t & 1, t & 2, true);
}

/* Every matmul kernel the device could choose (vkt_tuning.matmul_variant),
 * not only this device's own: the GPU kernel runs (slowly) on a CPU device
 * too, so its edge paths are tested here as well. */
static const uint32_t matmul_variants[] = {VKT_MATMUL_SIMPLE, VKT_MATMUL_REG,
                                           VKT_MATMUL_REG_SSBO, VKT_MATMUL_TILED};
#define MATMUL_VARIANT_COUNT (sizeof matmul_variants / sizeof matmul_variants[0])

static void use_matmul_variant(uint32_t variant) {
    vk_of(gpu)->tuning.matmul_variant = variant;
}

/* The register-blocked kernels read 4 floats at a time at an offset that
 * depends on (contiguous length) % 4 and keep K % 4 for a tail: sizes with
 * every residue, more than one block of rows (16) and of columns (64), and
 * a K loop of several steps plus its tail. */
Test(kernels, matmul_every_residue_every_variant) {
    uint32_t own = vk_of(gpu)->tuning.matmul_variant;
    for (size_t v = 0; v < MATMUL_VARIANT_COUNT; v++) {
        use_matmul_variant(matmul_variants[v]);
        for (int64_t r = 0; r < 4; r++)
            for (int t = 0; t < 4; t++)
                matmul_case(17 + r, 65 + r, 9 + r, t & 1, t & 2, false);
        matmul_case(34, 70, 23, false, true, true); /* mixed residues, accumulate */
        matmul_case(5, 3, 2, true, false, false);   /* smaller than one group of 4 */
    }
    use_matmul_variant(own);
}

/* matmul_bias: the fused linear layer, C = op(A) op(B) + bias, then ReLU. */
static void matmul_bias_case(int64_t M, int64_t N, int64_t K, bool ta, bool tb, bool acc,
                             bool relu) {
    h_op_case c = {
        .op = VKT_OP_MATMUL_BIAS, .nin = 3, .nout = 1,
        .params = {.matmul = {ta, tb, acc, relu}},
        .in_shapes = {ta ? h_shape2(K, M) : h_shape2(M, K), tb ? h_shape2(N, K) : h_shape2(K, N),
                      h_shape1(N)},
        .lo = -1, .hi = 1, .atol = 1e-5 * (double)K, .rtol = 1e-5,
        .seed = (uint64_t)(M * 1000003 + N * 1009 + K + 17),
    };
    h_compare_op(gpu, cpu, &c);
}

Test(kernels, matmul_bias_relu_every_variant) {
    uint32_t own = vk_of(gpu)->tuning.matmul_variant;
    for (size_t v = 0; v < MATMUL_VARIANT_COUNT; v++) {
        use_matmul_variant(matmul_variants[v]);
        for (int t = 0; t < 4; t++) {
            matmul_bias_case(19, 68, 13, t & 1, t & 2, false, true); /* N % 4 == 0: 4-wide stores */
            matmul_bias_case(19, 67, 13, t & 1, t & 2, false, false);
        }
        matmul_bias_case(7, 33, 129, false, true, true, true);
    }
    use_matmul_variant(own);
}

/* Bindings that cannot be read 4 floats at a time (a view off a 16-byte
 * boundary, where the device allows that) take one float per load: forced
 * here through the tuning. */
Test(kernels, matmul_one_float_loads) {
    vkt_tuning saved = vk_of(gpu)->tuning;
    vk_of(gpu)->tuning.matmul_vec4 = 0;
    const uint32_t reg[] = {VKT_MATMUL_REG, VKT_MATMUL_REG_SSBO};
    for (size_t v = 0; v < 2; v++) {
        use_matmul_variant(reg[v]);
        for (int t = 0; t < 4; t++)
            matmul_case(21, 70, 11, t & 1, t & 2, t == 3);
    }
    vk_of(gpu)->tuning = saved;
}

/* More row blocks than a grid dimension may hold (65535): the kernels walk
 * the rest in a loop. */
Test(kernels, matmul_rows_beyond_the_grid) {
    uint32_t own = vk_of(gpu)->tuning.matmul_variant;
    const uint32_t loops[] = {VKT_MATMUL_SIMPLE, VKT_MATMUL_REG};
    for (size_t v = 0; v < 2; v++) {
        use_matmul_variant(loops[v]);
        h_op_case c = {
            .op = VKT_OP_MATMUL, .nin = 2, .nout = 1,
            .in_shapes = {h_shape2(65535 * 16 + 37, 2), h_shape2(2, 3)},
            .lo = -1, .hi = 1, .atol = 1e-5, .rtol = 1e-5, .seed = 5,
        };
        h_compare_op(gpu, cpu, &c);
    }
    use_matmul_variant(own);
}

Test(kernels, bias_add_awkward_shapes) {
    for (size_t s = 0; s < AWKWARD_COUNT; s++) {
        h_op_case c = {
            .op = VKT_OP_BIAS_ADD, .nin = 2, .nout = 1,
            .in_shapes = {awkward[s], h_shape1(vkt_shape_cols(&awkward[s]))},
            .lo = -1, .hi = 1, .seed = shape_seed(&awkward[s], 1),
        };
        h_compare_op(gpu, cpu, &c);
    }
}

/* The reference sums in double, the kernel in fp32 in row order: the gap
 * grows with the number of rows but stays far below one term (~0.5). */
static void column_sum_cases(bool accumulate) {
    for (size_t s = 0; s < AWKWARD_COUNT; s++) {
        int64_t rows = vkt_shape_rows(&awkward[s]);
        h_op_case c = {
            .op = VKT_OP_COLUMN_SUM, .nin = 1, .nout = 1,
            .params = {.reduce = {accumulate}},
            .in_shapes = {awkward[s]},
            .lo = -1, .hi = 1, .atol = 1e-6 * (double)rows, .rtol = 1e-6,
            .seed = shape_seed(&awkward[s], accumulate ? 3 : 2),
        };
        h_compare_op(gpu, cpu, &c);
    }
}

/* The harness fills outputs with random values first, so the plain variant
 * also proves the kernel ignores what was there. */
Test(kernels, column_sum_awkward_shapes) { column_sum_cases(false); }
Test(kernels, column_sum_accumulate) { column_sum_cases(true); }

static void binary_cases(vkt_op op, uint64_t salt) {
    for (size_t s = 0; s < AWKWARD_COUNT; s++) {
        h_op_case c = {
            .op = op, .nin = 2, .nout = 1,
            .in_shapes = {awkward[s], awkward[s]},
            .lo = -2, .hi = 2, .seed = shape_seed(&awkward[s], salt),
        };
        h_compare_op(gpu, cpu, &c);
    }
}

Test(kernels, add_awkward_shapes) { binary_cases(VKT_OP_ADD, 4); }
Test(kernels, sub_awkward_shapes) { binary_cases(VKT_OP_SUB, 5); }
Test(kernels, mul_awkward_shapes) { binary_cases(VKT_OP_MUL, 6); }

Test(kernels, scale_awkward_shapes) {
    /* 0.1 is not a power of two, so the product really rounds. */
    const float scales[] = {-2.5f, 0.0f, 0.1f, 1.0f};
    for (size_t s = 0; s < AWKWARD_COUNT; s++)
        for (size_t k = 0; k < sizeof scales / sizeof scales[0]; k++) {
            h_op_case c = {
                .op = VKT_OP_SCALE, .nin = 1, .nout = 1,
                .params = {.scalar = {scales[k]}},
                .in_shapes = {awkward[s]},
                .lo = -3, .hi = 3, .seed = shape_seed(&awkward[s], 7 + k),
            };
            h_compare_op(gpu, cpu, &c);
        }
}

Test(kernels, fill_awkward_shapes) {
    const float values[] = {0.0f, -0.0f, 3.25f, -1e30f};
    for (size_t s = 0; s < AWKWARD_COUNT; s++)
        for (size_t k = 0; k < sizeof values / sizeof values[0]; k++) {
            h_op_case c = {
                .op = VKT_OP_FILL, .nin = 0, .nout = 1,
                .params = {.scalar = {values[k]}},
                .out_shapes = {awkward[s]},
                .lo = -1, .hi = 1, .seed = shape_seed(&awkward[s], 11 + k),
            };
            h_compare_op(gpu, cpu, &c);
        }
}

/* ReLU inputs with exact +0 and -0 every few elements, negatives and
 * positives between, so the x == 0 convention (forward 0, gradient 0) is
 * exercised at every shape. */
static float *relu_input(size_t n, uint64_t seed) {
    float *x = h_alloc_floats(n);
    h_random(x, n, seed, -1, 1);
    for (size_t i = 0; i < n; i++) {
        if (i % 5 == 0)
            x[i] = 0.0f;
        else if (i % 5 == 3)
            x[i] = -0.0f;
    }
    return x;
}

Test(kernels, relu_zeros_and_negatives) {
    for (size_t s = 0; s < AWKWARD_COUNT; s++) {
        float *x = relu_input((size_t)vkt_shape_numel(&awkward[s]), shape_seed(&awkward[s], 20));
        h_op_case c = {
            .op = VKT_OP_RELU, .nin = 1, .nout = 1,
            .in_shapes = {awkward[s]}, .inputs = {x},
            .seed = shape_seed(&awkward[s], 21),
        };
        h_compare_op(gpu, cpu, &c);
        free(x);
    }
}

Test(kernels, relu_bwd_zeros_and_negatives) {
    for (size_t s = 0; s < AWKWARD_COUNT; s++) {
        float *x = relu_input((size_t)vkt_shape_numel(&awkward[s]), shape_seed(&awkward[s], 22));
        /* dy random and nonzero, so a kernel that passes dy through at
         * x == 0 differs from the reference's 0 there. */
        h_op_case c = {
            .op = VKT_OP_RELU_BWD, .nin = 2, .nout = 1,
            .in_shapes = {awkward[s], awkward[s]}, .inputs = {NULL, x},
            .lo = 0.5f, .hi = 2, .seed = shape_seed(&awkward[s], 23),
        };
        h_compare_op(gpu, cpu, &c);
        free(x);
    }
}

/* Element counts that need more than 65535 workgroups along x: the grid is
 * folded into y (vkt_grid_1d) and the shaders unfold it (linear_index).
 * About half of the second row of workgroups is used, so an unfold that
 * gets the row stride wrong (say a workgroup size folded to 1) leaves
 * elements unwritten instead of merely writing some twice. */
Test(kernels, pointwise_grid_folded_into_y) {
    uint32_t wg = vk_of(gpu)->tuning.workgroup_1d;
    vkt_shape big = h_shape2(65535 * (int64_t)wg * 3 / 2 / 33, 33);
    int64_t n = vkt_shape_numel(&big);
    cr_assert_gt(vkt_div_up((uint64_t)n, wg), 65535);
    h_op_case add = {.op = VKT_OP_ADD, .nin = 2, .nout = 1, .in_shapes = {big, big},
                     .lo = -1, .hi = 1, .seed = 31};
    h_compare_op(gpu, cpu, &add);
    h_op_case bias = {.op = VKT_OP_BIAS_ADD, .nin = 2, .nout = 1,
                      .in_shapes = {big, h_shape1(33)}, .lo = -1, .hi = 1, .seed = 32};
    h_compare_op(gpu, cpu, &bias);
    float *x = relu_input((size_t)n, 33);
    h_op_case relu = {.op = VKT_OP_RELU, .nin = 1, .nout = 1, .in_shapes = {big},
                      .inputs = {x}, .seed = 34};
    h_compare_op(gpu, cpu, &relu);
    free(x);
    h_op_case fill = {.op = VKT_OP_FILL, .nin = 0, .nout = 1, .out_shapes = {big},
                      .params = {.scalar = {5.0f}}, .lo = -1, .hi = 1, .seed = 35};
    h_compare_op(gpu, cpu, &fill);
}

/* Writes past the end. lavapipe bounds-checks every storage-buffer access
 * against the bound range and silently drops writes outside it, so the
 * harness's guard words alone never see an off-by-one bounds check here.
 * These cases widen the output's bound range over its trailing guard
 * words: a write to element n lands in a guard word and h_value_download
 * fails. Inputs keep their exact range, so a read past the end gives 0
 * rather than the sentinel (relu of the sentinel would write it back). */
static void bounds_case(vkt_op op, vkt_op_params params, uint32_t nin, const vkt_shape *in_shapes,
                        const vkt_shape *fill_shape) {
    const vkt_op_def *def = vkt_op_get(op);
    h_value values[VKT_NODE_MAX_IN + 1];
    vkt_node node = {.op = op, .name = def->name, .p = params, .nin = nin, .nout = 1};
    for (uint32_t i = 0; i <= nin; i++) {
        vkt_shape shape;
        if (i < nin) {
            shape = in_shapes[i];
        } else if (fill_shape) {
            shape = *fill_shape;
        } else {
            char err[256] = "";
            cr_assert_eq(def->infer(&node, &shape, err, sizeof err), VKT_OK, "%s", err);
        }
        h_value_alloc(gpu, &values[i], shape);
        float *data = h_alloc_floats(values[i].numel);
        h_random(data, values[i].numel, 77 + i, -1, 1);
        h_value_upload(gpu, &values[i], data);
        free(data);
        if (i < nin) {
            node.in[i] = &values[i].value;
        } else {
            values[i].value.view.bytes += H_GUARD * sizeof(float);
            node.out[0] = &values[i].value;
        }
    }
    h_run(gpu, &node);
    float *out = h_alloc_floats(values[nin].numel);
    h_value_download(gpu, &values[nin], out);
    free(out);
    for (uint32_t i = 0; i <= nin; i++)
        h_value_free(gpu, &values[i]);
}

Test(kernels, no_writes_past_the_end) {
    const int64_t sizes[] = {1, 7, 33, 129, 1000};
    const vkt_op pointwise[] = {VKT_OP_ADD, VKT_OP_SUB, VKT_OP_MUL, VKT_OP_RELU_BWD};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        int64_t n = sizes[s];
        vkt_shape v = h_shape1(n), m[2] = {h_shape2(n, 7), h_shape1(7)};
        vkt_shape pair[2] = {v, v};
        for (size_t k = 0; k < sizeof pointwise / sizeof pointwise[0]; k++)
            bounds_case(pointwise[k], (vkt_op_params){0}, 2, pair, NULL);
        bounds_case(VKT_OP_SCALE, (vkt_op_params){.scalar = {2}}, 1, &v, NULL);
        bounds_case(VKT_OP_RELU, (vkt_op_params){0}, 1, &v, NULL);
        bounds_case(VKT_OP_FILL, (vkt_op_params){.scalar = {2}}, 0, NULL, &v);
        bounds_case(VKT_OP_BIAS_ADD, (vkt_op_params){0}, 2, m, NULL);
        vkt_shape wide = h_shape2(3, n);
        bounds_case(VKT_OP_COLUMN_SUM, (vkt_op_params){.reduce = {true}}, 1, &wide, NULL);
        for (int t = 0; t < 4; t++) {
            vkt_shape ab[2] = {t & 1 ? h_shape2(5, n) : h_shape2(n, 5),
                               t & 2 ? h_shape2(n, 5) : h_shape2(5, n)};
            bounds_case(VKT_OP_MATMUL, (vkt_op_params){.matmul = {t & 1, t & 2, false}}, 2, ab,
                        NULL);
        }
    }
}

// ---- Finite-difference gradients (CPU reference only)

static vkt_context *ref;
static void grad_setup(void) { ref = h_cpu(); }
static void grad_teardown(void) { h_finish(ref); }
TestSuite(gradients, .init = grad_setup, .fini = grad_teardown, .timeout = 120);

/* Values of one check come from the harness's pool and are freed together. */
static h_value *value(vkt_shape shape, uint64_t seed, float lo, float hi) {
    return h_pool_value(ref, shape, seed, lo, hi);
}

static void release_values(void) { h_pool_release(ref); }

static vkt_node node2(vkt_op op, vkt_op_params p, const h_value *a, const h_value *b,
                      h_value *out) {
    vkt_node n = {.op = op, .name = vkt_op_get(op)->name, .p = p, .nin = b ? 2 : 1, .nout = 1,
                  .in = {&a->value, b ? &b->value : NULL}, .out = {&out->value}};
    return n;
}

/* Runs a node after checking that its output has the shape the op's rule
 * gives: the reference kernels trust their shapes. */
static void run(const vkt_node *node) {
    vkt_shape want;
    char err[256] = "";
    cr_assert_eq(vkt_op_get(node->op)->infer(node, &want, err, sizeof err), VKT_OK, "%s", err);
    cr_assert(vkt_shape_equal(&want, &node->out[0]->shape), "%s: output shape differs",
              node->name);
    h_run(ref, node);
}

/* Compares d(sum w * out) / d in[in_index] by central differences with the
 * analytic gradient already computed into `analytic`. */
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
    /* The forward outputs round to fp32, and that rounding divided by 2 eps
     * is the numeric side's error: ~1e-5 here, against O(0.1..1) for a
     * wrong gradient. */
    h_assert_close(got, numeric_f, n, 2e-4, 2e-3, what);
    free(numeric);
    free(numeric_f);
    free(got);
}

/* C = op(A) op(B), L = sum W * C, so dL/dop(A) = W op(B)^T and
 * dL/dop(B) = op(A)^T W; undoing the transposes gives the stored layouts:
 *   dA = ta ? op(B) W^T : W op(B)^T,  dB = tb ? W^T op(A) : op(A)^T W,
 * each one matmul with the right transpose flags. */
static vkt_op_params mm(bool ta, bool tb) {
    return (vkt_op_params){.matmul = {ta, tb, false}};
}

static void matmul_grad_case(int64_t M, int64_t N, int64_t K, bool ta, bool tb) {
    char what[96];
    uint64_t seed = (uint64_t)(M * 10007 + N * 101 + K) * 4 + (ta ? 2 : 0) + (tb ? 1 : 0);
    vkt_shape sa = ta ? h_shape2(K, M) : h_shape2(M, K);
    vkt_shape sb = tb ? h_shape2(N, K) : h_shape2(K, N);
    h_value *a = value(sa, seed, -1, 1), *b = value(sb, seed + 1, -1, 1);
    h_value *c = value(h_shape2(M, N), seed + 2, -1, 1);
    h_value *w = value(h_shape2(M, N), seed + 3, -1, 1);
    h_value *da = value(sa, seed + 4, 0, 0), *db = value(sb, seed + 5, 0, 0);
    vkt_node fwd = node2(VKT_OP_MATMUL, mm(ta, tb), a, b, c);
    run(&fwd);
    vkt_node grad_a = ta ? node2(VKT_OP_MATMUL, mm(tb, true), b, w, da)
                         : node2(VKT_OP_MATMUL, mm(false, !tb), w, b, da);
    vkt_node grad_b = tb ? node2(VKT_OP_MATMUL, mm(true, ta), w, a, db)
                         : node2(VKT_OP_MATMUL, mm(!ta, false), a, w, db);
    run(&grad_a);
    run(&grad_b);
    snprintf(what, sizeof what, "matmul M%lld N%lld K%lld ta%d tb%d dA", (long long)M,
             (long long)N, (long long)K, ta, tb);
    check_grad(&fwd, 0, w, 1e-2, da, what);
    what[strlen(what) - 1] = 'B';
    check_grad(&fwd, 1, w, 1e-2, db, what);
    release_values();
}

Test(gradients, matmul_wrt_a_and_b) {
    const int64_t shapes[][3] = {{1, 1, 1}, {3, 5, 4}, {7, 1, 3}, {1, 6, 9}, {5, 4, 1}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int t = 0; t < 4; t++)
            matmul_grad_case(shapes[s][0], shapes[s][1], shapes[s][2], t & 1, t & 2);
}

/* out = x + bias broadcast over rows: dL/dbias = column_sum(W), dL/dx = W. */
static void bias_grad_case(vkt_shape sx, uint64_t seed) {
    int64_t cols = vkt_shape_cols(&sx);
    h_value *x = value(sx, seed, -1, 1), *bias = value(h_shape1(cols), seed + 1, -1, 1);
    h_value *out = value(sx, seed + 2, -1, 1), *w = value(sx, seed + 3, -1, 1);
    h_value *dbias = value(h_shape1(cols), seed + 4, -1, 1);
    vkt_node fwd = node2(VKT_OP_BIAS_ADD, (vkt_op_params){0}, x, bias, out);
    run(&fwd);
    vkt_node sum = node2(VKT_OP_COLUMN_SUM, (vkt_op_params){.reduce = {false}}, w, NULL, dbias);
    run(&sum);
    check_grad(&fwd, 1, w, 1e-2, dbias, "bias_add d bias = column_sum(W)");
    check_grad(&fwd, 0, w, 1e-2, w, "bias_add d x = W");
    release_values();
}

/* out = column_sum(x): dL/dx[r, c] = w[c], i.e. w broadcast over rows,
 * which is bias_add of w onto zeros. */
static void column_sum_grad_case(vkt_shape sx, uint64_t seed) {
    int64_t cols = vkt_shape_cols(&sx);
    h_value *x = value(sx, seed, -1, 1), *out = value(h_shape1(cols), seed + 1, -1, 1);
    h_value *w = value(h_shape1(cols), seed + 2, -1, 1), *zeros = value(sx, seed + 3, 0, 0);
    h_value *dx = value(sx, seed + 4, -1, 1);
    vkt_node fwd = node2(VKT_OP_COLUMN_SUM, (vkt_op_params){.reduce = {false}}, x, NULL, out);
    run(&fwd);
    vkt_node broadcast = node2(VKT_OP_BIAS_ADD, (vkt_op_params){0}, zeros, w, dx);
    run(&broadcast);
    check_grad(&fwd, 0, w, 1e-2, dx, "column_sum d x = W broadcast");
    release_values();
}

Test(gradients, bias_add_and_column_sum) {
    const vkt_shape shapes[] = {{1, {1}}, {1, {9}}, {2, {5, 7}}, {2, {1, 4}}, {4, {2, 3, 1, 4}}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        bias_grad_case(shapes[s], 100 + 10 * s);
        column_sum_grad_case(shapes[s], 200 + 10 * s);
    }
}

/* out = a * b: dL/da = W * b, dL/db = W * a. */
Test(gradients, mul) {
    const vkt_shape shapes[] = {{1, {1}}, {1, {13}}, {2, {3, 5}}, {4, {2, 1, 3, 2}}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        uint64_t seed = 300 + 10 * s;
        h_value *a = value(shapes[s], seed, -2, 2), *b = value(shapes[s], seed + 1, -2, 2);
        h_value *out = value(shapes[s], seed + 2, 0, 0), *w = value(shapes[s], seed + 3, -1, 1);
        h_value *da = value(shapes[s], seed + 4, 0, 0), *db = value(shapes[s], seed + 5, 0, 0);
        vkt_node fwd = node2(VKT_OP_MUL, (vkt_op_params){0}, a, b, out);
        run(&fwd);
        vkt_node ga = node2(VKT_OP_MUL, (vkt_op_params){0}, w, b, da);
        vkt_node gb = node2(VKT_OP_MUL, (vkt_op_params){0}, w, a, db);
        run(&ga);
        run(&gb);
        check_grad(&fwd, 0, w, 1e-2, da, "mul d a = W * b");
        check_grad(&fwd, 1, w, 1e-2, db, "mul d b = W * a");
        release_values();
    }
}

/* ReLU is not differentiable at 0, so inputs keep |x| >= 0.05, ten times
 * the step: both sides of every difference stay on one linear piece. */
Test(gradients, relu) {
    const vkt_shape shapes[] = {{1, {1}}, {1, {17}}, {2, {4, 6}}, {4, {1, 2, 3, 4}}};
    const double eps = 5e-3;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        uint64_t seed = 400 + 10 * s;
        h_value *x = value(shapes[s], seed, 0.05f, 1);
        float *data = vkt_view_host(&x->value.view);
        float *sign = h_alloc_floats(x->numel);
        h_random(sign, x->numel, seed + 9, -1, 1);
        for (size_t i = 0; i < x->numel; i++) {
            if (sign[i] < 0)
                data[i] = -data[i];
            cr_assert_geq(fabsf(data[i]), 10 * eps);
        }
        free(sign);
        h_value *y = value(shapes[s], seed + 1, 0, 0), *w = value(shapes[s], seed + 2, -1, 1);
        h_value *dx = value(shapes[s], seed + 3, 0, 0);
        vkt_node fwd = node2(VKT_OP_RELU, (vkt_op_params){0}, x, NULL, y);
        run(&fwd);
        vkt_node bwd = node2(VKT_OP_RELU_BWD, (vkt_op_params){0}, w, x, dx);
        run(&bwd);
        check_grad(&fwd, 0, w, eps, dx, "relu d x = relu_bwd(W, x)");
        release_values();
    }
}
