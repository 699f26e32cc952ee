// What every op header needs: tensors, graph recording, the GEMM, and the
// device check that makes a wrong-device call a clear error.
#pragma once

#include "vit/autograd/engine.hpp"
#include "vit/core/parallel.hpp"
#include "vit/core/tensor.hpp"
#include "vit/ops/gemm.hpp"

namespace vit::ops::detail {

/// Every tensor must be defined and on the CPU (the only backend this op has here).
template <class T, class... Ts>
void check_cpu(const char* op, const Tensor<T>& first, const Ts&... rest) {
  auto one = [op](const Tensor<T>& t) {
    if (!t.defined()) return;
    VIT_CHECK(t.device() == Device::CPU, op, ": tensor of shape ", t.shape(), " is on ",
              device_name(t.device()), " but this op runs on cpu (mixed devices)");
  };
  one(first);
  (one(rest), ...);
}

/// Rows of a (..., C) tensor: everything but the last dimension.
template <class T>
int64_t rows_of(const Tensor<T>& t) {
  return t.shape().back() == 0 ? 0 : t.numel() / t.shape().back();
}

}  // namespace vit::ops::detail
