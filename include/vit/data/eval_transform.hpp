// The evaluation transform of timm and the fine-tuning tutorial for images of
// any size: resize the shorter side to floor(size / crop_pct) (Pillow's
// antialiased bilinear, torchvision Resize(int)), then centre-crop size x size
// (torchvision CenterCrop). timm's transforms_imagenet_eval with its default
// crop_mode 'center'; crop_pct 0.875 turns 224 into resize 256, crop 224.
// The loader stores folder images already resized (eval_resize) and crops
// them per batch; eval_transform does both for one image (vit::Classifier).
#pragma once

#include <cmath>
#include <cstdint>

#include "vit/core/error.hpp"
#include "vit/data/dataset.hpp"
#include "vit/data/image.hpp"
#include "vit/data/transforms.hpp"

namespace vit::data {

/// The default share of the resized image the centre crop keeps (timm's DEFAULT_CROP_PCT).
inline constexpr double kDefaultCropPct = 0.875;

/// timm's scale_size: math.floor(size / crop_pct), the shorter side before the crop.
inline int64_t eval_resize_size(int64_t size, double crop_pct) {
  VIT_CHECK(size >= 1, "eval transform: size ", size, " must be >= 1");
  VIT_CHECK(crop_pct > 0 && crop_pct <= 1, "eval transform: crop_pct ", crop_pct,
            " is outside (0, 1]");
  return static_cast<int64_t>(std::floor(static_cast<double>(size) / crop_pct));
}

/// The first step: the shorter side resized to eval_resize_size(size,
/// crop_pct), the longer one int(that * long / short), as torchvision.
inline Image eval_resize(const Image& src, int64_t size, double crop_pct) {
  return resize_shorter_side(src, eval_resize_size(size, crop_pct));
}

/// Resize (shorter side to floor(size / crop_pct)) then CenterCrop(size): the
/// size x size image a model of that input size is evaluated on.
inline Image eval_transform(const Image& src, int64_t size, double crop_pct = kDefaultCropPct) {
  return center_crop(eval_resize(src, size, crop_pct), size);
}

}  // namespace vit::data
