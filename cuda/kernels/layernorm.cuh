// LayerNorm kernels, the CUDA twin of include/vit/ops/layernorm.hpp: forward
// saving mean/rstd, backward with dx per row and deterministic weight/bias
// gradients. Every kernel is a template on the storage type T (float or
// vit::bf16): bf16 in and out, float math and float mean/rstd; 16-byte chunks
// (4 floats or 8 bf16) when the row length and the pointers allow, scalar
// loads otherwise.
// Deliberately avoided: float atomics (per-block partials, then
// column_partials_add_kernel sums them in a fixed order), Welford (a row held
// in registers makes the exact two-pass mean/variance free), and staging rows
// in shared memory.
//
// What changed for bandwidth (issue 18 §4). Reasoned from bytes moved and
// bytes in flight, not measured: no GPU was available to this change. The
// backward moves 3 row-tensors (dout and x read, dx written: 12 B/element in
// fp32, 6 in bf16); the forward 2. Both already moved only that, plus the
// partials; the backward ran at 47-57% of copy (forward 64-90%) because:
//   1. the weight/bias partials' sum (column_partials_add_kernel) had only
//      2C/32 blocks (12 at C = 192) of 8 warps reading 1024 partial rows of 2C
//      floats: a few hundred warps on the GPU, each walking ~128 dependent
//      batches of loads, so it was latency-bound: several µs on top of a
//      18-40 µs main pass, plus the launch gap. Now the main pass has
//      kTargetPartialBlocks = 264 blocks (the partials are 4× smaller) and the
//      sum runs 32 warps per block (rows.cuh): ~8 loads per warp, in flight
//      together;
//   2. the main pass gave each warp one row at a time: a warp waited a full
//      DRAM latency for 2·C·sizeof(T) bytes (768 B at C = 192 in bf16), then
//      ran its shuffle reductions with nothing in flight. A warp now owns
//      rows::rows_per_warp consecutive rows per step (C = 192: 2 rows in fp32,
//      4 in bf16; C = 384: 1 / 2; C = 768: 1), issues all their loads first and
//      reduces them side by side: ~4 KB in flight per warp per step;
//   3. 8 warps per block (was 4) and 264 blocks, registers capped at 128
//      (VIT_LAUNCH_BOUNDS(256, 2); ptxas: 94/87/128 fp32 and 127/128/127 bf16
//      at C = 192/384/768, no spills): 2 blocks per SM on a 132-SM H100/H200,
//      so all blocks are resident in one wave with no tail, each warp looping
//      over ~16-25 rows (B·N = 33280 or 50432);
//   4. dy and x̂ are not kept per element (recomputed from dout and x in the dx
//      pass: two FMAs), which frees the registers for the extra rows.
// The forward gets the same rows-per-step treatment (C = 192: 4 rows per step
// in fp32, 8 in bf16), capped at 128 registers for 4 blocks of 4 warps per SM;
// it was at 64-73% of copy at C = 192, 79-84% at 384 and 87-90% at 768.
#pragma once

#include <cstdint>

#include "rows.cuh"  // row layout in a warp, column_partials_add_kernel

