/* test_optimizer.c: the optimizer and clipping ops (SGD, Adam/AdamW,
 * SUM_SQUARES, CLIP_SCALE). Vulkan against the CPU reference over several
 * steps at awkward sizes, both against updates computed here in double
 * straight from the PyTorch formulas, plus the shape rules.
 *
 * Steps are driven like the compiled graph drives them: the node is fixed,
 * and before each step the host rewrites the gradient and the hyper buffer
 * (lr, bias corrections 1 - beta^t, t, gradient scale). */
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
TestSuite(optimizer, .init = setup, .fini = teardown, .timeout = 600);

#define STEPS 5

/* The hyper buffer of step t (1-based) as the host writes it: bias
 * corrections in double, then rounded once. lr decays so that a kernel
 * reading a stale or wrong slot is caught. */
static void hyper_fill(float h[VKT_HYPER_COUNT], int t, double lr, double beta1, double beta2,
                       float grad_scale) {
    memset(h, 0, VKT_HYPER_COUNT * sizeof(float));
    h[VKT_HYPER_LR] = (float)lr;
    h[VKT_HYPER_BIAS1] = (float)(1.0 - pow(beta1, t));
    h[VKT_HYPER_BIAS2] = (float)(1.0 - pow(beta2, t));
    h[VKT_HYPER_STEP] = (float)t;
    h[VKT_HYPER_GRAD_SCALE] = grad_scale;
}

static double step_lr(double base, int t) { return base * (1.0 - 0.1 * (t - 1)); }

// ---- A node with its buffers on one backend

typedef struct opt_run {
    vkt_context *ctx;
    vkt_node node;
    h_value grad, hyper, out[VKT_NODE_MAX_OUT];
    uint32_t nout;
} opt_run;

/* out0[o] is the initial content of output o (param, then state). */
static void opt_run_init(opt_run *r, vkt_context *ctx, vkt_op op, vkt_op_params params,
                         vkt_shape shape, const float *const *out0) {
    const vkt_op_def *def = vkt_op_get(op);
    cr_assert_not_null(def);
    memset(r, 0, sizeof *r);
    r->ctx = ctx;
    r->nout = def->nout;
    h_value_alloc(ctx, &r->grad, shape);
    h_value_alloc(ctx, &r->hyper, h_shape1(VKT_HYPER_COUNT));
    r->node = (vkt_node){.op = op, .name = def->name, .nin = 2, .nout = def->nout, .p = params,
                         .in = {&r->grad.value, &r->hyper.value}};
    for (uint32_t o = 0; o < r->nout; o++) {
        h_value_alloc(ctx, &r->out[o], shape);
        h_value_upload(ctx, &r->out[o], out0[o]);
        r->node.out[o] = &r->out[o].value;
    }
    vkt_shape inferred[VKT_NODE_MAX_OUT];
    char err[256] = "";
    cr_assert_eq(def->infer(&r->node, inferred, err, sizeof err), VKT_OK, "%s", err);
    for (uint32_t o = 0; o < r->nout; o++)
        cr_assert(vkt_shape_equal(&inferred[o], &shape), "output %u shape", o);
}

static void opt_run_step(opt_run *r, const float *grad, const float hyper[VKT_HYPER_COUNT]) {
    h_value_upload(r->ctx, &r->grad, grad);
    h_value_upload(r->ctx, &r->hyper, hyper);
    h_run(r->ctx, &r->node);
}

static void opt_run_free(opt_run *r) {
    h_value_free(r->ctx, &r->grad);
    h_value_free(r->ctx, &r->hyper);
    for (uint32_t o = 0; o < r->nout; o++)
        h_value_free(r->ctx, &r->out[o]);
}

// ---- Vulkan against the CPU reference

typedef struct multi_case {
    vkt_op op;
    vkt_op_params params;
    double lr, beta1, beta2; /* betas only feed the hyper buffer */
    float grad_scale;
    double atol, rtol;
} multi_case;

/* Initial state: param and m anywhere, v non-negative (it is a mean of
 * squares), SGD's buffer random (step 1 must ignore it). */
static void initial_outputs(vkt_op op, size_t n, uint64_t seed, float *out0[3]) {
    h_random(out0[0], n, seed + 1, -1.0f, 1.0f);
    h_random(out0[1], n, seed + 2, -0.1f, 0.1f);
    if (op == VKT_OP_ADAM)
        h_random(out0[2], n, seed + 3, 0.0f, 0.01f);
}

