// Optimizer<T>: parameters in groups (each with its weight decay), a learning
// rate the schedule sets each step, and per-parameter state reachable by name
// ("blocks.0.attn.qkv.weight.exp_avg") so a checkpoint can save and restore it.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "vit/core/tensor.hpp"
#include "vit/ops/common.hpp"

namespace vit::optim {

template <class T>
struct ParamGroup {
  std::vector<std::pair<std::string, Tensor<T>>> params;
  double weight_decay = 0.0;
};

/// timm's default grouping: decay on weights of rank >= 2, none on biases, norms,
/// pos_embed and cls_token.
template <class T>
std::vector<ParamGroup<T>> default_param_groups(
    const std::vector<std::pair<std::string, Tensor<T>>>& named, double weight_decay) {
  ParamGroup<T> decay{{}, weight_decay}, no_decay{{}, 0.0};
  auto ends_with = [](const std::string& s, const std::string& suf) {
    return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
  };
  for (const auto& [name, p] : named) {
    const bool skip = p.dim() < 2 || ends_with(name, "pos_embed") || ends_with(name, "cls_token");
    (skip ? no_decay : decay).params.emplace_back(name, p);
  }
  std::vector<ParamGroup<T>> groups;
  if (!decay.params.empty()) groups.push_back(std::move(decay));
  if (!no_decay.params.empty()) groups.push_back(std::move(no_decay));
  return groups;
}

template <class T>
class Optimizer {
 public:
  Optimizer(std::vector<ParamGroup<T>> groups, double lr) : groups_(std::move(groups)), lr_(lr) {
    VIT_CHECK(lr >= 0, "optimizer: learning rate must be >= 0, got ", lr);
    for (auto& g : groups_) {
      VIT_CHECK(g.weight_decay >= 0, "optimizer: weight_decay must be >= 0, got ", g.weight_decay);
      for (auto& [name, p] : g.params)
        VIT_CHECK(p.requires_grad(), "optimizer: parameter '", name, "' does not require grad");
    }
  }
  virtual ~Optimizer() = default;

  /// One update of every parameter that has a gradient.
  virtual void step() = 0;
  /// The per-parameter state this optimizer keeps ("exp_avg", ...).
  virtual std::vector<std::string> state_names() const = 0;
  void zero_grad() {
    for (auto& g : groups_)
      for (auto& [n, p] : g.params) p.zero_grad();
  }
  double lr() const { return lr_; }
  /// On CUDA: a one-float device tensor every gradient is multiplied by in the
  /// next steps (the clip coefficient of clip_grad_norm, so clipping needs no
  /// host round trip); undefined for none.
  void set_grad_scale(const Tensor<T>& s) { grad_scale_ = s; }
  void set_lr(double lr) { lr_ = lr; }
  int64_t steps() const { return steps_; }
  void set_steps(int64_t s) { steps_ = s; }
  const std::vector<ParamGroup<T>>& groups() const { return groups_; }

  /// Every state tensor as "<param name>.<state name>" (shares storage).
  std::vector<std::pair<std::string, Tensor<T>>> named_state() const {
    std::vector<std::pair<std::string, Tensor<T>>> out;
    for (const auto& [key, t] : state_) out.emplace_back(key, t);
    return out;
  }
  /// Restores state saved by named_state(); shapes are checked, unknown keys rejected.
  void load_named_state(const std::vector<std::pair<std::string, Tensor<T>>>& saved) {
    for (const auto& [key, t] : saved) {
      const Tensor<T>* param = find_param_for_state(key);
      VIT_CHECK(param, "optimizer state: '", key, "' does not belong to any parameter");
      const std::string what = key.substr(key.rfind('.') + 1);
      bool known = false;
      for (const auto& n : state_names()) known = known || n == what;
      VIT_CHECK(known, "optimizer state: '", key, "': this optimizer keeps no state named '", what, "'");
      VIT_CHECK(t.shape() == param->shape(), "optimizer state: '", key, "' has shape ", t.shape(),
                ", parameter has ", param->shape());
      Tensor<T>& dst = state_[key];
      if (!dst.defined()) dst = Tensor<T>::empty(t.shape(), param->device());
      dst.copy_from(t);
    }
  }

 protected:
  /// The named state tensor of a parameter, zero-filled the first time.
  Tensor<T>& state(const std::string& param_name, const char* what, const Shape& shape,
                   Device device = Device::CPU) {
    Tensor<T>& t = state_[param_name + "." + what];
    if (!t.defined()) t = Tensor<T>::zeros(shape, device);
    VIT_CHECK(t.device() == device, "optimizer: state '", param_name, ".", what, "' is on ",
              device_name(t.device()), " but its parameter is on ", device_name(device),
              " (make the optimizer after moving the model with Module::to)");
    return t;
  }
  /// The device of the parameters; all must share it (a model moved with Module::to).
  Device params_device() const {
    Device d = Device::CPU;
    bool first = true;
    for (const auto& g : groups_)
      for (const auto& [name, p] : g.params) {
        VIT_CHECK(first || p.device() == d, "optimizer: parameter '", name, "' is on ",
                  device_name(p.device()), " but others are on ", device_name(d));
        d = p.device();
        first = false;
      }
    return d;
  }
  bool has_state(const std::string& param_name, const char* what) const {
    return state_.count(param_name + "." + what) > 0;
  }

  const T* grad_scale() const { return grad_scale_.defined() ? grad_scale_.data() : nullptr; }

  std::vector<ParamGroup<T>> groups_;
  double lr_;
  Tensor<T> grad_scale_;
  int64_t steps_ = 0;

 private:
  const Tensor<T>* find_param_for_state(const std::string& key) const {
    for (const auto& g : groups_)
      for (const auto& [name, p] : g.params)
        if (key.size() > name.size() + 1 && key.compare(0, name.size(), name) == 0 &&
            key[name.size()] == '.' && key.find('.', name.size() + 1) == std::string::npos)
          return &p;
    return nullptr;
  }
  std::map<std::string, Tensor<T>> state_;
};

}  // namespace vit::optim
