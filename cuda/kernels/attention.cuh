// Fused multi-head self-attention, flash-style, forward and backward; the CUDA
// twin of include/vit/ops/attention.hpp (timm layout: qkv (B,N,3C), head h owns
// columns h·D.. of each C-wide third, out (B,N,C), scale D^-½, no mask).
//
// Forward: one block per (64-query tile, b·h). Each query row is owned by R
// adjacent threads (R = 1 for D <= 32, 2 for D = 64), each holding a D/R slice
// of q and of the output accumulator in registers. K and V stream through
// shared memory in 64-key tiles; scores are formed 16 keys at a time and folded
// into an online softmax (running max m, running sum l), so the N×N score
// matrix never exists anywhere. The forward saves lse = m + log l per query row.
// Backward (three kernels, no atomics, bitwise deterministic):
//   delta = rowsum(dout ∘ out) per (b,h,query);
//   dQ  per query tile, iterating key tiles:    dq += dS·K;
//   dKV per key tile,   iterating query tiles:  dv += Pᵀ·dO, dk += dSᵀ·Q;
// with P = exp(S − lse) recomputed from the saved lse and dS = P ∘ (dO·Vᵀ − delta);
// both hold 16-wide slices (R = D/16), dKV owns 32 key rows a block at D = 64.
// Rows staged past N are zeros, which already makes their backward terms zero;
// the forward must mask them (a zero score is not a zero weight).
// Attention dropout (kDrop = true; false compiles to the kernels without it):
// each kernel redraws the keep decision of (i, j) where it uses P_ij, from
// vit::Generator's hash of counter0 + (bh·N + i)·N + j, and
// multiplies by m_ij = keep_scale or 0. The forward's normaliser l and lse
// stay those of the undropped scores; only the accumulated P·v is dropped. In
// the backward delta = Σ dO·O still equals Σ_j P_ij·dP_ij with the dropped O;
// dV accumulates P' = P·m, and dS = P ∘ (m·(dO·Vᵀ) − delta).
// Float32 FMA throughout: no tensor cores, no shared-memory score tile, no
// dynamic shared memory (every kernel stays under the 48 KB static limit).
#pragma once

#include <cstddef>
#include <cstdint>

#include <cmath>

#include "device_api.cuh"
#include "rng.cuh"

// Register cap for ptxas (see RowSplit::kMinBlocks); the emulator has no registers.
#ifdef __CUDACC__
#define VIT_ATTENTION_BOUNDS(Split) __launch_bounds__(Split::kThreads, Split::kMinBlocks)
#else
#define VIT_ATTENTION_BOUNDS(Split)
#endif

