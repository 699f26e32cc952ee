// Row softmax kernels, the CUDA twin of include/vit/ops/softmax.hpp:
// y = exp(x − max) / Σ exp(x − max) over each row, dx = y ⊙ (dy − Σ dy·y).
// Templates on the storage type T (float or vit::bf16: bf16 in and out, float
// math). One warp per row with the row in registers (rows::RowPlan of
// rows.cuh; 16-byte chunks of 4 floats or 8 bf16 when the row length and the
// pointers allow), a block per row beyond kMaxRegisterRow.
// Deliberately avoided: __expf (its error would show against the CPU op) and
// an online max/sum (the row is in registers, so two exact passes are free).
//
// Short rows, what changed for bandwidth (issue 18 §4; reasoned from bytes
// moved and bytes in flight, not measured: no GPU was available). Bytes moved
// are already the minimum (forward: n·sizeof(T) read and written per row;
// backward: 2 read, 1 written), so the gap to copy was latency, not traffic.
// Attention-shaped rows (n = 65 or 197: odd, so scalar loads) gave a warp 260
// or 788 bytes to load, then 5 dependent shuffles for the max, the exps, 5 more
// for the sum and the store before its next row: too few bytes in flight per
// SM to cover DRAM latency. The forward, with one tensor to read and two
// reductions, suffered most (47-49% of copy at n = 65, 76% at 197; the
// backward was 80-98%). Now a warp owns rows::rows_per_warp consecutive rows
// per step (8 at n = 65, 4 at n = 197 forward; 4 and 2 backward; rows in
// 16-byte bf16 chunks take twice as many, their bytes being half; scalar rows
// now hold 3 or 7 values per lane, not 4 or 8): it issues all their
// loads before the first shuffle and runs their reductions side by side, so
// it keeps ~4 KB in flight per step and the shuffle latency is paid once per
// step, not per row. The rows are adjacent, so sectors split by a row
// boundary are read by the same warp in the same step.
#pragma once

#include "rows.cuh"  // row layout in a warp, kRowWarps, kLongRowThreads

namespace vit::cuda::kernels {

/// x: (R,n) -> out: (R,n). out may alias x (a warp reads its rows before writing them).
template <class T, int kVec, int kChunks>
VIT_KERNEL VIT_LAUNCH_BOUNDS(kRowWarps * kWarp, 4) void softmax_forward_warp_kernel(
    const T* x, T* out, int64_t R, int64_t n) {
  constexpr int kRows = rows::rows_per_warp<T>(kVec, kVec * kChunks, 1);
  const int lane = static_cast<int>(threadIdx.x) % kWarp;
  const int64_t warps = blockDim.x / kWarp;
  for (int64_t row0 = (blockIdx.x * warps + threadIdx.x / kWarp) * kRows; row0 < R;
       row0 += gridDim.x * warps * kRows) {
    float v[kRows][kChunks][kVec];
    float mx[kRows];
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      const int64_t base = (row0 + r) * n;
      const bool live = row0 + r < R;
      mx[r] = -INFINITY;
#pragma unroll
      for (int j = 0; j < kChunks; ++j) {
        const int64_t col = (j * kWarp + lane) * kVec;
        if (live && col < n) {
          rows::load_vec<kVec>(x + base + col, v[r][j]);
#pragma unroll
          for (int k = 0; k < kVec; ++k) mx[r] = fmaxf(mx[r], v[r][j][k]);
        } else {
#pragma unroll
          for (int k = 0; k < kVec; ++k) v[r][j][k] = 0.f;  // never used; keeps the array defined
        }
      }
    }
    float sum[kRows];
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      mx[r] = warp_max(mx[r]);
      sum[r] = 0.f;
      if (row0 + r < R) {
#pragma unroll
        for (int j = 0; j < kChunks; ++j) {
          if ((j * kWarp + lane) * kVec < n) {
#pragma unroll
            for (int k = 0; k < kVec; ++k) {
              v[r][j][k] = expf(v[r][j][k] - mx[r]);
              sum[r] += v[r][j][k];
            }
          }
        }
      }
    }
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      const float total = warp_sum(sum[r]);
      if (row0 + r >= R) continue;  // warp-uniform, after the last shuffle of the row
      const float inv = 1.f / total;  // as the CPU op: multiply by the reciprocal
      const int64_t base = (row0 + r) * n;
#pragma unroll
      for (int j = 0; j < kChunks; ++j) {
        const int64_t col = (j * kWarp + lane) * kVec;
        if (col < n) {
#pragma unroll
          for (int k = 0; k < kVec; ++k) v[r][j][k] *= inv;
          rows::store_vec<kVec>(out + base + col, v[r][j]);
        }
      }
    }
  }
}

