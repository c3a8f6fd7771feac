#version 450
// conv2d_fwd_subgroup: the convolution forward with weight loads shared
// across SG invocations by subgroup shuffles, for CPU devices that have
// them; see conv2d_fwd.glsl.
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_shuffle : require

#define CONV2D_SUBGROUP
#include "conv2d_fwd.glsl"
