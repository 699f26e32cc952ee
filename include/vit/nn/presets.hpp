// VitConfig and the named presets: the ViT paper's table at 224 (Ti/16 … H/14)
// and the small-image models this project trains on CIFAR and Fashion-MNIST.
// timm's model names are accepted as aliases of the 224 presets.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "vit/core/error.hpp"
#include "vit/ops/gelu.hpp"

namespace vit::nn {

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
}

namespace detail {
struct PresetRow {
  const char* name;
  const char* timm_name;
  int64_t image, chans, patch, dim, depth, heads, mlp, classes;
};
inline const std::vector<PresetRow>& preset_table() {
  static const std::vector<PresetRow> rows = {
      {"vit-ti16", "vit_tiny_patch16_224", 224, 3, 16, 192, 12, 3, 768, 1000},
      {"vit-s16", "vit_small_patch16_224", 224, 3, 16, 384, 12, 6, 1536, 1000},
      {"vit-b16", "vit_base_patch16_224", 224, 3, 16, 768, 12, 12, 3072, 1000},
      {"vit-b32", "vit_base_patch32_224", 224, 3, 32, 768, 12, 12, 3072, 1000},
      {"vit-l16", "vit_large_patch16_224", 224, 3, 16, 1024, 24, 16, 4096, 1000},
      {"vit-l32", "vit_large_patch32_224", 224, 3, 32, 1024, 24, 16, 4096, 1000},
      {"vit-h14", "vit_huge_patch14_224", 224, 3, 14, 1280, 32, 16, 5120, 1000},
      {"cifar-tiny", "", 32, 3, 4, 192, 6, 3, 384, 10},
      {"cifar-small", "", 32, 3, 4, 384, 7, 12, 384, 10},
      {"cifar-deep", "", 32, 3, 4, 192, 9, 12, 384, 10},
      {"fmnist-tiny", "", 28, 1, 4, 128, 6, 4, 256, 10},
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
    return c;
  }
  std::string known;
  for (const auto& n : vit_preset_names()) known += (known.empty() ? "" : ", ") + n;
  VIT_CHECK(false, "unknown model preset '", name, "' (known: ", known, ")");
  return {};
}

}  // namespace vit::nn
