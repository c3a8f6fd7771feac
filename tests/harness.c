/* harness.c: see harness.h. */
#include "harness.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SENTINEL 1234.5f

static void log_to_stderr(vkt_log_level level, const char *message, void *user) {
    (void)user;
    if (level >= VKT_LOG_WARNING)
        fprintf(stderr, "vktrain: %s\n", message);
}

vkt_context *h_vulkan(void) {
    vkt_context *ctx = NULL;
    vkt_result r = vkt_context_create(
        &(vkt_context_desc){.backend = VKT_BACKEND_VULKAN, .validation = true,
                            .log = log_to_stderr},
        &ctx);
    cr_assert_eq(r, VKT_OK, "Vulkan context: %s", vkt_last_error());
    return ctx;
}

vkt_context *h_cpu(void) {
    vkt_context *ctx = NULL;
    vkt_result r = vkt_context_create(
        &(vkt_context_desc){.backend = VKT_BACKEND_CPU, .log = log_to_stderr}, &ctx);
    cr_assert_eq(r, VKT_OK, "CPU context: %s", vkt_last_error());
    return ctx;
}

void h_finish(vkt_context *ctx) {
    uint64_t messages = vkt_context_validation_messages(ctx);
    vkt_context_destroy(ctx);
    cr_assert_eq(messages, 0, "%llu validation message(s), see stderr",
                 (unsigned long long)messages);
}

vkt_shape h_shape1(int64_t a) { return (vkt_shape){.ndim = 1, .dims = {a}}; }
vkt_shape h_shape2(int64_t a, int64_t b) { return (vkt_shape){.ndim = 2, .dims = {a, b}}; }
vkt_shape h_shape4(int64_t a, int64_t b, int64_t c, int64_t d) {
    return (vkt_shape){.ndim = 4, .dims = {a, b, c, d}};
}

float *h_alloc_floats(size_t n) {
    float *p = malloc((n ? n : 1) * sizeof(float));
    cr_assert_not_null(p);
    return p;
}

void h_value_alloc(vkt_context *ctx, h_value *hv, vkt_shape shape) {
    memset(hv, 0, sizeof *hv);
    hv->numel = (size_t)vkt_shape_numel(&shape);
    size_t total = hv->numel + 2 * H_GUARD;
    cr_assert_eq(vkt_memory_alloc(ctx, total * sizeof(float), &hv->full), VKT_OK, "%s",
                 vkt_context_last_error(ctx));
    hv->value.shape = shape;
    hv->value.view = (vkt_view){hv->full.block, hv->full.offset + H_GUARD * sizeof(float),
                                hv->numel * sizeof(float)};
    float *init = h_alloc_floats(total);
    for (size_t i = 0; i < total; i++)
        init[i] = SENTINEL;
    cr_assert_eq(ctx->ops->write(ctx, &hv->full, init, total * sizeof(float)), VKT_OK);
    free(init);
}

void h_value_free(vkt_context *ctx, h_value *hv) { vkt_memory_free(ctx, &hv->full); }

void h_value_upload(vkt_context *ctx, h_value *hv, const float *data) {
    cr_assert_eq(ctx->ops->write(ctx, &hv->value.view, data, hv->numel * sizeof(float)), VKT_OK,
                 "%s", vkt_context_last_error(ctx));
}

void h_value_download(vkt_context *ctx, const h_value *hv, float *out) {
    size_t total = hv->numel + 2 * H_GUARD;
    float *all = h_alloc_floats(total);
    cr_assert_eq(ctx->ops->read(ctx, &hv->full, all, total * sizeof(float)), VKT_OK, "%s",
                 vkt_context_last_error(ctx));
    for (size_t i = 0; i < H_GUARD; i++) {
        cr_assert(all[i] == SENTINEL, "guard word %zu before the data was overwritten (%g)",
                  H_GUARD - i, all[i]);
        cr_assert(all[H_GUARD + hv->numel + i] == SENTINEL,
                  "guard word %zu after the data was overwritten (%g)", i,
                  all[H_GUARD + hv->numel + i]);
    }
    memcpy(out, all + H_GUARD, hv->numel * sizeof(float));
    free(all);
}

void h_run(vkt_context *ctx, const vkt_node *node) {
    const vkt_node *nodes[1] = {node};
    cr_assert_eq(ctx->ops->run(ctx, nodes, 1), VKT_OK, "%s", vkt_context_last_error(ctx));
}

