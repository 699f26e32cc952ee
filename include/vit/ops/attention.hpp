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
// Attention dropout (timm's attn_drop, training only) is fused in: the context
// is P'·v with P' = P ∘ mask/(1-p), the mask a pure function of (seed, counter,
// b, h, i, j) that the CUDA kernels redraw tile by tile, so neither device
// stores it. The CPU saves the undropped P and redraws the mask in backward.
// p == 0 runs exactly the code (and numerics) of attention without dropout.
// bf16 tensors: on AVX512-BF16 hosts the CPU multiplies bf16 pairs with
// float32 sums, softmax in float32, P and dS rounded to bf16 before their
// products (detail/attention_bf16.hpp), as the CUDA bf16 overloads of the
// launchers do on tensor cores; elsewhere it widens each head to float, runs
// the float op and rounds out (dqkv) once. The saved state stays float (P on
// the CPU, lse on CUDA).
#pragma once

#include <cmath>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "vit/core/bf16.hpp"
#include "vit/core/rng.hpp"
#include "vit/cuda/attention.hpp"
#include "vit/ops/detail/attention_avx2.hpp"
#include "vit/ops/detail/attention_bf16.hpp"
#include "vit/ops/detail/bf16_buffers.hpp"
#include "vit/ops/dispatch.hpp"
#include "vit/ops/dropout.hpp"  // dropout_counter_shift
#include "vit/ops/softmax.hpp"

namespace vit {
namespace ops {

/// Attention dropout on the probabilities: element (b,h,i,j) of P is kept, and
/// scaled by 1/(1-p), when Generator(seed).uniform(counter0 + ((b·H + h)·N + i)·N + j)
/// >= p (the same rule as dropout, so the CUDA kernels draw the same mask);
/// otherwise it is zeroed. p == 0: no dropout.
struct AttentionDropout {
  double p = 0;
  uint64_t seed = 0, counter0 = 0;
  // CUDA only: the device shift a replayed graph adds to counter0
  // (ops::dropout_counter_shift() at the forward), or null.
  const uint64_t* counter_shift = nullptr;
  bool active() const { return p > 0; }
};

namespace detail {
/// The mask rows of one head: (*this)(i, src, dst) writes dst[j] = src[j]·m_ij for
/// j < N, m_ij = 1/(1-p) kept or 0 dropped (src may be dst). As dropout, a
/// multiply: a NaN stays NaN when dropped. uniform(c) >= p is tested as
/// (bits(c) >> 11) >= ceil(p·2⁵³), the same decision exactly (p·2⁵³ is exact
/// and bits >> 11 an integer), in integers only, so the loop vectorises.
template <class T>
struct AttentionHeadMask {
  static constexpr bool active = true;
  Generator gen;
  uint64_t threshold;
  T keep_scale;
  uint64_t base;  // counter of (i, j) = (0, 0): counter0 + bh·N·N
  int64_t N;
  AttentionHeadMask(const AttentionDropout& d, int64_t bh, int64_t n)
      : gen(d.seed),
        threshold(static_cast<uint64_t>(std::ceil(d.p * 0x1.0p53))),
        keep_scale(static_cast<T>(1.0 / (1.0 - d.p))),
        base(d.counter0 + static_cast<uint64_t>(bh) * static_cast<uint64_t>(n * n)),
        N(n) {}
  void operator()(int64_t i, const T* src, T* dst) const {
    const Generator g = gen;  // a local copy: its seed stays in a register
    const uint64_t c = base + static_cast<uint64_t>(i * N), thr = threshold;
    const T ks = keep_scale;
#pragma omp simd
    for (int64_t j = 0; j < N; ++j)
      dst[j] = src[j] * ((g.bits(c + static_cast<uint64_t>(j)) >> 11) >= thr ? ks : T(0));
  }
};

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

#if VIT_HAVE_SGEMM_AVX2
// f(mask) with head bh's dropout mask, or with no_mask (the kernels' code
// without dropout) when p == 0: one place for the choice every per-head
// kernel call makes.
template <class F>
void with_head_mask(const AttentionDropout& drop, int64_t bh, int64_t N, F&& f) {
  if (drop.active()) {
    f(AttentionHeadMask<float>(drop, bh, N));
  } else {
    f(attention_avx2::no_mask{});
  }
}
#endif
}  // namespace detail

// qkv: (B,N,3C) -> out: (B,N,C), probs: (B,H,N,N) (undropped P, what backward takes)
template <class T>
void attention_forward(const T* qkv, T* out, T* probs, int64_t B, int64_t N, int64_t C, int64_t H,
                       const AttentionDropout& drop = {}) {
  const int64_t D = C / H, ld = 3 * C;
  const bool dropping = drop.active();
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
        detail::with_head_mask(drop, bh, N, [&](const auto& mask) {
          detail::attention_avx2::forward_head(qkv, out, probs, bh, B, N, C, H, scale, mask);
        });
        continue;
      }
    }
#endif
    gemm<T>(false, true, N, N, D, scale, q, ld, k, ld, T(0), p, N);
    for (int64_t i = 0; i < N; ++i) softmax_row(p + i * N, N);
    if (dropping) {  // context = P'·v, P' = P ∘ mask/(1-p) in a scratch; P stays saved
      thread_local std::vector<T> pd;  // grows once
      pd.resize(static_cast<size_t>(N * N));
      const detail::AttentionHeadMask<T> mask(drop, bh, N);
      for (int64_t i = 0; i < N; ++i) mask(i, p + i * N, pd.data() + i * N);
      gemm<T>(false, false, N, D, N, T(1), pd.data(), N, v, ld, T(0), out + b * N * C + h * D, C);
      continue;
    }
    gemm<T>(false, false, N, D, N, T(1), p, N, v, ld, T(0), out + b * N * C + h * D, C);
  }
}

