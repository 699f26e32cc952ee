// Mixup and CutMix as timm's Mixup(mode='batch', correct_lam=True) applies
// them to a float batch (B,C,H,W), with soft targets (B,K) that carry label
// smoothing (timm's mixup_target). One lam per batch; each image i is paired
// with image B-1-i (the batch reversed, as timm's x.flip(0)). Beta(a, a) comes
// from two Gamma variates (Marsaglia-Tsang) drawn from the Generator passed in.
// Avoids: timm's 'pair'/'elem' modes and cutmix_minmax (not used by our
// trainer), and any randomness outside the Generator.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numbers>

#include "vit/core/error.hpp"
#include "vit/core/rng.hpp"

namespace vit::data {

/// timm Mixup arguments (train.py --mixup, --cutmix, --mixup-prob,
/// --mixup-switch-prob, --smoothing). num_classes (K) must be set.
struct MixupConfig {
  double mixup_alpha = 0.8;
  double cutmix_alpha = 1.0;
  double prob = 1.0;         // chance that a batch is mixed at all
  double switch_prob = 0.5;  // chance of CutMix rather than Mixup when both are on
  double label_smoothing = 0.1;
  int64_t num_classes = 0;
};

/// Whether the trainer should run mixup_batch and a soft-target loss: as timm's
/// train.py, when either alpha is positive.
inline bool mixup_enabled(const MixupConfig& cfg) {
  return cfg.mixup_alpha > 0 || cfg.cutmix_alpha > 0;
}

/// What one batch got: lam is the weight of each image's own label (after the
/// CutMix area correction); for CutMix, rows [y0, y1) x columns [x0, x1) of
/// image i were replaced by those of image B-1-i.
struct MixupParams {
  double lam = 1.0;
  bool cutmix = false;
  int64_t y0 = 0, y1 = 0, x0 = 0, x1 = 0;
};

namespace detail {
// Standard normal by Box-Muller from two next_uniform draws, so rejection
// loops take counters from g in order and never reuse one.
inline double mixup_normal(Generator& g) {
  const double u1 = 1.0 - g.next_uniform();  // (0, 1]
  const double u2 = g.next_uniform();
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
}

// log of a Gamma(shape, 1) variate. In log space so that Beta with small alpha,
// where both Gamma variates can underflow to 0, still gives a number in [0, 1].
inline double log_gamma_variate(double shape, Generator& g) {
  if (shape < 1.0) {
    // Gamma(a) = Gamma(a + 1) * U^(1/a)  (Marsaglia & Tsang, section 6).
    const double u = 1.0 - g.next_uniform();
    return log_gamma_variate(shape + 1.0, g) + std::log(u) / shape;
  }
  const double d = shape - 1.0 / 3.0, c = 1.0 / std::sqrt(9.0 * d);
  for (;;) {
    double x, v;
    do {
      x = mixup_normal(g);
      v = 1.0 + c * x;
    } while (v <= 0.0);
    v = v * v * v;
    const double u = 1.0 - g.next_uniform();
    const double x2 = x * x;
    if (u < 1.0 - 0.0331 * x2 * x2) return std::log(d * v);  // cheap squeeze
    if (std::log(u) < 0.5 * x2 + d * (1.0 - v + std::log(v))) return std::log(d * v);
  }
}

inline void check_labels(const int32_t* labels, int64_t B, int64_t K, const char* who) {
  VIT_CHECK(labels != nullptr, who, ": labels are null");
  for (int64_t i = 0; i < B; ++i)
    VIT_CHECK(labels[i] >= 0 && labels[i] < K, who, ": label ", labels[i], " of sample ", i,
              " outside [0, ", K, ")");
}
}  // namespace detail

/// A Gamma(shape, 1) variate (Marsaglia-Tsang), shape > 0.
inline double sample_gamma(double shape, Generator& g) {
  VIT_CHECK(shape > 0 && std::isfinite(shape), "sample_gamma: shape ", shape, " must be > 0");
  return std::exp(detail::log_gamma_variate(shape, g));
}

/// A Beta(a, b) variate as X / (X + Y), X ~ Gamma(a), Y ~ Gamma(b).
inline double sample_beta(double a, double b, Generator& g) {
  VIT_CHECK(a > 0 && b > 0 && std::isfinite(a) && std::isfinite(b), "sample_beta: alpha ", a,
            ", beta ", b, " must be > 0");
  const double lx = detail::log_gamma_variate(a, g);
  const double ly = detail::log_gamma_variate(b, g);
  return 1.0 / (1.0 + std::exp(ly - lx));
}

/// timm rand_bbox + correct_lam for an HxW image: a box of sides
/// int(H sqrt(1-lam)) x int(W sqrt(1-lam)) centred at a uniform pixel, clipped
/// to the image; lam becomes 1 - box area / image area.
inline MixupParams cutmix_box(double lam, int64_t H, int64_t W, Generator& g) {
  const double ratio = std::sqrt(1.0 - lam);
  const auto cut_h = static_cast<int64_t>(static_cast<double>(H) * ratio);
  const auto cut_w = static_cast<int64_t>(static_cast<double>(W) * ratio);
  // np.random.randint(0, n): [0, n). Rows first, as timm draws cy then cx.
  const auto pick = [&g](int64_t n) {
    return std::min(static_cast<int64_t>(g.next_uniform() * static_cast<double>(n)), n - 1);
  };
  const int64_t cy = pick(H), cx = pick(W);
  MixupParams p;
  p.cutmix = true;
  p.y0 = std::clamp<int64_t>(cy - cut_h / 2, 0, H);
  p.y1 = std::clamp<int64_t>(cy + cut_h / 2, 0, H);
  p.x0 = std::clamp<int64_t>(cx - cut_w / 2, 0, W);
  p.x1 = std::clamp<int64_t>(cx + cut_w / 2, 0, W);
  p.lam = 1.0 - static_cast<double>((p.y1 - p.y0) * (p.x1 - p.x0)) / static_cast<double>(H * W);
  return p;
}

/// timm Mixup._params_per_batch followed by the CutMix box: draws whether to
/// mix (prob), then CutMix vs Mixup (switch_prob, only when both alphas are
/// positive), then lam ~ Beta(alpha, alpha), then the box. lam = 1 leaves the
/// batch untouched.
inline MixupParams sample_mixup_params(const MixupConfig& cfg, int64_t H, int64_t W, Generator& g) {
  VIT_CHECK(H >= 1 && W >= 1, "sample_mixup_params: image ", H, "x", W);
  VIT_CHECK(cfg.mixup_alpha >= 0 && cfg.cutmix_alpha >= 0, "mixup: alphas (", cfg.mixup_alpha, ", ",
            cfg.cutmix_alpha, ") must be >= 0");
  MixupParams p;
  if (!mixup_enabled(cfg) || !(g.next_uniform() < cfg.prob)) return p;
  bool cutmix = false;
  if (cfg.mixup_alpha > 0 && cfg.cutmix_alpha > 0)
    cutmix = g.next_uniform() < cfg.switch_prob;
  else
    cutmix = cfg.cutmix_alpha > 0;
  const double alpha = cutmix ? cfg.cutmix_alpha : cfg.mixup_alpha;
  const double lam = sample_beta(alpha, alpha, g);
  if (lam == 1.0) return p;  // timm returns before drawing a box
  if (cutmix) return cutmix_box(lam, H, W, g);
  p.lam = lam;
  return p;
}

/// Mixes images (B,C,H,W) in place as timm's _mix_batch: CutMix copies the box
/// of image B-1-i into image i; Mixup sets x_i = lam x_i + (1-lam) x_{B-1-i}
/// (in float, as PyTorch's x.mul_(lam).add_(x.flip(0).mul_(1-lam))). Both
/// read the unmixed batch. An odd batch's middle image pairs with itself.
inline void apply_mixup(float* images, int64_t B, int64_t C, int64_t H, int64_t W,
                        const MixupParams& p) {
  VIT_CHECK(images != nullptr && B >= 1 && C >= 1 && H >= 1 && W >= 1, "apply_mixup: batch (", B,
            ",", C, ",", H, ",", W, ")", images ? "" : " is null");
  const int64_t n = C * H * W;
  if (p.cutmix) {
    VIT_CHECK(0 <= p.y0 && p.y0 <= p.y1 && p.y1 <= H && 0 <= p.x0 && p.x0 <= p.x1 && p.x1 <= W,
              "apply_mixup: box rows [", p.y0, ",", p.y1, ") cols [", p.x0, ",", p.x1, ") outside ",
              H, "x", W);
    // Pairs (i, B-1-i) exchange their boxes: each gets the other's original.
    for (int64_t i = 0; i < B / 2; ++i) {
      float *a = images + i * n, *b = images + (B - 1 - i) * n;
      for (int64_t c = 0; c < C; ++c)
        for (int64_t y = p.y0; y < p.y1; ++y) {
          const int64_t o = (c * H + y) * W;
          std::swap_ranges(a + o + p.x0, a + o + p.x1, b + o + p.x0);
        }
    }
    return;
  }
  if (p.lam == 1.0) return;
  const float keep = static_cast<float>(p.lam), take = static_cast<float>(1.0 - p.lam);
  for (int64_t i = 0; i < (B + 1) / 2; ++i) {
    float *a = images + i * n, *b = images + (B - 1 - i) * n;
    for (int64_t k = 0; k < n; ++k) {
      const float va = a[k], vb = b[k];
      a[k] = va * keep + vb * take;
      b[k] = vb * keep + va * take;  // same value as a[k] when a == b (odd middle)
    }
  }
}

/// timm mixup_target: out (B,K) = lam * y_i + (1-lam) * y_{B-1-i}, y one-hot
/// with on = 1 - smoothing + smoothing/K and off = smoothing/K (float, as timm).
inline void mixup_targets(const int32_t* labels, int64_t B, int64_t K, double lam, double smoothing,
                          float* out) {
  VIT_CHECK(labels != nullptr && out != nullptr && B >= 1 && K >= 1, "mixup_targets: B ", B, ", K ",
            K);
  VIT_CHECK(smoothing >= 0 && smoothing <= 1, "mixup_targets: label smoothing ", smoothing,
            " outside [0, 1]");
  const double off_d = smoothing / static_cast<double>(K);
  const float off = static_cast<float>(off_d), on = static_cast<float>(1.0 - smoothing + off_d);
  detail::check_labels(labels, B, K, "mixup_targets");
  const float keep = static_cast<float>(lam), take = static_cast<float>(1.0 - lam);
  for (int64_t i = 0; i < B; ++i) {
    const int32_t yi = labels[i], yj = labels[B - 1 - i];
    float* row = out + i * K;
    for (int64_t k = 0; k < K; ++k)
      row[k] = (k == yi ? on : off) * keep + (k == yj ? on : off) * take;
  }
}

/// timm Mixup.__call__ in batch mode: mixes images (B,C,H,W) in place and
/// writes soft targets (B,K), K = cfg.num_classes. Returns what was drawn.
inline MixupParams mixup_batch(float* images, int64_t B, int64_t C, int64_t H, int64_t W,
                               const int32_t* labels, const MixupConfig& cfg, Generator& g,
                               float* soft_targets) {
  VIT_CHECK(cfg.num_classes >= 1, "mixup_batch: num_classes ", cfg.num_classes, " must be set");
  VIT_CHECK(cfg.prob >= 0 && cfg.prob <= 1 && cfg.switch_prob >= 0 && cfg.switch_prob <= 1,
            "mixup_batch: prob ", cfg.prob, " and switch_prob ", cfg.switch_prob,
            " must be in [0, 1]");
  detail::check_labels(labels, B, cfg.num_classes, "mixup_batch");  // before touching images
  const MixupParams p = sample_mixup_params(cfg, H, W, g);
  apply_mixup(images, B, C, H, W, p);
  mixup_targets(labels, B, cfg.num_classes, p.lam, cfg.label_smoothing, soft_targets);
  return p;
}

}  // namespace vit::data
