// Tensor-core fused attention, forward and backward, FlashAttention-2 style:
// the mma.sync twin of kernels/attention.cuh, for bf16 storage (mma m16n8k16,
// bf16 operands, fp32 accumulators) and for float storage on TF32 tensor cores
// (mma m16n8k8 tf32), one body templated on the storage type T through the
// operand policy MmaOps<T>. Same interface and semantics as attention.cuh:
// qkv (B,N,3C) -> out (B,N,C) + lse (B,H,N) float; head h owns columns h·D.. of
// each C-wide third; scale D^-½; any N; head dims 16, 32, 64, 80, 128.
//
// Forward (one block per 64-query tile and b·h, 4 warps, warp w owns query
// rows 16w..16w+15 of the tile): Q is staged through shared memory once and
// kept as mma A fragments in registers; K and V stream through shared memory
// in kKeys-row tiles (rows past N zero-filled); S = Q·Kᵀ on mma (B operand from
// K read with ldmatrix), scaled, keys past N set to -inf, online softmax in fp32
// registers (row max over the 4 lanes of a row group by xor-shuffles), P
// rounded to the operand type straight from its accumulator fragments (the C
// layout of two 16×8 tiles is the A layout of one 16×16), O += P·V on mma (B
// operand from V with ldmatrix.trans). lse = m + log l saved per query row.
// Backward, no atomics, bitwise deterministic (fixed reduction orders):
//   delta = rowsum(dO ∘ O) per (b,h,i), one warp per row;
//   dK/dV: one block per key tile (warp w owns 16 keys), iterating query
//     tiles: Sᵀ = K·Qᵀ, dPᵀ = V·dOᵀ, P = exp(s·scale − lse) recomputed,
//     dV += P'ᵀ·dO, dK += dSᵀ·Q with dS = P ∘ (m·dP − delta), dK·scale;
//   dQ: one block per query tile, iterating key tiles: S, dP as above,
//     dQ += dS·K, times scale.
// Dropout: the rule of attention.cuh: m_ij redrawn from the counter
// counter0 (+ shift) + (bh·N + i)·N + j wherever P_ij is used; l and lse are
// those of the undropped scores.
// Shared memory is static (< 48 KB): tile sizes shrink with D·sizeof(T)
// (FwdShape, BwdShape). Rows are padded by 16 bytes so the 8 row addresses of
// an ldmatrix (and the tf32 fragment loads) fall in distinct banks.
#pragma once

#include <cstddef>
#include <cstdint>

#include <cmath>

#include "attention.cuh"  // AttentionDrop, drop helpers, AttentionLaunch
#include "device_api.cuh"
#include "mma.cuh"
#include "vit/core/bf16.hpp"

// __launch_bounds__ on nvcc; the emulator has no registers.
#if defined(__CUDACC__) && !defined(VIT_CUDA_EMULATED)
#define VIT_LAUNCH_BOUNDS_MMA(threads) __launch_bounds__(threads)
#else
#define VIT_LAUNCH_BOUNDS_MMA(threads)
#endif

