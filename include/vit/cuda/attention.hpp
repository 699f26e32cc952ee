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
#pragma once

#include <cstdint>

namespace vit::cuda {

// qkv: (B,N,3C) -> out: (B,N,C), lse: (B,H,N) = logsumexp over keys of the scaled
// scores of each query row (saved for backward; undropped). D = C/H must be 16,
// 32 or 64; any N >= 1. 0 <= attn_drop < 1.
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

}  // namespace vit::cuda