static void compare_multi_step(const multi_case *c, vkt_shape shape, uint64_t seed) {
    size_t n = (size_t)vkt_shape_numel(&shape);
    float *out0[3], *grad = h_alloc_floats(n), *got = h_alloc_floats(n), *want = h_alloc_floats(n);
    for (int o = 0; o < 3; o++)
        out0[o] = h_alloc_floats(n);
    initial_outputs(c->op, n, seed, out0);
    opt_run g, r;
    opt_run_init(&g, gpu, c->op, c->params, shape, (const float *const *)out0);
    opt_run_init(&r, cpu, c->op, c->params, shape, (const float *const *)out0);
    for (int t = 1; t <= STEPS; t++) {
        float hyper[VKT_HYPER_COUNT];
        hyper_fill(hyper, t, step_lr(c->lr, t), c->beta1, c->beta2, c->grad_scale);
        h_random(grad, n, seed * 131 + (uint64_t)t, -1.0f, 1.0f);
        opt_run_step(&g, grad, hyper);
        opt_run_step(&r, grad, hyper);
        for (uint32_t o = 0; o < g.nout; o++) {
            h_value_download(gpu, &g.out[o], got);
            h_value_download(cpu, &r.out[o], want);
            char what[128], s[64];
            snprintf(what, sizeof what, "%s %s step %d output %u", g.node.name,
                     vkt_shape_format(&shape, s, sizeof s), t, o);
            h_assert_close(got, want, n, c->atol, c->rtol, what);
        }
    }
    opt_run_free(&g);
    opt_run_free(&r);
    for (int o = 0; o < 3; o++)
        free(out0[o]);
    free(grad);
    free(got);
    free(want);
}

static const vkt_shape *awkward_shapes(size_t *count) {
    static vkt_shape shapes[5];
    shapes[0] = h_shape1(1);
    shapes[1] = h_shape1(7);
    shapes[2] = h_shape2(3, 11);
    shapes[3] = h_shape1(1000);
    shapes[4] = h_shape4(2, 3, 5, 7);
    *count = 5;
    return shapes;
}

static void compare_all_shapes(const multi_case *c) {
    size_t count;
    const vkt_shape *shapes = awkward_shapes(&count);
    for (size_t s = 0; s < count; s++)
        compare_multi_step(c, shapes[s], 1000 + s);
}

/* A few float roundings apart at most (the GPU may fuse multiply-adds); a
 * wrong term moves values by at least lr * 1e-3. */
#define GPU_ATOL 1e-6
#define GPU_RTOL 1e-5

Test(optimizer, sgd_gpu_matches_cpu) {
    const vkt_op_params variants[] = {
        {.sgd = {0}},
        {.sgd = {.momentum = 0.9f}},
        {.sgd = {.momentum = 0.9f, .dampening = 0.25f}},
        {.sgd = {.momentum = 0.8f, .nesterov = true}},
        {.sgd = {.momentum = 0.9f, .dampening = 0.1f, .weight_decay = 0.05f, .nesterov = true}},
        {.sgd = {.weight_decay = 0.1f}},
    };
    for (size_t v = 0; v < sizeof variants / sizeof variants[0]; v++)
        compare_all_shapes(&(multi_case){VKT_OP_SGD, variants[v], 0.1, 0.9, 0.999, 1.0f,
                                         GPU_ATOL, GPU_RTOL});
}

Test(optimizer, adam_gpu_matches_cpu) {
    const vkt_op_params variants[] = {
        {.adam = {.beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f}},
        {.adam = {.beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.1f}},
        {.adam = {.beta1 = 0.8f, .beta2 = 0.99f, .eps = 1e-3f, .weight_decay = 0.1f,
                  .decoupled = true}},
    };
    for (size_t v = 0; v < sizeof variants / sizeof variants[0]; v++)
        compare_all_shapes(&(multi_case){VKT_OP_ADAM, variants[v], 1e-2, variants[v].adam.beta1,
                                         variants[v].adam.beta2, 1.0f, GPU_ATOL, GPU_RTOL});
}

Test(optimizer, grad_scale_gpu_matches_cpu) {
    compare_all_shapes(&(multi_case){VKT_OP_SGD, {.sgd = {.momentum = 0.9f, .weight_decay = 0.01f}},
                                     0.1, 0.9, 0.999, 0.3f, GPU_ATOL, GPU_RTOL});
    compare_all_shapes(&(multi_case){VKT_OP_ADAM,
                                     {.adam = {.beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f}},
                                     1e-2, 0.9, 0.999, 0.3f, GPU_ATOL, GPU_RTOL});
}

