/* harness.h: shared test helpers. Contexts with validation on (any message
 * fails the test), values with guard words that catch out-of-bounds writes,
 * seeded random data, error metrics that report the worst element, a
 * GPU-against-CPU runner for any op of the op table, and finite-difference
 * gradients. */
#ifndef VKT_TEST_HARNESS_H
#define VKT_TEST_HARNESS_H

#include "../runtime/ops/op.h"

#include <criterion/criterion.h>

/* A Vulkan context on the default device with the validation layer on. */
vkt_context *h_vulkan(void);
vkt_context *h_cpu(void);
/* Fails the test if the context saw validation messages, then destroys it. */
void h_finish(vkt_context *ctx);

/* A node-level value with GUARD floats of sentinel on both sides. */
#define H_GUARD 64
typedef struct h_value {
    vkt_value value;
    vkt_view full;
    size_t numel;
} h_value;

void h_value_alloc(vkt_context *ctx, h_value *hv, vkt_shape shape);
void h_value_free(vkt_context *ctx, h_value *hv);
void h_value_upload(vkt_context *ctx, h_value *hv, const float *data);
/* Downloads and fails the test if a guard word changed. */
void h_value_download(vkt_context *ctx, const h_value *hv, float *out);
void h_run(vkt_context *ctx, const vkt_node *node);

vkt_shape h_shape1(int64_t a);
vkt_shape h_shape2(int64_t a, int64_t b);
vkt_shape h_shape4(int64_t a, int64_t b, int64_t c, int64_t d);

/* Deterministic uniform floats in [lo, hi). */
void h_random(float *out, size_t n, uint64_t seed, float lo, float hi);
float *h_alloc_floats(size_t n);

/* Fails unless |got - want| <= atol + rtol * |want| everywhere; the message
 * names `what`, the worst index, both values and the NMSE. */
void h_assert_close(const float *got, const float *want, size_t n, double atol, double rtol,
                    const char *what);

/* Runs `node` (its in/out pointers are ignored: shapes come from in_shapes
 * and the op's shape rule, or out_shapes where given) on the CPU backend and
 * on Vulkan with the same random inputs (uniform in [lo, hi), or `inputs`
 * when not NULL) and the same initial outputs (random: accumulating ops read
 * them), and compares every output. */
typedef struct h_op_case {
    vkt_op op;
    vkt_op_params params;
    uint32_t nin, nout;
    vkt_shape in_shapes[VKT_NODE_MAX_IN];
    vkt_shape out_shapes[VKT_NODE_MAX_OUT]; /* ndim 0: inferred */
    const float *inputs[VKT_NODE_MAX_IN];   /* optional fixed input data */
    float lo, hi;
    double atol, rtol;
    uint64_t seed;
} h_op_case;

void h_compare_op(vkt_context *gpu, vkt_context *cpu, const h_op_case *c);

/* One node on one backend with guard words around every value: make
 * allocates inputs (filled from inputs[i]) and outputs (shapes from the op's
 * shape rule); output downloads output o into new memory (free it). */
typedef struct h_node_run {
    vkt_node node;
    h_value v[VKT_NODE_MAX_IN + VKT_NODE_MAX_OUT];
} h_node_run;
void h_node_run_make(h_node_run *r, vkt_context *ctx, vkt_op op, vkt_op_params p, uint32_t nin,
                     const vkt_shape *in_shapes, const float *const *inputs);
float *h_node_run_output(h_node_run *r, vkt_context *ctx, uint32_t o);
void h_node_run_free(h_node_run *r, vkt_context *ctx);

/* A pool of random-filled values for one check: h_pool_value allocates and
 * fills one (uniform in [lo, hi) from seed), h_pool_release frees them all. */
h_value *h_pool_value(vkt_context *ctx, vkt_shape shape, uint64_t seed, float lo, float hi);
void h_pool_release(vkt_context *ctx);

/* Numerical gradient, in double, of L = sum_j w[j] * out[out_index][j] with
 * respect to input `in_index`, by central differences of step eps, running
 * `node` on the CPU backend (its values must be allocated there). Writes
 * numel(input) values to grad. */
void h_numeric_grad(vkt_context *cpu, const vkt_node *node, uint32_t in_index,
                    uint32_t out_index, const float *w, double eps, double *grad);

#endif
