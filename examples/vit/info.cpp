// `vit info`: what a model costs: parameters, FLOPs per image, activation
// memory of a training step at a batch size. From a preset or from weights.
#include <cstdio>

#include "commands.hpp"
#include "common.hpp"

namespace vitcli {

void add_info_options(CLI::App& cmd, InfoOptions& o) {
  auto* m = cmd.add_option("--model", o.model, "Preset name (vit-b16, cifar-tiny, timm names ...)");
  auto* w = cmd.add_option("--weights", o.weights, "Weights (.safetensors) carrying a config")->check(CLI::ExistingFile);
  m->excludes(w);
  cmd.add_option("--batch", o.batch, "Batch size for the activation memory")->check(positive_number())->capture_default_str();
  cmd.add_option("--classes", o.classes, "Class count (default: the preset's)")->check(positive_number());
}

int run_info(const InfoOptions& o) {
  VIT_CHECK(!o.model.empty() || !o.weights.empty(), "info: give --model PRESET or --weights FILE");
  vit::nn::VitConfig c;
  if (!o.weights.empty()) {
    const auto ck = vit::io::load_checkpoint<float>(o.weights);
    VIT_CHECK(ck.config.has_value(), o.weights, ": carries no model config; use --model");
    c = *ck.config;
  } else {
    c = vit::nn::vit_preset(o.model);
  }
  if (o.classes > 0) c.num_classes = o.classes;
  const auto s = vit::nn::model_stats(c, o.batch);
  std::printf("model        %s\n", c.name.c_str());
  std::printf("input        %lld x %lld x %lld, patch %lld -> %lld tokens (with cls)\n",
              static_cast<long long>(c.in_chans), static_cast<long long>(c.image_size),
              static_cast<long long>(c.image_size), static_cast<long long>(c.patch_size),
              static_cast<long long>(s.tokens));
  std::printf("layout       dim %lld, depth %lld, heads %lld, mlp %lld, classes %lld\n",
              static_cast<long long>(c.dim), static_cast<long long>(c.depth), static_cast<long long>(c.heads),
              static_cast<long long>(c.mlp_dim), static_cast<long long>(c.num_classes));
  if (c.representation_size > 0)
    std::printf("pre-logits   %lld (Linear + Tanh before the head)\n",
                static_cast<long long>(c.representation_size));
  if (c.pos_embed == vit::nn::PosEmbedKind::SinCos)
    std::printf("pos_embed    fixed 2-D sin-cos (not trained)\n");
  std::printf("parameters   %lld (%.2f M, %.1f MB in float32)\n", static_cast<long long>(s.parameters),
              s.parameters / 1e6, s.parameters * 4 / 1e6);
  std::printf("FLOPs/image  %.3f G forward, %.3f G training step (multiply-add = 2)\n",
              s.forward_flops / 1e9, s.train_flops / 1e9);
  std::printf("activations  %.1f MB saved for backward at batch %lld (float32)\n", s.activation_bytes / 1e6,
              static_cast<long long>(o.batch));
  std::printf("training     %.1f MB for weights, gradients and AdamW moments\n", s.parameters * 16 / 1e6);
  return 0;
}

}  // namespace vitcli
