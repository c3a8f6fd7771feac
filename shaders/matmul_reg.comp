#version 450
// matmul_reg: the register-blocked matmul for CPU devices, reading A and B
// through uniform texel buffers (R32G32B32A32 views where the kernel reads 4
// floats at a time, R32 views elsewhere): lavapipe fetches texels with
// vector gathers where it loads storage buffers lane by lane with a branch
// per lane. The body is matmul_reg.glsl.
#extension GL_GOOGLE_include_directive : require

layout(binding = 0) uniform samplerBuffer A;
layout(binding = 1) uniform samplerBuffer B;

#define FETCH4_A(i) texelFetch(A, int(i))
#define FETCH1_A(i) texelFetch(A, int(i)).x
#define FETCH4_B(i) texelFetch(B, int(i))
#define FETCH1_B(i) texelFetch(B, int(i)).x

#include "matmul_reg.glsl"