/// y, dy: (R,n) -> dx: (R,n). dx may alias y or dy.
template <class T, int kVec, int kChunks>
VIT_KERNEL VIT_LAUNCH_BOUNDS(kRowWarps * kWarp, 4) void softmax_backward_warp_kernel(
    const T* y, const T* dy, T* dx, int64_t R, int64_t n) {
  constexpr int kRows = rows::rows_per_warp<T>(kVec, kVec * kChunks, 2);
  const int lane = static_cast<int>(threadIdx.x) % kWarp;
  const int64_t warps = blockDim.x / kWarp;
  for (int64_t row0 = (blockIdx.x * warps + threadIdx.x / kWarp) * kRows; row0 < R;
       row0 += gridDim.x * warps * kRows) {
    float yv[kRows][kChunks][kVec], gv[kRows][kChunks][kVec];
    float dot[kRows];
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      const int64_t base = (row0 + r) * n;
      const bool live = row0 + r < R;
      dot[r] = 0.f;
#pragma unroll
      for (int j = 0; j < kChunks; ++j) {
        const int64_t col = (j * kWarp + lane) * kVec;
        if (live && col < n) {
          rows::load_vec<kVec>(y + base + col, yv[r][j]);
          rows::load_vec<kVec>(dy + base + col, gv[r][j]);
#pragma unroll
          for (int k = 0; k < kVec; ++k) dot[r] += gv[r][j][k] * yv[r][j][k];
        } else {
#pragma unroll
          for (int k = 0; k < kVec; ++k) yv[r][j][k] = gv[r][j][k] = 0.f;
        }
      }
    }
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      const float total = warp_sum(dot[r]);
      if (row0 + r >= R) continue;  // warp-uniform, after the row's shuffles
      const int64_t base = (row0 + r) * n;
#pragma unroll
      for (int j = 0; j < kChunks; ++j) {
        const int64_t col = (j * kWarp + lane) * kVec;
        if (col < n) {
          float d[kVec];
#pragma unroll
          for (int k = 0; k < kVec; ++k) d[k] = yv[r][j][k] * (gv[r][j][k] - total);
          rows::store_vec<kVec>(dx + base + col, d);
        }
      }
    }
  }
}

/// Rows longer than kMaxRegisterRow: one block per row, max / sum / write passes.
template <class T, int kThreads>
VIT_KERNEL void softmax_forward_long_kernel(const T* x, T* out, int64_t R, int64_t n) {
  __shared__ float scratch[kWarp];
  for (int64_t row = blockIdx.x; row < R; row += gridDim.x) {
    const T* xr = x + row * n;
    float mx = -INFINITY;
    for (int64_t c = threadIdx.x; c < n; c += kThreads) mx = fmaxf(mx, rows::load1(xr + c));
    mx = block_max(mx, scratch);
    float sum = 0.f;
    for (int64_t c = threadIdx.x; c < n; c += kThreads) sum += expf(rows::load1(xr + c) - mx);
    const float inv = 1.f / block_sum(sum, scratch);
    T* o = out + row * n;
    for (int64_t c = threadIdx.x; c < n; c += kThreads)
      o[c] = rows::to_storage<T>(expf(rows::load1(xr + c) - mx) * inv);
  }
}

