/* vkt-bench: how fast vktrain runs on this machine.
 *
 *   matmul    GFLOP/s of square matmuls (256 to 2048) and of the Fashion MLP's
 *             training shapes (784-256-128-10 at batch 128 and 512) with the
 *             transposes its forward and backward passes use, plus shapes one
 *             short of a tile multiple next to their rounded-up neighbours;
 *             OpenBLAS's cblas_sgemm on the same shapes when built with it.
 *   dispatch  the cost of one eager call (a submit and a fence wait) and of
 *             one dispatch inside a recorded command buffer, with and without
 *             a barrier before it.
 *   roofline  what the device can do at best, from small probe kernels: the
 *             FMA rate of independent FMA chains, and copy bandwidth through
 *             storage buffers (1 and 4 floats per access) and texel buffers.
 *   train     training-step time and samples/s of the Fashion MLP (784-256-
 *             128-10, ReLU, Adam, softmax cross-entropy) and CNN (conv3x3 32 -
 *             maxpool - conv3x3 64 - maxpool - dense 128 - dense 10) at batch
 *             128 and 512 on random data; --profile adds each step's per-node
 *             profile (vkt_model_profile) and how its device time compares
 *             with the measured step.
 *
 * Every Vulkan device is measured (or the one --device names), the fast CPU
 * backend (OpenBLAS or its built-in sgemm; not with --no-cpu-fast) and the
 * CPU reference backend where it is quick enough (small matmuls, the MLP at
 * batch 128; not with --no-cpu). Each figure is the median of --runs timed
 * runs after warm-up runs. A matmul run replays a command buffer holding the
 * matmul enough times for about 50 ms, so submit and fence costs are spread
 * thin.
 *
 * It drives op-table nodes through the runtime's internal headers for the
 * matmul and dispatch timings (the public API has no way to record a
 * program of chosen nodes), the device's own Vulkan objects for the probe
 * kernels (tools/probes, not part of the library), and the public
 * API for the training steps.
 *
 * usage: vkt-bench [--json] [--device D] [--runs N] [--quick] [--no-cpu]
 *                  [--no-cpu-fast] [--section matmul|dispatch|roofline|train] [--profile]
 *                  [--shape MxNxK[:NN|NT|TN|TT]]...  (only these matmuls)
 *                  [--model mlp|cnn] [--batch 128|512] (only these steps)
 *                  [--cpu-time]  (CPU time / cores: a shared machine's idle estimate)
 */
#include "../runtime/vulkan/vk_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifdef VKT_HAVE_OPENBLAS
#include <cblas.h>
#endif

static const uint32_t probe_fma_spv[] =
#include "probe_fma.spv.h"
    ;
static const uint32_t probe_copy_ssbo_spv[] =
#include "probe_copy_ssbo.spv.h"
    ;
static const uint32_t probe_copy_texel_spv[] =
#include "probe_copy_texel.spv.h"
    ;

#define MAX_BACKENDS 8
#define MAX_RESULTS 512

typedef struct options {
    bool json, quick, no_cpu, no_cpu_fast, profile;
    const char *device, *section;
    int runs;
    const char *shapes[16]; /* --shape MxNxK[:NN|NT|TN|TT]: only these matmuls */
    int shape_count;
    const char *model; /* --model mlp|cnn: only that training step */
    int batch;         /* --batch B: only that batch size */
    bool cpu_time;     /* --cpu-time: process CPU time / cores instead of wall time */
} options;

typedef struct backend {
    vkt_context *ctx;
    char name[96];
    bool vulkan;    /* has a device for the roofline probes */
    bool reference; /* the CPU reference: too slow for the large cases */
} backend;

/* One line of the --json output. */
typedef struct result {
    const char *section;
    char backend[96];
    char name[64];
    double ms;       /* median */
    double gflops;   /* matmul */
    double samples_per_s;
    double vs_blas;  /* matmul: this backend's time over OpenBLAS's; 0 without */
} result;

static result results[MAX_RESULTS];
static int result_count;
static options opt;

static void add_result(result r) {
    if (result_count < MAX_RESULTS)
        results[result_count++] = r;
}

/* The human-readable table goes to stdout, or to stderr when stdout carries
 * the JSON. */
static FILE *table_out(void) { return opt.json ? stderr : stdout; }

static long cores = 1;

/* Wall time; with --cpu-time, the process's CPU time spread over the cores:
 * on a machine whose cores other programs share, that estimates what the
 * wall time of a CPU device (or OpenBLAS) would be with the cores to itself,
 * as long as it keeps them all busy. */
static double now_ms(void) {
    struct timespec ts;
    clock_gettime(opt.cpu_time ? CLOCK_PROCESS_CPUTIME_ID : CLOCK_MONOTONIC, &ts);
    double ms = (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
    return opt.cpu_time ? ms / (double)cores : ms;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static void fail(vkt_context *ctx, const char *what) {
    fprintf(stderr, "vkt-bench: %s: %s\n", what,
            ctx ? vkt_context_last_error(ctx) : vkt_last_error());
    exit(1);
}

static void random_fill(float *p, size_t n, uint32_t seed) {
    uint32_t s = seed * 2654435761u + 12345u;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        p[i] = (float)(s >> 8) / 8388608.0f - 1.0f;
    }
}

static void *xmalloc(size_t bytes) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p) {
        fprintf(stderr, "vkt-bench: out of memory\n");
        exit(1);
    }
    return p;
}

/* ---- backends ---- */

