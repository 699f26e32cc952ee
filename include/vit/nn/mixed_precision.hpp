// Mixed-precision training the way PyTorch AMP and llm.c do it, for a ViT:
// the float32 model holds the master weights (what the optimizer updates, what
// checkpoints and the EMA keep: timm-compatible files), and a bf16 twin with
// the same configuration runs forward and backward, so activations and GEMM
// operands are bf16 while every kernel accumulates in float32 (LayerNorm,
// softmax statistics, attention's online softmax). The logits come back as
// float32, so the loss and its gradient are computed in float32 (autocast
// runs cross-entropy in float32 too).
//
//   vit::nn::MixedPrecision mp(model);            // model: VisionTransformer<float>
//   mp.attach(optimizer);                         // step() refreshes the bf16 weights
//   TensorF logits = mp.forward(images);          // float32 logits, a leaf
//   vit::TensorF loss = vit::cross_entropy(logits, labels, 0.1);
//   loss.backward();                              // the float32 part
//   mp.backward();                                // the bf16 graph; master grads +=
//   optimizer.step();
//
// Gradients: each backward's bf16 parameter gradients (fp32-accumulated inside
// each GEMM and reduction, rounded once) are added into the master's float32
// gradients, so gradient accumulation over micro-steps, clipping, data-parallel
// averaging and the optimizer all work on float32, as in PyTorch AMP.
// Deliberately avoided: loss scaling (bf16 has float32's exponent range) and a
// second copy of the graph in float32.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "vit/core/bf16.hpp"
#include "vit/nn/vision_transformer.hpp"
#include "vit/ops/cast.hpp"
#include "vit/optim/optimizer.hpp"

namespace vit::nn {

class MixedPrecision {
 public:
  using Low = bf16;

  /// The bf16 twin of `master`, on its device, with its weights rounded from the
  /// master's, the same parameters trainable, and the master's dropout generator
  /// (so dropout draws are the ones a checkpoint of the master records).
  explicit MixedPrecision(VisionTransformer<float>& master) : master_(master) {
    compute_ = std::make_unique<VisionTransformer<Low>>(master.config);
    compute_->to(master.device());
    compute_->set_generator(&master.dropout_generator());
    auto low = compute_->named_parameters();
    auto high = master.named_parameters();
    VIT_CHECK(low.size() == high.size(), "MixedPrecision: the bf16 twin has ", low.size(),
              " parameters, the model ", high.size());
    for (size_t i = 0; i < high.size(); ++i) {
      VIT_CHECK(low[i].first == high[i].first && low[i].second.shape() == high[i].second.shape(),
                "MixedPrecision: parameter ", i, " is '", high[i].first, "' ", high[i].second.shape(),
                " in the model but '", low[i].first, "' ", low[i].second.shape(), " in the twin");
      pairs_.push_back({high[i].first, high[i].second, low[i].second});
    }
    refresh();
  }
  MixedPrecision(const MixedPrecision&) = delete;
  MixedPrecision& operator=(const MixedPrecision&) = delete;

  VisionTransformer<Low>& compute() { return *compute_; }
  VisionTransformer<float>& master() { return master_; }

  /// Rounds every master weight into the twin and copies which parameters are
  /// trainable: after loading a checkpoint, a broadcast, freezing layers.
  void refresh() {
    for (Pair& p : pairs_) {
      ops::convert(p.high.device(), p.high.data(), p.low.data(), p.high.numel());
      if (p.low.requires_grad() != p.high.requires_grad()) p.low.set_requires_grad(p.high.requires_grad());
    }
  }

  /// Makes each optimizer step write bf16(new master weight) into the twin in
  /// the update's own launch, so no separate refresh pass runs per step.
  void attach(optim::Optimizer<float>& opt) {
    std::map<const void*, Tensor<Low>> by_storage;
    for (Pair& p : pairs_) by_storage.emplace(p.high.data(), p.low);
    std::vector<Tensor<Low>> copies;
    for (const auto& g : opt.groups())
      for (const auto& [name, param] : g.params) {
        auto it = by_storage.find(param.data());
        VIT_CHECK(it != by_storage.end(), "MixedPrecision::attach: optimizer parameter '", name,
                  "' is not a parameter of this model");
        copies.push_back(it->second);
      }
    opt.set_low_precision_copies(std::move(copies));
  }

  /// Float32 images (B,ch,H,W) -> float32 logits (B,K) computed in bf16. With
  /// grad mode on, the logits are a leaf that requires grad: take the loss in
  /// float32, call its backward(), then backward() here.
  TensorF forward(const TensorF& images) {
    compute_->train(master_.is_training());
    if (!images_low_.defined() || images_low_.shape() != images.shape() ||
        images_low_.device() != images.device())
      images_low_ = Tensor<Low>::empty(images.shape(), images.device());
    ops::convert(images.device(), images.data(), images_low_.data(), images.numel());
    logits_low_ = compute_->forward(images_low_);
    TensorF logits = to_dtype<float>(logits_low_.detach());
    if (logits_low_.requires_grad()) logits.set_requires_grad(true);
    else logits_low_ = Tensor<Low>();
    logits_ = logits;
    return logits;
  }

  /// The float32 logits' gradient through the bf16 graph, then each bf16
  /// parameter gradient added into the master's float32 one (created as zeros
  /// where it does not exist yet); the twin's gradients are zeroed for the next.
  void backward() {
    VIT_CHECK(logits_low_.defined(), "MixedPrecision::backward: no forward with gradients since the last backward");
    const TensorF dlogits = logits_.grad();
    VIT_CHECK(dlogits.defined(), "MixedPrecision::backward: the logits got no gradient; call backward() on the loss first");
    Tensor<Low> dlow = to_dtype<Low>(dlogits);
    logits_low_.backward(dlow);
    logits_low_ = Tensor<Low>(), logits_ = TensorF();
    for (Pair& p : pairs_) {
      const Tensor<Low> g = p.low.grad();
      if (!g.defined() || !p.high.requires_grad()) continue;
      if (!p.high.grad().defined()) p.high.set_grad(TensorF::zeros(p.high.shape(), p.high.device()));
      ops::accumulate_widened(g.device(), g.data(), p.high.grad().data(), g.numel());
      g.fill_(Low(0));
    }
  }

 private:
  struct Pair {
    std::string name;
    TensorF high;
    Tensor<Low> low;
  };
  VisionTransformer<float>& master_;
  std::unique_ptr<VisionTransformer<Low>> compute_;
  std::vector<Pair> pairs_;
  Tensor<Low> images_low_, logits_low_;
  TensorF logits_;
};

}  // namespace vit::nn
