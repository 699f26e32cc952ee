// LayerNorm on the GPU (cuda/layernorm.cu), the twin of vit/ops/layernorm.hpp:
// nn.LayerNorm over the last dim, with the residual add of a pre-norm block
// optionally fused into the forward. Declarations only: no CUDA header.
#pragma once

#include <cstdint>

namespace vit::cuda {

/// x (R,C) [+ residual (R,C)] -> out (R,C) = LN(s) with s = x (+ residual);
/// mean, rstd (R) saved (either may be null when not needed). When residual is
/// given, s is also written to sum_out (R,C); otherwise sum_out is ignored.
/// Device pointers; queued on vit::cuda::stream(). In place is allowed: out may
/// be x, sum_out may be x or residual.
void layer_norm_forward(const float* x, const float* residual, float* sum_out, const float* weight,
                        const float* bias, float* out, float* mean, float* rstd, int64_t R,
                        int64_t C, float eps);

/// dout (R,C), x = the LN input (s), mean/rstd from the forward -> dx (R,C)
/// written (if non-null); dweight, dbias (C) accumulated += (if non-null),
/// summed in a fixed order (no atomics): bitwise repeatable. dx may be dout.
void layer_norm_backward(const float* dout, const float* x, const float* weight, const float* mean,
                         const float* rstd, float* dx, float* dweight, float* dbias, int64_t R,
                         int64_t C);

}  // namespace vit::cuda