namespace vit::cuda::kernels {

namespace attention_detail {

constexpr int kTile = 64;   // rows of the other side staged in shared memory per step
constexpr int kChunk = 16;  // forward: scores held in registers at once (unrolled)

/// How a block's threads own rows: kRows rows (queries, or keys for dK/dV), each
/// shared by R adjacent lanes holding a DS = D/R column slice, DS <= kSlice,
/// which bounds the per-thread register arrays (q, accumulators). kMaxRegs caps
/// registers through __launch_bounds__ (minimum blocks per SM = 65536 registers
/// / (threads · kMaxRegs)): uncapped, ptxas hoists shared loads of the unrolled
/// loops into up to 255 registers and occupancy drops to one block per SM.
/// With these caps ptxas (CUDA 13, sm_90) spills nothing; 128 everywhere would
/// spill a few bytes in the forward and dK/dV.
template <int D, int kSlice, int kRowsPerBlock, int kMaxRegs>
struct RowSplit {
  static_assert(D == 16 || D == 32 || D == 64, "attention: head dim must be 16, 32 or 64");
  static constexpr int R = D <= kSlice ? 1 : D / kSlice;
  static constexpr int DS = D / R;
  static constexpr int kRows = kRowsPerBlock;
  static constexpr int kThreads = kRows * R;
  static constexpr int kMinBlocks = 65536 / (kThreads * kMaxRegs) < 1 ? 1 : 65536 / (kThreads * kMaxRegs);
};
// forward: q, acc (2 arrays); dQ: q, dout, dq (3); dK/dV: k, v, dk, dv (4).
template <int D> using ForwardSplit = RowSplit<D, 32, 64, 168>;
template <int D> using DqSplit = RowSplit<D, 16, 64, 128>;
template <int D> using DkvSplit = RowSplit<D, 16, D == 64 ? 32 : 64, 168>;

/// Column of a thread's t-th owned element, relative to part·4: groups of four
/// columns alternate between the R threads of a row, so that the R threads
/// read adjacent 16 bytes of a shared row (one bank wavefront, no conflict)
/// instead of addresses 128 bytes apart in the same banks.
template <int R>
VIT_DEVICE constexpr int slice_col(int t) { return (t / 4) * R * 4 + t % 4; }

/// Copies rows [t0, t0 + kTile) of one head's D columns (src points at token 0,
/// row stride ld) into dst [kTile][D]; rows at or past N become zeros so every
/// later read is of defined data. Consecutive threads take consecutive columns
/// (coalesced global loads, conflict-free shared stores).
template <int D, int kThreads>
VIT_DEVICE void stage_rows(float* dst, const float* src, int64_t ld, int t0, int N) {
  // Only partly unrolled: fully unrolled, the compiler hoists every
  // iteration's (tile-invariant) 64-bit offset out of the tile loop, and those
  // dozens of live registers spill.
#pragma unroll 4
  for (int i = 0; i < kTile * D / kThreads; ++i) {
    const int e = static_cast<int>(threadIdx.x) + i * kThreads;
    const int j = e / D, d = e % D;
    dst[e] = t0 + j < N ? src[static_cast<int64_t>(t0 + j) * ld + d] : 0.f;
  }
}

/// Sum over the R threads that share a row (adjacent lanes); every lane takes
/// part, as a full-warp shuffle requires.
template <int R>
VIT_DEVICE float row_sum(float v) {
#pragma unroll
  for (int m = 1; m < R; m *= 2) v += __shfl_xor_sync(0xffffffffu, v, m);
  return v;
}

}  // namespace attention_detail

/// Attention dropout's arguments (host-computed, passed by value): P_ij is kept
/// when (generator_bits(seed, counter0 + (bh·N + i)·N + j) >> 11) >= threshold
/// (= Generator::uniform >= p) and then scaled by keep_scale. Unused by the
/// kDrop = false kernels.
struct AttentionDrop {
  uint64_t seed = 0, counter0 = 0, threshold = 0;
  float keep_scale = 1.f;
  // A device value added to counter0 (a replayed CUDA graph's shift), or null.
  const uint64_t* counter_shift = nullptr;
};

namespace attention_detail {

/// m_ij for counter c: keep_scale if kept, else 0.
VIT_DEVICE float drop_factor(const AttentionDrop& d, uint64_t c) {
  return (generator_bits(d.seed, c) >> 11) >= d.threshold ? d.keep_scale : 0.f;
}
/// The counter of (bh, i, j = 0).
VIT_DEVICE uint64_t drop_row_counter(const AttentionDrop& d, int bh, int i, int N) {
  return d.counter0 + (d.counter_shift ? *d.counter_shift : 0) + (static_cast<uint64_t>(bh) * static_cast<uint64_t>(N) + static_cast<uint64_t>(i)) *
                          static_cast<uint64_t>(N);
}
}  // namespace attention_detail

/// Launch shape shared by the launchers (cuda/attention.cu) and the emulated tests.
struct AttentionLaunch {
  dim3 grid, block;
  size_t smem_bytes;  // dynamic shared memory: none, all tiles are static
};

/// Forward, dQ and dK/dV kernels: one block per (Split::kRows-row tile, b·h), flattened
/// as blockIdx.x = bh·tiles + tile so the tiles of one head run side by side
/// (its K/V or Q/dO stay in L2) and B·H is not bound by gridDim.y's 65535.
template <class Split>
inline AttentionLaunch attention_tile_launch(int64_t B, int64_t N, int64_t H) {
  const int64_t tiles = (N + Split::kRows - 1) / Split::kRows;
  return {dim3(static_cast<unsigned>(tiles * B * H)), dim3(static_cast<unsigned>(Split::kThreads)), 0};
}
template <int D>
inline AttentionLaunch attention_forward_launch(int64_t B, int64_t N, int64_t H) {
  return attention_tile_launch<attention_detail::ForwardSplit<D>>(B, N, H);
}
template <int D>
inline AttentionLaunch attention_dq_launch(int64_t B, int64_t N, int64_t H) {
  return attention_tile_launch<attention_detail::DqSplit<D>>(B, N, H);
}
template <int D>
inline AttentionLaunch attention_dkv_launch(int64_t B, int64_t N, int64_t H) {
  return attention_tile_launch<attention_detail::DkvSplit<D>>(B, N, H);
}

/// delta kernel: 256-thread blocks, one warp per row group, grid-strided.
template <int D>
inline AttentionLaunch attention_delta_launch(int64_t B, int64_t N, int64_t H) {
  constexpr int kRowsPerWarp = D < kWarp ? kWarp / D : 1;
  const int64_t groups = (B * N * H + kRowsPerWarp - 1) / kRowsPerWarp;
  int64_t blocks = (groups + 7) / 8;
  blocks = blocks < 1 ? 1 : (blocks > (1 << 20) ? (1 << 20) : blocks);
  return {dim3(static_cast<unsigned>(blocks)), dim3(256), 0};
}

// The block's owned row (query or key), in the layout of attention_tile_launch.
struct TileRow {
  int bh, b, h, row, part;
  bool valid;  // rows past N compute on zeros and write nothing
};
template <class Split>
VIT_DEVICE TileRow tile_row(int N, int H) {
  const int tiles = (N + Split::kRows - 1) / Split::kRows;
  TileRow r;
  r.bh = static_cast<int>(blockIdx.x) / tiles;
  r.b = r.bh / H;
  r.h = r.bh % H;
  r.row = (static_cast<int>(blockIdx.x) % tiles) * Split::kRows + static_cast<int>(threadIdx.x) / Split::R;
  r.part = static_cast<int>(threadIdx.x) % Split::R;
  r.valid = r.row < N;
  return r;
}

// qkv: (B,N,3C) -> out: (B,N,C), lse: (B,H,N). Block: attention_forward_launch<D>.
template <int D, bool kDrop = false>
VIT_KERNEL void VIT_ATTENTION_BOUNDS(attention_detail::ForwardSplit<D>)
    attention_forward_kernel(const float* __restrict__ qkv, float* __restrict__ out, float* __restrict__ lse,
                             int N, int C, int H, float scale, [[maybe_unused]] AttentionDrop drop) {
  using namespace attention_detail;
  using S = ForwardSplit<D>;
  constexpr int R = S::R, DS = S::DS;
  alignas(16) __shared__ float ks[kTile * D];  // K tile [key][d]
  alignas(16) __shared__ float vs[kTile * D];  // V tile [key][d]

  const TileRow r = tile_row<S>(N, H);
  const int64_t ld = 3 * static_cast<int64_t>(C);
  const float* head = qkv + static_cast<int64_t>(r.b) * N * ld + r.h * D;  // q of token 0
  const int off = r.part * 4;

  // q pre-scaled, so a dot product is already a scaled score.
  float q[DS], acc[DS];
#pragma unroll
  for (int t = 0; t < DS; ++t) {
    q[t] = r.valid ? head[r.row * ld + off + slice_col<R>(t)] * scale : 0.f;
    acc[t] = 0.f;
  }
  float m = -INFINITY, l = 0.f;  // running max and sum of exp(s - m)
  [[maybe_unused]] uint64_t drop_row = 0;  // counter of (row, key 0)
  if constexpr (kDrop) drop_row = drop_row_counter(drop, r.bh, r.row, N);

  for (int k0 = 0; k0 < N; k0 += kTile) {
    __syncthreads();  // every thread is done with the previous tile
    stage_rows<D, S::kThreads>(ks, head + C, ld, k0, N);
    stage_rows<D, S::kThreads>(vs, head + 2 * C, ld, k0, N);
    __syncthreads();
    const int kn = N - k0 < kTile ? N - k0 : kTile;
    for (int c0 = 0; c0 < kn; c0 += kChunk) {  // chunks past the last key are skipped
      // Scores of 16 keys first, then one rescale of acc for all of them.
      float s[kChunk];
#pragma unroll
      for (int j = 0; j < kChunk; ++j) {
        const float* kr = ks + (c0 + j) * D + off;
        float dot = 0.f;
#pragma unroll
        for (int t = 0; t < DS; ++t) dot += q[t] * kr[slice_col<R>(t)];
        s[j] = row_sum<R>(dot);
      }
      float mx = m;
#pragma unroll
      for (int j = 0; j < kChunk; ++j) {
        if (c0 + j >= kn) s[j] = -INFINITY;  // a masked key gets weight exp(-inf) = 0
        mx = fmaxf(mx, s[j]);
      }
      // Key 0 is never masked, so mx is finite from the first chunk on and the
      // first correction is exp(-inf) = 0 against an accumulator of zeros.
      const float corr = expf(m - mx);
      m = mx;
      l *= corr;
#pragma unroll
      for (int t = 0; t < DS; ++t) acc[t] *= corr;
#pragma unroll
      for (int j = 0; j < kChunk; ++j) {
        float p = expf(s[j] - m);
        l += p;  // the normaliser of the undropped row
        // Keys past N have p = 0 already; their (out-of-range) draw is harmless.
        if constexpr (kDrop) p *= drop_factor(drop, drop_row + static_cast<uint64_t>(k0 + c0 + j));
        const float* vr = vs + (c0 + j) * D + off;
#pragma unroll
        for (int t = 0; t < DS; ++t) acc[t] += p * vr[slice_col<R>(t)];
      }
    }
  }
  if (!r.valid) return;
  const float inv = 1.f / l;
  float* o = out + (static_cast<int64_t>(r.b) * N + r.row) * C + r.h * D + off;
#pragma unroll
  for (int t = 0; t < DS; ++t) o[slice_col<R>(t)] = acc[t] * inv;
  if (r.part == 0) lse[static_cast<int64_t>(r.bh) * N + r.row] = m + logf(l);
}

// dout, out: (B,N,C) -> delta: (B,H,N), delta = Σ_d dout·out per head row
// (= Σ_j P·dP, the softmax-backward row term). Block: attention_delta_launch<D>.
// A row (b,n,h) is D contiguous floats at (b·N+n)·H+h times D in both inputs,
// so a warp reads whole rows coalesced; D < 32 packs 32/D rows into a warp.
template <int D>
VIT_KERNEL void attention_delta_kernel(const float* __restrict__ dout, const float* __restrict__ out,
                                       float* __restrict__ delta, int64_t rows, int N, int H) {
  constexpr int kRowsPerWarp = D < kWarp ? kWarp / D : 1;
  constexpr int kLanes = D < kWarp ? D : kWarp;  // lanes per row
  constexpr int kPerLane = D / kLanes;
  const int lane = static_cast<int>(threadIdx.x) % kWarp;
  const int warps_per_block = static_cast<int>(blockDim.x) / kWarp;
  const int64_t groups = (rows + kRowsPerWarp - 1) / kRowsPerWarp;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * warps_per_block;
  // g is warp-uniform, so every lane of a warp runs the same iterations (shuffles).
  for (int64_t g = static_cast<int64_t>(blockIdx.x) * warps_per_block + threadIdx.x / kWarp; g < groups;
       g += stride) {
    const int64_t r = g * kRowsPerWarp + lane / kLanes;
    const int c = lane % kLanes;
    float acc = 0.f;
    if (r < rows) {
#pragma unroll
      for (int i = 0; i < kPerLane; ++i) acc += dout[r * D + c + i * kLanes] * out[r * D + c + i * kLanes];
    }
#pragma unroll
    for (int m = kLanes / 2; m > 0; m /= 2) acc += __shfl_xor_sync(0xffffffffu, acc, m);
    if (r < rows && c == 0) {
      const int64_t bn = r / H, h = r % H, b = bn / N, n = bn % N;
      delta[(b * H + h) * N + n] = acc;
    }
  }
}

// dout: (B,N,C), qkv: (B,N,3C), lse, delta: (B,H,N) -> dqkv[:, :, 0:C) (the dQ
// third) written. Block: attention_dq_launch<D>; a thread owns a query row slice.
template <int D, bool kDrop = false>
VIT_KERNEL void VIT_ATTENTION_BOUNDS(attention_detail::DqSplit<D>)
    attention_backward_dq_kernel(const float* __restrict__ dout, const float* __restrict__ qkv,
                                 const float* __restrict__ lse, const float* __restrict__ delta,
                                 float* __restrict__ dqkv, int N, int C, int H, float scale,
                                 [[maybe_unused]] AttentionDrop drop) {
  using namespace attention_detail;
  using S = DqSplit<D>;
  constexpr int R = S::R, DS = S::DS;
  alignas(16) __shared__ float ks[kTile * D];
  alignas(16) __shared__ float vs[kTile * D];

  const TileRow r = tile_row<S>(N, H);
  const int64_t ld = 3 * static_cast<int64_t>(C);
  const float* head = qkv + static_cast<int64_t>(r.b) * N * ld + r.h * D;
  const int off = r.part * 4;
  const float* g_row = dout + (static_cast<int64_t>(r.b) * N + r.row) * C + r.h * D + off;

  float q[DS], g[DS], dq[DS];  // q pre-scaled; g = this row's dout
#pragma unroll
  for (int t = 0; t < DS; ++t) {
    q[t] = r.valid ? head[r.row * ld + off + slice_col<R>(t)] * scale : 0.f;
    g[t] = r.valid ? g_row[slice_col<R>(t)] : 0.f;
    dq[t] = 0.f;
  }
  const float row_lse = r.valid ? lse[static_cast<int64_t>(r.bh) * N + r.row] : 0.f;
  const float row_delta = r.valid ? delta[static_cast<int64_t>(r.bh) * N + r.row] : 0.f;
  [[maybe_unused]] uint64_t drop_row = 0;  // counter of (row, key 0)
  if constexpr (kDrop) drop_row = drop_row_counter(drop, r.bh, r.row, N);

  for (int k0 = 0; k0 < N; k0 += kTile) {
    __syncthreads();
    stage_rows<D, S::kThreads>(ks, head + C, ld, k0, N);
    stage_rows<D, S::kThreads>(vs, head + 2 * C, ld, k0, N);
    __syncthreads();
    const int kn = N - k0 < kTile ? N - k0 : kTile;
    // One key at a time: its K slice is used for the score and again for dq
    // while still in registers. Unrolled by 4 only: more lets the scheduler
    // hoist loads of later keys until registers spill.
#pragma unroll 4
    for (int j = 0; j < kn; ++j) {
      const float* kr = ks + j * D + off;
      const float* vr = vs + j * D + off;
      float kj[DS], sd = 0.f, pd = 0.f;
#pragma unroll
      for (int t = 0; t < DS; ++t) {
        kj[t] = kr[slice_col<R>(t)];
        sd += q[t] * kj[t];
        pd += g[t] * vr[slice_col<R>(t)];
      }
      const float p = expf(row_sum<R>(sd) - row_lse);
      float dp = row_sum<R>(pd);  // (dO·Vᵀ)_ij
      if constexpr (kDrop) dp *= drop_factor(drop, drop_row + static_cast<uint64_t>(k0 + j));
      const float ds = p * (dp - row_delta);
#pragma unroll
      for (int t = 0; t < DS; ++t) dq[t] += ds * kj[t];
    }
  }
  if (!r.valid) return;
  float* o = dqkv + (static_cast<int64_t>(r.b) * N + r.row) * ld + r.h * D + off;
#pragma unroll
  for (int t = 0; t < DS; ++t) o[slice_col<R>(t)] = dq[t] * scale;
}

// dout: (B,N,C), qkv: (B,N,3C), lse, delta: (B,H,N) -> dqkv[:, :, C:3C) (the dK
// and dV thirds) written. Block: attention_dkv_launch<D>; a thread owns a key row slice.
template <int D, bool kDrop = false>
VIT_KERNEL void VIT_ATTENTION_BOUNDS(attention_detail::DkvSplit<D>)
    attention_backward_dkv_kernel(const float* __restrict__ dout, const float* __restrict__ qkv,
                                  const float* __restrict__ lse, const float* __restrict__ delta,
                                  float* __restrict__ dqkv, int N, int C, int H, float scale,
                                  [[maybe_unused]] AttentionDrop drop) {
  using namespace attention_detail;
  using S = DkvSplit<D>;
  constexpr int R = S::R, DS = S::DS;
  alignas(16) __shared__ float qs[kTile * D];  // Q tile [query][d]
  alignas(16) __shared__ float gs[kTile * D];  // dO tile [query][d]
  __shared__ float lse_s[kTile], delta_s[kTile];

  const TileRow r = tile_row<S>(N, H);
  const int64_t ld = 3 * static_cast<int64_t>(C);
  const float* head = qkv + static_cast<int64_t>(r.b) * N * ld + r.h * D;
  const float* g_head = dout + static_cast<int64_t>(r.b) * N * C + r.h * D;
  const int off = r.part * 4;

  float k[DS], v[DS], dk[DS], dv[DS];  // k pre-scaled
#pragma unroll
  for (int t = 0; t < DS; ++t) {
    k[t] = r.valid ? head[r.row * ld + C + off + slice_col<R>(t)] * scale : 0.f;
    v[t] = r.valid ? head[r.row * ld + 2 * C + off + slice_col<R>(t)] : 0.f;
    dk[t] = dv[t] = 0.f;
  }
  // Counter of (query 0, this key); query i adds i·N.
  [[maybe_unused]] uint64_t drop_col = 0;
  if constexpr (kDrop) drop_col = drop_row_counter(drop, r.bh, 0, N) + static_cast<uint64_t>(r.row);

  for (int q0 = 0; q0 < N; q0 += kTile) {
    __syncthreads();
    stage_rows<D, S::kThreads>(qs, head, ld, q0, N);
    stage_rows<D, S::kThreads>(gs, g_head, C, q0, N);
    for (int i = static_cast<int>(threadIdx.x); i < kTile; i += S::kThreads) {
      const bool in = q0 + i < N;
      lse_s[i] = in ? lse[static_cast<int64_t>(r.bh) * N + q0 + i] : 0.f;
      delta_s[i] = in ? delta[static_cast<int64_t>(r.bh) * N + q0 + i] : 0.f;
    }
    __syncthreads();
    const int qn = N - q0 < kTile ? N - q0 : kTile;
    // One query at a time, its Q and dO slices used twice while in registers.
#pragma unroll 4
    for (int i = 0; i < qn; ++i) {
      const float* qr = qs + i * D + off;
      const float* gr = gs + i * D + off;
      float qi[DS], gi[DS], sd = 0.f, pd = 0.f;
#pragma unroll
      for (int t = 0; t < DS; ++t) {
        qi[t] = qr[slice_col<R>(t)];
        gi[t] = gr[slice_col<R>(t)];
        sd += k[t] * qi[t];
        pd += v[t] * gi[t];
      }
      const float p = expf(row_sum<R>(sd) - lse_s[i]);
      float dp = row_sum<R>(pd), pv = p;  // (dO·Vᵀ)_ij and the weight of dO_i in dV_j
      if constexpr (kDrop) {
        const float f = drop_factor(drop, drop_col + static_cast<uint64_t>(q0 + i) * static_cast<uint64_t>(N));
        dp *= f;
        pv *= f;
      }
      const float ds = p * (dp - delta_s[i]);
#pragma unroll
      for (int t = 0; t < DS; ++t) {
        dv[t] += pv * gi[t];
        dk[t] += ds * qi[t];
      }
    }
  }
  if (!r.valid) return;
  float* o = dqkv + (static_cast<int64_t>(r.b) * N + r.row) * ld + r.h * D + off;
#pragma unroll
  for (int t = 0; t < DS; ++t) {
    o[C + slice_col<R>(t)] = dk[t] * scale;
    o[2 * C + slice_col<R>(t)] = dv[t];
  }
}

}  // namespace vit::cuda::kernels