// ---- Against updates computed in double from the formulas

/* Three parameters with gradients of fixed sign per element, so no state
 * passes near zero and a relative bound is meaningful. */
#define HN 3
static const float hand_p0[HN] = {0.5f, -1.25f, 2.0f};
static const float hand_grads[STEPS][HN] = {
    {0.1f, -0.3f, 0.7f}, {0.2f, -0.1f, 0.5f}, {0.05f, -0.4f, 0.9f},
    {0.3f, -0.2f, 0.6f}, {0.15f, -0.35f, 0.8f},
};
#define HAND_RTOL 1e-6

/* reference: https://pytorch.org/docs/stable/generated/torch.optim.SGD.html */
static void sgd_double(double *p, double *buf, const float *grad, int t, double lr, double scale,
                       double momentum, double dampening, double wd, bool nesterov) {
    for (int i = 0; i < HN; i++) {
        double g = (double)grad[i] * scale + wd * p[i];
        if (momentum != 0.0) {
            buf[i] = t == 1 ? g : momentum * buf[i] + (1.0 - dampening) * g;
            g = nesterov ? g + momentum * buf[i] : buf[i];
        }
        p[i] -= lr * g;
    }
}

/* reference: https://pytorch.org/docs/stable/generated/torch.optim.Adam.html
 * reference: https://pytorch.org/docs/stable/generated/torch.optim.AdamW.html */
static void adam_double(double *p, double *m, double *v, const float *grad, int t, double lr,
                        double scale, double beta1, double beta2, double eps, double wd,
                        bool decoupled) {
    for (int i = 0; i < HN; i++) {
        double g = (double)grad[i] * scale;
        if (decoupled)
            p[i] *= 1.0 - lr * wd;
        else
            g += wd * p[i];
        m[i] = beta1 * m[i] + (1.0 - beta1) * g;
        v[i] = beta2 * v[i] + (1.0 - beta2) * g * g;
        double mhat = m[i] / (1.0 - pow(beta1, t)), vhat = v[i] / (1.0 - pow(beta2, t));
        p[i] -= lr * mhat / (sqrt(vhat) + eps);
    }
}

static void assert_rel(const float *got, const double *want, size_t n, double rtol,
                       const char *what) {
    float wantf[HN];
    for (size_t i = 0; i < n; i++)
        wantf[i] = (float)want[i];
    h_assert_close(got, wantf, n, 0.0, rtol, what);
}

/* Runs HN parameters through STEPS steps on both backends and checks every
 * output after every step against the double model. */
typedef struct hand_case {
    vkt_op op;
    vkt_op_params params;
    double lr;
    float grad_scale;
} hand_case;

static void hand_check(const hand_case *c) {
    bool adam = c->op == VKT_OP_ADAM;
    /* the double model uses the betas as the float the kernel receives
     * (0.999f, not 0.999): the test is of the kernel, not of rounding */
    double beta1 = adam ? c->params.adam.beta1 : 0.9, beta2 = adam ? c->params.adam.beta2 : 0.999;
    vkt_context *ctxs[2] = {cpu, gpu};
    for (int b = 0; b < 2; b++) {
        float buf0[HN] = {7.0f, -7.0f, 7.0f}; /* SGD must ignore it on step 1 */
        float zeros[HN] = {0};
        const float *out0[3] = {hand_p0, adam ? zeros : buf0, zeros};
        opt_run run;
        opt_run_init(&run, ctxs[b], c->op, c->params, h_shape1(HN), out0);
        double p[HN], s1[HN] = {0}, s2[HN] = {0};
        for (int i = 0; i < HN; i++)
            p[i] = hand_p0[i];
        for (int t = 1; t <= STEPS; t++) {
            double lr = step_lr(c->lr, t);
            float hyper[VKT_HYPER_COUNT];
            hyper_fill(hyper, t, lr, beta1, beta2, c->grad_scale);
            opt_run_step(&run, hand_grads[t - 1], hyper);
            if (adam)
                adam_double(p, s1, s2, hand_grads[t - 1], t, lr, c->grad_scale, beta1, beta2,
                            c->params.adam.eps, c->params.adam.weight_decay,
                            c->params.adam.decoupled);
            else
                sgd_double(p, s1, hand_grads[t - 1], t, lr, c->grad_scale, c->params.sgd.momentum,
                           c->params.sgd.dampening, c->params.sgd.weight_decay,
                           c->params.sgd.nesterov);
            const double *want[3] = {p, s1, s2};
            for (uint32_t o = 0; o < run.nout; o++) {
                float got[HN];
                h_value_download(ctxs[b], &run.out[o], got);
                char what[96];
                snprintf(what, sizeof what, "%s on %s, step %d, output %u", run.node.name,
                         b ? "Vulkan" : "CPU", t, o);
                if (!adam && o == 1 && c->params.sgd.momentum == 0.0f)
                    cr_assert(memcmp(got, buf0, sizeof got) == 0,
                              "%s: momentum buffer changed without momentum", what);
                else
                    assert_rel(got, want[o], HN, HAND_RTOL, what);
            }
        }
        opt_run_free(&run);
    }
}