static int open_backends(backend *out) {
    int count = 0;
    uint32_t n = 0;
    if (vkt_device_list(&n, NULL, NULL) == VKT_OK && n > 0) {
        vkt_device_info *infos = xmalloc(n * sizeof *infos);
        if (vkt_device_list(&n, infos, NULL) == VKT_OK) {
            for (uint32_t i = 0; i < n && count < MAX_BACKENDS - 2; i++) {
                char index[16];
                snprintf(index, sizeof index, "%u", i);
                if (!infos[i].suitable)
                    continue;
                if (opt.device && strcmp(opt.device, index) != 0 &&
                    !strstr(infos[i].name, opt.device))
                    continue;
                vkt_context *ctx;
                if (vkt_context_create(&(vkt_context_desc){.backend = VKT_BACKEND_VULKAN,
                                                           .device = index},
                                       &ctx) != VKT_OK) {
                    fprintf(stderr, "vkt-bench: device %u (%s): %s\n", i, infos[i].name,
                            vkt_last_error());
                    continue;
                }
                out[count].ctx = ctx;
                out[count].vulkan = true;
                out[count].reference = false;
                snprintf(out[count].name, sizeof out[count].name, "%.95s", infos[i].name);
                count++;
            }
        }
        free(infos);
    }
    if (!opt.no_cpu_fast) {
        vkt_context *ctx;
        vkt_context_info info;
        if (vkt_context_create(&(vkt_context_desc){.backend = VKT_BACKEND_CPU_FAST}, &ctx) !=
                VKT_OK ||
            vkt_context_query(ctx, &info) != VKT_OK)
            fail(NULL, "CPU fast context");
        out[count] = (backend){.ctx = ctx};
        /* "CPU (OpenBLAS 0.3.21, 2 threads)": what its matmuls run on */
        snprintf(out[count].name, sizeof out[count].name, "%.95s", info.device_name);
        count++;
    }
    if (!opt.no_cpu) {
        vkt_context *ctx;
        if (vkt_context_create(&(vkt_context_desc){.backend = VKT_BACKEND_CPU}, &ctx) != VKT_OK)
            fail(NULL, "CPU context");
        out[count] = (backend){.ctx = ctx, .reference = true};
        snprintf(out[count].name, sizeof out[count].name, "CPU reference");
        count++;
    }
    return count;
}

/* A device value of the given 2-D shape filled with values in [-1, 1). */
static void value_create(vkt_context *ctx, vkt_value *v, int64_t rows, int64_t cols,
                         uint32_t seed) {
    v->shape = (vkt_shape){.ndim = 2, .dims = {rows, cols}};
    size_t n = (size_t)(rows * cols);
    if (vkt_memory_alloc(ctx, n * sizeof(float), &v->view) != VKT_OK)
        fail(ctx, "alloc");
    float *data = xmalloc(n * sizeof(float));
    random_fill(data, n, seed);
    if (ctx->ops->write(ctx, &v->view, data, n * sizeof(float)) != VKT_OK)
        fail(ctx, "upload");
    free(data);
}

/* Runs `node` `reps` times as one recorded program, `runs` times after one
 * warm-up run; returns the median time per node in ms. */
static double time_program(vkt_context *ctx, const vkt_node *node, int reps, int runs) {
    const vkt_node **list = xmalloc((size_t)reps * sizeof *list);
    for (int i = 0; i < reps; i++)
        list[i] = node;
    vkt_program *prog;
    /* No uploads or downloads, but valid pointers (the backends copy
     * zero-length arrays with memcpy). */
    static const vkt_view none;
    vkt_program_desc desc = {.nodes = list, .node_count = (size_t)reps, .uploads = &none,
                             .downloads = &none};
    if (ctx->ops->program_create(ctx, &desc, &prog) != VKT_OK)
        fail(ctx, "record");
    double *t = xmalloc((size_t)runs * sizeof *t);
    for (int r = -1; r < runs; r++) {
        double t0 = now_ms();
        if (ctx->ops->program_run(ctx, prog) != VKT_OK)
            fail(ctx, "run");
        if (r >= 0)
            t[r] = (now_ms() - t0) / reps;
    }
    double m = median(t, runs);
    ctx->ops->program_destroy(ctx, prog);
    free(t);
    free(list);
    return m;
}

/* ---- matmul ---- */

typedef struct mm_shape {
    char name[48];
    uint32_t m, n, k;
    bool ta, tb;
    int pair; /* >= 0: index of the rounded-up neighbour this edge shape is compared with */
} mm_shape;

static const char *trans_name(bool ta, bool tb) {
    return ta ? (tb ? "TT" : "TN") : (tb ? "NT" : "NN");
}

static int add_shape(mm_shape *s, int n, const char *what, uint32_t m, uint32_t nn, uint32_t k,
                     bool ta, bool tb, int pair) {
    s[n] = (mm_shape){.m = m, .n = nn, .k = k, .ta = ta, .tb = tb, .pair = pair};
    snprintf(s[n].name, sizeof s[n].name, "%ux%ux%u %s%s%s", m, nn, k, trans_name(ta, tb),
             what[0] ? " " : "", what);
    return n + 1;
}

/* The MLP's matmuls at batch B: forward x W^T (NT), input gradient dY W
 * (NN; not for the first layer, whose input needs none), weight gradient
 * dY^T X (TN). */
static int mlp_shapes(mm_shape *s, int n, uint32_t batch) {
    static const uint32_t dims[4] = {784, 256, 128, 10};
    char what[32];
    for (int l = 0; l < 3; l++) {
        uint32_t in = dims[l], out = dims[l + 1];
        snprintf(what, sizeof what, "fc%d fwd b%u", l + 1, batch);
        n = add_shape(s, n, what, batch, out, in, false, true, -1);
        if (l > 0) {
            snprintf(what, sizeof what, "fc%d dX b%u", l + 1, batch);
            n = add_shape(s, n, what, batch, in, out, false, false, -1);
        }
        snprintf(what, sizeof what, "fc%d dW b%u", l + 1, batch);
        n = add_shape(s, n, what, out, in, batch, true, false, -1);
    }
    return n;
}

static double flops(const mm_shape *s) { return 2.0 * s->m * s->n * s->k; }

