/* planner.c: places every transient tensor of a model in one arena so that
 * tensors whose lifetimes do not overlap share memory.
 *
 * A tensor lives from the node that writes it first to the last node that
 * reads or writes it (through any reshape of it). Forward activations are
 * kept to the end of the step so they can be read after it (vkt_model_read);
 * most are needed by the backward pass anyway. Placement is greedy first fit
 * in order of first use: simple, and within a few percent of optimal on the
 * chain-shaped graphs of MLPs and CNNs. */
#include "model.h"

#include <stdlib.h>

typedef struct interval {
    vkt_var var;
    uint32_t first, last;
    uint64_t size, offset;
} interval;

static uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

static int by_first(const void *a, const void *b) {
    const interval *x = a, *y = b;
    if (x->first != y->first)
        return x->first < y->first ? -1 : 1;
    return x->var < y->var ? -1 : 1;
}


vkt_result plan_arena(const vkt_graph *g, uint32_t alignment, uint64_t *offsets,
                      uint64_t *out_size, uint64_t *out_unplanned) {
    interval *iv = calloc(g->var_count, sizeof *iv);
    uint32_t *index = malloc(g->var_count * sizeof *index);
    if (!iv || !index) {
        free(iv);
        free(index);
        return VKT_ERROR_OUT_OF_HOST_MEMORY;
    }
    uint32_t count = 0;
    for (uint32_t v = 1; v < g->var_count; v++) {
        index[v] = UINT32_MAX;
        if (g->vars[v].kind != VAR_TEMP || g->vars[v].fused_away)
            continue;
        index[v] = count;
        iv[count++] = (interval){.var = (vkt_var)v, .first = UINT32_MAX, .last = 0,
                                 .size = align_up((uint64_t)vkt_shape_numel(&g->vars[v].shape) *
                                                      sizeof(float),
                                                  alignment)};
    }
    for (uint32_t n = 0; n < g->node_count; n++) {
        const graph_node *node = &g->nodes[n];
        for (uint32_t k = 0; k < node->nin + node->nout; k++) {
            vkt_var v = graph_root(g, k < node->nin ? node->in[k] : node->out[k - node->nin]);
            if (index[v] == UINT32_MAX)
                continue;
            interval *it = &iv[index[v]];
            if (n < it->first)
                it->first = n;
            if (n > it->last)
                it->last = n;
            if (node->phase == PHASE_FORWARD)
                it->last = g->node_count; /* readable after the step */
        }
    }
    qsort(iv, count, sizeof *iv, by_first);
    uint64_t arena = 0, unplanned = 0;
    for (uint32_t i = 0; i < count; i++) {
        unplanned += iv[i].size;
        /* Lowest offset that does not collide with a placed, time-overlapping
         * tensor: try 0 and the end of every such tensor. */
        uint64_t best = UINT64_MAX;
        for (uint32_t c = 0; c <= i; c++) {
            uint64_t candidate = c == i ? 0 : iv[c].offset + iv[c].size;
            if (c < i && (iv[c].last < iv[i].first || iv[i].last < iv[c].first))
                continue;
            if (candidate >= best)
                continue;
            bool fits = true;
            for (uint32_t o = 0; o < i && fits; o++) {
                bool time = !(iv[o].last < iv[i].first || iv[i].last < iv[o].first);
                bool space = candidate < iv[o].offset + iv[o].size &&
                             iv[o].offset < candidate + iv[i].size;
                fits = !(time && space);
            }
            if (fits)
                best = candidate;
        }
        iv[i].offset = best;
        offsets[iv[i].var] = best;
        if (best + iv[i].size > arena)
            arena = best + iv[i].size;
    }
    free(iv);
    free(index);
    *out_size = arena;
    *out_unplanned = unplanned;
    return VKT_OK;
}
