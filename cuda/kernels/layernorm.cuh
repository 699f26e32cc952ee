// LayerNorm kernels, the CUDA twin of include/vit/ops/layernorm.hpp: forward
// saving mean/rstd, backward with dx per row and deterministic weight/bias
// gradients.
// Deliberately avoided: float atomics (per-block partials, then
// column_partials_add_kernel sums them in a fixed order), Welford (a row held
// in registers makes the exact two-pass mean/variance free), and staging rows
// in shared memory.
#pragma once

#include <cstdint>

#include "rows.cuh"  // row layout in a warp, column_partials_add_kernel

namespace vit::cuda::kernels {

// ---- forward ---------------------------------------------------------------------------

/// x: (R,C) -> out = LN(x): (R,C), mean, rstd: (R) (skipped when null). One
/// warp per row, the row in registers. Every element is read before the warp
/// writes any, so out may alias x.
template <int kVec, int kChunks>
VIT_KERNEL void layer_norm_forward_warp_kernel(const float* x, const float* weight,
                                               const float* bias, float* out, float* mean,
                                               float* rstd, int64_t R, int64_t C, float eps) {
  const int lane = static_cast<int>(threadIdx.x) % kWarp;
  const int64_t warps = blockDim.x / kWarp;
  for (int64_t row = blockIdx.x * warps + threadIdx.x / kWarp; row < R; row += gridDim.x * warps) {
    const int64_t base = row * C;
    float v[kChunks][kVec];
    float sum = 0.f;
#pragma unroll
    for (int j = 0; j < kChunks; ++j) {
      const int64_t col = (j * kWarp + lane) * kVec;
      if (col < C) {
        rows::load_vec<kVec>(x + base + col, v[j]);
#pragma unroll
        for (int k = 0; k < kVec; ++k) sum += v[j][k];
      } else {
#pragma unroll
        for (int k = 0; k < kVec; ++k) v[j][k] = 0.f;
      }
    }
    const float m = warp_sum(sum) / static_cast<float>(C);
    float sq = 0.f;  // centred second pass: exact where E[x²] − m² would cancel
#pragma unroll
    for (int j = 0; j < kChunks; ++j) {
      if ((j * kWarp + lane) * kVec < C) {
#pragma unroll
        for (int k = 0; k < kVec; ++k) sq += (v[j][k] - m) * (v[j][k] - m);
      }
    }
    const float rs = rsqrtf(warp_sum(sq) / static_cast<float>(C) + eps);
#pragma unroll
    for (int j = 0; j < kChunks; ++j) {
      const int64_t col = (j * kWarp + lane) * kVec;
      if (col < C) {
        float w[kVec], b[kVec], o[kVec];
        rows::load_vec<kVec>(weight + col, w);
        rows::load_vec<kVec>(bias + col, b);
#pragma unroll
        for (int k = 0; k < kVec; ++k) o[k] = (v[j][k] - m) * rs * w[k] + b[k];
        rows::store_vec<kVec>(out + base + col, o);
      }
    }
    if (lane == 0) {
      if (mean) mean[row] = m;
      if (rstd) rstd[row] = rs;
    }
  }
}

/// Same contract for rows longer than kMaxRegisterRow: one block per row, three
/// passes over the row (mostly from L1/L2). Only the last pass writes, and each
/// thread writes just the columns it reads, so out may still alias x.
template <int kThreads>
VIT_KERNEL void layer_norm_forward_long_kernel(const float* x, const float* weight,
                                               const float* bias, float* out, float* mean,
                                               float* rstd, int64_t R, int64_t C, float eps) {
  __shared__ float scratch[kWarp];
  for (int64_t row = blockIdx.x; row < R; row += gridDim.x) {
    const int64_t base = row * C;
    float sum = 0.f;
    for (int64_t c = threadIdx.x; c < C; c += kThreads) sum += x[base + c];
    const float m = block_sum(sum, scratch) / static_cast<float>(C);
    float sq = 0.f;
    for (int64_t c = threadIdx.x; c < C; c += kThreads) {
      const float d = x[base + c] - m;
      sq += d * d;
    }
    const float rs = rsqrtf(block_sum(sq, scratch) / static_cast<float>(C) + eps);
    for (int64_t c = threadIdx.x; c < C; c += kThreads)
      out[base + c] = (x[base + c] - m) * rs * weight[c] + bias[c];
    if (threadIdx.x == 0) {
      if (mean) mean[row] = m;
      if (rstd) rstd[row] = rs;
    }
  }
}

using LayerNormForwardKernel = void (*)(const float*, const float*, const float*, float*, float*,
                                        float*, int64_t, int64_t, float);
struct LayerNormForwardLaunch {
  dim3 grid, block;
  size_t smem = 0;
  LayerNormForwardKernel kernel;
};
/// vec4_ok: every pointer 16-byte aligned (row_plan adds C % 4 == 0).
inline LayerNormForwardLaunch layer_norm_forward_geometry(int64_t R, int64_t C, bool vec4_ok) {
  const rows::RowPlan plan = rows::row_plan(C, vec4_ok);
  if (plan.chunks == 0)
    return {dim3(rows::grid_for(R)), dim3(kLongRowThreads), 0,
            layer_norm_forward_long_kernel<kLongRowThreads>};
  return {dim3(rows::grid_for(rows::ceil_div(R, kRowWarps))), dim3(kRowWarps * kWarp), 0,
          rows::pick_row_kernel(plan, [](auto vec, auto chunks) -> LayerNormForwardKernel {
            return layer_norm_forward_warp_kernel<decltype(vec)::value, decltype(chunks)::value>;
          })};
}

// ---- backward --------------------------------------------------------------------------
// dx = rstd·(dy − mean(dy) − x̂·mean(dy·x̂)) with dy = dout·w, x̂ = (x − mean)·rstd;
// dweight += Σ_rows dout·x̂, dbias += Σ_rows dout. Block b owns rows
// [b·rows_per_block, (b+1)·rows_per_block) and writes its column sums to
// partials[b] = (dweight part (C), dbias part (C)); column_partials_add_kernel
// then adds them up in block order.

/// dout, x: (R,C), mean, rstd: (R) -> dx: (R,C) (skipped when null),
/// partials: (gridDim.x, 2C) (skipped when null). One warp per row; a lane owns
/// the same columns in every row, so its share of the column sums stays in
/// registers until the block's warps combine them in shared memory.
template <int kVec, int kChunks>
VIT_KERNEL void layer_norm_backward_warp_kernel(const float* dout, const float* x,
                                                const float* weight, const float* mean,
                                                const float* rstd, float* dx, float* partials,
                                                int64_t R, int64_t C, int64_t rows_per_block) {
  const int lane = static_cast<int>(threadIdx.x) % kWarp,
            warp = static_cast<int>(threadIdx.x) / kWarp;
  const int warps = static_cast<int>(blockDim.x) / kWarp;
  const int64_t row_begin = blockIdx.x * rows_per_block;
  const int64_t row_end = row_begin + rows_per_block < R ? row_begin + rows_per_block : R;
  float part_w[kChunks][kVec] = {}, part_b[kChunks][kVec] = {};
  for (int64_t row = row_begin + warp; row < row_end; row += warps) {
    const int64_t base = row * C;
    const float m = mean[row], rs = rstd[row];
    float dy[kChunks][kVec], xhat[kChunks][kVec];
    float sum_dy = 0.f, sum_dy_xhat = 0.f;
#pragma unroll
    for (int j = 0; j < kChunks; ++j) {
      const int64_t col = (j * kWarp + lane) * kVec;
      if (col < C) {
        float g[kVec], xv[kVec], w[kVec];
        rows::load_vec<kVec>(dout + base + col, g);
        rows::load_vec<kVec>(x + base + col, xv);
        rows::load_vec<kVec>(weight + col, w);
#pragma unroll
        for (int k = 0; k < kVec; ++k) {
          xhat[j][k] = (xv[k] - m) * rs;
          dy[j][k] = g[k] * w[k];
          sum_dy += dy[j][k];
          sum_dy_xhat += dy[j][k] * xhat[j][k];
          part_w[j][k] += g[k] * xhat[j][k];
          part_b[j][k] += g[k];
        }
      } else {
#pragma unroll
        for (int k = 0; k < kVec; ++k) xhat[j][k] = dy[j][k] = 0.f;
      }
    }
    const float a = warp_sum(sum_dy) / static_cast<float>(C);
    const float b = warp_sum(sum_dy_xhat) / static_cast<float>(C);
    if (dx) {
#pragma unroll
      for (int j = 0; j < kChunks; ++j) {
        const int64_t col = (j * kWarp + lane) * kVec;
        if (col < C) {
          float d[kVec];
#pragma unroll
          for (int k = 0; k < kVec; ++k) d[k] = rs * (dy[j][k] - a - xhat[j][k] * b);
          rows::store_vec<kVec>(dx + base + col, d);
        }
      }
    }
  }
  if (partials) {  // uniform over the block: every thread reaches the barrier
    VIT_DYNAMIC_SMEM(float, warp_parts);  // (warps, 2C)
    float* mine = warp_parts + warp * 2 * C;
#pragma unroll
    for (int j = 0; j < kChunks; ++j) {
      const int64_t col = (j * kWarp + lane) * kVec;
      if (col < C) {
#pragma unroll
        for (int k = 0; k < kVec; ++k) {
          mine[col + k] = part_w[j][k];
          mine[C + col + k] = part_b[j][k];
        }
      }
    }
    __syncthreads();
    for (int64_t c = threadIdx.x; c < 2 * C; c += blockDim.x) {
      float s = 0.f;
      for (int w = 0; w < warps; ++w) s += warp_parts[w * 2 * C + c];
      partials[blockIdx.x * 2 * C + c] = s;
    }
  }
}

/// Same contract for rows longer than kMaxRegisterRow: one block per row; the
/// block's column sums accumulate in its own row of partials (each thread
/// only touches its own columns, so no barrier is needed between rows).
template <int kThreads>
VIT_KERNEL void layer_norm_backward_long_kernel(const float* dout, const float* x,
                                                const float* weight, const float* mean,
                                                const float* rstd, float* dx, float* partials,
                                                int64_t R, int64_t C, int64_t rows_per_block) {
  __shared__ float scratch[kWarp];
  const int64_t row_begin = blockIdx.x * rows_per_block;
  const int64_t row_end = row_begin + rows_per_block < R ? row_begin + rows_per_block : R;
  float* part_w = partials ? partials + blockIdx.x * 2 * C : nullptr;
  for (int64_t row = row_begin; row < row_end; ++row) {
    const int64_t base = row * C;
    const float m = mean[row], rs = rstd[row];
    float sum_dy = 0.f, sum_dy_xhat = 0.f;
    for (int64_t c = threadIdx.x; c < C; c += kThreads) {
      const float g = dout[base + c], xhat = (x[base + c] - m) * rs, dy = g * weight[c];
      sum_dy += dy;
      sum_dy_xhat += dy * xhat;
      if (part_w) {
        const bool first = row == row_begin;
        part_w[c] = (first ? 0.f : part_w[c]) + g * xhat;
        part_w[C + c] = (first ? 0.f : part_w[C + c]) + g;
      }
    }
    const float a = block_sum(sum_dy, scratch) / static_cast<float>(C);
    const float b = block_sum(sum_dy_xhat, scratch) / static_cast<float>(C);
    if (dx) {
      for (int64_t c = threadIdx.x; c < C; c += kThreads) {
        const float xhat = (x[base + c] - m) * rs;
        dx[base + c] = rs * (dout[base + c] * weight[c] - a - xhat * b);
      }
    }
  }
}

using LayerNormBackwardKernel = void (*)(const float*, const float*, const float*, const float*,
                                         const float*, float*, float*, int64_t, int64_t, int64_t);
struct LayerNormBackwardLaunch {
  dim3 grid, block;
  size_t smem = 0;
  LayerNormBackwardKernel kernel;
  int64_t rows_per_block = 1;
  int64_t partial_rows = 0;  // = grid.x: the partials buffer is (partial_rows, 2C)
};
/// vec4_ok: every pointer 16-byte aligned (row_plan adds C % 4 == 0). A pure function of
/// (R, C, vec4_ok): the gradient sums do not depend on the device.
inline LayerNormBackwardLaunch layer_norm_backward_geometry(int64_t R, int64_t C, bool vec4_ok) {
  const rows::RowPlan plan = rows::row_plan(C, vec4_ok);
  LayerNormBackwardLaunch l;
  const int64_t min_rows = plan.chunks == 0 ? 1 : kRowWarps;
  const int64_t wanted = rows::ceil_div(R, kTargetPartialBlocks);
  l.rows_per_block = wanted > min_rows ? wanted : min_rows;
  l.partial_rows = rows::ceil_div(R, l.rows_per_block);
  l.grid = dim3(static_cast<unsigned>(l.partial_rows));
  if (plan.chunks == 0) {
    l.block = dim3(kLongRowThreads);
    l.kernel = layer_norm_backward_long_kernel<kLongRowThreads>;
  } else {
    l.block = dim3(kRowWarps * kWarp);
    l.smem = static_cast<size_t>(kRowWarps) * 2 * C * sizeof(float);
    l.kernel = rows::pick_row_kernel(plan, [](auto vec, auto chunks) -> LayerNormBackwardKernel {
      return layer_norm_backward_warp_kernel<decltype(vec)::value, decltype(chunks)::value>;
    });
  }
  return l;
}

}  // namespace vit::cuda::kernels
