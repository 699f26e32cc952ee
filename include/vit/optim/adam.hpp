// Adam and AdamW with torch.optim's exact update (amsgrad off):
//   Adam:  g += wd·p (L2 in the gradient)      AdamW: p *= 1 − lr·wd (decoupled)
//   m = β1·m + (1−β1)·g;  v = β2·v + (1−β2)·g²
//   p −= lr/(1−β1ᵗ) · m / (√v / √(1−β2ᵗ) + eps)
// Bias corrections are computed in double, as torch does in Python.
#pragma once

#include <cmath>

#include "vit/cuda/optimizer.hpp"
#include "vit/optim/optimizer.hpp"

namespace vit::optim {

struct AdamOptions {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
};

namespace detail {

template <class T>
struct AdamSlot {
  T* param;
  const T* grad;
  T* exp_avg;
  T* exp_avg_sq;
  int64_t n;
  double weight_decay;
  bf16* param_bf16 = nullptr;  // set to bf16(new param) by the update, or null
};

// The Adam/AdamW update of every slot on `dev`; reads lr, grad scale, skip
// flag and step count from `in` (on `dev`), so the CUDA path never waits.
template <class T>
void adam_update(Device dev, const std::vector<AdamSlot<T>>& slots, const AdamOptions& o,
                 bool decoupled, const StepState<T>& in) {
  if (dev == Device::CUDA) {
    if constexpr (ops::detail::kCudaFloat<T>) {
      std::vector<cuda::ParamSlot> cs;
      for (const auto& s : slots)
        cs.push_back({s.param, s.grad, s.exp_avg, s.exp_avg_sq, s.n, s.weight_decay, s.param_bf16});
      cuda::AdamHyper h;
      h.beta1 = o.beta1, h.beta2 = o.beta2, h.eps = o.eps, h.decoupled = decoupled;
      cuda::adam_step(cs.data(), static_cast<int>(cs.size()), h,
                      {in.lr, in.grad_scale, in.skip, in.step});
    } else {
      ops::detail::cuda_branch_missing("Adam");
    }
    return;
  }
  if (in.skip && *in.skip != 0.f) return;  // a non-finite step: nothing moves
  const int64_t t = ++*in.step;
  const double lr = *in.lr;
  const double bc1 = 1.0 - std::pow(o.beta1, static_cast<double>(t));
  const double bc2_sqrt = std::sqrt(1.0 - std::pow(o.beta2, static_cast<double>(t)));
  const T step_size = static_cast<T>(lr / bc1), b1 = static_cast<T>(o.beta1),
          b2 = static_cast<T>(o.beta2), eps = static_cast<T>(o.eps), bc2s = static_cast<T>(bc2_sqrt),
          omb1 = static_cast<T>(1.0 - o.beta1), omb2 = static_cast<T>(1.0 - o.beta2);
  const T scale = in.grad_scale ? *in.grad_scale : T(1);
  const bool scaled = in.grad_scale != nullptr;
  for (const auto& s : slots) {
    const T wd = static_cast<T>(s.weight_decay);
    const T decay = static_cast<T>(1.0 - lr * s.weight_decay);
    T *m = s.exp_avg, *v = s.exp_avg_sq, *w = s.param;
    bf16* w16 = s.param_bf16;
    const T* g = s.grad;
    const int64_t n = s.n;
    const bool dec = decoupled, l2 = !decoupled && s.weight_decay != 0;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; ++i) {
      T gi = scaled ? g[i] * scale : g[i];
      if (dec) w[i] *= decay;
      else if (l2) gi += wd * w[i];
      m[i] = b1 * m[i] + omb1 * gi;
      v[i] = b2 * v[i] + omb2 * gi * gi;
      w[i] -= step_size * m[i] / (std::sqrt(v[i]) / bc2s + eps);
      if (w16) w16[i] = bf16(w[i]);
    }
  }
}

}  // namespace detail

template <class T>
class Adam : public Optimizer<T> {
 public:
  Adam(std::vector<ParamGroup<T>> groups, AdamOptions o = {}, bool decoupled = false)
      : Optimizer<T>(std::move(groups), o.lr), opt_(o), decoupled_(decoupled) {
    VIT_CHECK(o.beta1 >= 0 && o.beta1 < 1 && o.beta2 >= 0 && o.beta2 < 1 && o.eps >= 0,
              decoupled ? "AdamW" : "Adam", ": need 0 <= betas < 1 and eps >= 0, got beta1=",
              o.beta1, " beta2=", o.beta2, " eps=", o.eps);
  }

  std::vector<std::string> state_names() const override { return {"exp_avg", "exp_avg_sq"}; }
  void step() override {
    NoGradGuard no_grad;
    const Device dev = this->params_device();
    std::vector<detail::AdamSlot<T>> slots;
    size_t index = 0;  // the parameter's place in the groups' order (its low-precision copy)
    for (auto& group : this->groups_)
      for (auto& [name, p] : group.params) {
        Tensor<T> grad = p.grad();
        if (!grad.defined()) {
          ++index;
          continue;
        }
        slots.push_back({p.data(), grad.data(), this->state(name, "exp_avg", p.shape(), dev).data(),
                         this->state(name, "exp_avg_sq", p.shape(), dev).data(), p.numel(),
                         group.weight_decay, this->low_copy(index++, dev)});
      }
    detail::adam_update(dev, slots, opt_, decoupled_, this->step_state(dev));
  }

 private:
  AdamOptions opt_;
  bool decoupled_;
};

/// AdamW: Adam with decoupled weight decay (torch.optim.AdamW).
template <class T>
class AdamW : public Adam<T> {
 public:
  AdamW(std::vector<ParamGroup<T>> groups, AdamOptions o = {}) : Adam<T>(std::move(groups), o, true) {}
};

}  // namespace vit::optim
