/* test_train.c: a small MLP trained by vktrain against an independent
 * reference written here in plain double-precision C (forward, backward,
 * torch.optim.Adam / AdamW update rules), on both backends. */
#include "harness.h"

#include <math.h>
#include <string.h>

enum { B = 6, IN = 5, HID = 8, OUT = 3, STEPS = 4 };

typedef struct ref_mlp {
    double w1[HID][IN], b1[HID], w2[OUT][HID], b2[OUT];
} ref_mlp;

typedef struct ref_adam {
    ref_mlp m, v;
} ref_adam;

/* One reference step: returns the loss before the update. */
static double ref_step(ref_mlp *p, ref_adam *st, const float *x, const float *labels, int t,
                       double lr, double wd, bool decoupled) {
    double h[B][HID], a[B][HID], z[B][OUT], loss = 0.0;
    ref_mlp g;
    memset(&g, 0, sizeof g);
    for (int b = 0; b < B; b++) {
        for (int j = 0; j < HID; j++) {
            h[b][j] = p->b1[j];
            for (int i = 0; i < IN; i++)
                h[b][j] += p->w1[j][i] * x[b * IN + i];
            a[b][j] = h[b][j] > 0 ? h[b][j] : 0;
        }
        double mx = -INFINITY, sum = 0.0;
        for (int k = 0; k < OUT; k++) {
            z[b][k] = p->b2[k];
            for (int j = 0; j < HID; j++)
                z[b][k] += p->w2[k][j] * a[b][j];
            mx = fmax(mx, z[b][k]);
        }
        for (int k = 0; k < OUT; k++)
            sum += exp(z[b][k] - mx);
        int y = (int)labels[b];
        loss += -(z[b][y] - mx - log(sum)) / B;
        double dz[OUT], da[HID] = {0};
        for (int k = 0; k < OUT; k++)
            dz[k] = (exp(z[b][k] - mx) / sum - (k == y)) / B;
        for (int k = 0; k < OUT; k++) {
            g.b2[k] += dz[k];
            for (int j = 0; j < HID; j++) {
                g.w2[k][j] += dz[k] * a[b][j];
                da[j] += dz[k] * p->w2[k][j];
            }
        }
        for (int j = 0; j < HID; j++) {
            double dh = h[b][j] > 0 ? da[j] : 0;
            g.b1[j] += dh;
            for (int i = 0; i < IN; i++)
                g.w1[j][i] += dh * x[b * IN + i];
        }
    }
    /* torch.optim.Adam(W) on every parameter, viewed as flat arrays */
    const double b1 = 0.9, b2 = 0.999, eps = 1e-8;
    double *pp = (double *)p, *gg = (double *)&g, *mm = (double *)&st->m, *vv = (double *)&st->v;
    for (size_t i = 0; i < sizeof(ref_mlp) / sizeof(double); i++) {
        double grad = gg[i];
        if (decoupled)
            pp[i] *= 1 - lr * wd;
        else
            grad += wd * pp[i];
        mm[i] = b1 * mm[i] + (1 - b1) * grad;
        vv[i] = b2 * vv[i] + (1 - b2) * grad * grad;
        double bc1 = 1 - pow(b1, t), bc2 = 1 - pow(b2, t);
        pp[i] -= lr / bc1 * mm[i] / (sqrt(vv[i]) / sqrt(bc2) + eps);
    }
    return loss;
}

static void compare_with_reference(vkt_context *ctx, vkt_optimizer_type type) {
    vkt_graph *g;
    cr_assert_eq(vkt_graph_create(ctx, &(vkt_graph_desc){.seed = 99}, &g), VKT_OK);
    vkt_var x = vkt_graph_input(g, "x", 2, (int64_t[]){B, IN});
    vkt_var y = vkt_graph_input(g, "y", 1, (int64_t[]){B});
    vkt_var logits =
        vkt_graph_linear(g, vkt_graph_relu(g, vkt_graph_linear(g, x, HID, "fc1")), OUT, "fc2");
    vkt_var loss = vkt_graph_softmax_cross_entropy(g, logits, y);
    const double wd = 0.05;
    vkt_model *m;
    cr_assert_eq(vkt_model_create(g, &(vkt_model_desc){.loss = loss,
                                                      .optimizer = {.type = type, .lr = 0.01f,
                                                                    .weight_decay = (float)wd}},
                                  &m),
                 VKT_OK, "%s", vkt_context_last_error(ctx));
    ref_mlp ref;
    ref_adam state;
    memset(&state, 0, sizeof state);
    float tmp[HID * IN];
    const char *names[] = {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"};
    double *slots[] = {&ref.w1[0][0], ref.b1, &ref.w2[0][0], ref.b2};
    size_t counts[] = {HID * IN, HID, OUT * HID, OUT};
    for (int p = 0; p < 4; p++) {
        cr_assert_eq(vkt_model_read(m, vkt_graph_find(g, names[p]), tmp, counts[p]), VKT_OK);
        for (size_t i = 0; i < counts[p]; i++)
            slots[p][i] = tmp[i];
    }
    float xs[B * IN], labels[B];
    h_random(xs, B * IN, 5, -2, 2);
    for (int b = 0; b < B; b++)
        labels[b] = (float)((b * 7) % OUT);
    vkt_feed feeds[2] = {{x, xs, B * IN}, {y, labels, B}};
    for (int t = 1; t <= STEPS; t++) {
        float got;
        cr_assert_eq(vkt_model_step(m, feeds, 2, &got), VKT_OK);
        double want = ref_step(&ref, &state, xs, labels, t, 0.01, wd,
                               type == VKT_OPTIMIZER_ADAMW);
        cr_assert(fabs(got - want) <= 1e-5 * fabs(want) + 1e-6,
                  "step %d loss %.9g, reference %.9g", t, got, want);
    }
    for (int p = 0; p < 4; p++) {
        cr_assert_eq(vkt_model_read(m, vkt_graph_find(g, names[p]), tmp, counts[p]), VKT_OK);
        for (size_t i = 0; i < counts[p]; i++)
            cr_assert(fabs(tmp[i] - slots[p][i]) <= 1e-5 * fabs(slots[p][i]) + 1e-6,
                      "%s[%zu] after %d steps: %.9g, reference %.9g", names[p], i, STEPS,
                      tmp[i], slots[p][i]);
    }
    vkt_model_destroy(m);
    vkt_graph_destroy(g);
}

Test(train, adam_and_adamw_match_an_independent_reference_cpu) {
    vkt_context *ctx = h_cpu();
    compare_with_reference(ctx, VKT_OPTIMIZER_ADAM);
    compare_with_reference(ctx, VKT_OPTIMIZER_ADAMW);
    h_finish(ctx);
}

Test(train, adam_and_adamw_match_an_independent_reference_vulkan, .timeout = 300) {
    vkt_context *ctx = h_vulkan();
    compare_with_reference(ctx, VKT_OPTIMIZER_ADAM);
    compare_with_reference(ctx, VKT_OPTIMIZER_ADAMW);
    h_finish(ctx);
}
