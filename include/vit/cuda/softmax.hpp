// Row softmax on the GPU (cuda/softmax.cu), the twin of vit/ops/softmax.hpp
// (F.softmax(x, -1)). Declarations only: no CUDA header. float and bf16
// overloads; bf16 is storage only (float math inside, one rounding per output).
#pragma once

#include <cstdint>

#include "vit/core/bf16.hpp"

namespace vit::cuda {

/// x (R,n) -> out (R,n), each row max-subtracted, exponentiated and normalised.
/// Device pointers, queued on vit::cuda::stream(); out may be x.
void softmax_forward(const float* x, float* out, int64_t R, int64_t n);
void softmax_forward(const bf16* x, bf16* out, int64_t R, int64_t n);

/// y = the forward output, dy (R,n) -> dx (R,n) = y ⊙ (dy − Σ dy·y), written. dx may be y or dy.
void softmax_backward(const float* y, const float* dy, float* dx, int64_t R, int64_t n);
void softmax_backward(const bf16* y, const bf16* dy, bf16* dx, int64_t R, int64_t n);

}  // namespace vit::cuda
