/* vkt-validate: can this machine's backends be trusted to train?
 *
 * On every Vulkan device (or the one --device names), and on the fast CPU
 * backend (VKT_BACKEND_CPU_FAST: OpenBLAS or its built-in sgemm, float
 * kernels; --device cpu-fast for it alone), it runs every op of the
 * op table (forward and backward kernels, losses, optimizers, convolution,
 * pooling) at awkward shapes (sizes of 1, primes, just past a power of two,
 * every transpose) against the CPU reference backend on the same inputs, and
 * prints per case the largest absolute error, the largest relative error
 * where the reference is not next to zero (above 10 atol), the NMSE
 * (sum (g - r)^2 / sum r^2) and PASS or FAIL: every element must satisfy
 * |g - r| <= atol + rtol |r| (bounds per op: exact for single fp32
 * operations, proportional to the length of a sum for reductions, a little
 * looser for transcendental functions). Outputs are surrounded by guard words;
 * a kernel that writes past either end fails. Then it runs one training step
 * of the Fashion-MNIST MLP (784-256-128-10, ReLU, Adam, softmax cross-entropy)
 * in check mode (vkt_model_check): every node of the recorded step against
 * the reference.
 *
 * The exit status is 0 only if everything passed. VKT_TEST_PERTURB=<kernel>
 * (a test hook of the runtime; on CPU fast it names an op) makes that kernel
 * deliberately wrong, to show that this tool notices. VKT_BACKEND is
 * ignored: the tool picks each backend itself, and the reference must be
 * the reference.
 *
 * It builds op-table nodes through the runtime's internal headers: the ops
 * have no public entry points of their own.
 *
 * usage: vkt-validate [--device INDEX|NAME|cpu-fast] [--json] [--quiet]
 */
#include "../runtime/ops/op.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GUARD 64
#define SENTINEL 1234.5f
#define MAX_CASES 256

/* How a value's initial contents are made. */
typedef enum gen {
    GEN_UNIFORM = 0, /* [-1, 1) */
    GEN_UNIT,        /* [0, 1): targets, probabilities */
    GEN_POSITIVE,    /* [0.1, 1): Adam's second moment */
    GEN_LABELS,      /* class indices 0..C-1, C from the first input's last dimension */
    GEN_HYPER,       /* a valid per-step hyperparameter buffer */
    GEN_WIDE,        /* [-4, 4): activations beyond their linear range */
} gen;

typedef struct vcase {
    vkt_op op;
    vkt_op_params p;
    uint32_t nin, nout;
    vkt_shape in[VKT_NODE_MAX_IN];
    vkt_shape out[VKT_NODE_MAX_OUT]; /* ndim 0: from the op's shape rule */
    gen in_gen[VKT_NODE_MAX_IN];
    gen out_gen[VKT_NODE_MAX_OUT];
    double atol, rtol;
    char note[48];
} vcase;

typedef struct vresult {
    double max_abs, max_rel, nmse;
    bool pass;
    char detail[96];
} vresult;

static vcase cases[MAX_CASES];
static int case_count;
static bool json, quiet;

/* ---- cases ---- */

static vcase *add(vkt_op op, uint32_t nin, uint32_t nout) {
    if (case_count == MAX_CASES) {
        fprintf(stderr, "vkt-validate: too many cases\n");
        exit(2);
    }
    vcase *c = &cases[case_count++];
    *c = (vcase){.op = op, .nin = nin, .nout = nout, .atol = 1e-6, .rtol = 1e-5};
    return c;
}

static vkt_shape s1(int64_t a) { return (vkt_shape){1, {a}}; }
static vkt_shape s2(int64_t a, int64_t b) { return (vkt_shape){2, {a, b}}; }
static vkt_shape s4(int64_t a, int64_t b, int64_t c, int64_t d) {
    return (vkt_shape){4, {a, b, c, d}};
}

static const vkt_shape flat_shapes[] = {{1, {1}}, {1, {7}}, {2, {33, 129}}, {4, {2, 3, 5, 7}},
                                        {1, {1000}}};
#define FLAT_COUNT (sizeof flat_shapes / sizeof flat_shapes[0])
static const vkt_shape row_shapes[] = {{2, {1, 1}}, {2, {7, 33}}, {2, {129, 10}}, {2, {3, 1000}}};
#define ROW_COUNT (sizeof row_shapes / sizeof row_shapes[0])

