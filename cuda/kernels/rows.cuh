// What the row ops of layernorm.cuh, softmax.cuh and gelu.cuh share: how a row
// of floats is spread over one warp's registers (rows::RowPlan, float4 chunk
// loads), grid arithmetic, and the fixed-order sum of per-block column
// partials that replaces float atomics in every parameter-gradient reduction.
// Host helpers here are plain C++ so the emulated tests use the same geometry.
#pragma once

#include <cstdint>
#include <type_traits>

#include "device_api.cuh"

namespace vit::cuda::kernels {

/// Rows up to this length live in registers, one warp per row.
constexpr int64_t kMaxRegisterRow = 1024;
/// Warps per block of the register-row kernels (each warp owns its rows).
constexpr int kRowWarps = 4;
/// Threads per block of the block-per-row kernels used for longer rows.
constexpr int kLongRowThreads = 256;
/// Bound on grid.x for grid-stride kernels; device independent, so results are too.
constexpr int64_t kMaxGridBlocks = int64_t(1) << 20;
/// Row-chunked reductions aim at about this many partial rows: a few waves of
/// blocks on an H100, while summing the partials stays ~1-2% of the traffic.
constexpr int64_t kTargetPartialBlocks = 1024;
/// Warps per block of column_partials_add_kernel.
constexpr int kPartialSumWarps = 8;

namespace rows {

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
inline unsigned grid_for(int64_t blocks) {
  return static_cast<unsigned>(blocks < 1 ? 1
                                          : (blocks > kMaxGridBlocks ? kMaxGridBlocks : blocks));
}
/// float4 loads need every base address 16-byte aligned (rows then are too when C % 4 == 0).
inline bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

/// How one row of n floats sits in a warp: lane l holds `chunks` chunks of `vec`
/// consecutive floats, chunk j starting at column (j·32 + l)·vec. chunks == 0:
/// the row is too long for registers and a whole block works on it instead.
struct RowPlan {
  int vec = 1;
  int chunks = 0;
};

/// vec 4 needs n % 4 == 0 and aligned pointers (the caller's vec4_ok). The chunk
/// counts are a small fixed set so each has its own fully unrolled kernel.
inline RowPlan row_plan(int64_t n, bool vec4_ok) {
  if (n > kMaxRegisterRow) return {1, 0};
  if (vec4_ok && n % 4 == 0) {
    const int need = static_cast<int>(ceil_div(n, 4 * kWarp));  // 1..8
    return {4, need <= 4 ? need : (need <= 6 ? 6 : 8)};
  }
  const int need = static_cast<int>(ceil_div(n, kWarp));  // 1..32
  int chunks = 1;
  while (chunks < need) chunks *= 2;
  return {1, chunks};
}

/// pick(integral_constant vec, integral_constant chunks) for the plan's instantiation;
/// returns what pick returns (a kernel pointer). Host code.
template <class Pick>
auto pick_row_kernel(RowPlan plan, Pick&& pick) {
  using std::integral_constant;
  using V1 = integral_constant<int, 1>;
  using V4 = integral_constant<int, 4>;
  if (plan.vec == 4) {
    switch (plan.chunks) {
      case 1:
        return pick(V4{}, integral_constant<int, 1>{});
      case 2:
        return pick(V4{}, integral_constant<int, 2>{});
      case 3:
        return pick(V4{}, integral_constant<int, 3>{});
      case 4:
        return pick(V4{}, integral_constant<int, 4>{});
      case 6:
        return pick(V4{}, integral_constant<int, 6>{});
      default:
        return pick(V4{}, integral_constant<int, 8>{});
    }
  }
  switch (plan.chunks) {
    case 1:
      return pick(V1{}, integral_constant<int, 1>{});
    case 2:
      return pick(V1{}, integral_constant<int, 2>{});
    case 4:
      return pick(V1{}, integral_constant<int, 4>{});
    case 8:
      return pick(V1{}, integral_constant<int, 8>{});
    case 16:
      return pick(V1{}, integral_constant<int, 16>{});
    default:
      return pick(V1{}, integral_constant<int, 32>{});
  }
}

template <int kVec>
VIT_DEVICE void load_vec(const float* p, float (&v)[kVec]) {
  if constexpr (kVec == 4) {
    const float4 t = *reinterpret_cast<const float4*>(p);
    v[0] = t.x, v[1] = t.y, v[2] = t.z, v[3] = t.w;
  } else {
#pragma unroll
    for (int k = 0; k < kVec; ++k) v[k] = p[k];
  }
}
template <int kVec>
VIT_DEVICE void store_vec(float* p, const float (&v)[kVec]) {
  if constexpr (kVec == 4) {
    float4 t;
    t.x = v[0], t.y = v[1], t.z = v[2], t.w = v[3];
    *reinterpret_cast<float4*>(p) = t;
  } else {
#pragma unroll
    for (int k = 0; k < kVec; ++k) p[k] = v[k];
  }
}

}  // namespace rows

// ---- fixed-order sum of per-block column partials ------------------------------------

/// partials: (parts, width) -> dst_lo[c] += Σ_p partials[p][c] for c < split,
/// dst_hi[c - split] += ... for c >= split (a null destination is skipped).
/// Block: 32 columns × kWarps warps; warp w sums parts w, w + kWarps, ... and
/// warp 0 adds the kWarps sums in warp order, so the result never depends on timing.
template <int kWarps>
VIT_KERNEL void column_partials_add_kernel(const float* partials, int64_t parts, int64_t width,
                                           float* dst_lo, float* dst_hi, int64_t split) {
  __shared__ float warp_sums[kWarps][kWarp];
  const int lane = static_cast<int>(threadIdx.x) % kWarp,
            warp = static_cast<int>(threadIdx.x) / kWarp;
  const int64_t col = static_cast<int64_t>(blockIdx.x) * kWarp + lane;
  float s = 0.f;
  if (col < width) {
#pragma unroll 4
    for (int64_t p = warp; p < parts; p += kWarps) s += partials[p * width + col];
  }
  warp_sums[warp][lane] = s;
  __syncthreads();
  if (warp == 0 && col < width) {
    float total = 0.f;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) total += warp_sums[w][lane];
    if (col < split) {
      if (dst_lo) dst_lo[col] += total;
    } else if (dst_hi) {
      dst_hi[col - split] += total;
    }
  }
}

using ColumnPartialsKernel = void (*)(const float*, int64_t, int64_t, float*, float*, int64_t);
struct ColumnPartialsLaunch {
  dim3 grid, block;
  size_t smem = 0;
  ColumnPartialsKernel kernel;
};
inline ColumnPartialsLaunch column_partials_geometry(int64_t width) {
  return {dim3(static_cast<unsigned>(rows::ceil_div(width, kWarp))), dim3(kPartialSumWarps * kWarp),
          0, column_partials_add_kernel<kPartialSumWarps>};
}

}  // namespace vit::cuda::kernels
