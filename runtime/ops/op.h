/* op.h: the op table, the single source of truth for what vktrain can compute.
 *
 * An op is a shape rule, a CPU reference (plain loops, the oracle) and a
 * Vulkan record function that emits kernel dispatches. Each op family lives in
 * one file in runtime/ops/ with a "CPU reference" and a "Vulkan dispatch"
 * section; its shaders are shaders/<op>*.comp; its tests tests/test_<family>.c.
 */
#ifndef VKT_OP_H
#define VKT_OP_H

#include "../core/internal.h"
#include "kernels.h"

typedef enum vkt_op {
    VKT_OP_MATMUL,
    VKT_OP_BIAS_ADD,
    VKT_OP_COLUMN_SUM,
    VKT_OP_ADD,
    VKT_OP_SUB,
    VKT_OP_MUL,
    VKT_OP_SCALE,
    VKT_OP_FILL,
    VKT_OP_RELU,
    VKT_OP_RELU_BWD,
    /* activation ops (activation.c) */
    /* loss and reduction ops (loss.c, reduce.c) */
    /* optimizer ops (optimizer.c) */
    VKT_OP_COUNT
} vkt_op;

#define VKT_NODE_MAX_IN 6
#define VKT_NODE_MAX_OUT 4

/* Per-op parameters; each op reads only its own member. */
typedef union vkt_op_params {
    struct {
        bool transpose_a, transpose_b, accumulate;
    } matmul;
    struct {
        bool accumulate;
    } reduce;
    struct {
        float value;
    } scalar;
    /* activation params */
    /* loss params */
    /* optimizer params */
} vkt_op_params;

/* The per-step hyperparameter buffer: a small f32 device tensor the host
 * rewrites before every step (inside the recorded command buffer, from
 * staging), so learning-rate schedules and bias corrections change every
 * step without re-recording. Ops that need them take it as an input. */
enum {
    VKT_HYPER_LR = 0,       /* learning rate of this step */
    VKT_HYPER_BIAS1 = 1,    /* 1 - beta1^t (Adam bias correction) */
    VKT_HYPER_BIAS2 = 2,    /* 1 - beta2^t */
    VKT_HYPER_STEP = 3,     /* t, 1-based, exact up to 2^24 */
    VKT_HYPER_GRAD_SCALE = 4, /* 1, or the clip factor written on device */
    VKT_HYPER_COUNT = 8
};

typedef struct vkt_node {
    vkt_op op;
    const char *name; /* for error messages: a graph node's or a tensor's */
    uint32_t nin, nout;
    const vkt_value *in[VKT_NODE_MAX_IN];
    const vkt_value *out[VKT_NODE_MAX_OUT];
    vkt_op_params p;
} vkt_node;

/* The Vulkan backend's recorder; ops only call the functions below. */
typedef struct vkt_recorder vkt_recorder;

/* Device-chosen launch parameters (from the device's limits), passed to
 * kernels as specialization constants. */
typedef struct vkt_tuning {
    uint32_t subgroup_size;
    uint32_t workgroup_1d;  /* elementwise kernels */
    uint32_t matmul_wg_x, matmul_wg_y; /* invocations per workgroup */
    uint32_t matmul_tm, matmul_tn;     /* outputs per invocation (rows, cols) */
    uint32_t reduce_wg;               /* column-sum workgroup */
} vkt_tuning;

const vkt_tuning *vkt_recorder_tuning(const vkt_recorder *rec);

/* One kernel dispatch. views[i] is bound at binding i; bit i of write_mask
 * says the kernel writes binding i (the recorder uses this to place only the
 * barriers that are needed). */
typedef struct vkt_dispatch {
    vkt_kernel kernel;
    const uint32_t *spec; /* specialization constants 0..spec_count-1 */
    uint32_t spec_count;
    const vkt_view *views[VKT_NODE_MAX_IN + VKT_NODE_MAX_OUT];
    uint32_t view_count;
    uint32_t write_mask;
    const void *push;
    uint32_t push_size;
    uint32_t groups[3];
} vkt_dispatch;

void vkt_record_dispatch(vkt_recorder *rec, const vkt_dispatch *dispatch);

typedef struct vkt_op_def {
    const char *name;
    uint32_t nin, nout;
    /* Checks the inputs' shapes and writes the output shapes. On a mismatch
     * writes a message (naming operands by role) to err and returns
     * VKT_ERROR_SHAPE. Outputs that already have a shape (accumulating
     * ops) are passed in out_shapes as given. */
    vkt_result (*infer)(const vkt_node *node, vkt_shape *out_shapes, char *err, size_t err_size);
    void (*cpu)(const vkt_node *node);
    void (*record)(const vkt_node *node, vkt_recorder *rec);
} vkt_op_def;

const vkt_op_def *vkt_op_get(vkt_op op);

/* Op definitions, one per op family file. */
extern const vkt_op_def vkt_op_matmul_def;
extern const vkt_op_def vkt_op_bias_add_def, vkt_op_column_sum_def;
extern const vkt_op_def vkt_op_add_def, vkt_op_sub_def, vkt_op_mul_def;
extern const vkt_op_def vkt_op_scale_def, vkt_op_fill_def;
extern const vkt_op_def vkt_op_relu_def, vkt_op_relu_bwd_def;
/* activation op defs */
/* loss op defs */
/* optimizer op defs */

/* Helpers for op files. */
uint32_t vkt_div_up(uint64_t n, uint32_t d);
/* Number of workgroups along x (and y when x would exceed the device's
 * limit) for n items in groups of `wg`; writes groups[0..1]. */
void vkt_grid_1d(uint64_t n, uint32_t wg, uint32_t groups[3]);

/* Records a kernel that maps node->in[0..nin) to node->out[0] element by
 * element over out[0]'s element count, with push {n, p.scalar.value} and
 * spec {workgroup_1d, variant}. */
void vkt_record_pointwise(const vkt_node *node, vkt_recorder *rec, vkt_kernel kernel,
                          uint32_t variant);

#endif