static void matmul_cases(void) {
    const int64_t mnk[][3] = {{1, 1, 1},    {7, 33, 129},  {129, 7, 33},
                              {34, 70, 23}, {128, 256, 784}, {10, 128, 130}};
    for (size_t s = 0; s < sizeof mnk / sizeof mnk[0]; s++) {
        int64_t M = mnk[s][0], N = mnk[s][1], K = mnk[s][2];
        for (int t = 0; t < 4; t++) {
            bool ta = t & 1, tb = t & 2;
            for (int bias = 0; bias < 2; bias++) {
                if (bias && s % 2) /* the fused op on half the shapes */
                    continue;
                vcase *c = add(bias ? VKT_OP_MATMUL_BIAS : VKT_OP_MATMUL, bias ? 3 : 2, 1);
                c->p.matmul.transpose_a = ta;
                c->p.matmul.transpose_b = tb;
                c->p.matmul.accumulate = s == 3;
                c->p.matmul.relu = bias && t % 2 == 0;
                c->in[0] = ta ? s2(K, M) : s2(M, K);
                c->in[1] = tb ? s2(N, K) : s2(K, N);
                c->in[2] = s1(N);
                c->atol = 2e-6 * (double)K;
                snprintf(c->note, sizeof c->note, "%s%s%s%s", ta ? "A^T " : "", tb ? "B^T " : "",
                         s == 3 ? "accumulate " : "", c->p.matmul.relu ? "relu" : "");
            }
        }
    }
}

static void pointwise_cases(void) {
    static const struct {
        vkt_op op;
        uint32_t nin;
        gen g;
        double atol, rtol;
    } ops[] = {
        {VKT_OP_ADD, 2, GEN_UNIFORM, 0, 0},      {VKT_OP_SUB, 2, GEN_UNIFORM, 0, 0},
        {VKT_OP_MUL, 2, GEN_UNIFORM, 0, 0},      {VKT_OP_SCALE, 1, GEN_UNIFORM, 0, 0},
        {VKT_OP_RELU, 1, GEN_UNIFORM, 0, 0},     {VKT_OP_RELU_BWD, 2, GEN_UNIFORM, 0, 0},
        {VKT_OP_LEAKY_RELU, 1, GEN_UNIFORM, 0, 0}, {VKT_OP_LEAKY_RELU_BWD, 2, GEN_UNIFORM, 0, 0},
        {VKT_OP_SIGMOID, 1, GEN_WIDE, 1e-6, 1e-5}, {VKT_OP_SIGMOID_BWD, 2, GEN_UNIFORM, 1e-6, 1e-5},
        {VKT_OP_TANH, 1, GEN_WIDE, 1e-6, 1e-5},  {VKT_OP_TANH_BWD, 2, GEN_UNIFORM, 1e-6, 1e-5},
        {VKT_OP_GELU, 1, GEN_WIDE, 1e-6, 1e-5},  {VKT_OP_GELU_BWD, 2, GEN_WIDE, 1e-6, 1e-5},
    };
    for (size_t o = 0; o < sizeof ops / sizeof ops[0]; o++) {
        for (size_t s = 0; s < FLAT_COUNT; s++) {
            vcase *c = add(ops[o].op, ops[o].nin, 1);
            for (uint32_t i = 0; i < ops[o].nin; i++) {
                c->in[i] = flat_shapes[s];
                c->in_gen[i] = ops[o].g;
            }
            c->atol = ops[o].atol;
            c->rtol = ops[o].rtol;
            if (ops[o].op == VKT_OP_SCALE)
                c->p.scalar.value = -2.5f;
            if (ops[o].op == VKT_OP_LEAKY_RELU || ops[o].op == VKT_OP_LEAKY_RELU_BWD)
                c->p.leaky_relu.slope = 0.01f;
        }
    }
    for (size_t s = 0; s < FLAT_COUNT; s++) {
        vcase *c = add(VKT_OP_FILL, 0, 1);
        c->out[0] = flat_shapes[s];
        c->p.scalar.value = 0.75f;
    }
    for (size_t s = 0; s < FLAT_COUNT; s++) {
        for (int fwd = 0; fwd < 2; fwd++) {
            vcase *c = add(fwd ? VKT_OP_DROPOUT : VKT_OP_DROPOUT_BWD, 2, 1);
            c->in[0] = flat_shapes[s];
            c->in[1] = s1(VKT_HYPER_COUNT);
            c->in_gen[1] = GEN_HYPER;
            c->p.dropout.rate = 0.3f;
            c->p.dropout.seed = 42;
        }
    }
}