static double time_matmul(vkt_context *ctx, bool reference, const mm_shape *s) {
    vkt_value a, b, c;
    value_create(ctx, &a, s->ta ? s->k : s->m, s->ta ? s->m : s->k, 1);
    value_create(ctx, &b, s->tb ? s->n : s->k, s->tb ? s->k : s->n, 2);
    value_create(ctx, &c, s->m, s->n, 3);
    vkt_node node = {.op = VKT_OP_MATMUL, .name = "bench", .nin = 2, .nout = 1,
                     .in = {&a, &b}, .out = {&c},
                     .p = {.matmul = {s->ta, s->tb, false, false}}};
    /* One run to compile and estimate, then enough repetitions per run for
     * ~50 ms (the CPU reference: one). */
    double one = time_program(ctx, &node, 1, 1);
    int reps = reference ? 1 : (int)fmin(256.0, fmax(1.0, ceil(50.0 / fmax(one, 1e-3))));
    double ms = time_program(ctx, &node, reps, reference ? 3 : opt.runs);
    vkt_memory_free(ctx, &a.view);
    vkt_memory_free(ctx, &b.view);
    vkt_memory_free(ctx, &c.view);
    return ms;
}

#ifdef VKT_HAVE_OPENBLAS
static double time_blas(const mm_shape *s) {
    size_t na = (size_t)s->m * s->k, nb = (size_t)s->k * s->n, nc = (size_t)s->m * s->n;
    float *a = xmalloc(na * sizeof *a), *b = xmalloc(nb * sizeof *b), *c = xmalloc(nc * sizeof *c);
    random_fill(a, na, 1);
    random_fill(b, nb, 2);
    int lda = (int)(s->ta ? s->m : s->k), ldb = (int)(s->tb ? s->k : s->n);
    double one = 0.0;
    for (int w = 0; w < 2; w++) { /* warm-up: thread start, page faults */
        double t0 = now_ms();
        cblas_sgemm(CblasRowMajor, s->ta ? CblasTrans : CblasNoTrans,
                    s->tb ? CblasTrans : CblasNoTrans, (int)s->m, (int)s->n, (int)s->k, 1.0f, a,
                    lda, b, ldb, 0.0f, c, (int)s->n);
        one = now_ms() - t0;
    }
    int reps = (int)fmin(1000.0, fmax(1.0, ceil(20.0 / fmax(one, 1e-3))));
    double *t = xmalloc((size_t)opt.runs * sizeof *t);
    for (int r = 0; r < opt.runs; r++) {
        double t0 = now_ms();
        for (int i = 0; i < reps; i++)
            cblas_sgemm(CblasRowMajor, s->ta ? CblasTrans : CblasNoTrans,
                        s->tb ? CblasTrans : CblasNoTrans, (int)s->m, (int)s->n, (int)s->k, 1.0f,
                        a, lda, b, ldb, 0.0f, c, (int)s->n);
        t[r] = (now_ms() - t0) / reps;
    }
    double ms = median(t, opt.runs);
    free(t);
    free(a);
    free(b);
    free(c);
    return ms;
}
#endif

static int parse_shapes(mm_shape *shapes) {
    int n = 0;
    for (int i = 0; i < opt.shape_count; i++) {
        unsigned m, nn, k;
        char t[3] = "NN";
        if (sscanf(opt.shapes[i], "%ux%ux%u:%2[NT]", &m, &nn, &k, t) < 3 || !m || !nn || !k) {
            fprintf(stderr, "vkt-bench: --shape %s: want MxNxK or MxNxK:NT\n", opt.shapes[i]);
            exit(2);
        }
        n = add_shape(shapes, n, "", m, nn, k, t[0] == 'T', t[1] == 'T', -1);
    }
    return n;
}

static void bench_matmul(backend *bk, int nb) {
    mm_shape shapes[64];
    int n = opt.shape_count ? parse_shapes(shapes) : 0;
    uint32_t max_square = opt.quick ? 1024 : 2048;
    for (uint32_t s = 256; s <= max_square && !opt.shape_count; s *= 2)
        n = add_shape(shapes, n, "", s, s, s, false, false, -1);
    if (!opt.shape_count)
        n = mlp_shapes(shapes, n, 128);
    if (!opt.quick && !opt.shape_count)
        n = mlp_shapes(shapes, n, 512);
    /* Shapes one short of a multiple of every tile and of 4, next to their
     * rounded-up neighbours: the edge paths must cost about the same. */
    int up = n;
    if (opt.shape_count)
        goto measure;
    n = add_shape(shapes, n, "", 1024, 1024, 1024, false, false, -1);
    n = add_shape(shapes, n, "edge", 1023, 1023, 1023, false, false, up);
    up = n;
    n = add_shape(shapes, n, "", 128, 256, 784, false, true, -1);
    n = add_shape(shapes, n, "edge", 127, 255, 783, false, true, up);
    up = n;
    n = add_shape(shapes, n, "", 256, 784, 128, true, false, -1);
    n = add_shape(shapes, n, "edge", 255, 783, 127, true, false, up);
    up = n;
    n = add_shape(shapes, n, "", 128, 784, 256, false, false, -1);
    n = add_shape(shapes, n, "edge", 127, 783, 255, false, false, up);
measure:;

    FILE *out = table_out();
    fprintf(out, "\nmatmul: GFLOP/s, median of %d runs (C = op(A) op(B); MxNxK, N/T = A, B "
                 "as is / transposed)\n  dev/BLAS: the first device's time over OpenBLAS's; "
                 "edge/up: its time per flop over the rounded-up shape's above\n", opt.runs);
    fprintf(out, "  %-30s", "shape");
    for (int b = 0; b < nb; b++)
        fprintf(out, " %14.14s", bk[b].name);
#ifdef VKT_HAVE_OPENBLAS
    fprintf(out, " %14s %10s", "OpenBLAS", "dev/BLAS");
#endif
    fprintf(out, " %9s\n", "edge/up");
    double ms_of[64][MAX_BACKENDS];
    for (int s = 0; s < n; s++) {
        fprintf(out, "  %-30s", shapes[s].name);
        fflush(out);
#ifdef VKT_HAVE_OPENBLAS
        double blas = time_blas(&shapes[s]);
#endif
        for (int b = 0; b < nb; b++) {
            ms_of[s][b] = 0.0;
            /* The CPU reference sums in double, one element at a time:
             * only the smaller shapes finish in reasonable time. */
            if (bk[b].reference && flops(&shapes[s]) > 1.2e8) {
                fprintf(out, " %14s", "-");
                continue;
            }
            double ms = time_matmul(bk[b].ctx, bk[b].reference, &shapes[s]);
            ms_of[s][b] = ms;
            double gf = flops(&shapes[s]) / (ms * 1e6);
            fprintf(out, " %14.2f", gf);
            fflush(out);
            result r = {.section = "matmul", .ms = ms, .gflops = gf};
            snprintf(r.backend, sizeof r.backend, "%s", bk[b].name);
            snprintf(r.name, sizeof r.name, "%.47s", shapes[s].name);
#ifdef VKT_HAVE_OPENBLAS
            r.vs_blas = ms / blas;
#endif
            add_result(r);
        }
#ifdef VKT_HAVE_OPENBLAS
        double gf = flops(&shapes[s]) / (blas * 1e6);
        fprintf(out, " %14.2f %9.2fx", gf, ms_of[s][0] > 0 ? ms_of[s][0] / blas : 0.0);
        result r = {.section = "matmul", .backend = "OpenBLAS", .ms = blas, .gflops = gf};
        snprintf(r.name, sizeof r.name, "%.47s", shapes[s].name);
        add_result(r);
#endif
        /* Edge shapes: time per flop relative to the rounded-up neighbour
         * (1.00 = the same speed; the first backend). */
        if (shapes[s].pair >= 0 && ms_of[s][0] > 0 && ms_of[shapes[s].pair][0] > 0) {
            double rel = (ms_of[s][0] / flops(&shapes[s])) /
                         (ms_of[shapes[s].pair][0] / flops(&shapes[shapes[s].pair]));
            fprintf(out, " %8.2fx", rel);
        }
        fprintf(out, "\n");
    }
}

