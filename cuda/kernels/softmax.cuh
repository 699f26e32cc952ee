// Row softmax kernels, the CUDA twin of include/vit/ops/softmax.hpp:
// y = exp(x − max) / Σ exp(x − max) over each row, dx = y ⊙ (dy − Σ dy·y).
// One warp per row with the row in registers (rows::RowPlan of rows.cuh), a
// block per row beyond kMaxRegisterRow.
// Deliberately avoided: __expf (its error would show against the CPU op) and
// an online max/sum (the row is in registers, so two exact passes are free).
#pragma once

#include "rows.cuh"  // row layout in a warp, kRowWarps, kLongRowThreads

namespace vit::cuda::kernels {

/// x: (R,n) -> out: (R,n). out may alias x (a warp reads its row before writing it).
template <int kVec, int kChunks>
VIT_KERNEL void softmax_forward_warp_kernel(const float* x, float* out, int64_t R, int64_t n) {
  const int lane = static_cast<int>(threadIdx.x) % kWarp;
  const int64_t warps = blockDim.x / kWarp;
  for (int64_t row = blockIdx.x * warps + threadIdx.x / kWarp; row < R; row += gridDim.x * warps) {
    const int64_t base = row * n;
    float v[kChunks][kVec];
    float mx = -INFINITY;
#pragma unroll
    for (int j = 0; j < kChunks; ++j) {
      const int64_t col = (j * kWarp + lane) * kVec;
      if (col < n) {
        rows::load_vec<kVec>(x + base + col, v[j]);
#pragma unroll
        for (int k = 0; k < kVec; ++k) mx = fmaxf(mx, v[j][k]);
      } else {
#pragma unroll
        for (int k = 0; k < kVec; ++k) v[j][k] = 0.f;  // never used; keeps the array defined
      }
    }
    mx = warp_max(mx);
    float sum = 0.f;
#pragma unroll
    for (int j = 0; j < kChunks; ++j) {
      if ((j * kWarp + lane) * kVec < n) {
#pragma unroll
        for (int k = 0; k < kVec; ++k) {
          v[j][k] = expf(v[j][k] - mx);
          sum += v[j][k];
        }
      }
    }
    const float inv = 1.f / warp_sum(sum);  // as the CPU op: multiply by the reciprocal
#pragma unroll
    for (int j = 0; j < kChunks; ++j) {
      const int64_t col = (j * kWarp + lane) * kVec;
      if (col < n) {
#pragma unroll
        for (int k = 0; k < kVec; ++k) v[j][k] *= inv;
        rows::store_vec<kVec>(out + base + col, v[j]);
      }
    }
  }
}

/// y, dy: (R,n) -> dx: (R,n). dx may alias y or dy.
template <int kVec, int kChunks>
VIT_KERNEL void softmax_backward_warp_kernel(const float* y, const float* dy, float* dx, int64_t R,
                                             int64_t n) {
  const int lane = static_cast<int>(threadIdx.x) % kWarp;
  const int64_t warps = blockDim.x / kWarp;
  for (int64_t row = blockIdx.x * warps + threadIdx.x / kWarp; row < R; row += gridDim.x * warps) {
    const int64_t base = row * n;
    float yv[kChunks][kVec], gv[kChunks][kVec];
    float dot = 0.f;
#pragma unroll
    for (int j = 0; j < kChunks; ++j) {
      const int64_t col = (j * kWarp + lane) * kVec;
      if (col < n) {
        rows::load_vec<kVec>(y + base + col, yv[j]);
        rows::load_vec<kVec>(dy + base + col, gv[j]);
#pragma unroll
        for (int k = 0; k < kVec; ++k) dot += gv[j][k] * yv[j][k];
      } else {
#pragma unroll
        for (int k = 0; k < kVec; ++k) yv[j][k] = gv[j][k] = 0.f;
      }
    }
    dot = warp_sum(dot);
#pragma unroll
    for (int j = 0; j < kChunks; ++j) {
      const int64_t col = (j * kWarp + lane) * kVec;
      if (col < n) {
        float d[kVec];
#pragma unroll
        for (int k = 0; k < kVec; ++k) d[k] = yv[j][k] * (gv[j][k] - dot);
        rows::store_vec<kVec>(dx + base + col, d);
      }
    }
  }
}

/// Rows longer than kMaxRegisterRow: one block per row, max / sum / write passes.
template <int kThreads>
VIT_KERNEL void softmax_forward_long_kernel(const float* x, float* out, int64_t R, int64_t n) {
  __shared__ float scratch[kWarp];
  for (int64_t row = blockIdx.x; row < R; row += gridDim.x) {
    const float* xr = x + row * n;
    float mx = -INFINITY;
    for (int64_t c = threadIdx.x; c < n; c += kThreads) mx = fmaxf(mx, xr[c]);
    mx = block_max(mx, scratch);
    float sum = 0.f;
    for (int64_t c = threadIdx.x; c < n; c += kThreads) sum += expf(xr[c] - mx);
    const float inv = 1.f / block_sum(sum, scratch);
    float* o = out + row * n;
    for (int64_t c = threadIdx.x; c < n; c += kThreads) o[c] = expf(xr[c] - mx) * inv;
  }
}

template <int kThreads>
VIT_KERNEL void softmax_backward_long_kernel(const float* y, const float* dy, float* dx, int64_t R,
                                             int64_t n) {
  __shared__ float scratch[kWarp];
  for (int64_t row = blockIdx.x; row < R; row += gridDim.x) {
    const int64_t base = row * n;
    float dot = 0.f;
    for (int64_t c = threadIdx.x; c < n; c += kThreads) dot += dy[base + c] * y[base + c];
    dot = block_sum(dot, scratch);
    for (int64_t c = threadIdx.x; c < n; c += kThreads)
      dx[base + c] = y[base + c] * (dy[base + c] - dot);
  }
}

using SoftmaxForwardKernel = void (*)(const float*, float*, int64_t, int64_t);
using SoftmaxBackwardKernel = void (*)(const float*, const float*, float*, int64_t, int64_t);

template <class Kernel>
struct SoftmaxLaunch {
  dim3 grid, block;
  size_t smem = 0;
  Kernel kernel;
};

/// vec4_ok: x and out 16-byte aligned (row_plan adds n % 4 == 0).
inline SoftmaxLaunch<SoftmaxForwardKernel> softmax_forward_geometry(int64_t R, int64_t n,
                                                                    bool vec4_ok) {
  const rows::RowPlan plan = rows::row_plan(n, vec4_ok);
  if (plan.chunks == 0)
    return {dim3(rows::grid_for(R)), dim3(kLongRowThreads), 0,
            softmax_forward_long_kernel<kLongRowThreads>};
  return {dim3(rows::grid_for(rows::ceil_div(R, kRowWarps))), dim3(kRowWarps * kWarp), 0,
          rows::pick_row_kernel(plan, [](auto vec, auto chunks) -> SoftmaxForwardKernel {
            return softmax_forward_warp_kernel<decltype(vec)::value, decltype(chunks)::value>;
          })};
}

/// vec4_ok: y, dy and dx 16-byte aligned (row_plan adds n % 4 == 0).
inline SoftmaxLaunch<SoftmaxBackwardKernel> softmax_backward_geometry(int64_t R, int64_t n,
                                                                      bool vec4_ok) {
  const rows::RowPlan plan = rows::row_plan(n, vec4_ok);
  if (plan.chunks == 0)
    return {dim3(rows::grid_for(R)), dim3(kLongRowThreads), 0,
            softmax_backward_long_kernel<kLongRowThreads>};
  return {dim3(rows::grid_for(rows::ceil_div(R, kRowWarps))), dim3(kRowWarps * kWarp), 0,
          rows::pick_row_kernel(plan, [](auto vec, auto chunks) -> SoftmaxBackwardKernel {
            return softmax_backward_warp_kernel<decltype(vec)::value, decltype(chunks)::value>;
          })};
}

}  // namespace vit::cuda::kernels