Test(optimizer, sgd_plain_by_hand) {
    hand_check(&(hand_case){VKT_OP_SGD, {.sgd = {0}}, 0.1, 1.0f});
}

Test(optimizer, sgd_momentum_by_hand) {
    hand_check(&(hand_case){VKT_OP_SGD, {.sgd = {.momentum = 0.9f}}, 0.1, 1.0f});
}

Test(optimizer, sgd_dampening_by_hand) {
    hand_check(&(hand_case){VKT_OP_SGD, {.sgd = {.momentum = 0.9f, .dampening = 0.3f}}, 0.1,
                            1.0f});
}

Test(optimizer, sgd_nesterov_by_hand) {
    hand_check(&(hand_case){VKT_OP_SGD, {.sgd = {.momentum = 0.8f, .nesterov = true}}, 0.1, 1.0f});
}

Test(optimizer, sgd_weight_decay_by_hand) {
    hand_check(&(hand_case){VKT_OP_SGD, {.sgd = {.weight_decay = 0.1f}}, 0.1, 1.0f});
    hand_check(&(hand_case){VKT_OP_SGD, {.sgd = {.momentum = 0.9f, .weight_decay = 0.1f}}, 0.1,
                            1.0f});
}

Test(optimizer, adam_by_hand) {
    hand_check(&(hand_case){VKT_OP_ADAM, {.adam = {.beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f}},
                            1e-2, 1.0f});
    /* a large eps makes its place in the denominator matter */
    hand_check(&(hand_case){VKT_OP_ADAM, {.adam = {.beta1 = 0.8f, .beta2 = 0.99f, .eps = 1e-2f}},
                            1e-2, 1.0f});
}

Test(optimizer, adam_weight_decay_by_hand) {
    hand_check(&(hand_case){VKT_OP_ADAM,
                            {.adam = {.beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f,
                                      .weight_decay = 0.1f}},
                            1e-2, 1.0f});
}

Test(optimizer, adamw_by_hand) {
    hand_check(&(hand_case){VKT_OP_ADAM,
                            {.adam = {.beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f,
                                      .weight_decay = 0.1f, .decoupled = true}},
                            1e-2, 1.0f});
}

Test(optimizer, grad_scale_by_hand) {
    hand_check(&(hand_case){VKT_OP_SGD, {.sgd = {.momentum = 0.9f, .weight_decay = 0.1f}}, 0.1,
                            0.37f});
    hand_check(&(hand_case){VKT_OP_ADAM,
                            {.adam = {.beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-2f,
                                      .weight_decay = 0.1f}},
                            1e-2, 0.37f});
}

/* One Adam step of HN parameters on `ctx`; returns the new parameters. */
static void adam_one_step(vkt_context *ctx, vkt_op_params params, const float *grad,
                          float grad_scale, float out[HN]) {
    float zeros[HN] = {0};
    const float *out0[3] = {hand_p0, zeros, zeros};
    opt_run run;
    opt_run_init(&run, ctx, VKT_OP_ADAM, params, h_shape1(HN), out0);
    float hyper[VKT_HYPER_COUNT];
    hyper_fill(hyper, 1, 1e-2, params.adam.beta1, params.adam.beta2, grad_scale);
    opt_run_step(&run, grad, hyper);
    h_value_download(ctx, &run.out[0], out);
    opt_run_free(&run);
}

/* Adam folds the decay into the gradient (so it is normalised away by v);
 * AdamW shrinks the parameter by lr * wd directly. Without decay the two
 * are the same computation, bit for bit. */
