// bias + GELU on the GPU (cuda/gelu.cu), the twin of vit/ops/gelu.hpp applied
// to x + bias: the MLP's fc1 bias add fused into its activation.
// Declarations only: no CUDA header.
#pragma once

#include <cstdint>

namespace vit::cuda {

/// out = gelu(x + bias) over x (R,C); bias (C) may be null (plain gelu of x).
/// tanh_approx = false: exact 0.5·v·(1 + erf(v/√2)); true: the tanh form
/// (GeluApprox::Tanh). Device pointers, queued on vit::cuda::stream(); out may be x.
void bias_gelu_forward(const float* x, const float* bias, float* out, int64_t R, int64_t C,
                       bool tanh_approx);

/// dx = dout · gelu'(x + bias) written (R,C); dbias (C) += column sums of dx if
/// non-null, summed in a fixed order (no atomics): bitwise repeatable. dx may be dout.
void bias_gelu_backward(const float* dout, const float* x, const float* bias, float* dx,
                        float* dbias, int64_t R, int64_t C, bool tanh_approx);

}  // namespace vit::cuda
