#version 450
// matmul_reg_ssbo: matmul_reg.glsl reading A and B from storage buffers
// (vec4 loads where the kernel reads 4 floats at a time), for CPU devices
// without texel-buffer support, and to measure what texel buffers gain.
#extension GL_GOOGLE_include_directive : require

layout(std430, binding = 0) readonly buffer A4 { vec4 a4[]; };
layout(std430, binding = 0) readonly buffer A1 { float a1[]; };
layout(std430, binding = 1) readonly buffer B4 { vec4 b4[]; };
layout(std430, binding = 1) readonly buffer B1 { float b1[]; };

#define FETCH4_A(i) a4[i]
#define FETCH1_A(i) a1[i]
#define FETCH4_B(i) b4[i]
#define FETCH1_B(i) b1[i]

#include "matmul_reg.glsl"
