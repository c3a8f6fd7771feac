/* test_soak.c: long runs with flat memory. A training program embedded in
 * an engine replays its step for hours, and a tool may make and drop models
 * and contexts all day: any per-step or per-object leak, however small,
 * eventually takes the host down. Each test samples the bytes in use on the
 * C heap (mallinfo2), the process's resident memory (/proc/self/statm) and
 * the context's device memory after a warm-up (first pipelines, driver and
 * layer caches) and again at the end, and requires them to stay put.
 *
 * VKT_SOAK_STEPS overrides the number of replayed steps (default 3000). In
 * the sanitizer build the runs are shorter and the host memory is not judged
 * (AddressSanitizer's quarantine holds freed memory on purpose, and it
 * replaces the allocator mallinfo2 reads); LeakSanitizer checks for leaks
 * there instead. */
#include "harness.h"

#include <malloc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANITIZED 1
#endif
#endif
#ifndef SANITIZED
#define SANITIZED 0
#endif

enum { B = 32, IN = 16, HID = 32, OUT = 4, WARM_STEPS = 1000 };

/* Resident memory moves in pages and with the C library's caches, so it
 * gets a margin; the heap (heap_bytes) is the exact measure. */
#define RSS_SLACK ((uint64_t)1 << 20)
/* Heap growth allowed over the replayed steps: a few blocks of allocator
 * noise, where a leak of even 2 bytes a step would show. */
#define HEAP_SLACK ((uint64_t)4 << 10)

static uint64_t rss_bytes(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    cr_assert_not_null(f, "/proc/self/statm");
    unsigned long long size = 0, resident = 0;
    int n = fscanf(f, "%llu %llu", &size, &resident);
    fclose(f);
    cr_assert_eq(n, 2);
    return resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

static vkt_context_info info_of(const vkt_context *ctx) {
    vkt_context_info info;
    cr_assert_eq(vkt_context_query(ctx, &info), VKT_OK);
    return info;
}

/* Bytes the C heap has handed out and not had back, over every arena:
 * exact, where resident memory moves in pages and with the allocator's
 * caching. 0 where glibc's mallinfo2 is missing or intercepted. */
static uint64_t heap_bytes(void) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 33) && !SANITIZED
    struct mallinfo2 mi = mallinfo2();
    return (uint64_t)mi.uordblks + (uint64_t)mi.hblkhd;
#else
    return 0;
#endif
}

typedef struct sample {
    uint64_t rss, heap, reserved, in_use;
} sample;

static sample take(const vkt_context *ctx) {
    sample s = {.rss = rss_bytes(), .heap = heap_bytes()};
    if (ctx) {
        vkt_context_info info = info_of(ctx);
        s.reserved = info.bytes_reserved;
        s.in_use = info.bytes_in_use;
    }
    return s;
}

/* Device memory must be exactly where it was; the heap may differ by
 * heap_slack bytes and resident memory by rss_slack. */
static void judge(const char *what, sample start, sample end, uint64_t heap_slack,
                  uint64_t rss_slack) {
    char line[512];
    snprintf(line, sizeof line,
             "soak: %s: heap %llu -> %llu bytes (%+lld), RSS %.2f -> %.2f MiB (%+lld bytes), "
             "device memory reserved %llu -> %llu, in use %llu -> %llu",
             what, (unsigned long long)start.heap, (unsigned long long)end.heap,
             (long long)(end.heap - start.heap), start.rss / 1048576.0, end.rss / 1048576.0,
             (long long)(end.rss - start.rss), (unsigned long long)start.reserved,
             (unsigned long long)end.reserved, (unsigned long long)start.in_use,
             (unsigned long long)end.in_use);
    cr_log_info("%s", line);
    fprintf(stderr, "%s\n", line); /* the numbers docs/reliability.md quotes */
    cr_assert_eq(end.reserved, start.reserved, "%s: device memory reserved grew", what);
    cr_assert_eq(end.in_use, start.in_use, "%s: device memory in use grew", what);
    if (SANITIZED)
        return;
    cr_assert_leq(end.heap, start.heap + heap_slack, "%s: the heap grew by %lld bytes", what,
                  (long long)(end.heap - start.heap));
    cr_assert_leq(end.rss, start.rss + rss_slack, "%s: resident memory grew by %lld bytes", what,
                  (long long)(end.rss - start.rss));
}

typedef struct mlp {
    vkt_graph *g;
    vkt_model *m;
    vkt_var x, y, loss;
} mlp;

