/* test_profile.c: per-node profiling of a training step (vkt_model_profile,
 * VKT_PROFILE): on Vulkan with device timestamps and on the CPU reference
 * with the host clock, the nodes' times add up to the step's device time,
 * the step is really taken, and the table names every node. */
#define _POSIX_C_SOURCE 200809L /* setenv */
#include "harness.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { B = 16, IN = 20, HIDDEN = 12, CLASSES = 5 };

typedef struct mlp {
    vkt_model *m;
    vkt_var x, y;
    float xs[B * IN], ys[B];
} mlp;

static void mlp_create(vkt_context *ctx, mlp *n) {
    vkt_graph *g = NULL;
    cr_assert_eq(vkt_graph_create(ctx, &(vkt_graph_desc){.seed = 9}, &g), VKT_OK);
    n->x = vkt_graph_input(g, "x", 2, (int64_t[]){B, IN});
    n->y = vkt_graph_input(g, "labels", 1, (int64_t[]){B});
    vkt_var h = vkt_graph_relu(g, vkt_graph_linear(g, n->x, HIDDEN, "fc1"));
    vkt_var loss = vkt_graph_softmax_cross_entropy(g, vkt_graph_linear(g, h, CLASSES, "fc2"), n->y);
    cr_assert_eq(vkt_graph_status(g), VKT_OK, "%s", vkt_graph_last_error(g));
    cr_assert_eq(vkt_model_create(g, &(vkt_model_desc){.loss = loss}, &n->m), VKT_OK, "%s",
                 vkt_context_last_error(ctx));
    vkt_graph_destroy(g);
    h_random(n->xs, B * IN, 4, -1, 1);
    for (int i = 0; i < B; i++)
        n->ys[i] = (float)(i % CLASSES);
}

static void check_report(const vkt_profile_report *r, const vkt_model_info *info) {
    uint32_t nodes = info->forward_nodes + info->backward_nodes + info->optimizer_nodes;
    cr_assert_eq(r->node_count, nodes);
    double sum = r->tail_ms, kernels = 0.0;
    uint32_t dispatches = 0;
    for (uint32_t i = 0; i < r->node_count; i++) {
        cr_assert(r->nodes[i].node[0] != '\0', "node %u has no name", i);
        cr_assert_not_null(r->nodes[i].op);
        cr_assert_geq(r->nodes[i].ms, r->nodes[i].kernel_ms);
        sum += r->nodes[i].ms;
        kernels += r->nodes[i].kernel_ms;
        dispatches += r->nodes[i].dispatches;
    }
    cr_assert_eq(dispatches, r->dispatches);
    cr_assert(fabs(sum - r->device_ms) <= 1e-6 * r->device_ms + 1e-6,
              "nodes add up to %.6f ms, the device time is %.6f ms", sum, r->device_ms);
    cr_assert(fabs(kernels - r->kernels_ms) <= 1e-6 * r->kernels_ms + 1e-6);
    cr_assert(fabs(r->kernels_ms + r->idle_ms - r->device_ms) <= 1e-6 * r->device_ms + 1e-6);
    cr_assert_gt(r->kernel_count, 0);
    for (uint32_t k = 1; k < r->kernel_count; k++)
        cr_assert_geq(r->kernels[k - 1].ms, r->kernels[k].ms, "kernels sorted slowest first");
    cr_assert(isfinite(r->loss));
}

static void profile_case(vkt_context *ctx, bool timestamps) {
    mlp n;
    mlp_create(ctx, &n);
    vkt_feed feeds[2] = {{n.x, n.xs, B * IN}, {n.y, n.ys, B}};
    float loss0;
    cr_assert_eq(vkt_model_step(n.m, feeds, 2, &loss0), VKT_OK);
    vkt_profile_report *r = malloc(sizeof *r);
    cr_assert_not_null(r);
    cr_assert_eq(vkt_model_profile(n.m, feeds, 2, r), VKT_OK, "%s", vkt_model_last_error(n.m));
    cr_assert_eq(r->device_timestamps, timestamps);
    vkt_model_info info;
    cr_assert_eq(vkt_model_query(n.m, &info), VKT_OK);
    cr_assert_eq(info.step, 2, "the profiled step is a real step");
    check_report(r, &info);
    /* the update happened: the next step's loss is not the profiled one's */
    float loss2;
    cr_assert_eq(vkt_model_step(n.m, feeds, 2, &loss2), VKT_OK);
    cr_assert_neq(loss2, r->loss);

    size_t len = vkt_profile_format(r, NULL, 0);
    cr_assert_gt(len, 0);
    char *table = malloc(len + 1);
    cr_assert_eq(vkt_profile_format(r, table, len + 1), len);
    cr_assert_eq(strlen(table), len);
    cr_assert(strstr(table, "fc1.matmul") && strstr(table, "fc2.bias.adam"), "%s", table);
    char small[16];
    cr_assert_eq(vkt_profile_format(r, small, sizeof small), len, "the full length when cut");
    cr_assert_eq(strlen(small), sizeof small - 1);
    free(table);
    free(r);
    vkt_model_destroy(n.m);
}

Test(profile, vulkan_timestamps_add_up) {
    vkt_context *ctx = h_vulkan();
    vkt_context_info info;
    vkt_context_query(ctx, &info);
    profile_case(ctx, true);
    h_finish(ctx);
}

Test(profile, cpu_reference_host_clock) {
    vkt_context *ctx = h_cpu();
    profile_case(ctx, false);
    h_finish(ctx);
}

Test(profile, rejects_bad_arguments) {
    vkt_context *ctx = h_cpu();
    mlp n;
    mlp_create(ctx, &n);
    vkt_profile_report r;
    cr_assert_eq(vkt_model_profile(NULL, NULL, 0, &r), VKT_ERROR_INVALID_ARGUMENT);
    vkt_feed one = {n.x, n.xs, B * IN};
    cr_assert_eq(vkt_model_profile(n.m, &one, 1, &r), VKT_ERROR_INVALID_ARGUMENT);
    cr_assert(strstr(vkt_model_last_error(n.m), "labels") != NULL, "%s",
              vkt_model_last_error(n.m));
    vkt_feed feeds[2] = {{n.x, n.xs, B * IN}, {n.y, n.ys, B}};
    cr_assert_eq(vkt_model_profile(n.m, feeds, 2, NULL), VKT_ERROR_INVALID_ARGUMENT);
    vkt_model_destroy(n.m);
    h_finish(ctx);
}

/* VKT_PROFILE=<file>: the third step of the model appends its table. */
Test(profile, environment_variable_writes_the_table) {
    char path[] = "/tmp/vkt_profile_XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    close(fd);
    setenv("VKT_PROFILE", path, 1);
    vkt_context *ctx = h_vulkan();
    mlp n;
    mlp_create(ctx, &n);
    vkt_feed feeds[2] = {{n.x, n.xs, B * IN}, {n.y, n.ys, B}};
    for (int s = 0; s < 4; s++)
        cr_assert_eq(vkt_model_step(n.m, feeds, 2, NULL), VKT_OK, "%s", vkt_model_last_error(n.m));
    unsetenv("VKT_PROFILE");
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f);
    char text[8192];
    size_t got = fread(text, 1, sizeof text - 1, f);
    text[got] = '\0';
    fclose(f);
    remove(path);
    cr_assert(strstr(text, "profile:") && strstr(text, "fc2.matmul"), "%s", text);
    cr_assert(strstr(text + 1, "profile:") == NULL, "one step profiled, not every one");
    vkt_model_destroy(n.m);
    h_finish(ctx);
}