namespace vit::cuda::kernels {

namespace attention_mma {

VIT_DEVICE int lane_id() { return static_cast<int>(threadIdx.x) % kWarp; }

/// The operand policy: how 16×16 A tiles and pairs of 16×8 B tiles are read
/// from shared memory (row pitch ld elements) and fed to the mma of T.
template <class T>
struct MmaOps;

/// bf16: one m16n8k16 per (A, B); fragments through ldmatrix.
template <>
struct MmaOps<vit::bf16> {
  using T = vit::bf16;
  static constexpr int kPad = 8;  // 16 bytes
  struct A {
    uint32_t r[4];
  };
  struct B {
    uint32_t r[2];
  };
  /// A[m][k] = tile[m·ld + k], m, k < 16. Matrix i of the ldmatrix: rows
  /// 8·(i%2).., columns 8·(i/2)..: registers a[0..3] of the mma layout.
  static VIT_DEVICE void load_a(A& a, const T* tile, int ld) {
    const int l = lane_id(), i = l / 8;
    mma::ldmatrix_x4(a.r, tile + ((i % 2) * 8 + l % 8) * ld + (i / 2) * 8);
  }
  /// B_j[k][n] = tile[(8j + n)·ld + k], k < 16, n < 8, j = 0, 1 (K read for Q·Kᵀ).
  static VIT_DEVICE void load_b_nmajor(B& b0, B& b1, const T* tile, int ld) {
    const int l = lane_id(), i = l / 8;
    uint32_t r[4];
    mma::ldmatrix_x4(r, tile + ((i / 2) * 8 + l % 8) * ld + (i % 2) * 8);
    b0.r[0] = r[0], b0.r[1] = r[1], b1.r[0] = r[2], b1.r[1] = r[3];
  }
  /// B_j[k][n] = tile[k·ld + 8j + n] (V read for P·V), through ldmatrix.trans.
  /// Pairs with a_from_c (the k order of both is the plain one here).
  static VIT_DEVICE void load_b_kmajor(B& b0, B& b1, const T* tile, int ld) {
    const int l = lane_id(), i = l / 8;
    uint32_t r[4];
    mma::ldmatrix_x4_trans(r, tile + ((i % 2) * 8 + l % 8) * ld + (i / 2) * 8);
    b0.r[0] = r[0], b0.r[1] = r[1], b1.r[0] = r[2], b1.r[1] = r[3];
  }
  /// The A operand [c0 | c1]: two 16×8 accumulator tiles side by side as one
  /// 16×16 tile, rounded to bf16 (no data leaves the lane).
  static VIT_DEVICE void a_from_c(A& a, const float (&c0)[4], const float (&c1)[4]) {
    a.r[0] = mma::pack_bf16(c0[0], c0[1]);
    a.r[1] = mma::pack_bf16(c0[2], c0[3]);
    a.r[2] = mma::pack_bf16(c1[0], c1[1]);
    a.r[3] = mma::pack_bf16(c1[2], c1[3]);
  }
  static VIT_DEVICE void mma(float (&c)[4], const A& a, const B& b) { mma::mma_bf16_16816(c, a.r, b.r); }
};

/// float on TF32 tensor cores: two m16n8k8 per (A, B) (k halves h = 0, 1);
/// fragments read from shared memory one value at a time, rounded by to_tf32.
template <>
struct MmaOps<float> {
  using T = float;
  static constexpr int kPad = 4;  // 16 bytes
  struct A {
    uint32_t r[8];  // r[4h..4h+3]: the m16n8k8 A registers of k half h
  };
  struct B {
    uint32_t r[4];  // r[2h..2h+1]: the B registers of k half h
  };
  static VIT_DEVICE void load_a(A& a, const T* tile, int ld) {
    const int g = lane_id() / 4, t = lane_id() % 4;
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      a.r[4 * h + 0] = mma::to_tf32(tile[g * ld + 8 * h + t]);
      a.r[4 * h + 1] = mma::to_tf32(tile[(g + 8) * ld + 8 * h + t]);
      a.r[4 * h + 2] = mma::to_tf32(tile[g * ld + 8 * h + t + 4]);
      a.r[4 * h + 3] = mma::to_tf32(tile[(g + 8) * ld + 8 * h + t + 4]);
    }
  }
  static VIT_DEVICE void load_b_nmajor(B& b0, B& b1, const T* tile, int ld) {
    const int g = lane_id() / 4, t = lane_id() % 4;
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      b0.r[2 * h + 0] = mma::to_tf32(tile[g * ld + 8 * h + t]);
      b0.r[2 * h + 1] = mma::to_tf32(tile[g * ld + 8 * h + t + 4]);
      b1.r[2 * h + 0] = mma::to_tf32(tile[(8 + g) * ld + 8 * h + t]);
      b1.r[2 * h + 1] = mma::to_tf32(tile[(8 + g) * ld + 8 * h + t + 4]);
    }
  }
  /// k-major B in the permuted k order of a_from_c: within each k half, mma
  /// index κ = t stands for k = 2t and κ = t + 4 for k = 2t + 1, so the
  /// accumulator pairs (2t, 2t+1) a lane already holds are its A values and
  /// no shuffle is needed. The sum over k is the same sum.
  static VIT_DEVICE void load_b_kmajor(B& b0, B& b1, const T* tile, int ld) {
    const int g = lane_id() / 4, t = lane_id() % 4;
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      b0.r[2 * h + 0] = mma::to_tf32(tile[(8 * h + 2 * t) * ld + g]);
      b0.r[2 * h + 1] = mma::to_tf32(tile[(8 * h + 2 * t + 1) * ld + g]);
      b1.r[2 * h + 0] = mma::to_tf32(tile[(8 * h + 2 * t) * ld + 8 + g]);
      b1.r[2 * h + 1] = mma::to_tf32(tile[(8 * h + 2 * t + 1) * ld + 8 + g]);
    }
  }
  static VIT_DEVICE void a_from_c(A& a, const float (&c0)[4], const float (&c1)[4]) {
    a.r[0] = mma::to_tf32(c0[0]), a.r[1] = mma::to_tf32(c0[2]);
    a.r[2] = mma::to_tf32(c0[1]), a.r[3] = mma::to_tf32(c0[3]);
    a.r[4] = mma::to_tf32(c1[0]), a.r[5] = mma::to_tf32(c1[2]);
    a.r[6] = mma::to_tf32(c1[1]), a.r[7] = mma::to_tf32(c1[3]);
  }
  static VIT_DEVICE void mma(float (&c)[4], const A& a, const B& b) {
    const uint32_t a0[4] = {a.r[0], a.r[1], a.r[2], a.r[3]}, b0[2] = {b.r[0], b.r[1]};
    const uint32_t a1[4] = {a.r[4], a.r[5], a.r[6], a.r[7]}, b1[2] = {b.r[2], b.r[3]};
    mma::mma_tf32_1688(c, a0, b0);
    mma::mma_tf32_1688(c, a1, b1);
  }
};

