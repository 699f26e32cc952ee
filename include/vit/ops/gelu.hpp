// gelu as nn.GELU: exact 0.5·x·(1 + erf(x/√2)) by default, or the tanh
// approximation (approximate='tanh'). The float path uses Eigen's vectorised
// erf/tanh/exp on every element, tails included (a scalar std::erf per element
// would cost more than the MLP GEMM on small ViTs), so a value's result does
// not depend on where it sits. bf16 tensors: the same float math, each output
// rounded once (in one pass on AVX-512 builds, else on float copies of each
// block; ops/detail/bf16_buffers.hpp).
// bias_gelu(x, bias) = gelu(x + bias) over the last dim as one op and one
// autograd node (the MLP's fc1 bias and activation, issue 18 §4): on CUDA one
// fused kernel each way (the backward takes the bias gradient's column sums in
// the same pass); on the CPU the composition (row-broadcast add, then GELU),
// with x + bias kept in float for bf16, as the fused kernel keeps it.
#pragma once

#include "vit/core/eigen.hpp"
#include <cmath>

#include "vit/cuda/gelu.hpp"
#include "vit/ops/common.hpp"
#include "vit/ops/detail/bf16_buffers.hpp"

namespace vit {

enum class GeluApprox { None, Tanh };

namespace ops {

constexpr double kSqrt2OverPi = 0.7978845608028654;  // √(2/π)
constexpr double kGeluKappa = 0.044715;

// Applies f to chunks of [0, n) in parallel; chunks are multiples of 64 so SIMD stays aligned.
template <class F>
void parallel_chunks(int64_t n, F&& f) {
  const int64_t chunk = 16384;
#pragma omp parallel for schedule(static) if (n > chunk)
  for (int64_t s = 0; s < n; s += chunk) f(s, std::min(n, s + chunk) - s);
}

namespace detail {
// The packet the GELU math runs on: Eigen's float packet (4, 8 or 16 lanes, as
// the build's ISA gives; Eigen's vectorised erf, exp and tanh) for float, one
// value at a time (std::erf, std::exp, std::tanh) for double.
template <class T>
struct GeluPacket {
  using type = T;
};
template <>
struct GeluPacket<float> {
  using type = Eigen::internal::packet_traits<float>::type;
};

// The GELU math once, on GeluPacket<T>::type: the float op, the bf16 op and
// the double references all evaluate these.
template <class T>
struct GeluMath {
  using P = typename GeluPacket<T>::type;
  static P c(double v) { return Eigen::internal::pset1<P>(static_cast<T>(v)); }

  // 0.5·x·(1 + erf(x/√2))
  static P erf_forward(const P& a) {
    using namespace Eigen::internal;
    return pmul(pmul(c(0.5), a), one_plus_erf(a));
  }
  // g·(Φ(x) + x·φ(x))
  static P erf_backward(const P& g, const P& a) {
    using namespace Eigen::internal;
    const P cdf = pmul(c(0.5), one_plus_erf(a));
    const P pdf = pmul(pmul(a, c(0.3989422804014327)), pexp(pmul(c(-0.5), pmul(a, a))));
    return pmul(g, padd(cdf, pdf));
  }
  // 0.5·x·(1 + tanh(u)), u = √(2/π)·(x + κx³)
  static P tanh_forward(const P& a) {
    using namespace Eigen::internal;
    return pmul(pmul(c(0.5), a), padd(c(1), ptanh(u(a))));
  }
  // 1 − tanh²(u) = 4·s·s̄ with s = σ(2u), s̄ = σ(−2u): stays accurate where
  // float tanh has saturated to ±1 (|x| > ~4.9) and 1 − tanh² would be 0.
  static P tanh_backward(const P& g, const P& a) {
    using namespace Eigen::internal;
    const P ua = u(a);
    const P s = pdiv(c(1), padd(c(1), pexp(pmul(c(-2), ua))));
    const P sbar = pdiv(c(1), padd(c(1), pexp(pmul(c(2), ua))));
    const P slope = pmul(pmul(pmul(pmul(pmul(c(2), a), s), sbar), c(kSqrt2OverPi)),
                         padd(c(1), pmul(c(3 * kGeluKappa), pmul(a, a))));
    return pmul(g, padd(s, slope));
  }