static void row_cases(void) {
    for (size_t s = 0; s < ROW_COUNT; s++) {
        vkt_shape x = row_shapes[s];
        int64_t R = x.dims[0], C = x.dims[1];
        vcase *c = add(VKT_OP_BIAS_ADD, 2, 1);
        c->in[0] = x;
        c->in[1] = s1(C);
        c->atol = c->rtol = 0;
        for (int accumulate = 0; accumulate < 2; accumulate++) {
            c = add(VKT_OP_COLUMN_SUM, 1, 1);
            c->in[0] = x;
            c->p.reduce.accumulate = accumulate;
            c->atol = 1e-6 * (double)R;
        }
        c = add(VKT_OP_SOFTMAX, 1, 1);
        c->in[0] = x;
        c->in_gen[0] = GEN_WIDE;
        c = add(VKT_OP_SOFTMAX_BWD, 2, 1);
        c->in[0] = c->in[1] = x;
        c->in_gen[1] = GEN_UNIT;
        c->atol = 1e-6 * (double)C;
        c = add(VKT_OP_SOFTMAX_CE, 2, 3);
        c->in[0] = x;
        c->in[1] = s1(R);
        c->in_gen[0] = GEN_WIDE;
        c->in_gen[1] = GEN_LABELS;
        c->atol = 1e-6 * (double)C;
        c = add(VKT_OP_MSE, 2, 3);
        c->in[0] = c->in[1] = x;
        c->atol = 1e-6 * (double)(R * C > 1000 ? 1000 : R * C);
        c = add(VKT_OP_BCE_LOGITS, 2, 3);
        c->in[0] = c->in[1] = x;
        c->in_gen[0] = GEN_WIDE;
        c->in_gen[1] = GEN_UNIT;
        c->atol = 1e-6 * (double)(R * C > 1000 ? 1000 : R * C);
    }
}

static int64_t conv_out(int64_t in, int64_t k, int64_t stride, int64_t pad) {
    return (in + 2 * pad - k) / stride + 1;
}

static void conv_pool_cases(void) {
    static const struct {
        int64_t B, C, H, W, K, R, stride, pad;
    } convs[] = {{2, 3, 7, 9, 5, 3, 1, 1}, {1, 1, 28, 28, 4, 3, 1, 1}, {3, 2, 9, 6, 3, 3, 2, 0},
                 {2, 5, 5, 5, 7, 1, 1, 0}};
    for (size_t i = 0; i < sizeof convs / sizeof convs[0]; i++) {
        int64_t B = convs[i].B, C = convs[i].C, H = convs[i].H, W = convs[i].W;
        int64_t K = convs[i].K, R = convs[i].R, st = convs[i].stride, pad = convs[i].pad;
        int64_t Ho = conv_out(H, R, st, pad), Wo = conv_out(W, R, st, pad);
        vkt_op_params p = {.conv = {(uint32_t)st, (uint32_t)pad, (uint32_t)R, (uint32_t)R,
                                    (uint32_t)H, (uint32_t)W}};
        double sum_len = (double)(C * R * R);
        vcase *c = add(VKT_OP_CONV2D, 3, 1);
        c->p = p;
        c->in[0] = s4(B, C, H, W);
        c->in[1] = s4(K, C, R, R);
        c->in[2] = s1(K);
        c->atol = 2e-6 * sum_len;
        snprintf(c->note, sizeof c->note, "stride %lld pad %lld", (long long)st, (long long)pad);
        c = add(VKT_OP_CONV2D_BWD_INPUT, 2, 1);
        c->p = p;
        c->in[0] = s4(B, K, Ho, Wo);
        c->in[1] = s4(K, C, R, R);
        c->atol = 2e-6 * (double)(K * R * R);
        snprintf(c->note, sizeof c->note, "stride %lld pad %lld", (long long)st, (long long)pad);
        c = add(VKT_OP_CONV2D_BWD_WEIGHT, 2, 1);
        c->p = p;
        c->in[0] = s4(B, K, Ho, Wo);
        c->in[1] = s4(B, C, H, W);
        c->atol = 2e-6 * (double)(B * Ho * Wo);
        snprintf(c->note, sizeof c->note, "stride %lld pad %lld", (long long)st, (long long)pad);
        c = add(VKT_OP_CONV2D_BWD_BIAS, 1, 1);
        c->in[0] = s4(B, K, Ho, Wo);
        c->atol = 2e-6 * (double)(B * Ho * Wo);
    }
    static const struct {
        int64_t B, C, H, W;
        uint32_t k, stride;
    } pools[] = {{2, 3, 7, 9, 2, 2}, {1, 2, 28, 28, 2, 2}, {2, 3, 9, 8, 3, 2}, {1, 1, 5, 5, 3, 1}};
    for (size_t i = 0; i < sizeof pools / sizeof pools[0]; i++) {
        int64_t B = pools[i].B, C = pools[i].C, H = pools[i].H, W = pools[i].W;
        uint32_t k = pools[i].k, st = pools[i].stride;
        int64_t Ho = (H - k) / st + 1, Wo = (W - k) / st + 1;
        vkt_op_params p = {.pool = {k, st, (uint32_t)H, (uint32_t)W}};
        for (int avg = 0; avg < 2; avg++) {
            vcase *c = add(avg ? VKT_OP_AVGPOOL2D : VKT_OP_MAXPOOL2D, 1, 1);
            c->p = p;
            c->in[0] = s4(B, C, H, W);
            snprintf(c->note, sizeof c->note, "kernel %u stride %u", k, st);
            c = add(avg ? VKT_OP_AVGPOOL2D_BWD : VKT_OP_MAXPOOL2D_BWD, avg ? 1 : 2, 1);
            c->p = p;
            c->in[0] = s4(B, C, Ho, Wo);
            c->in[1] = s4(B, C, H, W);
            if (avg)
                c->out[0] = s4(B, C, H, W);
            snprintf(c->note, sizeof c->note, "kernel %u stride %u", k, st);
        }
    }
}