constexpr int kSmemBudget = 46 * 1024;  // static shared memory per block, under the 48 KB limit

/// Forward: 64 query rows (4 warps), kKeys keys per shared tile.
template <class T, int D>
struct FwdShape {
  static_assert(D == 16 || D == 32 || D == 64 || D == 80 || D == 128,
                "attention (mma): head dim must be 16, 32, 64, 80 or 128");
  static constexpr int kWarps = 4, kRows = 16 * kWarps, kThreads = kWarp * kWarps;
  static constexpr int kLd = D + MmaOps<T>::kPad;
  static constexpr int kKeys = 2 * 64 * kLd * static_cast<int>(sizeof(T)) <= kSmemBudget ? 64 : 32;
  static_assert(2 * kKeys >= kRows, "the K/V buffer stages the Q tile first");
};

/// Backward: a block owns kOwn = 16·kWarps rows (keys for dK/dV, queries for
/// dQ) and iterates kTile-row tiles of the other side; the largest of
/// (4 warps, 64), (2, 32), (1, 16) whose four tiles fit kSmemBudget.
template <class T, int D>
struct BwdShape {
  static_assert(D == 16 || D == 32 || D == 64 || D == 80 || D == 128,
                "attention (mma): head dim must be 16, 32, 64, 80 or 128");
  static constexpr int kLd = D + MmaOps<T>::kPad;
  static constexpr int bytes(int warps, int tile) {
    return (2 * 16 * warps + 2 * tile) * kLd * static_cast<int>(sizeof(T)) + 2 * tile * 4;
  }
  static constexpr int kWarps = bytes(4, 64) <= kSmemBudget ? 4 : (bytes(2, 32) <= kSmemBudget ? 2 : 1);
  // The dK and dV accumulators take D registers a thread; Sᵀ and dPᵀ take
  // kTile/2 each: at D = 80 and 128 shorter tiles of the other side keep ptxas
  // (sm_90) from spilling, the dropout kernels included.
  static constexpr int kTileMax = D >= 128 ? 16 : (D >= 80 ? 32 : 64);
  static constexpr int kTileFit = kWarps == 4 ? 64 : (kWarps == 2 ? 32 : 16);
  static constexpr int kTile = kTileMax < kTileFit ? kTileMax : kTileFit;
  static constexpr int kOwn = 16 * kWarps, kThreads = kWarp * kWarps;
  static_assert(bytes(kWarps, kTile) <= kSmemBudget, "attention (mma): tiles do not fit shared memory");
};

/// dst[r·kLd + d] = src[(r0 + r)·ld + d] for r < rows, d < D; rows at or past
/// N become zeros. 16-byte vectors when `vec` (the source 16-byte aligned;
/// rows then are too, as ld·sizeof(T) and D·sizeof(T) are multiples of 16),
/// else scalars. Consecutive threads take consecutive 16-byte chunks.
template <class T, int D, int kLd, int kThreads>
VIT_DEVICE void stage(T* dst, const T* src, int64_t ld, int r0, int rows, int N, bool vec) {
  constexpr int kVec = 16 / static_cast<int>(sizeof(T)), kChunks = D / kVec;
  if (vec) {
    for (int e = static_cast<int>(threadIdx.x); e < rows * kChunks; e += kThreads) {
      const int r = e / kChunks, c = (e % kChunks) * kVec;
      float4 v{0.f, 0.f, 0.f, 0.f};
      if (r0 + r < N) v = *reinterpret_cast<const float4*>(src + static_cast<int64_t>(r0 + r) * ld + c);
      *reinterpret_cast<float4*>(dst + r * kLd + c) = v;
    }
  } else {
    for (int e = static_cast<int>(threadIdx.x); e < rows * D; e += kThreads) {
      const int r = e / D, c = e % D;
      dst[r * kLd + c] = r0 + r < N ? src[static_cast<int64_t>(r0 + r) * ld + c] : T(0.f);
    }
  }
}

