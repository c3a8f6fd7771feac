/* matmul.c: C (M, N) = op(A) (M, K) * op(B) (K, N), op = identity or
 * transpose, optionally accumulating into C. The three variants a linear
 * layer needs are all this one op: forward X W^T, input gradient dY W,
 * weight gradient dY^T X. matmul_bias is the fused forward of a linear
 * layer: C = op(A) op(B) + bias, optionally followed by ReLU, in one kernel
 * (the bias add and the activation ride in the matmul's epilogue instead of
 * two more passes over C).
 * reference: https://pytorch.org/docs/stable/generated/torch.matmul.html
 * reference: https://pytorch.org/docs/stable/generated/torch.nn.Linear.html */
#include "op.h"

#include <stdio.h>

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

static vkt_result matmul_bias_infer(const vkt_node *node, vkt_shape *out, char *err,
                                    size_t size) {
    vkt_result r = matmul_infer(node, out, err, size);
    const vkt_shape *bias = &node->in[2]->shape;
    if (r == VKT_OK && (bias->ndim != 1 || bias->dims[0] != out[0].dims[1])) {
        char sb[64], sc[64];
        snprintf(err, size, "bias %s must be 1-D with the N = %lld columns of C %s",
                 vkt_shape_format(bias, sb, 64), (long long)out[0].dims[1],
                 vkt_shape_format(&out[0], sc, 64));
        return VKT_ERROR_SHAPE;
    }
    return r;
}

// ---- CPU reference

/* The epilogue in the kernels' order: old C, bias, ReLU (PyTorch's ReLU
 * also gives 0 at 0). */
static void matmul_cpu_common(const vkt_node *node, const float *bias, bool relu) {
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
            if (bias)
                sum += bias[n];
            float v = (float)sum;
            c[m * N + n] = relu ? (v > 0.0f ? v : 0.0f) : v;
        }
    }
}

static void matmul_cpu(const vkt_node *node) { matmul_cpu_common(node, NULL, false); }

static void matmul_bias_cpu(const vkt_node *node) {
    const float *bias = vkt_view_host(&node->in[2]->view); // (N)
    matmul_cpu_common(node, bias, node->p.matmul.relu);
}

// ---- Vulkan dispatch

/* The register-blocked kernels read each operand 4 floats at a time along
 * its contiguous dimension (K for A as is and B transposed, M for A
 * transposed, N for B as is), told that dimension's residue mod 4 so that
 * misaligned rows cost no more than aligned ones; VKT_MATMUL_SCALAR says the
 * binding can only be read one float at a time. */
enum { VKT_MATMUL_SCALAR = 4 };

static uint32_t operand_mod(bool transposed, bool is_a, uint32_t M, uint32_t N, uint32_t K) {
    uint32_t contiguous = is_a ? (transposed ? M : K) : (transposed ? K : N);
    return contiguous % 4;
}

/* A storage-buffer binding read as vec4s must cover whole vec4s: the view
 * rounded up to 16 bytes, which allocations (256-byte aligned and sized)
 * always have room for. */
static bool ssbo_vec4_view(const vkt_view *v, vkt_view *out) {
    *out = *v;
    out->bytes = (v->bytes + 15) / 16 * 16;
    return v->offset % 16 == 0 && v->offset + out->bytes <= v->block->size;
}

static void record_reg(vkt_recorder *rec, vkt_dispatch *d, const vkt_matmul_push *push,
                       bool ta, bool tb, bool texel, uint32_t spec[9], vkt_view rounded[2]) {
    const vkt_tuning *t = vkt_recorder_tuning(rec);
    uint32_t mod_a = t->matmul_vec4 ? operand_mod(ta, true, push->m, push->n, push->k)
                                    : VKT_MATMUL_SCALAR;
    uint32_t mod_b = t->matmul_vec4 ? operand_mod(tb, false, push->m, push->n, push->k)
                                    : VKT_MATMUL_SCALAR;
    if (texel) {
        if (!vkt_recorder_texel_ok(rec, d->views[0], true))
            mod_a = VKT_MATMUL_SCALAR;
        if (!vkt_recorder_texel_ok(rec, d->views[1], true))
            mod_b = VKT_MATMUL_SCALAR;
        d->texel_mask = 3u;
        d->texel_vec4_mask = (mod_a != VKT_MATMUL_SCALAR ? 1u : 0u) |
                             (mod_b != VKT_MATMUL_SCALAR ? 2u : 0u);
    } else {
        uint32_t *mods[2] = {&mod_a, &mod_b};
        for (int i = 0; i < 2; i++) {
            if (*mods[i] == VKT_MATMUL_SCALAR)
                continue;
            if (ssbo_vec4_view(d->views[i], &rounded[i]))
                d->views[i] = &rounded[i];
            else
                *mods[i] = VKT_MATMUL_SCALAR;
        }
    }
    spec[0] = t->matmul_wg_x;
    spec[1] = t->matmul_wg_y;
    spec[2] = ta;
    spec[3] = tb;
    spec[4] = mod_a;
    spec[5] = mod_b;
    /* CPU drivers run both sides of a branch under a lane mask: the
     * epilogue's choices are constants, so only the taken path exists. */
    spec[6] = push->flags;
    spec[7] = push->n % 4 == 0;
    spec[8] = push->k % 4;
    d->kernel = texel ? VKT_KERNEL_MATMUL_REG : VKT_KERNEL_MATMUL_REG_SSBO;
    d->spec = spec;
    d->spec_count = 9;
    d->groups[0] = vkt_div_up(push->n, t->matmul_wg_x * VKT_MATMUL_REG_TN);
    d->groups[1] = vkt_div_up(push->m, t->matmul_wg_y * VKT_MATMUL_REG_TM);
}

