// GELU on the GPU (cuda/gelu.cu), the twin of vit/ops/gelu.hpp over flat
// arrays, and the fused bias+GELU of the MLP (ops::bias_gelu). Each launcher
// exists for float and vit::bf16 storage (bf16: fp32 math, one rounding per
// result, float sums). Declarations only: no CUDA header.
#pragma once

#include <cstdint>

#include "vit/core/bf16.hpp"

namespace vit::cuda {

/// out = gelu(x) over n elements. tanh_approx = false: exact 0.5·v·(1 + erf(v/√2));
/// true: the tanh form (GeluApprox::Tanh). Device pointers, queued on
/// vit::cuda::stream(); out may be x.
void gelu_forward(const float* x, float* out, int64_t n, bool tanh_approx);
void gelu_forward(const bf16* x, bf16* out, int64_t n, bool tanh_approx);
/// dx = dout · gelu'(x) over n elements, written. dx may be dout or x.
void gelu_backward(const float* dout, const float* x, float* dx, int64_t n, bool tanh_approx);
void gelu_backward(const bf16* dout, const bf16* x, bf16* dx, int64_t n, bool tanh_approx);

/// x (R,C), bias (C) -> out (R,C) = gelu(x + bias[col]) in one pass (x + bias is
/// not rounded before the GELU). out may be x.
void bias_gelu_forward(const float* x, const float* bias, float* out, int64_t R, int64_t C,
                       bool tanh_approx);
void bias_gelu_forward(const bf16* x, const bf16* bias, bf16* out, int64_t R, int64_t C,
                       bool tanh_approx);
/// dout, x (R,C) and bias (C) of the forward -> dx (R,C) = dout · gelu'(x + bias)
/// written (skipped when dx is null), and dbias (C) += the column sums of dx
/// (skipped when null), taken in float in the same pass over dout and x, then
/// summed in a fixed order (no atomics: bitwise repeatable). The (bf16, float
/// dbias) overload accumulates into an fp32 master gradient. dx may be dout.
void bias_gelu_backward(const float* dout, const float* x, const float* bias, float* dx,
                        float* dbias, int64_t R, int64_t C, bool tanh_approx);
void bias_gelu_backward(const bf16* dout, const bf16* x, const bf16* bias, bf16* dx, bf16* dbias,
                        int64_t R, int64_t C, bool tanh_approx);
void bias_gelu_backward(const bf16* dout, const bf16* x, const bf16* bias, bf16* dx, float* dbias,
                        int64_t R, int64_t C, bool tanh_approx);

}  // namespace vit::cuda
