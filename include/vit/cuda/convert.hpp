// dtype conversions on the GPU (cuda/convert.cu), the device half of
// vit::to_dtype and ops::convert / ops::accumulate_widened (vit/ops/cast.hpp):
// float -> bf16 rounds to nearest even exactly as vit::bf16 does, bf16 -> float
// is exact. Device pointers, work queued on vit::cuda::stream(), nothing
// synchronised. Declarations only: no CUDA header.
#pragma once

#include <cstdint>

#include "vit/core/bf16.hpp"

namespace vit::cuda {

/// out[i] = bf16(x[i]) (round to nearest even; NaN stays NaN, ±inf stays ±inf).
void convert(const float* x, bf16* out, int64_t n);
/// out[i] = float(x[i]) (exact).
void convert(const bf16* x, float* out, int64_t n);
/// acc[i] += float(g[i]): a bf16 gradient added to its fp32 master gradient.
void accumulate_widened(const bf16* g, float* acc, int64_t n);

}  // namespace vit::cuda
