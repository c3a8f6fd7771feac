/* test_graph.c: building graphs (shape errors name the node), autodiff
 * against finite differences (fan-out included), one recorded command buffer
 * replayed with one submit per step, GPU-vs-CPU training, determinism, and
 * check mode catching a planted kernel bug. */
#define _POSIX_C_SOURCE 200809L /* setenv */
#include "harness.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static vkt_graph *new_graph(vkt_context *ctx, uint64_t seed) {
    vkt_graph *g = NULL;
    cr_assert_eq(vkt_graph_create(ctx, &(vkt_graph_desc){.seed = seed}, &g), VKT_OK);
    return g;
}

Test(graph, shape_errors_name_the_node) {
    vkt_context *ctx = h_cpu();
    vkt_graph *g = new_graph(ctx, 1);
    vkt_var x = vkt_graph_input(g, "x", 2, (int64_t[]){4, 3});
    vkt_var y = vkt_graph_input(g, "y", 2, (int64_t[]){4, 5});
    vkt_var h = vkt_graph_linear(g, x, 6, "fc1");
    cr_assert_neq(h, 0);
    vkt_var bad = vkt_graph_add(g, h, y);
    cr_assert_eq(bad, 0);
    cr_assert_eq(vkt_graph_status(g), VKT_ERROR_SHAPE);
    cr_assert(strstr(vkt_graph_last_error(g), "add") != NULL, "%s", vkt_graph_last_error(g));
    cr_assert(strstr(vkt_graph_last_error(g), "(4, 6)") != NULL, "%s", vkt_graph_last_error(g));
    /* later calls keep the first error */
    cr_assert_eq(vkt_graph_relu(g, 12345), 0);
    cr_assert(strstr(vkt_graph_last_error(g), "add") != NULL);
    vkt_model *m = NULL;
    cr_assert_eq(vkt_model_create(g, &(vkt_model_desc){.loss = h}, &m), VKT_ERROR_SHAPE);
    cr_assert_null(m);
    vkt_graph_destroy(g);
    h_finish(ctx);
}

Test(graph, builder_rejects_bad_arguments) {
    vkt_context *ctx = h_cpu();
    vkt_graph *g = new_graph(ctx, 1);
    cr_assert_eq(vkt_graph_input(g, "x", 5, (int64_t[]){1, 1, 1, 1, 1}), 0);
    cr_assert(strstr(vkt_graph_last_error(g), "ndim") != NULL, "%s", vkt_graph_last_error(g));
    vkt_graph_destroy(g);

    g = new_graph(ctx, 1);
    vkt_var x = vkt_graph_input(g, "x", 2, (int64_t[]){4, 3});
    cr_assert_eq(vkt_graph_reshape(g, x, 1, (int64_t[]){13}), 0);
    cr_assert(strstr(vkt_graph_last_error(g), "13") != NULL, "%s", vkt_graph_last_error(g));
    vkt_graph_destroy(g);

    g = new_graph(ctx, 1);
    x = vkt_graph_input(g, "x", 2, (int64_t[]){4, 3});
    vkt_var h = vkt_graph_linear(g, x, 3, "fc");
    cr_assert_eq(vkt_graph_mse(g, x, h), 0, "a target that depends on parameters");
    cr_assert(strstr(vkt_graph_last_error(g), "target") != NULL, "%s", vkt_graph_last_error(g));
    vkt_graph_destroy(g);

    g = new_graph(ctx, 1);
    x = vkt_graph_input(g, "x", 2, (int64_t[]){4, 3});
    h = vkt_graph_linear(g, x, 3, "fc");
    vkt_model *m = NULL;
    cr_assert_eq(vkt_model_create(g, &(vkt_model_desc){.loss = h}, &m),
                 VKT_ERROR_INVALID_ARGUMENT);
    cr_assert(strstr(vkt_context_last_error(ctx), "loss") != NULL, "%s",
              vkt_context_last_error(ctx));
    cr_assert_eq(vkt_graph_linear(g, x, 3, "fc"), 0, "duplicate parameter names");
    vkt_graph_destroy(g);
    h_finish(ctx);
}

/* A small network with every differentiable op and a fan-out (h is used by
 * both branches of the residual add). Activation 6 is a ReLU with no
 * residual: the plain MLP layer that the model fuses into one node. */
