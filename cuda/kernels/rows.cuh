// What the row ops of layernorm.cuh, softmax.cuh and cross_entropy.cuh share:
// how a row sits in one warp's registers (rows::RowPlan, 16-byte chunk loads:
// 4 floats or 8 bf16), the storage-type conversions (float or vit::bf16 in
// memory, float in registers), grid arithmetic, and the fixed-order sum of
// per-block column partials that replaces float atomics in every
// parameter-gradient reduction. Host helpers here are plain C++ so the
// emulated tests use the same geometry.
//
// bf16 chunks travel as float4 (one 16-byte load/store instruction) and are
// split with bit operations (a bf16 is the top half of a float, so widening is
// a shift; narrowing rounds to nearest even through vit::bf16), which keeps
// the kernels inside the device API of device_api.cuh.
#pragma once

#include <cstdint>
#include <type_traits>

#include "device_api.cuh"
#include "vit/core/bf16.hpp"

// Register budget of a kernel: at most kThreads per block with kMinBlocks blocks
// resident per SM (nvcc's __launch_bounds__). The register-row kernels hold
// several rows per lane; without a cap nvcc gives some of them 130-170
// registers, which leaves one 256-thread block per SM. No-op under the emulator.
#if defined(__CUDACC__) && !defined(VIT_CUDA_EMULATED)
#define VIT_LAUNCH_BOUNDS(kThreads, kMinBlocks) __launch_bounds__(kThreads, kMinBlocks)
#else
#define VIT_LAUNCH_BOUNDS(kThreads, kMinBlocks)
#endif