static void optimizer_cases(void) {
    for (size_t s = 0; s < FLAT_COUNT; s++) {
        vkt_shape x = flat_shapes[s];
        for (int variant = 0; variant < 2; variant++) {
            vcase *c = add(VKT_OP_SGD, 2, 2);
            c->p.sgd.momentum = variant ? 0.9f : 0.0f;
            c->p.sgd.weight_decay = variant ? 1e-4f : 0.0f;
            c->p.sgd.nesterov = variant == 1;
            c->in[0] = c->out[0] = c->out[1] = x;
            c->in[1] = s1(VKT_HYPER_COUNT);
            c->in_gen[1] = GEN_HYPER;
            snprintf(c->note, sizeof c->note, "%s", variant ? "momentum nesterov decay" : "plain");
            c = add(VKT_OP_ADAM, 2, 3);
            c->p.adam.beta1 = 0.9f;
            c->p.adam.beta2 = 0.999f;
            c->p.adam.eps = 1e-8f;
            c->p.adam.weight_decay = variant ? 1e-2f : 0.0f;
            c->p.adam.decoupled = variant == 1;
            c->in[0] = c->out[0] = c->out[1] = c->out[2] = x;
            c->in[1] = s1(VKT_HYPER_COUNT);
            c->in_gen[1] = GEN_HYPER;
            c->out_gen[2] = GEN_POSITIVE;
            snprintf(c->note, sizeof c->note, "%s", variant ? "AdamW" : "Adam");
        }
        vcase *c = add(VKT_OP_SUM_SQUARES, 1, 1);
        c->in[0] = x;
        c->out[0] = s1(1);
        c->p.reduce.accumulate = s % 2;
        c->atol = 1e-6 * (double)vkt_shape_numel(&x);
    }
    for (int big = 0; big < 2; big++) {
        vcase *c = add(VKT_OP_CLIP_SCALE, 1, 1);
        c->in[0] = s1(1);
        c->in_gen[0] = GEN_POSITIVE;
        c->out[0] = s1(VKT_HYPER_COUNT);
        c->out_gen[0] = GEN_HYPER;
        c->p.clip.max_norm = big ? 100.0f : 0.5f;
    }
}

/* ---- running one case ---- */

static uint64_t rng_state;
static float next_unit(void) {
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return (float)(((z ^ (z >> 31)) >> 40) * (1.0 / 16777216.0));
}

static void generate(float *out, size_t n, gen g, const vcase *c) {
    for (size_t i = 0; i < n; i++) {
        float u = next_unit();
        switch (g) {
        case GEN_UNIT: out[i] = u; break;
        case GEN_POSITIVE: out[i] = 0.1f + 0.9f * u; break;
        case GEN_WIDE: out[i] = 8.0f * u - 4.0f; break;
        case GEN_LABELS: {
            int64_t classes = c->in[0].dims[c->in[0].ndim - 1];
            out[i] = (float)((int64_t)(u * (float)classes) % classes);
            break;
        }
        case GEN_HYPER: out[i] = 0.0f; break;
        default: out[i] = 2.0f * u - 1.0f; break;
        }
    }
    if (g == GEN_HYPER && n >= VKT_HYPER_COUNT) {
        out[VKT_HYPER_LR] = 1e-2f;
        out[VKT_HYPER_BIAS1] = 1.0f - 0.9f * 0.9f * 0.9f;
        out[VKT_HYPER_BIAS2] = 1.0f - 0.999f * 0.999f * 0.999f;
        out[VKT_HYPER_STEP] = 3.0f;
        out[VKT_HYPER_GRAD_SCALE] = 0.5f;
    }
}

typedef struct guarded {
    vkt_view full;
    vkt_value value;
    size_t numel;
} guarded;

