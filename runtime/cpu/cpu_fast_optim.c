/* cpu_fast_optim.c: the fast CPU backend's optimizer kernels (SGD, Adam)
 * and the squared-norm sum of gradient clipping. The updates are the
 * reference's own loops (runtime/ops/optimizer_update.h), so they give the
 * same bits; here they are compiled to vectorize (-O3, and no calls: sqrtf
 * compiles to one instruction, see runtime/meson.build). The sum of squares
 * keeps eight float partial sums instead of one double.
 *
 * Dimension legend: n parameters of any shape, flattened. */
#include "cpu_fast.h"
#include "../ops/optimizer_update.h"

#include <math.h>

void vkt_cpu_fast_sgd(const vkt_node *node) { vkt_sgd_update(node); }

void vkt_cpu_fast_adam(const vkt_node *node) { vkt_adam_update(node); }

/* Eight interleaved partial sums: independent chains the compiler keeps in
 * vector registers (a single float chain may not be reordered without
 * -ffast-math); each chain adds an eighth of the terms, so its rounding
 * error grows eight times slower than one chain's would. */
void vkt_cpu_fast_sum_squares(const vkt_node *node) {
    enum { LANES = 8 };
    const float *restrict g = vkt_view_host(&node->in[0]->view); // (n)
    float *acc = vkt_view_host(&node->out[0]->view);             // (1)
    int64_t n = vkt_shape_numel(&node->in[0]->shape), body = n / LANES * LANES;
    float part[LANES] = {0.0f};
    for (int64_t i = 0; i < body; i += LANES)
        for (int l = 0; l < LANES; l++)
            part[l] += g[i + l] * g[i + l];
    double sum = 0.0;
    for (int l = 0; l < LANES; l++)
        sum += part[l];
    for (int64_t i = body; i < n; i++)
        sum += (double)g[i] * g[i];
    acc[0] = node->p.reduce.accumulate ? (float)((double)acc[0] + sum) : (float)sum;
}
