// ModelEma: an exponential moving average of a model's weights, timm's
// ModelEmaV3 (timm/utils/model_ema.py) as train.py uses it with --model-ema:
// after optimizer step `step` (1 for the first),
//   average ← average + (1 − d)·(model − average)   (torch's lerp_, weight 1 − d;
//   computed as a − w·(a − m), torch's own formula for w < 0.5 and within an
//   ulp of it above, where torch uses m − (m − a)·(1 − w))
// over every parameter of the model, frozen ones included (a ViT has no buffers),
// with timm's decay schedule get_decay(step):
//   s = max(0, step − update_after_step − 1);  d = 0 when s = 0 (the first update copies);
//   warmup on:  d = clamp(1 − (1 + s/γ)^(−power), min_decay, decay)   (--model-ema-warmup)
//   warmup off: d = decay.
// The average lives in a module of the model's architecture (timm's
// deepcopy), which evaluates and saves as any model does, under timm's names.
//
// The update is an SGD step without momentum on ½‖average − model‖² with
// learning rate 1 − d (gradient: average − model): so it runs through the
// optimizer's multi-tensor update on either device, all parameters in one
// launch on the GPU, nothing allocated on the device and nothing read back,
// and it honours the same skip flag: a step the optimizer skipped for a
// non-finite loss leaves the average as it is too.
#pragma once

#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "vit/nn/module.hpp"
#include "vit/optim/sgd.hpp"

namespace vit::optim {

struct EmaOptions {
  double decay = 0.9998;           // timm train.py's --model-ema-decay default
  bool warmup = true;              // timm's --model-ema-warmup (ModelEmaV3 use_warmup)
  double warmup_gamma = 1.0;       // ModelEmaV3's defaults
  double warmup_power = 2.0 / 3.0;
  double min_decay = 0.0;
  int64_t update_after_step = 0;
};

/// timm's ModelEmaV3.get_decay(step): the decay of the update after optimizer step `step`.
inline double ema_decay(const EmaOptions& o, int64_t step) {
  const int64_t s = std::max<int64_t>(0, step - o.update_after_step - 1);
  if (s <= 0) return 0.0;
  if (!o.warmup) return o.decay;
  const double d = 1.0 - std::pow(1.0 + static_cast<double>(s) / o.warmup_gamma, -o.warmup_power);
  return std::max(std::min(d, o.decay), o.min_decay);
}

template <class T>
class ModelEma {
 public:
  /// Makes `average` (a module of `model`'s architecture, on its device) a
  /// copy of `model` and keeps it as the moving average of `model`'s
  /// parameters. Both modules must outlive this object.
  ModelEma(const nn::Module<T>& model, nn::Module<T>& average, EmaOptions o = {})
      : average_(average), opt_(o) {
    VIT_CHECK(o.decay >= 0 && o.decay <= 1 && o.min_decay >= 0 && o.min_decay <= o.decay &&
                  o.warmup_gamma > 0 && o.warmup_power > 0,
              "model EMA: need 0 <= min_decay <= decay <= 1, warmup gamma and power > 0; got decay ",
              o.decay, ", min_decay ", o.min_decay, ", gamma ", o.warmup_gamma, ", power ",
              o.warmup_power);
    const auto src = model.named_parameters();
    const auto dst = average.named_parameters();
    VIT_CHECK(src.size() == dst.size(), "model EMA: the average has ", dst.size(),
              " parameters, the model ", src.size());
    for (size_t i = 0; i < src.size(); ++i) {
      const auto& [name, p] = src[i];
      Tensor<T> e = dst[i].second;
      VIT_CHECK(dst[i].first == name && e.shape() == p.shape() && e.device() == p.device(),
                "model EMA: parameter '", name, "' ", p.shape(), " on ", device_name(p.device()),
                " but the average has '", dst[i].first, "' ", e.shape(), " on ",
                device_name(e.device()));
      e.set_requires_grad(false);  // trained by nobody: it follows the model
      e.copy_from(p);
      pairs_.emplace_back(e, p);
    }
    const Device dev = average.device();
    lr_ = Tensor<double>::zeros({1}, dev);
    minus_one_ = Tensor<T>::full({1}, T(-1)).to(dev);
    count_ = Tensor<int64_t>::zeros({1}, dev);
    average_.eval();
  }

  /// A flag the update reads on the device, as Optimizer::set_skip_flag:
  /// nonzero leaves the average untouched (StepGuard's flag). Undefined: never skip.
  void set_skip_flag(const Tensor<float>& f) {
    VIT_CHECK(!f.defined() || (f.numel() == 1 && f.device() == average_.device()),
              "model EMA: the skip flag must be one float on the parameters' device");
    skip_ = f;
  }

  double decay_at(int64_t step) const { return ema_decay(opt_, step); }
  const EmaOptions& options() const { return opt_; }

  /// The update after optimizer step `step` (timm's update(model, step=num_updates)).
  /// Queued on the model's device, without waiting.
  void update(int64_t step) {
    NoGradGuard no_grad;
    const Device dev = average_.device();
    const double w = 1.0 - decay_at(step);  // lerp's weight
    if (dev == Device::CPU) {
      lr_.data()[0] = w;
    } else {
      lr_host_.data()[0] = w;
      lr_.copy_from(lr_host_);
    }
    slots_.clear();  // keeps its capacity: nothing allocated after the first step
    // d = grad·(−1) + 1·param = average − model; param −= w·d.
    for (auto& [e, p] : pairs_) slots_.push_back({e.data(), p.data(), nullptr, e.numel(), 1.0});
    detail::sgd_update<T>(dev, slots_, SgdOptions{w, 0.0, 0.0, false},
                          {lr_.data(), minus_one_.data(), skip_.defined() ? skip_.data() : nullptr,
                           count_.data()});
  }

  /// The average as a module (evaluate it, save it with io::save_checkpoint).
  nn::Module<T>& module() { return average_; }
  const nn::Module<T>& module() const { return average_; }

  /// The average under the model's (timm's) names, sharing storage.
  std::map<std::string, Tensor<T>> state_dict() const { return average_.state_dict(); }
  /// Restores an average saved by state_dict(): every name, every shape.
  void load_state_dict(const std::map<std::string, Tensor<T>>& sd) {
    average_.load_state_dict(sd, /*strict=*/true);
  }

 private:
  nn::Module<T>& average_;
  EmaOptions opt_;
  std::vector<std::pair<Tensor<T>, Tensor<T>>> pairs_;  // (average, model) per parameter
  std::vector<detail::SgdSlot<T>> slots_;
  Tensor<double> lr_;                                    // 1 − d, on the device
  Tensor<double> lr_host_ = Tensor<double>::empty({1});  // staged from here on the GPU
  Tensor<T> minus_one_;                                  // the "gradient" scale
  Tensor<int64_t> count_;                                // updates applied (SGD's step count)
  Tensor<float> skip_;
};

}  // namespace vit::optim