static vkt_result guarded_alloc(vkt_context *ctx, guarded *g, vkt_shape shape, const float *data) {
    g->numel = (size_t)vkt_shape_numel(&shape);
    size_t total = g->numel + 2 * GUARD;
    vkt_result r = vkt_memory_alloc(ctx, total * sizeof(float), &g->full);
    if (r != VKT_OK)
        return r;
    float *init = malloc(total * sizeof *init);
    if (!init)
        return VKT_ERROR_OUT_OF_HOST_MEMORY;
    for (size_t i = 0; i < total; i++)
        init[i] = i < GUARD || i >= GUARD + g->numel ? SENTINEL : data[i - GUARD];
    g->value.shape = shape;
    g->value.view = (vkt_view){g->full.block, g->full.offset + GUARD * sizeof(float),
                               g->numel * sizeof(float)};
    r = ctx->ops->write(ctx, &g->full, init, total * sizeof(float));
    free(init);
    return r;
}

/* Downloads the value; false if a guard word changed. */
static bool guarded_read(vkt_context *ctx, const guarded *g, float *out, vkt_result *r) {
    size_t total = g->numel + 2 * GUARD;
    float *all = malloc(total * sizeof *all);
    if (!all) {
        *r = VKT_ERROR_OUT_OF_HOST_MEMORY;
        return false;
    }
    *r = ctx->ops->read(ctx, &g->full, all, total * sizeof(float));
    bool intact = true;
    for (size_t i = 0; i < GUARD; i++)
        intact = intact && all[i] == SENTINEL && all[GUARD + g->numel + i] == SENTINEL;
    memcpy(out, all + GUARD, g->numel * sizeof(float));
    free(all);
    return intact;
}

static void compare(const float *got, const float *want, size_t n, const vcase *c,
                    vresult *res) {
    double err_sq = 0.0, ref_sq = 0.0;
    for (size_t i = 0; i < n; i++) {
        double g = got[i], w = want[i], err = fabs(g - w);
        if (isnan(g) != isnan(w) || isinf(g) != isinf(w))
            err = INFINITY;
        else if (isnan(g) || isinf(g))
            err = 0.0;
        if (err > res->max_abs)
            res->max_abs = err;
        /* relative error where the reference is not next to zero */
        double rel = err / fabs(w);
        if (fabs(w) > 10.0 * c->atol + 1e-12 && rel > res->max_rel)
            res->max_rel = rel;
        if (!(err <= c->atol + c->rtol * fabs(w)) && res->pass) {
            res->pass = false;
            snprintf(res->detail, sizeof res->detail, "element %zu is %.9g, expected %.9g", i, g,
                     w);
        }
        if (isfinite(err)) {
            err_sq += (g - w) * (g - w);
            ref_sq += w * w;
        }
    }
    double nmse = ref_sq > 0 ? err_sq / ref_sq : err_sq;
    if (nmse > res->nmse)
        res->nmse = nmse;
}