/* ---- dispatch ---- */

static void bench_dispatch(backend *bk, int nb) {
    FILE *out = table_out();
    fprintf(out, "\ndispatch: microseconds, median of %d runs\n", opt.runs);
    fprintf(out, "  %-28s %14s %14s %14s\n", "backend", "eager call", "in a program",
            "+ barrier");
    enum { N = 256 };
    for (int b = 0; b < nb; b++) {
        vkt_context *ctx = bk[b].ctx;
        /* eager: one vkt_fill of one float, a submit and fence wait each */
        vkt_tensor *t;
        if (vkt_tensor_create(ctx, &(vkt_tensor_desc){.ndim = 1, .dims = {1}}, &t) != VKT_OK)
            fail(ctx, "tensor");
        double *times = xmalloc(200 * sizeof *times);
        for (int i = -10; i < 200; i++) {
            double t0 = now_ms();
            if (vkt_fill(ctx, t, 1.0f) != VKT_OK)
                fail(ctx, "fill");
            if (i >= 0)
                times[i] = now_ms() - t0;
        }
        double eager = median(times, 200) * 1e3;
        free(times);
        vkt_tensor_destroy(t);
        /* in a program: N fills of distinct floats (no barriers), then N
         * fills of the same float (a write-after-write barrier before each) */
        vkt_value vals[N];
        vkt_node nodes[N];
        const vkt_node *list[N];
        for (int i = 0; i < N; i++) {
            vals[i].shape = (vkt_shape){.ndim = 1, .dims = {1}};
            if (vkt_memory_alloc(ctx, sizeof(float), &vals[i].view) != VKT_OK)
                fail(ctx, "alloc");
            nodes[i] = (vkt_node){.op = VKT_OP_FILL, .name = "fill", .nout = 1,
                                  .out = {&vals[i]}, .p = {.scalar = {1.0f}}};
        }
        double per[2];
        for (int same = 0; same < 2; same++) {
            for (int i = 0; i < N; i++)
                list[i] = same ? &nodes[0] : &nodes[i];
            vkt_program *prog;
            static const vkt_view none;
            if (ctx->ops->program_create(ctx,
                                         &(vkt_program_desc){.nodes = list, .node_count = N,
                                                             .uploads = &none,
                                                             .downloads = &none},
                                         &prog) != VKT_OK)
                fail(ctx, "record");
            double *rt = xmalloc((size_t)opt.runs * sizeof *rt);
            for (int r = -2; r < opt.runs; r++) {
                double t0 = now_ms();
                if (ctx->ops->program_run(ctx, prog) != VKT_OK)
                    fail(ctx, "run");
                if (r >= 0)
                    rt[r] = (now_ms() - t0) / N;
            }
            per[same] = median(rt, opt.runs) * 1e3;
            free(rt);
            ctx->ops->program_destroy(ctx, prog);
        }
        for (int i = 0; i < N; i++)
            vkt_memory_free(ctx, &vals[i].view);
        fprintf(out, "  %-28.28s %14.2f %14.2f %14.2f\n", bk[b].name, eager, per[0], per[1]);
        const char *names[3] = {"eager call", "dispatch in a program", "dispatch + barrier"};
        double us[3] = {eager, per[0], per[1]};
        for (int i = 0; i < 3; i++) {
            result r = {.section = "dispatch", .ms = us[i] * 1e-3};
            snprintf(r.backend, sizeof r.backend, "%s", bk[b].name);
            snprintf(r.name, sizeof r.name, "%s", names[i]);
            add_result(r);
        }
    }
}

/* ---- roofline probes ----
 * Raw Vulkan on the context's device: one pipeline, one descriptor set, one
 * command buffer of `reps` dispatches with a barrier between them. */

typedef struct probe {
    VkDescriptorSetLayout set_layout;
    VkPipelineLayout layout;
    VkShaderModule module;
    VkPipeline pipeline;
    VkDescriptorPool pool;
    VkDescriptorSet set;
} probe;

typedef struct probe_push {
    uint32_t n;
    float seed;
} probe_push;