namespace vit::cuda::kernels {

/// Warps per block of the register-row backward kernel (see the file comment).
constexpr int kLnBackwardWarps = 8;

// ---- forward ---------------------------------------------------------------------------

/// x: (R,C) -> out = LN(x): (R,C), mean, rstd: (R) float (skipped when null). A
/// warp owns rows::rows_per_warp consecutive rows per step, each row in registers
/// (their loads in flight together, their reductions side by side). Every element
/// of a step is read before the warp writes any, so out may alias x.
template <class T, int kVec, int kChunks>
VIT_KERNEL VIT_LAUNCH_BOUNDS(kRowWarps * kWarp, 4) void layer_norm_forward_warp_kernel(
    const T* x, const T* weight, const T* bias, T* out, float* mean, float* rstd, int64_t R,
    int64_t C, float eps) {
  constexpr int kRows = rows::rows_per_warp<T>(kVec, kVec * kChunks, 1);
  const int lane = static_cast<int>(threadIdx.x) % kWarp;
  const int64_t warps = blockDim.x / kWarp;
  const float inv_c = 1.f / static_cast<float>(C);
  for (int64_t row0 = (blockIdx.x * warps + threadIdx.x / kWarp) * kRows; row0 < R;
       row0 += gridDim.x * warps * kRows) {
    float v[kRows][kChunks][kVec];
    float m[kRows], rs[kRows];
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      const int64_t base = (row0 + r) * C;
      const bool live = row0 + r < R;
      m[r] = 0.f;
#pragma unroll
      for (int j = 0; j < kChunks; ++j) {
        const int64_t col = (j * kWarp + lane) * kVec;
        if (live && col < C) {
          rows::load_vec<kVec>(x + base + col, v[r][j]);
#pragma unroll
          for (int k = 0; k < kVec; ++k) m[r] += v[r][j][k];
        } else {
#pragma unroll
          for (int k = 0; k < kVec; ++k) v[r][j][k] = 0.f;
        }
      }
    }
#pragma unroll
    for (int r = 0; r < kRows; ++r) m[r] = warp_sum(m[r]) * inv_c;
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      float sq = 0.f;  // centred second pass: exact where E[x²] − m² would cancel
#pragma unroll
      for (int j = 0; j < kChunks; ++j) {
        if ((j * kWarp + lane) * kVec < C) {
#pragma unroll
          for (int k = 0; k < kVec; ++k) sq += (v[r][j][k] - m[r]) * (v[r][j][k] - m[r]);
        }
      }
      rs[r] = sq;
    }
#pragma unroll
    for (int r = 0; r < kRows; ++r) rs[r] = rsqrtf(warp_sum(rs[r]) * inv_c + eps);
#pragma unroll
    for (int j = 0; j < kChunks; ++j) {
      const int64_t col = (j * kWarp + lane) * kVec;
      if (col < C) {
        float w[kVec], b[kVec];
        rows::load_vec<kVec>(weight + col, w);
        rows::load_vec<kVec>(bias + col, b);
#pragma unroll
        for (int r = 0; r < kRows; ++r) {
          if (row0 + r < R) {
            float o[kVec];
#pragma unroll
            for (int k = 0; k < kVec; ++k) o[k] = (v[r][j][k] - m[r]) * rs[r] * w[k] + b[k];
            rows::store_vec<kVec>(out + (row0 + r) * C + col, o);
          }
        }
      }
    }
    if (lane < kRows && row0 + lane < R) {  // lane r writes row r's statistics
      float mv = m[0], rv = rs[0];
#pragma unroll
      for (int r = 1; r < kRows; ++r)
        if (lane == r) mv = m[r], rv = rs[r];
      if (mean) mean[row0 + lane] = mv;
      if (rstd) rstd[row0 + lane] = rv;
    }
  }
}

/// Same contract for rows longer than kMaxRegisterRow: one block per row, three
/// passes over the row (mostly from L1/L2). Only the last pass writes, and each
/// thread writes just the columns it reads, so out may still alias x.
template <class T, int kThreads>
VIT_KERNEL void layer_norm_forward_long_kernel(const T* x, const T* weight, const T* bias, T* out,
                                               float* mean, float* rstd, int64_t R, int64_t C,
                                               float eps) {
  __shared__ float scratch[kWarp];
  for (int64_t row = blockIdx.x; row < R; row += gridDim.x) {
    const int64_t base = row * C;
    float sum = 0.f;
    for (int64_t c = threadIdx.x; c < C; c += kThreads) sum += rows::load1(x + base + c);
    const float m = block_sum(sum, scratch) / static_cast<float>(C);
    float sq = 0.f;
    for (int64_t c = threadIdx.x; c < C; c += kThreads) {
      const float d = rows::load1(x + base + c) - m;
      sq += d * d;
    }
    const float rs = rsqrtf(block_sum(sq, scratch) / static_cast<float>(C) + eps);
    for (int64_t c = threadIdx.x; c < C; c += kThreads)
      out[base + c] = rows::to_storage<T>((rows::load1(x + base + c) - m) * rs *
                                              rows::load1(weight + c) +
                                          rows::load1(bias + c));
    if (threadIdx.x == 0) {
      if (mean) mean[row] = m;
      if (rstd) rstd[row] = rs;
    }
  }
}