static vkt_result run_case(vkt_context *gpu, vkt_context *cpu, const vcase *c, uint64_t seed,
                           vresult *res) {
    *res = (vresult){.pass = true};
    const vkt_op_def *def = vkt_op_get(c->op);
    vkt_node node = {.op = c->op, .p = c->p, .nin = c->nin, .nout = c->nout, .name = def->name};
    vkt_value shape_only[VKT_NODE_MAX_IN + VKT_NODE_MAX_OUT];
    for (uint32_t i = 0; i < c->nin; i++) {
        shape_only[i] = (vkt_value){.shape = c->in[i]};
        node.in[i] = &shape_only[i];
    }
    for (uint32_t o = 0; o < c->nout; o++) {
        shape_only[c->nin + o] = (vkt_value){.shape = c->out[o]};
        node.out[o] = &shape_only[c->nin + o];
    }
    vkt_shape out_shapes[VKT_NODE_MAX_OUT];
    char err[256] = "";
    if (def->infer(&node, out_shapes, err, sizeof err) != VKT_OK) {
        res->pass = false;
        snprintf(res->detail, sizeof res->detail, "shape rule: %.80s", err);
        return VKT_OK;
    }
    for (uint32_t o = 0; o < c->nout; o++)
        if (c->out[o].ndim)
            out_shapes[o] = c->out[o];

    uint32_t total = c->nin + c->nout;
    float *data[VKT_NODE_MAX_IN + VKT_NODE_MAX_OUT] = {0};
    rng_state = seed;
    for (uint32_t i = 0; i < total; i++) {
        vkt_shape s = i < c->nin ? c->in[i] : out_shapes[i - c->nin];
        size_t n = (size_t)vkt_shape_numel(&s);
        data[i] = malloc((n ? n : 1) * sizeof(float));
        if (!data[i])
            return VKT_ERROR_OUT_OF_HOST_MEMORY;
        generate(data[i], n, i < c->nin ? c->in_gen[i] : c->out_gen[i - c->nin], c);
    }
    vkt_context *ctxs[2] = {cpu, gpu};
    guarded values[2][VKT_NODE_MAX_IN + VKT_NODE_MAX_OUT];
    float *outputs[2][VKT_NODE_MAX_OUT] = {{0}};
    vkt_result r = VKT_OK;
    for (int b = 0; b < 2 && r == VKT_OK; b++) {
        vkt_node run = node;
        uint32_t made = 0;
        for (uint32_t i = 0; i < total && r == VKT_OK; i++, made++) {
            vkt_shape s = i < c->nin ? c->in[i] : out_shapes[i - c->nin];
            r = guarded_alloc(ctxs[b], &values[b][i], s, data[i]);
            if (i < c->nin)
                run.in[i] = &values[b][i].value;
            else
                run.out[i - c->nin] = &values[b][i].value;
        }
        const vkt_node *list[1] = {&run};
        if (r == VKT_OK)
            r = ctxs[b]->ops->run(ctxs[b], list, 1);
        for (uint32_t o = 0; o < c->nout && r == VKT_OK; o++) {
            guarded *g = &values[b][c->nin + o];
            outputs[b][o] = malloc((g->numel ? g->numel : 1) * sizeof(float));
            if (!outputs[b][o]) {
                r = VKT_ERROR_OUT_OF_HOST_MEMORY;
                break;
            }
            if (!guarded_read(ctxs[b], g, outputs[b][o], &r) && r == VKT_OK && res->pass) {
                res->pass = false;
                snprintf(res->detail, sizeof res->detail,
                         "output %u: wrote past the end of its buffer", o);
            }
        }
        for (uint32_t i = 0; i < made; i++)
            vkt_memory_free(ctxs[b], &values[b][i].full);
    }
    for (uint32_t o = 0; o < c->nout && r == VKT_OK; o++)
        compare(outputs[1][o], outputs[0][o], (size_t)vkt_shape_numel(&out_shapes[o]), c, res);
    for (uint32_t o = 0; o < c->nout; o++) {
        free(outputs[0][o]);
        free(outputs[1][o]);
    }
    for (uint32_t i = 0; i < total; i++)
        free(data[i]);
    return r;
}

/* ---- the MLP step in check mode ---- */

static vkt_result mlp_check(vkt_context *ctx, vkt_check_report *report) {
    enum { B = 32 };
    vkt_graph *g;
    vkt_result r = vkt_graph_create(ctx, &(vkt_graph_desc){.seed = 3}, &g);
    if (r != VKT_OK)
        return r;
    vkt_var x = vkt_graph_input(g, "x", 2, (int64_t[]){B, 784});
    vkt_var y = vkt_graph_input(g, "labels", 1, (int64_t[]){B});
    vkt_var h = vkt_graph_relu(g, vkt_graph_linear(g, x, 256, "fc1"));
    h = vkt_graph_relu(g, vkt_graph_linear(g, h, 128, "fc2"));
    vkt_var loss = vkt_graph_softmax_cross_entropy(g, vkt_graph_linear(g, h, 10, "fc3"), y);
    vkt_model *m = NULL;
    r = vkt_graph_status(g);
    if (r == VKT_OK)
        r = vkt_model_create(g, &(vkt_model_desc){.loss = loss}, &m);
    vkt_graph_destroy(g);
    if (r != VKT_OK)
        return r;
    static float xs[B * 784], ys[B];
    rng_state = 11;
    for (size_t i = 0; i < B * 784; i++)
        xs[i] = next_unit();
    for (size_t i = 0; i < B; i++)
        ys[i] = (float)(i % 10);
    vkt_feed feeds[2] = {{x, xs, B * 784}, {y, ys, B}};
    /* a plain step first, so Adam's state is not all zeros in the check */
    r = vkt_model_step(m, feeds, 2, NULL);
    if (r == VKT_OK)
        r = vkt_model_check(m, feeds, 2, report);
    vkt_model_destroy(m);
    return r;
}

/* ---- output ---- */

static void shape_text(const vcase *c, char *buf, size_t size) {
    size_t len = 0;
    buf[0] = '\0';
    for (uint32_t i = 0; i < c->nin && len < size; i++) {
        char s[64];
        len += (size_t)snprintf(buf + len, size - len, "%s%s", i ? " " : "",
                                vkt_shape_format(&c->in[i], s, sizeof s));
    }
    if (!c->nin && len < size) {
        char s[64];
        len += (size_t)snprintf(buf + len, size - len, "-> %s",
                                vkt_shape_format(&c->out[0], s, sizeof s));
    }
    if (c->note[0] && len < size)
        snprintf(buf + len, size - len, " %s", c->note);
}