static void vk_ok(vkt_context *ctx, VkResult r, const char *what) {
    if (r != VK_SUCCESS) {
        fprintf(stderr, "vkt-bench: %s failed (%d)\n", what, (int)r);
        vkt_context_destroy(ctx);
        exit(1);
    }
}

/* bindings: texel_binding0 says binding 0 is a uniform texel buffer */
static void probe_create(vkt_context *ctx, probe *p, const uint32_t *spv, size_t bytes,
                         uint32_t bindings, bool texel_binding0, const uint32_t *spec,
                         uint32_t spec_count) {
    vk_state *vk = vk_of(ctx);
    VkDescriptorSetLayoutBinding b[2];
    for (uint32_t i = 0; i < bindings; i++)
        b[i] = (VkDescriptorSetLayoutBinding){
            .binding = i, .descriptorCount = 1, .stageFlags = VK_SHADER_STAGE_COMPUTE_BIT,
            .descriptorType = i == 0 && texel_binding0 ? VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER
                                                       : VK_DESCRIPTOR_TYPE_STORAGE_BUFFER};
    vk_ok(ctx, vk->vk.vkCreateDescriptorSetLayout(
                   vk->device,
                   &(VkDescriptorSetLayoutCreateInfo){
                       .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO,
                       .bindingCount = bindings, .pBindings = b},
                   NULL, &p->set_layout),
          "vkCreateDescriptorSetLayout");
    vk_ok(ctx, vk->vk.vkCreatePipelineLayout(
                   vk->device,
                   &(VkPipelineLayoutCreateInfo){
                       .sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO,
                       .setLayoutCount = 1, .pSetLayouts = &p->set_layout,
                       .pushConstantRangeCount = 1,
                       .pPushConstantRanges = &(VkPushConstantRange){
                           VK_SHADER_STAGE_COMPUTE_BIT, 0, sizeof(probe_push)}},
                   NULL, &p->layout),
          "vkCreatePipelineLayout");
    vk_ok(ctx, vk->vk.vkCreateShaderModule(
                   vk->device,
                   &(VkShaderModuleCreateInfo){.sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO,
                                               .codeSize = bytes, .pCode = spv},
                   NULL, &p->module),
          "vkCreateShaderModule");
    VkSpecializationMapEntry entries[4];
    for (uint32_t i = 0; i < spec_count; i++)
        entries[i] = (VkSpecializationMapEntry){i, i * 4, 4};
    vk_ok(ctx, vk->vk.vkCreateComputePipelines(
                   vk->device, VK_NULL_HANDLE, 1,
                   &(VkComputePipelineCreateInfo){
                       .sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO,
                       .stage = {.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO,
                                 .stage = VK_SHADER_STAGE_COMPUTE_BIT, .module = p->module,
                                 .pName = "main",
                                 .pSpecializationInfo = &(VkSpecializationInfo){
                                     spec_count, entries, spec_count * 4, spec}},
                       .layout = p->layout},
                   NULL, &p->pipeline),
          "vkCreateComputePipelines");
    VkDescriptorPoolSize sizes[2] = {{VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, 2},
                                     {VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER, 1}};
    vk_ok(ctx, vk->vk.vkCreateDescriptorPool(
                   vk->device,
                   &(VkDescriptorPoolCreateInfo){
                       .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO, .maxSets = 1,
                       .poolSizeCount = 2, .pPoolSizes = sizes},
                   NULL, &p->pool),
          "vkCreateDescriptorPool");
    vk_ok(ctx, vk->vk.vkAllocateDescriptorSets(
                   vk->device,
                   &(VkDescriptorSetAllocateInfo){
                       .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO,
                       .descriptorPool = p->pool, .descriptorSetCount = 1,
                       .pSetLayouts = &p->set_layout},
                   &p->set),
          "vkAllocateDescriptorSets");
}

static void probe_destroy(vkt_context *ctx, probe *p) {
    vk_state *vk = vk_of(ctx);
    vk->vk.vkDestroyDescriptorPool(vk->device, p->pool, NULL);
    vk->vk.vkDestroyPipeline(vk->device, p->pipeline, NULL);
    vk->vk.vkDestroyShaderModule(vk->device, p->module, NULL);
    vk->vk.vkDestroyPipelineLayout(vk->device, p->layout, NULL);
    vk->vk.vkDestroyDescriptorSetLayout(vk->device, p->set_layout, NULL);
}

/* Median time of one dispatch of `groups` workgroups, in ms, over opt.runs
 * submits of `reps` dispatches each (after one warm-up submit). */
static double probe_time(vkt_context *ctx, const probe *p, probe_push push, uint32_t groups,
                         int reps) {
    vk_state *vk = vk_of(ctx);
    VkCommandBuffer cmd;
    vk_ok(ctx, vk->vk.vkAllocateCommandBuffers(
                   vk->device,
                   &(VkCommandBufferAllocateInfo){
                       .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
                       .commandPool = vk->command_pool, .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
                       .commandBufferCount = 1},
                   &cmd),
          "vkAllocateCommandBuffers");
    vk->vk.vkBeginCommandBuffer(cmd, &(VkCommandBufferBeginInfo){
                                         .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO});
    vk->vk.vkCmdBindPipeline(cmd, VK_PIPELINE_BIND_POINT_COMPUTE, p->pipeline);
    vk->vk.vkCmdBindDescriptorSets(cmd, VK_PIPELINE_BIND_POINT_COMPUTE, p->layout, 0, 1, &p->set,
                                   0, NULL);
    vk->vk.vkCmdPushConstants(cmd, p->layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, sizeof push, &push);
    for (int i = 0; i < reps; i++) {
        /* Hazard: each dispatch overwrites what the previous one wrote. */
        VkMemoryBarrier barrier = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                                   .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT,
                                   .dstAccessMask = VK_ACCESS_SHADER_WRITE_BIT};
        if (i)
            vk->vk.vkCmdPipelineBarrier(cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT,
                                        VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, 0, 1, &barrier, 0,
                                        NULL, 0, NULL);
        vk->vk.vkCmdDispatch(cmd, groups, 1, 1);
    }
    vk_ok(ctx, vk->vk.vkEndCommandBuffer(cmd), "vkEndCommandBuffer");
    double *t = xmalloc((size_t)opt.runs * sizeof *t);
    for (int r = -1; r < opt.runs; r++) {
        double t0 = now_ms();
        vk_ok(ctx, vk->vk.vkQueueSubmit(vk->queue, 1,
                                        &(VkSubmitInfo){.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO,
                                                        .commandBufferCount = 1,
                                                        .pCommandBuffers = &cmd},
                                        VK_NULL_HANDLE),
              "vkQueueSubmit");
        vk_ok(ctx, vk->vk.vkQueueWaitIdle(vk->queue), "vkQueueWaitIdle");
        if (r >= 0)
            t[r] = (now_ms() - t0) / reps;
    }
    double ms = median(t, opt.runs);
    free(t);
    vk->vk.vkFreeCommandBuffers(vk->device, vk->command_pool, 1, &cmd);
    return ms;
}

