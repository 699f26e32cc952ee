// bias + GELU kernels, the CUDA twin of include/vit/ops/gelu.hpp applied to
// x + bias (the fc1 output of the MLP): out = gelu(x + b), dx = dout·gelu'(x + b),
// dbias += Σ_rows dx. Exact erf form or the tanh approximation, with the CPU
// op's formulas and constants so float32 results agree to rounding.
// Deliberately avoided: a 64-bit modulo per element for the bias column (the
// column advances incrementally), __expf/fast tanh (accuracy against the CPU
// op), and float atomics for dbias (row-chunk partials, then the fixed-order
// column_partials_add_kernel of rows.cuh).
#pragma once

#include "rows.cuh"  // float4 helpers, column_partials_add_kernel

namespace vit::cuda::kernels {

constexpr float kGeluSqrt1_2 = static_cast<float>(0.70710678118654752440);  // 1/√2
constexpr float kGeluSqrt2OverPi = static_cast<float>(0.7978845608028654);  // √(2/π)
constexpr float kGeluKappa = static_cast<float>(0.044715);
constexpr float kGelu3Kappa = static_cast<float>(3 * 0.044715);
constexpr float kGeluInvSqrt2Pi = static_cast<float>(0.3989422804014327);  // 1/√(2π)
/// Threads per block of the elementwise kernels, and the bound on their grid.
constexpr int kGeluThreads = 256;
constexpr int64_t kGeluMaxBlocks = 8192;

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

/// x: (R,C), bias: (C) or null -> out: (R,C), as n_vec vectors of kVec floats
/// (grid-stride). kVec 4 needs C % 4 == 0 when bias is given, so a vector never
/// straddles two rows. out may alias x.
template <int kVec>
VIT_KERNEL void bias_gelu_forward_kernel(const float* x, const float* bias, float* out,
                                         int64_t n_vec, int64_t C, bool tanh_approx) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  int64_t col = (i * kVec) % C;
  const int64_t col_step = (stride * kVec) % C;
  for (; i < n_vec; i += stride) {
    float v[kVec];
    rows::load_vec<kVec>(x + i * kVec, v);
    if (bias) {
      float b[kVec];
      rows::load_vec<kVec>(bias + col, b);
#pragma unroll
      for (int k = 0; k < kVec; ++k) v[k] += b[k];
    }
#pragma unroll
    for (int k = 0; k < kVec; ++k) v[k] = gelu_value(v[k], tanh_approx);
    rows::store_vec<kVec>(out + i * kVec, v);
    col += col_step;
    if (col >= C) col -= C;
  }
}

/// dout, x: (R,C), bias: (C) or null -> dx: (R,C), when no dbias is wanted.
/// dx may alias dout or x.
template <int kVec>
VIT_KERNEL void bias_gelu_backward_kernel(const float* dout, const float* x, const float* bias,
                                          float* dx, int64_t n_vec, int64_t C, bool tanh_approx) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  int64_t col = (i * kVec) % C;
  const int64_t col_step = (stride * kVec) % C;
  for (; i < n_vec; i += stride) {
    float g[kVec], v[kVec];
    rows::load_vec<kVec>(dout + i * kVec, g);
    rows::load_vec<kVec>(x + i * kVec, v);
    if (bias) {
      float b[kVec];
      rows::load_vec<kVec>(bias + col, b);
#pragma unroll
      for (int k = 0; k < kVec; ++k) v[k] += b[k];
    }
#pragma unroll
    for (int k = 0; k < kVec; ++k) g[k] *= gelu_grad(v[k], tanh_approx);
    rows::store_vec<kVec>(dx + i * kVec, g);
    col += col_step;
    if (col >= C) col -= C;
  }
}

/// dout, x: (R,C), bias: (C) or null -> dx: (R,C), partials: (gridDim.y, C).
/// Block (tx, ty): thread x owns kVec columns, the ty threads of a column walk
/// the block's chunk of rows (rows_per_chunk) ty apart, keeping their column
/// sums in registers; shared memory then adds the ty sums in y order.
template <int kVec>
VIT_KERNEL void bias_gelu_backward_dbias_kernel(const float* dout, const float* x,
                                                const float* bias, float* dx, float* partials,
                                                int64_t R, int64_t C, int64_t rows_per_chunk,
                                                bool tanh_approx) {
  VIT_DYNAMIC_SMEM(float, thread_sums);  // (ty, tx·kVec)
  const int64_t col = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) * kVec;
  const bool active = col < C;
  const int64_t row_begin = blockIdx.y * rows_per_chunk;
  const int64_t row_end = row_begin + rows_per_chunk < R ? row_begin + rows_per_chunk : R;
  float acc[kVec] = {};
  if (active) {
    float b[kVec] = {};
    if (bias) rows::load_vec<kVec>(bias + col, b);
#pragma unroll 2
    for (int64_t row = row_begin + threadIdx.y; row < row_end; row += blockDim.y) {
      float g[kVec], v[kVec];
      rows::load_vec<kVec>(dout + row * C + col, g);
      rows::load_vec<kVec>(x + row * C + col, v);
#pragma unroll
      for (int k = 0; k < kVec; ++k) {
        g[k] *= gelu_grad(v[k] + b[k], tanh_approx);
        acc[k] += g[k];
      }
      rows::store_vec<kVec>(dx + row * C + col, g);
    }
  }
  float* mine = thread_sums + (threadIdx.y * blockDim.x + threadIdx.x) * kVec;