static void json_string(const char *s) {
    /* names and messages: printable ASCII, anything else dropped */
    putchar('"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            printf("\\%c", *s);
        else if ((unsigned char)*s >= 0x20)
            putchar(*s);
    }
    putchar('"');
}

static void json_number(double v) {
    if (isfinite(v))
        printf("%.6g", v);
    else
        printf("null");
}

/* Validates one backend: a Vulkan device (index is its decimal index) or
 * the fast CPU backend (index "cpu-fast"). Returns the number of failures. */
static int validate_device(const char *index, const char *name, vkt_context *cpu, bool first) {
    bool cpu_fast = strcmp(index, "cpu-fast") == 0;
    vkt_context *gpu;
    vkt_context_desc desc = {.backend = cpu_fast ? VKT_BACKEND_CPU_FAST : VKT_BACKEND_VULKAN,
                             .device = cpu_fast ? NULL : index};
    if (vkt_context_create(&desc, &gpu) != VKT_OK) {
        fprintf(stderr, "vkt-validate: device %s (%s): %s\n", index, name, vkt_last_error());
        if (json)
            printf("%s  {\"device\": \"%s\", \"error\": \"cannot create a context\"}", first ? "" : ",\n",
                   index);
        return 1;
    }
    int failures = 0, skipped = 0;
    FILE *out = json ? stderr : stdout;
    if (!quiet || !json)
        fprintf(out, "\ndevice %s: %s\n  %-18s %-44s %10s %10s %10s  %s\n", index, name, "op",
                "shapes", "max abs", "max rel", "NMSE", "result");
    if (json) {
        printf("%s  {\"device\": ", first ? "" : ",\n");
        json_string(name);
        /* the index is a device index; the CPU backend has none */
        if (cpu_fast)
            printf(", \"index\": null, \"backend\": \"cpu-fast\", \"cases\": [\n");
        else
            printf(", \"index\": %s, \"backend\": \"vulkan\", \"cases\": [\n", index);
    }
    bool covered[VKT_OP_COUNT] = {false};
    for (int i = 0; i < case_count; i++) {
        const vcase *c = &cases[i];
        covered[c->op] = true;
        vresult res;
        vkt_result r = run_case(gpu, cpu, c, 1000 + (uint64_t)i, &res);
        if (r != VKT_OK) {
            res.pass = false;
            snprintf(res.detail, sizeof res.detail, "%.90s", vkt_context_last_error(gpu));
        }
        failures += !res.pass;
        char shapes[128];
        shape_text(c, shapes, sizeof shapes);
        const char *op = vkt_op_get(c->op)->name;
        if (!quiet || !res.pass)
            fprintf(out, "  %-18s %-44.44s %10.3g %10.3g %10.3g  %s%s%s\n", op, shapes, res.max_abs,
                    res.max_rel, res.nmse, res.pass ? "PASS" : "FAIL",
                    res.detail[0] ? ": " : "", res.detail);
        if (json) {
            printf("    {\"op\": \"%s\", \"shapes\": ", op);
            json_string(shapes);
            printf(", \"max_abs\": ");
            json_number(res.max_abs);
            printf(", \"max_rel\": ");
            json_number(res.max_rel);
            printf(", \"nmse\": ");
            json_number(res.nmse);
            printf(", \"pass\": %s", res.pass ? "true" : "false");
            if (res.detail[0]) {
                printf(", \"detail\": ");
                json_string(res.detail);
            }
            printf("},\n");
        }
    }
    for (uint32_t op = 0; op < VKT_OP_COUNT; op++) {
        if (covered[op] || !vkt_op_get((vkt_op)op))
            continue;
        skipped++;
        fprintf(out, "  %-18s %-44s %10s %10s %10s  SKIP: no case in vkt-validate\n",
                vkt_op_get((vkt_op)op)->name, "", "", "", "");
    }
    vkt_check_report report = {0};
    vkt_result r = mlp_check(gpu, &report);
    bool model_pass = r == VKT_OK && report.failures == 0;
    failures += !model_pass;
    fprintf(out, "  %-18s %-44s %10s %10s %10s  %s", "training step", "MLP 784-256-128-10 b32 Adam",
            "", "", "", model_pass ? "PASS" : "FAIL");
    if (r != VKT_OK)
        fprintf(out, ": %s\n", vkt_context_last_error(gpu));
    else
        fprintf(out, " (%u nodes checked, %u differ)\n", report.nodes_checked, report.failures);
    for (uint32_t f = 0; f < report.failures && f < 32; f++)
        fprintf(out, "    node %-30s %-18s max abs %.3g, max rel %.3g\n", report.entries[f].node,
                report.entries[f].op, report.entries[f].max_abs_error,
                report.entries[f].max_rel_error);
    if (json) {
        printf("    {\"op\": \"training step\", \"shapes\": \"MLP 784-256-128-10 b32 Adam\", "
               "\"nodes_checked\": %u, \"nodes_failed\": %u, \"pass\": %s}\n  ], "
               "\"failures\": %d, \"skipped_ops\": %d}",
               report.nodes_checked, report.failures, model_pass ? "true" : "false", failures,
               skipped);
    }
    fprintf(out, "  %s: %d case(s) failed of %d, %d op(s) without a case\n", name, failures,
            case_count + 1, skipped);
    uint64_t messages = vkt_context_validation_messages(gpu);
    if (messages) {
        fprintf(out, "  %llu validation-layer message(s): FAIL\n", (unsigned long long)messages);
        failures++;
    }
    vkt_context_destroy(gpu);
    return failures;
}