static mlp mlp_create(vkt_context *ctx, uint64_t seed) {
    mlp n = {0};
    cr_assert_eq(vkt_graph_create(ctx, &(vkt_graph_desc){.seed = seed}, &n.g), VKT_OK);
    n.x = vkt_graph_input(n.g, "x", 2, (int64_t[]){B, IN});
    n.y = vkt_graph_input(n.g, "y", 1, (int64_t[]){B});
    vkt_var h = vkt_graph_relu(n.g, vkt_graph_linear(n.g, n.x, HID, "fc1"));
    h = vkt_graph_relu(n.g, vkt_graph_linear(n.g, h, HID, "fc2"));
    n.loss = vkt_graph_softmax_cross_entropy(n.g, vkt_graph_linear(n.g, h, OUT, "fc3"), n.y);
    cr_assert_eq(vkt_model_create(n.g,
                                  &(vkt_model_desc){.loss = n.loss,
                                                    .optimizer = {.type = VKT_OPTIMIZER_ADAMW,
                                                                  .lr = 3e-3f}},
                                  &n.m),
                 VKT_OK, "%s", vkt_context_last_error(ctx));
    return n;
}

static void mlp_destroy(mlp *n) {
    vkt_model_destroy(n->m);
    vkt_graph_destroy(n->g);
}

/* Batches from a fixed pool: label = the quadrant of the first two features. */
#define POOL 8
static void make_batches(float *xs, float *ys) {
    h_random(xs, (size_t)POOL * B * IN, 11, -1, 1);
    for (int i = 0; i < POOL * B; i++)
        ys[i] = (float)((xs[i * IN] > 0) * 2 + (xs[i * IN + 1] > 0));
}

static uint64_t soak_steps(void) {
    const char *env = getenv("VKT_SOAK_STEPS");
    if (env && *env)
        return strtoull(env, NULL, 10);
    return SANITIZED ? 500 : 3000;
}

static vkt_result step(mlp *n, const float *xs, const float *ys, uint64_t i, float *loss) {
    const float *x = xs + (i % POOL) * B * IN, *y = ys + (i % POOL) * B;
    vkt_feed feeds[2] = {{n->x, x, B * IN}, {n->y, y, B}};
    return vkt_model_step(n->m, feeds, 2, loss);
}

Test(soak, replayed_steps, .timeout = 600) {
    vkt_context *ctx = h_vulkan();
    mlp n = mlp_create(ctx, 1);
    float *xs = h_alloc_floats((size_t)POOL * B * IN), *ys = h_alloc_floats(POOL * B);
    make_batches(xs, ys);
    float loss = 0.0f, first = 0.0f, eval = 0.0f;
    float params[HID * HID];
    vkt_var w = vkt_graph_find(n.g, "fc2.weight");
    /* Warm-up: the same mix of calls as the measured part. Resident memory
     * settles only after a few hundred steps (about 2 MiB more, once: the
     * driver's threads warming their allocator arenas; the heap does not
     * move), so the warm-up is long. */
    for (uint64_t i = 0; i < WARM_STEPS; i++) {
        cr_assert_eq(step(&n, xs, ys, i, &loss), VKT_OK, "%s", vkt_context_last_error(ctx));
        if (i == 0)
            first = loss;
        if (i % 100 == 99) {
            vkt_feed feeds[2] = {{n.x, xs, B * IN}, {n.y, ys, B}};
            cr_assert_eq(vkt_model_evaluate(n.m, feeds, 2, &eval), VKT_OK);
            cr_assert_eq(vkt_model_read(n.m, w, params, HID * HID), VKT_OK);
        }
    }
    uint64_t steps = soak_steps();
    sample start = take(ctx);
    uint64_t submits = info_of(ctx).submits;
    for (uint64_t i = 0; i < steps; i++) {
        cr_assert_eq(step(&n, xs, ys, WARM_STEPS + i, &loss), VKT_OK, "step %llu: %s",
                     (unsigned long long)i, vkt_context_last_error(ctx));
        if (i % 100 == 99) {
            vkt_feed feeds[2] = {{n.x, xs, B * IN}, {n.y, ys, B}};
            cr_assert_eq(vkt_model_evaluate(n.m, feeds, 2, &eval), VKT_OK);
            cr_assert_eq(vkt_model_read(n.m, w, params, HID * HID), VKT_OK);
        }
    }
    sample end = take(ctx);
    uint64_t measured_submits = info_of(ctx).submits - submits;
    char what[64];
    snprintf(what, sizeof what, "%llu replayed steps", (unsigned long long)steps);
    judge(what, start, end, HEAP_SLACK, RSS_SLACK);
    cr_assert(isfinite(loss) && loss < 0.5f * first, "loss %g -> %g: the run did not train",
              first, loss);
    /* One submit per step, one per evaluation, one per read: nothing more. */
    cr_assert_eq(measured_submits, steps + 2 * (steps / 100));
    fprintf(stderr, "soak: loss %.4f -> %.4f over %llu steps\n", first, loss,
            (unsigned long long)(steps + WARM_STEPS));
    free(xs);
    free(ys);
    mlp_destroy(&n);
    h_finish(ctx);
}

/* A context without the validation layer, whatever VKT_VALIDATION says. The
 * layer keeps bookkeeping of its own for every object and instance it has
 * seen (about 10 KiB per model and 5 KiB per context here), which would
 * drown what these tests look for; the first rounds of each still run
 * under it, so the sequence of calls is validated. */
