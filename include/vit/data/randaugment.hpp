// RandAugment as timm's rand_augment_transform builds it with the "increasing"
// op list (config "rand-m9-n2-inc1", DeiT's "rand-m9-mstd0.5-inc1" with
// magnitude_std), on uint8 CHW images with 1 or 3 channels, plus every op as
// its own deterministic function so each can be tested on its own.
//
// The ops follow PIL's definitions, which is what timm runs: ImageOps
// (autocontrast, equalize, invert, posterize, solarize), ImageEnhance (blend
// with a degenerate image in float, truncated to uint8 as Image.blend does) and
// Image.transform(AFFINE) (inverse map of pixel centres, fill outside).
// Deliberately not reproduced: timm's per-call random choice between bilinear
// and bicubic resampling for geometric ops (we always sample bilinearly, PIL
// style: edge-clamped, truncated), timm's weighted op choice ("w0"), and any
// randomness source other than the Generator passed in.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <numbers>
#include <vector>

#include "vit/core/error.hpp"
#include "vit/core/rng.hpp"
#include "vit/data/dataset.hpp"

namespace vit::data {

/// Fill value for pixels that geometric ops bring in from outside the image:
/// timm's img_mean default (128, 128, 128).
inline constexpr uint8_t kRandAugmentFill = 128;

namespace detail {

using Lut = std::array<uint8_t, 256>;

inline void check_image(const Image& img, const char* who) {
  VIT_CHECK(img.channels >= 1 && img.height >= 1 && img.width >= 1 &&
                static_cast<int64_t>(img.data.size()) == img.numel(),
            who, ": image (", img.channels, ",", img.height, ",", img.width, ") with ",
            img.data.size(), " bytes");
}

inline void apply_lut(uint8_t* plane, int64_t n, const Lut& lut) {
  for (int64_t i = 0; i < n; ++i) plane[i] = lut[plane[i]];
}

inline void apply_lut_all(Image& img, const Lut& lut) {
  apply_lut(img.data.data(), img.numel(), lut);
}

inline std::array<int64_t, 256> histogram(const uint8_t* plane, int64_t n) {
  std::array<int64_t, 256> h{};
  for (int64_t i = 0; i < n; ++i) ++h[plane[i]];
  return h;
}

// Per-thread scratch so geometric and smoothing ops copy the source once per
// call without a heap allocation per image once the buffer has grown.
inline std::vector<uint8_t>& scratch() {
  thread_local std::vector<uint8_t> buffer;
  return buffer;
}

// PIL Image.blend(degenerate, image, alpha): computed in float (alpha is a C
// float there), truncated toward zero, clipped only when extrapolating.
inline uint8_t blend_pixel(int degenerate, int value, float alpha) {
  const float t = static_cast<float>(degenerate) + alpha * static_cast<float>(value - degenerate);
  if (t <= 0.0f) return 0;
  if (t >= 255.0f) return 255;
  return static_cast<uint8_t>(t);
}

// ITU-R 601-2 luma with PIL's fixed-point rounding (Convert.c rgb2l).
inline uint8_t luma(uint8_t r, uint8_t g, uint8_t b) {
  return static_cast<uint8_t>((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16);
}

// Image.transform(size, AFFINE, m, BILINEAR, fillcolor=fill): the output pixel
// (x, y) reads the input at (m0 u + m1 v + m2, m3 u + m4 v + m5), u = x + 0.5,
// v = y + 0.5 (pixel centres). Points outside [0,W)x[0,H) take the fill;
// inside, bilinear with edge clamping, truncated to uint8 (Geometry.c).
inline void affine_bilinear(Image& img, const double m[6], uint8_t fill) {
  const int64_t C = img.channels, H = img.height, W = img.width, plane = H * W;
  std::vector<uint8_t>& src = scratch();
  src.assign(img.data.begin(), img.data.end());
  const double dw = static_cast<double>(W), dh = static_cast<double>(H);
  for (int64_t y = 0; y < H; ++y) {
    const double v = static_cast<double>(y) + 0.5;
    for (int64_t x = 0; x < W; ++x) {
      const double u = static_cast<double>(x) + 0.5;
      double xi = m[0] * u + m[1] * v + m[2];
      double yi = m[3] * u + m[4] * v + m[5];
      uint8_t* o = img.data.data() + y * W + x;
      if (!(xi >= 0.0 && xi < dw && yi >= 0.0 && yi < dh)) {  // also catches NaN
        for (int64_t c = 0; c < C; ++c) o[c * plane] = fill;
        continue;
      }
      xi -= 0.5;
      yi -= 0.5;
      const double fx = std::floor(xi), fy = std::floor(yi);
      const int64_t x0 = static_cast<int64_t>(fx), y0 = static_cast<int64_t>(fy);
      const double dx = xi - fx, dy = yi - fy;
      const int64_t xa = std::clamp<int64_t>(x0, 0, W - 1),
                    xb = std::clamp<int64_t>(x0 + 1, 0, W - 1);
      const int64_t ya = std::clamp<int64_t>(y0, 0, H - 1);
      const bool has_below = y0 + 1 >= 0 && y0 + 1 < H;
      for (int64_t c = 0; c < C; ++c) {
        const uint8_t* p = src.data() + c * plane;
        const uint8_t* r0 = p + ya * W;
        const double v1 = r0[xa] + (r0[xb] - r0[xa]) * dx;
        double v2 = v1;
        if (has_below) {
          const uint8_t* r1 = p + (y0 + 1) * W;
          v2 = r1[xa] + (r1[xb] - r1[xa]) * dx;
        }
        o[c * plane] = static_cast<uint8_t>(v1 + (v2 - v1) * dy);
      }
    }
  }
}

// Python's round(v, 15), which PIL applies to the rotation matrix so that
// multiples of 90 degrees map pixel centres exactly. Decimal rounding of the
// exact binary value (printf is exact), as Python does: v * 1e15 rounded in
// double can land on a false tie and round the other way.
inline double round15(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.15f", v);
  return std::strtod(buf, nullptr);
}

// Standard normal from two uniforms of g (Box-Muller). Draws through
// next_uniform only, so it never reuses counters another draw may take.
inline double randaugment_normal(Generator& g) {
  const double u1 = 1.0 - g.next_uniform();  // (0, 1]
  const double u2 = g.next_uniform();
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
}

}  // namespace detail

// ---- colour / histogram ops (per channel, LUT based) -------------------------------------------

/// ImageOps.autocontrast (cutoff 0): per channel, stretch [lo, hi] to [0, 255];
/// a channel with a single value is left as is.
inline void op_auto_contrast(Image& img) {
  detail::check_image(img, "op_auto_contrast");
  const int64_t plane = img.height * img.width;
  for (int64_t c = 0; c < img.channels; ++c) {
    uint8_t* p = img.data.data() + c * plane;
    const auto h = detail::histogram(p, plane);
    int lo = 0, hi = 255;
    while (lo < 256 && h[lo] == 0) ++lo;
    while (hi >= 0 && h[hi] == 0) --hi;
    if (hi <= lo) continue;
    const double scale = 255.0 / (hi - lo), offset = -lo * scale;
    detail::Lut lut;
    for (int i = 0; i < 256; ++i)
      lut[i] = static_cast<uint8_t>(std::clamp(static_cast<int>(i * scale + offset), 0, 255));
    detail::apply_lut(p, plane, lut);
  }
}

/// ImageOps.equalize: per channel, Pillow's cumulative-histogram LUT with
/// step = (n - count of the top value) / 255 (current Pillow; releases before
/// 10 divided by 256, which never reaches 255), values clipped to 255.
inline void op_equalize(Image& img) {
  detail::check_image(img, "op_equalize");
  const int64_t plane = img.height * img.width;
  for (int64_t c = 0; c < img.channels; ++c) {
    uint8_t* p = img.data.data() + c * plane;
    const auto h = detail::histogram(p, plane);
    int64_t nonzero = 0, last = 0, total = 0;
    for (int i = 0; i < 256; ++i)
      if (h[i]) ++nonzero, last = h[i], total += h[i];
    if (nonzero <= 1) continue;
    const int64_t step = (total - last) / 255;
    if (step == 0) continue;
    detail::Lut lut;
    int64_t n = step / 2;
    for (int i = 0; i < 256; ++i) {
      lut[i] = static_cast<uint8_t>(std::min<int64_t>(n / step, 255));
      n += h[i];
    }
    detail::apply_lut(p, plane, lut);
  }
}

/// ImageOps.invert: v -> 255 - v.
inline void op_invert(Image& img) {
  detail::check_image(img, "op_invert");
  for (uint8_t& v : img.data) v = static_cast<uint8_t>(255 - v);
}

/// ImageOps.posterize keeping the `bits` most significant bits; bits >= 8 is
/// the identity (timm), bits <= 0 gives black.
inline void op_posterize(Image& img, int bits) {
  detail::check_image(img, "op_posterize");
  if (bits >= 8) return;
  const int mask = bits <= 0 ? 0 : (~((1 << (8 - bits)) - 1)) & 0xFF;
  for (uint8_t& v : img.data) v = static_cast<uint8_t>(v & mask);
}

/// ImageOps.solarize: values >= threshold are inverted (threshold 256: identity).
inline void op_solarize(Image& img, int threshold) {
  detail::check_image(img, "op_solarize");
  detail::Lut lut;
  for (int i = 0; i < 256; ++i) lut[i] = static_cast<uint8_t>(i < threshold ? i : 255 - i);
  detail::apply_lut_all(img, lut);
}

/// timm solarize_add: values below threshold get `add`, saturating at 255.
inline void op_solarize_add(Image& img, int add, int threshold = 128) {
  detail::check_image(img, "op_solarize_add");
  detail::Lut lut;
  for (int i = 0; i < 256; ++i)
    lut[i] = static_cast<uint8_t>(i < threshold ? std::clamp(i + add, 0, 255) : i);
  detail::apply_lut_all(img, lut);
}

// ---- ImageEnhance: blend the image with a degenerate version by `factor` ---------------------

/// ImageEnhance.Color: degenerate = grayscale (PIL luma). Identity on 1 channel.
inline void op_color(Image& img, double factor) {
  detail::check_image(img, "op_color");
  if (img.channels != 3) return;  // "L" has no colour to remove; convert("L") is a no-op
  const int64_t plane = img.height * img.width;
  const float alpha = static_cast<float>(factor);
  uint8_t *r = img.data.data(), *g = r + plane, *b = g + plane;
  for (int64_t i = 0; i < plane; ++i) {
    const int l = detail::luma(r[i], g[i], b[i]);
    r[i] = detail::blend_pixel(l, r[i], alpha);
    g[i] = detail::blend_pixel(l, g[i], alpha);
    b[i] = detail::blend_pixel(l, b[i], alpha);
  }
}

/// ImageEnhance.Contrast: degenerate = constant int(mean luma + 0.5).
inline void op_contrast(Image& img, double factor) {
  detail::check_image(img, "op_contrast");
  const int64_t plane = img.height * img.width;
  int64_t sum = 0;
  if (img.channels == 3) {
    const uint8_t *r = img.data.data(), *g = r + plane, *b = g + plane;
    for (int64_t i = 0; i < plane; ++i) sum += detail::luma(r[i], g[i], b[i]);
  } else {
    for (int64_t i = 0; i < plane; ++i) sum += img.data[i];
  }
  const int mean = static_cast<int>(static_cast<double>(sum) / static_cast<double>(plane) + 0.5);
  const float alpha = static_cast<float>(factor);
  detail::Lut lut;
  for (int i = 0; i < 256; ++i) lut[i] = detail::blend_pixel(mean, i, alpha);
  detail::apply_lut_all(img, lut);
}

/// ImageEnhance.Brightness: degenerate = black.
inline void op_brightness(Image& img, double factor) {
  detail::check_image(img, "op_brightness");
  const float alpha = static_cast<float>(factor);
  detail::Lut lut;
  for (int i = 0; i < 256; ++i) lut[i] = detail::blend_pixel(0, i, alpha);
  detail::apply_lut_all(img, lut);
}

/// ImageEnhance.Sharpness: degenerate = ImageFilter.SMOOTH (3x3 kernel
/// [1 1 1; 1 5 1; 1 1 1] / 13, rounded; border pixels kept, as PIL does).
inline void op_sharpness(Image& img, double factor) {
  detail::check_image(img, "op_sharpness");
  const int64_t H = img.height, W = img.width, plane = H * W;
  std::vector<uint8_t>& smooth = detail::scratch();
  smooth.assign(img.data.begin(), img.data.end());
  // PIL divides the kernel by its scale in float, then sums row by row in float.
  const float k1 = 1.0f / 13.0f, k5 = 5.0f / 13.0f;
  for (int64_t c = 0; c < img.channels; ++c) {
    const uint8_t* p = img.data.data() + c * plane;
    uint8_t* s = smooth.data() + c * plane;
    for (int64_t y = 1; y + 1 < H; ++y) {
      const uint8_t *up = p + (y - 1) * W, *mid = p + y * W, *down = p + (y + 1) * W;
      for (int64_t x = 1; x + 1 < W; ++x) {
        float ss = 0.5f;
        ss += static_cast<float>(down[x - 1]) * k1 + static_cast<float>(down[x]) * k1 +
              static_cast<float>(down[x + 1]) * k1;
        ss += static_cast<float>(mid[x - 1]) * k1 + static_cast<float>(mid[x]) * k5 +
              static_cast<float>(mid[x + 1]) * k1;
        ss += static_cast<float>(up[x - 1]) * k1 + static_cast<float>(up[x]) * k1 +
              static_cast<float>(up[x + 1]) * k1;
        s[y * W + x] = static_cast<uint8_t>(std::clamp(ss, 0.0f, 255.0f));
      }
    }
  }
  const float alpha = static_cast<float>(factor);
  for (int64_t i = 0; i < img.numel(); ++i)
    img.data[i] = detail::blend_pixel(smooth[i], img.data[i], alpha);
}

// ---- geometric ops (bilinear, fill outside) ---------------------------------------------------

/// PIL Image.rotate(degrees) about the image centre, counter-clockwise for
/// positive degrees, same size, bilinear, `fill` where the source is outside.
inline void op_rotate(Image& img, double degrees, uint8_t fill = kRandAugmentFill) {
  detail::check_image(img, "op_rotate");
  double angle = std::fmod(degrees, 360.0);  // Python's angle % 360.0
  if (angle < 0) angle += 360.0;
  if (angle == 0.0) return;
  const double rad = -(angle * (std::numbers::pi / 180.0));
  const double a = detail::round15(std::cos(rad)), b = detail::round15(std::sin(rad));
  const double d = detail::round15(-std::sin(rad)), e = a;
  const double cx = static_cast<double>(img.width) / 2.0,
               cy = static_cast<double>(img.height) / 2.0;
  const double m[6] = {a, b, a * -cx + b * -cy + 0.0 + cx, d, e, d * -cx + e * -cy + 0.0 + cy};
  detail::affine_bilinear(img, m, fill);
}

/// timm shear_x: output (x, y) reads the input at (x + factor * y, y).
inline void op_shear_x(Image& img, double factor, uint8_t fill = kRandAugmentFill) {
  detail::check_image(img, "op_shear_x");
  const double m[6] = {1, factor, 0, 0, 1, 0};
  detail::affine_bilinear(img, m, fill);
}

/// timm shear_y: output (x, y) reads the input at (x, y + factor * x).
inline void op_shear_y(Image& img, double factor, uint8_t fill = kRandAugmentFill) {
  detail::check_image(img, "op_shear_y");
  const double m[6] = {1, 0, 0, factor, 1, 0};
  detail::affine_bilinear(img, m, fill);
}

/// timm translate_x_abs: output (x, y) reads the input at (x + pixels, y), so a
/// positive shift moves the content left; integer shifts are exact.
inline void op_translate_x(Image& img, double pixels, uint8_t fill = kRandAugmentFill) {
  detail::check_image(img, "op_translate_x");
  const double m[6] = {1, 0, pixels, 0, 1, 0};
  detail::affine_bilinear(img, m, fill);
}

/// timm translate_y_abs: output (x, y) reads the input at (x, y + pixels).
inline void op_translate_y(Image& img, double pixels, uint8_t fill = kRandAugmentFill) {
  detail::check_image(img, "op_translate_y");
  const double m[6] = {1, 0, 0, 0, 1, pixels};
  detail::affine_bilinear(img, m, fill);
}

// ---- RandAugment ------------------------------------------------------------------------------

/// timm's _RAND_INCREASING_TRANSFORMS, in its order (the index is what the
/// uniform op choice draws).
enum class RandAugmentOp : int {
  AutoContrast,
  Equalize,
  Invert,
  Rotate,
  PosterizeIncreasing,
  SolarizeIncreasing,
  SolarizeAdd,
  ColorIncreasing,
  ContrastIncreasing,
  BrightnessIncreasing,
  SharpnessIncreasing,
  ShearX,
  ShearY,
  TranslateXRel,
  TranslateYRel,
};
inline constexpr int kRandAugmentNumOps = 15;

/// Whether timm draws a random sign for this op's argument (_randomly_negate).
inline bool rand_augment_op_is_signed(RandAugmentOp op) {
  switch (op) {
    case RandAugmentOp::Rotate:
    case RandAugmentOp::ColorIncreasing:
    case RandAugmentOp::ContrastIncreasing:
    case RandAugmentOp::BrightnessIncreasing:
    case RandAugmentOp::SharpnessIncreasing:
    case RandAugmentOp::ShearX:
    case RandAugmentOp::ShearY:
    case RandAugmentOp::TranslateXRel:
    case RandAugmentOp::TranslateYRel:
      return true;
    default:
      return false;
  }
}

/// Applies one op at `magnitude` (timm level, clamped to [0, 10]) with timm's
/// level-to-argument mapping; `negate` is the sign draw for signed ops:
///   Rotate: 30 * m/10 degrees; Shear: 0.3 * m/10; TranslateRel: 0.45 * m/10 of
///   the width/height; *Increasing enhance: max(0.1, 1 +- 0.9 * m/10);
///   PosterizeIncreasing: 4 - int(4 * m/10) bits; SolarizeIncreasing: threshold
///   256 - int(256 * m/10); SolarizeAdd: add int(110 * m/10) below 128.
inline void apply_rand_augment_op(Image& img, RandAugmentOp op, double magnitude, bool negate) {
  const double level = std::clamp(magnitude, 0.0, 10.0) / 10.0;
  const double sign = negate ? -1.0 : 1.0;
  const double enhance = std::max(0.1, 1.0 + sign * (level * 0.9));
  switch (op) {
    case RandAugmentOp::AutoContrast:
      return op_auto_contrast(img);
    case RandAugmentOp::Equalize:
      return op_equalize(img);
    case RandAugmentOp::Invert:
      return op_invert(img);
    case RandAugmentOp::Rotate:
      return op_rotate(img, sign * (level * 30.0));
    case RandAugmentOp::PosterizeIncreasing:
      return op_posterize(img, 4 - static_cast<int>(level * 4.0));
    case RandAugmentOp::SolarizeIncreasing:
      return op_solarize(img, 256 - static_cast<int>(level * 256.0));
    case RandAugmentOp::SolarizeAdd:
      return op_solarize_add(img, static_cast<int>(level * 110.0));
    case RandAugmentOp::ColorIncreasing:
      return op_color(img, enhance);
    case RandAugmentOp::ContrastIncreasing:
      return op_contrast(img, enhance);
    case RandAugmentOp::BrightnessIncreasing:
      return op_brightness(img, enhance);
    case RandAugmentOp::SharpnessIncreasing:
      return op_sharpness(img, enhance);
    case RandAugmentOp::ShearX:
      return op_shear_x(img, sign * (level * 0.3));
    case RandAugmentOp::ShearY:
      return op_shear_y(img, sign * (level * 0.3));
    case RandAugmentOp::TranslateXRel:
      return op_translate_x(img, sign * (level * 0.45) * static_cast<double>(img.width));
    case RandAugmentOp::TranslateYRel:
      return op_translate_y(img, sign * (level * 0.45) * static_cast<double>(img.height));
  }
  VIT_CHECK(false, "apply_rand_augment_op: unknown op ", static_cast<int>(op));
}

/// RandAugment in place: n ops drawn uniformly with replacement from the 15
/// above, each then applied with probability 0.5 at magnitude m (0..10, timm's
/// scale). magnitude_std > 0 draws each op's magnitude from N(m, std) (timm
/// "mstd"); infinity draws it uniformly from [0, m]; either is clamped to
/// [0, 10]. Draw order per image: the n op choices, then per op the apply
/// draw, the magnitude draw if any, the sign draw if the op is signed.
inline void rand_augment(Image& img, int n, int m, Generator& g, double magnitude_std = 0.0) {
  detail::check_image(img, "rand_augment");
  VIT_CHECK(n >= 0, "rand_augment: n = ", n, " ops must be >= 0");
  VIT_CHECK(magnitude_std >= 0, "rand_augment: magnitude_std = ", magnitude_std, " must be >= 0");
  if (n == 0) return;
  // timm picks all n ops first (np.random.choice), then runs them in order.
  const uint64_t choices = g.reserve(static_cast<uint64_t>(n));
  for (int i = 0; i < n; ++i) {
    const int k = std::min(static_cast<int>(g.uniform(choices + i) * kRandAugmentNumOps),
                           kRandAugmentNumOps - 1);
    const auto op = static_cast<RandAugmentOp>(k);
    if (g.next_uniform() > 0.5) continue;  // AugmentOp(prob=0.5): skip when random() > prob
    double magnitude = m;
    if (magnitude_std == std::numeric_limits<double>::infinity())
      magnitude = g.next_uniform() * m;
    else if (magnitude_std > 0)
      magnitude = m + magnitude_std * detail::randaugment_normal(g);
    const bool negate = rand_augment_op_is_signed(op) && g.next_uniform() > 0.5;
    apply_rand_augment_op(img, op, magnitude, negate);
  }
}

}  // namespace vit::data
