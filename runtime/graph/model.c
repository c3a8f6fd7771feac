/* model.c: compiling a graph into a model (autodiff, optimizer, memory plan,
 * recorded programs) and running its training and evaluation steps. */
#include "model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Persistent vars get their own allocation; transient ones a place in the
 * arena; reshapes the memory of what they view. */
static vkt_result place_values(vkt_model *m) {
    vkt_graph *g = m->g;
    vkt_context *ctx = m->ctx;
    uint64_t *offsets = calloc(g->var_count, sizeof *offsets);
    if (!offsets)
        return vkt_error(ctx, VKT_ERROR_OUT_OF_HOST_MEMORY, "out of host memory planning memory");
    uint64_t arena_size;
    vkt_result r = plan_arena(g, ctx->alignment, offsets, &arena_size, &m->unplanned_bytes);
    if (r == VKT_OK && arena_size)
        r = vkt_memory_alloc_arena(ctx, arena_size, &m->arena);
    m->planned_bytes = arena_size;
    for (uint32_t v = 1; r == VKT_OK && v < g->var_count; v++) {
        graph_var *gv = &g->vars[v];
        uint64_t bytes = (uint64_t)vkt_shape_numel(&gv->shape) * sizeof(float);
        m->values[v] = (vkt_value){.shape = gv->shape, .name = gv->name};
        if (gv->fused_away) {
            continue; /* no memory: vkt_model_read refuses it */
        } else if (gv->kind == VAR_TEMP) {
            m->values[v].view = (vkt_view){m->arena.block, m->arena.offset + offsets[v], bytes};
        } else if (gv->kind != VAR_ALIAS) {
            r = vkt_memory_alloc(ctx, bytes, &m->own[v]);
            m->values[v].view = m->own[v];
            m->persistent_bytes += bytes;
            if (gv->kind == VAR_PARAMETER)
                m->parameter_count += bytes / sizeof(float);
        }
    }
    for (uint32_t v = 1; r == VKT_OK && v < g->var_count; v++) {
        if (g->vars[v].kind != VAR_ALIAS)
            continue;
        vkt_view root = m->values[graph_root(g, (vkt_var)v)].view;
        root.bytes = (uint64_t)vkt_shape_numel(&g->vars[v].shape) * sizeof(float);
        m->values[v].view = root;
    }
    free(offsets);
    return r;
}

static vkt_result initialise(vkt_model *m) {
    vkt_graph *g = m->g;
    uint32_t param_index = 0;
    vkt_result r = VKT_OK;
    for (uint32_t v = 1; r == VKT_OK && v < g->var_count; v++) {
        graph_var *gv = &g->vars[v];
        if (gv->kind != VAR_PARAMETER && gv->kind != VAR_STATE)
            continue;
        size_t n = (size_t)vkt_shape_numel(&gv->shape);
        float *data = calloc(n, sizeof *data);
        if (!data)
            return vkt_error(m->ctx, VKT_ERROR_OUT_OF_HOST_MEMORY, "out of host memory");
        if (gv->kind == VAR_PARAMETER)
            param_init_values(gv, g->seed, param_index++, data);
        r = m->ctx->ops->write(m->ctx, &m->values[v].view, data, n * sizeof *data);
        free(data);
    }
    return r;
}

static void bind_nodes(vkt_model *m) {
    for (uint32_t i = 0; i < m->g->node_count; i++) {
        const graph_node *gn = &m->g->nodes[i];
        vkt_node *n = &m->nodes[i];
        *n = (vkt_node){.op = gn->op, .p = gn->p, .nin = gn->nin, .nout = gn->nout,
                        .name = gn->name};
        for (uint32_t k = 0; k < gn->nin; k++)
            n->in[k] = &m->values[gn->in[k]];
        for (uint32_t k = 0; k < gn->nout; k++)
            n->out[k] = &m->values[gn->out[k]];
        m->train_list[i] = n;
        m->phase_counts[gn->phase]++;
    }
}

/* Evaluation runs the forward nodes with dropout replaced by a copy (scale
 * by 1): the identity, as in PyTorch's eval mode. */
static void build_eval_list(vkt_model *m) {
    m->eval_count = 0;
    for (uint32_t i = 0; i < m->g->node_count; i++) {
        if (m->g->nodes[i].phase != PHASE_FORWARD)
            continue;
        vkt_node n = m->nodes[i];
        if (n.op == VKT_OP_DROPOUT) {
            n.op = VKT_OP_SCALE;
            n.nin = 1;
            n.p = (vkt_op_params){.scalar = {1.0f}};
        }
        m->eval_nodes[m->eval_count] = n;
        m->eval_list[m->eval_count] = &m->eval_nodes[m->eval_count];
        m->eval_count++;
    }
}