Test(optimizer, adam_and_adamw_decay_differently) {
    vkt_context *ctxs[2] = {cpu, gpu};
    for (int b = 0; b < 2; b++) {
        vkt_op_params adam = {.adam = {.beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f}};
        vkt_op_params adamw = adam;
        adamw.adam.decoupled = true;
        float a[HN], w[HN];
        adam_one_step(ctxs[b], adam, hand_grads[0], 1.0f, a);
        adam_one_step(ctxs[b], adamw, hand_grads[0], 1.0f, w);
        cr_assert(memcmp(a, w, sizeof a) == 0, "Adam and AdamW differ without weight decay");

        adam.adam.weight_decay = adamw.adam.weight_decay = 0.5f;
        adam_one_step(ctxs[b], adam, hand_grads[0], 1.0f, a);
        adam_one_step(ctxs[b], adamw, hand_grads[0], 1.0f, w);
        for (int i = 0; i < HN; i++) {
            /* step 1 moves by lr * sign(g) (eps aside); AdamW also by lr*wd*p */
            double g = hand_grads[0][i], p0 = hand_p0[i];
            double want_adam = p0 - 1e-2 * (g + 0.5 * p0 > 0 ? 1 : -1);
            double want_adamw = p0 * (1.0 - 1e-2 * 0.5) - 1e-2 * (g > 0 ? 1 : -1);
            cr_assert(fabs(a[i] - want_adam) < 1e-6, "Adam element %d: %.9g, want %.9g", i, a[i],
                      want_adam);
            cr_assert(fabs(w[i] - want_adamw) < 1e-6, "AdamW element %d: %.9g, want %.9g", i,
                      w[i], want_adamw);
            cr_assert(fabs(a[i] - w[i]) > 1e-3, "element %d: Adam and AdamW agree", i);
        }
    }
}

/* A power-of-two scale is exact, so scaling in the kernel must give the very
 * bits of scaling the gradient beforehand. */
Test(optimizer, grad_scale_equals_prescaled_gradient) {
    vkt_context *ctxs[2] = {cpu, gpu};
    vkt_op_params params = {.adam = {.beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-3f,
                                     .weight_decay = 0.1f}};
    for (int b = 0; b < 2; b++) {
        float half[HN], scaled[HN], prescaled[HN];
        for (int i = 0; i < HN; i++)
            half[i] = hand_grads[0][i] * 0.5f;
        adam_one_step(ctxs[b], params, hand_grads[0], 0.5f, scaled);
        adam_one_step(ctxs[b], params, half, 1.0f, prescaled);
        cr_assert(memcmp(scaled, prescaled, sizeof scaled) == 0,
                  "grad scale 0.5 differs from a halved gradient");
        float unscaled[HN];
        adam_one_step(ctxs[b], params, hand_grads[0], 1.0f, unscaled);
        cr_assert(memcmp(scaled, unscaled, sizeof scaled) != 0, "grad scale had no effect");
    }
}

// ---- SUM_SQUARES

static float run_sum_squares(vkt_context *ctx, const float *g, size_t n, bool accumulate,
                             float acc0) {
    h_value hg, hacc;
    h_value_alloc(ctx, &hg, h_shape1((int64_t)n));
    h_value_alloc(ctx, &hacc, h_shape1(1));
    h_value_upload(ctx, &hg, g);
    h_value_upload(ctx, &hacc, &acc0);
    vkt_node node = {.op = VKT_OP_SUM_SQUARES, .name = "sum_squares", .nin = 1, .nout = 1,
                     .in = {&hg.value}, .out = {&hacc.value},
                     .p = {.reduce = {.accumulate = accumulate}}};
    h_run(ctx, &node);
    float acc;
    h_value_download(ctx, &hacc, &acc);
    h_value_free(ctx, &hg);
    h_value_free(ctx, &hacc);
    return acc;
}

Test(optimizer, sum_squares_against_double) {
    const size_t sizes[] = {1, 7, 1000, 100000};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        size_t n = sizes[s];
        float *g = h_alloc_floats(n);
        h_random(g, n, 77 + n, -2.0f, 2.0f);
        double want = 0.0;
        for (size_t i = 0; i < n; i++)
            want += (double)g[i] * g[i];
        for (int accumulate = 0; accumulate < 2; accumulate++) {
            /* without accumulate the old content must be ignored */
            float acc0 = accumulate ? 3.25f : 1234.5f;
            float got_gpu = run_sum_squares(gpu, g, n, accumulate, acc0);
            float got_cpu = run_sum_squares(cpu, g, n, accumulate, acc0);
            char what[96];
            snprintf(what, sizeof what, "sum_squares of %zu%s", n,
                     accumulate ? " accumulated" : "");
            float wantf = (float)(want + (accumulate ? acc0 : 0.0));
            h_assert_close(&got_gpu, &wantf, 1, 0.0, 2e-6, what);
            h_assert_close(&got_cpu, &wantf, 1, 0.0, 1e-7, what);
        }
        free(g);
    }
}

