// Launchers of the fused flash-style attention kernels (cuda/attention.cu), the
// CUDA twin of include/vit/ops/attention.hpp. Unlike the CPU op, which saves the
// probabilities (B,H,N,N), the forward saves only lse (B,H,N) and the backward
// recomputes P from it. Device float pointers, all work on vit::cuda::stream();
// no CUDA header, so any C++ compiler can include this.
// Attention dropout (attn_drop > 0) is fused into the same kernels: each keeps
// P[b,h,i,j] when Generator(seed).uniform(counter0 + ((b·H + h)·N + i)·N + j)
// >= attn_drop (the CPU op's rule, so both devices draw one mask) and scales it
// by 1/(1-attn_drop); the mask is redrawn where it is used and never stored.
// attn_drop == 0 launches the kernels without dropout.
// Precision: float runs the exact fp32 kernels (kernels/attention.cuh, head
// dims 16, 32, 64) unless vit::cuda::allow_tf32() is on, when head dims 32,
// 64, 80 and 128 run the tensor-core kernels (kernels/attention_mma.cuh) on
// TF32 (m16n8k8, fp32 accumulation); the bf16 overloads always run the
// tensor-core kernels on bf16 operands (m16n8k16, fp32 accumulation, fp32
// softmax, lse float), head dims 16, 32, 64, 80, 128.
#pragma once

#include <cstdint>

#include "vit/core/bf16.hpp"

namespace vit::cuda {

// qkv: (B,N,3C) -> out: (B,N,C), lse: (B,H,N) = logsumexp over keys of the scaled
// scores of each query row (saved for backward; undropped). D = C/H must be 16,
// 32 or 64 (also 80, 128 with allow_tf32()); any N >= 1. 0 <= attn_drop < 1.
void attention_forward(const float* qkv, float* out, float* lse, int64_t B, int64_t N, int64_t C, int64_t H,
                       double attn_drop = 0, uint64_t seed = 0, uint64_t counter0 = 0,
                       const uint64_t* counter_shift = nullptr);

// dout: (B,N,C), with qkv, out and lse of the forward -> dqkv: (B,N,3C) written
// (every element). Deterministic: no atomics, bitwise repeatable. attn_drop,
// seed, counter0 and counter_shift must be the forward's. counter_shift: a
// device uint64 added to counter0 (how a replayed CUDA graph draws fresh
// masks), or null.
void attention_backward(const float* dout, const float* qkv, const float* out, const float* lse, float* dqkv,
                        int64_t B, int64_t N, int64_t C, int64_t H, double attn_drop = 0, uint64_t seed = 0,
                        uint64_t counter0 = 0, const uint64_t* counter_shift = nullptr);

// bf16 storage (qkv, out, dout, dqkv), float lse: the tensor-core kernels.
// D = C/H must be 16, 32, 64, 80 or 128; otherwise as the float launchers.
void attention_forward(const vit::bf16* qkv, vit::bf16* out, float* lse, int64_t B, int64_t N, int64_t C,
                       int64_t H, double attn_drop = 0, uint64_t seed = 0, uint64_t counter0 = 0,
                       const uint64_t* counter_shift = nullptr);
void attention_backward(const vit::bf16* dout, const vit::bf16* qkv, const vit::bf16* out, const float* lse,
                        vit::bf16* dqkv, int64_t B, int64_t N, int64_t C, int64_t H, double attn_drop = 0,
                        uint64_t seed = 0, uint64_t counter0 = 0, const uint64_t* counter_shift = nullptr);

/// Whether the CUDA attention takes head dim D for bf16 storage, or for float
/// with TF32 allowed or not (header-only: usable where no backend is linked).
inline bool attention_head_dim_supported(int64_t D, bool bf16, bool tf32) {
  const bool mma = D == 32 || D == 64 || D == 80 || D == 128;
  if (bf16) return mma || D == 16;
  return D == 16 || D == 32 || D == 64 || (tf32 && mma);
}

}  // namespace vit::cuda