static vkt_result create_programs(vkt_model *m) {
    vkt_view uploads[VKT_MAX_BLOCKS];
    if (m->input_count + 1 > VKT_MAX_BLOCKS)
        return vkt_error(m->ctx, VKT_ERROR_INVALID_ARGUMENT, "too many graph inputs (%u)",
                         m->input_count);
    for (uint32_t i = 0; i < m->input_count; i++)
        uploads[i] = m->values[m->inputs[i]].view;
    uploads[m->input_count] = m->values[m->g->hyper].view;
    vkt_view download = m->values[m->loss].view;
    vkt_program_desc train = {.nodes = m->train_list, .node_count = m->g->node_count,
                              .uploads = uploads, .upload_count = m->input_count + 1,
                              .downloads = &download, .download_count = 1};
    vkt_result r = m->ctx->ops->program_create(m->ctx, &train, &m->train);
    if (r != VKT_OK)
        return r;
    vkt_program_desc eval = {.nodes = m->eval_list, .node_count = m->eval_count,
                             .uploads = uploads, .upload_count = m->input_count,
                             .downloads = &download, .download_count = 1};
    return m->ctx->ops->program_create(m->ctx, &eval, &m->eval);
}

static vkt_result compile(vkt_model *m, vkt_graph *g) {
    vkt_result r = graph_clone(g, &m->g);
    if (r != VKT_OK)
        return vkt_error(m->ctx, r, "vkt_model_create: out of host memory copying the graph");
    vkt_var *grads = calloc(m->g->var_count, sizeof *grads);
    if (!grads)
        return vkt_error(m->ctx, VKT_ERROR_OUT_OF_HOST_MEMORY, "out of host memory");
    r = m->fuse ? graph_fuse(m->g) : VKT_OK;
    if (r == VKT_OK)
        r = graph_backward(m->g, m->loss, grads);
    if (r == VKT_OK)
        r = graph_optimizer(m->g, &m->opt, grads);
    free(grads);
    if (r != VKT_OK)
        return vkt_error(m->ctx, r, "vkt_model_create: %s", m->g->error);
    uint32_t nv = m->g->var_count, nn = m->g->node_count;
    m->values = calloc(nv, sizeof *m->values);
    m->own = calloc(nv, sizeof *m->own);
    m->inputs = calloc(nv, sizeof *m->inputs);
    m->nodes = calloc(nn ? nn : 1, sizeof *m->nodes);
    m->train_list = calloc(nn ? nn : 1, sizeof *m->train_list);
    m->eval_nodes = calloc(nn ? nn : 1, sizeof *m->eval_nodes);
    m->eval_list = calloc(nn ? nn : 1, sizeof *m->eval_list);
    if (!m->values || !m->own || !m->inputs || !m->nodes || !m->train_list || !m->eval_nodes ||
        !m->eval_list)
        return vkt_error(m->ctx, VKT_ERROR_OUT_OF_HOST_MEMORY, "out of host memory");
    for (uint32_t v = 1; v < nv; v++)
        if (m->g->vars[v].kind == VAR_INPUT)
            m->inputs[m->input_count++] = (vkt_var)v;
    r = place_values(m);
    if (r == VKT_OK)
        r = initialise(m);
    if (r != VKT_OK)
        return r;
    bind_nodes(m);
    build_eval_list(m);
    return create_programs(m);
}

vkt_result vkt_model_create(vkt_graph *graph, const vkt_model_desc *desc, vkt_model **out_model) {
    if (!graph)
        return vkt_error(NULL, VKT_ERROR_INVALID_ARGUMENT, "vkt_model_create: graph is NULL");
    vkt_context *ctx = graph->ctx;
    vkt_clear_error(ctx);
    if (!desc || !out_model)
        return vkt_error(ctx, VKT_ERROR_INVALID_ARGUMENT, "vkt_model_create: %s is NULL",
                         !desc ? "desc" : "out_model");
    if (graph->status != VKT_OK)
        return vkt_error(ctx, graph->status, "vkt_model_create: the graph has an error: %s",
                         graph->error);
    if (!graph_var_valid(graph, desc->loss))
        return vkt_error(ctx, VKT_ERROR_INVALID_ARGUMENT,
                         "vkt_model_create: desc->loss (%d) is not a variable of the graph",
                         (int)desc->loss);
    vkt_model *m = calloc(1, sizeof *m);
    if (!m)
        return vkt_error(ctx, VKT_ERROR_OUT_OF_HOST_MEMORY, "vkt_model_create: out of memory");
    m->ctx = ctx;
    m->loss = desc->loss;
    m->opt = desc->optimizer;
    m->fuse = !desc->no_fusion;
    optimizer_desc_defaults(&m->opt);
    vkt_result r = compile(m, graph);
    if (r != VKT_OK) {
        vkt_model_destroy(m);
        return r;
    }
    *out_model = m;
    return VKT_OK;
}

