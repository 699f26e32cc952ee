// Per-sample image transforms with torchvision/timm semantics, and the two
// pipelines the loader runs: augment_and_normalize (training: padded random
// crop or RandomResizedCrop -> horizontal flip -> RandAugment -> ColorJitter
// -> ToTensor+Normalize -> random erasing, timm's order) and normalize_only
// (evaluation). Pixels stay uint8
// CHW until the single fused conversion to normalised float.
//
// All randomness comes from the Generator passed in, so the loader can give
// each sample its own generator from (seed, epoch, index) and get the same
// batch on any thread count. Avoids: global RNG state, per-pixel allocation,
// and resampling code of its own (resize_shorter_side wraps data::resize).
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "vit/core/error.hpp"
#include "vit/core/rng.hpp"
#include "vit/data/color_jitter.hpp"
#include "vit/data/dataset.hpp"
#include "vit/data/image.hpp"
#include "vit/data/randaugment.hpp"
#include "vit/data/random_erasing.hpp"
#include "vit/data/random_resized_crop.hpp"

namespace vit::data {

/// Per-channel mean and std of ToTensor (pixel / 255) values; one entry
/// applies to every channel.
struct Normalization {
  std::vector<float> mean, std;
};

/// CIFAR-10 training-set statistics.
inline Normalization cifar10_normalization() {
  return {{0.4914f, 0.4822f, 0.4465f}, {0.2470f, 0.2435f, 0.2616f}};
}
/// CIFAR-100 training-set statistics.
inline Normalization cifar100_normalization() {
  return {{0.5071f, 0.4865f, 0.4409f}, {0.2673f, 0.2564f, 0.2762f}};
}
/// Fashion-MNIST training-set statistics (1 channel).
inline Normalization fashion_mnist_normalization() { return {{0.2860f}, {0.3530f}}; }
/// MNIST training-set statistics (1 channel).
inline Normalization mnist_normalization() { return {{0.1307f}, {0.3081f}}; }
/// Image folders: mean 0.5, std 0.5 per channel (timm's Inception-style
/// constants, which the original ViT weights use), mapping pixels to [-1, 1].
inline Normalization folder_normalization(int64_t channels = 3) {
  const auto n = static_cast<size_t>(std::max<int64_t>(channels, 1));
  return {std::vector<float>(n, 0.5f), std::vector<float>(n, 0.5f)};
}
/// timm's IMAGENET_DEFAULT_MEAN / IMAGENET_DEFAULT_STD, for models that expect them.
inline Normalization imagenet_normalization() {
  return {{0.485f, 0.456f, 0.406f}, {0.229f, 0.224f, 0.225f}};
}

namespace detail {
inline void check_raw(const uint8_t* src, int64_t C, int64_t H, int64_t W, const char* who) {
  VIT_CHECK(src != nullptr && C >= 1 && H >= 1 && W >= 1, who, ": image (", C, ",", H, ",", W, ")",
            src ? "" : " is null");
}

// Copies the (oh, ow) window at (top, left) of src, zero where it leaves src
// (top/left may be negative: that is padding). One memcpy per row at most.
inline void crop_into(const uint8_t* src, int64_t C, int64_t H, int64_t W, int64_t top,
                      int64_t left, int64_t oh, int64_t ow, uint8_t* out) {
  const int64_t x_lo = std::clamp<int64_t>(-left, 0, ow),
                x_hi = std::clamp<int64_t>(W - left, 0, ow);
  for (int64_t c = 0; c < C; ++c)
    for (int64_t y = 0; y < oh; ++y) {
      uint8_t* o = out + (c * oh + y) * ow;
      const int64_t sy = top + y;
      if (sy < 0 || sy >= H || x_lo >= x_hi) {
        std::memset(o, 0, static_cast<size_t>(ow));
        continue;
      }
      std::memset(o, 0, static_cast<size_t>(x_lo));
      std::memcpy(o + x_lo, src + (c * H + sy) * W + left + x_lo, static_cast<size_t>(x_hi - x_lo));
      std::memset(o + x_hi, 0, static_cast<size_t>(ow - x_hi));
    }
}

// CenterCrop's offset of a `want` window in `have` pixels: round((have -
// want) / 2) half to even, as Python's round; negative (zero padding, the odd
// pixel bottom/right) when the window is larger.
inline int64_t center_offset(int64_t have, int64_t want) {
  if (want > have) return -((want - have) / 2);
  return static_cast<int64_t>(std::nearbyint(static_cast<double>(have - want) / 2.0));
}

// torch.randint(0, n): uniform in [0, n).
inline int64_t uniform_below(Generator& g, int64_t n) {
  return std::min(static_cast<int64_t>(g.next_uniform() * static_cast<double>(n)), n - 1);
}

inline void check_normalization(const Normalization& norm, int64_t C, const char* who) {
  const size_t n = norm.mean.size();
  VIT_CHECK(n == norm.std.size() && (n == 1 || static_cast<int64_t>(n) == C), who,
            ": normalization with ", norm.mean.size(), " means and ", norm.std.size(), " stds for ",
            C, " channels");
  for (float s : norm.std) VIT_CHECK(s > 0, who, ": normalization std ", s, " must be > 0");
}

// ToTensor then Normalize in float32, as torchvision computes them. Through a
// 256-entry table per channel: the same float values, without two divisions
// per pixel (which the compiler cannot vectorise while `out` may alias).
inline void normalize_into(const uint8_t* src, int64_t C, int64_t plane, const float* mean,
                           const float* stddev, size_t stride, float* out) {
  std::array<float, 256> lut;
  for (int64_t c = 0; c < C; ++c) {
    const float m = mean[c * stride], s = stddev[c * stride];
    for (int v = 0; v < 256; ++v) lut[v] = (static_cast<float>(v) / 255.0f - m) / s;
    const uint8_t* p = src + c * plane;
    float* o = out + c * plane;
    // Unrolled: the one-load-one-store loop otherwise runs ~25% slower or not
    // depending on where the linker happens to place it (measured, AVX-512 host).
#pragma GCC unroll 8
    for (int64_t i = 0; i < plane; ++i) o[i] = lut[p[i]];
  }
}
}  // namespace detail

/// The (height, width) window whose top-left corner is (top, left) in the
/// image zero-padded by `padding` on every side; top in [0, H + 2 padding -
/// height]. This is RandomCrop with the offset given instead of drawn.
inline Image pad_and_crop(const Image& src, int64_t height, int64_t width, int64_t padding,
                          int64_t top, int64_t left) {
  detail::check_image(src, "pad_and_crop");
  VIT_CHECK(height >= 1 && width >= 1 && padding >= 0, "pad_and_crop: size ", height, "x", width,
            ", padding ", padding);
  const int64_t ph = src.height + 2 * padding, pw = src.width + 2 * padding;
  VIT_CHECK(top >= 0 && left >= 0 && top + height <= ph && left + width <= pw,
            "pad_and_crop: window ", height, "x", width, " at (", top, ",", left,
            ") outside the padded ", ph, "x", pw, " image");
  Image out(src.channels, height, width);
  detail::crop_into(src.data.data(), src.channels, src.height, src.width, top - padding,
                    left - padding, height, width, out.data.data());
  return out;
}

/// torchvision RandomCrop((height, width), padding) with zero fill: pad every
/// side, then crop at a uniform offset (row draw, then column draw; no draw
/// when the padded image already has the crop's size).
inline Image random_crop(const Image& src, int64_t height, int64_t width, int64_t padding,
                         Generator& g) {
  detail::check_image(src, "random_crop");
  const int64_t ph = src.height + 2 * padding, pw = src.width + 2 * padding;
  VIT_CHECK(padding >= 0 && height >= 1 && width >= 1 && height <= ph && width <= pw,
            "random_crop: crop ", height, "x", width, " from a ", src.height, "x", src.width,
            " image padded by ", padding);
  if (ph == height && pw == width) return pad_and_crop(src, height, width, padding, 0, 0);
  const int64_t top = detail::uniform_below(g, ph - height + 1);
  const int64_t left = detail::uniform_below(g, pw - width + 1);
  return pad_and_crop(src, height, width, padding, top, left);
}

/// torchvision RandomCrop(size, padding): a size x size crop.
inline Image random_crop(const Image& src, int64_t size, int64_t padding, Generator& g) {
  return random_crop(src, size, size, padding, g);
}

/// torchvision Resize(size) with an int: the shorter side becomes `size`, the
/// longer int(size * long / short), resampled by data::resize (Pillow's
/// antialiased bilinear). An image already that size is returned as is.
inline Image resize_shorter_side(const Image& src, int64_t size) {
  detail::check_image(src, "resize_shorter_side");
  VIT_CHECK(size >= 1, "resize_shorter_side: size ", size, " must be >= 1");
  const bool portrait = src.width <= src.height;
  const int64_t shorter = portrait ? src.width : src.height;
  const int64_t longer = portrait ? src.height : src.width;
  // Python's int(size * long / short): exact product, correctly rounded quotient.
  const auto new_long =
      static_cast<int64_t>(static_cast<double>(size * longer) / static_cast<double>(shorter));
  return portrait ? resize(src, new_long, size) : resize(src, size, new_long);
}

/// Mirrors the image left-right in place.
inline void hflip(Image& img) {
  detail::check_image(img, "hflip");
  for (int64_t r = 0; r < img.channels * img.height; ++r) {
    uint8_t* row = img.data.data() + r * img.width;
    std::reverse(row, row + img.width);
  }
}

/// torchvision RandomHorizontalFlip(p) in place: flips when a uniform draw is
/// below p. Returns whether it flipped.
inline bool random_hflip(Image& img, double p, Generator& g) {
  VIT_CHECK(p >= 0 && p <= 1, "random_hflip: probability ", p, " outside [0, 1]");
  const bool flip = g.next_uniform() < p;
  if (flip) hflip(img);
  return flip;
}

/// torchvision CenterCrop((height, width)): offsets round((H - height) / 2)
/// half to even, as Python's round; a crop larger than the image is centred
/// with zero padding (the extra pixel of an odd pad goes bottom/right).
inline Image center_crop(const Image& src, int64_t height, int64_t width) {
  detail::check_image(src, "center_crop");
  VIT_CHECK(height >= 1 && width >= 1, "center_crop: size ", height, "x", width);
  Image out(src.channels, height, width);
  detail::crop_into(src.data.data(), src.channels, src.height, src.width,
                    detail::center_offset(src.height, height),
                    detail::center_offset(src.width, width), height, width, out.data.data());
  return out;
}

/// torchvision CenterCrop(size): a size x size centre crop.
inline Image center_crop(const Image& src, int64_t size) { return center_crop(src, size, size); }

/// ToTensor + Normalize: out[c,y,x] = (img[c,y,x] / 255 - mean[c]) / stddev[c]
/// in float32; mean and stddev hold img.channels values; out holds img.numel().
inline void to_normalized_float(const Image& img, const float* mean, const float* stddev,
                                float* out) {
  detail::check_image(img, "to_normalized_float");
  VIT_CHECK(mean != nullptr && stddev != nullptr && out != nullptr,
            "to_normalized_float: null mean, std or output");
  for (int64_t c = 0; c < img.channels; ++c)
    VIT_CHECK(stddev[c] > 0, "to_normalized_float: std ", stddev[c], " of channel ", c,
              " must be > 0");
  detail::normalize_into(img.data.data(), img.channels, img.height * img.width, mean, stddev, 1,
                         out);
}

/// ToTensor + Normalize with a Normalization (one entry or one per channel).
inline void to_normalized_float(const Image& img, const Normalization& norm, float* out) {
  detail::check_image(img, "to_normalized_float");
  detail::check_normalization(norm, img.channels, "to_normalized_float");
  VIT_CHECK(out != nullptr, "to_normalized_float: null output");
  detail::normalize_into(img.data.data(), img.channels, img.height * img.width, norm.mean.data(),
                         norm.std.data(), norm.mean.size() == 1 ? 0 : 1, out);
}

/// The training augmentations, each off at its zero value.
struct AugmentConfig {
  int64_t crop_padding = 4;     // RandomCrop(H x W, padding); 0: no crop
  /// RandomResizedCrop(output size, scale, ratio) instead of the padded crop:
  /// the training crop of images of any size (folders), as timm and torchvision.
  bool random_resized_crop = false;
  double scale_lo = 0.08, scale_hi = 1.0;             // share of the image area kept
  double ratio_lo = 3.0 / 4.0, ratio_hi = 4.0 / 3.0;  // aspect ratio (width / height)
  bool hflip = true;            // RandomHorizontalFlip(0.5)
  int randaugment_n = 0;        // ops per image; 0: no RandAugment
  int randaugment_m = 9;        // magnitude, 0..10
  double randaugment_mstd = 0;  // timm "mstd": magnitude noise std (inf: uniform in [0, m])
  double color_jitter = 0;      // ColorJitter(F, F, F) after RandAugment; 0: off
  double erasing_prob = 0;      // RandomErasing(p, mode='pixel'); 0: off
  double erasing_min_area = kErasingMinArea, erasing_max_area = kErasingMaxArea;
};

namespace detail {
inline void check_augment(const AugmentConfig& cfg, const char* who) {
  VIT_CHECK(cfg.crop_padding >= 0 && cfg.randaugment_n >= 0 && cfg.erasing_prob >= 0 &&
                cfg.erasing_prob <= 1 && cfg.color_jitter >= 0,
            who, ": crop_padding ", cfg.crop_padding, ", randaugment_n ", cfg.randaugment_n,
            ", erasing_prob ", cfg.erasing_prob, ", color_jitter ", cfg.color_jitter);
}
}  // namespace detail

/// The training pipeline for one image (C,H,W) at src, written as normalised
/// float (C,out_h,out_w) to out: the crop (RandomResizedCrop to out_h x out_w
/// when cfg.random_resized_crop, else a same-size random crop with padding,
/// which needs H, W = out_h, out_w) -> hflip -> RandAugment -> ColorJitter ->
/// ToTensor+Normalize -> random erasing, drawing from g in that order; a
/// disabled step draws nothing.
inline void augment_and_normalize(const uint8_t* src, int64_t C, int64_t H, int64_t W,
                                  int64_t out_h, int64_t out_w, const AugmentConfig& cfg,
                                  const Normalization& norm, Generator& g, float* out) {
  detail::check_raw(src, C, H, W, "augment_and_normalize");
  detail::check_normalization(norm, C, "augment_and_normalize");
  detail::check_augment(cfg, "augment_and_normalize");
  VIT_CHECK(out != nullptr, "augment_and_normalize: null output");
  VIT_CHECK(cfg.random_resized_crop || (H == out_h && W == out_w), "augment_and_normalize: a ",
            H, "x", W, " image needs random_resized_crop to become ", out_h, "x", out_w);
  // One working image and resampling buffer per thread, reused: no allocation
  // per sample in steady state.
  thread_local Image work;
  work.channels = C, work.height = out_h, work.width = out_w;
  work.data.resize(static_cast<size_t>(C * out_h * out_w));
  if (cfg.random_resized_crop) {
    const CropWindow c = random_resized_crop_window(H, W, cfg.scale_lo, cfg.scale_hi, cfg.ratio_lo,
                                                    cfg.ratio_hi, g);
    thread_local ResizeScratch scratch;
    resize_region_into(src, C, H, W, c.top, c.left, c.height, c.width, out_h, out_w,
                       work.data.data(), scratch);
  } else if (cfg.crop_padding > 0) {
    const int64_t span = 2 * cfg.crop_padding + 1;  // offsets 0..2p in the padded image
    const int64_t top = detail::uniform_below(g, span), left = detail::uniform_below(g, span);
    detail::crop_into(src, C, H, W, top - cfg.crop_padding, left - cfg.crop_padding, H, W,
                      work.data.data());
  } else {
    std::memcpy(work.data.data(), src, static_cast<size_t>(C * H * W));
  }
  if (cfg.hflip) random_hflip(work, 0.5, g);
  if (cfg.randaugment_n > 0)
    rand_augment(work, cfg.randaugment_n, cfg.randaugment_m, g, cfg.randaugment_mstd);
  if (cfg.color_jitter > 0) color_jitter(work, cfg.color_jitter, g);
  detail::normalize_into(work.data.data(), C, out_h * out_w, norm.mean.data(), norm.std.data(),
                         norm.mean.size() == 1 ? 0 : 1, out);
  if (cfg.erasing_prob > 0)
    random_erasing(out, C, out_h, out_w, cfg.erasing_prob, g, cfg.erasing_min_area,
                   cfg.erasing_max_area);
}

/// The training pipeline with the output the input's size (C,H,W).
inline void augment_and_normalize(const uint8_t* src, int64_t C, int64_t H, int64_t W,
                                  const AugmentConfig& cfg, const Normalization& norm, Generator& g,
                                  float* out) {
  augment_and_normalize(src, C, H, W, H, W, cfg, norm, g, out);
}

/// The evaluation pipeline: ToTensor+Normalize only, no randomness.
inline void normalize_only(const uint8_t* src, int64_t C, int64_t H, int64_t W,
                           const Normalization& norm, float* out) {
  detail::check_raw(src, C, H, W, "normalize_only");
  detail::check_normalization(norm, C, "normalize_only");
  VIT_CHECK(out != nullptr, "normalize_only: null output");
  detail::normalize_into(src, C, H * W, norm.mean.data(), norm.std.data(),
                         norm.mean.size() == 1 ? 0 : 1, out);
}

}  // namespace vit::data