template <class T>
using LayerNormForwardKernel = void (*)(const T*, const T*, const T*, T*, float*, float*, int64_t,
                                        int64_t, float);
template <class T = float>
struct LayerNormForwardLaunch {
  dim3 grid, block;
  size_t smem = 0;
  LayerNormForwardKernel<T> kernel;
};
/// vec_ok: every pointer 16-byte aligned (row_plan adds C % kVec16<T> == 0).
template <class T = float>
inline LayerNormForwardLaunch<T> layer_norm_forward_geometry(int64_t R, int64_t C, bool vec_ok) {
  constexpr int kWide = rows::kVec16<T>;
  const rows::RowPlan plan = rows::row_plan(C, vec_ok, kWide);
  if (plan.chunks == 0)
    return {dim3(rows::grid_for(R)), dim3(kLongRowThreads), 0,
            layer_norm_forward_long_kernel<T, kLongRowThreads>};
  const int rows_per_warp = rows::rows_per_warp<T>(plan.vec, plan.vec * plan.chunks, 1);
  return {dim3(rows::grid_for(rows::ceil_div(R, int64_t(kRowWarps) * rows_per_warp))),
          dim3(kRowWarps * kWarp), 0,
          rows::pick_row_kernel<kWide>(
              plan, [](auto vec, auto chunks) -> LayerNormForwardKernel<T> {
                return layer_norm_forward_warp_kernel<T, decltype(vec)::value,
                                                      decltype(chunks)::value>;
              })};
}

// ---- backward --------------------------------------------------------------------------
// dx = rstd·(dy − mean(dy) − x̂·mean(dy·x̂)) with dy = dout·w, x̂ = (x − mean)·rstd;
// dy is one rounded product (__fmul_rn) in the sums and in dx alike: were it
// contracted into an FMA in one place only, dy − mean(dy) of a one-column row
// would be the product's rounding error times rstd instead of zero;
// dweight += Σ_rows dout·x̂, dbias += Σ_rows dout. Block b owns rows
// [b·rows_per_block, (b+1)·rows_per_block) and writes its column sums to
// partials[b] = (dweight part (C), dbias part (C)); column_partials_add_kernel
// then adds them up in block order.