Test(optimizer, sum_squares_deterministic) {
    size_t n = 100000;
    float *g = h_alloc_floats(n);
    h_random(g, n, 5, -1.0f, 1.0f);
    float first = run_sum_squares(gpu, g, n, false, 0.0f);
    for (int run = 0; run < 3; run++) {
        float again = run_sum_squares(gpu, g, n, false, 0.0f);
        cr_assert(memcmp(&first, &again, sizeof first) == 0, "run %d: %.9g then %.9g", run,
                  first, again);
    }
    free(g);
}

// ---- CLIP_SCALE, alone and in the chain the compiler builds

/* Writes hyper with distinct values, runs CLIP_SCALE on sumsq, checks that
 * only GRAD_SCALE changed, and returns it. */
static float run_clip(vkt_context *ctx, float sumsq, float max_norm) {
    h_value hs, hh;
    h_value_alloc(ctx, &hs, h_shape1(1));
    h_value_alloc(ctx, &hh, h_shape1(VKT_HYPER_COUNT));
    float hyper[VKT_HYPER_COUNT], after[VKT_HYPER_COUNT];
    for (int i = 0; i < VKT_HYPER_COUNT; i++)
        hyper[i] = 10.0f + (float)i;
    h_value_upload(ctx, &hs, &sumsq);
    h_value_upload(ctx, &hh, hyper);
    vkt_node node = {.op = VKT_OP_CLIP_SCALE, .name = "clip_scale", .nin = 1, .nout = 1,
                     .in = {&hs.value}, .out = {&hh.value}, .p = {.clip = {max_norm}}};
    h_run(ctx, &node);
    h_value_download(ctx, &hh, after);
    for (int i = 0; i < VKT_HYPER_COUNT; i++)
        if (i != VKT_HYPER_GRAD_SCALE)
            cr_assert(after[i] == hyper[i], "clip_scale overwrote hyper[%d]", i);
    h_value_free(ctx, &hs);
    h_value_free(ctx, &hh);
    return after[VKT_HYPER_GRAD_SCALE];
}

Test(optimizer, clip_scale_above_and_below) {
    vkt_context *ctxs[2] = {cpu, gpu};
    for (int b = 0; b < 2; b++) {
        /* norm 4 > 1: scale 1 / (4 + 1e-6) */
        float above = run_clip(ctxs[b], 16.0f, 1.0f);
        cr_assert(fabs(above - 1.0 / (4.0 + 1e-6)) <= 1e-7, "above: %.9g", above);
        /* norm 0.5 < 1: no clipping */
        cr_assert(run_clip(ctxs[b], 0.25f, 1.0f) == 1.0f, "below");
        /* norm exactly max_norm: the 1e-6 keeps the factor just under 1 */
        float at = run_clip(ctxs[b], 9.0f, 3.0f);
        cr_assert(at < 1.0f && at > 1.0f - 1e-6f, "at: %.9g", at);
        /* all-zero gradients: max_norm / 1e-6, clamped to 1 */
        cr_assert(run_clip(ctxs[b], 0.0f, 0.5f) == 1.0f, "zero");
        /* an overflowed norm zeroes the gradients, a NaN one stays NaN */
        cr_assert(run_clip(ctxs[b], INFINITY, 1.0f) == 0.0f, "inf");
        cr_assert(isnan(run_clip(ctxs[b], NAN, 1.0f)), "nan");
    }
}

/* Two gradients -> SUM_SQUARES, SUM_SQUARES (accumulate) -> CLIP_SCALE ->
 * one SGD node per parameter, all in one submit, as the compiled graph
 * runs them: the barriers between the nodes and the device-written scale
 * are what is under test. */
