// SGD with momentum, dampening and Nesterov, exactly torch.optim.SGD:
//   d = g + wd·p;  buf = d (first step) or μ·buf + (1−dampening)·d
//   d = d + μ·buf (nesterov) or buf;  p −= lr·d
#pragma once

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