typedef struct net {
    vkt_graph *g;
    vkt_var x, target, loss, out;
    int64_t batch, in, hidden, classes;
} net;

static net build_net(vkt_context *ctx, uint64_t seed, int loss_kind, int activation) {
    net n = {.batch = 5, .in = 7, .hidden = 9, .classes = 4};
    n.g = new_graph(ctx, seed);
    vkt_graph *g = n.g;
    n.x = vkt_graph_input(g, "x", 2, (int64_t[]){n.batch, n.in});
    vkt_var h = vkt_graph_linear(g, n.x, n.hidden, "fc1");
    vkt_var a;
    switch (activation) {
    case 0: a = vkt_graph_relu(g, h); break;
    case 1: a = vkt_graph_tanh(g, h); break;
    case 2: a = vkt_graph_sigmoid(g, h); break;
    case 3: a = vkt_graph_gelu(g, h); break;
    case 4: a = vkt_graph_leaky_relu(g, h, 0.1f); break;
    case 5: a = vkt_graph_softmax(g, h); break;
    default: a = vkt_graph_relu(g, h); break;
    }
    vkt_var r = activation == 6 ? a : vkt_graph_add(g, h, a); /* fan-out: h twice */
    vkt_var r4 = vkt_graph_reshape(g, r, 4, (int64_t[]){n.batch, 1, 3, 3});
    vkt_var flat = vkt_graph_flatten(g, r4);
    n.out = vkt_graph_linear(g, flat, n.classes, "fc2");
    if (loss_kind == 0) {
        n.target = vkt_graph_input(g, "labels", 1, (int64_t[]){n.batch});
        n.loss = vkt_graph_softmax_cross_entropy(g, n.out, n.target);
    } else {
        n.target = vkt_graph_input(g, "target", 2, (int64_t[]){n.batch, n.classes});
        n.loss = loss_kind == 1 ? vkt_graph_mse(g, n.out, n.target)
                                : vkt_graph_bce_with_logits(g, n.out, n.target);
    }
    cr_assert_eq(vkt_graph_status(g), VKT_OK, "%s", vkt_graph_last_error(g));
    return n;
}

static void net_data(const net *n, int loss_kind, float *x, float *t) {
    h_random(x, (size_t)(n->batch * n->in), 7, -1.0f, 1.0f);
    if (loss_kind == 0) {
        for (int64_t b = 0; b < n->batch; b++)
            t[b] = (float)(b % n->classes);
    } else {
        h_random(t, (size_t)(n->batch * n->classes), 8, 0.0f, 1.0f);
    }
}

/* Plain SGD with lr 1 makes every parameter's gradient readable as the
 * difference before and after one step; finite differences of the
 * evaluation loss (forward only) give the reference. */
