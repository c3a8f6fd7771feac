/* check.c: check mode. Runs one training step node by node on the model's
 * device and every node again through the CPU reference on the very same
 * inputs (downloaded from the device just before the node ran), so a node
 * that differs is the culprit itself, not a victim of an earlier error. */
#include "model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* fp32 kernels against a reference that sums in double: long dot products
 * (K in the thousands) stay well inside these bounds; a wrong index does not. */
#define CHECK_ATOL 1e-4
#define CHECK_RTOL 1e-3

typedef struct host_copy {
    float *before, *after;
    size_t n;
} host_copy;

static vkt_result download(vkt_context *ctx, const vkt_value *v, float *out) {
    return ctx->ops->read(ctx, &v->view, out, v->view.bytes);
}

static void compare(const float *got, const float *want, size_t n, double *max_abs,
                    double *max_rel, bool *bad) {
    for (size_t i = 0; i < n; i++) {
        double g = got[i], w = want[i], err = fabs(g - w);
        if (isnan(g) != isnan(w) || isinf(g) != isinf(w))
            err = INFINITY;
        else if (isnan(g) || isinf(g))
            err = 0.0; /* both non-finite the same way: agreement */
        double rel = err / (fabs(w) > 1e-30 ? fabs(w) : 1e-30);
        if (err > *max_abs)
            *max_abs = err;
        if (rel > *max_rel && err > CHECK_ATOL)
            *max_rel = rel;
        if (err > CHECK_ATOL + CHECK_RTOL * fabs(w))
            *bad = true;
    }
}

/* Runs node `n` on the CPU reference from the device's pre-run contents and
 * compares with the device's post-run outputs. */
static vkt_result check_node(vkt_context *cpu, const vkt_node *n, host_copy *copies,
                             vkt_check_report *report) {
    vkt_value values[VKT_NODE_MAX_IN + VKT_NODE_MAX_OUT];
    vkt_node twin = *n;
    uint32_t total = n->nin + n->nout;
    vkt_result r = VKT_OK;
    uint32_t made = 0;
    for (uint32_t k = 0; k < total && r == VKT_OK; k++, made++) {
        const vkt_value *src = k < n->nin ? n->in[k] : n->out[k - n->nin];
        values[k] = (vkt_value){.shape = src->shape, .name = src->name};
        r = vkt_memory_alloc(cpu, src->view.bytes, &values[k].view);
        if (r != VKT_OK)
            break;
        memcpy(vkt_view_host(&values[k].view), copies[k].before, src->view.bytes);
        if (k < n->nin)
            twin.in[k] = &values[k];
        else
            twin.out[k - n->nin] = &values[k];
    }
    if (r == VKT_OK) {
        const vkt_node *list[1] = {&twin};
        r = cpu->ops->run(cpu, list, 1);
    }
    if (r == VKT_OK) {
        double max_abs = 0.0, max_rel = 0.0;
        bool bad = false;
        for (uint32_t o = 0; o < n->nout; o++)
            compare(copies[n->nin + o].after, vkt_view_host(&values[n->nin + o].view),
                    copies[n->nin + o].n, &max_abs, &max_rel, &bad);
        report->nodes_checked++;
        if (bad) {
            if (report->failures < 32) {
                vkt_check_entry *e = &report->entries[report->failures];
                snprintf(e->node, sizeof e->node, "%s", n->name);
                e->op = vkt_op_get(n->op)->name;
                e->max_abs_error = max_abs;
                e->max_rel_error = max_rel;
            }
            report->failures++;
        }
    }
    for (uint32_t k = 0; k < made; k++)
        vkt_memory_free(cpu, &values[k].view);
    return r;
}

static bool all_finite(const float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return false;
    return true;
}

/* Where NaN or Inf began. Nodes run in step order, so the first node that
 * writes a non-finite value from finite inputs is the origin; a node that
 * reads one before any node has written one got it from outside the step
 * (a fed input, or a parameter or state broken by an earlier step). Only
 * the first of these events is kept. */
