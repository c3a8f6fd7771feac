/* cpu_fast.h: the fast CPU backend's kernels. The fast backend is the CPU
 * backend of cpu_backend.c (host blocks, programs that run nodes in order)
 * with one difference: a node runs through a fast float kernel where there
 * is one, and through its op's reference otherwise.
 *
 * A fast kernel computes what its op's reference computes (same epilogue
 * order, same NaN rules, same optimizer formulas) in float arithmetic with
 * loops the compiler can vectorize, and matmuls through sgemm; results agree
 * with the reference to float rounding, which tests/test_cpu_fast.c and
 * vkt-validate check. */
#ifndef VKT_CPU_FAST_H
#define VKT_CPU_FAST_H

#include "../ops/op.h"

typedef void (*vkt_cpu_fast_fn)(const vkt_node *node);

/* The fast kernel of `op`, or NULL: the op runs through its reference. */
vkt_cpu_fast_fn vkt_cpu_fast_kernel(vkt_op op);

/* What the fast backend computes matmuls with, as vkt_context_info's
 * device_name: "CPU (OpenBLAS 0.3.21, 2 threads)" or "CPU (built-in sgemm)". */
void vkt_cpu_fast_describe(char *buf, size_t size);

/* One matmul with the matmul ops' meaning: C (M, N) = op(A) op(B), then the
 * epilogue in the reference's order: the old C added (accumulate), bias
 * added, ReLU. Element (m, k) of op(A) is at a[m * K + k], or at
 * a[k * M + m] with transpose_a; likewise for B. C must not overlap A or B. */
typedef struct vkt_sgemm {
    int64_t m, n, k;
    const float *a;    // (M, K), or (K, M) with transpose_a
    const float *b;    // (K, N), or (N, K) with transpose_b
    const float *bias; // (N), or NULL
    float *c;          // (M, N)
    bool transpose_a, transpose_b, accumulate, relu;
} vkt_sgemm;

/* Kernels of the row-wise ops (cpu_fast_rows.c), the optimizers
 * (cpu_fast_optim.c), the convolutions (cpu_fast_conv.c) and max pooling
 * (cpu_fast_pool.c), for the table in cpu_fast.c. */
void vkt_cpu_fast_softmax(const vkt_node *node);
void vkt_cpu_fast_softmax_bwd(const vkt_node *node);
void vkt_cpu_fast_softmax_ce(const vkt_node *node);
void vkt_cpu_fast_mse(const vkt_node *node);
void vkt_cpu_fast_bce_logits(const vkt_node *node);
void vkt_cpu_fast_sgd(const vkt_node *node);
void vkt_cpu_fast_adam(const vkt_node *node);
void vkt_cpu_fast_sum_squares(const vkt_node *node);
void vkt_cpu_fast_conv2d(const vkt_node *node);
void vkt_cpu_fast_conv2d_bwd_input(const vkt_node *node);
void vkt_cpu_fast_conv2d_bwd_weight(const vkt_node *node);
void vkt_cpu_fast_conv2d_bwd_bias(const vkt_node *node);
void vkt_cpu_fast_maxpool2d(const vkt_node *node);
void vkt_cpu_fast_maxpool2d_bwd(const vkt_node *node);

/* Through OpenBLAS when vktrain was built with it, else the built-in. */
void vkt_cpu_sgemm(const vkt_sgemm *g);
/* The blocked plain-C sgemm, whichever vkt_cpu_sgemm uses, so tests check
 * it on every build. */
void vkt_cpu_sgemm_builtin(const vkt_sgemm *g);

#endif
