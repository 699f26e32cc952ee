// Launchers of the fused attention kernels (kernels/attention.cuh): argument
// checks, dispatch on the head dim D (16/32/64, so inner loops unroll), the
// launch geometry shared with the emulated tests, and the delta scratch of the
// backward from the caching allocator. No host synchronisation, no cudaMalloc.
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

template <int D>
void forward(const float* qkv, float* out, float* lse, int64_t B, int64_t N, int64_t C, int64_t H) {
  const kernels::AttentionLaunch g = kernels::attention_forward_launch<D>(B, N, H);
  detail::launch(kernels::attention_forward_kernel<D>, g.grid, g.block, g.smem_bytes, qkv, out, lse, static_cast<int>(N), static_cast<int>(C), static_cast<int>(H), scale_of(D));
  VIT_CUDA_LAUNCH_CHECK();
}


template <int D>
void backward(const float* dout, const float* qkv, const float* out, const float* lse, float* dqkv, int64_t B,
              int64_t N, int64_t C, int64_t H) {
  const int n = static_cast<int>(N), c = static_cast<int>(C), h = static_cast<int>(H);
  detail::Scratch delta(static_cast<size_t>(B * H * N));  // (B,H,N)
  const kernels::AttentionLaunch gd = kernels::attention_delta_launch<D>(B, N, H);
  detail::launch(kernels::attention_delta_kernel<D>, gd.grid, gd.block, gd.smem_bytes, dout, out, delta.p, B * N * H, n, h);
  VIT_CUDA_LAUNCH_CHECK();
  const kernels::AttentionLaunch gq = kernels::attention_dq_launch<D>(B, N, H);
  detail::launch(kernels::attention_backward_dq_kernel<D>, gq.grid, gq.block, gq.smem_bytes, dout, qkv, lse, delta.p, dqkv, n, c, h, scale_of(D));
  VIT_CUDA_LAUNCH_CHECK();
  const kernels::AttentionLaunch gk = kernels::attention_dkv_launch<D>(B, N, H);
  detail::launch(kernels::attention_backward_dkv_kernel<D>, gk.grid, gk.block, gk.smem_bytes, dout, qkv, lse, delta.p, dqkv, n, c, h, scale_of(D));
  VIT_CUDA_LAUNCH_CHECK();
}

}  // namespace

void attention_forward(const float* qkv, float* out, float* lse, int64_t B, int64_t N, int64_t C, int64_t H) {
  const int64_t D = check_shape("cuda::attention_forward", B, N, C, H);
  VIT_CHECK(qkv && out && lse, "cuda::attention_forward: null pointer");
  switch (D) {
    case 16: return forward<16>(qkv, out, lse, B, N, C, H);
    case 32: return forward<32>(qkv, out, lse, B, N, C, H);
    default: return forward<64>(qkv, out, lse, B, N, C, H);
  }
}

void attention_backward(const float* dout, const float* qkv, const float* out, const float* lse, float* dqkv,
                        int64_t B, int64_t N, int64_t C, int64_t H) {
  const int64_t D = check_shape("cuda::attention_backward", B, N, C, H);
  VIT_CHECK(dout && qkv && out && lse && dqkv, "cuda::attention_backward: null pointer");
  switch (D) {
    case 16: return backward<16>(dout, qkv, out, lse, dqkv, B, N, C, H);
    case 32: return backward<32>(dout, qkv, out, lse, dqkv, B, N, C, H);
    default: return backward<64>(dout, qkv, out, lse, dqkv, B, N, C, H);
  }
}

}  // namespace vit::cuda