/// dout, x: (R,C), mean, rstd: (R) -> dx: (R,C) (skipped when null),
/// partials: (gridDim.x, 2C) (skipped when null). A warp owns rows::rows_per_warp
/// consecutive rows per step (their dout and x loads in flight together); a lane
/// owns the same columns in every row, so its share of the column sums stays in
/// registers until the block's warps combine them in shared memory (C floats per
/// warp: the weight part, then the bias part).
template <class T, int kVec, int kChunks>
VIT_KERNEL VIT_LAUNCH_BOUNDS(kLnBackwardWarps * kWarp, 2) void layer_norm_backward_warp_kernel(
    const T* dout, const T* x, const T* weight, const float* mean, const float* rstd, T* dx,
    float* partials, int64_t R, int64_t C, int64_t rows_per_block) {
  constexpr int kRows = rows::rows_per_warp<T>(kVec, kVec * kChunks, 2);
  const int lane = static_cast<int>(threadIdx.x) % kWarp,
            warp = static_cast<int>(threadIdx.x) / kWarp;
  const int warps = static_cast<int>(blockDim.x) / kWarp;
  const int64_t row_begin = blockIdx.x * rows_per_block;
  const int64_t row_end = row_begin + rows_per_block < R ? row_begin + rows_per_block : R;
  const float inv_c = 1.f / static_cast<float>(C);
  float part_w[kChunks][kVec] = {}, part_b[kChunks][kVec] = {};
  for (int64_t row0 = row_begin + warp * kRows; row0 < row_end; row0 += warps * kRows) {
    float g[kRows][kChunks][kVec], xv[kRows][kChunks][kVec];
    float m[kRows], rs[kRows];
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      const int64_t base = (row0 + r) * C;
      const bool live = row0 + r < row_end;
      // A row past the block's end reads as zeros: it adds nothing to the sums.
      m[r] = live ? mean[row0 + r] : 0.f;
      rs[r] = live ? rstd[row0 + r] : 0.f;
#pragma unroll
      for (int j = 0; j < kChunks; ++j) {
        const int64_t col = (j * kWarp + lane) * kVec;
        if (live && col < C) {
          rows::load_vec<kVec>(dout + base + col, g[r][j]);
          rows::load_vec<kVec>(x + base + col, xv[r][j]);
        } else {
#pragma unroll
          for (int k = 0; k < kVec; ++k) g[r][j][k] = xv[r][j][k] = 0.f;
        }
      }
    }
    float sum_dy[kRows], sum_dy_xhat[kRows];
#pragma unroll
    for (int r = 0; r < kRows; ++r) sum_dy[r] = sum_dy_xhat[r] = 0.f;
#pragma unroll
    for (int j = 0; j < kChunks; ++j) {
      const int64_t col = (j * kWarp + lane) * kVec;
      if (col < C) {
        float w[kVec];
        rows::load_vec<kVec>(weight + col, w);  // L1/L2 hits after the first step
#pragma unroll
        for (int r = 0; r < kRows; ++r) {
#pragma unroll
          for (int k = 0; k < kVec; ++k) {
            const float xhat = (xv[r][j][k] - m[r]) * rs[r], dy = __fmul_rn(g[r][j][k], w[k]);
            sum_dy[r] += dy;
            sum_dy_xhat[r] += dy * xhat;
            part_w[j][k] += g[r][j][k] * xhat;
            part_b[j][k] += g[r][j][k];
          }
        }
      }
    }
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      sum_dy[r] = warp_sum(sum_dy[r]) * inv_c;
      sum_dy_xhat[r] = warp_sum(sum_dy_xhat[r]) * inv_c;
    }
    if (dx) {
#pragma unroll
      for (int j = 0; j < kChunks; ++j) {
        const int64_t col = (j * kWarp + lane) * kVec;
        if (col < C) {
          float w[kVec];
          rows::load_vec<kVec>(weight + col, w);
#pragma unroll
          for (int r = 0; r < kRows; ++r) {
            if (row0 + r < row_end) {
              float d[kVec];
#pragma unroll
              for (int k = 0; k < kVec; ++k)
                d[k] = rs[r] * (__fmul_rn(g[r][j][k], w[k]) - sum_dy[r] -
                                (xv[r][j][k] - m[r]) * rs[r] * sum_dy_xhat[r]);
              rows::store_vec<kVec>(dx + (row0 + r) * C + col, d);
            }
          }
        }
      }
    }
  }
  if (partials) {  // uniform over the block: every thread reaches the barriers
    VIT_DYNAMIC_SMEM(float, warp_parts);  // (warps, C): the weight part, then the bias part
    for (int half = 0; half < 2; ++half) {
      float* mine = warp_parts + warp * C;
#pragma unroll
      for (int j = 0; j < kChunks; ++j) {
        const int64_t col = (j * kWarp + lane) * kVec;
        if (col < C) {
#pragma unroll
          for (int k = 0; k < kVec; ++k) mine[col + k] = half == 0 ? part_w[j][k] : part_b[j][k];
        }
      }
      __syncthreads();
      for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
        float s = 0.f;
        for (int w = 0; w < warps; ++w) s += warp_parts[w * C + c];
        partials[blockIdx.x * 2 * C + half * C + c] = s;
      }
      __syncthreads();  // the slab is rewritten by the bias half
    }
  }
}

