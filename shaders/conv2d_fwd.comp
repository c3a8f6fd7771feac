#version 450
// conv2d_fwd: the convolution forward for any device; see conv2d_fwd.glsl.
#extension GL_GOOGLE_include_directive : require

#include "conv2d_fwd.glsl"