Test(optimizer, clip_then_sgd_chain) {
    const size_t n1 = 1000, n2 = 33;
    const float max_norm = 2.0f, lr = 0.1f;
    vkt_context *ctxs[2] = {cpu, gpu};
    float *g1 = h_alloc_floats(n1), *g2 = h_alloc_floats(n2);
    float *p1 = h_alloc_floats(n1), *p2 = h_alloc_floats(n2);
    h_random(g1, n1, 11, -1.0f, 1.0f);
    h_random(g2, n2, 12, -1.0f, 1.0f);
    h_random(p1, n1, 13, -1.0f, 1.0f);
    h_random(p2, n2, 14, -1.0f, 1.0f);
    double sumsq = 0.0;
    for (size_t i = 0; i < n1; i++)
        sumsq += (double)g1[i] * g1[i];
    for (size_t i = 0; i < n2; i++)
        sumsq += (double)g2[i] * g2[i];
    double scale = fmin(1.0, max_norm / (sqrt(sumsq) + 1e-6));
    cr_assert(scale < 0.5, "test data must actually clip (scale %g)", scale);

    for (int b = 0; b < 2; b++) {
        vkt_context *ctx = ctxs[b];
        h_value hg1, hg2, hp1, hp2, hb1, hb2, hacc, hh;
        h_value_alloc(ctx, &hg1, h_shape1((int64_t)n1));
        h_value_alloc(ctx, &hp1, h_shape1((int64_t)n1));
        h_value_alloc(ctx, &hb1, h_shape1((int64_t)n1));
        h_value_alloc(ctx, &hg2, h_shape2(3, 11));
        h_value_alloc(ctx, &hp2, h_shape2(3, 11));
        h_value_alloc(ctx, &hb2, h_shape2(3, 11));
        h_value_alloc(ctx, &hacc, h_shape1(1));
        h_value_alloc(ctx, &hh, h_shape1(VKT_HYPER_COUNT));
        float hyper[VKT_HYPER_COUNT];
        hyper_fill(hyper, 1, lr, 0.9, 0.999, 1.0f);
        h_value_upload(ctx, &hg1, g1);
        h_value_upload(ctx, &hg2, g2);
        h_value_upload(ctx, &hp1, p1);
        h_value_upload(ctx, &hp2, p2);
        h_value_upload(ctx, &hh, hyper);
        vkt_op_params sgd = {.sgd = {0}};
        vkt_node nodes[5] = {
            {.op = VKT_OP_SUM_SQUARES, .name = "ss1", .nin = 1, .nout = 1, .in = {&hg1.value},
             .out = {&hacc.value}, .p = {.reduce = {.accumulate = false}}},
            {.op = VKT_OP_SUM_SQUARES, .name = "ss2", .nin = 1, .nout = 1, .in = {&hg2.value},
             .out = {&hacc.value}, .p = {.reduce = {.accumulate = true}}},
            {.op = VKT_OP_CLIP_SCALE, .name = "clip", .nin = 1, .nout = 1, .in = {&hacc.value},
             .out = {&hh.value}, .p = {.clip = {max_norm}}},
            {.op = VKT_OP_SGD, .name = "sgd1", .nin = 2, .nout = 2,
             .in = {&hg1.value, &hh.value}, .out = {&hp1.value, &hb1.value}, .p = sgd},
            {.op = VKT_OP_SGD, .name = "sgd2", .nin = 2, .nout = 2,
             .in = {&hg2.value, &hh.value}, .out = {&hp2.value, &hb2.value}, .p = sgd},
        };
        const vkt_node *list[5] = {&nodes[0], &nodes[1], &nodes[2], &nodes[3], &nodes[4]};
        cr_assert_eq(ctx->ops->run(ctx, list, 5), VKT_OK, "%s", vkt_context_last_error(ctx));

        float *got1 = h_alloc_floats(n1), *want1 = h_alloc_floats(n1);
        float got2[33], want2[33];
        h_value_download(ctx, &hp1, got1);
        h_value_download(ctx, &hp2, got2);
        for (size_t i = 0; i < n1; i++)
            want1[i] = (float)(p1[i] - (double)lr * g1[i] * scale);
        for (size_t i = 0; i < n2; i++)
            want2[i] = (float)(p2[i] - (double)lr * g2[i] * scale);
        const char *backend = b ? "Vulkan" : "CPU";
        h_assert_close(got1, want1, n1, 1e-7, 1e-6, backend);
        h_assert_close(got2, want2, n2, 1e-7, 1e-6, backend);
        free(got1);
        free(want1);
        h_value *all[8] = {&hg1, &hg2, &hp1, &hp2, &hb1, &hb2, &hacc, &hh};
        for (int i = 0; i < 8; i++)
            h_value_free(ctx, all[i]);
    }
    free(g1);
    free(g2);
    free(p1);
    free(p2);
}

// ---- Shape rules

/* Runs the op's shape rule on values that carry only shapes; returns the
 * result and leaves the message in err. */