void vkt_model_destroy(vkt_model *m) {
    if (!m)
        return;
    vkt_context *ctx = m->ctx;
    if (ctx->ops->wait_idle)
        ctx->ops->wait_idle(ctx);
    if (m->vulkan_destroy)
        m->vulkan_destroy(m);
    if (m->train)
        ctx->ops->program_destroy(ctx, m->train);
    if (m->eval)
        ctx->ops->program_destroy(ctx, m->eval);
    if (m->own && m->g)
        for (uint32_t v = 1; v < m->g->var_count; v++)
            if (m->own[v].block)
                vkt_memory_free(ctx, &m->own[v]);
    if (m->arena.block)
        vkt_memory_free(ctx, &m->arena);
    free(m->values);
    free(m->own);
    free(m->inputs);
    free(m->nodes);
    free(m->train_list);
    free(m->eval_nodes);
    free(m->eval_list);
    vkt_graph_destroy(m->g);
    free(m);
}

vkt_result model_feed(vkt_model *m, vkt_program *program, const vkt_feed *feeds,
                      uint32_t feed_count, const char *fn) {
    if (feed_count && !feeds)
        return vkt_error(m->ctx, VKT_ERROR_INVALID_ARGUMENT, "%s: feeds is NULL", fn);
    for (uint32_t i = 0; i < m->input_count; i++) {
        const graph_var *gv = &m->g->vars[m->inputs[i]];
        const vkt_feed *found = NULL;
        for (uint32_t f = 0; f < feed_count; f++) {
            if (feeds[f].var != m->inputs[i])
                continue;
            if (found)
                return vkt_error(m->ctx, VKT_ERROR_INVALID_ARGUMENT,
                                 "%s: input '%s' is fed twice", fn, gv->name);
            found = &feeds[f];
        }
        if (!found)
            return vkt_error(m->ctx, VKT_ERROR_INVALID_ARGUMENT, "%s: input '%s' is not fed", fn,
                             gv->name);
        size_t numel = (size_t)vkt_shape_numel(&gv->shape);
        if (!found->data || found->count != numel)
            return vkt_error(m->ctx, found->data ? VKT_ERROR_SHAPE : VKT_ERROR_INVALID_ARGUMENT,
                             "%s: input '%s' needs %zu floats, the feed has %zu%s", fn, gv->name,
                             numel, found->count, found->data ? "" : " and data is NULL");
    }
    for (uint32_t f = 0; f < feed_count; f++) {
        if (!graph_var_valid(m->g, feeds[f].var) || m->g->vars[feeds[f].var].kind != VAR_INPUT)
            return vkt_error(m->ctx, VKT_ERROR_INVALID_ARGUMENT,
                             "%s: feeds[%u] (var %d) is not an input of the model", fn, f,
                             (int)feeds[f].var);
    }
    for (uint32_t i = 0; i < m->input_count; i++)
        for (uint32_t f = 0; f < feed_count; f++)
            if (feeds[f].var == m->inputs[i])
                memcpy(m->ctx->ops->program_upload_ptr(program, i), feeds[f].data,
                       feeds[f].count * sizeof(float));
    return VKT_OK;
}

static vkt_result read_loss(vkt_model *m, vkt_program *program, const char *what,
                            float *out_loss) {
    float loss;
    memcpy(&loss, m->ctx->ops->program_download_ptr(program, 0), sizeof loss);
    if (out_loss)
        *out_loss = loss;
    if (!isfinite(loss))
        return vkt_error(m->ctx, VKT_ERROR_NON_FINITE,
                         "%s %llu: the loss is %s; the step was applied, so reload the last "
                         "checkpoint and repeat this batch with VKT_CHECK=1 or vkt_model_check to "
                         "find the first node that produced it",
                         what, (unsigned long long)m->step, isnan(loss) ? "NaN" : "infinite");
    return VKT_OK;
}

static bool check_env(void) {
    const char *v = getenv("VKT_CHECK");
    return v && *v && strcmp(v, "0") != 0;
}

vkt_result vkt_model_step(vkt_model *m, const vkt_feed *feeds, uint32_t feed_count,
                          float *out_loss) {
    if (!m)
        return vkt_error(NULL, VKT_ERROR_INVALID_ARGUMENT, "vkt_model_step: model is NULL");
    vkt_clear_error(m->ctx);
    vkt_result r = model_feed(m, m->train, feeds, feed_count, "vkt_model_step");
    if (r != VKT_OK)
        return r;
    optimizer_hyper_values(&m->opt, m->step + 1,
                           m->ctx->ops->program_upload_ptr(m->train, m->input_count));
    if (check_env())
        return model_check_step(m, out_loss);
    if (model_profile_due(m))
        return model_profile_step(m, feeds, feed_count, out_loss);
    r = m->ctx->ops->program_run(m->ctx, m->train);
    if (r != VKT_OK)
        return r;
    m->step++;
    return read_loss(m, m->train, "step", out_loss);
}