static void usage(void) {
    fprintf(stderr, "usage: vkt-validate [--device INDEX|NAME|cpu-fast] [--json] [--quiet]\n");
}

/* Validates the Vulkan devices that `device` selects (all when NULL);
 * counts them in *validated. A machine without Vulkan has none to check. */
static int validate_vulkan(const char *device, vkt_context *cpu, int *validated) {
    uint32_t n = 0;
    if (vkt_device_list(&n, NULL, NULL) != VKT_OK || n == 0) {
        fprintf(stderr, "vkt-validate: no Vulkan device: %s\n", vkt_last_error());
        return 0;
    }
    vkt_device_info *infos = calloc(n, sizeof *infos);
    if (!infos || vkt_device_list(&n, infos, NULL) != VKT_OK) {
        fprintf(stderr, "vkt-validate: listing devices: %s\n", vkt_last_error());
        free(infos);
        return 1;
    }
    int failures = 0;
    for (uint32_t i = 0; i < n; i++) {
        char index[16];
        snprintf(index, sizeof index, "%u", i);
        if (device && strcmp(device, index) != 0 && !strstr(infos[i].name, device))
            continue;
        if (!infos[i].suitable) {
            fprintf(stderr, "vkt-validate: device %u (%s) skipped: %s\n", i, infos[i].name,
                    infos[i].unsuitable_reason);
            continue;
        }
        failures += validate_device(index, infos[i].name, cpu, *validated == 0);
        (*validated)++;
    }
    free(infos);
    return failures;
}

int main(int argc, char **argv) {
    const char *device = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            json = true;
        else if (strcmp(argv[i], "--quiet") == 0)
            quiet = true;
        else if (strcmp(argv[i], "--device") == 0 && i + 1 < argc)
            device = argv[++i];
        else {
            usage();
            return 2;
        }
    }
    matmul_cases();
    pointwise_cases();
    row_cases();
    conv_pool_cases();
    optimizer_cases();

    /* Each backend is chosen here; an environment override would turn the
     * reference (or the devices) into something else. The model check's
     * own reference context (vkt_model_check) must not be redirected
     * either. */
    unsetenv("VKT_BACKEND");
    vkt_context *cpu;
    if (vkt_context_create(&(vkt_context_desc){.backend = VKT_BACKEND_CPU}, &cpu) != VKT_OK) {
        fprintf(stderr, "vkt-validate: CPU reference: %s\n", vkt_last_error());
        return 1;
    }
    if (json)
        printf("{\"devices\": [\n");
    int failures = 0, validated = 0;
    bool only_cpu_fast = device && strcmp(device, "cpu-fast") == 0;
    if (!only_cpu_fast)
        failures += validate_vulkan(device, cpu, &validated);
    /* The fast CPU backend is what a machine without a device trains on. */
    if (!device || only_cpu_fast) {
        vkt_context *fast;
        vkt_context_info info = {.device_name = "CPU fast"};
        if (vkt_context_create(&(vkt_context_desc){.backend = VKT_BACKEND_CPU_FAST}, &fast) ==
            VKT_OK) {
            vkt_context_query(fast, &info);
            vkt_context_destroy(fast);
        }
        failures += validate_device("cpu-fast", info.device_name, cpu, validated == 0);
        validated++;
    }
    if (json)
        printf("\n], \"failures\": %d, \"pass\": %s}\n", failures,
               failures == 0 && validated > 0 ? "true" : "false");
    if (!validated) {
        fprintf(stderr, "vkt-validate: no device matches%s%s\n", device ? " " : "",
                device ? device : "");
        failures++;
    }
    vkt_context_destroy(cpu);
    fprintf(json ? stderr : stdout, "\nvkt-validate: %s\n", failures ? "FAIL" : "PASS");
    return failures ? 1 : 0;
}