// dout: (B,N,C) -> dqkv: (B,N,3C) written; probs and drop as given to the forward.
// With dropout: dV = P'ᵀ·dO, dP = (dO·Vᵀ) ∘ mask/(1-p), then the softmax
// backward with the undropped P.
template <class T>
void attention_backward(const T* dout, const T* qkv, const T* probs, T* dqkv, int64_t B, int64_t N,
                        int64_t C, int64_t H, const AttentionDropout& drop = {}) {
  const int64_t D = C / H, ld = 3 * C;
  const bool dropping = drop.active();
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
          detail::with_head_mask(drop, bh, N, [&](const auto& mask) {
            detail::attention_avx2::backward_head(dout, qkv, probs, dqkv, bh, B, N, C, H, scale, mask);
          });
          continue;
        }
      }
#endif
      if (dropping) {
        const detail::AttentionHeadMask<T> mask(drop, bh, N);
        for (int64_t i = 0; i < N; ++i) mask(i, p + i * N, ds.data() + i * N);        // P'
        gemm<T>(true, false, N, D, N, T(1), ds.data(), N, g, C, T(0), dv, ld);        // dV = P'ᵀ·dO
        gemm<T>(false, true, N, N, D, T(1), g, C, v, ld, T(0), ds.data(), N);         // dP' = dO·Vᵀ
        for (int64_t i = 0; i < N; ++i) mask(i, ds.data() + i * N, ds.data() + i * N);  // dP
      } else {
        gemm<T>(true, false, N, D, N, T(1), p, N, g, C, T(0), dv, ld);          // dV = Pᵀ·dO
        gemm<T>(false, true, N, N, D, T(1), g, C, v, ld, T(0), ds.data(), N);  // dP = dO·Vᵀ
      }
      for (int64_t i = 0; i < N; ++i)
        softmax_row_backward(p + i * N, ds.data() + i * N, ds.data() + i * N, N);  // dS
      gemm<T>(false, false, N, D, N, scale, ds.data(), N, k, ld, T(0), dq, ld);  // dQ = dS·K·s
      gemm<T>(true, false, N, D, N, scale, ds.data(), N, q, ld, T(0), dk, ld);   // dK = dSᵀ·Q·s
    }
  }
}

