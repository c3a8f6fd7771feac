// common.glsl: helpers shared by the kernels.

// Kernels over n elements run on a grid folded into (x, y) when n needs more
// than 65535 workgroups along x (see vkt_grid_1d); this unfolds it.
// A macro, not a function: kernels include this file before their
// `layout(local_size_x_id = 0) in;`, and a function compiled there sees the
// default workgroup size (1, 1, 1) as a plain constant and folds it, so the
// specialized size would never reach the row stride.
#define linear_index() \
    (gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * gl_WorkGroupSize.x)
