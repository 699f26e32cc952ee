// SGD with momentum, dampening and Nesterov, exactly torch.optim.SGD:
//   d = g + wd·p;  buf = d (first step) or μ·buf + (1−dampening)·d
//   d = d + μ·buf (nesterov) or buf;  p −= lr·d
#pragma once

#include "vit/cuda/optimizer.hpp"
#include "vit/optim/optimizer.hpp"

namespace vit::optim {

struct SgdOptions {
  double lr = 0.1, momentum = 0.0, dampening = 0.0;
  bool nesterov = false;
};

template <class T>
class SGD : public Optimizer<T> {
 public:
  SGD(std::vector<ParamGroup<T>> groups, SgdOptions o = {})
      : Optimizer<T>(std::move(groups), o.lr), opt_(o) {
    VIT_CHECK(o.momentum >= 0, "SGD: momentum must be >= 0, got ", o.momentum);
    VIT_CHECK(!o.nesterov || (o.momentum > 0 && o.dampening == 0),
              "SGD: nesterov needs momentum > 0 and dampening 0");
  }

  std::vector<std::string> state_names() const override {
    if (opt_.momentum == 0) return {};
    return {"momentum_buffer"};
  }
  void step() override {
    NoGradGuard no_grad;
    ++this->steps_;
    const T lr = static_cast<T>(this->lr_), mu = static_cast<T>(opt_.momentum),
            damp = static_cast<T>(1.0 - opt_.dampening);
    if (this->params_device() == Device::CUDA) {
      if constexpr (ops::detail::kCudaFloat<T>) {
        // A parameter's first step sets its buffer to d (as the CPU decides per
        // parameter): those go in a launch of their own.
        std::vector<cuda::ParamSlot> slots[2];  // [has a buffer already, first step]
        for (auto& group : this->groups_)
          for (auto& [name, p] : group.params) {
            Tensor<T> grad = p.grad();
            if (!grad.defined()) continue;
            float* buf = nullptr;
            bool first = false;
            if (opt_.momentum != 0) {
              first = !this->has_state(name, "momentum_buffer");
              buf = this->state(name, "momentum_buffer", p.shape(), Device::CUDA).data();
            }
            slots[first].push_back({p.data(), grad.data(), buf, nullptr, p.numel(),
                                    static_cast<float>(group.weight_decay)});
          }
        for (int first = 0; first < 2; ++first) {
          if (slots[first].empty()) continue;
          const cuda::SgdHyper h{lr, mu, static_cast<float>(opt_.dampening), opt_.nesterov,
                                 first == 1, damp};
          cuda::sgd_step(slots[first].data(), static_cast<int>(slots[first].size()), h,
                         this->grad_scale());
        }
      } else {
        ops::detail::cuda_branch_missing("SGD");
      }
      return;
    }
    for (auto& group : this->groups_) {
      const T wd = static_cast<T>(group.weight_decay);
      for (auto& [name, p] : group.params) {
        Tensor<T> grad = p.grad();
        if (!grad.defined()) continue;
        T* w = p.data();
        const T* g = grad.data();
        const int64_t n = p.numel();
        if (opt_.momentum == 0) {
          for (int64_t i = 0; i < n; ++i) w[i] -= lr * (g[i] + wd * w[i]);
          continue;
        }
        const bool first = !this->has_state(name, "momentum_buffer");
        T* buf = this->state(name, "momentum_buffer", p.shape()).data();
        const bool nesterov = opt_.nesterov;
#pragma omp parallel for schedule(static) if (n > 65536)
        for (int64_t i = 0; i < n; ++i) {
          const T d = g[i] + wd * w[i];
          buf[i] = first ? d : mu * buf[i] + damp * d;
          w[i] -= lr * (nesterov ? d + mu * buf[i] : buf[i]);
        }
      }
    }
  }

 private:
  SgdOptions opt_;
};

}  // namespace vit::optim