VIT_DEVICE bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

/// Max (or sum) over the 4 lanes of a row group (lanes 4g..4g+3).
VIT_DEVICE float quad_max(float v) {
  v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 1));
  return fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 2));
}
VIT_DEVICE float quad_sum(float v) {
  v += __shfl_xor_sync(0xffffffffu, v, 1);
  return v + __shfl_xor_sync(0xffffffffu, v, 2);
}

}  // namespace attention_mma

/// Launch shapes shared by the launchers (cuda/attention.cu) and the emulated tests.
template <class T, int D>
inline AttentionLaunch attention_mma_forward_launch(int64_t B, int64_t N, int64_t H) {
  using S = attention_mma::FwdShape<T, D>;
  const int64_t tiles = (N + S::kRows - 1) / S::kRows;
  return {dim3(static_cast<unsigned>(tiles * B * H)), dim3(static_cast<unsigned>(S::kThreads)), 0};
}
/// dQ and dK/dV: one block per kOwn-row tile and b·h.
template <class T, int D>
inline AttentionLaunch attention_mma_backward_launch(int64_t B, int64_t N, int64_t H) {
  using S = attention_mma::BwdShape<T, D>;
  const int64_t tiles = (N + S::kOwn - 1) / S::kOwn;
  return {dim3(static_cast<unsigned>(tiles * B * H)), dim3(static_cast<unsigned>(S::kThreads)), 0};
}
/// delta: one warp per (b, n, h) row, 8 warps a block, grid-strided.
inline AttentionLaunch attention_mma_delta_launch(int64_t B, int64_t N, int64_t H) {
  int64_t blocks = (B * N * H + 7) / 8;
  blocks = blocks < 1 ? 1 : (blocks > (1 << 20) ? (1 << 20) : blocks);
  return {dim3(static_cast<unsigned>(blocks)), dim3(256), 0};
}