void vkt_record_matmul(vkt_recorder *rec, const vkt_view *a, const vkt_view *b,
                       const vkt_view *bias, const vkt_view *c, uint32_t M, uint32_t N,
                       uint32_t K, bool transpose_a, bool transpose_b, uint32_t flags) {
    const vkt_tuning *t = vkt_recorder_tuning(rec);
    vkt_matmul_push push = {
        .m = M, .n = N, .k = K,
        .a_stride_m = transpose_a ? 1 : K, .a_stride_k = transpose_a ? M : 1,
        .b_stride_k = transpose_b ? 1 : N, .b_stride_n = transpose_b ? K : 1,
        .flags = flags,
    };
    /* The bias binding must hold a buffer even when the flags ignore it;
     * A is readable and already bound. */
    vkt_dispatch d = {
        .views = {a, b, bias && (flags & VKT_MATMUL_FLAG_BIAS) ? bias : a, c},
        .view_count = 4,
        .write_mask = 1u << 3,
        .push = &push, .push_size = sizeof push,
        .groups = {1, 1, 1},
    };
    uint32_t variant = t->matmul_variant;
    /* Texel views need aligned offsets; anything else takes the SSBO path. */
    if (variant == VKT_MATMUL_REG && !(vkt_recorder_texel_ok(rec, a, false) &&
                                       vkt_recorder_texel_ok(rec, b, false)))
        variant = VKT_MATMUL_REG_SSBO;
    uint32_t spec[9];
    vkt_view rounded[2];
    if (variant == VKT_MATMUL_REG || variant == VKT_MATMUL_REG_SSBO) {
        record_reg(rec, &d, &push, transpose_a, transpose_b, variant == VKT_MATMUL_REG, spec,
                   rounded);
    } else if (variant == VKT_MATMUL_TILED) {
        spec[0] = t->matmul_wg_x;
        spec[1] = t->matmul_wg_y;
        spec[2] = t->matmul_tm;
        spec[3] = t->matmul_tn;
        spec[4] = t->matmul_tile_k;
        d.kernel = VKT_KERNEL_MATMUL_TILED;
        d.spec = spec;
        d.spec_count = 5;
        d.groups[0] = vkt_div_up(N, t->matmul_wg_x * t->matmul_tn);
        d.groups[1] = vkt_div_up(M, t->matmul_wg_y * t->matmul_tm);
    } else {
        spec[0] = t->matmul_wg_x;
        spec[1] = t->matmul_wg_y;
        spec[2] = t->matmul_tm;
        spec[3] = t->matmul_tn;
        d.kernel = VKT_KERNEL_MATMUL;
        d.spec = spec;
        d.spec_count = 4;
        d.groups[0] = vkt_div_up(N, t->matmul_wg_x * t->matmul_tn);
        d.groups[1] = vkt_div_up(M, t->matmul_wg_y * t->matmul_tm);
    }
    /* Every device takes 65535 workgroups per dimension; the kernels walk
     * the row blocks beyond that in a loop. */
    if (d.groups[1] > 65535)
        d.groups[1] = 65535;
    vkt_record_dispatch(rec, &d);
}

static void matmul_record(const vkt_node *node, vkt_recorder *rec) {
    int64_t M, N, K;
    matmul_dims(node, &M, &N, &K);
    vkt_record_matmul(rec, &node->in[0]->view, &node->in[1]->view, NULL, &node->out[0]->view,
                      (uint32_t)M, (uint32_t)N, (uint32_t)K, node->p.matmul.transpose_a,
                      node->p.matmul.transpose_b,
                      node->p.matmul.accumulate ? VKT_MATMUL_FLAG_ACCUMULATE : 0);
}

static void matmul_bias_record(const vkt_node *node, vkt_recorder *rec) {
    int64_t M, N, K;
    matmul_dims(node, &M, &N, &K);
    uint32_t flags = VKT_MATMUL_FLAG_BIAS | (node->p.matmul.relu ? VKT_MATMUL_FLAG_RELU : 0) |
                     (node->p.matmul.accumulate ? VKT_MATMUL_FLAG_ACCUMULATE : 0);
    vkt_record_matmul(rec, &node->in[0]->view, &node->in[1]->view, &node->in[2]->view,
                      &node->out[0]->view, (uint32_t)M, (uint32_t)N, (uint32_t)K,
                      node->p.matmul.transpose_a, node->p.matmul.transpose_b, flags);
}

const vkt_op_def vkt_op_matmul_def = {
    .name = "matmul", .nin = 2, .nout = 1,
    .infer = matmul_infer, .cpu = matmul_cpu, .record = matmul_record,
};

const vkt_op_def vkt_op_matmul_bias_def = {
    .name = "matmul_bias", .nin = 3, .nout = 1,
    .infer = matmul_bias_infer, .cpu = matmul_bias_cpu, .record = matmul_bias_record,
};
