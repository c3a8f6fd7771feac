// row_kernel.glsl: the two shapes a per-row kernel (softmax, the losses) can
// run in, chosen per dispatch by specialization constant 1:
//   - one workgroup per row (ROW_PER_INVOCATION false): the workgroup's
//     invocations stride over the row's columns and meet in
//     workgroup_reduce.glsl's shared-memory tree. Right for long rows.
//   - one invocation per row (true): each invocation walks its whole row in
//     column order, with no shared memory and no barriers. Right for short
//     rows (ten classes), where a workgroup per row leaves nearly every
//     invocation idle and pays a barrier per reduction step for it.
// Write a row kernel as: row = row_index(); for (c = row_lane(); c < cols;
// c += row_lanes()) ...; total = row_sum(partial). Both shapes add in a
// fixed order, so each gives bit-identical results run to run.
// Include after `layout(local_size_x_id = 0) in;` and common.glsl.
#include "workgroup_reduce.glsl"

layout(constant_id = 1) const bool ROW_PER_INVOCATION = false;

// With ROW_PER_INVOCATION the early return for rows past the end differs
// between invocations, which is fine: that shape never reaches a barrier.
uint row_index() {
    return ROW_PER_INVOCATION ? linear_index() : workgroup_row();
}

uint row_lane() {
    return ROW_PER_INVOCATION ? 0u : gl_LocalInvocationID.x;
}

uint row_lanes() {
    return ROW_PER_INVOCATION ? 1u : gl_WorkGroupSize.x;
}

// The invocation that writes the row's single results.
bool row_leader() {
    return row_lane() == 0u;
}

float row_sum(float v) {
    return ROW_PER_INVOCATION ? v : workgroup_sum(v);
}

float row_max(float v) {
    return ROW_PER_INVOCATION ? v : workgroup_max(v);
}