vkt_result vkt_model_evaluate(vkt_model *m, const vkt_feed *feeds, uint32_t feed_count,
                              float *out_loss) {
    if (!m)
        return vkt_error(NULL, VKT_ERROR_INVALID_ARGUMENT, "vkt_model_evaluate: model is NULL");
    vkt_clear_error(m->ctx);
    vkt_result r = model_feed(m, m->eval, feeds, feed_count, "vkt_model_evaluate");
    if (r == VKT_OK)
        r = m->ctx->ops->program_run(m->ctx, m->eval);
    if (r != VKT_OK)
        return r;
    return read_loss(m, m->eval, "evaluation after step", out_loss);
}

static vkt_result var_transfer_check(vkt_model *m, vkt_var var, const void *data, size_t count,
                                     const char *fn) {
    if (!m)
        return vkt_error(NULL, VKT_ERROR_INVALID_ARGUMENT, "%s: model is NULL", fn);
    vkt_clear_error(m->ctx);
    if (!graph_var_valid(m->g, var))
        return vkt_error(m->ctx, VKT_ERROR_INVALID_ARGUMENT, "%s: var %d is not in the model", fn,
                         (int)var);
    if (!data)
        return vkt_error(m->ctx, VKT_ERROR_INVALID_ARGUMENT, "%s: data is NULL", fn);
    if (m->g->vars[graph_root(m->g, var)].fused_away)
        return vkt_error(m->ctx, VKT_ERROR_INVALID_ARGUMENT,
                         "%s: '%s' was fused into the node that reads it and is never stored "
                         "(vkt_model_desc.no_fusion keeps it)",
                         fn, m->g->vars[var].name);
    size_t numel = (size_t)vkt_shape_numel(&m->g->vars[var].shape);
    if (count != numel)
        return vkt_error(m->ctx, VKT_ERROR_SHAPE, "%s: '%s' has %zu elements, count is %zu", fn,
                         m->g->vars[var].name, numel, count);
    return VKT_OK;
}

vkt_result vkt_model_read(vkt_model *m, vkt_var var, float *out, size_t count) {
    vkt_result r = var_transfer_check(m, var, out, count, "vkt_model_read");
    if (r != VKT_OK)
        return r;
    return m->ctx->ops->read(m->ctx, &m->values[var].view, out, count * sizeof(float));
}

vkt_result vkt_model_write(vkt_model *m, vkt_var var, const float *data, size_t count) {
    vkt_result r = var_transfer_check(m, var, data, count, "vkt_model_write");
    if (r != VKT_OK)
        return r;
    var_kind kind = m->g->vars[graph_root(m->g, var)].kind;
    if (kind != VAR_PARAMETER && kind != VAR_STATE)
        return vkt_error(m->ctx, VKT_ERROR_INVALID_ARGUMENT,
                         "vkt_model_write: '%s' is not a parameter or optimizer state (feed "
                         "inputs with vkt_model_step)",
                         m->g->vars[var].name);
    return m->ctx->ops->write(m->ctx, &m->values[var].view, data, count * sizeof(float));
}

vkt_result vkt_model_query(const vkt_model *m, vkt_model_info *out_info) {
    if (!m || !out_info)
        return vkt_error(m ? m->ctx : NULL, VKT_ERROR_INVALID_ARGUMENT,
                         "vkt_model_query: %s is NULL", !m ? "model" : "out_info");
    vkt_program_stats stats;
    m->ctx->ops->program_stats(m->train, &stats);
    *out_info = (vkt_model_info){
        .forward_nodes = m->phase_counts[PHASE_FORWARD],
        .backward_nodes = m->phase_counts[PHASE_BACKWARD],
        .optimizer_nodes = m->phase_counts[PHASE_OPTIMIZER],
        .dispatches_per_step = stats.dispatches,
        .barriers_per_step = stats.barriers,
        .submits_per_step = stats.submits_per_run,
        .step = m->step,
        .parameter_count = m->parameter_count,
        .planned_bytes = m->planned_bytes,
        .unplanned_bytes = m->unplanned_bytes,
        .persistent_bytes = m->persistent_bytes,
    };
    return VKT_OK;
}

const char *vkt_model_last_error(const vkt_model *m) {
    return m ? m->ctx->error : "model is NULL";
}