static void check_gradients(vkt_context *ctx, const net *n, const float *x, const float *t,
                            size_t t_count, const char *const *params, int param_count,
                            const char *what) {
    vkt_model *m = NULL;
    cr_assert_eq(vkt_model_create(n->g, &(vkt_model_desc){
                                            .loss = n->loss,
                                            .optimizer = {.type = VKT_OPTIMIZER_SGD, .lr = 1.0f}},
                                  &m),
                 VKT_OK, "%s", vkt_context_last_error(ctx));
    vkt_var_info xi;
    vkt_graph_query_var(n->g, n->x, &xi);
    size_t x_count = 1;
    for (int d = 0; d < xi.ndim; d++)
        x_count *= (size_t)xi.dims[d];
    vkt_feed feeds[2] = {{n->x, x, x_count}, {n->target, t, t_count}};
    enum { MAX = 512 };
    float before[MAX], after[MAX], w[MAX];
    double numeric[MAX];
    const double eps = 1e-3;
    for (int p = 0; p < param_count; p++) {
        vkt_var v = vkt_graph_find(n->g, params[p]);
        vkt_var_info info;
        cr_assert_eq(vkt_graph_query_var(n->g, v, &info), VKT_OK, "%s", params[p]);
        size_t count = 1;
        for (int d = 0; d < info.ndim; d++)
            count *= (size_t)info.dims[d];
        cr_assert_leq(count, MAX);
        cr_assert_eq(vkt_model_read(m, v, before, count), VKT_OK);
        memcpy(w, before, count * sizeof(float));
        for (size_t i = 0; i < count; i++) {
            float lp, lm;
            w[i] = before[i] + (float)eps;
            vkt_model_write(m, v, w, count);
            cr_assert_eq(vkt_model_evaluate(m, feeds, 2, &lp), VKT_OK);
            w[i] = before[i] - (float)eps;
            vkt_model_write(m, v, w, count);
            cr_assert_eq(vkt_model_evaluate(m, feeds, 2, &lm), VKT_OK);
            w[i] = before[i];
            vkt_model_write(m, v, w, count);
            numeric[i] = ((double)lp - (double)lm) / (2 * eps);
        }
        /* One SGD step with lr 1 from the unchanged weights; then restore. */
        cr_assert_eq(vkt_model_step(m, feeds, 2, NULL), VKT_OK, "%s",
                     vkt_context_last_error(ctx));
        cr_assert_eq(vkt_model_read(m, v, after, count), VKT_OK);
        for (size_t i = 0; i < count; i++) {
            double analytic = (double)before[i] - (double)after[i];
            double err = fabs(analytic - numeric[i]);
            cr_assert(err <= 2e-3 + 2e-2 * fabs(numeric[i]),
                      "%s: d loss / d %s[%zu] = %.6g by autodiff, %.6g by finite differences",
                      what, params[p], i, analytic, numeric[i]);
        }
        /* a fresh model has the initial weights again (same seed) */
        vkt_model_destroy(m);
        cr_assert_eq(vkt_model_create(n->g, &(vkt_model_desc){
                                                .loss = n->loss,
                                                .optimizer = {.type = VKT_OPTIMIZER_SGD,
                                                              .lr = 1.0f}},
                                      &m),
                     VKT_OK);
    }
    vkt_model_destroy(m);
}

