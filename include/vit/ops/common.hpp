// What every op header needs: tensors, graph recording, the GEMM, and the
// device check that makes a wrong-device call a clear error.
#pragma once

#include <type_traits>
#include <vector>

#include "vit/autograd/engine.hpp"
#include "vit/core/parallel.hpp"
#include "vit/core/tensor.hpp"
#include "vit/cuda/elementwise.hpp"
#include "vit/ops/detail/bf16_buffers.hpp"
#include "vit/ops/dispatch.hpp"
#include "vit/ops/gemm.hpp"

namespace vit::ops::detail {

/// The device every defined tensor is on; tensors on different devices are an
/// error naming the op (PyTorch's "Expected all tensors to be on the same device").
template <class T, class... Ts>
Device same_device(const char* op, const Tensor<T>& first, const Ts&... rest) {
  const Device d = first.device();
  auto one = [&](const Tensor<T>& t) {
    if (!t.defined()) return;
    VIT_CHECK(t.device() == d, op, ": tensors on different devices (", device_name(d), " and ",
              device_name(t.device()), ", shape ", t.shape(), ")");
  };
  (one(rest), ...);
  return d;
}

/// Rows of a (..., C) tensor: everything but the last dimension.
template <class T>
int64_t rows_of(const Tensor<T>& t) {
  return t.shape().back() == 0 ? 0 : t.numel() / t.shape().back();
}

/// acc[c] += Σ_r x[r·C + c] for x (R,C): one pass over x, rows split across
/// threads, per-thread partials summed in thread order (deterministic for a
/// given thread count). Bias gradients and broadcast reductions use it.
template <class T>
void add_column_sums(const T* x, int64_t R, int64_t C, T* acc) {
  const int nt = R * C > 65536 ? num_threads() : 1;
  thread_local std::vector<T> scratch;  // grows once; no allocation per step
  scratch.assign(static_cast<size_t>(nt * C), T(0));
  T* partials = scratch.data();  // captured: other threads' thread_local copies are empty
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
#ifdef _OPENMP
    T* p = partials + C * omp_get_thread_num();
#else
    T* p = partials;
#endif
#pragma omp for schedule(static)
    for (int64_t r = 0; r < R; ++r) {
      const T* row = x + r * C;
#pragma omp simd
      for (int64_t c = 0; c < C; ++c) p[c] += row[c];
    }
  }
  for (int t = 0; t < nt; ++t)
    for (int64_t c = 0; c < C; ++c) acc[c] += partials[t * C + c];
}

/// bf16: the column sums in float (the float code on a widened copy), each
/// added into the bf16 accumulator once.
inline void add_column_sums(const bf16* x, int64_t R, int64_t C, bf16* acc) {
  thread_local std::vector<float> sums;
  sums.assign(static_cast<size_t>(C), 0.f);
  const TensorF xf = widen(x, R * C);
  add_column_sums(xf.data(), R, C, sums.data());
  for (int64_t c = 0; c < C; ++c) acc[c] = bf16(float(acc[c]) + sums[c]);
}

/// acc[c] += Σ_r x[r·C + c] on `dev` (the CUDA kernel sums in a fixed order too).
template <class T>
void add_column_sums(Device dev, const T* x, int64_t R, int64_t C, T* acc) {
  if (dev == Device::CUDA) {
    if constexpr (kCudaKernels<T>) cuda::column_sums_accumulate(x, acc, R, C);
    else cuda_branch_missing("column sums");
    return;
  }
  add_column_sums(x, R, C, acc);
}

}  // namespace vit::ops::detail
