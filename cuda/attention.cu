// Launchers of the fused attention kernels (kernels/attention.cuh): argument
// checks, dispatch on the head dim D (16/32/64, so inner loops unroll), the
// launch geometry shared with the emulated tests, and the delta scratch of the
// backward from the caching allocator. No host synchronisation, no cudaMalloc.
// attn_drop > 0 launches the kDrop instantiations with the keep threshold and
// scale computed here in double; attn_drop == 0 the kernels without dropout.
// bf16 storage, and float storage when allow_tf32() is on (head dims 32, 64,
// 80, 128), run the tensor-core kernels of kernels/attention_mma.cuh (one body,
// templated on the storage type); float with TF32 off stays exact fp32.
#include <climits>
#include <cmath>
#include <type_traits>

#include "common.cuh"
#include "kernels/attention.cuh"
#include "kernels/attention_mma.cuh"
#include "vit/cuda/attention.hpp"
#include "vit/cuda/runtime.hpp"

namespace vit::cuda {
namespace {

// Checks shared by forward and backward; returns D. `mma`: the tensor-core
// kernels (head dims 16, 32, 64, 80, 128), else the fp32 ones (16, 32, 64).
int64_t check_shape(const char* what, int64_t B, int64_t N, int64_t C, int64_t H, bool mma = false) {
  VIT_CHECK(B > 0 && N > 0 && C > 0 && H > 0, what, ": sizes B=", B, " N=", N, " C=", C, " H=", H,
            " must be positive");
  VIT_CHECK(C % H == 0, what, ": dim ", C, " is not divisible by ", H, " heads");
  const int64_t D = C / H;
  if (mma) {
    VIT_CHECK(D == 16 || D == 32 || D == 64 || D == 80 || D == 128, what, ": head dim ", D, " (C=", C, ", H=", H,
              ") is not supported by the tensor-core kernel (16, 32, 64, 80 or 128)");
  } else {
    VIT_CHECK(D == 16 || D == 32 || D == 64, what, ": head dim ", D, " (C=", C, ", H=", H,
              ") is not supported by the fp32 CUDA kernel (16, 32 or 64; 80 and 128 with TF32 allowed)");
  }
  // The kernels index tokens, channels and blocks in int; element offsets are int64.
  VIT_CHECK(N <= INT_MAX / 2 && 3 * C <= INT_MAX && B * H <= INT_MAX, what, ": sizes too large");
  VIT_CHECK(((N + 15) / 16) * B * H <= INT_MAX, what, ": too many blocks");  // 16-row tiles at most
  return D;
}

float scale_of(int64_t D) { return 1.0f / std::sqrt(static_cast<float>(D)); }

// The dropout arguments of the kernels; p == 0 gives the unused default.
kernels::AttentionDrop drop_args(const char* what, double p, uint64_t seed, uint64_t counter0,
                                 const uint64_t* counter_shift) {
  VIT_CHECK(p >= 0.0 && p < 1.0, what, ": attn_drop must be in [0, 1), got ", p);
  if (p == 0.0) return {};
  return {seed, counter0, kernels::keep_threshold(p),
          static_cast<float>(1.0 / (1.0 - p)), counter_shift};
}

template <int D, bool kDrop>
void forward(const float* qkv, float* out, float* lse, int64_t B, int64_t N, int64_t C, int64_t H,
             const kernels::AttentionDrop& drop) {
  const kernels::AttentionLaunch g = kernels::attention_forward_launch<D>(B, N, H);
  detail::launch(kernels::attention_forward_kernel<D, kDrop>, g.grid, g.block, g.smem_bytes, qkv, out, lse, static_cast<int>(N), static_cast<int>(C), static_cast<int>(H), scale_of(D), drop);
  VIT_CUDA_LAUNCH_CHECK();
}

template <int D, bool kDrop>
void backward(const float* dout, const float* qkv, const float* out, const float* lse, float* dqkv, int64_t B,
              int64_t N, int64_t C, int64_t H, const kernels::AttentionDrop& drop) {
  const int n = static_cast<int>(N), c = static_cast<int>(C), h = static_cast<int>(H);
  detail::Scratch delta(static_cast<size_t>(B * H * N));  // (B,H,N); with dropout still Σ dO·O
  const kernels::AttentionLaunch gd = kernels::attention_delta_launch<D>(B, N, H);
  detail::launch(kernels::attention_delta_kernel<D>, gd.grid, gd.block, gd.smem_bytes, dout, out, delta.p, B * N * H, n, h);
  VIT_CUDA_LAUNCH_CHECK();
  const kernels::AttentionLaunch gq = kernels::attention_dq_launch<D>(B, N, H);
  detail::launch(kernels::attention_backward_dq_kernel<D, kDrop>, gq.grid, gq.block, gq.smem_bytes, dout, qkv, lse, delta.p, dqkv, n, c, h, scale_of(D), drop);
  VIT_CUDA_LAUNCH_CHECK();
  const kernels::AttentionLaunch gk = kernels::attention_dkv_launch<D>(B, N, H);
  detail::launch(kernels::attention_backward_dkv_kernel<D, kDrop>, gk.grid, gk.block, gk.smem_bytes, dout, qkv, lse, delta.p, dqkv, n, c, h, scale_of(D), drop);
  VIT_CUDA_LAUNCH_CHECK();
}

template <bool kDrop>
void forward_d(int64_t D, const float* qkv, float* out, float* lse, int64_t B, int64_t N, int64_t C, int64_t H,
               const kernels::AttentionDrop& drop) {
  switch (D) {
    case 16: return forward<16, kDrop>(qkv, out, lse, B, N, C, H, drop);
    case 32: return forward<32, kDrop>(qkv, out, lse, B, N, C, H, drop);
    default: return forward<64, kDrop>(qkv, out, lse, B, N, C, H, drop);
  }
}

template <bool kDrop>
void backward_d(int64_t D, const float* dout, const float* qkv, const float* out, const float* lse, float* dqkv,
                int64_t B, int64_t N, int64_t C, int64_t H, const kernels::AttentionDrop& drop) {
  switch (D) {
    case 16: return backward<16, kDrop>(dout, qkv, out, lse, dqkv, B, N, C, H, drop);
    case 32: return backward<32, kDrop>(dout, qkv, out, lse, dqkv, B, N, C, H, drop);
    default: return backward<64, kDrop>(dout, qkv, out, lse, dqkv, B, N, C, H, drop);
  }
}

// ---- tensor-core kernels (kernels/attention_mma.cuh), storage T = bf16 or float (TF32)

template <class T, int D, bool kDrop>
void mma_forward(const T* qkv, T* out, float* lse, int64_t B, int64_t N, int64_t C, int64_t H,
                 const kernels::AttentionDrop& drop) {
  const kernels::AttentionLaunch g = kernels::attention_mma_forward_launch<T, D>(B, N, H);
  detail::launch(kernels::attention_mma_forward_kernel<T, D, kDrop>, g.grid, g.block, g.smem_bytes, qkv, out, lse,
                 static_cast<int>(N), static_cast<int>(C), static_cast<int>(H), scale_of(D), drop);
  VIT_CUDA_LAUNCH_CHECK();
}

template <class T, int D, bool kDrop>
void mma_backward(const T* dout, const T* qkv, const T* out, const float* lse, T* dqkv, int64_t B, int64_t N,
                  int64_t C, int64_t H, const kernels::AttentionDrop& drop) {
  const int n = static_cast<int>(N), c = static_cast<int>(C), h = static_cast<int>(H);
  detail::Scratch delta(static_cast<size_t>(B * H * N));  // (B,H,N) float; with dropout still Σ dO·O
  const kernels::AttentionLaunch gd = kernels::attention_mma_delta_launch(B, N, H);
  detail::launch(kernels::attention_mma_delta_kernel<T, D>, gd.grid, gd.block, gd.smem_bytes, dout, out, delta.p,
                 B * N * H, n, h);
  VIT_CUDA_LAUNCH_CHECK();
  const float* dl = delta.p;
  const kernels::AttentionLaunch gb = kernels::attention_mma_backward_launch<T, D>(B, N, H);
  detail::launch(kernels::attention_mma_dkv_kernel<T, D, kDrop>, gb.grid, gb.block, gb.smem_bytes, dout, qkv, lse,
                 dl, dqkv, n, c, h, scale_of(D), drop);
  VIT_CUDA_LAUNCH_CHECK();
  detail::launch(kernels::attention_mma_dq_kernel<T, D, kDrop>, gb.grid, gb.block, gb.smem_bytes, dout, qkv, lse,
                 dl, dqkv, n, c, h, scale_of(D), drop);
  VIT_CUDA_LAUNCH_CHECK();
}

template <class T, bool kDrop>
void mma_forward_d(int64_t D, const T* qkv, T* out, float* lse, int64_t B, int64_t N, int64_t C, int64_t H,
                   const kernels::AttentionDrop& drop) {
  switch (D) {
    case 16:  // bf16 only: float at D = 16 stays on the fp32 kernel (tf32_path)
      if constexpr (std::is_same_v<T, vit::bf16>) return mma_forward<T, 16, kDrop>(qkv, out, lse, B, N, C, H, drop);
      else vit::detail::throw_error(__FILE__, __LINE__, "cuda::attention_forward: no TF32 kernel for head dim 16");
    case 32: return mma_forward<T, 32, kDrop>(qkv, out, lse, B, N, C, H, drop);
    case 64: return mma_forward<T, 64, kDrop>(qkv, out, lse, B, N, C, H, drop);
    case 80: return mma_forward<T, 80, kDrop>(qkv, out, lse, B, N, C, H, drop);
    default: return mma_forward<T, 128, kDrop>(qkv, out, lse, B, N, C, H, drop);
  }
}

template <class T, bool kDrop>
void mma_backward_d(int64_t D, const T* dout, const T* qkv, const T* out, const float* lse, T* dqkv, int64_t B,
                    int64_t N, int64_t C, int64_t H, const kernels::AttentionDrop& drop) {
  switch (D) {
    case 16:  // bf16 only, as in mma_forward_d
      if constexpr (std::is_same_v<T, vit::bf16>)
        return mma_backward<T, 16, kDrop>(dout, qkv, out, lse, dqkv, B, N, C, H, drop);
      else vit::detail::throw_error(__FILE__, __LINE__, "cuda::attention_backward: no TF32 kernel for head dim 16");
    case 32: return mma_backward<T, 32, kDrop>(dout, qkv, out, lse, dqkv, B, N, C, H, drop);
    case 64: return mma_backward<T, 64, kDrop>(dout, qkv, out, lse, dqkv, B, N, C, H, drop);
    case 80: return mma_backward<T, 80, kDrop>(dout, qkv, out, lse, dqkv, B, N, C, H, drop);
    default: return mma_backward<T, 128, kDrop>(dout, qkv, out, lse, dqkv, B, N, C, H, drop);
  }
}

template <class T>
void mma_forward_all(const char* what, const T* qkv, T* out, float* lse, int64_t B, int64_t N, int64_t C,
                     int64_t H, double attn_drop, uint64_t seed, uint64_t counter0, const uint64_t* counter_shift) {
  const int64_t D = check_shape(what, B, N, C, H, true);
  VIT_CHECK(qkv && out && lse, what, ": null pointer");
  const kernels::AttentionDrop drop = drop_args(what, attn_drop, seed, counter0, counter_shift);
  if (attn_drop > 0.0) mma_forward_d<T, true>(D, qkv, out, lse, B, N, C, H, drop);
  else mma_forward_d<T, false>(D, qkv, out, lse, B, N, C, H, drop);
}

template <class T>
void mma_backward_all(const char* what, const T* dout, const T* qkv, const T* out, const float* lse, T* dqkv,
                      int64_t B, int64_t N, int64_t C, int64_t H, double attn_drop, uint64_t seed, uint64_t counter0,
                      const uint64_t* counter_shift) {
  const int64_t D = check_shape(what, B, N, C, H, true);
  VIT_CHECK(dout && qkv && out && lse && dqkv, what, ": null pointer");
  const kernels::AttentionDrop drop = drop_args(what, attn_drop, seed, counter0, counter_shift);
  if (attn_drop > 0.0) mma_backward_d<T, true>(D, dout, qkv, out, lse, dqkv, B, N, C, H, drop);
  else mma_backward_d<T, false>(D, dout, qkv, out, lse, dqkv, B, N, C, H, drop);
}

// Float storage takes the TF32 tensor-core kernels when TF32 is allowed and
// they cover D (head dim 16 stays on the fp32 kernel: too small for tensor cores to pay).
bool tf32_path(int64_t C, int64_t H) {
  if (!allow_tf32() || H <= 0 || C % H != 0) return false;
  const int64_t D = C / H;
  return D == 32 || D == 64 || D == 80 || D == 128;
}

}  // namespace

void attention_forward(const vit::bf16* qkv, vit::bf16* out, float* lse, int64_t B, int64_t N, int64_t C,
                       int64_t H, double attn_drop, uint64_t seed, uint64_t counter0, const uint64_t* counter_shift) {
  mma_forward_all("cuda::attention_forward (bf16)", qkv, out, lse, B, N, C, H, attn_drop, seed, counter0,
                  counter_shift);
}

void attention_backward(const vit::bf16* dout, const vit::bf16* qkv, const vit::bf16* out, const float* lse,
                        vit::bf16* dqkv, int64_t B, int64_t N, int64_t C, int64_t H, double attn_drop, uint64_t seed,
                        uint64_t counter0, const uint64_t* counter_shift) {
  mma_backward_all("cuda::attention_backward (bf16)", dout, qkv, out, lse, dqkv, B, N, C, H, attn_drop, seed,
                   counter0, counter_shift);
}

void attention_forward(const float* qkv, float* out, float* lse, int64_t B, int64_t N, int64_t C, int64_t H,
                       double attn_drop, uint64_t seed, uint64_t counter0,
                       const uint64_t* counter_shift) {
  if (tf32_path(C, H))
    return mma_forward_all("cuda::attention_forward (tf32)", qkv, out, lse, B, N, C, H, attn_drop, seed, counter0,
                           counter_shift);
  const int64_t D = check_shape("cuda::attention_forward", B, N, C, H);
  VIT_CHECK(qkv && out && lse, "cuda::attention_forward: null pointer");
  const kernels::AttentionDrop drop = drop_args("cuda::attention_forward", attn_drop, seed, counter0, counter_shift);
  if (attn_drop > 0.0) forward_d<true>(D, qkv, out, lse, B, N, C, H, drop);
  else forward_d<false>(D, qkv, out, lse, B, N, C, H, drop);
}

void attention_backward(const float* dout, const float* qkv, const float* out, const float* lse, float* dqkv,
                        int64_t B, int64_t N, int64_t C, int64_t H, double attn_drop, uint64_t seed,
                        uint64_t counter0, const uint64_t* counter_shift) {
  if (tf32_path(C, H))
    return mma_backward_all("cuda::attention_backward (tf32)", dout, qkv, out, lse, dqkv, B, N, C, H, attn_drop,
                            seed, counter0, counter_shift);
  const int64_t D = check_shape("cuda::attention_backward", B, N, C, H);
  VIT_CHECK(dout && qkv && out && lse && dqkv, "cuda::attention_backward: null pointer");
  const kernels::AttentionDrop drop = drop_args("cuda::attention_backward", attn_drop, seed, counter0, counter_shift);
  if (attn_drop > 0.0) backward_d<true>(D, dout, qkv, out, lse, dqkv, B, N, C, H, drop);
  else backward_d<false>(D, dout, qkv, out, lse, dqkv, B, N, C, H, drop);
}

}  // namespace vit::cuda