static vkt_context *plain_vulkan(void) {
    unsetenv("VKT_VALIDATION"); /* this test's own process (Criterion forks one per test) */
    vkt_context *ctx = NULL;
    cr_assert_eq(vkt_context_create(&(vkt_context_desc){.backend = VKT_BACKEND_VULKAN}, &ctx),
                 VKT_OK, "%s", vkt_last_error());
    return ctx;
}

/* Makes a model, trains it two steps and destroys it. */
static void model_round(vkt_context *ctx, const float *xs, const float *ys, uint64_t seed) {
    mlp n = mlp_create(ctx, seed);
    float loss;
    for (uint64_t s = 0; s < 2; s++)
        cr_assert_eq(step(&n, xs, ys, s, &loss), VKT_OK, "%s", vkt_context_last_error(ctx));
    mlp_destroy(&n);
}

/* Models made, trained a little and destroyed on one context. Its heap may
 * grow by 64 KiB over 300 models: about 200 bytes a model, less than any
 * of vktrain's per-model structures. */
Test(soak, models_created_and_destroyed, .timeout = 600) {
    float *xs = h_alloc_floats((size_t)POOL * B * IN), *ys = h_alloc_floats(POOL * B);
    make_batches(xs, ys);
    vkt_context *ctx = h_vulkan();
    for (int i = 0; i < 10; i++)
        model_round(ctx, xs, ys, (uint64_t)i);
    h_finish(ctx);

    const int warm = 30, rounds = SANITIZED ? 60 : 300;
    ctx = plain_vulkan();
    for (int i = 0; i < warm; i++)
        model_round(ctx, xs, ys, (uint64_t)i);
    sample start = take(ctx);
    for (int i = 0; i < rounds; i++)
        model_round(ctx, xs, ys, (uint64_t)i);
    char what[64];
    snprintf(what, sizeof what, "%d models created and destroyed", rounds);
    judge(what, start, take(ctx), 64 << 10, 4 * RSS_SLACK);
    vkt_context_destroy(ctx);
    free(xs);
    free(ys);
}

/* One context's life: a tensor round trip, an eager kernel and, every few
 * rounds, a model compiled and trained. */
static void context_round(vkt_context *ctx, const float *xs, const float *ys, int i) {
    vkt_tensor *a = NULL, *c = NULL;
    cr_assert_eq(vkt_tensor_create(ctx, &(vkt_tensor_desc){.ndim = 2, .dims = {B, IN}}, &a),
                 VKT_OK);
    cr_assert_eq(vkt_tensor_create(ctx, &(vkt_tensor_desc){.ndim = 2, .dims = {B, IN}}, &c),
                 VKT_OK);
    cr_assert_eq(vkt_tensor_upload(a, xs, B * IN), VKT_OK);
    cr_assert_eq(vkt_relu(ctx, c, a), VKT_OK, "%s", vkt_context_last_error(ctx));
    float out[B * IN];
    cr_assert_eq(vkt_tensor_download(c, out, B * IN), VKT_OK);
    for (int k = 0; k < B * IN; k++)
        cr_assert_eq(out[k], xs[k] > 0 ? xs[k] : 0.0f);
    vkt_tensor_destroy(a);
    vkt_tensor_destroy(c);
    if (i % 10 == 0)
        model_round(ctx, xs, ys, (uint64_t)i);
}

/* Whole contexts (instance, device, driver) made, used and destroyed.
 *
 * The Vulkan loader and lavapipe themselves keep about 450 bytes of heap
 * per VkInstance and VkDevice made and destroyed (measured with a bare
 * vkCreateInstance/vkCreateDevice loop, no vktrain), so the heap may grow by
 * 1 KiB per context; any of vktrain's per-context structures (the context
 * alone is over 2 KiB) left behind would exceed that. Resident memory
 * rises by some 10 MiB over the first hundred contexts and then stays (the
 * C library caches the driver threads' stacks and arenas): it is bounded
 * loosely, against growth by tens of KiB per context. */
Test(soak, contexts_created_and_destroyed, .timeout = 600) {
    float *xs = h_alloc_floats((size_t)POOL * B * IN), *ys = h_alloc_floats(POOL * B);
    make_batches(xs, ys);
    for (int i = 0; i < 10; i++) {
        vkt_context *ctx = h_vulkan();
        context_round(ctx, xs, ys, i);
        h_finish(ctx);
    }
    const int warm = 20, rounds = SANITIZED ? 40 : 200;
    sample start = {0};
    for (int i = 0; i < warm + rounds; i++) {
        if (i == warm)
            start = take(NULL);
        vkt_context *ctx = plain_vulkan();
        context_round(ctx, xs, ys, i);
        vkt_context_destroy(ctx);
    }
    char what[64];
    snprintf(what, sizeof what, "%d contexts created and destroyed", rounds);
    judge(what, start, take(NULL), (uint64_t)rounds << 10, 16 * RSS_SLACK);
    free(xs);
    free(ys);
}