static vkt_result infer(vkt_op op, const vkt_shape *ins, uint32_t nin, const vkt_shape *outs,
                        uint32_t nout, char *err, size_t size) {
    const vkt_op_def *def = vkt_op_get(op);
    vkt_value values[VKT_NODE_MAX_IN + VKT_NODE_MAX_OUT];
    vkt_node node = {.op = op, .name = def->name, .nin = nin, .nout = nout};
    for (uint32_t i = 0; i < nin; i++) {
        values[i] = (vkt_value){.shape = ins[i]};
        node.in[i] = &values[i];
    }
    for (uint32_t o = 0; o < nout; o++) {
        values[nin + o] = (vkt_value){.shape = outs[o]};
        node.out[o] = &values[nin + o];
    }
    vkt_shape inferred[VKT_NODE_MAX_OUT];
    err[0] = '\0';
    return def->infer(&node, inferred, err, size);
}

static void expect_shape_error(vkt_op op, const vkt_shape *ins, uint32_t nin,
                               const vkt_shape *outs, uint32_t nout, const char *operand) {
    char err[256];
    vkt_result r = infer(op, ins, nin, outs, nout, err, sizeof err);
    cr_assert_eq(r, VKT_ERROR_SHAPE, "%s: expected a shape error naming %s", vkt_op_get(op)->name,
                 operand);
    cr_assert(strncmp(err, operand, strlen(operand)) == 0 && err[strlen(operand)] == ' ',
              "message should start with '%s': %s", operand, err);
}

Test(optimizer, shape_rules_name_the_operand) {
    vkt_shape p = h_shape2(3, 4), other = h_shape2(4, 3), hyper = h_shape1(VKT_HYPER_COUNT);
    vkt_shape short_hyper = h_shape1(VKT_HYPER_COUNT - 1), one = h_shape1(1);
    char err[256];

    cr_assert_eq(infer(VKT_OP_SGD, (vkt_shape[]){p, hyper}, 2, (vkt_shape[]){p, p}, 2, err, 256),
                 VKT_OK, "%s", err);
    expect_shape_error(VKT_OP_SGD, (vkt_shape[]){other, hyper}, 2, (vkt_shape[]){p, p}, 2, "grad");
    expect_shape_error(VKT_OP_SGD, (vkt_shape[]){p, short_hyper}, 2, (vkt_shape[]){p, p}, 2,
                       "hyper");
    expect_shape_error(VKT_OP_SGD, (vkt_shape[]){p, h_shape2(1, 8)}, 2, (vkt_shape[]){p, p}, 2,
                       "hyper");
    expect_shape_error(VKT_OP_SGD, (vkt_shape[]){p, hyper}, 2, (vkt_shape[]){p, other}, 2,
                       "momentum_buf");

    cr_assert_eq(infer(VKT_OP_ADAM, (vkt_shape[]){p, hyper}, 2, (vkt_shape[]){p, p, p}, 3, err,
                       256),
                 VKT_OK, "%s", err);
    expect_shape_error(VKT_OP_ADAM, (vkt_shape[]){other, hyper}, 2, (vkt_shape[]){p, p, p}, 3,
                       "grad");
    expect_shape_error(VKT_OP_ADAM, (vkt_shape[]){p, short_hyper}, 2, (vkt_shape[]){p, p, p}, 3,
                       "hyper");
    expect_shape_error(VKT_OP_ADAM, (vkt_shape[]){p, hyper}, 2, (vkt_shape[]){p, other, p}, 3,
                       "m");
    expect_shape_error(VKT_OP_ADAM, (vkt_shape[]){p, hyper}, 2, (vkt_shape[]){p, p, other}, 3,
                       "v");
    expect_shape_error(VKT_OP_ADAM, (vkt_shape[]){p, hyper}, 2, (vkt_shape[]){{0}, p, p}, 3,
                       "param");

    cr_assert_eq(infer(VKT_OP_SUM_SQUARES, &p, 1, (vkt_shape[]){{0}}, 1, err, 256), VKT_OK);
    cr_assert_eq(infer(VKT_OP_SUM_SQUARES, &p, 1, &one, 1, err, 256), VKT_OK);
    expect_shape_error(VKT_OP_SUM_SQUARES, &p, 1, (vkt_shape[]){h_shape1(2)}, 1, "acc");

    cr_assert_eq(infer(VKT_OP_CLIP_SCALE, &one, 1, &hyper, 1, err, 256), VKT_OK, "%s", err);
    expect_shape_error(VKT_OP_CLIP_SCALE, (vkt_shape[]){h_shape1(2)}, 1, &hyper, 1, "sumsq");
    expect_shape_error(VKT_OP_CLIP_SCALE, &one, 1, &short_hyper, 1, "hyper");
}
