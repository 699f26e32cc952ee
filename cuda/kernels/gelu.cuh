// GELU kernels, the CUDA twin of include/vit/ops/gelu.hpp: out = gelu(x),
// dx = dout·gelu'(x) over flat arrays, exact erf form or the tanh
// approximation, with the CPU op's formulas and constants so float32 results
// agree to rounding. They are the flat maps of elementwise.cuh (float4 when
// aligned, a scalar tail) with the GELU as the op.
// Deliberately avoided: __expf/fast tanh (accuracy against the CPU op), and a
// fused bias add (the MLP's fc1 adds its bias in its linear op).
#pragma once

#include "maps.cuh"  // ew_unary_kernel, ew_binary_kernel, elementwise_launch

namespace vit::cuda::kernels {

constexpr float kGeluSqrt1_2 = static_cast<float>(0.70710678118654752440);  // 1/√2
constexpr float kGeluSqrt2OverPi = static_cast<float>(0.7978845608028654);  // √(2/π)
constexpr float kGeluKappa = static_cast<float>(0.044715);
constexpr float kGelu3Kappa = static_cast<float>(3 * 0.044715);
constexpr float kGeluInvSqrt2Pi = static_cast<float>(0.3989422804014327);  // 1/√(2π)

VIT_DEVICE float gelu_value(float v, bool tanh_approx) {
  if (tanh_approx)
    return 0.5f * v * (1.f + tanhf(kGeluSqrt2OverPi * (v + kGeluKappa * (v * v * v))));
  return 0.5f * v * (1.f + erff(v * kGeluSqrt1_2));
}

/// d gelu / dv. Exact: Φ(v) + v·φ(v). Tanh: 1 − tanh²(u) written as 4·σ(2u)·σ(−2u),
/// which stays accurate where float tanh has saturated to ±1.
VIT_DEVICE float gelu_grad(float v, bool tanh_approx) {
  if (tanh_approx) {
    const float u = kGeluSqrt2OverPi * (v + kGeluKappa * (v * v * v));
    const float s = 1.f / (1.f + expf(-2.f * u)), sbar = 1.f / (1.f + expf(2.f * u));
    return s + 2.f * v * s * sbar * kGeluSqrt2OverPi * (1.f + kGelu3Kappa * (v * v));
  }
  return 0.5f * (1.f + erff(v * kGeluSqrt1_2)) + v * kGeluInvSqrt2Pi * expf(-0.5f * (v * v));
}

/// v -> gelu(v): the op of ew_unary_kernel (out may alias x).
template <bool kTanh>
struct GeluForwardOp {
  VIT_DEVICE float operator()(float v) const { return gelu_value(v, kTanh); }
};
/// (dout, v) -> dout·gelu'(v): the op of ew_binary_kernel (dx may alias dout or x).
template <bool kTanh>
struct GeluBackwardOp {
  VIT_DEVICE float operator()(float g, float v) const { return g * gelu_grad(v, kTanh); }
};

}  // namespace vit::cuda::kernels