/// Same contract for rows longer than kMaxRegisterRow: one block per row; the
/// block's column sums accumulate in its own row of partials (each thread
/// only touches its own columns, so no barrier is needed between rows).
template <class T, int kThreads>
VIT_KERNEL void layer_norm_backward_long_kernel(const T* dout, const T* x, const T* weight,
                                                const float* mean, const float* rstd, T* dx,
                                                float* partials, int64_t R, int64_t C,
                                                int64_t rows_per_block) {
  __shared__ float scratch[kWarp];
  const int64_t row_begin = blockIdx.x * rows_per_block;
  const int64_t row_end = row_begin + rows_per_block < R ? row_begin + rows_per_block : R;
  float* part_w = partials ? partials + blockIdx.x * 2 * C : nullptr;
  for (int64_t row = row_begin; row < row_end; ++row) {
    const int64_t base = row * C;
    const float m = mean[row], rs = rstd[row];
    float sum_dy = 0.f, sum_dy_xhat = 0.f;
    for (int64_t c = threadIdx.x; c < C; c += kThreads) {
      const float g = rows::load1(dout + base + c), xhat = (rows::load1(x + base + c) - m) * rs,
                  dy = __fmul_rn(g, rows::load1(weight + c));
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
        const float xhat = (rows::load1(x + base + c) - m) * rs;
        dx[base + c] = rows::to_storage<T>(
            rs * (__fmul_rn(rows::load1(dout + base + c), rows::load1(weight + c)) - a - xhat * b));
      }
    }
  }
}

template <class T>
using LayerNormBackwardKernel = void (*)(const T*, const T*, const T*, const float*, const float*,
                                         T*, float*, int64_t, int64_t, int64_t);
template <class T = float>
struct LayerNormBackwardLaunch {
  dim3 grid, block;
  size_t smem = 0;
  LayerNormBackwardKernel<T> kernel;
  int64_t rows_per_block = 1;
  int64_t partial_rows = 0;  // = grid.x: the partials buffer is (partial_rows, 2C) floats
};
/// vec_ok: every pointer 16-byte aligned (row_plan adds C % kVec16<T> == 0). A pure
/// function of (R, C, vec_ok): the gradient sums do not depend on the device.
template <class T = float>
inline LayerNormBackwardLaunch<T> layer_norm_backward_geometry(int64_t R, int64_t C, bool vec_ok) {
  constexpr int kWide = rows::kVec16<T>;
  const rows::RowPlan plan = rows::row_plan(C, vec_ok, kWide);
  LayerNormBackwardLaunch<T> l;
  const int64_t min_rows =
      plan.chunks == 0
          ? 1
          : kLnBackwardWarps * rows::rows_per_warp<T>(plan.vec, plan.vec * plan.chunks, 2);
  const int64_t wanted = rows::ceil_div(R, kTargetPartialBlocks);
  l.rows_per_block = wanted > min_rows ? wanted : min_rows;
  l.partial_rows = rows::ceil_div(R, l.rows_per_block);
  l.grid = dim3(static_cast<unsigned>(l.partial_rows));
  if (plan.chunks == 0) {
    l.block = dim3(kLongRowThreads);
    l.kernel = layer_norm_backward_long_kernel<T, kLongRowThreads>;
  } else {
    l.block = dim3(kLnBackwardWarps * kWarp);
    l.smem = static_cast<size_t>(kLnBackwardWarps) * C * sizeof(float);
    l.kernel =
        rows::pick_row_kernel<kWide>(plan, [](auto vec, auto chunks) -> LayerNormBackwardKernel<T> {
          return layer_norm_backward_warp_kernel<T, decltype(vec)::value, decltype(chunks)::value>;
        });
  }
  return l;
}

}  // namespace vit::cuda::kernels