// qkv: (B,N,3C) -> out: (B,N,C), lse: (B,H,N). Block: attention_mma_forward_launch<T, D>.
template <class T, int D, bool kDrop = false>
VIT_KERNEL void VIT_LAUNCH_BOUNDS_MMA(128)
    attention_mma_forward_kernel(const T* __restrict__ qkv, T* __restrict__ out, float* __restrict__ lse, int N,
                                 int C, int H, float scale, [[maybe_unused]] AttentionDrop drop) {
  using namespace attention_mma;
  using Ops = MmaOps<T>;
  using S = FwdShape<T, D>;
  constexpr int kLd = S::kLd, kKeys = S::kKeys, kDc = D / 16, kNt = kKeys / 8;
  alignas(16) __shared__ T kv[2 * kKeys * kLd];  // K tile, then V tile; the Q tile first
  T* ks = kv;
  T* vs = kv + kKeys * kLd;

  const int tiles = (N + S::kRows - 1) / S::kRows;
  const int bh = static_cast<int>(blockIdx.x) / tiles, b = bh / H, h = bh % H;
  const int q0 = (static_cast<int>(blockIdx.x) % tiles) * S::kRows;
  const int warp = static_cast<int>(threadIdx.x) / kWarp, g = lane_id() / 4, t = lane_id() % 4;
  const int64_t ld = 3 * static_cast<int64_t>(C);
  const T* head = qkv + static_cast<int64_t>(b) * N * ld + static_cast<int64_t>(h) * D;
  const bool vec = aligned16(qkv);

  stage<T, D, kLd, S::kThreads>(kv, head, ld, q0, S::kRows, N, vec);
  __syncthreads();
  typename Ops::A qa[kDc];
#pragma unroll
  for (int kc = 0; kc < kDc; ++kc) Ops::load_a(qa[kc], kv + 16 * warp * kLd + 16 * kc, kLd);

  float o[D / 8][4];
#pragma unroll
  for (int j = 0; j < D / 8; ++j) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.f;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};  // rows g and g + 8: running max, sum
  const int row[2] = {q0 + 16 * warp + g, q0 + 16 * warp + g + 8};
  [[maybe_unused]] uint64_t drop_row[2] = {0, 0};
  if constexpr (kDrop) {
    drop_row[0] = attention_detail::drop_row_counter(drop, bh, row[0], N);
    drop_row[1] = attention_detail::drop_row_counter(drop, bh, row[1], N);
  }

  for (int k0 = 0; k0 < N; k0 += kKeys) {
    __syncthreads();  // every warp has its Q fragments / is done with the previous tile
    stage<T, D, kLd, S::kThreads>(ks, head + C, ld, k0, kKeys, N, vec);
    stage<T, D, kLd, S::kThreads>(vs, head + 2 * C, ld, k0, kKeys, N, vec);
    __syncthreads();
    float s[kNt][4];
#pragma unroll
    for (int j = 0; j < kNt; ++j) s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.f;
#pragma unroll
    for (int kc = 0; kc < kDc; ++kc) {
#pragma unroll
      for (int np = 0; np < kNt / 2; ++np) {
        typename Ops::B b0, b1;
        Ops::load_b_nmajor(b0, b1, ks + 16 * np * kLd + 16 * kc, kLd);
        Ops::mma(s[2 * np], qa[kc], b0);
        Ops::mma(s[2 * np + 1], qa[kc], b1);
      }
    }
    float mx[2] = {m[0], m[1]};
#pragma unroll
    for (int j = 0; j < kNt; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int key = k0 + 8 * j + 2 * t + (e & 1);
        const float v = key < N ? s[j][e] * scale : -INFINITY;  // a masked key weighs exp(-inf) = 0
        s[j][e] = v;
        mx[e / 2] = fmaxf(mx[e / 2], v);
      }
    float corr[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      // Key 0 is never masked: mx is finite from the first tile on, and the first
      // correction is exp(-inf) = 0 against zero accumulators.
      mx[r] = quad_max(mx[r]);
      corr[r] = expf(m[r] - mx[r]);
      m[r] = mx[r];
      l[r] *= corr[r];
    }
#pragma unroll
    for (int j = 0; j < D / 8; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) o[j][e] *= corr[e / 2];
#pragma unroll
    for (int j = 0; j < kNt; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        float p = expf(s[j][e] - m[e / 2]);
        l[e / 2] += p;  // this lane's part of the undropped normaliser
        if constexpr (kDrop)
          p *= attention_detail::drop_factor(drop, drop_row[e / 2] + static_cast<uint64_t>(k0 + 8 * j + 2 * t + (e & 1)));
        s[j][e] = p;
      }
#pragma unroll
    for (int kk = 0; kk < kKeys / 16; ++kk) {
      typename Ops::A pa;
      Ops::a_from_c(pa, s[2 * kk], s[2 * kk + 1]);
#pragma unroll
      for (int dp = 0; dp < D / 16; ++dp) {
        typename Ops::B b0, b1;
        Ops::load_b_kmajor(b0, b1, vs + 16 * kk * kLd + 16 * dp, kLd);
        Ops::mma(o[2 * dp], pa, b0);
        Ops::mma(o[2 * dp + 1], pa, b1);
      }
    }
  }
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    l[r] = quad_sum(l[r]);
    if (row[r] >= N) continue;
    const float inv = 1.f / l[r];
    T* orow = out + (static_cast<int64_t>(b) * N + row[r]) * C + static_cast<int64_t>(h) * D + 2 * t;
#pragma unroll
    for (int j = 0; j < D / 8; ++j) {
      orow[8 * j] = T(o[j][2 * r] * inv);
      orow[8 * j + 1] = T(o[j][2 * r + 1] * inv);
    }
    if (t == 0) lse[static_cast<int64_t>(bh) * N + row[r]] = m[r] + logf(l[r]);
  }
}

// dout, out: (B,N,C) -> delta: (B,H,N) float, delta = Σ_d dout·out per head row,
// fp32 math. Block: attention_mma_delta_launch. The (b,n,h) row is D
// contiguous values at ((b·N + n)·H + h)·D in both inputs.
template <class T, int D>
VIT_KERNEL void attention_mma_delta_kernel(const T* __restrict__ dout, const T* __restrict__ out,
                                           float* __restrict__ delta, int64_t rows, int N, int H) {
  const int lane = static_cast<int>(threadIdx.x) % kWarp;
  const int warps_per_block = static_cast<int>(blockDim.x) / kWarp;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * warps_per_block;
  for (int64_t r = static_cast<int64_t>(blockIdx.x) * warps_per_block + threadIdx.x / kWarp; r < rows; r += stride) {
    float acc = 0.f;
    for (int d = lane; d < D; d += kWarp) acc += float(dout[r * D + d]) * float(out[r * D + d]);
    acc = warp_sum(acc);
    if (lane == 0) {
      const int64_t bn = r / H, hh = r % H, b = bn / N, n = bn % N;
      delta[(b * H + hh) * N + n] = acc;
    }
  }
}

