// torchvision ColorJitter(brightness=F, contrast=F, saturation=F) on uint8 CHW
// images, as timm's --color-jitter F builds it (hue off): each factor uniform
// in [max(0, 1 - F), 1 + F], the three applied in a random order. The ops are
// PIL's ImageEnhance, which torchvision runs on PIL images: brightness blends
// with black, contrast with the rounded mean of the greyscale image,
// saturation with the greyscale image itself (ITU-R 601-2 luma as PIL's "L"),
// all through Image.blend's float arithmetic truncated to uint8 (the
// op_brightness / op_contrast / op_color of randaugment.hpp). On a grey image
// saturation changes nothing, as in PIL.
//
// Draws from the Generator passed in: the order (a permutation of the three),
// then brightness, contrast and saturation factors, as get_params does.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>

#include "vit/core/error.hpp"
#include "vit/core/rng.hpp"
#include "vit/data/dataset.hpp"
#include "vit/data/randaugment.hpp"

namespace vit::data {

/// What color_jitter drew: factors and the order applied (0 brightness, 1 contrast, 2 saturation).
struct ColorJitterDraw {
  double brightness = 1, contrast = 1, saturation = 1;
  std::array<int, 3> order{0, 1, 2};
};

/// Applies brightness, contrast and saturation with the given factors in
/// `order` to img, in place.
inline void apply_color_jitter(Image& img, const ColorJitterDraw& d) {
  for (int op : d.order) {
    if (op == 0) op_brightness(img, d.brightness);
    if (op == 1) op_contrast(img, d.contrast);
    if (op == 2) op_color(img, d.saturation);
  }
}

/// ColorJitter(strength, strength, strength) on img in place; 0 does nothing
/// and draws nothing. Returns the draw.
inline ColorJitterDraw color_jitter(Image& img, double strength, Generator& g) {
  VIT_CHECK(strength >= 0, "color_jitter: strength ", strength, " must be >= 0");
  ColorJitterDraw d;
  if (strength <= 0) return d;
  // torch.randperm(3) by Fisher-Yates.
  for (int i = 2; i > 0; --i) {
    const int j = std::min(static_cast<int>(g.next_uniform() * (i + 1)), i);
    std::swap(d.order[static_cast<size_t>(i)], d.order[static_cast<size_t>(j)]);
  }
  const double lo = std::max(0.0, 1.0 - strength), hi = 1.0 + strength;
  // torch draws the factors in float32: so do we, then PIL takes them as C floats.
  const auto factor = [&] {
    return static_cast<double>(static_cast<float>(lo + (hi - lo) * g.next_uniform()));
  };
  d.brightness = factor();
  d.contrast = factor();
  d.saturation = factor();
  apply_color_jitter(img, d);
  return d;
}

}  // namespace vit::data
