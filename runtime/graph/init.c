/* init.c: seeded parameter initialisation, following torch.nn.init.
 * reference: https://pytorch.org/docs/stable/nn.init.html
 * Every parameter draws from its own stream (seed, parameter index), so
 * adding a layer does not change the initial values of the others. */
#include "graph.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform in [-1, 1) from the top 24 bits: exact in float. */
static float uniform_pm1(uint64_t *state) {
    return (float)((double)(splitmix64(state) >> 40) / 8388608.0 - 1.0);
}

void param_init_values(const graph_var *v, uint64_t seed, uint32_t index, float *out) {
    int64_t n = vkt_shape_numel(&v->shape);
    /* fan_in: every dim but the first (a (out, in) weight, or (C_out, C_in,
     * kh, kw)); a bias's is its layer's, set by the layer. */
    int64_t fan_out = v->shape.dims[0];
    int64_t fan_in = v->fan_in ? v->fan_in : v->shape.ndim > 1 ? n / fan_out : fan_out;
    double bound;
    switch (v->init) {
    case VKT_INIT_ZEROS:
    case VKT_INIT_ONES:
        for (int64_t i = 0; i < n; i++)
            out[i] = v->init == VKT_INIT_ONES ? 1.0f : 0.0f;
        return;
    case VKT_INIT_KAIMING_UNIFORM:
        bound = sqrt(6.0 / (double)fan_in); /* gain sqrt(2) for ReLU */
        break;
    case VKT_INIT_XAVIER_UNIFORM:
        bound = sqrt(6.0 / (double)(fan_in + fan_out));
        break;
    case VKT_INIT_DEFAULT:
    default:
        bound = 1.0 / sqrt((double)fan_in); /* nn.Linear's kaiming_uniform_(a=sqrt(5)) */
        break;
    }
    uint64_t state = seed ^ (0xA0761D6478BD642Full * (index + 1));
    for (int64_t i = 0; i < n; i++)
        out[i] = (float)(bound * uniform_pm1(&state));
}