static void bind_buffer(vkt_context *ctx, const probe *p, uint32_t binding, VkBuffer buffer,
                        uint64_t bytes, VkBufferView texel) {
    vk_state *vk = vk_of(ctx);
    VkDescriptorBufferInfo info = {buffer, 0, bytes};
    VkWriteDescriptorSet w = {.sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET,
                              .dstSet = p->set, .dstBinding = binding, .descriptorCount = 1,
                              .descriptorType = texel ? VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER
                                                      : VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                              .pBufferInfo = texel ? NULL : &info,
                              .pTexelBufferView = texel ? &texel : NULL};
    vk->vk.vkUpdateDescriptorSets(vk->device, 1, &w, 0, NULL);
}

static void roofline_result(const backend *bk, const char *name, double ms, double gflops,
                            double gbps) {
    fprintf(table_out(), "  %-28.28s %-36s %10.3f %12.2f %10.2f\n", bk->name, name, ms, gflops,
            gbps);
    result r = {.section = "roofline", .ms = ms, .gflops = gflops, .samples_per_s = 0};
    snprintf(r.backend, sizeof r.backend, "%s", bk->name);
    snprintf(r.name, sizeof r.name, "%s", name);
    if (gbps > 0)
        snprintf(r.name, sizeof r.name, "%s (%.2f GB/s)", name, gbps);
    add_result(r);
}

static void bench_roofline(backend *bk, int nb) {
    FILE *out = table_out();
    fprintf(out, "\nroofline: probe kernels, median of %d runs\n", opt.runs);
    fprintf(out, "  %-28s %-36s %10s %12s %10s\n", "backend", "probe", "ms", "GFLOP/s", "GB/s");
    for (int b = 0; b < nb; b++) {
        if (!bk[b].vulkan)
            continue;
        vkt_context *ctx = bk[b].ctx;
        vk_state *vk = vk_of(ctx);
        /* 64 MiB each way: twice the last-level cache of most CPUs */
        const uint64_t bytes = (uint64_t)64 << 20;
        VkBuffer src, dst;
        VkDeviceMemory src_mem, dst_mem;
        if (vk_buffer_create(ctx, bytes,
                             VK_BUFFER_USAGE_STORAGE_BUFFER_BIT |
                                 VK_BUFFER_USAGE_UNIFORM_TEXEL_BUFFER_BIT |
                                 VK_BUFFER_USAGE_TRANSFER_DST_BIT,
                             VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT, &src, &src_mem) != VKT_OK ||
            vk_buffer_create(ctx, bytes,
                             VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT,
                             VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT, &dst, &dst_mem) != VKT_OK)
            fail(ctx, "probe buffers");
        uint32_t wg = 64;

        /* FMA: enough invocations for every core, a long loop each */
        probe p;
        uint32_t spec_fma[1] = {wg};
        probe_create(ctx, &p, probe_fma_spv, sizeof probe_fma_spv, 1, false, spec_fma, 1);
        bind_buffer(ctx, &p, 0, dst, bytes, VK_NULL_HANDLE);
        uint32_t groups = 256, iterations = 4096;
        double ms = probe_time(ctx, &p, (probe_push){iterations, 1.0f}, groups, 4);
        double flops = (double)groups * wg * iterations * 8 * 4 * 2;
        roofline_result(&bk[b], "FMA chains (8 x vec4 per invocation)", ms, flops / (ms * 1e6), 0);
        probe_destroy(ctx, &p);

        /* copies: bytes read + bytes written */
        for (int vec = 0; vec < 2; vec++) {
            uint32_t spec[2] = {wg, (uint32_t)vec};
            probe_create(ctx, &p, probe_copy_ssbo_spv, sizeof probe_copy_ssbo_spv, 2, false, spec,
                         2);
            bind_buffer(ctx, &p, 0, src, bytes, VK_NULL_HANDLE);
            bind_buffer(ctx, &p, 1, dst, bytes, VK_NULL_HANDLE);
            uint32_t n = (uint32_t)(bytes / (vec ? 16 : 4));
            ms = probe_time(ctx, &p, (probe_push){n, 0}, vkt_div_up(n, wg), 3);
            roofline_result(&bk[b], vec ? "copy, storage buffers, 4 floats" :
                            "copy, storage buffers, 1 float", ms, 0,
                            2.0 * (double)bytes / (ms * 1e6));
            probe_destroy(ctx, &p);
        }
        VkBufferView view;
        vk_ok(ctx, vk->vk.vkCreateBufferView(
                       vk->device,
                       &(VkBufferViewCreateInfo){.sType = VK_STRUCTURE_TYPE_BUFFER_VIEW_CREATE_INFO,
                                                 .buffer = src,
                                                 .format = VK_FORMAT_R32G32B32A32_SFLOAT,
                                                 .range = bytes},
                       NULL, &view),
              "vkCreateBufferView");
        uint32_t spec_texel[1] = {wg};
        probe_create(ctx, &p, probe_copy_texel_spv, sizeof probe_copy_texel_spv, 2, true,
                     spec_texel, 1);
        bind_buffer(ctx, &p, 0, src, bytes, view);
        bind_buffer(ctx, &p, 1, dst, bytes, VK_NULL_HANDLE);
        uint32_t n = (uint32_t)(bytes / 16);
        ms = probe_time(ctx, &p, (probe_push){n, 0}, vkt_div_up(n, wg), 3);
        roofline_result(&bk[b], "copy, texel read, 4-float store", ms, 0,
                        2.0 * (double)bytes / (ms * 1e6));
        probe_destroy(ctx, &p);
        vk->vk.vkDestroyBufferView(vk->device, view, NULL);
        vk->vk.vkDestroyBuffer(vk->device, src, NULL);
        vk->vk.vkFreeMemory(vk->device, src_mem, NULL);
        vk->vk.vkDestroyBuffer(vk->device, dst, NULL);
        vk->vk.vkFreeMemory(vk->device, dst_mem, NULL);
    }
}

