// gelu as nn.GELU: exact 0.5·x·(1 + erf(x/√2)) by default, or the tanh
// approximation (approximate='tanh'). The float path uses Eigen's vectorised
// erf/tanh/exp: a scalar std::erf per element would cost more than the MLP GEMM
// on small ViTs.
#pragma once

#include "vit/core/eigen.hpp"
#include <cmath>

#include "vit/cuda/gelu.hpp"
#include "vit/ops/common.hpp"

namespace vit {

enum class GeluApprox { None, Tanh };

namespace ops {

template <class T>
using ArrayMap = Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>>;
template <class T>
using ConstArrayMap = Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>;

constexpr double kSqrt2OverPi = 0.7978845608028654;  // √(2/π)
constexpr double kGeluKappa = 0.044715;

// Applies f to chunks of [0, n) in parallel; chunks are multiples of 64 so SIMD stays aligned.
template <class F>
void parallel_chunks(int64_t n, F&& f) {
  const int64_t chunk = 16384;
#pragma omp parallel for schedule(static) if (n > chunk)
  for (int64_t s = 0; s < n; s += chunk) f(s, std::min(n, s + chunk) - s);
}

// x: (n) -> out: (n)
template <class T>
void gelu_forward(const T* x, T* out, int64_t n, GeluApprox approx) {
  parallel_chunks(n, [&](int64_t s, int64_t len) {
    ConstArrayMap<T> a(x + s, len);
    ArrayMap<T> o(out + s, len);
    if (approx == GeluApprox::None)
      o = T(0.5) * a * (T(1) + (a * T(M_SQRT1_2)).erf());
    else
      o = T(0.5) * a * (T(1) + (T(kSqrt2OverPi) * (a + T(kGeluKappa) * a.cube())).tanh());
  });
}

// dout, x: (n) -> dx: (n) written
template <class T>
void gelu_backward(const T* dout, const T* x, T* dx, int64_t n, GeluApprox approx) {
  parallel_chunks(n, [&](int64_t s, int64_t len) {
    ConstArrayMap<T> a(x + s, len), g(dout + s, len);
    ArrayMap<T> d(dx + s, len);
    if (approx == GeluApprox::None) {
      // Φ(x) + x·φ(x)
      const T inv_sqrt_2pi = T(0.3989422804014327);
      d = g * (T(0.5) * (T(1) + (a * T(M_SQRT1_2)).erf()) +
               a * inv_sqrt_2pi * (T(-0.5) * a.square()).exp());
    } else {
      // 1 − tanh²(u) = 4·s·s̄ with s = σ(2u), s̄ = σ(−2u): stays accurate where
      // float tanh has saturated to ±1 (|x| > ~4.9) and 1 − tanh² would be 0.
      // Lazy expressions (no .eval()): recomputing u is cheaper than a heap temporary.
      const auto u = T(kSqrt2OverPi) * (a + T(kGeluKappa) * a.cube());
      const auto s = T(1) / (T(1) + (T(-2) * u).exp());
      const auto sbar = T(1) / (T(1) + (T(2) * u).exp());
      d = g * (s + T(2) * a * s * sbar * T(kSqrt2OverPi) * (T(1) + T(3 * kGeluKappa) * a.square()));
    }
  });
}

template <class T>
void gelu_forward(Device dev, const T* x, T* out, int64_t n, GeluApprox approx) {
  if (dev == Device::CUDA) {
    if constexpr (detail::kCudaFloat<T>) cuda::gelu_forward(x, out, n, approx == GeluApprox::Tanh);
    else detail::cuda_branch_missing("gelu");
    return;
  }
  gelu_forward(x, out, n, approx);
}

template <class T>
void gelu_backward(Device dev, const T* dout, const T* x, T* dx, int64_t n, GeluApprox approx) {
  if (dev == Device::CUDA) {
    if constexpr (detail::kCudaFloat<T>) cuda::gelu_backward(dout, x, dx, n, approx == GeluApprox::Tanh);
    else detail::cuda_branch_missing("gelu");
    return;
  }
  gelu_backward(dout, x, dx, n, approx);
}

}  // namespace ops

namespace detail {
template <class T>
struct GeluNode : Node<T> {
  Tensor<T> x;
  GeluApprox approx = GeluApprox::None;
  const char* name() const override { return "gelu"; }
  void backward(const Tensor<T>& dout) override {
    Tensor<T> dx = Tensor<T>::empty(x.shape(), x.device());
    ops::gelu_backward(x.device(), dout.data(), x.data(), dx.data(), x.numel(), approx);
    this->accumulate(0, dx);
  }
};
}  // namespace detail

/// nn.GELU(approximate='none' | 'tanh').
template <class T>
Tensor<T> gelu(const Tensor<T>& x, GeluApprox approx = GeluApprox::None) {
  const Device dev = x.device();
  Tensor<T> out = Tensor<T>::empty(x.shape(), dev);
  ops::gelu_forward(dev, x.data(), out.data(), x.numel(), approx);
  if (autograd::needs_grad(x)) {
    auto node = std::make_shared<detail::GeluNode<T>>();
    node->x = x.detach();
    node->approx = approx;
    autograd::attach(out, node, {&x});
  }
  return out;
}

}  // namespace vit
