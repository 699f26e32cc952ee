// Multi-head self-attention as one fused op, timm layout:
//   qkv (B,N,3C) -> q,k,v per head h = columns [h·D, h·D+D) of each C-wide third
//   P = softmax(q·kᵀ·D^-½) per (b,h), context = P·v written back as (B,N,C).
// Replaces timm's reshape/permute/matmul/softmax/matmul/transpose chain with no
// copies of q, k, v: GEMMs read them in place through the row stride 3C.
// What the backward needs is the raw layer's choice per device: the CPU saves
// P (B,H,N,N), cheaper there than recomputing; the CUDA kernels save only the
// logsumexp (B,H,N) and the output, and recompute P tile by tile.
// Parallel over the B·H independent heads; each head's small GEMMs run on its
// thread: for float on AVX2 hosts at ViT sizes, register-blocked loops over the
// operands in place (detail/attention_avx2.hpp); otherwise ops::gemm, which is
// single-threaded inside a parallel region.
#pragma once

#include <cmath>
#include <type_traits>

#include "vit/cuda/attention.hpp"
#include "vit/ops/detail/attention_avx2.hpp"
#include "vit/ops/softmax.hpp"

namespace vit {
namespace ops {

namespace detail {
// Whether a head of N tokens and dim D takes the AVX2 small-product path.
template <class T>
bool attention_avx2_path(int64_t N, int64_t D, bool backward) {
#if VIT_HAVE_SGEMM_AVX2
  if constexpr (std::is_same_v<T, float>)
    return backward ? attention_avx2::supported_backward(N, D) : attention_avx2::supported(N, D);
#endif
  (void)N, (void)D, (void)backward;
  return false;
}
}  // namespace detail

// qkv: (B,N,3C) -> out: (B,N,C), probs: (B,H,N,N)
template <class T>
void attention_forward(const T* qkv, T* out, T* probs, int64_t B, int64_t N, int64_t C, int64_t H) {
  const int64_t D = C / H, ld = 3 * C;
  const T scale = T(1) / std::sqrt(static_cast<T>(D));
  [[maybe_unused]] const bool fast = detail::attention_avx2_path<T>(N, D, false);
#pragma omp parallel for schedule(static) if (B * H > 1 && B * H * N * N * D > 32768)
  for (int64_t bh = 0; bh < B * H; ++bh) {
    const int64_t b = bh / H, h = bh % H;
    const T* q = qkv + b * N * ld + h * D;
    const T* k = q + C;
    const T* v = q + 2 * C;
    T* p = probs + bh * N * N;
#if VIT_HAVE_SGEMM_AVX2
    if constexpr (std::is_same_v<T, float>) {
      if (fast) {
        detail::attention_avx2::forward_head(qkv, out, probs, bh, B, N, C, H, scale);
        continue;
      }
    }
#endif
    gemm<T>(false, true, N, N, D, scale, q, ld, k, ld, T(0), p, N);
    for (int64_t i = 0; i < N; ++i) softmax_row(p + i * N, N);
    gemm<T>(false, false, N, D, N, T(1), p, N, v, ld, T(0), out + b * N * C + h * D, C);
  }
}

// dout: (B,N,C) -> dqkv: (B,N,3C) written
template <class T>
void attention_backward(const T* dout, const T* qkv, const T* probs, T* dqkv, int64_t B, int64_t N,
                        int64_t C, int64_t H) {
  const int64_t D = C / H, ld = 3 * C;
  const T scale = T(1) / std::sqrt(static_cast<T>(D));
  [[maybe_unused]] const bool fast = detail::attention_avx2_path<T>(N, D, true);
#pragma omp parallel if (B * H > 1 && B * H * N * N * D > 32768)
  {
    thread_local std::vector<T> ds;  // dP, then dS, for one head; grows once
    if (!fast) ds.resize(static_cast<size_t>(N * N));
#pragma omp for schedule(static)
    for (int64_t bh = 0; bh < B * H; ++bh) {
      const int64_t b = bh / H, h = bh % H;
      const T* q = qkv + b * N * ld + h * D;
      const T* k = q + C;
      const T* v = q + 2 * C;
      const T* p = probs + bh * N * N;
      const T* g = dout + b * N * C + h * D;
      T* dq = dqkv + b * N * ld + h * D;
      T* dk = dq + C;
      T* dv = dq + 2 * C;
#if VIT_HAVE_SGEMM_AVX2
      if constexpr (std::is_same_v<T, float>) {
        if (fast) {
          detail::attention_avx2::backward_head(dout, qkv, probs, dqkv, bh, B, N, C, H, scale);
          continue;
        }
      }
#endif
      gemm<T>(true, false, N, D, N, T(1), p, N, g, C, T(0), dv, ld);          // dV = Pᵀ·dO
      gemm<T>(false, true, N, N, D, T(1), g, C, v, ld, T(0), ds.data(), N);  // dP = dO·Vᵀ
      for (int64_t i = 0; i < N; ++i)
        softmax_row_backward(p + i * N, ds.data() + i * N, ds.data() + i * N, N);  // dS
      gemm<T>(false, false, N, D, N, scale, ds.data(), N, k, ld, T(0), dq, ld);  // dQ = dS·K·s
      gemm<T>(true, false, N, D, N, scale, ds.data(), N, q, ld, T(0), dk, ld);   // dK = dSᵀ·Q·s
    }
  }
}

/// What attention_forward leaves for the backward: on the CPU `stats` is P
/// (B,H,N,N); on CUDA it is the logsumexp (B,H,N) and `out` the output.
template <class T>
struct AttentionSaved {
  Tensor<T> stats, out;
};

// qkv: (B,N,3C) -> out: (B,N,C) written, on qkv's device.
template <class T>
AttentionSaved<T> attention_forward(const Tensor<T>& qkv, const Tensor<T>& out, int64_t H) {
  const int64_t B = qkv.shape()[0], N = qkv.shape()[1], C = qkv.shape()[2] / 3;
  if (qkv.device() == Device::CUDA) {
    if constexpr (detail::kCudaFloat<T>) {
      Tensor<T> lse = Tensor<T>::empty({B, H, N}, Device::CUDA);
      cuda::attention_forward(qkv.data(), out.data(), lse.data(), B, N, C, H);
      return {lse, out.detach()};
    } else {
      detail::cuda_branch_missing("attention");
    }
  }
  Tensor<T> probs = Tensor<T>::empty({B, H, N, N});
  attention_forward(qkv.data(), out.data(), probs.data(), B, N, C, H);
  return {probs, {}};
}

// dout: (B,N,C) -> dqkv: (B,N,3C) written, from the forward's saved state.
template <class T>
void attention_backward(const T* dout, const Tensor<T>& qkv, const AttentionSaved<T>& saved,
                        T* dqkv, int64_t H) {
  const int64_t B = qkv.shape()[0], N = qkv.shape()[1], C = qkv.shape()[2] / 3;
  if (qkv.device() == Device::CUDA) {
    if constexpr (detail::kCudaFloat<T>)
      cuda::attention_backward(dout, qkv.data(), saved.out.data(), saved.stats.data(), dqkv, B, N, C, H);
    else detail::cuda_branch_missing("attention");
    return;
  }
  attention_backward(dout, qkv.data(), saved.stats.data(), dqkv, B, N, C, H);
}

}  // namespace ops

namespace detail {
template <class T>
struct AttentionNode : Node<T> {
  Tensor<T> qkv;
  ops::AttentionSaved<T> saved;
  int64_t heads = 1;
  const char* name() const override { return "attention"; }
  void backward(const Tensor<T>& dout) override {
    Tensor<T> dqkv = Tensor<T>::empty(qkv.shape(), qkv.device());
    ops::attention_backward(dout.data(), qkv, saved, dqkv.data(), heads);
    this->accumulate(0, dqkv);
  }
};
}  // namespace detail

/// Fused multi-head self-attention: qkv (B,N,3C) from the qkv Linear -> context (B,N,C).
template <class T>
Tensor<T> attention(const Tensor<T>& qkv, int64_t heads) {
  const Device dev = qkv.device();
  VIT_CHECK(qkv.dim() == 3 && qkv.shape()[2] % 3 == 0, "attention: qkv ", qkv.shape(),
            " (need B,N,3C)");
  const int64_t B = qkv.shape()[0], N = qkv.shape()[1], C = qkv.shape()[2] / 3;
  VIT_CHECK(heads > 0 && C % heads == 0, "attention: dim ", C, " is not divisible by ", heads, " heads");
  if (dev == Device::CUDA) {
    const int64_t D = C / heads;
    VIT_CHECK(D == 16 || D == 32 || D == 64, "attention: head dim ", D,
              " on cuda (the fused kernel takes 16, 32 or 64)");
  }
  Tensor<T> out = Tensor<T>::empty({B, N, C}, dev);
  ops::AttentionSaved<T> saved = ops::attention_forward(qkv, out, heads);
  if (autograd::needs_grad(qkv)) {
    auto node = std::make_shared<detail::AttentionNode<T>>();
    node->qkv = qkv.detach();
    node->saved = std::move(saved);
    node->heads = heads;
    autograd::attach(out, node, {&qkv});
  }
  return out;
}

}  // namespace vit