namespace vit::cuda::kernels {

/// Rows up to this length live in registers, one warp per row.
constexpr int64_t kMaxRegisterRow = 1024;
/// Warps per block of the register-row kernels (each warp owns its rows).
constexpr int kRowWarps = 4;
/// Threads per block of the block-per-row kernels used for longer rows.
constexpr int kLongRowThreads = 256;
/// Bound on grid.x for grid-stride kernels; device independent, so results are too.
constexpr int64_t kMaxGridBlocks = int64_t(1) << 20;
/// Row-chunked reductions (LayerNorm's weight/bias gradients) aim at this many
/// blocks, hence partial rows: 2 blocks of 8 warps per SM on a 132-SM H100/H200,
/// which is what their register use lets reside at once, so every block runs in
/// the first and only wave and the partials' sum reads just 264 rows. A constant,
/// not the device's SM count, so the sums (and gradients) are the same on every GPU.
constexpr int64_t kTargetPartialBlocks = 264;
/// Warps per block of column_partials_add_kernel (see there).
constexpr int kPartialSumWarps = 32;

namespace rows {

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
inline unsigned grid_for(int64_t blocks) {
  return static_cast<unsigned>(blocks < 1 ? 1
                                          : (blocks > kMaxGridBlocks ? kMaxGridBlocks : blocks));
}
/// 16-byte loads need every base address 16-byte aligned (rows then are too when
/// n is a multiple of the vector width).
inline bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

/// Elements of storage type T in one 16-byte vector: 4 floats, 8 bf16.
template <class T>
inline constexpr int kVec16 = static_cast<int>(16 / sizeof(T));

/// How one row of n elements sits in a warp: lane l holds `chunks` chunks of `vec`
/// consecutive elements, chunk j starting at column (j·32 + l)·vec. chunks == 0:
/// the row is too long for registers and a whole block works on it instead.
struct RowPlan {
  int vec = 1;
  int chunks = 0;
};

/// vec = `wide` (16 bytes of the storage type: 4 floats or 8 bf16) needs n % wide == 0
/// and aligned pointers (the caller's vec_ok). The chunk counts are a small fixed set
/// so each has its own fully unrolled kernel.
inline RowPlan row_plan(int64_t n, bool vec_ok, int wide = 4) {
  if (n > kMaxRegisterRow) return {1, 0};
  if (vec_ok && n % wide == 0) {
    const int need = static_cast<int>(ceil_div(n, int64_t(wide) * kWarp));  // 1..8 (1..4 for bf16)
    return {wide, need <= 4 ? need : (need <= 6 ? 6 : 8)};
  }
  // Scalar rows: exact chunk counts up to 4 and 7 (n = 65 and 197, attention's rows:
  // no dead chunk holding registers), else the next of 6, 8, 16, 32.
  const int need = static_cast<int>(ceil_div(n, kWarp));  // 1..32
  if (need <= 4 || need == 7) return {1, need};
  return {1, need <= 6 ? 6 : (need <= 8 ? 8 : (need <= 16 ? 16 : 32))};
}

/// Rows one warp loads at once in the register-row kernels, for rows held as
/// `per_lane` values per lane (chunks of `vec`) and `tensors` row-tensors read: the largest
/// power of two up to 8 with rows·per_lane·tensors <= 32 values, or 64 for bf16 rows in
/// 16-byte chunks: about 4 KB per warp in flight per step (2 KB for scalar bf16 rows,
/// where 64 values per lane would spill under the kernels' 128-register budget).
/// A warp that owns one short row (n = 65: 260 B, 130 in bf16)
/// waits a full memory latency for a few hundred bytes and then runs its shuffle
/// reductions with nothing in flight; owning several adjacent rows per step keeps
/// the loads of all of them in flight together and overlaps their reductions.
template <class T>
constexpr int rows_per_warp(int vec, int per_lane, int tensors) {
  const int target = sizeof(T) == 2 && vec > 1 ? 64 : 32;
  int r = 1;
  while (r < 8 && 2 * r * per_lane * tensors <= target) r *= 2;
  return r;
}

/// pick(integral_constant vec, integral_constant chunks) for the plan's instantiation;
/// returns what pick returns (a kernel pointer). kWide: the plan's wide vector (kVec16
/// of the storage type). Host code.
template <int kWide = 4, class Pick>
auto pick_row_kernel(RowPlan plan, Pick&& pick) {
  using std::integral_constant;
  using V1 = integral_constant<int, 1>;
  using V4 = integral_constant<int, kWide>;
  if (plan.vec == kWide && kWide > 1) {
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
    case 3:
      return pick(V1{}, integral_constant<int, 3>{});
    case 4:
      return pick(V1{}, integral_constant<int, 4>{});
    case 6:
      return pick(V1{}, integral_constant<int, 6>{});
    case 7:
      return pick(V1{}, integral_constant<int, 7>{});
    case 8:
      return pick(V1{}, integral_constant<int, 8>{});
    case 16:
      return pick(V1{}, integral_constant<int, 16>{});
    default:
      return pick(V1{}, integral_constant<int, 32>{});
  }
}

/// A storage element as float (exact for bf16), and a float rounded to storage.
template <class T>
VIT_DEVICE float load1(const T* p) {
  return static_cast<float>(*p);
}
template <class T>
VIT_DEVICE T to_storage(float v) {
  if constexpr (std::is_same_v<T, float>) return v;
  else return T(v);
}

/// The two bf16 of a 32-bit word (low address first) as floats, and back.
VIT_DEVICE float bf16_lo(uint32_t u) { return ::vit::detail::bits_float(u << 16); }
VIT_DEVICE float bf16_hi(uint32_t u) { return ::vit::detail::bits_float(u & 0xffff0000u); }
VIT_DEVICE float pack_bf16x2(float lo, float hi) {
  const uint32_t u = static_cast<uint32_t>(::vit::detail::float_to_bf16_bits(lo)) |
                     (static_cast<uint32_t>(::vit::detail::float_to_bf16_bits(hi)) << 16);
  return ::vit::detail::bits_float(u);
}

/// kVec consecutive elements of T into floats: one 16-byte load when kVec·sizeof(T) == 16
/// (the caller guarantees alignment), else element by element.
template <int kVec, class T>
VIT_DEVICE void load_vec(const T* p, float (&v)[kVec]) {
  if constexpr (kVec * sizeof(T) == 16) {
    const float4 t = *reinterpret_cast<const float4*>(p);
    if constexpr (std::is_same_v<T, float>) {
      v[0] = t.x, v[1] = t.y, v[2] = t.z, v[3] = t.w;
    } else {
      static_assert(sizeof(T) == 2, "load_vec: float or bf16 storage");
      const uint32_t a = ::vit::detail::float_bits(t.x), b = ::vit::detail::float_bits(t.y),
                     c = ::vit::detail::float_bits(t.z), d = ::vit::detail::float_bits(t.w);
      v[0] = bf16_lo(a), v[1] = bf16_hi(a), v[2] = bf16_lo(b), v[3] = bf16_hi(b);
      v[4] = bf16_lo(c), v[5] = bf16_hi(c), v[6] = bf16_lo(d), v[7] = bf16_hi(d);
    }
  } else {
#pragma unroll
    for (int k = 0; k < kVec; ++k) v[k] = load1(p + k);
  }
}
template <int kVec, class T>
VIT_DEVICE void store_vec(T* p, const float (&v)[kVec]) {
  if constexpr (kVec * sizeof(T) == 16) {
    float4 t;
    if constexpr (std::is_same_v<T, float>) {
      t.x = v[0], t.y = v[1], t.z = v[2], t.w = v[3];
    } else {
      t.x = pack_bf16x2(v[0], v[1]), t.y = pack_bf16x2(v[2], v[3]);
      t.z = pack_bf16x2(v[4], v[5]), t.w = pack_bf16x2(v[6], v[7]);
    }
    *reinterpret_cast<float4*>(p) = t;
  } else {
#pragma unroll
    for (int k = 0; k < kVec; ++k) p[k] = to_storage<T>(v[k]);
  }
}

}  // namespace rows

// ---- fixed-order sum of per-block column partials ------------------------------------

/// partials: (parts, width) -> dst_lo[c] += Σ_p partials[p][c] for c < split,
/// dst_hi[c - split] += ... for c >= split (a null destination is skipped). D: the
/// destination's storage (float, or bf16: widened, added in float, rounded once).
/// Block: 32 columns × kWarps warps; warp w sums parts w, w + kWarps, ... and
/// warp 0 adds the kWarps sums in warp order, so the result never depends on timing.
/// kWarps = 32 (1024 threads): with 2C columns there are only 2C/32 blocks (24 at
/// C = 384), so each block must keep many loads in flight; at 8 warps this pass
/// was latency-bound and cost about a quarter of the LayerNorm backward's time.
template <int kWarps, class D>
VIT_KERNEL void column_partials_add_kernel(const float* partials, int64_t parts, int64_t width,
                                           D* dst_lo, D* dst_hi, int64_t split) {
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
    D* dst = col < split ? (dst_lo ? dst_lo + col : nullptr)
                         : (dst_hi ? dst_hi + (col - split) : nullptr);
    if (dst) *dst = rows::to_storage<D>(rows::load1(dst) + total);
  }
}

template <class D>
using ColumnPartialsKernel = void (*)(const float*, int64_t, int64_t, D*, D*, int64_t);
template <class D = float>
struct ColumnPartialsLaunch {
  dim3 grid, block;
  size_t smem = 0;
  ColumnPartialsKernel<D> kernel;
};
/// D: the destination's storage type (float or vit::bf16).
template <class D = float>
inline ColumnPartialsLaunch<D> column_partials_geometry(int64_t width) {
  return {dim3(static_cast<unsigned>(rows::ceil_div(width, kWarp))), dim3(kPartialSumWarps * kWarp),
          0, column_partials_add_kernel<kPartialSumWarps, D>};
}

}  // namespace vit::cuda::kernels
