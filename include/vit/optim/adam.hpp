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
    const int64_t t = ++this->steps_;
    const double lr = this->lr_;
    const double bc1 = 1.0 - std::pow(opt_.beta1, static_cast<double>(t));
    const double bc2_sqrt = std::sqrt(1.0 - std::pow(opt_.beta2, static_cast<double>(t)));
    const T step_size = static_cast<T>(lr / bc1), b1 = static_cast<T>(opt_.beta1),
            b2 = static_cast<T>(opt_.beta2), eps = static_cast<T>(opt_.eps),
            bc2s = static_cast<T>(bc2_sqrt), omb1 = static_cast<T>(1.0 - opt_.beta1),
            omb2 = static_cast<T>(1.0 - opt_.beta2);
    if (this->params_device() == Device::CUDA) {
      if constexpr (ops::detail::kCudaFloat<T>) {
        // Every parameter of every group in one launch (chunked past the slot limit).
        std::vector<cuda::ParamSlot> slots;
        for (auto& group : this->groups_)
          for (auto& [name, p] : group.params) {
            Tensor<T> grad = p.grad();
            if (!grad.defined()) continue;
            slots.push_back({p.data(), grad.data(),
                             this->state(name, "exp_avg", p.shape(), Device::CUDA).data(),
                             this->state(name, "exp_avg_sq", p.shape(), Device::CUDA).data(),
                             p.numel(), static_cast<float>(group.weight_decay)});
          }
        const cuda::AdamHyper h{static_cast<float>(lr), b1, b2, eps, step_size, bc2s, decoupled_,
                                omb1, omb2};
        cuda::adam_step(slots.data(), static_cast<int>(slots.size()), h, this->grad_scale());
      } else {
        ops::detail::cuda_branch_missing("Adam");
      }
      return;
    }
    for (auto& group : this->groups_) {
      const T wd = static_cast<T>(group.weight_decay);
      const T decay = static_cast<T>(1.0 - lr * group.weight_decay);
      for (auto& [name, p] : group.params) {
        Tensor<T> grad = p.grad();
        if (!grad.defined()) continue;
        T* m = this->state(name, "exp_avg", p.shape()).data();
        T* v = this->state(name, "exp_avg_sq", p.shape()).data();
        T* w = p.data();
        const T* g = grad.data();
        const int64_t n = p.numel();
        const bool dec = decoupled_, l2 = !decoupled_ && group.weight_decay != 0;
#pragma omp parallel for schedule(static) if (n > 65536)
        for (int64_t i = 0; i < n; ++i) {
          T gi = g[i];
          if (dec) w[i] *= decay;
          else if (l2) gi += wd * w[i];
          m[i] = b1 * m[i] + omb1 * gi;
          v[i] = b2 * v[i] + omb2 * gi * gi;
          w[i] -= step_size * m[i] / (std::sqrt(v[i]) / bc2s + eps);
        }
      }
    }
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
