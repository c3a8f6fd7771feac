/* reduce.c: the deterministic full reduction out[0] = scale * sum(in), one
 * workgroup (shaders/reduce_sum.comp), shared by the losses for their mean
 * and usable by any op that needs a scalar sum of a short vector. */
#include "op.h"

/* One workgroup walks the whole input: fixed addition order, no atomics, so
 * the same device gives the same bits every run. It is meant for vectors of
 * up to some thousands of elements (per-row losses), where one workgroup
 * is plenty; long vectors would want a two-level reduction. */
void vkt_record_reduce_sum(vkt_recorder *rec, const vkt_view *in, uint32_t n,
                           const vkt_view *out, float scale) {
    const vkt_tuning *t = vkt_recorder_tuning(rec);
    vkt_reduce_sum_push push = {n, scale};
    uint32_t spec[1] = {t->reduce_wg};
    vkt_dispatch d = {
        .kernel = VKT_KERNEL_REDUCE_SUM, .spec = spec, .spec_count = 1,
        .views = {in, out}, .view_count = 2, .write_mask = 1u << 1,
        .push = &push, .push_size = sizeof push,
        .groups = {1, 1, 1},
    };
    vkt_record_dispatch(rec, &d);
}

double vkt_cpu_sum(const float *in, int64_t n) {
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++)
        sum += in[i];
    return sum;
}
