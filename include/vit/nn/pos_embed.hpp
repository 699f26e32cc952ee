// MAE's fixed 2-D sin-cos position embedding (util/pos_embed.py,
// get_2d_sincos_pos_embed with cls_token=True), the table behind
// --pos-embed sincos. For the patch at row i, column j of a grid of width W
// (token 1 + i·W + j; the cls row is zeros) and D channels, with
// ω_k = 1 / 10000^(k / (D/4)), k < D/4:
//   [ sin(j·ω) | cos(j·ω) | sin(i·ω) | cos(i·ω) ]   (each D/4 wide)
// the column first: MAE's meshgrid puts w first and names it grid_h.
// Computed in double and rounded once (MAE's numpy float32 differs by ~1e-6).
#pragma once

#include <cmath>
#include <cstdint>

#include "vit/core/error.hpp"
#include "vit/core/tensor.hpp"

namespace vit::nn {

/// (1, prefix + h·w, dim) on the CPU: `prefix` zero rows (cls), then the grid row-major.
template <class T>
Tensor<T> sincos_pos_embed(int64_t grid_h, int64_t grid_w, int64_t dim, int64_t prefix = 1) {
  VIT_CHECK(grid_h > 0 && grid_w > 0 && prefix >= 0, "sincos_pos_embed: grid ", grid_h, "x",
            grid_w, " must be positive");
  VIT_CHECK(dim > 0 && dim % 4 == 0, "sincos_pos_embed: dim ", dim, " must be divisible by 4");
  const int64_t Q = dim / 4;
  Tensor<T> out = Tensor<T>::zeros({1, prefix + grid_h * grid_w, dim});
  T* p = out.data();
  for (int64_t i = 0; i < grid_h; ++i)
    for (int64_t j = 0; j < grid_w; ++j) {
      T* row = p + (prefix + i * grid_w + j) * dim;
      for (int64_t k = 0; k < Q; ++k) {
        const double omega = 1.0 / std::pow(10000.0, static_cast<double>(k) / Q);
        row[k] = static_cast<T>(std::sin(j * omega));
        row[Q + k] = static_cast<T>(std::cos(j * omega));
        row[2 * Q + k] = static_cast<T>(std::sin(i * omega));
        row[3 * Q + k] = static_cast<T>(std::cos(i * omega));
      }
    }
  return out;
}

}  // namespace vit::nn