 private:
  static P one_plus_erf(const P& a) {
    using namespace Eigen::internal;
    return padd(c(1), perf(pmul(a, c(M_SQRT1_2))));
  }
  static P u(const P& a) {
    using namespace Eigen::internal;
    return pmul(c(kSqrt2OverPi), padd(a, pmul(c(kGeluKappa), pmul(a, pmul(a, a)))));
  }
};

// out[i] = f(g[i], x[i]) for i in [0, n), every element through the same
// packet code: whole packets in place, the tail through a zero-padded copy.
// (Eigen's array loops peel an unaligned head and finish the tail in scalar
// code with libm's exp: an element's value then depended on its position and
// on the buffer's alignment, down to NaN against −Inf at x = −Inf.) out may be
// g or x; the forward passes x as g.
template <class T, class F>
void gelu_packets(const T* g, const T* x, T* out, int64_t n, F f) {
  using namespace Eigen::internal;
  using P = typename GeluPacket<T>::type;
  constexpr int64_t L = sizeof(P) / sizeof(T);
  int64_t i = 0;
  for (; i + L <= n; i += L) pstoreu(out + i, f(ploadu<P>(g + i), ploadu<P>(x + i)));
  if (i < n) {
    alignas(64) T tg[L] = {}, tx[L] = {}, to[L];
    std::copy(g + i, g + n, tg);
    std::copy(x + i, x + n, tx);
    pstoreu(to, f(ploadu<P>(tg), ploadu<P>(tx)));
    std::copy(to, to + (n - i), out + i);
  }
}
}  // namespace detail

// x: (n) -> out: (n); out may be x
template <class T>
void gelu_forward(const T* x, T* out, int64_t n, GeluApprox approx) {
  using M = detail::GeluMath<T>;
  parallel_chunks(n, [&](int64_t s, int64_t len) {
    if (approx == GeluApprox::None)
      detail::gelu_packets<T>(x + s, x + s, out + s, len, [](const auto&, const auto& a) { return M::erf_forward(a); });
    else
      detail::gelu_packets<T>(x + s, x + s, out + s, len, [](const auto&, const auto& a) { return M::tanh_forward(a); });
  });
}

// dout, x: (n) -> dx: (n) written; dx may be dout
template <class T>
void gelu_backward(const T* dout, const T* x, T* dx, int64_t n, GeluApprox approx) {
  using M = detail::GeluMath<T>;
  parallel_chunks(n, [&](int64_t s, int64_t len) {
    if (approx == GeluApprox::None)
      detail::gelu_packets<T>(dout + s, x + s, dx + s, len, [](const auto& g, const auto& a) { return M::erf_backward(g, a); });
    else
      detail::gelu_packets<T>(dout + s, x + s, dx + s, len, [](const auto& g, const auto& a) { return M::tanh_backward(g, a); });
  });
}

#if defined(EIGEN_VECTORIZE_AVX512) && VIT_HAVE_BF16_LANES_16
#define VIT_GELU_BF16_ONE_PASS 1
#else
#define VIT_GELU_BF16_ONE_PASS 0
#endif

namespace detail {
#if VIT_GELU_BF16_ONE_PASS
// The erf GELU on bf16 in one pass, 16 values at a time: widen, the float
// op's math (GeluMath on Eigen's 16-lane packet, as gelu_forward/backward<float>
// on this build), round. The block-copy path below spends as long waiting for
// its burst of loads, and then its burst of stores, as on the math; here the
// loads of the next vectors overlap the math of this one (measured 1.9x
// faster forward, 1.7x backward, on 3.2M values, Zen 5).
using GeluMath16 = GeluMath<float>;  // Packet16f on these builds

inline void gelu_erf_forward_bf16(const bf16* x, bf16* out, int64_t n) {
  for_vectors16(n, [&](int64_t i, __mmask16 m) {
    narrow_16_masked(GeluMath16::erf_forward(widen_16_masked(x + i, m)), out + i, m);
  });
}

inline void gelu_erf_backward_bf16(const bf16* dout, const bf16* x, bf16* dx, int64_t n) {
  for_vectors16(n, [&](int64_t i, __mmask16 m) {
    narrow_16_masked(GeluMath16::erf_backward(widen_16_masked(dout + i, m), widen_16_masked(x + i, m)), dx + i, m);
  });
}
#endif
}  // namespace detail

// bf16 on the CPU: the erf GELU in one pass where AVX-512 is built for;
// otherwise (and for tanh) float math on float copies of each block, outputs
// rounded once.
inline void gelu_forward(const bf16* x, bf16* out, int64_t n, GeluApprox approx) {
  constexpr int64_t block = 4096;
  detail::for_row_blocks((n + block - 1) / block, block, detail::row_block_threads(n, 1),
                         [&](int64_t b0, int64_t blocks, int) {
                           const int64_t s = b0 * block, len = std::min(blocks * block, n - s);
#if VIT_GELU_BF16_ONE_PASS
                           if (approx == GeluApprox::None) return detail::gelu_erf_forward_bf16(x + s, out + s, len);
#endif
                           float* xs = detail::row_scratch(0, len);
                           detail::widen_n(x + s, xs, len);
                           gelu_forward(xs, xs, len, approx);
                           detail::narrow_n(xs, out + s, len);
                         });
}
inline void gelu_backward(const bf16* dout, const bf16* x, bf16* dx, int64_t n, GeluApprox approx) {
  constexpr int64_t block = 4096;
  detail::for_row_blocks((n + block - 1) / block, block, detail::row_block_threads(n, 1),
                         [&](int64_t b0, int64_t blocks, int) {
                           const int64_t s = b0 * block, len = std::min(blocks * block, n - s);
#if VIT_GELU_BF16_ONE_PASS
                           if (approx == GeluApprox::None)
                             return detail::gelu_erf_backward_bf16(dout + s, x + s, dx + s, len);
#endif
                           float* gs = detail::row_scratch(0, len);
                           float* xs = detail::row_scratch(1, len);
                           detail::widen_n(dout + s, gs, len);
                           detail::widen_n(x + s, xs, len);
                           gelu_backward(gs, xs, gs, len, approx);
                           detail::narrow_n(gs, dx + s, len);
                         });
}

template <class T>
void gelu_forward(Device dev, const T* x, T* out, int64_t n, GeluApprox approx) {
  if (dev == Device::CUDA) {
    if constexpr (detail::kCudaKernels<T>) cuda::gelu_forward(x, out, n, approx == GeluApprox::Tanh);
    else detail::cuda_branch_missing("gelu");
    return;
  }
  gelu_forward(x, out, n, approx);
}

template <class T>
void gelu_backward(Device dev, const T* dout, const T* x, T* dx, int64_t n, GeluApprox approx) {
  if (dev == Device::CUDA) {
    if constexpr (detail::kCudaKernels<T>) cuda::gelu_backward(dout, x, dx, n, approx == GeluApprox::Tanh);
    else detail::cuda_branch_missing("gelu");
    return;
  }
  gelu_backward(dout, x, dx, n, approx);
}

// x: (R,C), bias: (C) -> out: (R,C) = gelu(x + bias[c]); on `dev`. out may be x.
template <class T>
void bias_gelu_forward(Device dev, const T* x, const T* bias, T* out, int64_t R, int64_t C,
                       GeluApprox approx) {
  if (R * C == 0) return;
  if (dev == Device::CUDA) {
    if constexpr (detail::kCudaKernels<T>)
      cuda::bias_gelu_forward(x, bias, out, R, C, approx == GeluApprox::Tanh);
    else detail::cuda_branch_missing("bias_gelu");
    return;
  }
  using Cm = compute_t<T>;
  // The composition: pre = x + bias (in the compute type), then the GELU.
  Tensor<Cm> pre = Tensor<Cm>::empty({R * C});
  Cm* pp = pre.data();
#pragma omp parallel for schedule(static) if (R * C > 32768)
  for (int64_t r = 0; r < R; ++r)
    for (int64_t c = 0; c < C; ++c)
      pp[r * C + c] = static_cast<Cm>(x[r * C + c]) + static_cast<Cm>(bias[c]);
  if constexpr (is_bf16_v<T>) {
    gelu_forward(pp, pp, R * C, approx);
    detail::narrow(pp, out, R * C);
  } else {
    gelu_forward(pp, out, R * C, approx);
  }
}

// dout, x: (R,C), bias: (C) -> dx (R,C) = dout·gelu'(x + bias) written (if
// non-null), dbias (C) += Σ_r dx (if non-null); on `dev`. dx may be dout.
template <class T>
void bias_gelu_backward(Device dev, const T* dout, const T* x, const T* bias, T* dx, T* dbias,
                        int64_t R, int64_t C, GeluApprox approx) {
  if (R * C == 0 || (!dx && !dbias)) return;
  if (dev == Device::CUDA) {
    if constexpr (detail::kCudaKernels<T>)
      cuda::bias_gelu_backward(dout, x, bias, dx, dbias, R, C, approx == GeluApprox::Tanh);
    else detail::cuda_branch_missing("bias_gelu");
    return;
  }
  using Cm = compute_t<T>;
  const int64_t n = R * C;
  Tensor<Cm> pre = Tensor<Cm>::empty({n}), g = Tensor<Cm>::empty({n});
  Cm* pp = pre.data();
  Cm* gp = g.data();
#pragma omp parallel for schedule(static) if (n > 32768)
  for (int64_t r = 0; r < R; ++r)
    for (int64_t c = 0; c < C; ++c) {
      pp[r * C + c] = static_cast<Cm>(x[r * C + c]) + static_cast<Cm>(bias[c]);
      gp[r * C + c] = static_cast<Cm>(dout[r * C + c]);
    }
  gelu_backward(gp, pp, gp, n, approx);  // g = dout·gelu'(pre), in the compute type
  if (dbias) {
    if constexpr (is_bf16_v<T>) {
      std::vector<float> sums(static_cast<size_t>(C), 0.f);
      detail::add_column_sums(gp, R, C, sums.data());
      for (int64_t c = 0; c < C; ++c) dbias[c] = bf16(float(dbias[c]) + sums[c]);
    } else {
      detail::add_column_sums(gp, R, C, dbias);
    }
  }
  if (dx) {
    if constexpr (is_bf16_v<T>) detail::narrow(gp, dx, n);
    else std::copy_n(gp, n, dx);
  }
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

template <class T>
struct BiasGeluNode : Node<T> {
  Tensor<T> x, bias;  // the inputs: x + bias is recomputed, never stored
  GeluApprox approx = GeluApprox::None;
  const char* name() const override { return "bias_gelu"; }
  void backward(const Tensor<T>& dout) override {
    const int64_t C = bias.numel(), R = C == 0 ? 0 : x.numel() / C;
    Tensor<T> dx;
    if (this->needs_grad(0)) dx = Tensor<T>::empty(x.shape(), x.device());
    T* db = this->needs_grad(1) ? this->grad_buffer(1).data() : nullptr;
    ops::bias_gelu_backward(x.device(), dout.data(), x.data(), bias.data(),
                            dx.defined() ? dx.data() : nullptr, db, R, C, approx);
    if (dx.defined()) this->accumulate(0, dx);
  }
};
}  // namespace detail

/// gelu(x + bias) with bias (C) broadcast over the rows of x (..., C): the MLP's
/// fc1 bias and activation as one op (one kernel each way on CUDA, the bias
/// gradient's column sums fused into the backward). Equal to
/// gelu(add(x, bias), approx) up to rounding (for bf16, x + bias is not
/// rounded before the GELU).
template <class T>
Tensor<T> bias_gelu(const Tensor<T>& x, const Tensor<T>& bias, GeluApprox approx = GeluApprox::None) {
  const Device dev = ops::detail::same_device("bias_gelu", x, bias);
  VIT_CHECK(x.dim() >= 1 && bias.dim() == 1 && bias.shape()[0] == x.shape().back(),
            "bias_gelu: x ", x.shape(), " vs bias ", bias.shape(), " (need (..., C) and (C))");
  const int64_t C = bias.numel(), R = C == 0 ? 0 : x.numel() / C;
  Tensor<T> out = Tensor<T>::empty(x.shape(), dev);
  ops::bias_gelu_forward(dev, x.data(), bias.data(), out.data(), R, C, approx);
  if (autograd::needs_grad(x, bias)) {
    auto node = std::make_shared<detail::BiasGeluNode<T>>();
    node->x = x.detach();
    node->bias = bias.detach();
    node->approx = approx;
    autograd::attach(out, node, {&x, &bias});
  }
  return out;
}

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
