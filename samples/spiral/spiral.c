/* spiral: three interleaved 2-D spirals, a classic that needs a non-linear
 * decision boundary. An MLP (2-64-64-3, ReLU, Adam) learns to separate
 * them; the loss is printed as it falls, the accuracy at the end.
 *
 *   spiral [--steps N] [--seed S] [--cpu]
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <vktrain.h>

enum { CLASSES = 3, PER_CLASS = 100, N = CLASSES * PER_CLASS };

/* The points of class c lie on an arm that turns through 4 radians as the
 * radius grows from 0 to 1, with a little noise on the angle. */
static void make_spirals(uint64_t seed, float *x, float *labels) {
    srand((unsigned)seed);
    for (int c = 0; c < CLASSES; c++) {
        for (int i = 0; i < PER_CLASS; i++) {
            float r = (float)i / PER_CLASS;
            float noise = ((float)rand() / RAND_MAX - 0.5f) * 0.4f;
            float theta = (float)c * 4.0f + r * 4.0f + noise;
            int k = c * PER_CLASS + i;
            x[2 * k] = r * sinf(theta);
            x[2 * k + 1] = r * cosf(theta);
            labels[k] = (float)c;
        }
    }
}

int main(int argc, char **argv) {
    int steps = 2000;
    uint64_t seed = 0;
    vkt_backend backend = VKT_BACKEND_DEFAULT;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--steps") == 0 && i + 1 < argc)
            steps = atoi(argv[++i]);
        else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc)
            seed = strtoull(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--cpu") == 0)
            backend = VKT_BACKEND_CPU;
        else {
            fprintf(stderr, "usage: spiral [--steps N] [--seed S] [--cpu]\n");
            return 2;
        }
    }
    static float x[N * 2], labels[N], logits[N * CLASSES];
    make_spirals(seed, x, labels);

    vkt_context *ctx;
    if (vkt_context_create(&(vkt_context_desc){.backend = backend}, &ctx) != VKT_OK) {
        fprintf(stderr, "spiral: %s\n", vkt_last_error());
        return 1;
    }
    vkt_context_info info;
    vkt_context_query(ctx, &info);
    printf("device: %s\n", info.device_name);

    vkt_graph *g;
    vkt_graph_create(ctx, &(vkt_graph_desc){.seed = seed}, &g);
    vkt_var in = vkt_graph_input(g, "points", 2, (int64_t[]){N, 2});
    vkt_var y = vkt_graph_input(g, "labels", 1, (int64_t[]){N});
    vkt_var h = vkt_graph_relu(g, vkt_graph_linear_init(g, in, 64, VKT_INIT_KAIMING_UNIFORM, "fc1"));
    h = vkt_graph_relu(g, vkt_graph_linear_init(g, h, 64, VKT_INIT_KAIMING_UNIFORM, "fc2"));
    vkt_var out = vkt_graph_linear(g, h, CLASSES, "fc3");
    vkt_var loss = vkt_graph_softmax_cross_entropy(g, out, y);
    if (vkt_graph_status(g) != VKT_OK) {
        fprintf(stderr, "spiral: %s\n", vkt_graph_last_error(g));
        return 1;
    }
    vkt_model *model;
    vkt_model_desc desc = {.loss = loss,
                           .optimizer = {.type = VKT_OPTIMIZER_ADAM, .lr = 1e-2f,
                                         .schedule = VKT_SCHEDULE_COSINE, .warmup_steps = 50,
                                         .total_steps = (uint32_t)steps, .min_lr = 1e-4f}};
    if (vkt_model_create(g, &desc, &model) != VKT_OK) {
        fprintf(stderr, "spiral: %s\n", vkt_context_last_error(ctx));
        return 1;
    }
    /* The whole data set is one batch: full-batch gradient descent. */
    vkt_feed feeds[2] = {{in, x, N * 2}, {y, labels, N}};
    float l = 0.0f;
    for (int step = 1; step <= steps; step++) {
        if (vkt_model_step(model, feeds, 2, &l) != VKT_OK) {
            fprintf(stderr, "spiral: %s\n", vkt_context_last_error(ctx));
            return 1;
        }
        if (step == 1 || step % (steps / 10 ? steps / 10 : 1) == 0)
            printf("step %5d  loss %.4f\n", step, l);
    }
    vkt_model_evaluate(model, feeds, 2, &l);
    vkt_model_read(model, out, logits, N * CLASSES);
    int correct = 0;
    for (int k = 0; k < N; k++) {
        int best = 0;
        for (int c = 1; c < CLASSES; c++)
            if (logits[k * CLASSES + c] > logits[k * CLASSES + best])
                best = c;
        correct += best == (int)labels[k];
    }
    double accuracy = 100.0 * correct / N;
    printf("training accuracy %.1f%% (%d of %d points)\n", accuracy, correct, N);
    vkt_model_destroy(model);
    vkt_graph_destroy(g);
    vkt_context_destroy(ctx);
    return accuracy > 95.0 ? 0 : 1;
}
