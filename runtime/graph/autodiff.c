/* autodiff.c: reverse-mode differentiation of a forward graph.
 *
 * Nodes are visited in reverse order (the builder only ever appends nodes
 * whose inputs exist, so node order is a topological order). Each forward
 * op contributes gradients to the inputs that need one; a tensor used twice
 * gets the sum of its contributions. Gradients that equal another tensor
 * (bias add, add: dx = dy) are that tensor, with no copy. Nothing is done for
 * inputs that do not depend on parameters. */
#include "graph.h"

#include <stdio.h>
#include <string.h>

typedef struct autodiff {
    vkt_graph *g;
    vkt_var *grads; /* by forward var; 0: none yet */
    uint32_t forward_vars;
} autodiff;

static vkt_var backward_node(autodiff *ad, vkt_op op, const vkt_op_params *p, const char *name,
                             uint32_t nin, const vkt_var *in) {
    vkt_var out[VKT_NODE_MAX_OUT] = {0};
    if (graph_add_node(ad->g, op, p, name, PHASE_BACKWARD, nin, in, vkt_op_get(op)->nout, out) < 0)
        return 0;
    ad->g->vars[out[0]].requires_grad = false;
    return out[0];
}

/* Adds `contribution` to the gradient of v. Aliases (reshapes) pass their
 * gradient on to the tensor they view, reshaped back. */
static vkt_result add_grad(autodiff *ad, vkt_var v, vkt_var contribution, const char *name) {
    vkt_graph *g = ad->g;
    if (!g->vars[v].requires_grad)
        return VKT_OK;
    if (g->vars[v].kind == VAR_ALIAS) {
        vkt_var source = g->vars[v].alias_of;
        vkt_var reshaped = vkt_graph_reshape(g, contribution, g->vars[source].shape.ndim,
                                             g->vars[source].shape.dims);
        if (!reshaped)
            return g->status;
        g->vars[reshaped].requires_grad = false;
        return add_grad(ad, source, reshaped, name);
    }
    if (!ad->grads[v]) {
        ad->grads[v] = contribution;
        return VKT_OK;
    }
    char sum_name[80];
    snprintf(sum_name, sizeof sum_name, "%.60s.grad_sum", g->vars[v].name);
    vkt_var sum = backward_node(ad, VKT_OP_ADD, NULL, sum_name, 2,
                                (vkt_var[]){ad->grads[v], contribution});
    if (!sum)
        return g->status;
    ad->grads[v] = sum;
    return VKT_OK;
}

static bool needs(const autodiff *ad, vkt_var v) { return ad->g->vars[v].requires_grad; }

static vkt_op_params matmul_params(bool transpose_a, bool transpose_b) {
    vkt_op_params p = {.matmul = {transpose_a, transpose_b, false}};
    return p;
}

/* C = op(A) op(B), so dop(A) = dC op(B)^T and dop(B) = op(A)^T dC; undoing
 * the transposes gives the four cases below. */
static vkt_result matmul_backward(autodiff *ad, const graph_node *n, vkt_var dy,
                                  const char *name) {
    vkt_var a = n->in[0], b = n->in[1];
    bool ta = n->p.matmul.transpose_a, tb = n->p.matmul.transpose_b;
    char nm[80];
    if (needs(ad, a)) {
        snprintf(nm, sizeof nm, "%.60s.dA", name);
        vkt_op_params p = ta ? matmul_params(tb, true) : matmul_params(false, !tb);
        vkt_var da = backward_node(ad, VKT_OP_MATMUL, &p, nm, 2,
                                   ta ? (vkt_var[]){b, dy} : (vkt_var[]){dy, b});
        if (!da || add_grad(ad, a, da, nm) != VKT_OK)
            return ad->g->status;
    }
    if (needs(ad, b)) {
        snprintf(nm, sizeof nm, "%.60s.dB", name);
        vkt_op_params p = tb ? matmul_params(true, ta) : matmul_params(!ta, false);
        vkt_var db = backward_node(ad, VKT_OP_MATMUL, &p, nm, 2,
                                   tb ? (vkt_var[]){dy, a} : (vkt_var[]){a, dy});
        if (!db || add_grad(ad, b, db, nm) != VKT_OK)
            return ad->g->status;
    }
    return VKT_OK;
}

