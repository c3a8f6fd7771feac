/* optimizer_update.h: the SGD and Adam parameter updates as plain float
 * loops, shared by the CPU reference (runtime/ops/optimizer.c) and the fast
 * CPU backend (runtime/cpu/cpu_fast_optim.c). One definition, so the two
 * give the same bits by construction; the fast backend's copy is compiled
 * with -O3 -fno-math-errno (runtime/meson.build), where the restrict
 * pointers and loop-invariant branches let it vectorize. */
#ifndef VKT_OPTIMIZER_UPDATE_H
#define VKT_OPTIMIZER_UPDATE_H
#include "op.h"

#include <math.h>

/* reference: https://pytorch.org/docs/stable/generated/torch.optim.SGD.html
 * (maximize off). With momentum 0 the buffer is neither read nor written. */
static inline void vkt_sgd_update(const vkt_node *node) {
    const float *restrict grad = vkt_view_host(&node->in[0]->view); // (n)
    const float *hyper = vkt_view_host(&node->in[1]->view);         // (VKT_HYPER_COUNT)
    float *restrict p = vkt_view_host(&node->out[0]->view);         // (n)
    float *restrict buf = vkt_view_host(&node->out[1]->view);       // (n)
    float lr = hyper[VKT_HYPER_LR], scale = hyper[VKT_HYPER_GRAD_SCALE];
    /* torch starts the buffer as a copy of the first step's gradient */
    bool first = hyper[VKT_HYPER_STEP] <= 1.0f;
    float momentum = node->p.sgd.momentum, dampening = node->p.sgd.dampening;
    float wd = node->p.sgd.weight_decay;
    bool nesterov = node->p.sgd.nesterov;
    for (int64_t i = 0, n = vkt_shape_numel(&node->out[0]->shape); i < n; i++) {
        float g = grad[i] * scale;
        if (wd != 0.0f)
            g = g + wd * p[i];
        if (momentum != 0.0f) {
            float b = first ? g : momentum * buf[i] + (1.0f - dampening) * g;
            buf[i] = b;
            g = nesterov ? g + momentum * b : b;
        }
        p[i] = p[i] - lr * g;
    }
}

/* reference: https://pytorch.org/docs/stable/generated/torch.optim.Adam.html
 * reference: https://pytorch.org/docs/stable/generated/torch.optim.AdamW.html
 * (amsgrad and maximize off). PyTorch writes the first moment as
 * m.lerp_(g, 1 - beta1), which is the same beta1*m + (1-beta1)*g. */
static inline void vkt_adam_update(const vkt_node *node) {
    const float *restrict grad = vkt_view_host(&node->in[0]->view); // (n)
    const float *hyper = vkt_view_host(&node->in[1]->view);         // (VKT_HYPER_COUNT)
    float *restrict p = vkt_view_host(&node->out[0]->view);         // (n)
    float *restrict m = vkt_view_host(&node->out[1]->view);         // (n)
    float *restrict v = vkt_view_host(&node->out[2]->view);         // (n)
    float lr = hyper[VKT_HYPER_LR], scale = hyper[VKT_HYPER_GRAD_SCALE];
    float beta1 = node->p.adam.beta1, beta2 = node->p.adam.beta2, eps = node->p.adam.eps;
    float wd = node->p.adam.weight_decay;
    float step_size = lr / hyper[VKT_HYPER_BIAS1];
    float bias2_sqrt = sqrtf(hyper[VKT_HYPER_BIAS2]);
    float decay = 1.0f - lr * wd; /* AdamW's p.mul_(1 - lr * weight_decay) */
    bool decoupled = node->p.adam.decoupled, coupled = !decoupled && wd != 0.0f;
    for (int64_t i = 0, n = vkt_shape_numel(&node->out[0]->shape); i < n; i++) {
        float g = grad[i] * scale;
        if (decoupled)
            p[i] = p[i] * decay;
        else if (coupled)
            g = g + wd * p[i];
        m[i] = beta1 * m[i] + (1.0f - beta1) * g;
        v[i] = beta2 * v[i] + (1.0f - beta2) * g * g;
        float denom = sqrtf(v[i]) / bias2_sqrt + eps;
        p[i] = p[i] - step_size * m[i] / denom;
    }
}

#endif
