/* profile.c: one training step with per-node timings (vkt_model_profile),
 * its text table (vkt_profile_format), and the VKT_PROFILE hook that
 * vkt_model_step calls.
 *
 * The profiled step is the model's own node list, recorded once more into
 * a command buffer with timestamps (vk_profile.c), so its dispatches and
 * barriers are those of the recorded training step; the inputs go to the
 * device through the same upload slots, as eager copies just before. */
#include "model.h"

#include "../vulkan/vk_profile.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

/* Copies the feeds and this step's hyperparameters to the device, as the
 * recorded step's upload copies would. */
static vkt_result upload_inputs(vkt_model *m, const vkt_feed *feeds, uint32_t feed_count) {
    vkt_context *ctx = m->ctx;
    vkt_result r = model_feed(m, m->train, feeds, feed_count, "vkt_model_profile");
    if (r != VKT_OK)
        return r;
    optimizer_hyper_values(&m->opt, m->step + 1,
                           ctx->ops->program_upload_ptr(m->train, m->input_count));
    for (uint32_t i = 0; i <= m->input_count && r == VKT_OK; i++) {
        const vkt_view *v = &m->values[i < m->input_count ? m->inputs[i] : m->g->hyper].view;
        r = ctx->ops->write(ctx, v, ctx->ops->program_upload_ptr(m->train, i), v->bytes);
    }
    return r;
}

/* The CPU backend has no device timeline: each node is run and timed on its
 * own with the host clock. */
static vkt_result time_nodes_on_host(vkt_context *ctx, const vkt_node *const *nodes,
                                     size_t count, vkt_node_timings *out) {
    *out = (vkt_node_timings){0};
    out->dispatches = calloc(count ? count : 1, sizeof *out->dispatches);
    if (!out->dispatches)
        return vkt_error(ctx, VKT_ERROR_OUT_OF_HOST_MEMORY, "out of host memory for a profile");
    /* The gaps between nodes (the clock reads) belong to the nodes after
     * them, so the nodes tile the whole time as on a device. */
    double start = now_ms(), prev = start;
    for (size_t i = 0; i < count; i++) {
        double t0 = now_ms();
        vkt_result r = ctx->ops->run(ctx, &nodes[i], 1);
        double t1 = now_ms();
        if (r != VKT_OK)
            return r;
        out->dispatches[i] = (vkt_dispatch_timing){
            .node = (uint32_t)i, .kernel = vkt_op_get(nodes[i]->op)->name,
            .gap_ms = t0 - prev, .kernel_ms = t1 - t0};
        out->dispatch_count++;
        prev = t1;
    }
    out->device_ms = out->wall_ms = prev - start;
    return VKT_OK;
}

static int by_time_desc(const void *a, const void *b) {
    double x = ((const vkt_profile_kernel *)a)->ms, y = ((const vkt_profile_kernel *)b)->ms;
    return (x < y) - (x > y);
}

static void fill_report(const vkt_model *m, const vkt_node_timings *t, bool timestamps,
                        vkt_profile_report *rep) {
    memset(rep, 0, sizeof *rep);
    rep->device_timestamps = timestamps;
    rep->wall_ms = t->wall_ms;
    rep->device_ms = t->device_ms;
    rep->tail_ms = t->tail_ms;
    rep->node_count = m->g->node_count;
    uint32_t filled = rep->node_count < VKT_PROFILE_MAX_NODES ? rep->node_count
                                                               : VKT_PROFILE_MAX_NODES;
    for (uint32_t i = 0; i < filled; i++) {
        const vkt_node *n = m->train_list[i];
        snprintf(rep->nodes[i].node, sizeof rep->nodes[i].node, "%s", n->name ? n->name : "");
        rep->nodes[i].op = vkt_op_get(n->op)->name;
        rep->nodes[i].kernel = "";
    }
    for (uint32_t d = 0; d < t->dispatch_count; d++) {
        const vkt_dispatch_timing *dt = &t->dispatches[d];
        rep->dispatches++;
        rep->barriers += dt->barrier;
        rep->kernels_ms += dt->kernel_ms;
        if (dt->node < filled) {
            vkt_profile_node *pn = &rep->nodes[dt->node];
            if (!pn->dispatches && timestamps)
                pn->kernel = dt->kernel;
            pn->dispatches++;
            pn->ms += dt->gap_ms + dt->kernel_ms;
            pn->kernel_ms += dt->kernel_ms;
        }
        uint32_t k = 0;
        while (k < rep->kernel_count && strcmp(rep->kernels[k].kernel, dt->kernel) != 0)
            k++;
        if (k == rep->kernel_count) {
            if (k == VKT_PROFILE_MAX_KERNELS)
                continue;
            rep->kernels[rep->kernel_count++] = (vkt_profile_kernel){.kernel = dt->kernel};
        }
        rep->kernels[k].dispatches++;
        rep->kernels[k].ms += dt->kernel_ms;
    }
    qsort(rep->kernels, rep->kernel_count, sizeof rep->kernels[0], by_time_desc);
    rep->idle_ms = rep->device_ms > rep->kernels_ms ? rep->device_ms - rep->kernels_ms : 0.0;
}

