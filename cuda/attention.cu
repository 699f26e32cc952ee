// Launchers of the fused attention kernels (kernels/attention.cuh): argument
// checks, dispatch on the head dim D (16/32/64, so inner loops unroll), the
// launch geometry shared with the emulated tests, and the delta scratch of the
// backward from the caching allocator. No host synchronisation, no cudaMalloc.
// attn_drop > 0 launches the kDrop instantiations with the keep threshold and
// scale computed here in double; attn_drop == 0 the kernels without dropout.
#include <climits>
#include <cmath>

#include "common.cuh"
#include "kernels/attention.cuh"
#include "vit/cuda/attention.hpp"

namespace vit::cuda {
namespace {

// Checks shared by forward and backward; returns D.
int64_t check_shape(const char* what, int64_t B, int64_t N, int64_t C, int64_t H) {
  VIT_CHECK(B > 0 && N > 0 && C > 0 && H > 0, what, ": sizes B=", B, " N=", N, " C=", C, " H=", H,
            " must be positive");
  VIT_CHECK(C % H == 0, what, ": dim ", C, " is not divisible by ", H, " heads");
  const int64_t D = C / H;
  VIT_CHECK(D == 16 || D == 32 || D == 64, what, ": head dim ", D, " (C=", C, ", H=", H,
            ") is not supported by the CUDA kernel (16, 32 or 64)");
  // The kernels index tokens, channels and blocks in int; element offsets are int64.
  VIT_CHECK(N <= INT_MAX / 2 && 3 * C <= INT_MAX && B * H <= INT_MAX, what, ": sizes too large");
  VIT_CHECK(((N + 31) / 32) * B * H <= INT_MAX, what, ": too many blocks");  // 32-row tiles at most
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

}  // namespace

void attention_forward(const float* qkv, float* out, float* lse, int64_t B, int64_t N, int64_t C, int64_t H,
                       double attn_drop, uint64_t seed, uint64_t counter0,
                       const uint64_t* counter_shift) {
  const int64_t D = check_shape("cuda::attention_forward", B, N, C, H);
  VIT_CHECK(qkv && out && lse, "cuda::attention_forward: null pointer");
  const kernels::AttentionDrop drop = drop_args("cuda::attention_forward", attn_drop, seed, counter0, counter_shift);
  if (attn_drop > 0.0) forward_d<true>(D, qkv, out, lse, B, N, C, H, drop);
  else forward_d<false>(D, qkv, out, lse, B, N, C, H, drop);
}

void attention_backward(const float* dout, const float* qkv, const float* out, const float* lse, float* dqkv,
                        int64_t B, int64_t N, int64_t C, int64_t H, double attn_drop, uint64_t seed,
                        uint64_t counter0, const uint64_t* counter_shift) {
  const int64_t D = check_shape("cuda::attention_backward", B, N, C, H);
  VIT_CHECK(dout && qkv && out && lse && dqkv, "cuda::attention_backward: null pointer");
  const kernels::AttentionDrop drop = drop_args("cuda::attention_backward", attn_drop, seed, counter0, counter_shift);
  if (attn_drop > 0.0) backward_d<true>(D, dout, qkv, out, lse, dqkv, B, N, C, H, drop);
  else backward_d<false>(D, dout, qkv, out, lse, dqkv, B, N, C, H, drop);
}

}  // namespace vit::cuda
