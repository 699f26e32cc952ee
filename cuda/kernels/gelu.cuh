// GELU kernels, the CUDA twin of include/vit/ops/gelu.hpp: out = gelu(x),
// dx = dout·gelu'(x) over flat arrays, exact erf form or the tanh
// approximation, with the CPU op's formulas and constants so float32 results
// agree to rounding. They are the flat maps of elementwise.cuh (float4 when
// aligned, a scalar tail) with the GELU as the op, for float and bf16 storage
// (fp32 math, one rounding per result).
// The fused bias+GELU (ops::bias_gelu, issue 18 §4): forward out = gelu(x + b)
// is maps.cuh's row_bias_map_kernel with the GELU as the op; backward
// dx = dout·gelu'(x + b) with the bias gradient's column sums taken in the same
// pass (per-block float partials, then column_sums_finish in a fixed order: no
// atomics, bitwise repeatable).
// Deliberately avoided: __expf/fast tanh (accuracy against the CPU op).
#pragma once

#include "maps.cuh"  // ew_unary_kernel, ew_binary_kernel, elementwise_launch

namespace vit::cuda::kernels {

constexpr float kGeluSqrt1_2 = static_cast<float>(0.70710678118654752440);  // 1/√2
constexpr float kGeluSqrt2OverPi = static_cast<float>(0.7978845608028654);  // √(2/π)
constexpr float kGeluKappa = static_cast<float>(0.044715);
constexpr float kGelu3Kappa = static_cast<float>(3 * 0.044715);
constexpr float kGeluInvSqrt2Pi = static_cast<float>(0.3989422804014327);  // 1/√(2π)

VIT_DEVICE float gelu_value(float v, bool tanh_approx) {
  if (tanh_approx)
    return 0.5f * v * (1.f + tanhf(kGeluSqrt2OverPi * (v + kGeluKappa * (v * v * v))));
  return 0.5f * v * (1.f + erff(v * kGeluSqrt1_2));
}

/// d gelu / dv. Exact: Φ(v) + v·φ(v). Tanh: 1 − tanh²(u) written as 4·σ(2u)·σ(−2u),
/// which stays accurate where float tanh has saturated to ±1.
VIT_DEVICE float gelu_grad(float v, bool tanh_approx) {
  if (tanh_approx) {
    const float u = kGeluSqrt2OverPi * (v + kGeluKappa * (v * v * v));
    const float s = 1.f / (1.f + expf(-2.f * u)), sbar = 1.f / (1.f + expf(2.f * u));
    return s + 2.f * v * s * sbar * kGeluSqrt2OverPi * (1.f + kGelu3Kappa * (v * v));
  }
  return 0.5f * (1.f + erff(v * kGeluSqrt1_2)) + v * kGeluInvSqrt2Pi * expf(-0.5f * (v * v));
}

/// v -> gelu(v): the op of ew_unary_kernel (out may alias x).
template <bool kTanh>
struct GeluForwardOp {
  VIT_DEVICE float operator()(float v) const { return gelu_value(v, kTanh); }
};
/// (dout, v) -> dout·gelu'(v): the op of ew_binary_kernel (dx may alias dout or x).
template <bool kTanh>
struct GeluBackwardOp {
  VIT_DEVICE float operator()(float g, float v) const { return g * gelu_grad(v, kTanh); }
};

// ---- fused bias + GELU backward ---------------------------------------------------

constexpr int kBiasGeluTile = 32;       // vectors of columns per block (one per lane of a warp)
constexpr int kBiasGeluRowThreads = 8;  // rows read at once per block

struct BiasGeluBackwardLaunch {
  dim3 grid, block;  // grid (column tiles, row chunks)
  size_t smem;
  int64_t rows_per_chunk, chunks;
  int vec;  // columns per thread: kVecOf<T> when C % it == 0 and the pointers are aligned, else 1
  dim3 finish_grid, finish_block;  // only when chunks > 1
};

/// Row chunks so that about 1024 blocks fill the GPU, each chunk at least 64
/// rows; depends on (R, C, vec) only, so the summation order is fixed by the shape.
inline BiasGeluBackwardLaunch bias_gelu_backward_launch(int64_t R, int64_t C, int vec) {
  const int64_t cols_per_block = int64_t(kBiasGeluTile) * vec;
  const int64_t col_tiles = (C + cols_per_block - 1) / cols_per_block;
  int64_t chunks = 1024 / col_tiles;
  const int64_t max_chunks = (R + 63) / 64;
  chunks = chunks > max_chunks ? max_chunks : chunks;
  chunks = chunks < 1 ? 1 : (chunks > 65535 ? 65535 : chunks);
  const int64_t rows_per_chunk = R > 0 ? (R + chunks - 1) / chunks : 1;
  chunks = R > 0 ? (R + rows_per_chunk - 1) / rows_per_chunk : 1;
  const int64_t finish_blocks = (C + 255) / 256;
  return {dim3(static_cast<unsigned>(col_tiles), static_cast<unsigned>(chunks)),
          dim3(kBiasGeluTile, kBiasGeluRowThreads),
          0,
          rows_per_chunk,
          chunks,
          vec,
          dim3(static_cast<unsigned>(finish_blocks < 1 ? 1 : finish_blocks)),
          dim3(256)};
}

// dout, x: (R,C), bias: (C) -> dx (R,C) = dout·gelu'(x + bias) (written unless
// dx is null), and the float column sums of dx (unrounded) over rows
// [blockIdx.y·rows_per_chunk, +rows_per_chunk): into partials (chunks, C) when
// partials is non-null, else (single chunk) added to dbias (rounded once into
// its type) unless dbias is null too. Thread (tx, ty) owns columns
// [(blockIdx.x·32 + tx)·V, +V) and rows r0 + ty, r0 + ty + 8, ...; V > 1 needs
// C % V == 0 and 16-byte aligned dout, x, bias and dx.
template <class T, class TA, int V, bool kTanh>
VIT_KERNEL void bias_gelu_backward_kernel(const T* dout, const T* x, const T* bias, T* dx, TA* dbias,
                                          float* partials, int64_t R, int64_t C,
                                          int64_t rows_per_chunk) {
  __shared__ float part[kBiasGeluRowThreads][kBiasGeluTile * V + 1];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t c0 = (int64_t(blockIdx.x) * kBiasGeluTile + tx) * V;
  const int64_t r0 = int64_t(blockIdx.y) * rows_per_chunk;
  const int64_t r1 = r0 + rows_per_chunk < R ? r0 + rows_per_chunk : R;
  float s[V];
#pragma unroll
  for (int k = 0; k < V; ++k) s[k] = 0.f;
  if (c0 < C) {
    float b[V];
    const Pack<T, V> bp = load_pack<T, V>(bias, c0 / V);
#pragma unroll
    for (int k = 0; k < V; ++k) b[k] = float(bp.v[k]);
    const int64_t Cv = C / V, u0 = c0 / V;  // in vectors: no division per row
    for (int64_t r = r0 + ty; r < r1; r += kBiasGeluRowThreads) {
      const int64_t unit = r * Cv + u0;
      const Pack<T, V> g = load_pack<T, V>(dout, unit);
      const Pack<T, V> v = load_pack<T, V>(x, unit);
      Pack<T, V> d;
#pragma unroll
      for (int k = 0; k < V; ++k) {
        const float dk = float(g.v[k]) * gelu_grad(float(v.v[k]) + b[k], kTanh);
        s[k] += dk;
        d.v[k] = to_storage<T>(dk);
      }
      if (dx) store_pack<T, V>(dx, unit, d);
    }
  }
#pragma unroll
  for (int k = 0; k < V; ++k) part[ty][tx * V + k] = s[k];
  __syncthreads();
  if (!partials && !dbias) return;
  // Each of the block's 256 threads finishes (at most) one of its 32·V columns.
  for (int j = ty * kBiasGeluTile + tx; j < kBiasGeluTile * V; j += kBiasGeluTile * kBiasGeluRowThreads) {
    const int64_t c = int64_t(blockIdx.x) * kBiasGeluTile * V + j;
    if (c >= C) continue;
    float t = part[0][j];
    for (int k = 1; k < kBiasGeluRowThreads; ++k) t += part[k][j];
    if (partials)
      partials[int64_t(blockIdx.y) * C + c] = t;
    else
      dbias[c] = to_storage<TA>(float(dbias[c]) + t);
  }
}

}  // namespace vit::cuda::kernels