vkt_result vkt_model_profile(vkt_model *m, const vkt_feed *feeds, uint32_t feed_count,
                             vkt_profile_report *out_report) {
    if (!m)
        return vkt_error(NULL, VKT_ERROR_INVALID_ARGUMENT, "vkt_model_profile: model is NULL");
    vkt_context *ctx = m->ctx;
    vkt_clear_error(ctx);
    if (!out_report)
        return vkt_error(ctx, VKT_ERROR_INVALID_ARGUMENT, "vkt_model_profile: out_report is NULL");
    vkt_result r = upload_inputs(m, feeds, feed_count);
    if (r != VKT_OK)
        return r;
    bool timestamps = ctx->backend == VKT_BACKEND_VULKAN;
    vkt_node_timings t = {0};
    r = timestamps ? vkt_vulkan_time_nodes(ctx, m->train_list, m->g->node_count, &t)
                   : time_nodes_on_host(ctx, m->train_list, m->g->node_count, &t);
    float loss = NAN;
    if (r == VKT_OK)
        r = ctx->ops->read(ctx, &m->values[m->loss].view, &loss, sizeof loss);
    if (r == VKT_OK) {
        m->step++;
        fill_report(m, &t, timestamps, out_report);
        out_report->loss = loss;
    }
    free(t.dispatches);
    return r;
}

/* snprintf into buf at *len, counting what would not fit. */
static void put(char *buf, size_t size, size_t *len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void put(char *buf, size_t size, size_t *len, const char *fmt, ...) {
    va_list args;
    va_start(args, fmt);
    int n = vsnprintf(*len < size ? buf + *len : NULL, *len < size ? size - *len : 0, fmt, args);
    va_end(args);
    if (n > 0)
        *len += (size_t)n;
}

size_t vkt_profile_format(const vkt_profile_report *r, char *buf, size_t size) {
    size_t len = 0;
    if (buf && size)
        buf[0] = '\0';
    if (!r)
        return 0;
    double total = r->device_ms > 0 ? r->device_ms : 1.0;
    put(buf, size, &len,
        "profile: %u nodes, %u dispatches, %u barriers; %s %.3f ms = kernels %.3f + "
        "barriers/idle %.3f (%.1f%%); host wall %.3f ms\n",
        r->node_count, r->dispatches, r->barriers,
        r->device_timestamps ? "device" : "host", r->device_ms, r->kernels_ms, r->idle_ms,
        100.0 * r->idle_ms / total, r->wall_ms);
    put(buf, size, &len, "  %-32s %-18s %-18s %4s %9s %9s %6s\n", "node", "op", "kernel", "disp",
        "ms", "kernel", "share");
    uint32_t filled = r->node_count < VKT_PROFILE_MAX_NODES ? r->node_count
                                                             : VKT_PROFILE_MAX_NODES;
    for (uint32_t i = 0; i < filled; i++) {
        const vkt_profile_node *n = &r->nodes[i];
        put(buf, size, &len, "  %-32.32s %-18.18s %-18.18s %4u %9.3f %9.3f %5.1f%%\n", n->node,
            n->op ? n->op : "", n->kernel ? n->kernel : "", n->dispatches, n->ms, n->kernel_ms,
            100.0 * n->ms / total);
    }
    if (r->tail_ms > 0)
        put(buf, size, &len, "  %-32s %-18s %-18s %4s %9.3f %9s %5.1f%%\n", "(after the last)",
            "", "", "", r->tail_ms, "", 100.0 * r->tail_ms / total);
    put(buf, size, &len, "  %-32s %4s %9s %6s\n", "kernel", "disp", "ms", "share");
    for (uint32_t k = 0; k < r->kernel_count; k++)
        put(buf, size, &len, "  %-32.32s %4u %9.3f %5.1f%%\n", r->kernels[k].kernel,
            r->kernels[k].dispatches, r->kernels[k].ms, 100.0 * r->kernels[k].ms / total);
    return len;
}

/* VKT_PROFILE: unset, empty or "0" off; "1" to the log callback; anything
 * else is a file the table is appended to. */
bool model_profile_due(const vkt_model *m) {
    const char *v = getenv("VKT_PROFILE");
    return v && *v && strcmp(v, "0") != 0 && m->step == 2;
}

vkt_result model_profile_step(vkt_model *m, const vkt_feed *feeds, uint32_t feed_count,
                              float *out_loss) {
    vkt_profile_report *rep = malloc(sizeof *rep);
    if (!rep)
        return vkt_error(m->ctx, VKT_ERROR_OUT_OF_HOST_MEMORY, "out of host memory for a profile");
    vkt_result r = vkt_model_profile(m, feeds, feed_count, rep);
    size_t len = r == VKT_OK ? vkt_profile_format(rep, NULL, 0) : 0;
    char *table = r == VKT_OK ? malloc(len + 1) : NULL;
    if (table) {
        vkt_profile_format(rep, table, len + 1);
        const char *dest = getenv("VKT_PROFILE");
        if (strcmp(dest, "1") == 0) {
            for (char *line = strtok(table, "\n"); line; line = strtok(NULL, "\n"))
                vkt_log(m->ctx, VKT_LOG_INFO, "%s", line);
        } else {
            FILE *f = fopen(dest, "a");
            if (f) {
                fputs(table, f);
                fclose(f);
            } else {
                vkt_log(m->ctx, VKT_LOG_WARNING, "VKT_PROFILE: cannot open '%s'", dest);
            }
        }
    }
    float loss = r == VKT_OK ? rep->loss : NAN;
    free(table);
    free(rep);
    if (r != VKT_OK)
        return r;
    if (out_loss)
        *out_loss = loss;
    if (!isfinite(loss))
        return vkt_error(m->ctx, VKT_ERROR_NON_FINITE,
                         "step %llu: the loss is %s; run with VKT_CHECK=1 or vkt_model_check to "
                         "find the first node that produced it",
                         (unsigned long long)m->step, isnan(loss) ? "NaN" : "infinite");
    return VKT_OK;
}
