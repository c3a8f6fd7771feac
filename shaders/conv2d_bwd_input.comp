#version 450
// conv2d_bwd_input: the convolution's input gradient for any device; see
// conv2d_bwd_input.glsl.
#extension GL_GOOGLE_include_directive : require

#include "conv2d_bwd_input.glsl"