// bf16 storage on the CPU. With AVX512-BF16, at the shapes attention_bf16
// takes, each head runs on bf16 directly. Otherwise each head's q, k, v (and
// dout) are converted into a compact float (N, 3D) copy in the thread's
// scratch, the float head runs (the AVX2 small-product kernels where they
// apply), and its outputs are rounded once into the bf16 tensor. probs (the
// saved P) stays float either way. A head's dropout counters start at
// counter0 + bh·N·N, as in the batched call.
namespace detail {
// Copies the (N, D) column block at column `col` of a (N, ld) bf16 matrix into
// dst (N, ldd) as float, or back (rounding) with the other overload.
inline void head_block_widen(const bf16* src, int64_t ld, int64_t N, int64_t D, float* dst, int64_t ldd) {
  for (int64_t i = 0; i < N; ++i) widen_n(src + i * ld, dst + i * ldd, D);
}
inline void head_block_narrow(const float* src, int64_t lds, int64_t N, int64_t D, bf16* dst, int64_t ld) {
  for (int64_t i = 0; i < N; ++i) narrow_n(src + i * lds, dst + i * ld, D);
}
inline AttentionDropout head_dropout(const AttentionDropout& d, int64_t bh, int64_t N) {
  AttentionDropout h = d;
  h.counter0 = d.counter0 + static_cast<uint64_t>(bh) * static_cast<uint64_t>(N * N);
  return h;
}

// The portable bf16 path (any host, any shape): widen a head, run the float
// op, round its outputs once.
inline void attention_forward_widened(const bf16* qkv, bf16* out, float* probs, int64_t B, int64_t N,
                                      int64_t C, int64_t H, const AttentionDropout& drop) {
  const int64_t D = C / H, ld = 3 * C;
#pragma omp parallel for schedule(static) if (B * H > 1 && B * H * N * N * D > 32768)
  for (int64_t bh = 0; bh < B * H; ++bh) {
    const int64_t b = bh / H, h = bh % H;
    float* q = row_scratch(0, N * 3 * D);
    float* o = row_scratch(1, N * D);
    for (int part = 0; part < 3; ++part)
      head_block_widen(qkv + b * N * ld + part * C + h * D, ld, N, D, q + part * D, 3 * D);
    attention_forward<float>(q, o, probs + bh * N * N, 1, N, D, 1, head_dropout(drop, bh, N));
    head_block_narrow(o, D, N, D, out + b * N * C + h * D, C);
  }
}
inline void attention_backward_widened(const bf16* dout, const bf16* qkv, const float* probs, bf16* dqkv,
                                       int64_t B, int64_t N, int64_t C, int64_t H, const AttentionDropout& drop) {
  const int64_t D = C / H, ld = 3 * C;
#pragma omp parallel for schedule(static) if (B * H > 1 && B * H * N * N * D > 32768)
  for (int64_t bh = 0; bh < B * H; ++bh) {
    const int64_t b = bh / H, h = bh % H;
    float* q = row_scratch(0, N * 3 * D);
    float* g = row_scratch(1, N * D);
    float* d = row_scratch(2, N * 3 * D);
    for (int part = 0; part < 3; ++part)
      head_block_widen(qkv + b * N * ld + part * C + h * D, ld, N, D, q + part * D, 3 * D);
    head_block_widen(dout + b * N * C + h * D, C, N, D, g, D);
    attention_backward<float>(g, q, probs + bh * N * N, d, 1, N, D, 1, head_dropout(drop, bh, N));
    for (int part = 0; part < 3; ++part)
      head_block_narrow(d + part * D, 3 * D, N, D, dqkv + b * N * ld + part * C + h * D, ld);
  }
}
}  // namespace detail

