/* optimizer_nodes.c: appends the optimizer's update nodes (and gradient
 * clipping) to a differentiated graph, and computes the per-step values of
 * the hyper buffer (learning-rate schedule, bias corrections) on the host. */
#include "graph.h"

#include <math.h>
#include <stdio.h>

void optimizer_desc_defaults(vkt_optimizer_desc *d) {
    if (d->lr == 0.0f)
        d->lr = d->type == VKT_OPTIMIZER_SGD ? 1e-2f : 1e-3f;
    if (d->beta1 == 0.0f)
        d->beta1 = 0.9f;
    if (d->beta2 == 0.0f)
        d->beta2 = 0.999f;
    if (d->eps == 0.0f)
        d->eps = 1e-8f;
    if (d->type == VKT_OPTIMIZER_ADAMW && d->weight_decay == 0.0f && !d->no_weight_decay)
        d->weight_decay = 1e-2f; /* torch.optim.AdamW's default */
    if (d->no_weight_decay)
        d->weight_decay = 0.0f;
    if (d->gamma == 0.0f)
        d->gamma = 0.1f;
}

static double cosine_lr(const vkt_optimizer_desc *d, uint64_t s) {
    const double pi = 3.14159265358979323846;
    if (s < d->warmup_steps)
        return d->lr * (double)(s + 1) / d->warmup_steps;
    uint64_t span = d->total_steps > d->warmup_steps ? d->total_steps - d->warmup_steps : 1;
    double progress = (double)(s - d->warmup_steps) / (double)span;
    if (progress > 1.0)
        progress = 1.0;
    return d->min_lr + 0.5 * (d->lr - d->min_lr) * (1.0 + cos(pi * progress));
}

static double scheduled_lr(const vkt_optimizer_desc *d, uint64_t t) {
    uint64_t s = t - 1; /* steps taken before this one */
    switch (d->schedule) {
    case VKT_SCHEDULE_STEP:
        return d->step_size ? d->lr * pow(d->gamma, (double)(s / d->step_size)) : d->lr;
    case VKT_SCHEDULE_COSINE:
        return cosine_lr(d, s);
    case VKT_SCHEDULE_CONSTANT:
    default:
        return d->lr;
    }
}

void optimizer_hyper_values(const vkt_optimizer_desc *d, uint64_t t, float *hyper) {
    for (int i = 0; i < VKT_HYPER_COUNT; i++)
        hyper[i] = 0.0f;
    hyper[VKT_HYPER_LR] = (float)scheduled_lr(d, t);
    /* computed in double: 1 - 0.999^t loses digits in float for small t */
    hyper[VKT_HYPER_BIAS1] = (float)(1.0 - pow(d->beta1, (double)t));
    hyper[VKT_HYPER_BIAS2] = (float)(1.0 - pow(d->beta2, (double)t));
    hyper[VKT_HYPER_STEP] = (float)t;
    hyper[VKT_HYPER_GRAD_SCALE] = 1.0f;
}

static vkt_var add_state(vkt_graph *g, vkt_var param, const char *suffix) {
    char name[96];
    snprintf(name, sizeof name, "%s.%s", g->vars[param].name, suffix);
    vkt_var v = graph_add_var(g, VAR_STATE, name, g->vars[param].shape);
    if (v)
        g->vars[v].init = VKT_INIT_ZEROS;
    return v;
}

/* Global-norm clipping: sum the squares of every gradient into one scalar
 * (in a fixed order, so the result is deterministic), then turn it into the
 * factor every update multiplies its gradient by. */
static vkt_result add_clipping(vkt_graph *g, float max_norm, const vkt_var *grads,
                               uint32_t var_count) {
    vkt_var sumsq = graph_add_var(g, VAR_TEMP, "grad_norm_squared", (vkt_shape){1, {1}});
    if (!sumsq)
        return g->status;
    bool first = true;
    for (uint32_t v = 1; v < var_count; v++) {
        if (g->vars[v].kind != VAR_PARAMETER || !grads[v])
            continue;
        char name[96];
        snprintf(name, sizeof name, "%s.grad_sumsq", g->vars[v].name);
        vkt_op_params p = {.reduce = {!first}};
        vkt_var out[VKT_NODE_MAX_OUT] = {sumsq};
        if (graph_add_node(g, VKT_OP_SUM_SQUARES, &p, name, PHASE_OPTIMIZER, 1, &grads[v], 1,
                           out) < 0)
            return g->status;
        first = false;
    }
    if (first)
        return VKT_OK;
    vkt_op_params p = {.clip = {max_norm}};
    vkt_var out[VKT_NODE_MAX_OUT] = {graph_hyper(g)};
    if (graph_add_node(g, VKT_OP_CLIP_SCALE, &p, "clip_grad_norm", PHASE_OPTIMIZER, 1, &sumsq, 1,
                       out) < 0)
        return g->status;
    return VKT_OK;
}

vkt_result graph_optimizer(vkt_graph *g, const vkt_optimizer_desc *d, const vkt_var *grads) {
    uint32_t var_count = g->var_count; /* parameters all exist already */
    vkt_var hyper = graph_hyper(g);
    if (!hyper)
        return g->status;
    if (d->clip_grad_norm > 0.0f) {
        vkt_result r = add_clipping(g, d->clip_grad_norm, grads, var_count);
        if (r != VKT_OK)
            return r;
    }
    for (uint32_t v = 1; v < var_count; v++) {
        if (g->vars[v].kind != VAR_PARAMETER || !grads[v])
            continue;
        char name[96];
        vkt_var out[VKT_NODE_MAX_OUT] = {(vkt_var)v};
        vkt_op_params p;
        vkt_op op;
        if (d->type == VKT_OPTIMIZER_SGD) {
            op = VKT_OP_SGD;
            p.sgd.momentum = d->momentum;
            p.sgd.dampening = d->dampening;
            p.sgd.weight_decay = d->weight_decay;
            p.sgd.nesterov = d->nesterov;
            out[1] = add_state(g, (vkt_var)v, "momentum");
            snprintf(name, sizeof name, "%s.sgd", g->vars[v].name);
        } else {
            op = VKT_OP_ADAM;
            p.adam.beta1 = d->beta1;
            p.adam.beta2 = d->beta2;
            p.adam.eps = d->eps;
            p.adam.weight_decay = d->weight_decay;
            p.adam.decoupled = d->type == VKT_OPTIMIZER_ADAMW;
            out[1] = add_state(g, (vkt_var)v, "exp_avg");
            out[2] = add_state(g, (vkt_var)v, "exp_avg_sq");
            snprintf(name, sizeof name, "%s.adam", g->vars[v].name);
        }
        if (!out[1] || (op == VKT_OP_ADAM && !out[2]))
            return g->status;
        if (graph_add_node(g, op, &p, name, PHASE_OPTIMIZER, 2, (vkt_var[]){grads[v], hyper},
                           vkt_op_get(op)->nout, out) < 0)
            return g->status;
    }
    return VKT_OK;
}
