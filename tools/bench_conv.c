/* bench_conv.c: times the convolution and pooling kernels at the shapes of
 * the small Fashion-MNIST CNN (conv3x3 32 - maxpool 2 - conv3x3 64 -
 * maxpool 2 - dense 128 - dense 10, pad 1) on the default device.
 *
 * Each op is recorded once into a program and replayed, as a training step
 * would be, so a time includes the submit and fence wait of one run (tens of
 * microseconds) but no recording. The matmul of the same size as conv2's
 * forward (K x CRS times CRS x B*Ho*Wo) is timed too: it is a floor for an
 * im2col + matmul forward, which would also write and read the im2col
 * buffer.
 *
 * It drives op-table nodes directly because the ops have no public API of
 * their own; not installed.
 *
 * usage: bench_conv [batch [runs [plain]]]   (defaults 128 and 10)
 * "plain" makes a CPU device run the kernels GPUs get (no subgroup
 * shuffles), for comparison. */
#include "../runtime/ops/op.h"
#include "../runtime/vulkan/vk_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define MAX_VALUES 32

static vkt_context *ctx;
static vkt_value values[MAX_VALUES];
static int value_count;
/* Both layers' training-step ops, timed together at the end. */
static vkt_node all_steps[16];
static size_t all_step_count;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* CPU time of this process (all threads), which other processes sharing
 * the CPU do not inflate the way they do wall time. */
