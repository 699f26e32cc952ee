// dtype conversion as an op on either device: vit::to_dtype<U>(x) (float <->
// bf16 on the CPU and on CUDA, float <-> double on the CPU), and the raw
// conversions of the mixed-precision trainer: ops::convert (float -> bf16
// rounds to nearest even exactly as vit::bf16 does; bf16 -> float is exact)
// and ops::accumulate_widened (acc += float(g): a bf16 gradient into its fp32
// master gradient).
// Deliberately no autograd: gradients do not flow across dtypes. The result of
// to_dtype is a new leaf; the mixed-precision trainer bridges the two graphs
// itself (bf16 weight copies refreshed from the fp32 masters, bf16 gradients
// accumulated into fp32 ones with accumulate_widened).
#pragma once

#include <type_traits>

#include "vit/core/bf16.hpp"
#include "vit/core/tensor.hpp"
#include "vit/cuda/convert.hpp"
#include "vit/ops/detail/bf16_buffers.hpp"
#include "vit/ops/dispatch.hpp"

namespace vit {
namespace ops {

/// out[i] = bf16(x[i]) (round to nearest even) over n elements on `dev`.
inline void convert(Device dev, const float* x, bf16* out, int64_t n) {
  if (n <= 0) return;
  if (dev == Device::CUDA) {
#if VIT_WITH_CUDA
    cuda::convert(x, out, n);
#else
    detail::cuda_branch_missing("convert");
#endif
    return;
  }
  detail::narrow(x, out, n);
}

/// out[i] = float(x[i]) (exact) over n elements on `dev`.
inline void convert(Device dev, const bf16* x, float* out, int64_t n) {
  if (n <= 0) return;
  if (dev == Device::CUDA) {
#if VIT_WITH_CUDA
    cuda::convert(x, out, n);
#else
    detail::cuda_branch_missing("convert");
#endif
    return;
  }
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) out[i] = float(x[i]);
}

/// acc[i] += float(g[i]) over n elements on `dev`: the fp32 master-gradient accumulation.
inline void accumulate_widened(Device dev, const bf16* g, float* acc, int64_t n) {
  if (n <= 0) return;
  if (dev == Device::CUDA) {
#if VIT_WITH_CUDA
    cuda::accumulate_widened(g, acc, n);
#else
    detail::cuda_branch_missing("accumulate_widened");
#endif
    return;
  }
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) acc[i] += float(g[i]);
}

}  // namespace ops

/// x converted to element type U on x's device (PyTorch's x.to(dtype)): float
/// <-> bf16 on the CPU and CUDA (to bf16 rounds to nearest even), float <->
/// double on the CPU; U == T gives a copy. No autograd: the result is a new
/// leaf and no gradient flows back to x (see the header comment).
template <class U, class T>
Tensor<U> to_dtype(const Tensor<T>& x) {
  if constexpr (std::is_same_v<U, T>) {
    return x.clone();
  } else {
    if (x.device() == Device::CPU) return x.template to_dtype<U>();
    constexpr bool kFloatBf16 = (std::is_same_v<T, float> && is_bf16_v<U>) ||
                                (is_bf16_v<T> && std::is_same_v<U, float>);
    if constexpr (kFloatBf16) {
      Tensor<U> r = Tensor<U>::empty(x.shape(), x.device());
      ops::convert(x.device(), x.data(), r.data(), x.numel());
      return r;
    } else {
      VIT_CHECK(false, "to_dtype on ", device_name(x.device()),
                ": only float <-> bf16 (other conversions run on the CPU)");
      return {};
    }
  }
}

}  // namespace vit