// dout: (B,N,C), qkv: (B,N,3C), lse, delta: (B,H,N) -> the dK and dV thirds of
// dqkv written. Block: attention_mma_backward_launch<T, D>; warp w owns keys
// 16w..16w+15 of the block's tile.
template <class T, int D, bool kDrop = false>
VIT_KERNEL void VIT_LAUNCH_BOUNDS_MMA((attention_mma::BwdShape<T, D>::kThreads))
    attention_mma_dkv_kernel(const T* __restrict__ dout, const T* __restrict__ qkv, const float* __restrict__ lse,
                             const float* __restrict__ delta, T* __restrict__ dqkv, int N, int C, int H, float scale,
                             [[maybe_unused]] AttentionDrop drop) {
  using namespace attention_mma;
  using Ops = MmaOps<T>;
  using S = BwdShape<T, D>;
  constexpr int kLd = S::kLd, kOwn = S::kOwn, kTile = S::kTile, kDc = D / 16, kNt = kTile / 8;
  alignas(16) __shared__ T ks[kOwn * kLd];
  alignas(16) __shared__ T vs[kOwn * kLd];
  alignas(16) __shared__ T qs[kTile * kLd];
  alignas(16) __shared__ T gs[kTile * kLd];
  __shared__ float lse_s[kTile], delta_s[kTile];

  const int tiles = (N + kOwn - 1) / kOwn;
  const int bh = static_cast<int>(blockIdx.x) / tiles, b = bh / H, h = bh % H;
  const int j0 = (static_cast<int>(blockIdx.x) % tiles) * kOwn;
  const int warp = static_cast<int>(threadIdx.x) / kWarp, g = lane_id() / 4, t = lane_id() % 4;
  const int64_t ld = 3 * static_cast<int64_t>(C);
  const T* head = qkv + static_cast<int64_t>(b) * N * ld + static_cast<int64_t>(h) * D;
  const T* g_head = dout + static_cast<int64_t>(b) * N * C + static_cast<int64_t>(h) * D;
  const bool vec = aligned16(qkv) && aligned16(dout);
  const int key[2] = {j0 + 16 * warp + g, j0 + 16 * warp + g + 8};

  stage<T, D, kLd, S::kThreads>(ks, head + C, ld, j0, kOwn, N, vec);
  stage<T, D, kLd, S::kThreads>(vs, head + 2 * C, ld, j0, kOwn, N, vec);
  const T* kw = ks + 16 * warp * kLd;  // this warp's 16 keys
  const T* vw = vs + 16 * warp * kLd;

  float dk[D / 8][4], dv[D / 8][4];
#pragma unroll
  for (int j = 0; j < D / 8; ++j)
#pragma unroll
    for (int e = 0; e < 4; ++e) dk[j][e] = dv[j][e] = 0.f;

  for (int q0 = 0; q0 < N; q0 += kTile) {
    __syncthreads();  // the previous tile is consumed
    stage<T, D, kLd, S::kThreads>(qs, head, ld, q0, kTile, N, vec);
    stage<T, D, kLd, S::kThreads>(gs, g_head, C, q0, kTile, N, vec);
    for (int i = static_cast<int>(threadIdx.x); i < kTile; i += S::kThreads) {
      const bool in = q0 + i < N;
      lse_s[i] = in ? lse[static_cast<int64_t>(bh) * N + q0 + i] : 0.f;
      delta_s[i] = in ? delta[static_cast<int64_t>(bh) * N + q0 + i] : 0.f;
    }
    __syncthreads();
    float st[kNt][4], dpt[kNt][4];  // Sᵀ and dPᵀ: 16 keys × kTile queries
#pragma unroll
    for (int j = 0; j < kNt; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) st[j][e] = dpt[j][e] = 0.f;
#pragma unroll
    for (int kc = 0; kc < kDc; ++kc) {
      typename Ops::A ka, va;
      Ops::load_a(ka, kw + 16 * kc, kLd);
      Ops::load_a(va, vw + 16 * kc, kLd);
#pragma unroll
      for (int np = 0; np < kNt / 2; ++np) {
        typename Ops::B b0, b1;
        Ops::load_b_nmajor(b0, b1, qs + 16 * np * kLd + 16 * kc, kLd);
        Ops::mma(st[2 * np], ka, b0);
        Ops::mma(st[2 * np + 1], ka, b1);
        Ops::load_b_nmajor(b0, b1, gs + 16 * np * kLd + 16 * kc, kLd);
        Ops::mma(dpt[2 * np], va, b0);
        Ops::mma(dpt[2 * np + 1], va, b1);
      }
    }
#pragma unroll
    for (int j = 0; j < kNt; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int i = 8 * j + 2 * t + (e & 1);  // query within the tile
        const float p = q0 + i < N ? expf(st[j][e] * scale - lse_s[i]) : 0.f;
        float dp = dpt[j][e], pv = p;
        if constexpr (kDrop) {
          const float f = attention_detail::drop_factor(
              drop, attention_detail::drop_row_counter(drop, bh, q0 + i, N) + static_cast<uint64_t>(key[e / 2]));
          dp *= f;
          pv *= f;
        }
        st[j][e] = pv;                      // P'ᵀ, the weight of dO_i in dV_j
        dpt[j][e] = p * (dp - delta_s[i]);  // dSᵀ
      }
#pragma unroll
    for (int kk = 0; kk < kTile / 16; ++kk) {
      typename Ops::A pa, da;
      Ops::a_from_c(pa, st[2 * kk], st[2 * kk + 1]);
      Ops::a_from_c(da, dpt[2 * kk], dpt[2 * kk + 1]);
#pragma unroll
      for (int dp = 0; dp < D / 16; ++dp) {
        typename Ops::B b0, b1;
        Ops::load_b_kmajor(b0, b1, gs + 16 * kk * kLd + 16 * dp, kLd);
        Ops::mma(dv[2 * dp], pa, b0);
        Ops::mma(dv[2 * dp + 1], pa, b1);
        Ops::load_b_kmajor(b0, b1, qs + 16 * kk * kLd + 16 * dp, kLd);
        Ops::mma(dk[2 * dp], da, b0);
        Ops::mma(dk[2 * dp + 1], da, b1);
      }
    }
  }
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    if (key[r] >= N) continue;
    T* o = dqkv + (static_cast<int64_t>(b) * N + key[r]) * ld + static_cast<int64_t>(h) * D + 2 * t;
#pragma unroll
    for (int j = 0; j < D / 8; ++j) {
      o[C + 8 * j] = T(dk[j][2 * r] * scale);
      o[C + 8 * j + 1] = T(dk[j][2 * r + 1] * scale);
      o[2 * C + 8 * j] = T(dv[j][2 * r]);
      o[2 * C + 8 * j + 1] = T(dv[j][2 * r + 1]);
    }
  }
}

