// GELU on the GPU (cuda/gelu.cu), the twin of vit/ops/gelu.hpp over flat
// float arrays. Declarations only: no CUDA header.
#pragma once

#include <cstdint>

namespace vit::cuda {

/// out = gelu(x) over n elements. tanh_approx = false: exact 0.5·v·(1 + erf(v/√2));
/// true: the tanh form (GeluApprox::Tanh). Device pointers, queued on
/// vit::cuda::stream(); out may be x.
void gelu_forward(const float* x, float* out, int64_t n, bool tanh_approx);

/// dx = dout · gelu'(x) over n elements, written. dx may be dout or x.
void gelu_backward(const float* dout, const float* x, float* dx, int64_t n, bool tanh_approx);

}  // namespace vit::cuda