/* y = relu?(op(A) op(B) + b), a linear layer fused by fuse.c: the ReLU's
 * gradient first (y > 0 exactly where the pre-activation was, so y serves
 * as relu_bwd's saved input), then the matmul's and the bias add's, under
 * the names the unfused nodes would have had. */
static vkt_result matmul_bias_backward(autodiff *ad, const graph_node *n, vkt_var dy,
                                       const char *name) {
    if (!needs(ad, n->in[0]) && !needs(ad, n->in[1]) && !needs(ad, n->in[2]))
        return VKT_OK;
    char nm[80];
    vkt_var dz = dy;
    if (n->p.matmul.relu) {
        snprintf(nm, sizeof nm, "%.60s.relu.dx", name);
        dz = backward_node(ad, VKT_OP_RELU_BWD, NULL, nm, 2, (vkt_var[]){dy, n->out[0]});
        if (!dz)
            return ad->g->status;
    }
    snprintf(nm, sizeof nm, "%.60s.matmul", name);
    vkt_result r = matmul_backward(ad, n, dz, nm);
    if (r != VKT_OK || !needs(ad, n->in[2]))
        return r;
    snprintf(nm, sizeof nm, "%.60s.db", name);
    vkt_var db = backward_node(ad, VKT_OP_COLUMN_SUM, &(vkt_op_params){.reduce = {false}}, nm, 1,
                               &dz);
    return db ? add_grad(ad, n->in[2], db, nm) : ad->g->status;
}

/* Pointwise ops whose backward is one node of (dy, saved) with the forward's
 * params: saved is the forward input x or output y, as the op needs. */
static vkt_result pointwise_backward(autodiff *ad, const graph_node *n, vkt_var dy, vkt_op bwd,
                                     vkt_var saved, const char *name) {
    if (!needs(ad, n->in[0]))
        return VKT_OK;
    char nm[80];
    snprintf(nm, sizeof nm, "%.60s.dx", name);
    vkt_var dx = backward_node(ad, bwd, &n->p, nm, 2, (vkt_var[]){dy, saved});
    return dx ? add_grad(ad, n->in[0], dx, nm) : ad->g->status;
}

/* y = conv(x, w) + b: dx is the transposed convolution of dy with w, dw
 * the correlation of dy with x, db the sum of dy over batch and space; the
 * forward's params (stride, padding, kernel, input size) say how. */
static vkt_result conv_backward(autodiff *ad, const graph_node *n, vkt_var dy, const char *name) {
    static const vkt_op bwd[3] = {VKT_OP_CONV2D_BWD_INPUT, VKT_OP_CONV2D_BWD_WEIGHT,
                                  VKT_OP_CONV2D_BWD_BIAS};
    static const char *suffix[3] = {"dx", "dw", "db"};
    for (int i = 0; i < 3; i++) {
        if (!needs(ad, n->in[i]))
            continue;
        char nm[80];
        snprintf(nm, sizeof nm, "%.60s.%s", name, suffix[i]);
        vkt_var in[2] = {dy, i == 0 ? n->in[1] : n->in[0]};
        vkt_var d = backward_node(ad, bwd[i], &n->p, nm, i == 2 ? 1 : 2, in);
        if (!d || add_grad(ad, n->in[i], d, nm) != VKT_OK)
            return ad->g->status;
    }
    return VKT_OK;
}