// dout: (B,N,C), qkv: (B,N,3C), lse, delta: (B,H,N) -> the dQ third of dqkv
// written. Block: attention_mma_backward_launch<T, D>; warp w owns queries
// 16w..16w+15 of the block's tile.
template <class T, int D, bool kDrop = false>
VIT_KERNEL void VIT_LAUNCH_BOUNDS_MMA((attention_mma::BwdShape<T, D>::kThreads))
    attention_mma_dq_kernel(const T* __restrict__ dout, const T* __restrict__ qkv, const float* __restrict__ lse,
                            const float* __restrict__ delta, T* __restrict__ dqkv, int N, int C, int H, float scale,
                            [[maybe_unused]] AttentionDrop drop) {
  using namespace attention_mma;
  using Ops = MmaOps<T>;
  using S = BwdShape<T, D>;
  constexpr int kLd = S::kLd, kOwn = S::kOwn, kTile = S::kTile, kDc = D / 16, kNt = kTile / 8;
  alignas(16) __shared__ T qs[kOwn * kLd];
  alignas(16) __shared__ T gs[kOwn * kLd];
  alignas(16) __shared__ T ks[kTile * kLd];
  alignas(16) __shared__ T vs[kTile * kLd];

  const int tiles = (N + kOwn - 1) / kOwn;
  const int bh = static_cast<int>(blockIdx.x) / tiles, b = bh / H, h = bh % H;
  const int i0 = (static_cast<int>(blockIdx.x) % tiles) * kOwn;
  const int warp = static_cast<int>(threadIdx.x) / kWarp, g = lane_id() / 4, t = lane_id() % 4;
  const int64_t ld = 3 * static_cast<int64_t>(C);
  const T* head = qkv + static_cast<int64_t>(b) * N * ld + static_cast<int64_t>(h) * D;
  const T* g_head = dout + static_cast<int64_t>(b) * N * C + static_cast<int64_t>(h) * D;
  const bool vec = aligned16(qkv) && aligned16(dout);
  const int row[2] = {i0 + 16 * warp + g, i0 + 16 * warp + g + 8};
  float row_lse[2], row_delta[2];
  [[maybe_unused]] uint64_t drop_row[2] = {0, 0};
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    row_lse[r] = row[r] < N ? lse[static_cast<int64_t>(bh) * N + row[r]] : 0.f;
    row_delta[r] = row[r] < N ? delta[static_cast<int64_t>(bh) * N + row[r]] : 0.f;
    if constexpr (kDrop) drop_row[r] = attention_detail::drop_row_counter(drop, bh, row[r], N);
  }

  stage<T, D, kLd, S::kThreads>(qs, head, ld, i0, kOwn, N, vec);
  stage<T, D, kLd, S::kThreads>(gs, g_head, C, i0, kOwn, N, vec);
  const T* qw = qs + 16 * warp * kLd;
  const T* gw = gs + 16 * warp * kLd;

  float dq[D / 8][4];
