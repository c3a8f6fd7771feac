/* model.h: a compiled graph: its values placed in memory, the recorded
 * training and evaluation programs, and the optimizer's state. */
#ifndef VKT_MODEL_H
#define VKT_MODEL_H

#include "graph.h"

struct vkt_model {
    vkt_context *ctx;
    vkt_graph *g; /* the model's own copy, with backward and optimizer nodes */
    vkt_var loss;
    vkt_optimizer_desc opt;
    bool fuse; /* graph_fuse before autodiff */
    vkt_value *values;  /* by var */
    vkt_view *own;      /* by var: persistent allocations (block NULL if none) */
    vkt_view arena;     /* every transient tensor, placed by lifetime */
    vkt_node *nodes;    /* by graph node, pointing into values */
    const vkt_node **train_list;
    vkt_node *eval_nodes;
    const vkt_node **eval_list;
    uint32_t eval_count;
    vkt_program *train, *eval;
    vkt_var *inputs; /* upload order: inputs, then hyper (training only) */
    uint32_t input_count;
    uint64_t step;
    uint64_t planned_bytes, unplanned_bytes, persistent_bytes, parameter_count;
    uint32_t phase_counts[3];
    /* Recordings into an engine's command buffers and the inputs they read
     * (runtime/vulkan/vk_external.c), made on first use; the destroy hook
     * keeps this file free of backend code. */
    void *vulkan;
    void (*vulkan_destroy)(vkt_model *m);
};

/* planner.c: writes each transient var's offset in the arena (by var) and
 * the arena's size; *out_unplanned gets the sum of all transient sizes. */
vkt_result plan_arena(const vkt_graph *g, uint32_t alignment, uint64_t *offsets,
                      uint64_t *out_size, uint64_t *out_unplanned);

/* check.c */
vkt_result model_check(vkt_model *m, vkt_check_report *report);
/* A vkt_model_step under VKT_CHECK=1. */
vkt_result model_check_step(vkt_model *m, float *out_loss);
/* profile.c: VKT_PROFILE (vkt_model_step takes a due step through
 * model_profile_step, which logs or writes the table). */
bool model_profile_due(const vkt_model *m);
vkt_result model_profile_step(vkt_model *m, const vkt_feed *feeds, uint32_t feed_count,
                              float *out_loss);
/* model.c: copies the feeds into a program's upload slots. */
vkt_result model_feed(vkt_model *m, vkt_program *program, const vkt_feed *feeds,
                      uint32_t feed_count, const char *fn);

#endif
