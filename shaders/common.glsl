// common.glsl: helpers shared by the kernels.

// Kernels over n elements run on a grid folded into (x, y) when n needs more
// than 65535 workgroups along x (see vkt_grid_1d); this unfolds it.
uint linear_index() {
    return gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * gl_WorkGroupSize.x;
}
