// Fine-tuning a pretrained ViT the way timm does it: load weights by name into a
// model built for the new task, keep the new (freshly initialised) head when the
// class count differs, resample the position embedding when the patch grid
// differs (a fixed sin-cos one is regenerated for the new grid instead), and
// optionally freeze everything but the head and pre-logits.
// Deliberately strict otherwise: a tensor with the wrong shape or a missing one
// is an error naming it, never a silent partial load.
#pragma once

#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "vit/nn/vision_transformer.hpp"

namespace vit::nn {

namespace detail {
// PIL's bicubic kernel (a = -0.5), which torch uses for antialiased bicubic.
inline double cubic_aa(double x) {
  constexpr double a = -0.5;
  x = std::abs(x);
  if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
  return 0;
}

/// Row i of the (out x in) 1-D resampling matrix of torch's
/// interpolate(mode="bicubic", antialias=True, align_corners=False): taps are
/// cut at the borders and renormalised (not edge-replicated), and the kernel
/// widens by the scale when downsampling.
inline std::vector<double> bicubic_aa_matrix(int64_t in, int64_t out) {
  std::vector<double> m(static_cast<size_t>(out * in), 0.0);
  const double scale = static_cast<double>(in) / out;
  const double support = scale >= 1 ? 2.0 * scale : 2.0;
  const double inv = scale >= 1 ? 1.0 / scale : 1.0;
  for (int64_t i = 0; i < out; ++i) {
    const double center = scale * (i + 0.5);
    const int64_t lo = std::max<int64_t>(static_cast<int64_t>(center - support + 0.5), 0);
    const int64_t hi = std::min<int64_t>(static_cast<int64_t>(center + support + 0.5), in);
    double total = 0;
    for (int64_t j = lo; j < hi; ++j) total += cubic_aa((j - center + 0.5) * inv);
    for (int64_t j = lo; j < hi; ++j)
      m[i * in + j] = total != 0 ? cubic_aa((j - center + 0.5) * inv) / total : 0;
  }
  return m;
}
}  // namespace detail

/// timm's resample_abs_pos_embed: pos (1, prefix + g0·g1, C) on an old grid
/// (g0,g1) -> (1, prefix + n0·n1, C), prefix (cls) tokens kept, the grid
/// resampled bicubically with antialiasing (as torch and timm do by default).
template <class T>
Tensor<T> resample_pos_embed(const Tensor<T>& pos, int64_t old_h, int64_t old_w, int64_t new_h,
                             int64_t new_w, int64_t prefix = 1) {
  VIT_CHECK(pos.dim() == 3 && pos.shape()[0] == 1 && pos.shape()[1] == prefix + old_h * old_w,
            "resample_pos_embed: pos_embed ", pos.shape(), " does not hold ", prefix,
            " prefix tokens and a ", old_h, "x", old_w, " grid");
  VIT_CHECK(new_h > 0 && new_w > 0, "resample_pos_embed: new grid must be positive");
  const int64_t C = pos.shape()[2];
  const auto mh = detail::bicubic_aa_matrix(old_h, new_h), mw = detail::bicubic_aa_matrix(old_w, new_w);
  Tensor<T> out = Tensor<T>::zeros({1, prefix + new_h * new_w, C});
  const T* src = pos.data();
  T* dst = out.data();
  std::copy_n(src, prefix * C, dst);
  // Separable: rows first into a (new_h, old_w, C) scratch, then columns; double accumulation.
  std::vector<double> tmp(static_cast<size_t>(new_h * old_w * C), 0.0);
  for (int64_t i = 0; i < new_h; ++i)
    for (int64_t y = 0; y < old_h; ++y) {
      const double w = mh[i * old_h + y];
      if (w == 0) continue;
      for (int64_t x = 0; x < old_w; ++x)
        for (int64_t c = 0; c < C; ++c)
          tmp[(i * old_w + x) * C + c] += w * src[(prefix + y * old_w + x) * C + c];
    }
  for (int64_t i = 0; i < new_h; ++i)
    for (int64_t j = 0; j < new_w; ++j)
      for (int64_t c = 0; c < C; ++c) {
        double acc = 0;
        for (int64_t x = 0; x < old_w; ++x) acc += mw[j * old_w + x] * tmp[(i * old_w + x) * C + c];
        dst[(prefix + i * new_w + j) * C + c] = static_cast<T>(acc);
      }
  return out;
}

/// What load_pretrained did, for the user to read.
struct PretrainedReport {
  int64_t loaded = 0;                 // tensors copied as they were
  bool head_reinitialised = false;    // class count differed: the model's own head kept
  bool pos_embed_resampled = false;   // patch grid differed: bicubic resample (sin-cos: regenerated)
  std::vector<std::string> dropped;   // file tensors the model has no use for (pre_logits)
  std::vector<std::string> notes;     // one line per adaptation
};

/// Loads pretrained tensors by timm name into `model` (built for the new task).
/// `head.*` of another shape keeps the model's fresh head; `pos_embed` of another
/// grid is resampled (a sin-cos model keeps its own fixed table for its grid:
/// a formula, not weights); `pre_logits.*` absent from the model is dropped (timm
/// drops the representation layer when fine-tuning), and a model's pre-logits
/// layer the file lacks stays initialised (the tutorial's has_logits), the
/// head then re-initialised if its width changed. Any other mismatch, a
/// missing tensor or an unknown one is a vit::Error naming it.
template <class T>
PretrainedReport load_pretrained(VisionTransformer<T>& model,
                                 const std::map<std::string, Tensor<T>>& weights) {
  PretrainedReport rep;
  const auto params = model.named_parameters();
  std::map<std::string, Tensor<T>> own(params.begin(), params.end());
  auto starts_with = [](const std::string& s, const char* p) { return s.rfind(p, 0) == 0; };
  for (const auto& [name, t] : weights) {
    if (own.count(name)) continue;
    VIT_CHECK(starts_with(name, "pre_logits."), "pretrained weights: tensor '", name, "' of shape ",
              t.shape(), " has no place in model '", model.config.name, "'");
    rep.dropped.push_back(name);
  }
  if (!rep.dropped.empty()) rep.notes.push_back("pre-logits layer dropped");
  // With the pre-logits layer added or dropped, the head reads other features:
  // it stays the model's fresh one whenever its shape differs.
  const bool file_pre_logits = weights.count("pre_logits.fc.weight") > 0;
  const bool pre_logits_changed = file_pre_logits != (model.pre_logits != nullptr);
  if (model.pre_logits && !file_pre_logits)
    rep.notes.push_back("pre-logits layer initialised (the file has none)");
  for (auto& [name, p] : own) {
    auto it = weights.find(name);
    if (it == weights.end() && starts_with(name, "head.") && weights.count("head.weight") == 0) {
      // A headless backbone (timm num_classes=0): the new head stays initialised.
      rep.head_reinitialised = true;
      continue;
    }
    if (it == weights.end() && starts_with(name, "pre_logits.") && !file_pre_logits)
      continue;  // a pre-logits layer the file does not have: as initialised

    VIT_CHECK(it != weights.end(), "pretrained weights: missing tensor '", name, "' of shape ",
              p.shape());
    const Tensor<T>& src = it->second;
    if (name == "pos_embed" && model.config.pos_embed == PosEmbedKind::SinCos) {
      // A formula, not weights: the model keeps its own table for its grid
      // (regenerated rather than interpolated; a learned one is not taken).
      const int64_t grid = model.config.image_size / model.config.patch_size;
      bool same = src.shape() == p.shape();
      const Tensor<T> a = src.to(Device::CPU), b = p.to(Device::CPU);
      for (int64_t i = 0; same && i < a.numel(); ++i)
        same = std::abs(static_cast<double>(a.data()[i]) - static_cast<double>(b.data()[i])) <= 1e-5;
      if (same) {
        ++rep.loaded;
        continue;
      }
      rep.pos_embed_resampled = src.shape() != p.shape();
      rep.notes.push_back("pos_embed " + std::string(rep.pos_embed_resampled ? "regenerated" : "kept") +
                          " as the fixed sin-cos table of the " + std::to_string(grid) + "x" +
                          std::to_string(grid) + " grid (the file's " +
                          (rep.pos_embed_resampled ? "is for another grid)" : "is not that table)"));
      continue;
    }
    if (src.shape() == p.shape()) {
      p.copy_from(src);
      ++rep.loaded;
    } else if (starts_with(name, "head.")) {
      VIT_CHECK(src.dim() == p.dim() &&
                    (p.dim() == 1 || src.shape().back() == p.shape().back() || pre_logits_changed),
                "pretrained weights: '", name, "' has shape ", src.shape(), ", model needs ",
                p.shape(), " (only the class count may differ)");
      rep.head_reinitialised = true;
    } else if (name == "pos_embed") {
      const int64_t old_tokens = src.dim() == 3 ? src.shape()[1] - 1 : -1;
      const int64_t old_grid = old_tokens > 0 ? std::llround(std::sqrt(double(old_tokens))) : -1;
      VIT_CHECK(src.dim() == 3 && src.shape()[2] == p.shape()[2] && old_grid * old_grid == old_tokens,
                "pretrained weights: 'pos_embed' has shape ", src.shape(), ", model needs ",
                p.shape(), " (cannot resample: not a square grid of the same width)");
      const int64_t grid = model.config.image_size / model.config.patch_size;
      p.copy_from(resample_pos_embed(src, old_grid, old_grid, grid, grid));
      rep.pos_embed_resampled = true;
      rep.notes.push_back("pos_embed resampled from a " + std::to_string(old_grid) + "x" +
                          std::to_string(old_grid) + " to a " + std::to_string(grid) + "x" +
                          std::to_string(grid) + " grid (bicubic)");
    } else {
      VIT_CHECK(false, "pretrained weights: '", name, "' has shape ", src.shape(), ", model '",
                model.config.name, "' needs ", p.shape());
    }
  }
  if (rep.head_reinitialised)
    rep.notes.push_back("head re-initialised for " + std::to_string(model.config.num_classes) +
                        " classes");
  return rep;
}

/// Trains only the classifier: the head and, when the model has one, the
/// pre-logits layer (as the fine-tuning tutorial's freeze_layers); every other
/// parameter stops requiring grad (so backward does not even reach the backbone).
template <class T>
void freeze_backbone(VisionTransformer<T>& model) {
  for (auto& [name, p] : model.named_parameters())
    if (name.rfind("head.", 0) != 0 && name.rfind("pre_logits.", 0) != 0)
      Tensor<T>(p).set_requires_grad(false);
}

/// The parameters that still require grad, by name (what an optimizer should get).
template <class T>
std::vector<std::pair<std::string, Tensor<T>>> trainable_parameters(const Module<T>& m) {
  std::vector<std::pair<std::string, Tensor<T>>> out;
  for (auto& [name, p] : m.named_parameters())
    if (p.requires_grad()) out.emplace_back(name, p);
  return out;
}

}  // namespace vit::nn