/* splitmix64: tiny, seedable, good enough for test data. */
static uint64_t next_random(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void h_random(float *out, size_t n, uint64_t seed, float lo, float hi) {
    uint64_t state = seed;
    for (size_t i = 0; i < n; i++)
        out[i] = lo + (hi - lo) * (float)((next_random(&state) >> 40) * (1.0 / 16777216.0));
}

void h_assert_close(const float *got, const float *want, size_t n, double atol, double rtol,
                    const char *what) {
    size_t worst = 0;
    double worst_excess = -INFINITY, err_sq = 0.0, ref_sq = 0.0;
    for (size_t i = 0; i < n; i++) {
        double g = got[i], w = want[i];
        double err = fabs(g - w);
        if (isnan(g) != isnan(w) || isinf(g) != isinf(w))
            err = INFINITY;
        double excess = err - (atol + rtol * fabs(w));
        if (excess > worst_excess || isnan(excess)) {
            worst_excess = isnan(excess) ? INFINITY : excess;
            worst = i;
        }
        err_sq += (g - w) * (g - w);
        ref_sq += w * w;
    }
    double nmse = ref_sq > 0 ? err_sq / ref_sq : err_sq;
    cr_assert(n == 0 || worst_excess <= 0.0,
              "%s: element %zu of %zu is %.9g, expected %.9g (atol %g, rtol %g); NMSE %.3g",
              what, worst, n, got[worst], want[worst], atol, rtol, nmse);
}

void h_compare_op(vkt_context *gpu, vkt_context *cpu, const h_op_case *c) {
    const vkt_op_def *def = vkt_op_get(c->op);
    cr_assert_not_null(def, "op %d is not in the op table", (int)c->op);
    vkt_node node = {.op = c->op, .p = c->params, .nin = c->nin, .nout = c->nout,
                     .name = def->name};
    vkt_value shape_only[VKT_NODE_MAX_IN + VKT_NODE_MAX_OUT];
    for (uint32_t i = 0; i < c->nin; i++) {
        shape_only[i] = (vkt_value){.shape = c->in_shapes[i]};
        node.in[i] = &shape_only[i];
    }
    vkt_shape out_shapes[VKT_NODE_MAX_OUT];
    for (uint32_t o = 0; o < c->nout; o++) {
        shape_only[c->nin + o] = (vkt_value){.shape = c->out_shapes[o]};
        node.out[o] = &shape_only[c->nin + o];
    }
    char err[256] = "";
    cr_assert_eq(def->infer(&node, out_shapes, err, sizeof err), VKT_OK, "%s: %s", def->name, err);
    for (uint32_t o = 0; o < c->nout; o++)
        if (c->out_shapes[o].ndim)
            out_shapes[o] = c->out_shapes[o];

    vkt_context *ctxs[2] = {cpu, gpu};
    h_value values[2][VKT_NODE_MAX_IN + VKT_NODE_MAX_OUT];
    float *results[2][VKT_NODE_MAX_OUT];
    for (int b = 0; b < 2; b++) {
        vkt_node run = node;
        for (uint32_t i = 0; i < c->nin + c->nout; i++) {
            bool is_in = i < c->nin;
            vkt_shape s = is_in ? c->in_shapes[i] : out_shapes[i - c->nin];
            h_value_alloc(ctxs[b], &values[b][i], s);
            float *data = h_alloc_floats(values[b][i].numel);
            if (is_in && c->inputs[i])
                memcpy(data, c->inputs[i], values[b][i].numel * sizeof(float));
            else
                h_random(data, values[b][i].numel, c->seed * 31 + i, c->lo, c->hi);
            h_value_upload(ctxs[b], &values[b][i], data);
            free(data);
            if (is_in)
                run.in[i] = &values[b][i].value;
            else
                run.out[i - c->nin] = &values[b][i].value;
        }
        h_run(ctxs[b], &run);
        for (uint32_t o = 0; o < c->nout; o++) {
            results[b][o] = h_alloc_floats(values[b][c->nin + o].numel);
            h_value_download(ctxs[b], &values[b][c->nin + o], results[b][o]);
        }
        for (uint32_t i = 0; i < c->nin + c->nout; i++)
            h_value_free(ctxs[b], &values[b][i]);
    }
    for (uint32_t o = 0; o < c->nout; o++) {
        char what[160], s[64];
        snprintf(what, sizeof what, "%s output %u %s", def->name, o,
                 vkt_shape_format(&out_shapes[o], s, sizeof s));
        h_assert_close(results[1][o], results[0][o], (size_t)vkt_shape_numel(&out_shapes[o]),
                       c->atol, c->rtol, what);
        free(results[0][o]);
        free(results[1][o]);
    }
}

void h_numeric_grad(vkt_context *cpu, const vkt_node *node, uint32_t in_index,
                    uint32_t out_index, const float *w, double eps, double *grad) {
    float *x = vkt_view_host(&node->in[in_index]->view);
    const float *y = vkt_view_host(&node->out[out_index]->view);
    size_t n = (size_t)vkt_shape_numel(&node->in[in_index]->shape);
    size_t m = (size_t)vkt_shape_numel(&node->out[out_index]->shape);
    for (size_t i = 0; i < n; i++) {
        float saved = x[i];
        double objective[2];
        for (int side = 0; side < 2; side++) {
            x[i] = (float)(saved + (side ? -eps : eps));
            h_run(cpu, node);
            double sum = 0.0;
            for (size_t j = 0; j < m; j++)
                sum += (double)w[j] * y[j];
            objective[side] = sum;
        }
        x[i] = saved;
        /* eps should be exact in float at x's magnitude (a power of two or
         * a value on a coarse grid) for the quotient to be the slope */
        grad[i] = (objective[0] - objective[1]) / (2.0 * eps);
    }
    h_run(cpu, node);
}

/* Under AddressSanitizer, LeakSanitizer inspects the heap as each test
 * process exits and names every leak by the modules on its stack. The
 * Vulkan loader unloads the driver (lavapipe, with LLVM) and the validation
 * layer when their last instance goes, so their leaks would then show as
 * "<unknown module>", which no suppression in tests/lsan.supp can match.
 * Keeping both mapped for the life of the process keeps every frame named,
 * so the suppressions can name the driver's and the layer's own code and
 * nothing else. RTLD_LOCAL: none of their symbols is interposed. */
#if defined(__SANITIZE_ADDRESS__)
#include <dlfcn.h>
__attribute__((constructor)) static void keep_vulkan_libraries_mapped(void) {
    static const char *const libraries[] = {"libvulkan_lvp.so",
                                            "libVkLayer_khronos_validation.so"};
    for (size_t i = 0; i < sizeof libraries / sizeof *libraries; i++)
        dlopen(libraries[i], RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE); /* absent: nothing to keep */
}
#endif

#define POOL_SIZE 12
static h_value pool[POOL_SIZE];
static uint32_t pool_count;

h_value *h_pool_value(vkt_context *ctx, vkt_shape shape, uint64_t seed, float lo, float hi) {
    cr_assert_lt(pool_count, POOL_SIZE, "more than %d values in one check", POOL_SIZE);
    h_value *v = &pool[pool_count++];
    h_value_alloc(ctx, v, shape);
    float *data = h_alloc_floats(v->numel);
    h_random(data, v->numel, seed, lo, hi);
    h_value_upload(ctx, v, data);
    free(data);
    return v;
}

void h_pool_release(vkt_context *ctx) {
    while (pool_count)
        h_value_free(ctx, &pool[--pool_count]);
}

void h_node_run_make(h_node_run *r, vkt_context *ctx, vkt_op op, vkt_op_params p, uint32_t nin,
                     const vkt_shape *in_shapes, const float *const *inputs) {
    const vkt_op_def *def = vkt_op_get(op);
    memset(r, 0, sizeof *r);
    r->node = (vkt_node){.op = op, .name = def->name, .nin = nin, .nout = def->nout, .p = p};
    for (uint32_t i = 0; i < nin; i++) {
        h_value_alloc(ctx, &r->v[i], in_shapes[i]);
        h_value_upload(ctx, &r->v[i], inputs[i]);
        r->node.in[i] = &r->v[i].value;
    }
    vkt_shape out_shapes[VKT_NODE_MAX_OUT];
    char err[256] = "";
    cr_assert_eq(def->infer(&r->node, out_shapes, err, sizeof err), VKT_OK, "%s", err);
    for (uint32_t o = 0; o < def->nout; o++) {
        h_value_alloc(ctx, &r->v[nin + o], out_shapes[o]);
        r->node.out[o] = &r->v[nin + o].value;
    }
}

float *h_node_run_output(h_node_run *r, vkt_context *ctx, uint32_t o) {
    h_value *hv = &r->v[r->node.nin + o];
    float *out = h_alloc_floats(hv->numel);
    h_value_download(ctx, hv, out);
    return out;
}

void h_node_run_free(h_node_run *r, vkt_context *ctx) {
    for (uint32_t i = 0; i < r->node.nin + r->node.nout; i++)
        h_value_free(ctx, &r->v[i]);
}
