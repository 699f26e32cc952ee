// LayerNorm on the GPU (cuda/layernorm.cu), the twin of vit/ops/layernorm.hpp:
// nn.LayerNorm over the last dim. Declarations only: no CUDA header.
#pragma once

#include <cstdint>

namespace vit::cuda {

/// x (R,C) -> out (R,C) = LN(x); mean, rstd (R) saved (either may be null when
/// not needed). Device pointers; queued on vit::cuda::stream(). out may be x.
void layer_norm_forward(const float* x, const float* weight, const float* bias, float* out,
                        float* mean, float* rstd, int64_t R, int64_t C, float eps);

/// dout (R,C), x = the LN input, mean/rstd from the forward -> dx (R,C)
/// written (if non-null); dweight, dbias (C) accumulated += (if non-null),
/// summed in a fixed order (no atomics): bitwise repeatable. dx may be dout.
void layer_norm_backward(const float* dout, const float* x, const float* weight, const float* mean,
                         const float* rstd, float* dx, float* dweight, float* dbias, int64_t R,
                         int64_t C);

}  // namespace vit::cuda