/* ---- train ---- */

typedef struct net {
    vkt_graph *g;
    vkt_var x, y, loss;
    size_t x_count;
} net;

static void build_net(vkt_context *ctx, bool cnn, int64_t batch, net *n) {
    if (vkt_graph_create(ctx, &(vkt_graph_desc){.seed = 1}, &n->g) != VKT_OK)
        fail(ctx, "graph");
    vkt_graph *g = n->g;
    n->y = vkt_graph_input(g, "labels", 1, (int64_t[]){batch});
    vkt_var logits;
    if (!cnn) {
        n->x = vkt_graph_input(g, "x", 2, (int64_t[]){batch, 784});
        vkt_var h = vkt_graph_relu(g, vkt_graph_linear(g, n->x, 256, "fc1"));
        h = vkt_graph_relu(g, vkt_graph_linear(g, h, 128, "fc2"));
        logits = vkt_graph_linear(g, h, 10, "fc3");
    } else {
        n->x = vkt_graph_input(g, "x", 4, (int64_t[]){batch, 1, 28, 28});
        vkt_var h = vkt_graph_relu(g, vkt_graph_conv2d(g, n->x, 32, 3, 1, 1, "conv1"));
        h = vkt_graph_max_pool2d(g, h, 2, 2);
        h = vkt_graph_relu(g, vkt_graph_conv2d(g, h, 64, 3, 1, 1, "conv2"));
        h = vkt_graph_max_pool2d(g, h, 2, 2);
        h = vkt_graph_relu(g, vkt_graph_linear(g, vkt_graph_flatten(g, h), 128, "fc1"));
        logits = vkt_graph_linear(g, h, 10, "fc2");
    }
    n->loss = vkt_graph_softmax_cross_entropy(g, logits, n->y);
    n->x_count = (size_t)batch * 784;
    if (vkt_graph_status(g) != VKT_OK) {
        fprintf(stderr, "vkt-bench: graph: %s\n", vkt_graph_last_error(g));
        exit(1);
    }
}

static void print_profile(const vkt_profile_report *rep, double step_ms) {
    size_t len = vkt_profile_format(rep, NULL, 0);
    char *table = xmalloc(len + 1);
    vkt_profile_format(rep, table, len + 1);
    FILE *out = table_out();
    fputs(table, out);
    fprintf(out, "  nodes add up to %.3f ms of device time (the median of 5 profiled steps); "
                 "plain steps between them took %.3f ms (median): the profile covers %.0f%% "
                 "of it\n",
            rep->device_ms, step_ms, 100.0 * rep->device_ms / step_ms);
    free(table);
}

static void bench_train_one(backend *bk, bool cnn, int64_t batch) {
    vkt_context *ctx = bk->ctx;
    net n;
    build_net(ctx, cnn, batch, &n);
    vkt_model *m;
    if (vkt_model_create(n.g, &(vkt_model_desc){.loss = n.loss}, &m) != VKT_OK)
        fail(ctx, "model");
    vkt_graph_destroy(n.g);
    float *x = xmalloc(n.x_count * sizeof *x), *y = xmalloc((size_t)batch * sizeof *y);
    random_fill(x, n.x_count, 7);
    for (int64_t i = 0; i < batch; i++)
        y[i] = (float)(i % 10);
    vkt_feed feeds[2] = {{n.x, x, n.x_count}, {n.y, y, (size_t)batch}};
    /* CNN steps on CPU devices take seconds: fewer runs. */
    int runs = bk->reference || cnn ? (opt.runs < 5 ? opt.runs : 5) : opt.runs * 3;
    double *t = xmalloc((size_t)runs * sizeof *t);
    for (int r = -2; r < runs; r++) {
        double t0 = now_ms();
        if (vkt_model_step(m, feeds, 2, NULL) != VKT_OK)
            fail(ctx, "step");
        if (r >= 0)
            t[r] = now_ms() - t0;
    }
    double ms = median(t, runs);
    double sps = (double)batch / (ms * 1e-3);
    char name[64];
    snprintf(name, sizeof name, "%s b%lld", cnn ? "cnn" : "mlp", (long long)batch);
    fprintf(table_out(), "  %-28.28s %-12s %12.3f %14.0f\n", bk->name, name, ms, sps);
    result res = {.section = "train", .ms = ms, .samples_per_s = sps};
    snprintf(res.backend, sizeof res.backend, "%s", bk->name);
    snprintf(res.name, sizeof res.name, "%s", name);
    add_result(res);
    if (opt.profile) {
        /* The profile of median device time among a few, as one profiled
         * step is as noisy as one timed step. */
        enum { PROFILES = 5 };
        vkt_profile_report *rep = xmalloc(PROFILES * sizeof *rep);
        double device[PROFILES], sorted[PROFILES], steps[PROFILES];
        int done = 0;
        for (; done < PROFILES; done++) {
            /* a plain step right before each profiled one: both see the
             * same machine load */
            double t0 = now_ms();
            if (vkt_model_step(m, feeds, 2, NULL) != VKT_OK)
                fail(ctx, "step");
            steps[done] = now_ms() - t0;
            if (vkt_model_profile(m, feeds, 2, &rep[done]) != VKT_OK) {
                fprintf(stderr, "vkt-bench: profile: %s\n", vkt_model_last_error(m));
                break;
            }
            device[done] = sorted[done] = rep[done].device_ms;
        }
        if (done) {
            double mid = median(sorted, done);
            int pick = 0;
            for (int i = 0; i < done; i++)
                if (fabs(device[i] - mid) < fabs(device[pick] - mid))
                    pick = i;
            print_profile(&rep[pick], median(steps, done));
        }
        free(rep);
    }
    free(t);
    free(x);
    free(y);
    vkt_model_destroy(m);
}