inline void attention_forward(const bf16* qkv, bf16* out, float* probs, int64_t B, int64_t N, int64_t C,
                              int64_t H, const AttentionDropout& drop = {}) {
#if VIT_HAVE_ATTENTION_BF16
  const int64_t D = C / H;
  if (detail::attention_bf16::supported(N, D)) {
    const float scale = 1.0f / std::sqrt(static_cast<float>(D));
#pragma omp parallel for schedule(static) if (B * H > 1 && B * H * N * N * D > 32768)
    for (int64_t bh = 0; bh < B * H; ++bh)
      detail::with_head_mask(drop, bh, N, [&](const auto& mask) {
        detail::attention_bf16::forward_head(qkv, out, probs, bh, B, N, C, H, scale, mask);
      });
    return;
  }
#endif
  detail::attention_forward_widened(qkv, out, probs, B, N, C, H, drop);
}
inline void attention_backward(const bf16* dout, const bf16* qkv, const float* probs, bf16* dqkv, int64_t B,
                               int64_t N, int64_t C, int64_t H, const AttentionDropout& drop = {}) {
#if VIT_HAVE_ATTENTION_BF16
  const int64_t D = C / H;
  if (detail::attention_bf16::supported(N, D)) {
    const float scale = 1.0f / std::sqrt(static_cast<float>(D));
#pragma omp parallel for schedule(static) if (B * H > 1 && B * H * N * N * D > 32768)
    for (int64_t bh = 0; bh < B * H; ++bh)
      detail::with_head_mask(drop, bh, N, [&](const auto& mask) {
        detail::attention_bf16::backward_head(dout, qkv, probs, dqkv, bh, B, N, C, H, scale, mask);
      });
    return;
  }
#endif
  detail::attention_backward_widened(dout, qkv, probs, dqkv, B, N, C, H, drop);
}

/// What attention_forward leaves for the backward: on the CPU `stats` is the
/// undropped P (B,H,N,N); on CUDA it is the logsumexp (B,H,N) and `out` the
/// (dropped) output. `drop` redraws the dropout mask on either device. The
/// statistics are float for bf16 tensors (compute_t).
template <class T>
struct AttentionSaved {
  Tensor<compute_t<T>> stats;
  Tensor<T> out;
  AttentionDropout drop;
};

// qkv: (B,N,3C) -> out: (B,N,C) written, on qkv's device.
template <class T>
AttentionSaved<T> attention_forward(const Tensor<T>& qkv, const Tensor<T>& out, int64_t H,
                                    const AttentionDropout& drop = {}) {
  const int64_t B = qkv.shape()[0], N = qkv.shape()[1], C = qkv.shape()[2] / 3;
  if (qkv.device() == Device::CUDA) {
    if constexpr (detail::kCudaKernels<T>) {
      Tensor<compute_t<T>> lse = Tensor<compute_t<T>>::empty({B, H, N}, Device::CUDA);
      cuda::attention_forward(qkv.data(), out.data(), lse.data(), B, N, C, H, drop.p, drop.seed,
                              drop.counter0, drop.counter_shift);
      return {lse, out.detach(), drop};
    } else {
      detail::cuda_branch_missing("attention");
    }
  }
  Tensor<compute_t<T>> probs = Tensor<compute_t<T>>::empty({B, H, N, N});
  attention_forward(qkv.data(), out.data(), probs.data(), B, N, C, H, drop);
  return {probs, {}, drop};
}