static void note_non_finite(const vkt_node *n, const host_copy *copies, vkt_check_report *report) {
    uint32_t bad_out = n->nout;
    for (uint32_t o = 0; o < n->nout && bad_out == n->nout; o++)
        if (!all_finite(copies[n->nin + o].after, copies[n->nin + o].n))
            bad_out = o;
    if (bad_out < n->nout)
        report->non_finite_nodes++;
    if (report->non_finite_node[0] || report->non_finite_input[0])
        return;
    for (uint32_t k = 0; k < n->nin; k++) {
        if (!all_finite(copies[k].before, copies[k].n)) {
            snprintf(report->non_finite_input, sizeof report->non_finite_input, "%s",
                     n->in[k]->name ? n->in[k]->name : "?");
            return;
        }
    }
    if (bad_out < n->nout) {
        snprintf(report->non_finite_node, sizeof report->non_finite_node, "%s", n->name);
        report->non_finite_op = vkt_op_get(n->op)->name;
        snprintf(report->non_finite_output, sizeof report->non_finite_output, "%s",
                 n->out[bad_out]->name ? n->out[bad_out]->name : "?");
    }
}

static vkt_result run_checked(vkt_model *m, vkt_context *cpu, const vkt_node *n,
                              vkt_check_report *report) {
    vkt_context *ctx = m->ctx;
    host_copy copies[VKT_NODE_MAX_IN + VKT_NODE_MAX_OUT] = {{0}};
    uint32_t total = n->nin + n->nout;
    vkt_result r = VKT_OK;
    for (uint32_t k = 0; k < total && r == VKT_OK; k++) {
        const vkt_value *v = k < n->nin ? n->in[k] : n->out[k - n->nin];
        copies[k].n = v->view.bytes / sizeof(float);
        copies[k].before = malloc(v->view.bytes ? v->view.bytes : 1);
        copies[k].after = malloc(v->view.bytes ? v->view.bytes : 1);
        if (!copies[k].before || !copies[k].after)
            r = vkt_error(ctx, VKT_ERROR_OUT_OF_HOST_MEMORY, "check mode: out of host memory");
        else
            r = download(ctx, v, copies[k].before);
    }
    if (r == VKT_OK) {
        const vkt_node *list[1] = {n};
        r = ctx->ops->run(ctx, list, 1);
    }
    for (uint32_t o = 0; o < n->nout && r == VKT_OK; o++)
        r = download(ctx, n->out[o], copies[n->nin + o].after);
    if (r == VKT_OK)
        note_non_finite(n, copies, report);
    if (r == VKT_OK)
        r = check_node(cpu, n, copies, report);
    for (uint32_t k = 0; k < total; k++) {
        free(copies[k].before);
        free(copies[k].after);
    }
    return r;
}

vkt_result model_check(vkt_model *m, vkt_check_report *report) {
    memset(report, 0, sizeof *report);
    vkt_context *ctx = m->ctx;
    /* The step's inputs and hyperparameters sit in the training program's
     * upload slots; a node-by-node run needs them in the tensors. */
    vkt_result r = VKT_OK;
    for (uint32_t i = 0; i <= m->input_count && r == VKT_OK; i++) {
        vkt_var var = i < m->input_count ? m->inputs[i] : m->g->hyper;
        const vkt_view *view = &m->values[var].view;
        const void *src = ctx->ops->program_upload_ptr(m->train, i);
        if (view->block->host && (char *)view->block->host + view->offset == src)
            continue; /* the CPU backend's slots are the tensors themselves */
        r = ctx->ops->write(ctx, view, src, view->bytes);
    }
    vkt_context *cpu = NULL;
    if (r == VKT_OK)
        r = vkt_reference_context_create(&cpu);
    if (r != VKT_OK)
        return r == VKT_OK ? r : vkt_error(ctx, r, "check mode: %s", vkt_last_error());
    for (uint32_t i = 0; i < m->g->node_count && r == VKT_OK; i++) {
        r = run_checked(m, cpu, m->train_list[i], report);
        if (r != VKT_OK && cpu->error[0])
            r = vkt_error(ctx, r, "check mode, node '%s': %s", m->train_list[i]->name,
                          cpu->error);
    }
    vkt_context_destroy(cpu);
    for (uint32_t i = 0; i < report->failures && i < 32; i++)
        vkt_log(ctx, VKT_LOG_WARNING, "check: node '%s' (%s) differs from the CPU reference: max "
                "abs error %.3g, max rel error %.3g", report->entries[i].node,
                report->entries[i].op, report->entries[i].max_abs_error,
                report->entries[i].max_rel_error);
    return r;
}

