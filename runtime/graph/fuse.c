/* fuse.c: joins a linear layer's forward nodes into one kernel before
 * autodiff runs.
 *
 * vkt_graph_linear builds matmul then bias_add, and a ReLU after it is a
 * third node: three passes over the layer's output where one will do.
 * matmul_bias computes all three in the matmul's epilogue. The rewrite is
 * made only where the intermediate tensor has no other reader (no other
 * node, no reshape of it), so nothing else could have seen it; autodiff
 * then differentiates the fused node (autodiff.c). The tensors that
 * disappear are marked fused_away: vkt_model_read refuses them by name, and
 * vkt_model_desc.no_fusion keeps every node for a caller who wants them. */
#include "graph.h"

#include <stdlib.h>

/* How many node inputs read each var (through any reshape), with a reshape
 * of it counting as one more reader: a view can be read anywhere. */
static void count_readers(const vkt_graph *g, uint32_t *readers) {
    for (uint32_t v = 0; v < g->var_count; v++)
        readers[v] = 0;
    for (uint32_t n = 0; n < g->node_count; n++)
        for (uint32_t i = 0; i < g->nodes[n].nin; i++)
            readers[graph_root(g, g->nodes[n].in[i])]++;
    for (uint32_t v = 1; v < g->var_count; v++)
        if (g->vars[v].kind == VAR_ALIAS)
            readers[graph_root(g, (vkt_var)v)]++;
}

/* The index of the one node that reads `v`, which count_readers found to
 * have exactly one reader. */
static int32_t only_reader(const vkt_graph *g, vkt_var v) {
    for (uint32_t n = 0; n < g->node_count; n++)
        for (uint32_t i = 0; i < g->nodes[n].nin; i++)
            if (g->nodes[n].in[i] == v)
                return (int32_t)n;
    return -1;
}

/* A temporary written by `producer` and read once, by a node of op `op` as
 * its first input: returns that node, or -1. */
static int32_t sole_consumer(const vkt_graph *g, const uint32_t *readers,
                             const graph_node *producer, vkt_op op) {
    vkt_var out = producer->out[0];
    if (g->vars[out].kind != VAR_TEMP || readers[out] != 1)
        return -1;
    int32_t c = only_reader(g, out);
    return c >= 0 && g->nodes[c].op == op && g->nodes[c].in[0] == out ? c : -1;
}

/* Drops node `n` (already folded into a later node) and renumbers producers. */
static void remove_node(vkt_graph *g, uint32_t n) {
    for (uint32_t i = n + 1; i < g->node_count; i++)
        g->nodes[i - 1] = g->nodes[i];
    g->node_count--;
    for (uint32_t v = 1; v < g->var_count; v++) {
        if (g->vars[v].producer == (int32_t)n)
            g->vars[v].producer = -1;
        else if (g->vars[v].producer > (int32_t)n)
            g->vars[v].producer--;
    }
}

/* matmul (not accumulating) -> bias_add: the bias_add becomes matmul_bias,
 * in its own place (its bias may be made between the two). */
static bool fuse_bias(vkt_graph *g, const uint32_t *readers, uint32_t n) {
    const graph_node *mm = &g->nodes[n];
    if (mm->op != VKT_OP_MATMUL || mm->phase != PHASE_FORWARD || mm->p.matmul.accumulate)
        return false;
    int32_t b = sole_consumer(g, readers, mm, VKT_OP_BIAS_ADD);
    if (b < 0)
        return false;
    graph_node *add = &g->nodes[b];
    g->vars[mm->out[0]].fused_away = true;
    add->op = VKT_OP_MATMUL_BIAS;
    add->p = mm->p;
    add->p.matmul.relu = false;
    add->in[2] = add->in[1];
    add->in[0] = mm->in[0];
    add->in[1] = mm->in[1];
    add->nin = 3;
    remove_node(g, n);
    return true;
}

/* matmul_bias -> relu: the relu becomes matmul_bias with the ReLU epilogue
 * under the layer's name. */
static bool fuse_relu(vkt_graph *g, const uint32_t *readers, uint32_t n) {
    const graph_node *mb = &g->nodes[n];
    if (mb->op != VKT_OP_MATMUL_BIAS || mb->phase != PHASE_FORWARD || mb->p.matmul.relu)
        return false;
    int32_t r = sole_consumer(g, readers, mb, VKT_OP_RELU);
    if (r < 0)
        return false;
    graph_node *relu = &g->nodes[r];
    g->vars[mb->out[0]].fused_away = true;
    vkt_var out = relu->out[0];
    *relu = *mb;
    relu->out[0] = out;
    relu->p.matmul.relu = true;
    remove_node(g, n);
    return true;
}

vkt_result graph_fuse(vkt_graph *g) {
    uint32_t *readers = malloc(g->var_count * sizeof *readers);
    if (!readers)
        return graph_fail(g, VKT_ERROR_OUT_OF_HOST_MEMORY, "out of host memory fusing nodes"),
               g->status;
    /* A fusion moves its inputs' reads to a later node, so every count stays
     * right; the node that slid into index n is looked at next, and a fused
     * node is met again at its new place (a bias fusion then a ReLU one). */
    count_readers(g, readers);
    for (uint32_t n = 0; n < g->node_count;)
        if (!fuse_bias(g, readers, n) && !fuse_relu(g, readers, n))
            n++;
    free(readers);
    return VKT_OK;
}
