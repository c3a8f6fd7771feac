/* xor: the smallest program that trains with vktrain. A 2-8-1 MLP learns
 * XOR, which no linear model can, with Adam and binary cross-entropy. */
#include <stdio.h>
#include <vktrain.h>

int main(void) {
    const float x[4 * 2] = {0, 0, 0, 1, 1, 0, 1, 1};
    const float y[4] = {0, 1, 1, 0};
    vkt_context *ctx;
    if (vkt_context_create(&(vkt_context_desc){0}, &ctx) != VKT_OK) {
        fprintf(stderr, "xor: %s\n", vkt_last_error());
        return 1;
    }
    vkt_graph *g;
    vkt_graph_create(ctx, &(vkt_graph_desc){.seed = 1}, &g);
    vkt_var in = vkt_graph_input(g, "x", 2, (int64_t[]){4, 2});
    vkt_var target = vkt_graph_input(g, "y", 2, (int64_t[]){4, 1});
    vkt_var hidden = vkt_graph_tanh(g, vkt_graph_linear(g, in, 8, "hidden"));
    vkt_var logit = vkt_graph_linear(g, hidden, 1, "out");
    vkt_var loss = vkt_graph_bce_with_logits(g, logit, target);
    vkt_model *model;
    if (vkt_model_create(g, &(vkt_model_desc){.loss = loss, .optimizer.lr = 0.05f}, &model)) {
        fprintf(stderr, "xor: %s\n", vkt_context_last_error(ctx));
        return 1;
    }
    vkt_feed feeds[2] = {{in, x, 8}, {target, y, 4}};
    float l = 0.0f, out[4];
    for (int step = 1; step <= 500; step++) {
        vkt_model_step(model, feeds, 2, &l);
        if (step % 100 == 0)
            printf("step %3d  loss %.4f\n", step, l);
    }
    vkt_model_evaluate(model, feeds, 2, &l);
    vkt_model_read(model, logit, out, 4);
    int correct = 0;
    for (int i = 0; i < 4; i++) {
        printf("%g xor %g -> %d\n", x[2 * i], x[2 * i + 1], out[i] > 0);
        correct += (out[i] > 0) == (y[i] > 0.5f);
    }
    printf("accuracy %d%%\n", correct * 25);
    vkt_model_destroy(model);
    vkt_graph_destroy(g);
    vkt_context_destroy(ctx);
    return correct == 4 ? 0 : 1;
}