static double cpu_s(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           1e-6 * (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

static void die(const char *what) {
    fprintf(stderr, "bench_conv: %s: %s\n", what, vkt_context_last_error(ctx));
    exit(1);
}

/* A device value of the given shape filled with values in [-1, 1). */
static const vkt_value *tensor(int64_t a, int64_t b, int64_t c, int64_t d, int ndim) {
    if (value_count == MAX_VALUES) {
        fprintf(stderr, "bench_conv: too many tensors\n");
        exit(1);
    }
    vkt_value *v = &values[value_count++];
    v->shape = (vkt_shape){.ndim = ndim, .dims = {a, b, c, d}};
    size_t n = (size_t)vkt_shape_numel(&v->shape);
    if (vkt_memory_alloc(ctx, n * sizeof(float), &v->view) != VKT_OK)
        die("alloc");
    float *data = malloc(n * sizeof(float));
    if (!data) {
        fprintf(stderr, "bench_conv: out of memory\n");
        exit(1);
    }
    uint32_t state = 12345u + (uint32_t)value_count;
    for (size_t i = 0; i < n; i++) {
        state = state * 1664525u + 1013904223u;
        data[i] = (float)(state >> 8) / 8388608.0f - 1.0f;
    }
    if (ctx->ops->write(ctx, &v->view, data, n * sizeof(float)) != VKT_OK)
        die("upload");
    free(data);
    return v;
}

static vkt_node node(vkt_op op, vkt_op_params p, const vkt_value *a, const vkt_value *b,
                     const vkt_value *c, const vkt_value *out) {
    vkt_node n = {.op = op, .name = vkt_op_get(op)->name, .p = p, .nout = 1, .out = {out}};
    const vkt_value *in[3] = {a, b, c};
    for (int i = 0; i < 3 && in[i]; i++)
        n.in[n.nin++] = in[i];
    char err[256] = "";
    vkt_shape shape;
    if (vkt_op_get(op)->infer(&n, &shape, err, sizeof err) != VKT_OK ||
        !vkt_shape_equal(&shape, &out->shape)) {
        fprintf(stderr, "bench_conv: %s: bad shapes %s\n", n.name, err);
        exit(1);
    }
    return n;
}

/* Milliseconds per run of the nodes as one recorded program: the fastest
 * wall time of `runs` runs (other processes sharing the CPU only ever add
 * time), and the mean CPU time of the process per run (all driver threads:
 * on a CPU device, the work). The first, untimed run compiles the
 * pipelines. */
static double time_nodes(const vkt_node *nodes, size_t count, int runs, double *cpu_ms) {
    const vkt_node *list[16];
    for (size_t i = 0; i < count; i++)
        list[i] = &nodes[i];
    vkt_program *program;
    vkt_program_desc desc = {.nodes = list, .node_count = count};
    if (ctx->ops->program_create(ctx, &desc, &program) != VKT_OK)
        die("program_create");
    if (ctx->ops->program_run(ctx, program) != VKT_OK)
        die("program_run");
    double best = 1e30, cpu0 = cpu_s();
    for (int i = 0; i < runs; i++) {
        double t0 = now_s();
        if (ctx->ops->program_run(ctx, program) != VKT_OK)
            die("program_run");
        double t = now_s() - t0;
        best = t < best ? t : best;
    }
    *cpu_ms = (cpu_s() - cpu0) * 1e3 / runs;
    ctx->ops->program_destroy(ctx, program);
    return best * 1e3;
}

static void report(const char *what, const vkt_node *nodes, size_t count, int runs,
                   double gflop) {
    double cpu_ms, ms = time_nodes(nodes, count, runs, &cpu_ms);
    if (gflop > 0)
        printf("  %-34s %9.2f ms %9.2f cpu-ms %7.1f GFLOP/s\n", what, ms, cpu_ms,
               gflop / ms * 1e3);
    else
        printf("  %-34s %9.2f ms %9.2f cpu-ms\n", what, ms, cpu_ms);
}

/* One conv layer (3x3, pad 1, stride 1) followed by a 2x2 max pool: each
 * op alone, then the training step's ops for the layer together. */
static void bench_layer(const char *name, int64_t B, int64_t C, int64_t H, int64_t K, int runs,
                        bool need_dx) {
    const int64_t R = 3;
    vkt_op_params cp = {.conv = {.stride = 1, .pad = 1, .kernel_h = R, .kernel_w = R,
                                 .in_h = (uint32_t)H, .in_w = (uint32_t)H}};
    vkt_op_params pp = {.pool = {.kernel = 2, .stride = 2, .in_h = (uint32_t)H,
                                 .in_w = (uint32_t)H}};
    const vkt_value *x = tensor(B, C, H, H, 4), *w = tensor(K, C, R, R, 4);
    const vkt_value *bias = tensor(K, 0, 0, 0, 1), *y = tensor(B, K, H, H, 4);
    const vkt_value *dy = tensor(B, K, H, H, 4), *dx = tensor(B, C, H, H, 4);
    const vkt_value *dw = tensor(K, C, R, R, 4), *db = tensor(K, 0, 0, 0, 1);
    const vkt_value *py = tensor(B, K, H / 2, H / 2, 4), *pdy = tensor(B, K, H / 2, H / 2, 4);
    double gflop = 2.0 * (double)(B * K * H * H * C * R * R) * 1e-9;
    vkt_node fwd = node(VKT_OP_CONV2D, cp, x, w, bias, y);
    vkt_node bwd_in = node(VKT_OP_CONV2D_BWD_INPUT, cp, dy, w, NULL, dx);
    vkt_node bwd_w = node(VKT_OP_CONV2D_BWD_WEIGHT, cp, dy, x, NULL, dw);
    vkt_node bwd_b = node(VKT_OP_CONV2D_BWD_BIAS, cp, dy, NULL, NULL, db);
    vkt_node pool = node(VKT_OP_MAXPOOL2D, pp, y, NULL, NULL, py);
    vkt_node pool_bwd = node(VKT_OP_MAXPOOL2D_BWD, pp, pdy, y, NULL, dy);
    printf("%s: x (%lld, %lld, %lld, %lld), w (%lld, %lld, 3, 3), pad 1; %.3f GFLOP per "
           "direction\n", name, (long long)B, (long long)C, (long long)H, (long long)H,
           (long long)K, (long long)C, gflop);
    report("conv2d forward", &fwd, 1, runs, gflop);
    report("conv2d_bwd_input", &bwd_in, 1, runs, gflop);
    report("conv2d_bwd_weight", &bwd_w, 1, runs, gflop);
    report("conv2d_bwd_bias", &bwd_b, 1, runs, 0);
    report("maxpool2d 2x2", &pool, 1, runs, 0);
    report("maxpool2d_bwd 2x2", &pool_bwd, 1, runs, 0);
    vkt_node step[6] = {fwd, pool, pool_bwd, bwd_w, bwd_b, bwd_in};
    size_t count = need_dx ? 6 : 5;
    report(need_dx ? "layer step (all six ops)" : "layer step (no dx: first layer)", step, count,
           runs, 0);
    for (size_t i = 0; i < count; i++)
        all_steps[all_step_count++] = step[i];
}

int main(int argc, char **argv) {
    int64_t B = argc > 1 ? atoll(argv[1]) : 128;
    int runs = argc > 2 ? atoi(argv[2]) : 10;
    bool plain = argc > 3 && strcmp(argv[3], "plain") == 0;
    if (B < 1 || runs < 1 || (argc > 3 && !plain)) {
        fprintf(stderr, "usage: bench_conv [batch [runs [plain]]]\n");
        return 2;
    }
    if (vkt_context_create(&(vkt_context_desc){.backend = VKT_BACKEND_VULKAN}, &ctx) != VKT_OK) {
        fprintf(stderr, "bench_conv: %s\n", vkt_last_error());
        return 1;
    }
    vkt_context_info info;
    vkt_context_query(ctx, &info);
    vkt_tuning *t = &vk_of(ctx)->tuning;
    if (plain)
        t->conv_subgroup = 0;
    printf("device: %s; batch %lld, %d timed runs each; %s kernels (%u x %u blocks)\n",
           info.device_name, (long long)B, runs, t->conv_subgroup ? "subgroup" : "plain",
           t->conv_tm, t->conv_tn);
    bench_layer("conv1", B, 1, 28, 32, runs, false);
    bench_layer("conv2", B, 32, 14, 64, runs, true);
    printf("both layers:\n");
    report("conv and pool ops of one step", all_steps, all_step_count, runs, 0);

    /* The matmul kernel on conv2's forward GEMM: (64 x 288) (288 x B*196). */
    int64_t N = B * 14 * 14;
    const vkt_value *a = tensor(64, 288, 0, 0, 2), *b = tensor(288, N, 0, 0, 2);
    const vkt_value *c = tensor(64, N, 0, 0, 2);
    vkt_node mm = node(VKT_OP_MATMUL, (vkt_op_params){.matmul = {false, false, false}}, a, b,
                       NULL, c);
    printf("reference:\n");
    report("matmul (64 x 288) x (288 x B*196)", &mm, 1, runs, 2.0 * 64 * 288 * (double)N * 1e-9);

    for (int i = value_count - 1; i >= 0; i--)
        vkt_memory_free(ctx, &values[i].view);
    vkt_context_destroy(ctx);
    return 0;
}
