// Global-norm gradient clipping, torch.nn.utils.clip_grad_norm_:
// total = ‖(‖g₁‖, ‖g₂‖, …)‖₂; if total > max_norm every gradient is scaled by
// max_norm / (total + 1e-6). Returns the total norm (non-finite if any gradient is).
#pragma once

#include <cmath>
#include <vector>

#include "vit/core/tensor.hpp"

namespace vit::optim {

template <class T>
double clip_grad_norm(const std::vector<Tensor<T>>& params, double max_norm) {
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