vkt_result vkt_model_check(vkt_model *m, const vkt_feed *feeds, uint32_t feed_count,
                           vkt_check_report *out_report) {
    if (!m || !out_report)
        return vkt_error(m ? m->ctx : NULL, VKT_ERROR_INVALID_ARGUMENT,
                         "vkt_model_check: %s is NULL", !m ? "model" : "out_report");
    vkt_clear_error(m->ctx);
    vkt_result r = model_feed(m, m->train, feeds, feed_count, "vkt_model_check");
    if (r != VKT_OK)
        return r;
    optimizer_hyper_values(&m->opt, m->step + 1,
                           m->ctx->ops->program_upload_ptr(m->train, m->input_count));
    vkt_check_report report;
    r = model_check(m, &report);
    if (r != VKT_OK)
        return r;
    m->step++;
    *out_report = report;
    return VKT_OK;
}

/* A training step in check mode (VKT_CHECK=1): the checked step, then the
 * verdicts vkt_model_step owes its caller. A kernel that disagrees with the
 * CPU reference comes first: it may be why NaN appeared. */
vkt_result model_check_step(vkt_model *m, float *out_loss) {
    vkt_context *ctx = m->ctx;
    vkt_check_report report;
    vkt_result r = model_check(m, &report);
    if (r != VKT_OK)
        return r;
    m->step++; /* every node ran: the weights have changed */
    unsigned long long step = (unsigned long long)m->step;
    char origin[256] = "";
    if (report.non_finite_node[0])
        snprintf(origin, sizeof origin,
                 "node '%s' (%s) wrote the first NaN/Inf, into '%s', from finite inputs",
                 report.non_finite_node, report.non_finite_op, report.non_finite_output);
    else if (report.non_finite_input[0])
        snprintf(origin, sizeof origin,
                 "'%s' held NaN/Inf before the step (a fed input, or a parameter or optimizer "
                 "state broken by an earlier step)",
                 report.non_finite_input);
    if (report.failures)
        return vkt_error(ctx, VKT_ERROR_CHECK_FAILED,
                         "step %llu: %u node(s) differ from the CPU reference, first '%s' (%s, "
                         "max abs error %.3g)%s%s",
                         step, report.failures, report.entries[0].node, report.entries[0].op,
                         report.entries[0].max_abs_error, origin[0] ? "; " : "", origin);
    float loss;
    r = ctx->ops->read(ctx, &m->values[m->loss].view, &loss, sizeof loss);
    if (r != VKT_OK)
        return r;
    if (out_loss)
        *out_loss = loss;
    char value[32];
    snprintf(value, sizeof value, "%g", (double)loss);
    if (origin[0] || !isfinite(loss))
        return vkt_error(ctx, VKT_ERROR_NON_FINITE,
                         "step %llu (check mode): the loss is %s; %s; the step was applied, so "
                         "reload the last checkpoint to continue",
                         step, isnan(loss) ? "NaN" : isinf(loss) ? "infinite" : value,
                         origin[0] ? origin : "no node wrote NaN/Inf");
    return VKT_OK;
}