// dout: (B,N,C) -> dqkv: (B,N,3C) written, from the forward's saved state.
template <class T>
void attention_backward(const T* dout, const Tensor<T>& qkv, const AttentionSaved<T>& saved,
                        T* dqkv, int64_t H) {
  const int64_t B = qkv.shape()[0], N = qkv.shape()[1], C = qkv.shape()[2] / 3;
  if (qkv.device() == Device::CUDA) {
    if constexpr (detail::kCudaKernels<T>)
      cuda::attention_backward(dout, qkv.data(), saved.out.data(), saved.stats.data(), dqkv, B, N, C,
                               H, saved.drop.p, saved.drop.seed, saved.drop.counter0,
                               saved.drop.counter_shift);
    else detail::cuda_branch_missing("attention");
    return;
  }
  attention_backward(dout, qkv.data(), saved.stats.data(), dqkv, B, N, C, H, saved.drop);
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

template <class T>
void check_attention_args(const Tensor<T>& qkv, int64_t heads) {
  VIT_CHECK(qkv.dim() == 3 && qkv.shape()[2] % 3 == 0, "attention: qkv ", qkv.shape(),
            " (need B,N,3C)");
  const int64_t C = qkv.shape()[2] / 3;
  VIT_CHECK(heads > 0 && C % heads == 0, "attention: dim ", C, " is not divisible by ", heads, " heads");
  if (qkv.device() == Device::CUDA) {
    const int64_t D = C / heads;
    // float: 80 and 128 need TF32 allowed, which the launcher checks.
    VIT_CHECK(cuda::attention_head_dim_supported(D, is_bf16_v<T>, true), "attention: head dim ", D,
              " on cuda (the fused kernels take 16, 32 or 64 in fp32; 16, 32, 64, 80 or 128 in bf16; 80, 128 also in TF32)");
  }
}

// The op on checked arguments; drop.p == 0 is attention without dropout.
template <class T>
Tensor<T> attention_checked(const Tensor<T>& qkv, int64_t heads, const ops::AttentionDropout& drop) {
  const int64_t B = qkv.shape()[0], N = qkv.shape()[1], C = qkv.shape()[2] / 3;
  Tensor<T> out = Tensor<T>::empty({B, N, C}, qkv.device());
  ops::AttentionSaved<T> saved = ops::attention_forward(qkv, out, heads, drop);
  if (autograd::needs_grad(qkv)) {
    auto node = std::make_shared<detail::AttentionNode<T>>();
    node->qkv = qkv.detach();
    node->saved = std::move(saved);
    node->heads = heads;
    autograd::attach(out, node, {&qkv});
  }
  return out;
}
}  // namespace detail

/// Fused multi-head self-attention: qkv (B,N,3C) from the qkv Linear -> context (B,N,C).
template <class T>
Tensor<T> attention(const Tensor<T>& qkv, int64_t heads) {
  detail::check_attention_args(qkv, heads);
  return detail::attention_checked(qkv, heads, ops::AttentionDropout{});
}

/// Attention with timm's attn_drop: in training, each attention probability
/// P[b,h,i,j] is zeroed with probability attn_drop and the rest scaled by
/// 1/(1-attn_drop) before P·v. Reserves B·H·N·N counters of `gen` (element
/// (b,h,i,j) draws counter c0 + ((b·H + h)·N + i)·N + j), the same on every
/// device. Outside training or at attn_drop == 0 it is attention(qkv, heads)
/// and draws nothing.
template <class T>
Tensor<T> attention(const Tensor<T>& qkv, int64_t heads, double attn_drop, bool training,
                    Generator& gen) {
  VIT_CHECK(attn_drop >= 0.0 && attn_drop < 1.0, "attention: attn_drop must be in [0, 1), got ",
            attn_drop);
  detail::check_attention_args(qkv, heads);
  if (!training || attn_drop == 0.0) return detail::attention_checked(qkv, heads, ops::AttentionDropout{});
  const int64_t B = qkv.shape()[0], N = qkv.shape()[1];
  const uint64_t c0 = gen.reserve(static_cast<uint64_t>(B * heads * N * N));
  return detail::attention_checked(
      qkv, heads, ops::AttentionDropout{attn_drop, gen.seed(), c0, ops::dropout_counter_shift()});
}

}  // namespace vit