static vkt_result node_backward(autodiff *ad, const graph_node *n, vkt_var dy) {
    vkt_graph *g = ad->g;
    char nm[80];
    snprintf(nm, sizeof nm, "%s", n->name);
    switch (n->op) {
    case VKT_OP_MATMUL:
        return matmul_backward(ad, n, dy, nm);
    case VKT_OP_MATMUL_BIAS:
        return matmul_bias_backward(ad, n, dy, nm);
    case VKT_OP_BIAS_ADD: {
        /* y = x + b broadcast over rows: dx = dy, db = column sums of dy */
        vkt_result r = add_grad(ad, n->in[0], dy, nm);
        if (r != VKT_OK || !needs(ad, n->in[1]))
            return r;
        char bn[80];
        snprintf(bn, sizeof bn, "%.60s.db", nm);
        vkt_var db = backward_node(ad, VKT_OP_COLUMN_SUM, &(vkt_op_params){.reduce = {false}}, bn,
                                   1, &dy);
        return db ? add_grad(ad, n->in[1], db, bn) : g->status;
    }
    case VKT_OP_ADD: {
        vkt_result r = add_grad(ad, n->in[0], dy, nm);
        return r != VKT_OK ? r : add_grad(ad, n->in[1], dy, nm);
    }
    case VKT_OP_RELU:
        return pointwise_backward(ad, n, dy, VKT_OP_RELU_BWD, n->in[0], nm);
    case VKT_OP_LEAKY_RELU:
        return pointwise_backward(ad, n, dy, VKT_OP_LEAKY_RELU_BWD, n->in[0], nm);
    case VKT_OP_GELU:
        return pointwise_backward(ad, n, dy, VKT_OP_GELU_BWD, n->in[0], nm);
    case VKT_OP_SIGMOID:
        return pointwise_backward(ad, n, dy, VKT_OP_SIGMOID_BWD, n->out[0], nm);
    case VKT_OP_TANH:
        return pointwise_backward(ad, n, dy, VKT_OP_TANH_BWD, n->out[0], nm);
    case VKT_OP_SOFTMAX:
        return pointwise_backward(ad, n, dy, VKT_OP_SOFTMAX_BWD, n->out[0], nm);
    case VKT_OP_CONV2D:
        return conv_backward(ad, n, dy, nm);
    case VKT_OP_MAXPOOL2D:
        return pointwise_backward(ad, n, dy, VKT_OP_MAXPOOL2D_BWD, n->in[0], nm);
    case VKT_OP_AVGPOOL2D: {
        if (!needs(ad, n->in[0]))
            return VKT_OK;
        char dn[80];
        snprintf(dn, sizeof dn, "%.60s.dx", nm);
        vkt_var dx = backward_node(ad, VKT_OP_AVGPOOL2D_BWD, &n->p, dn, 1, &dy);
        return dx ? add_grad(ad, n->in[0], dx, dn) : g->status;
    }
    case VKT_OP_DROPOUT:
        /* the mask is regenerated from (seed, step, index): nothing saved */
        return pointwise_backward(ad, n, dy, VKT_OP_DROPOUT_BWD, n->in[1], nm);
    default:
        return graph_fail(g, VKT_ERROR_INVALID_ARGUMENT,
                          "node '%s' (%s) cannot be differentiated inside a graph", n->name,
                          vkt_op_get(n->op)->name),
               g->status;
    }
}

static bool is_loss_op(vkt_op op) {
    return op == VKT_OP_SOFTMAX_CE || op == VKT_OP_MSE || op == VKT_OP_BCE_LOGITS;
}

vkt_result graph_backward(vkt_graph *g, vkt_var loss, vkt_var *grads) {
    if (!graph_var_valid(g, loss) || g->vars[loss].producer < 0 ||
        !is_loss_op(g->nodes[g->vars[loss].producer].op) ||
        g->nodes[g->vars[loss].producer].out[0] != loss)
        return graph_fail(g, VKT_ERROR_INVALID_ARGUMENT,
                          "the model's loss (var %d) is not the output of a loss function "
                          "(vkt_graph_softmax_cross_entropy, _mse, _bce_with_logits)",
                          (int)loss),
               g->status;
    autodiff ad = {.g = g, .grads = grads, .forward_vars = g->var_count};
    int32_t loss_node = g->vars[loss].producer;
    /* Fused losses compute d(loss)/d(prediction) in their forward node. */
    const graph_node *ln = &g->nodes[loss_node];
    vkt_result r = add_grad(&ad, ln->in[0], ln->out[1], ln->name);
    for (int32_t i = loss_node - 1; r == VKT_OK && i >= 0; i--) {
        graph_node n = g->nodes[i]; /* copy: adding nodes may move the array */
        if (n.phase != PHASE_FORWARD || is_loss_op(n.op))
            continue;
        vkt_var dy = n.out[0] < (vkt_var)ad.forward_vars ? grads[n.out[0]] : 0;
        if (dy)
            r = node_backward(&ad, &n, dy);
    }
    return r;
}
