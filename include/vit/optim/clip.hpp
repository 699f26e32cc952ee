// Global-norm gradient clipping, torch.nn.utils.clip_grad_norm_:
// total = ‖(‖g₁‖, ‖g₂‖, …)‖₂; if total > max_norm every gradient is scaled by
// max_norm / (total + 1e-6). Two forms: clip_grad_norm scales the gradients in
// place and returns the norm as a number (on CUDA it waits for it);
// clip_grad_norm_in_step leaves the norm on the device and hands the scale to
// the optimizer's next step(), so a training step never waits.
#pragma once

#include <cmath>
#include <vector>

#include "vit/core/tensor.hpp"
#include "vit/cuda/optimizer.hpp"
#include "vit/ops/elementwise.hpp"
#include "vit/optim/optimizer.hpp"

namespace vit::optim {
namespace detail {

// out[0] = the global norm of the gradients, out[1] = min(1, max_norm/(norm+1e-6))
// (1 when the norm is not finite: the step will be skipped anyway); on `dev`.
template <class T>
void grad_norm(Device dev, const std::vector<Tensor<T>>& grads, double max_norm, T* out) {
  if (dev == Device::CUDA) {
    if constexpr (ops::detail::kCudaFloat<T>) {
      std::vector<cuda::ParamSlot> slots;
      for (const auto& g : grads) slots.push_back({nullptr, g.data(), nullptr, nullptr, g.numel(), 0.0});
      cuda::grad_norm(slots.data(), static_cast<int>(slots.size()), static_cast<float>(max_norm),
                      out, out + 1);
    } else {
      ops::detail::cuda_branch_missing("clip_grad_norm");
    }
    return;
  }
  double total_sq = 0;
  for (const auto& g : grads) {
    double s = 0;
    for (int64_t i = 0; i < g.numel(); ++i) s += static_cast<double>(g.data()[i]) * g.data()[i];
    total_sq += s;
  }
  const double total = std::sqrt(total_sq);
  const double coef = max_norm / (total + 1e-6);
  out[0] = static_cast<T>(total);
  out[1] = coef < 1.0 ? static_cast<T>(coef) : T(1);
}

template <class T>
std::vector<Tensor<T>> defined_grads(const std::vector<Tensor<T>>& params) {
  std::vector<Tensor<T>> grads;
  for (const auto& p : params)
    if (p.grad().defined()) grads.push_back(p.grad());
  return grads;
}

}  // namespace detail

/// torch.nn.utils.clip_grad_norm_: scales the gradients in place; returns the
/// total norm (non-finite if any gradient is). On CUDA the norm is read back: it waits.
template <class T>
double clip_grad_norm(const std::vector<Tensor<T>>& params, double max_norm) {
  const std::vector<Tensor<T>> grads = detail::defined_grads(params);
  if (grads.empty()) return 0.0;
  const Device dev = grads.front().device();
  Tensor<T> out = Tensor<T>::empty({2}, dev);
  detail::grad_norm(dev, grads, max_norm, out.data());
  if (dev == Device::CPU) {
    const double total = out.data()[0];
    const double coef = max_norm / (total + 1e-6);  // in double, as torch
    if (coef < 1.0)
      for (const auto& g : grads)
        for (int64_t i = 0; i < g.numel(); ++i) g.data()[i] *= static_cast<T>(coef);
    return total;
  }
  const Tensor<T> coef = out.narrow0(1, 1);
  for (const auto& g : grads)
    ops::binary_forward(dev, ops::BinaryOp::Mul, g.data(), g.shape(), coef.data(), Shape{1}, g.data(), g.shape());
  return out.narrow0(0, 1).item();
}

/// clip_grad_norm_ without a wait or a pass over the gradients: returns the
/// total norm as a one-element tensor on the gradients' device, and makes the
/// clip coefficient `opt`'s gradient scale, applied inside its next step().
/// max_norm = inf computes the norm only (scale 1).
template <class T>
Tensor<T> clip_grad_norm_in_step(Optimizer<T>& opt, const std::vector<Tensor<T>>& params,
                                 double max_norm) {
  const std::vector<Tensor<T>> grads = detail::defined_grads(params);
  const Device dev = grads.empty() ? Device::CPU : grads.front().device();
  Tensor<T> out = Tensor<T>::zeros({2}, dev);
  if (!grads.empty()) detail::grad_norm(dev, grads, max_norm, out.data());
  opt.set_grad_scale(out.narrow0(1, 1));
  return out.narrow0(0, 1);
}

}  // namespace vit::optim
