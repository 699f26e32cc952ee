// Random erasing as timm's RandomErasing(mode='pixel', count=1) applies it to
// one normalised float CHW image: with probability p, up to 10 attempts to
// place a rectangle of area U(min_area, max_area) of the image (timm's
// defaults 0.02 and 1/3; the tutorial's CutOut uses 0.1 and 0.4) and log-uniform aspect
// ratio in [0.3, 1/0.3]; the first that fits is filled with per-pixel N(0, 1)
// noise. Avoids: the 'const'/'rand' modes and multi-box counts (not used by
// our trainer), and any randomness outside the Generator passed in.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "vit/core/error.hpp"
#include "vit/core/rng.hpp"

namespace vit::data {

/// The rectangle random_erasing overwrote: rows [top, top+height), columns
/// [left, left+width), all channels. height == 0 or width == 0: nothing erased.
struct ErasedBox {
  int64_t top = 0, left = 0, height = 0, width = 0;
  bool empty() const { return height == 0 || width == 0; }
};

/// Fills rows [top, top+height) x columns [left, left+width) of every channel
/// with N(0, 1) noise, element i (channel-major, then row, then column) drawn
/// from `noise` at counter i, so a box's noise is fixed by the noise stream.
inline void erase_box(float* img, int64_t C, int64_t H, int64_t W, const ErasedBox& box,
                      const Generator& noise) {
  VIT_CHECK(box.top >= 0 && box.left >= 0 && box.height >= 0 && box.width >= 0 &&
                box.top + box.height <= H && box.left + box.width <= W,
            "erase_box: box (top ", box.top, ", left ", box.left, ", ", box.height, "x", box.width,
            ") outside a ", H, "x", W, " image");
  uint64_t counter = 0;
  for (int64_t c = 0; c < C; ++c)
    for (int64_t y = box.top; y < box.top + box.height; ++y) {
      float* row = img + (c * H + y) * W + box.left;
      for (int64_t x = 0; x < box.width; ++x) row[x] = static_cast<float>(noise.normal(counter++));
    }
}

/// timm's default share of the image area an erased box covers.
inline constexpr double kErasingMinArea = 0.02, kErasingMaxArea = 1.0 / 3.0;

/// timm RandomErasing(probability=p, min_area, max_area, mode='pixel') on img
/// (C,H,W), in place.
/// Returns the box erased (empty when the p draw says no or no attempt fits).
/// Draw order: the p draw; per attempt area, aspect, then top and left if it
/// fits; then one 64-bit seed for the noise stream (see erase_box), so the
/// noise takes a single draw from g however large the box.
inline ErasedBox random_erasing(float* img, int64_t C, int64_t H, int64_t W, double p,
                                Generator& g, double min_area = kErasingMinArea,
                                double max_area = kErasingMaxArea) {
  VIT_CHECK(img != nullptr && C >= 1 && H >= 1 && W >= 1, "random_erasing: image (", C, ",", H, ",",
            W, ")", img ? "" : " is null");
  VIT_CHECK(p >= 0 && p <= 1, "random_erasing: probability ", p, " outside [0, 1]");
  VIT_CHECK(min_area > 0 && min_area <= max_area && max_area <= 1, "random_erasing: area (",
            min_area, ", ", max_area, ") must satisfy 0 < min <= max <= 1");
  const double u = g.next_uniform();
  if (p <= 0 || u > p) return {};  // timm: skip when random() > probability
  static const double log_lo = std::log(0.3), log_hi = std::log(1.0 / 0.3);
  const double area = static_cast<double>(H * W);
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double target_area = (min_area + (max_area - min_area) * g.next_uniform()) * area;
    const double aspect = std::exp(log_lo + (log_hi - log_lo) * g.next_uniform());
    // Python's round() is round-half-even, as nearbyint in the default mode.
    const auto h = static_cast<int64_t>(std::nearbyint(std::sqrt(target_area * aspect)));
    const auto w = static_cast<int64_t>(std::nearbyint(std::sqrt(target_area / aspect)));
    if (w < W && h < H) {
      // random.randint(0, H - h): inclusive on both ends.
      const auto pick = [&g](int64_t hi) {
        return std::min(static_cast<int64_t>(g.next_uniform() * static_cast<double>(hi + 1)), hi);
      };
      ErasedBox box;
      box.height = h, box.width = w;
      box.top = pick(H - h);
      box.left = pick(W - w);
      // A separate stream for the noise: the Generator's normal(c) reads
      // counters 2c and 2c+1, which would overlap later draws from g.
      const Generator noise(g.next_u64());
      erase_box(img, C, H, W, box, noise);
      return box;
    }
  }
  return {};
}

}  // namespace vit::data
