/* test_kernels.c: every foundation kernel (matmul, bias add, column sum,
 * elementwise, ReLU) on Vulkan against its CPU reference, at awkward shapes. */
#include "harness.h"

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
