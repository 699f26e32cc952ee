// Module<T>: named parameters, child modules, train/eval, state dict.
// Parameter names are built from registration names joined by dots, which is
// how the ViT ends up with timm's exact state-dict keys
// ("blocks.0.attn.qkv.weight"). Modules hold child pointers, so they are
// neither copyable nor movable; containers hold them by unique_ptr.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "vit/core/rng.hpp"
#include "vit/core/tensor.hpp"
#include "vit/ops/common.hpp"

namespace vit::nn {

/// The process-wide generator used by modules that were not given one.
inline Generator& default_generator() {
  static Generator g(0);
  return g;
}

template <class T>
class Module {
 public:
  Module() = default;
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  /// Every parameter with its dotted name, in registration order (timm's order).
  std::vector<std::pair<std::string, Tensor<T>>> named_parameters() const {
    std::vector<std::pair<std::string, Tensor<T>>> out;
    collect("", out);
    return out;
  }
  std::vector<Tensor<T>> parameters() const {
    std::vector<Tensor<T>> out;
    for (auto& [n, p] : named_parameters()) out.push_back(p);
    return out;
  }
  int64_t num_parameters() const {
    int64_t n = 0;
    for (auto& [name, p] : named_parameters()) n += p.numel();
    return n;
  }
  /// Name -> tensor sharing the parameter's storage.
  std::map<std::string, Tensor<T>> state_dict() const {
    std::map<std::string, Tensor<T>> out;
    for (auto& [n, p] : named_parameters()) out.emplace(n, p.detach());
    return out;
  }
  /// Copies values in by name. Strict: every parameter must be present with its
  /// shape and no unknown name may appear; otherwise a vit::Error names the tensor.
  void load_state_dict(const std::map<std::string, Tensor<T>>& sd, bool strict = true) {
    auto params = named_parameters();
    for (auto& [name, p] : params) {
      auto it = sd.find(name);
      if (it == sd.end()) {
        VIT_CHECK(!strict, "load_state_dict: missing tensor '", name, "' of shape ", p.shape());
        continue;
      }
      VIT_CHECK(it->second.shape() == p.shape(), "load_state_dict: tensor '", name, "' has shape ",
                it->second.shape(), " but the model expects ", p.shape());
      p.copy_from(it->second);
    }
    if (strict)
      for (auto& [name, t] : sd) {
        bool known = false;
        for (auto& [n, p] : params) known = known || n == name;
        VIT_CHECK(known, "load_state_dict: unexpected tensor '", name, "' of shape ", t.shape());
      }
  }

  void train(bool on = true) {
    training_ = on;
    for (auto& [n, m] : children_) m->train(on);
  }
  void eval() { train(false); }
  bool is_training() const { return training_; }
  void zero_grad() {
    for (auto& p : parameters()) p.zero_grad();
  }
  /// Moves every parameter and its gradient to device d in place (nn.Module.to):
  /// the module's fields and any list of its parameters see the move.
  /// Optimizers made before the move keep state on the old device: make them after.
  void to(Device d) {
    for (auto& p : parameters()) p.move_to_(d);
  }
  /// The device of the parameters (CPU for a module without any).
  Device device() const {
    auto params = named_parameters();
    return params.empty() ? Device::CPU : params.front().second.device();
  }
  /// Generator for dropout and stochastic depth in this module and its children.
  void set_generator(Generator* g) {
    gen_ = g;
    for (auto& [n, m] : children_) m->set_generator(g);
  }
  Generator& generator() const { return gen_ ? *gen_ : default_generator(); }

 protected:
  Tensor<T> register_parameter(const std::string& name, Tensor<T> t) {
    t.set_requires_grad(true);
    params_.emplace_back(name, t);
    return t;
  }
  void register_module(const std::string& name, Module& m) { children_.emplace_back(name, &m); }

 private:
  void collect(const std::string& prefix, std::vector<std::pair<std::string, Tensor<T>>>& out) const {
    for (auto& [n, p] : params_) out.emplace_back(prefix + n, p);
    for (auto& [n, m] : children_) m->collect(prefix + n + ".", out);
  }

  std::vector<std::pair<std::string, Tensor<T>>> params_;
  std::vector<std::pair<std::string, Module*>> children_;
  bool training_ = true;
  Generator* gen_ = nullptr;
};

/// timm's default init for Linear weights and tokens: N(0, 0.02²) cut at ±2 (absolute).
template <class T>
Tensor<T> trunc_normal_init(const Shape& shape, Generator& gen, double std = 0.02) {
  return Tensor<T>::trunc_normal(shape, 0.0, std, -2.0, 2.0, gen);
}

}  // namespace vit::nn