static void bench_train(backend *bk, int nb) {
    FILE *out = table_out();
    fprintf(out, "\ntrain: one step (upload, forward, loss, backward, Adam), median\n");
    fprintf(out, "  %-28s %-12s %12s %14s\n", "backend", "model", "ms/step", "samples/s");
    for (int b = 0; b < nb; b++) {
        for (int cnn = 0; cnn < 2; cnn++) {
            for (int64_t batch = 128; batch <= 512; batch *= 4) {
                if ((opt.quick && batch > 128) || (opt.batch && batch != opt.batch) ||
                    (opt.model && strcmp(opt.model, cnn ? "cnn" : "mlp") != 0))
                    continue;
                /* the reference runs the CNN and batch 512 too slowly to
                 * measure by default */
                if (bk[b].reference && (cnn || batch > 128))
                    continue;
                bench_train_one(&bk[b], cnn, batch);
            }
        }
    }
}

/* ---- output ---- */

static void print_json_string(const char *s) {
    putchar('"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            printf("\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            printf("\\u%04x", *s);
        else
            putchar(*s);
    }
    putchar('"');
}

static void print_json(void) {
    printf("{\"runs\": %d, \"results\": [\n", opt.runs);
    for (int i = 0; i < result_count; i++) {
        const result *r = &results[i];
        printf("  {\"section\": \"%s\", \"backend\": ", r->section);
        print_json_string(r->backend);
        printf(", \"name\": ");
        print_json_string(r->name);
        printf(", \"ms\": %.6g", r->ms);
        if (r->gflops > 0)
            printf(", \"gflops\": %.4g", r->gflops);
        if (r->samples_per_s > 0)
            printf(", \"samples_per_s\": %.6g", r->samples_per_s);
        if (r->vs_blas > 0)
            printf(", \"time_vs_openblas\": %.4g", r->vs_blas);
        printf("}%s\n", i + 1 < result_count ? "," : "");
    }
    printf("]}\n");
}

static void usage(void) {
    fprintf(stderr, "usage: vkt-bench [--json] [--device INDEX|NAME] [--runs N] [--quick] "
                    "[--no-cpu] [--no-cpu-fast]\n                 [--section matmul|dispatch|roofline|train] "
                    "[--profile] [--shape MxNxK[:NT]]...\n                 [--model mlp|cnn] "
                    "[--batch 128|512] [--cpu-time]\n");
}

int main(int argc, char **argv) {
    opt = (options){.runs = 7};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--json") == 0)
            opt.json = true;
        else if (strcmp(a, "--quick") == 0)
            opt.quick = true;
        else if (strcmp(a, "--no-cpu") == 0)
            opt.no_cpu = true;
        else if (strcmp(a, "--no-cpu-fast") == 0)
            opt.no_cpu_fast = true;
        else if (strcmp(a, "--profile") == 0)
            opt.profile = true;
        else if (strcmp(a, "--device") == 0 && i + 1 < argc)
            opt.device = argv[++i];
        else if (strcmp(a, "--section") == 0 && i + 1 < argc)
            opt.section = argv[++i];
        else if (strcmp(a, "--runs") == 0 && i + 1 < argc)
            opt.runs = atoi(argv[++i]);
        else if (strcmp(a, "--shape") == 0 && i + 1 < argc && opt.shape_count < 16)
            opt.shapes[opt.shape_count++] = argv[++i];
        else if (strcmp(a, "--cpu-time") == 0)
            opt.cpu_time = true;
        else if (strcmp(a, "--model") == 0 && i + 1 < argc)
            opt.model = argv[++i];
        else if (strcmp(a, "--batch") == 0 && i + 1 < argc)
            opt.batch = atoi(argv[++i]);
        else {
            usage();
            return 2;
        }
    }
    if (opt.runs < 1)
        opt.runs = 1;
    cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (cores < 1)
        cores = 1;
    if (opt.cpu_time)
        fprintf(table_out(), "times: process CPU time / %ld cores (--cpu-time)\n", cores);
#ifdef VKT_HAVE_OPENBLAS
    /* the same two threads the other backends get on this machine */
    fprintf(table_out(), "OpenBLAS: %s\n", openblas_get_config());
#endif
    backend bk[MAX_BACKENDS];
    int nb = open_backends(bk);
    if (nb == 0) {
        fprintf(stderr, "vkt-bench: no backend to measure\n");
        return 1;
    }
    for (int b = 0; b < nb; b++) {
        vkt_context_info info;
        vkt_context_query(bk[b].ctx, &info);
        fprintf(table_out(), "backend %d: %s\n", b, info.device_name);
    }
    bool all = !opt.section;
    if (all || strcmp(opt.section, "matmul") == 0)
        bench_matmul(bk, nb);
    if (all || strcmp(opt.section, "dispatch") == 0)
        bench_dispatch(bk, nb);
    if (all || strcmp(opt.section, "roofline") == 0)
        bench_roofline(bk, nb);
    if (all || strcmp(opt.section, "train") == 0)
        bench_train(bk, nb);
    if (opt.json)
        print_json();
    for (int b = 0; b < nb; b++)
        vkt_context_destroy(bk[b].ctx);
    return 0;
}
