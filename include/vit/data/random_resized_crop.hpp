// torchvision's RandomResizedCrop (what timm and the fine-tuning tutorial
// train with): pick a window of random area share in `scale` and log-uniform
// aspect ratio in `ratio` (10 attempts, then a centre crop clamped to the
// ratio range), and resize it to size x size with Pillow's antialiased
// bilinear filter. The window draw and the resampling are separate functions,
// so each can be checked on its own.
//
// Draws come from the Generator passed in (the loader's per-sample one), not
// from torch's RNG: the same distribution, not the same numbers as torchvision.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "vit/core/error.hpp"
#include "vit/core/rng.hpp"
#include "vit/data/dataset.hpp"
#include "vit/data/image.hpp"

namespace vit::data {

/// A crop window: rows [top, top + height), columns [left, left + width).
struct CropWindow {
  int64_t top = 0, left = 0, height = 0, width = 0;
};

/// torchvision RandomResizedCrop.get_params for an H x W image: up to 10
/// attempts of area share U(scale) and aspect exp(U(log ratio)), w =
/// round(sqrt(area * aspect)), h = round(sqrt(area / aspect)); the first that
/// fits is placed uniformly (top drawn first). Otherwise the whole image, cut
/// to the nearest end of the ratio range and centred. Draw order per attempt:
/// area, aspect, then top and left when it fits.
inline CropWindow random_resized_crop_window(int64_t H, int64_t W, double scale_lo,
                                             double scale_hi, double ratio_lo, double ratio_hi,
                                             Generator& g) {
  VIT_CHECK(H >= 1 && W >= 1, "random_resized_crop: image ", H, "x", W);
  VIT_CHECK(scale_lo > 0 && scale_lo <= scale_hi && scale_hi <= 1, "random_resized_crop: scale (",
            scale_lo, ", ", scale_hi, ") must satisfy 0 < lo <= hi <= 1");
  VIT_CHECK(ratio_lo > 0 && ratio_lo <= ratio_hi, "random_resized_crop: ratio (", ratio_lo, ", ",
            ratio_hi, ") must satisfy 0 < lo <= hi");
  const double area = static_cast<double>(H * W);
  const double log_lo = std::log(ratio_lo), log_hi = std::log(ratio_hi);
  // torch.randint(0, n): uniform in [0, n).
  const auto below = [&g](int64_t n) {
    return std::min(static_cast<int64_t>(g.next_uniform() * static_cast<double>(n)), n - 1);
  };
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double target = area * (scale_lo + (scale_hi - scale_lo) * g.next_uniform());
    const double aspect = std::exp(log_lo + (log_hi - log_lo) * g.next_uniform());
    // Python's round() is half-to-even, as nearbyint in the default mode.
    const auto w = static_cast<int64_t>(std::nearbyint(std::sqrt(target * aspect)));
    const auto h = static_cast<int64_t>(std::nearbyint(std::sqrt(target / aspect)));
    if (0 < w && w <= W && 0 < h && h <= H) {
      CropWindow c;
      c.height = h, c.width = w;
      c.top = below(H - h + 1);
      c.left = below(W - w + 1);
      return c;
    }
  }
  // Fallback: the central crop of the whole image, its aspect clamped to the range.
  const double in_ratio = static_cast<double>(W) / static_cast<double>(H);
  CropWindow c;
  c.height = H, c.width = W;
  if (in_ratio < ratio_lo)
    c.height = static_cast<int64_t>(std::nearbyint(static_cast<double>(W) / ratio_lo));
  else if (in_ratio > ratio_hi)
    c.width = static_cast<int64_t>(std::nearbyint(static_cast<double>(H) * ratio_hi));
  c.height = std::clamp<int64_t>(c.height, 1, H), c.width = std::clamp<int64_t>(c.width, 1, W);
  c.top = (H - c.height) / 2, c.left = (W - c.width) / 2;
  return c;
}

/// RandomResizedCrop(size, scale, ratio, BILINEAR) of the C x H x W image at
/// src into out (C * size * size bytes), resampling through `scratch`.
/// Returns the window it took.
inline CropWindow random_resized_crop_into(const uint8_t* src, int64_t C, int64_t H, int64_t W,
                                           int64_t size, double scale_lo, double scale_hi,
                                           double ratio_lo, double ratio_hi, Generator& g,
                                           uint8_t* out, ResizeScratch& scratch) {
  VIT_CHECK(size >= 1, "random_resized_crop: size ", size, " must be >= 1");
  const CropWindow c = random_resized_crop_window(H, W, scale_lo, scale_hi, ratio_lo, ratio_hi, g);
  resize_region_into(src, C, H, W, c.top, c.left, c.height, c.width, size, size, out, scratch);
  return c;
}

/// RandomResizedCrop(size, scale, ratio) of an Image: a new size x size image.
inline Image random_resized_crop(const Image& src, int64_t size, double scale_lo, double scale_hi,
                                 double ratio_lo, double ratio_hi, Generator& g) {
  VIT_CHECK(src.channels >= 1 && src.height >= 1 && src.width >= 1 &&
                static_cast<int64_t>(src.data.size()) == src.numel(),
            "random_resized_crop: image (", src.channels, ",", src.height, ",", src.width, ")");
  VIT_CHECK(size >= 1, "random_resized_crop: size ", size, " must be >= 1");
  Image out(src.channels, size, size);
  ResizeScratch scratch;
  random_resized_crop_into(src.data.data(), src.channels, src.height, src.width, size, scale_lo,
                           scale_hi, ratio_lo, ratio_hi, g, out.data.data(), scratch);
  return out;
}

}  // namespace vit::data