template <class T, int kThreads>
VIT_KERNEL void softmax_backward_long_kernel(const T* y, const T* dy, T* dx, int64_t R,
                                             int64_t n) {
  __shared__ float scratch[kWarp];
  for (int64_t row = blockIdx.x; row < R; row += gridDim.x) {
    const int64_t base = row * n;
    float dot = 0.f;
    for (int64_t c = threadIdx.x; c < n; c += kThreads)
      dot += rows::load1(dy + base + c) * rows::load1(y + base + c);
    dot = block_sum(dot, scratch);
    for (int64_t c = threadIdx.x; c < n; c += kThreads)
      dx[base + c] =
          rows::to_storage<T>(rows::load1(y + base + c) * (rows::load1(dy + base + c) - dot));
  }
}

template <class T>
using SoftmaxForwardKernel = void (*)(const T*, T*, int64_t, int64_t);
template <class T>
using SoftmaxBackwardKernel = void (*)(const T*, const T*, T*, int64_t, int64_t);

template <class Kernel>
struct SoftmaxLaunch {
  dim3 grid, block;
  size_t smem = 0;
  Kernel kernel;
};

namespace softmax_detail {
/// Blocks of kRowWarps warps, each warp rows_per_warp rows of the plan per step.
template <class T>
inline unsigned warp_grid(int64_t R, rows::RowPlan plan, int tensors) {
  const int rows_per_warp = rows::rows_per_warp<T>(plan.vec, plan.vec * plan.chunks, tensors);
  return rows::grid_for(rows::ceil_div(R, int64_t(kRowWarps) * rows_per_warp));
}
}  // namespace softmax_detail

/// vec_ok: x and out 16-byte aligned (row_plan adds n % kVec16<T> == 0).
template <class T = float>
inline SoftmaxLaunch<SoftmaxForwardKernel<T>> softmax_forward_geometry(int64_t R, int64_t n,
                                                                       bool vec_ok) {
  constexpr int kWide = rows::kVec16<T>;
  const rows::RowPlan plan = rows::row_plan(n, vec_ok, kWide);
  if (plan.chunks == 0)
    return {dim3(rows::grid_for(R)), dim3(kLongRowThreads), 0,
            softmax_forward_long_kernel<T, kLongRowThreads>};
  return {dim3(softmax_detail::warp_grid<T>(R, plan, 1)), dim3(kRowWarps * kWarp), 0,
          rows::pick_row_kernel<kWide>(plan, [](auto vec, auto chunks) -> SoftmaxForwardKernel<T> {
            return softmax_forward_warp_kernel<T, decltype(vec)::value, decltype(chunks)::value>;
          })};
}

/// vec_ok: y, dy and dx 16-byte aligned (row_plan adds n % kVec16<T> == 0).
template <class T = float>
inline SoftmaxLaunch<SoftmaxBackwardKernel<T>> softmax_backward_geometry(int64_t R, int64_t n,
                                                                         bool vec_ok) {
  constexpr int kWide = rows::kVec16<T>;
  const rows::RowPlan plan = rows::row_plan(n, vec_ok, kWide);
  if (plan.chunks == 0)
    return {dim3(rows::grid_for(R)), dim3(kLongRowThreads), 0,
            softmax_backward_long_kernel<T, kLongRowThreads>};
  return {dim3(softmax_detail::warp_grid<T>(R, plan, 2)), dim3(kRowWarps * kWarp), 0,
          rows::pick_row_kernel<kWide>(plan, [](auto vec, auto chunks) -> SoftmaxBackwardKernel<T> {
            return softmax_backward_warp_kernel<T, decltype(vec)::value, decltype(chunks)::value>;
          })};
}

}  // namespace vit::cuda::kernels