#pragma unroll
  for (int j = 0; j < D / 8; ++j) dq[j][0] = dq[j][1] = dq[j][2] = dq[j][3] = 0.f;

  for (int k0 = 0; k0 < N; k0 += kTile) {
    __syncthreads();
    stage<T, D, kLd, S::kThreads>(ks, head + C, ld, k0, kTile, N, vec);
    stage<T, D, kLd, S::kThreads>(vs, head + 2 * C, ld, k0, kTile, N, vec);
    __syncthreads();
    float s[kNt][4], dp[kNt][4];
#pragma unroll
    for (int j = 0; j < kNt; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) s[j][e] = dp[j][e] = 0.f;
#pragma unroll
    for (int kc = 0; kc < kDc; ++kc) {
      typename Ops::A qa, ga;
      Ops::load_a(qa, qw + 16 * kc, kLd);
      Ops::load_a(ga, gw + 16 * kc, kLd);
#pragma unroll
      for (int np = 0; np < kNt / 2; ++np) {
        typename Ops::B b0, b1;
        Ops::load_b_nmajor(b0, b1, ks + 16 * np * kLd + 16 * kc, kLd);
        Ops::mma(s[2 * np], qa, b0);
        Ops::mma(s[2 * np + 1], qa, b1);
        Ops::load_b_nmajor(b0, b1, vs + 16 * np * kLd + 16 * kc, kLd);
        Ops::mma(dp[2 * np], ga, b0);
        Ops::mma(dp[2 * np + 1], ga, b1);
      }
    }
#pragma unroll
    for (int j = 0; j < kNt; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int kj = k0 + 8 * j + 2 * t + (e & 1);
        const float p = kj < N ? expf(s[j][e] * scale - row_lse[e / 2]) : 0.f;
        float d = dp[j][e];
        if constexpr (kDrop) d *= attention_detail::drop_factor(drop, drop_row[e / 2] + static_cast<uint64_t>(kj));
        s[j][e] = p * (d - row_delta[e / 2]);  // dS
      }
#pragma unroll
    for (int kk = 0; kk < kTile / 16; ++kk) {
      typename Ops::A da;
      Ops::a_from_c(da, s[2 * kk], s[2 * kk + 1]);
#pragma unroll
      for (int dd = 0; dd < D / 16; ++dd) {
        typename Ops::B b0, b1;
        Ops::load_b_kmajor(b0, b1, ks + 16 * kk * kLd + 16 * dd, kLd);
        Ops::mma(dq[2 * dd], da, b0);
        Ops::mma(dq[2 * dd + 1], da, b1);
      }
    }
  }
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    if (row[r] >= N) continue;
    T* o = dqkv + (static_cast<int64_t>(b) * N + row[r]) * ld + static_cast<int64_t>(h) * D + 2 * t;
#pragma unroll
    for (int j = 0; j < D / 8; ++j) {
      o[8 * j] = T(dq[j][2 * r] * scale);
      o[8 * j + 1] = T(dq[j][2 * r + 1] * scale);
    }
  }
}

}  // namespace vit::cuda::kernels