static void gradient_check(int loss_kind, int activation) {
    vkt_context *ctx = h_cpu();
    net n = build_net(ctx, 3, loss_kind, activation);
    float x[64], t[64];
    net_data(&n, loss_kind, x, t);
    const char *params[] = {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"};
    char what[64];
    snprintf(what, sizeof what, "loss %d activation %d", loss_kind, activation);
    check_gradients(ctx, &n, x, t, loss_kind == 0 ? (size_t)n.batch : (size_t)(n.batch * n.classes),
                    params, 4, what);
    vkt_graph_destroy(n.g);
    h_finish(ctx);
}

Test(graph, gradients_match_finite_differences_every_loss) {
    for (int loss = 0; loss < 3; loss++)
        gradient_check(loss, 0);
}

Test(graph, gradients_match_finite_differences_every_activation) {
    for (int act = 1; act < 7; act++)
        gradient_check(0, act);
}

/* conv - relu - max pool - conv (stride 2) - avg pool - flatten - linear:
 * every layer of the CNN path through the graph, autodiff included. */
Test(graph, gradients_match_finite_differences_cnn) {
    vkt_context *ctx = h_cpu();
    net n = {.batch = 2, .classes = 3};
    n.g = new_graph(ctx, 4);
    n.x = vkt_graph_input(n.g, "x", 4, (int64_t[]){2, 2, 6, 6});
    vkt_var h = vkt_graph_relu(n.g, vkt_graph_conv2d(n.g, n.x, 3, 3, 1, 1, "conv1"));
    h = vkt_graph_max_pool2d(n.g, h, 2, 0);                       /* 3x3x3 */
    h = vkt_graph_conv2d(n.g, h, 4, 3, 2, 1, "conv2");            /* 4x2x2 */
    h = vkt_graph_avg_pool2d(n.g, h, 2, 2);                       /* 4x1x1 */
    n.out = vkt_graph_linear(n.g, vkt_graph_flatten(n.g, h), 3, "fc");
    n.target = vkt_graph_input(n.g, "labels", 1, (int64_t[]){2});
    n.loss = vkt_graph_softmax_cross_entropy(n.g, n.out, n.target);
    cr_assert_eq(vkt_graph_status(n.g), VKT_OK, "%s", vkt_graph_last_error(n.g));
    float x[2 * 2 * 6 * 6], t[2] = {0, 2};
    h_random(x, sizeof x / sizeof x[0], 21, -1.0f, 1.0f);
    const char *params[] = {"conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias",
                            "fc.weight", "fc.bias"};
    check_gradients(ctx, &n, x, t, 2, params, 6, "cnn");
    vkt_graph_destroy(n.g);
    h_finish(ctx);
}

static void train_losses(vkt_context *ctx, uint64_t seed, int steps, float *losses,
                         vkt_optimizer_type type) {
    net n = build_net(ctx, seed, 0, 0);
    vkt_model *m = NULL;
    cr_assert_eq(vkt_model_create(n.g, &(vkt_model_desc){.loss = n.loss,
                                                         .optimizer = {.type = type,
                                                                       .lr = 1e-2f,
                                                                       .clip_grad_norm = 1.0f}},
                                  &m),
                 VKT_OK, "%s", vkt_context_last_error(ctx));
    float x[64], t[64];
    net_data(&n, 0, x, t);
    vkt_feed feeds[2] = {{n.x, x, (size_t)(n.batch * n.in)}, {n.target, t, (size_t)n.batch}};
    for (int s = 0; s < steps; s++)
        cr_assert_eq(vkt_model_step(m, feeds, 2, &losses[s]), VKT_OK, "%s",
                     vkt_context_last_error(ctx));
    vkt_model_destroy(m);
    vkt_graph_destroy(n.g);
}

Test(graph, vulkan_training_matches_cpu_and_is_deterministic, .timeout = 300) {
    vkt_context *gpu = h_vulkan(), *cpu = h_cpu();
    enum { STEPS = 12 };
    for (int type = 0; type < 3; type++) {
        float a[STEPS], b[STEPS], c[STEPS];
        train_losses(gpu, 11, STEPS, a, (vkt_optimizer_type)type);
        train_losses(gpu, 11, STEPS, b, (vkt_optimizer_type)type);
        train_losses(cpu, 11, STEPS, c, (vkt_optimizer_type)type);
        cr_assert_arr_eq(a, b, sizeof a, "two Vulkan runs with one seed differ (optimizer %d)",
                         type);
        h_assert_close(a, c, STEPS, 1e-5, 1e-4, "Vulkan vs CPU loss curve");
        cr_assert_lt(a[STEPS - 1], a[0], "the loss falls (optimizer %d)", type);
    }
    h_finish(gpu);
    h_finish(cpu);
}

Test(graph, one_recording_one_submit_per_step, .timeout = 300) {
    vkt_context *ctx = h_vulkan();
    net n = build_net(ctx, 5, 0, 0);
    vkt_model *m = NULL;
    cr_assert_eq(vkt_model_create(n.g, &(vkt_model_desc){.loss = n.loss}, &m), VKT_OK);
    vkt_context_info before, after;
    vkt_context_query(ctx, &before);
    cr_assert_eq(before.programs_recorded, 2, "training and evaluation buffers");
    float x[64], t[64];
    net_data(&n, 0, x, t);
    vkt_feed feeds[2] = {{n.x, x, (size_t)(n.batch * n.in)}, {n.target, t, (size_t)n.batch}};
    for (int s = 0; s < 10; s++)
        cr_assert_eq(vkt_model_step(m, feeds, 2, NULL), VKT_OK);
    vkt_context_query(ctx, &after);
    cr_assert_eq(after.programs_recorded, before.programs_recorded, "no re-recording");
    cr_assert_eq(after.submits - before.submits, 10, "one submit per step");
    cr_assert_eq(after.bytes_in_use, before.bytes_in_use, "no per-step allocation");
    vkt_model_info info;
    vkt_model_query(m, &info);
    cr_assert_eq(info.step, 10);
    cr_assert_eq(info.submits_per_step, 1);
    cr_assert_gt(info.backward_nodes, 0);
    cr_assert_lt(info.barriers_per_step, info.dispatches_per_step);
    cr_assert_leq(info.planned_bytes, info.unplanned_bytes);
    vkt_model_destroy(m);
    vkt_graph_destroy(n.g);
    h_finish(ctx);
}

/* Unfused, so that fc1 has its own bias_add node to plant the bug in. */
Test(graph, check_mode_passes_then_catches_a_planted_bug, .timeout = 300) {
    for (int planted = 0; planted < 2; planted++) {
        if (planted)
            setenv("VKT_TEST_PERTURB", "bias_add", 1);
        vkt_context *ctx = h_vulkan();
        net n = build_net(ctx, 5, 0, 0);
        vkt_model *m = NULL;
        cr_assert_eq(vkt_model_create(n.g, &(vkt_model_desc){.loss = n.loss, .no_fusion = true},
                                      &m),
                     VKT_OK);
        float x[64], t[64];
        net_data(&n, 0, x, t);
        vkt_feed feeds[2] = {{n.x, x, (size_t)(n.batch * n.in)}, {n.target, t, (size_t)n.batch}};
        vkt_check_report report;
        cr_assert_eq(vkt_model_check(m, feeds, 2, &report), VKT_OK, "%s",
                     vkt_context_last_error(ctx));
        vkt_model_info info;
        vkt_model_query(m, &info);
        cr_assert_eq(report.nodes_checked,
                     info.forward_nodes + info.backward_nodes + info.optimizer_nodes);
        if (!planted) {
            cr_assert_eq(report.failures, 0, "first failure: %s", report.entries[0].node);
        } else {
            cr_assert_geq(report.failures, 1);
            cr_assert_str_eq(report.entries[0].op, "bias_add");
            cr_assert_str_eq(report.entries[0].node, "fc1");
        }
        vkt_model_destroy(m);
        vkt_graph_destroy(n.g);
        h_finish(ctx);
    }
    unsetenv("VKT_TEST_PERTURB");
}

/* linear -> relu -> linear: the model runs each layer as one matmul_bias
 * node (fc1 with its ReLU), trains as the unfused model does, and refuses
 * to read the tensors that fusion removed. */
Test(graph, linear_layers_are_fused, .timeout = 300) {
    vkt_context *ctx = h_vulkan();
    net n = build_net(ctx, 5, 0, 6);
    float x[64], t[64];
    net_data(&n, 0, x, t);
    vkt_feed feeds[2] = {{n.x, x, (size_t)(n.batch * n.in)}, {n.target, t, (size_t)n.batch}};
    enum { STEPS = 6 };
    float losses[2][STEPS];
    vkt_model_info info[2];
    for (int unfused = 0; unfused < 2; unfused++) {
        vkt_model *m = NULL;
        cr_assert_eq(vkt_model_create(n.g, &(vkt_model_desc){.loss = n.loss,
                                                             .no_fusion = unfused},
                                      &m),
                     VKT_OK, "%s", vkt_context_last_error(ctx));
        for (int s = 0; s < STEPS; s++)
            cr_assert_eq(vkt_model_step(m, feeds, 2, &losses[unfused][s]), VKT_OK, "%s",
                         vkt_context_last_error(ctx));
        vkt_model_query(m, &info[unfused]);
        vkt_var pre = vkt_graph_find(n.g, "fc1"); /* the bias_add's output, before the ReLU */
        cr_assert_neq(pre, 0);
        float h[5 * 9];
        vkt_result r = vkt_model_read(m, pre, h, (size_t)(n.batch * n.hidden));
        if (unfused) {
            cr_assert_eq(r, VKT_OK, "%s", vkt_context_last_error(ctx));
        } else {
            cr_assert_eq(r, VKT_ERROR_INVALID_ARGUMENT);
            cr_assert(strstr(vkt_context_last_error(ctx), "'fc1'") &&
                          strstr(vkt_context_last_error(ctx), "fused"),
                      "%s", vkt_context_last_error(ctx));
        }
        vkt_model_destroy(m);
    }
    /* fused: fc1 (matmul_bias + ReLU), fc2 (matmul_bias), the loss; unfused
     * adds two matmul and one relu node */
    cr_assert_eq(info[0].forward_nodes, 3, "%u forward nodes", info[0].forward_nodes);
    cr_assert_eq(info[1].forward_nodes, 6, "%u forward nodes", info[1].forward_nodes);
    cr_assert_lt(info[0].dispatches_per_step, info[1].dispatches_per_step);
    /* bias then ReLU rounded once instead of twice: near, not bit-equal */
    h_assert_close(losses[0], losses[1], STEPS, 1e-6, 1e-5, "fused vs unfused loss curve");
    cr_assert_lt(losses[0][STEPS - 1], losses[0][0]);
    vkt_graph_destroy(n.g);
    h_finish(ctx);
}