#pragma unroll
  for (int k = 0; k < kVec; ++k) mine[k] = acc[k];
  __syncthreads();
  if (threadIdx.y == 0 && active) {
    float total[kVec] = {};
    for (unsigned y = 0; y < blockDim.y; ++y) {
#pragma unroll
      for (int k = 0; k < kVec; ++k)
        total[k] += thread_sums[(y * blockDim.x + threadIdx.x) * kVec + k];
    }
#pragma unroll
    for (int k = 0; k < kVec; ++k) partials[blockIdx.y * C + col + k] = total[k];
  }
}

using BiasGeluForwardKernel = void (*)(const float*, const float*, float*, int64_t, int64_t, bool);
using BiasGeluBackwardKernel = void (*)(const float*, const float*, const float*, float*, int64_t,
                                        int64_t, bool);
using BiasGeluBackwardDbiasKernel = void (*)(const float*, const float*, const float*, float*,
                                             float*, int64_t, int64_t, int64_t, bool);

template <class Kernel>
struct GeluLaunch {
  dim3 grid, block;
  size_t smem = 0;
  Kernel kernel;
  int64_t n_vec = 0;  // vectors of the elementwise kernels
};

/// float4 when every pointer is 16-byte aligned (vec4_ok) and vectors stay in one
/// row: C % 4 == 0 with a bias, (R·C) % 4 == 0 without.
inline int gelu_vec(int64_t R, int64_t C, bool has_bias, bool vec4_ok) {
  return vec4_ok && (has_bias ? C % 4 == 0 : (R * C) % 4 == 0) ? 4 : 1;
}

inline GeluLaunch<BiasGeluForwardKernel> bias_gelu_forward_geometry(int64_t R, int64_t C,
                                                                    bool has_bias, bool vec4_ok) {
  const int vec = gelu_vec(R, C, has_bias, vec4_ok);
  const int64_t n_vec = R * C / vec;
  const int64_t blocks = rows::ceil_div(n_vec, kGeluThreads);
  return {dim3(static_cast<unsigned>(
              blocks < 1 ? 1 : (blocks > kGeluMaxBlocks ? kGeluMaxBlocks : blocks))),
          dim3(kGeluThreads), 0,
          vec == 4 ? bias_gelu_forward_kernel<4> : bias_gelu_forward_kernel<1>, n_vec};
}

inline GeluLaunch<BiasGeluBackwardKernel> bias_gelu_backward_geometry(int64_t R, int64_t C,
                                                                      bool has_bias, bool vec4_ok) {
  const int vec = gelu_vec(R, C, has_bias, vec4_ok);
  const int64_t n_vec = R * C / vec;
  const int64_t blocks = rows::ceil_div(n_vec, kGeluThreads);
  return {dim3(static_cast<unsigned>(
              blocks < 1 ? 1 : (blocks > kGeluMaxBlocks ? kGeluMaxBlocks : blocks))),
          dim3(kGeluThreads), 0,
          vec == 4 ? bias_gelu_backward_kernel<4> : bias_gelu_backward_kernel<1>, n_vec};
}

struct BiasGeluDbiasLaunch {
  dim3 grid, block;
  size_t smem = 0;
  BiasGeluBackwardDbiasKernel kernel;
  int64_t rows_per_chunk = 1;
  int64_t partial_rows = 0;  // = grid.y: the partials buffer is (partial_rows, C)
};

/// A pure function of (R, C, vec4_ok), so dbias does not depend on the device.
/// A whole row of vectors per block when it fits (C/vec <= 1024), with enough
/// rows side by side to make ~256 threads; wider rows are tiled 256 vectors at a time.
inline BiasGeluDbiasLaunch bias_gelu_backward_dbias_geometry(int64_t R, int64_t C, bool vec4_ok) {
  const int vec = gelu_vec(R, C, true, vec4_ok);
  const int64_t cols_v = C / vec;
  const int64_t tx = cols_v <= 1024 ? cols_v : 256;
  const int64_t ty = tx >= 256 ? 1 : 256 / tx;
  BiasGeluDbiasLaunch l;
  const int64_t wanted = rows::ceil_div(R, kTargetPartialBlocks);
  l.rows_per_chunk = wanted > ty ? wanted : ty;
  l.partial_rows = rows::ceil_div(R, l.rows_per_chunk);
  l.grid = dim3(static_cast<unsigned>(rows::ceil_div(cols_v, tx)),
                static_cast<unsigned>(l.partial_rows));
  l.block = dim3(static_cast<unsigned>(tx), static_cast<unsigned>(ty));
  l.smem = static_cast<size_t>(tx * ty * vec) * sizeof(float);
  l.kernel = vec == 4 ? bias_gelu_backward_dbias_kernel<4> : bias_gelu_backward_dbias_kernel<1>;
  return l;
}

}  // namespace vit::cuda::kernels
