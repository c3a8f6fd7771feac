/* matmul.c: C (M, N) = op(A) (M, K) * op(B) (K, N), op = identity or
 * transpose, optionally accumulating into C. The three variants a linear
 * layer needs are all this one op: forward X W^T, input gradient dY W,
 * weight gradient dY^T X.
 * reference: https://pytorch.org/docs/stable/generated/torch.matmul.html */
#include "op.h"

#include <stdio.h>

/* Element (m, k) of op(A) is a[m * sm + k * sk]. */
typedef struct strides {
    uint32_t sm, sk;
} strides;

static void matmul_dims(const vkt_node *node, int64_t *m, int64_t *n, int64_t *k) {
    const vkt_shape *a = &node->in[0]->shape, *b = &node->in[1]->shape;
    *m = node->p.matmul.transpose_a ? a->dims[1] : a->dims[0];
    *k = node->p.matmul.transpose_a ? a->dims[0] : a->dims[1];
    *n = node->p.matmul.transpose_b ? b->dims[0] : b->dims[1];
}

static vkt_result matmul_infer(const vkt_node *node, vkt_shape *out, char *err, size_t size) {
    const vkt_shape *a = &node->in[0]->shape, *b = &node->in[1]->shape;
    char sa[64], sb[64];
    if (a->ndim != 2 || b->ndim != 2) {
        snprintf(err, size, "A %s and B %s must both be 2-D", vkt_shape_format(a, sa, 64),
                 vkt_shape_format(b, sb, 64));
        return VKT_ERROR_SHAPE;
    }
    int64_t m, n, k;
    matmul_dims(node, &m, &n, &k);
    int64_t kb = node->p.matmul.transpose_b ? b->dims[1] : b->dims[0];
    if (k != kb) {
        snprintf(err, size, "inner dimensions differ: op(A) from A %s%s has K = %lld, op(B) from "
                 "B %s%s has K = %lld", vkt_shape_format(a, sa, 64),
                 node->p.matmul.transpose_a ? " transposed" : "", (long long)k,
                 vkt_shape_format(b, sb, 64), node->p.matmul.transpose_b ? " transposed" : "",
                 (long long)kb);
        return VKT_ERROR_SHAPE;
    }
    out[0] = (vkt_shape){.ndim = 2, .dims = {m, n}};
    return VKT_OK;
}

// ---- CPU reference

static void matmul_cpu(const vkt_node *node) {
    int64_t M, N, K;
    matmul_dims(node, &M, &N, &K);
    const float *a = vkt_view_host(&node->in[0]->view); // (M, K) or (K, M)
    const float *b = vkt_view_host(&node->in[1]->view); // (K, N) or (N, K)
    float *c = vkt_view_host(&node->out[0]->view);      // (M, N)
    int64_t a_sm = node->p.matmul.transpose_a ? 1 : K, a_sk = node->p.matmul.transpose_a ? M : 1;
    int64_t b_sk = node->p.matmul.transpose_b ? 1 : N, b_sn = node->p.matmul.transpose_b ? K : 1;
    for (int64_t m = 0; m < M; m++) {
        for (int64_t n = 0; n < N; n++) {
            double sum = 0.0;
            for (int64_t k = 0; k < K; k++)
                sum += (double)a[m * a_sm + k * a_sk] * (double)b[k * b_sk + n * b_sn];
            if (node->p.matmul.accumulate)
                sum += c[m * N + n];
            c[m * N + n] = (float)sum;
        }
    }
}

// ---- Vulkan dispatch

static void matmul_record(const vkt_node *node, vkt_recorder *rec) {
    const vkt_tuning *t = vkt_recorder_tuning(rec);
    int64_t M, N, K;
    matmul_dims(node, &M, &N, &K);
    vkt_matmul_push push = {
        .m = (uint32_t)M, .n = (uint32_t)N, .k = (uint32_t)K,
        .a_stride_m = node->p.matmul.transpose_a ? 1 : (uint32_t)K,
        .a_stride_k = node->p.matmul.transpose_a ? (uint32_t)M : 1,
        .b_stride_k = node->p.matmul.transpose_b ? 1 : (uint32_t)N,
        .b_stride_n = node->p.matmul.transpose_b ? (uint32_t)K : 1,
        .accumulate = node->p.matmul.accumulate,
    };
    uint32_t spec[4] = {t->matmul_wg_x, t->matmul_wg_y, t->matmul_tm, t->matmul_tn};
    vkt_dispatch d = {
        .kernel = VKT_KERNEL_MATMUL,
        .spec = spec, .spec_count = 4,
        .views = {&node->in[0]->view, &node->in[1]->view, &node->out[0]->view},
        .view_count = 3,
        .write_mask = 1u << 2,
        .push = &push, .push_size = sizeof push,
        .groups = {vkt_div_up((uint64_t)N, t->matmul_wg_x * t->matmul_tn),
                   vkt_div_up((uint64_t)M, t->matmul_wg_y * t->matmul_tm), 1},
    };
    vkt_record_dispatch(rec, &d);
}

const vkt_op_def vkt_op_matmul_def = {
    .name = "matmul", .nin = 2, .nout = 1,
    .infer = matmul_infer, .cpu = matmul_cpu, .record = matmul_record,
};
