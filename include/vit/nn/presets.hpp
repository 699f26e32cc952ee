// VitConfig and the named presets: the ViT paper's table at 224 (Ti/16 … H/14),
// its ImageNet-21k models (21843 classes, pre-logits Linear+Tanh, as timm's
// original *_in21k), and the small-image models this project trains on CIFAR
// and Fashion-MNIST. timm's model names are accepted as aliases of the 224 presets.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "vit/core/error.hpp"
#include "vit/ops/gelu.hpp"

namespace vit::nn {

/// How the position embedding is made: a trained parameter (timm's default) or
/// MAE's fixed 2-D sin-cos table, which stays in the state dict as `pos_embed`
/// (so checkpoints interchange) but never requires grad.
enum class PosEmbedKind { Learned, SinCos };

/// "learned" or "sincos" (the --pos-embed and config-JSON spelling).
inline PosEmbedKind pos_embed_kind(const std::string& name) {
  VIT_CHECK(name == "learned" || name == "sincos", "pos_embed must be \"learned\" or \"sincos\", got \"",
            name, "\"");
  return name == "sincos" ? PosEmbedKind::SinCos : PosEmbedKind::Learned;
}
inline const char* pos_embed_name(PosEmbedKind k) {
  return k == PosEmbedKind::SinCos ? "sincos" : "learned";
}

struct VitConfig {
  std::string name = "custom";
  int64_t image_size = 224, in_chans = 3, patch_size = 16;
  int64_t dim = 768, depth = 12, heads = 12, mlp_dim = 3072, num_classes = 1000;
  bool qkv_bias = true;
  double drop_rate = 0.0;       // after pos_embed, attention proj and MLP layers
  double drop_path_rate = 0.0;  // stochastic depth at the last block (linear from 0)
  double attn_drop_rate = 0.0;  // on the attention probabilities (timm's attn_drop_rate)
  int64_t representation_size = 0;  // > 0: pre-logits Linear+Tanh of this width
  double layer_norm_eps = 1e-6;
  GeluApprox gelu = GeluApprox::None;
  PosEmbedKind pos_embed = PosEmbedKind::Learned;
  uint64_t seed = 0;  // parameter init and dropout masks
};

/// Throws a vit::Error naming the first inconsistent field.
inline void validate(const VitConfig& c) {
  VIT_CHECK(c.image_size > 0 && c.patch_size > 0 && c.image_size % c.patch_size == 0,
            "VitConfig '", c.name, "': image_size ", c.image_size, " is not divisible by patch_size ",
            c.patch_size);
  VIT_CHECK(c.in_chans > 0 && c.dim > 0 && c.depth >= 0 && c.mlp_dim > 0 && c.num_classes > 0,
            "VitConfig '", c.name, "': in_chans, dim, mlp_dim and num_classes must be positive");
  VIT_CHECK(c.heads > 0 && c.dim % c.heads == 0, "VitConfig '", c.name, "': dim ", c.dim,
            " is not divisible by heads ", c.heads);
  VIT_CHECK(c.drop_rate >= 0 && c.drop_rate < 1 && c.drop_path_rate >= 0 && c.drop_path_rate < 1,
            "VitConfig '", c.name, "': drop_rate and drop_path_rate must be in [0, 1)");
  VIT_CHECK(c.attn_drop_rate >= 0 && c.attn_drop_rate < 1, "VitConfig '", c.name,
            "': attn_drop_rate must be in [0, 1), got ", c.attn_drop_rate);
  VIT_CHECK(c.layer_norm_eps > 0, "VitConfig '", c.name, "': layer_norm_eps must be positive");
  VIT_CHECK(c.representation_size >= 0, "VitConfig '", c.name,
            "': representation_size must be 0 (none) or positive, got ", c.representation_size);
  // sin-cos: a quarter of the channels each for sin/cos of the column and the row.
  VIT_CHECK(c.pos_embed != PosEmbedKind::SinCos || c.dim % 4 == 0, "VitConfig '", c.name,
            "': the sin-cos position embedding needs dim divisible by 4, got ", c.dim);
}

namespace detail {
struct PresetRow {
  const char* name;
  const char* timm_name;
  int64_t image, chans, patch, dim, depth, heads, mlp, classes;
  int64_t representation;  // pre-logits width, 0 = none
};
inline const std::vector<PresetRow>& preset_table() {
  static const std::vector<PresetRow> rows = {
      {"vit-ti16", "vit_tiny_patch16_224", 224, 3, 16, 192, 12, 3, 768, 1000, 0},
      {"vit-s16", "vit_small_patch16_224", 224, 3, 16, 384, 12, 6, 1536, 1000, 0},
      {"vit-b16", "vit_base_patch16_224", 224, 3, 16, 768, 12, 12, 3072, 1000, 0},
      {"vit-b32", "vit_base_patch32_224", 224, 3, 32, 768, 12, 12, 3072, 1000, 0},
      {"vit-l16", "vit_large_patch16_224", 224, 3, 16, 1024, 24, 16, 4096, 1000, 0},
      {"vit-l32", "vit_large_patch32_224", 224, 3, 32, 1024, 24, 16, 4096, 1000, 0},
      {"vit-h14", "vit_huge_patch14_224", 224, 3, 14, 1280, 32, 16, 5120, 1000, 0},
      // ImageNet-21k (timm 0.4's *_in21k, the ViT paper's pre-training): pre-logits kept.
      {"vit-b16-in21k", "vit_base_patch16_224_in21k", 224, 3, 16, 768, 12, 12, 3072, 21843, 768},
      {"vit-b32-in21k", "vit_base_patch32_224_in21k", 224, 3, 32, 768, 12, 12, 3072, 21843, 768},
      {"vit-l16-in21k", "vit_large_patch16_224_in21k", 224, 3, 16, 1024, 24, 16, 4096, 21843, 1024},
      {"vit-l32-in21k", "vit_large_patch32_224_in21k", 224, 3, 32, 1024, 24, 16, 4096, 21843, 1024},
      {"vit-h14-in21k", "vit_huge_patch14_224_in21k", 224, 3, 14, 1280, 32, 16, 5120, 21843, 1280},
      {"cifar-tiny", "", 32, 3, 4, 192, 6, 3, 384, 10, 0},
      {"cifar-small", "", 32, 3, 4, 384, 7, 12, 384, 10, 0},
      {"cifar-deep", "", 32, 3, 4, 192, 9, 12, 384, 10, 0},
      {"fmnist-tiny", "", 28, 1, 4, 128, 6, 4, 256, 10, 0},
  };
  return rows;
}
}  // namespace detail

/// Names accepted by vit_preset (project names; timm names are aliases).
inline std::vector<std::string> vit_preset_names() {
  std::vector<std::string> out;
  for (const auto& r : detail::preset_table()) out.emplace_back(r.name);
  return out;
}

/// The configuration of a named preset; unknown names throw listing the known ones.
inline VitConfig vit_preset(const std::string& name) {
  for (const auto& r : detail::preset_table()) {
    const bool timm_alias = r.timm_name[0] != '\0' && name == r.timm_name;
    if (name != r.name && !timm_alias) continue;
    VitConfig c;
    c.name = r.name;
    c.image_size = r.image, c.in_chans = r.chans, c.patch_size = r.patch;
    c.dim = r.dim, c.depth = r.depth, c.heads = r.heads, c.mlp_dim = r.mlp, c.num_classes = r.classes;
    c.representation_size = r.representation;
    return c;
  }
  std::string known;
  for (const auto& n : vit_preset_names()) known += (known.empty() ? "" : ", ") + n;
  VIT_CHECK(false, "unknown model preset '", name, "' (known: ", known, ")");
  return {};
}

}  // namespace vit::nn
