// Global-norm gradient clipping, torch.nn.utils.clip_grad_norm_:
// total = ‖(‖g₁‖, ‖g₂‖, …)‖₂; if total > max_norm every gradient is scaled by
// max_norm / (total + 1e-6). Returns the total norm (non-finite if any gradient is).
#pragma once

#include <cmath>
#include <vector>

#include "vit/core/tensor.hpp"
#include "vit/cuda/elementwise.hpp"
#include "vit/cuda/optimizer.hpp"
#include "vit/ops/common.hpp"

namespace vit::optim {

template <class T>
double clip_grad_norm(const std::vector<Tensor<T>>& params, double max_norm) {
  if (!params.empty() && params.front().device() == Device::CUDA) {
    if constexpr (ops::detail::kCudaFloat<T>) {
      // Norm and coefficient on the GPU; the norm is returned, so this waits for it.
      std::vector<cuda::ParamSlot> slots;
      for (const auto& p : params) {
        Tensor<T> g = p.grad();
        if (g.defined()) slots.push_back({nullptr, g.data(), nullptr, nullptr, g.numel(), 0.f});
      }
      Tensor<T> out = Tensor<T>::empty({2}, Device::CUDA);
      cuda::grad_norm(slots.data(), static_cast<int>(slots.size()), static_cast<float>(max_norm),
                      out.data(), out.data() + 1);
      const std::vector<T> host = out.to_vector();
      if (host[1] < 1.0f)
        for (const auto& p : params)
          if (p.grad().defined()) cuda::scale(p.grad().data(), host[1], p.grad().numel());
      return host[0];
    } else {
      ops::detail::cuda_branch_missing("clip_grad_norm");
    }
  }
  double total_sq = 0;
  for (const auto& p : params) {
    Tensor<T> g = p.grad();
    if (!g.defined()) continue;
    double s = 0;
    for (int64_t i = 0; i < g.numel(); ++i) s += static_cast<double>(g.data()[i]) * g.data()[i];
    total_sq += s;
  }
  const double total = std::sqrt(total_sq);
  const double coef = max_norm / (total + 1e-6);
  if (coef < 1.0) {
    for (const auto& p : params) {
      Tensor<T> g = p.grad();
      if (!g.defined()) continue;
      for (int64_t i = 0; i < g.numel(); ++i) g.data()[i] *= static_cast<T>(coef);
    }
  }
  return total;
}

}  // namespace vit::optim
