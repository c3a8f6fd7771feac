// activation.glsl: numerically safe sigmoid, tanh and log(1 + u), shared by
// the activation and loss kernels. The CPU reference (runtime/ops/) computes
// the same functions in double.

// sigmoid(x) = 1 / (1 + e^-x). Evaluated through e = e^-|x|, which lies in
// [0, 1] for every x, so nothing overflows for large |x|:
// sigmoid(|x|) = 1 / (1 + e) and sigmoid(-|x|) = e / (1 + e).
float sigmoid_stable(float x) {
    float e = exp(-abs(x));
    float s = 1.0 / (1.0 + e);
    return x >= 0.0 ? s : e * s;
}

// tanh through the driver's builtin, on a clamped argument: some drivers
// evaluate tanh as (e^2x - 1) / (e^2x + 1), which is inf / inf = NaN for
// large |x|. tanh(15) is 1 - 2e-13, already 1.0 in fp32, so the clamp
// changes no result.
float tanh_stable(float x) {
    return tanh(clamp(x, -15.0, 15.0));
}

// log(1 + u) for u >= 0, to a few ulp also where u is tiny. log(1 + u)
// itself would lose everything below the rounding of 1 + u, and Vulkan
// only promises log an absolute error of 2^-21 on [0.5, 2], so for u < 1
// this sums the series log(1 + u) = 2 atanh(z) = 2 (z + z^3/3 + z^5/5 ...),
// z = u / (2 + u) <= 1/3: the first term left out, z^16 / 17, is under
// 2e-9 of the sum, below fp32 resolution.
float log1p_stable(float u) {
    if (u >= 1.0)
        return log(1.0 + u);
    float z = u / (2.0 + u), z2 = z * z;
    float series = 1.0 / 15.0;
    series = 1.0 / 13.0 + z2 * series;
    series = 1.0 / 11.0 + z2 * series;
    series = 1.0 / 9.0 + z2 * series;
    series = 1.0 / 7.0 + z2 * series;
    series = 1.0 / 5.0 + z2 * series;
    series = 1.0 / 3.0 + z2 * series;
    series = 1.0 + z2 * series;
    return 2.0 * z * series;
}
