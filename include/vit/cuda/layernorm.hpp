// LayerNorm on the GPU (cuda/layernorm.cu), the twin of vit/ops/layernorm.hpp:
// nn.LayerNorm over the last dim. Declarations only: no CUDA header.
// float and bf16 overloads; bf16 is storage only (float math inside), and the
// saved mean/rstd are float for both.
#pragma once

#include <cstdint>

#include "vit/core/bf16.hpp"

namespace vit::cuda {

/// x (R,C) -> out (R,C) = LN(x); mean, rstd (R) saved (either may be null when
/// not needed). Device pointers; queued on vit::cuda::stream(). out may be x.
void layer_norm_forward(const float* x, const float* weight, const float* bias, float* out,
                        float* mean, float* rstd, int64_t R, int64_t C, float eps);
/// The same in bf16 storage: out rounded once from the float result; mean, rstd float.
void layer_norm_forward(const bf16* x, const bf16* weight, const bf16* bias, bf16* out,
                        float* mean, float* rstd, int64_t R, int64_t C, float eps);

/// dout (R,C), x = the LN input, mean/rstd from the forward -> dx (R,C)
/// written (if non-null); dweight, dbias (C) accumulated += (if non-null),
/// summed in a fixed order (no atomics): bitwise repeatable. dx may be dout.
void layer_norm_backward(const float* dout, const float* x, const float* weight, const float* mean,
                         const float* rstd, float* dx, float* dweight, float* dbias, int64_t R,
                         int64_t C);
/// The same in bf16 storage: the column sums are float until the one rounding of
/// dweight/dbias += sum.
void layer_norm_backward(const bf16* dout, const bf16* x, const bf16* weight, const float* mean,
                         const float* rstd, bf16* dx, bf16* dweight, bf16* dbias, int64_t R,
                         int64_t C);

}  // namespace vit::cuda
