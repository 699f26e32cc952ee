// VisionTransformer: timm's vision_transformer with the seed tutorials' options.
//   patch_embed -> [cls; patches] + pos_embed -> dropout -> blocks -> norm
//   (drop_rate after pos_embed, attention proj and MLP layers; attn_drop_rate
//   on the attention probabilities; drop_path_rate stochastic depth)
//   -> token 0 -> (optional pre_logits: Linear + Tanh) -> head
// Parameter names, shapes and init are timm's, so state dicts interchange.
// pos_embed is learned (timm) or MAE's fixed 2-D sin-cos table: then it is
// still the state dict's `pos_embed`, but never requires grad, so no optimizer
// (they take trainable_parameters) moves it.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "vit/nn/layers.hpp"
#include "vit/nn/pos_embed.hpp"
#include "vit/nn/presets.hpp"
#include "vit/ops/shape_ops.hpp"

namespace vit::nn {

template <class T>
class VisionTransformer : public Module<T> {
 public:
  explicit VisionTransformer(const VitConfig& cfg)
      : config(validated(cfg)),
        init_gen_(cfg.seed),
        dropout_gen_(cfg.seed ^ 0x5eedd509ull),
        patch_embed(cfg.image_size, cfg.patch_size, cfg.in_chans, cfg.dim, init_gen_),
        norm(cfg.dim, cfg.layer_norm_eps) {
    const int64_t C = cfg.dim;
    cls_token = this->register_parameter("cls_token", trunc_normal_init<T>({1, 1, C}, init_gen_));
    // Drawn for sin-cos too, so every other tensor initialises as the learned model's.
    pos_embed = this->register_parameter(
        "pos_embed", trunc_normal_init<T>({1, patch_embed.num_patches() + 1, C}, init_gen_));
    if (cfg.pos_embed == PosEmbedKind::SinCos) {
      const int64_t grid = cfg.image_size / cfg.patch_size;
      pos_embed.copy_from(sincos_pos_embed<T>(grid, grid, C));
      pos_embed.set_requires_grad(false);  // MAE: requires_grad=False
    }
    this->register_module("patch_embed", patch_embed);
    for (int64_t i = 0; i < cfg.depth; ++i) {
      // Stochastic depth grows linearly with depth, as timm's dpr.
      const double dpr = cfg.depth > 1 ? cfg.drop_path_rate * i / (cfg.depth - 1) : cfg.drop_path_rate;
      blocks.push_back(std::make_unique<Block<T>>(C, cfg.heads, cfg.mlp_dim, init_gen_, cfg.drop_rate,
                                                  dpr, cfg.layer_norm_eps, cfg.gelu, cfg.qkv_bias,
                                                  cfg.attn_drop_rate));
      this->register_module("blocks." + std::to_string(i), *blocks.back());
    }
    this->register_module("norm", norm);
    int64_t head_in = C;
    if (cfg.representation_size > 0) {
      pre_logits = std::make_unique<Linear<T>>(C, cfg.representation_size, init_gen_);
      this->register_module("pre_logits.fc", *pre_logits);
      head_in = cfg.representation_size;
    }
    head = std::make_unique<Linear<T>>(head_in, cfg.num_classes, init_gen_);
    this->register_module("head", *head);
    this->set_generator(&dropout_gen_);
  }

  /// Tokens after the final norm: (B,ch,H,W) -> (B, N+1, C).
  Tensor<T> forward_features(const Tensor<T>& x) const {
    Tensor<T> t = patch_embed.forward(x);
    const int64_t B = t.shape()[0];
    t = concat<T>({expand(cls_token, {B, 1, config.dim}), t}, 1);
    t = dropout(add(t, pos_embed), config.drop_rate, this->is_training(), this->generator());
    for (const auto& blk : blocks) t = blk->forward(t);
    return norm.forward(t);
  }
  /// Class logits: (B,ch,H,W) -> (B,K).
  Tensor<T> forward(const Tensor<T>& x) const {
    Tensor<T> cls = select(forward_features(x), 1, 0);
    if (pre_logits) cls = tanh(pre_logits->forward(cls));
    return head->forward(cls);
  }
  /// The dropout/drop-path generator, so a checkpoint can save and restore it.
  Generator& dropout_generator() { return dropout_gen_; }

  const VitConfig config;

 private:
  static const VitConfig& validated(const VitConfig& c) {
    validate(c);
    return c;
  }
  Generator init_gen_, dropout_gen_;

 public:
  PatchEmbedding<T> patch_embed;
  Tensor<T> cls_token, pos_embed;
  std::vector<std::unique_ptr<Block<T>>> blocks;
  LayerNorm<T> norm;
  std::unique_ptr<Linear<T>> pre_logits, head;
};

/// A model from a preset name (see presets.hpp); num_classes <= 0 keeps the preset's.
template <class T = float>
std::unique_ptr<VisionTransformer<T>> create_vit(const std::string& preset, int64_t num_classes = 0,
                                                 uint64_t seed = 0) {
  VitConfig c = vit_preset(preset);
  if (num_classes > 0) c.num_classes = num_classes;
  c.seed = seed;
  return std::make_unique<VisionTransformer<T>>(c);
}

}  // namespace vit::nn
