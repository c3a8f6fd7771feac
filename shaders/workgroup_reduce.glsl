// workgroup_reduce.glsl: deterministic sum and max across one workgroup, for
// kernels that give each row (or a whole reduction) one workgroup. Include
// after `layout(local_size_x_id = 0) in;`; every invocation of the workgroup
// must call these in uniform control flow (they contain barriers).
//
// The order of the additions is fixed by the workgroup size alone: each
// invocation first folds its strided elements in index order, then a tree
// in shared memory halves the active range in a fixed pattern. No atomics,
// so the same device gives bit-identical results on every run.

shared float wg_partial[gl_WorkGroupSize.x];

// The row of a one-workgroup-per-row kernel: the grid is folded into (x, y)
// when there are more rows than workgroups along x (see vkt_grid_1d).
uint workgroup_row() {
    return gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
}

// Largest power of two below the workgroup size: the first tree stride. Any
// workgroup size works, not only powers of two.
uint first_stride() {
    return gl_WorkGroupSize.x > 1 ? 1u << findMSB(gl_WorkGroupSize.x - 1) : 0u;
}

float workgroup_sum(float v) {
    uint tid = gl_LocalInvocationID.x;
    wg_partial[tid] = v;
    barrier();
    for (uint s = first_stride(); s > 0; s >>= 1) {
        if (tid < s && tid + s < gl_WorkGroupSize.x)
            wg_partial[tid] += wg_partial[tid + s];
        barrier();
    }
    float total = wg_partial[0];
    barrier(); // all have read the result before a next call overwrites it
    return total;
}

float workgroup_max(float v) {
    uint tid = gl_LocalInvocationID.x;
    wg_partial[tid] = v;
    barrier();
    for (uint s = first_stride(); s > 0; s >>= 1) {
        if (tid < s && tid + s < gl_WorkGroupSize.x)
            wg_partial[tid] = max(wg_partial[tid], wg_partial[tid + s]);
        barrier();
    }
    float total = wg_partial[0];
    barrier();
    return total;
}
