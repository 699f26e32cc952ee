// Flat elementwise maps, out[i] = op(a[i], b[i]) or op(x[i]), with the ops the
// launchers share (add, sub, mul, scale, tanh and its backward; GELU's live in
// gelu.cuh), and the row-broadcast map out[r,c] = op(x[r,c] + bias[c]).
// Every map is a template on the storage types (float, vit::bf16, or a mix:
// the dtype casts), so float and bf16 share one body: elements are read into
// float, the op computes in float, and the result is rounded once to the
// output's type (round to nearest even for bf16). When every pointer is
// 16-byte aligned a thread moves kVec elements per step with 16-byte vector
// loads/stores (4 floats, 8 bf16; a float operand of a bf16 map reads two
// float4s), then a scalar tail of n % kVec; otherwise plain coalesced scalars.
// A grid-stride loop runs past kElementwiseMaxBlocks.
// Only templates and inline host code: nvcc emits a __global__ function's host
// stub as a strong symbol in every .cu that sees it, so a non-template kernel
// in a header included by two launchers breaks the link of vit::cuda users.
// elementwise.cu, gelu.cu, convert.cu and strided.cu all include this one.
#pragma once

#include <cstdint>

#include "device_api.cuh"
#include "vit/core/bf16.hpp"

namespace vit::cuda::kernels {

struct ElementwiseLaunch {
  dim3 grid, block;
  size_t smem;
};

constexpr int kElementwiseThreads = 256;
constexpr int64_t kElementwiseMaxBlocks = 4096;  // grid-stride beyond: ~30 resident blocks per SM

/// Maps: one thread per `vec` elements per step, grid-stride past max_blocks.
inline ElementwiseLaunch elementwise_launch(int64_t n, int64_t max_blocks = kElementwiseMaxBlocks,
                                            int vec = 4) {
  const int64_t units = (n + vec - 1) / vec;
  int64_t blocks = (units + kElementwiseThreads - 1) / kElementwiseThreads;
  blocks = blocks < 1 ? 1 : (blocks > max_blocks ? max_blocks : blocks);
  return {dim3(static_cast<unsigned>(blocks)), dim3(kElementwiseThreads), 0};
}

VIT_DEVICE bool ew_aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

/// Elements of T in one 16-byte vector: 4 floats, 8 bf16.
template <class T>
inline constexpr int kVecOf = static_cast<int>(16 / sizeof(T));
/// Elements per vector step of a map over these storage types: the widest
/// (8 when any operand is bf16, so the bf16 operand moves 16 bytes at a time).
template <class... Ts>
constexpr int map_vec() {
  int v = 0;
  ((v = kVecOf<Ts> > v ? kVecOf<Ts> : v), ...);
  return v;
}
template <class... Ts>
inline constexpr int kMapVec = map_vec<Ts...>();

/// Launch geometry of a map over these storage types (one thread per kMapVec elements).
template <class... Ts>
inline ElementwiseLaunch map_launch(int64_t n, int64_t max_blocks = kElementwiseMaxBlocks) {
  return elementwise_launch(n, max_blocks, kMapVec<Ts...>);
}

/// N consecutive elements of T moved as whole 16-byte vectors (N·sizeof(T) is
/// 16 or 32 bytes, 16-byte aligned: nvcc emits ld/st.global.v4 for it); a
/// narrower pack (N = 1: the scalar paths) keeps its natural size and alignment.
template <class T, int N>
struct alignas(N * sizeof(T) >= 16 ? 16 : N * sizeof(T)) Pack {
  T v[N];
};
static_assert(sizeof(Pack<bf16, 1>) == 2 && sizeof(Pack<bf16, 8>) == 16 && sizeof(Pack<float, 8>) == 32);
template <class T, int N>
VIT_DEVICE Pack<T, N> load_pack(const T* p, int64_t unit) {
  return reinterpret_cast<const Pack<T, N>*>(p)[unit];
}
template <class T, int N>
VIT_DEVICE void store_pack(T* p, int64_t unit, const Pack<T, N>& v) {
  reinterpret_cast<Pack<T, N>*>(p)[unit] = v;
}

/// A float rounded to storage type T (identity for float, nearest even for bf16).
template <class T>
VIT_DEVICE T to_storage(float v) {
  return T(v);
}

struct EwAdd {
  VIT_DEVICE float operator()(float a, float b) const { return a + b; }
};
struct EwSub {
  VIT_DEVICE float operator()(float a, float b) const { return a - b; }
};
struct EwMul {
  VIT_DEVICE float operator()(float a, float b) const { return a * b; }
};
struct EwScale {
  float s;
  VIT_DEVICE float operator()(float a) const { return s * a; }
};
/// The value itself: a dtype conversion (float <-> bf16) as a map.
struct EwIdentity {
  VIT_DEVICE float operator()(float a) const { return a; }
};
struct EwTanh {
  VIT_DEVICE float operator()(float a) const { return tanhf(a); }
};
/// (dy, y) -> dy·(1 − y²), from the forward's output y, as the CPU TanhNode.
struct EwTanhGrad {
  VIT_DEVICE float operator()(float dy, float y) const { return dy * (1.f - y * y); }
};

// out[i] = op(a[i], b[i]), n elements, each operand of its own storage type.
// out may alias a or b (same type): each element is read and then written by
// the same thread.
template <class Op, class TA, class TB, class TO>
VIT_DEVICE void ew_binary(const TA* a, const TB* b, TO* out, int64_t n, Op op) {
  constexpr int V = kMapVec<TA, TB, TO>;
  const int64_t first = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  if (ew_aligned16(a) && ew_aligned16(b) && ew_aligned16(out)) {
    const int64_t units = n / V;
    for (int64_t u = first; u < units; u += stride) {
      const Pack<TA, V> x = load_pack<TA, V>(a, u);
      const Pack<TB, V> y = load_pack<TB, V>(b, u);
      Pack<TO, V> r;
#pragma unroll
      for (int k = 0; k < V; ++k) r.v[k] = to_storage<TO>(op(float(x.v[k]), float(y.v[k])));
      store_pack<TO, V>(out, u, r);
    }
    const int64_t i = V * units + first;  // the n % V tail
    if (i < n) out[i] = to_storage<TO>(op(float(a[i]), float(b[i])));
  } else {
    for (int64_t i = first; i < n; i += stride) out[i] = to_storage<TO>(op(float(a[i]), float(b[i])));
  }
}

// out[i] = op(x[i]); out may alias x (same type).
template <class Op, class TI, class TO>
VIT_DEVICE void ew_unary(const TI* x, TO* out, int64_t n, Op op) {
  constexpr int V = kMapVec<TI, TO>;
  const int64_t first = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  if (ew_aligned16(x) && ew_aligned16(out)) {
    const int64_t units = n / V;
    for (int64_t u = first; u < units; u += stride) {
      const Pack<TI, V> v = load_pack<TI, V>(x, u);
      Pack<TO, V> r;
#pragma unroll
      for (int k = 0; k < V; ++k) r.v[k] = to_storage<TO>(op(float(v.v[k])));
      store_pack<TO, V>(out, u, r);
    }
    const int64_t i = V * units + first;
    if (i < n) out[i] = to_storage<TO>(op(float(x[i])));
  } else {
    for (int64_t i = first; i < n; i += stride) out[i] = to_storage<TO>(op(float(x[i])));
  }
}

template <class Op, class TA = float, class TB = TA, class TO = TA>
VIT_KERNEL void ew_binary_kernel(const TA* a, const TB* b, TO* out, int64_t n, Op op) {
  ew_binary<Op, TA, TB, TO>(a, b, out, n, op);
}
template <class Op, class TI = float, class TO = TI>
VIT_KERNEL void ew_unary_kernel(const TI* x, TO* out, int64_t n, Op op) {
  ew_unary<Op, TI, TO>(x, out, n, op);
}

// x: (R,C), bias: (C) -> out: (R,C), out[r,c] = op(x[r,c] + bias[c]) (op the
// identity: the bias add; GeluForwardOp: the fused bias+GELU); out may alias x.
// The column advances by the fixed grid stride, so there is one modulo per
// thread rather than one per element. Vectors when C % kVec == 0 and all three
// pointers are 16-byte aligned: a vector then never straddles two rows.
template <class T, class Op>
VIT_DEVICE void row_bias_map(const T* x, const T* bias, T* out, int64_t R, int64_t C, Op op) {
  constexpr int V = kVecOf<T>;
  const int64_t first = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  if (C % V == 0 && ew_aligned16(x) && ew_aligned16(bias) && ew_aligned16(out)) {
    const int64_t Cv = C / V, units = R * Cv, step = stride % Cv;
    int64_t c = first % Cv;
    for (int64_t u = first; u < units; u += stride) {
      const Pack<T, V> v = load_pack<T, V>(x, u);
      const Pack<T, V> b = load_pack<T, V>(bias, c);
      Pack<T, V> r;
#pragma unroll
      for (int k = 0; k < V; ++k) r.v[k] = to_storage<T>(op(float(v.v[k]) + float(b.v[k])));
      store_pack<T, V>(out, u, r);
      c += step;
      if (c >= Cv) c -= Cv;
    }
  } else {
    const int64_t n = R * C, step = stride % C;
    int64_t c = first % C;
    for (int64_t i = first; i < n; i += stride) {
      out[i] = to_storage<T>(op(float(x[i]) + float(bias[c])));
      c += step;
      if (c >= C) c -= C;
    }
  }
}

template <class T, class Op>
VIT_KERNEL void row_bias_map_kernel(const T* x, const T* bias, T* out, int64_t R, int64_t C, Op op) {
  row_bias_map<T, Op>(x, bias, out, R, C, op);
}

// partials: (chunks, C) -> acc[c] += sum_k partials[k,c], k in order, in float,
// rounded into acc's type once: the second stage of every column sum.
template <class TA>
VIT_DEVICE void column_sums_finish(const float* partials, TA* acc, int64_t chunks, int64_t C) {
  const int64_t c = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= C) return;
  float t = 0.f;
  for (int64_t k = 0; k < chunks; ++k) t += partials[k * C + c];
  acc[c] = to_storage<TA>(float(acc[c]) + t);
}
template <class TA>
VIT_KERNEL void column_sums_finish_kernel_t(const float* partials, TA* acc, int64_t chunks,
                                            int64_t C) {
  column_sums_finish<TA>(partials, acc, chunks, C);
}

}  // namespace vit::cuda::kernels
