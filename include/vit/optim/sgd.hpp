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

namespace detail {

template <class T>
struct SgdSlot {
  T* param;
  const T* grad;
  T* momentum_buffer;  // null without momentum
  int64_t n;
  double weight_decay;
  bf16* param_bf16 = nullptr;  // set to bf16(new param) by the update, or null
};

// The SGD update of every slot on `dev`. The buffer is set to d by the first
// update applied (step count 0 before it), as torch.optim.SGD's first step.
template <class T>
void sgd_update(Device dev, const std::vector<SgdSlot<T>>& slots, const SgdOptions& o,
                const StepState<T>& in) {
  if (dev == Device::CUDA) {
    if constexpr (ops::detail::kCudaFloat<T>) {
      std::vector<cuda::ParamSlot> cs;
      for (const auto& s : slots)
        cs.push_back({s.param, s.grad, s.momentum_buffer, nullptr, s.n, s.weight_decay, s.param_bf16});
      cuda::SgdHyper h;
      h.momentum = o.momentum, h.dampening = o.dampening, h.nesterov = o.nesterov;
      cuda::sgd_step(cs.data(), static_cast<int>(cs.size()), h, {in.lr, in.grad_scale, in.skip, in.step});
    } else {
      ops::detail::cuda_branch_missing("SGD");
    }
    return;
  }
  if (in.skip && *in.skip != 0.f) return;  // a non-finite step: nothing moves
  const bool first = (*in.step)++ == 0;
  const T lr = static_cast<T>(*in.lr), mu = static_cast<T>(o.momentum),
          damp = static_cast<T>(1.0 - o.dampening);
  const T scale = in.grad_scale ? *in.grad_scale : T(1);
  const bool scaled = in.grad_scale != nullptr;
  for (const auto& s : slots) {
    const T wd = static_cast<T>(s.weight_decay);
    T* w = s.param;
    bf16* w16 = s.param_bf16;
    const T* g = s.grad;
    const int64_t n = s.n;
    if (!s.momentum_buffer) {
      for (int64_t i = 0; i < n; ++i) {
        w[i] -= lr * ((scaled ? g[i] * scale : g[i]) + wd * w[i]);
        if (w16) w16[i] = bf16(w[i]);
      }
      continue;
    }
    T* buf = s.momentum_buffer;
    const bool nesterov = o.nesterov;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; ++i) {
      const T d = (scaled ? g[i] * scale : g[i]) + wd * w[i];
      buf[i] = first ? d : mu * buf[i] + damp * d;
      w[i] -= lr * (nesterov ? d + mu * buf[i] : buf[i]);
      if (w16) w16[i] = bf16(w[i]);
    }
  }
}

}  // namespace detail

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
    const Device dev = this->params_device();
    std::vector<detail::SgdSlot<T>> slots;
    size_t index = 0;  // the parameter's place in the groups' order (its low-precision copy)
    for (auto& group : this->groups_)
      for (auto& [name, p] : group.params) {
        Tensor<T> grad = p.grad();
        if (!grad.defined()) {
          ++index;
          continue;
        }
        T* buf = opt_.momentum != 0 ? this->state(name, "momentum_buffer", p.shape(), dev).data() : nullptr;
        slots.push_back(
            {p.data(), grad.data(), buf, p.numel(), group.weight_decay, this->low_copy(index++, dev)});
      }
    detail::sgd_update(dev, slots, opt_, this->step_state(dev));
  }

 private:
  SgdOptions opt_;
};

}  // namespace vit::optim
