// The elementwise kernels of cuda/elementwise.cu beyond the flat maps of
// maps.cuh (add, sub, mul, scale, tanh): fill, the row-broadcast bias add, and
// two deterministic reductions: column sums of an (R,C) matrix (a bias
// gradient) and the sum of all elements. The reductions use no atomics:
// per-block partials in a fixed order, then a second pass sums those in a
// fixed order, so a result depends only on the shape and is bitwise repeatable.
// Each body is a template on the storage types (float, vit::bf16) with float
// sums; the `_t` kernels launch it for any type, the plain-named kernels are
// its float instances under their historical names. Those are not templates,
// so nvcc gives each a strong host stub: only elementwise.cu (and the
// emulated tests) may include this header; other kernel headers include maps.cuh.
#pragma once

#include <cstdint>

#include "maps.cuh"  // the flat maps (templates), elementwise_launch

namespace vit::cuda::kernels {

// x[i] = value (rounded to T): a separate kernel so fill reads nothing.
template <class T>
VIT_DEVICE void ew_fill(T* x, float value, int64_t n) {
  constexpr int V = kVecOf<T>;
  const int64_t first = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  const T t = to_storage<T>(value);
  if (ew_aligned16(x)) {
    const int64_t units = n / V;
    Pack<T, V> v;
#pragma unroll
    for (int k = 0; k < V; ++k) v.v[k] = t;
    for (int64_t u = first; u < units; u += stride) store_pack<T, V>(x, u, v);
    const int64_t i = V * units + first;
    if (i < n) x[i] = t;
  } else {
    for (int64_t i = first; i < n; i += stride) x[i] = t;
  }
}
template <class T>
VIT_KERNEL void ew_fill_kernel_t(T* x, float value, int64_t n) {
  ew_fill<T>(x, value, n);
}
VIT_KERNEL void ew_fill_kernel(float* x, float value, int64_t n) { ew_fill<float>(x, value, n); }

// x: (R,C), bias: (C) -> out: (R,C), out[r,c] = x[r,c] + bias[c]; out may alias x
// (row_bias_map_kernel<T, EwIdentity> of maps.cuh, for float).
VIT_KERNEL void add_row_broadcast_kernel(const float* x, const float* bias, float* out, int64_t R,
                                         int64_t C) {
  row_bias_map<float, EwIdentity>(x, bias, out, R, C, EwIdentity{});
}

// ---- column sums: acc[c] += sum_r x[r,c] ----------------------------------------

constexpr int kColumnTile = 32;       // columns per block: one warp reads 32 consecutive floats
constexpr int kColumnRowThreads = 8;  // rows read at once per block

struct ColumnSumsLaunch {
  dim3 grid, block;  // grid (column tiles, row chunks)
  size_t smem;
  int64_t rows_per_chunk, chunks;
  dim3 finish_grid, finish_block;  // only when chunks > 1
};

/// Row chunks so that about 512 blocks fill the GPU, each chunk at least 64
/// rows. Depends on (R, C) only, so the summation order is fixed by the shape.
inline ColumnSumsLaunch column_sums_launch(int64_t R, int64_t C) {
  const int64_t col_tiles = (C + kColumnTile - 1) / kColumnTile;
  int64_t chunks = 512 / col_tiles;
  const int64_t max_chunks = (R + 63) / 64;
  chunks = chunks > max_chunks ? max_chunks : chunks;
  chunks = chunks < 1 ? 1 : (chunks > 65535 ? 65535 : chunks);
  const int64_t rows_per_chunk = R > 0 ? (R + chunks - 1) / chunks : 1;
  chunks = R > 0 ? (R + rows_per_chunk - 1) / rows_per_chunk : 1;
  const int64_t finish_blocks = (C + 255) / 256;
  return {dim3(static_cast<unsigned>(col_tiles), static_cast<unsigned>(chunks)),
          dim3(kColumnTile, kColumnRowThreads),
          0,
          rows_per_chunk,
          chunks,
          dim3(static_cast<unsigned>(finish_blocks < 1 ? 1 : finish_blocks)),
          dim3(256)};
}

// x: (R,C) -> the float sums of rows [blockIdx.y·rows_per_chunk, +rows_per_chunk)
// for 32 columns: into partials (chunks, C), written, when partials is
// non-null; else (single chunk) added to acc (C): acc[c] = acc[c] + sum, the
// sum rounded into acc's type once.
template <class TX, class TA>
VIT_DEVICE void column_sums_partial(const TX* x, TA* acc, float* partials, int64_t R, int64_t C,
                                    int64_t rows_per_chunk) {
  __shared__ float part[kColumnRowThreads][kColumnTile + 1];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t c = int64_t(blockIdx.x) * kColumnTile + tx;
  const int64_t r0 = int64_t(blockIdx.y) * rows_per_chunk;
  const int64_t r1 = r0 + rows_per_chunk < R ? r0 + rows_per_chunk : R;
  float s = 0.f;
  if (c < C)
    for (int64_t r = r0 + ty; r < r1; r += kColumnRowThreads) s += float(x[r * C + c]);
  part[ty][tx] = s;
  __syncthreads();
  if (ty == 0 && c < C) {
    float t = part[0][tx];
    for (int k = 1; k < kColumnRowThreads; ++k) t += part[k][tx];
    if (partials)
      partials[int64_t(blockIdx.y) * C + c] = t;
    else
      acc[c] = to_storage<TA>(float(acc[c]) + t);
  }
}
template <class TX, class TA>
VIT_KERNEL void column_sums_partial_kernel_t(const TX* x, TA* acc, float* partials, int64_t R,
                                             int64_t C, int64_t rows_per_chunk) {
  column_sums_partial<TX, TA>(x, acc, partials, R, C, rows_per_chunk);
}
// The float instance: accumulate != 0: out is acc (C) and gets += (single
// chunk); else out is partials (chunks, C), written.
VIT_KERNEL void column_sums_partial_kernel(const float* x, float* out, int64_t R, int64_t C,
                                           int64_t rows_per_chunk, int accumulate) {
  column_sums_partial<float, float>(x, accumulate ? out : nullptr, accumulate ? nullptr : out, R, C,
                                    rows_per_chunk);
}

// column_sums_finish(_kernel_t) live in maps.cuh (bias+GELU's backward uses them too).
VIT_KERNEL void column_sums_finish_kernel(const float* partials, float* acc, int64_t chunks,
                                          int64_t C) {
  column_sums_finish<float>(partials, acc, chunks, C);
}

// ---- sum of all elements ---------------------------------------------------------

constexpr int kSumAllThreads = 256;
constexpr int64_t kSumAllMaxBlocks = 1024;  // the finishing block sums at most this many partials

struct SumAllLaunch {
  dim3 grid, block;
  size_t smem;
};

/// Stage 1: each thread sums at least ~8 elements; the same kernel with one
/// block then sums the per-block partials (when there is more than one).
inline SumAllLaunch sum_all_launch(int64_t n) {
  int64_t blocks = (n + kSumAllThreads * 8 - 1) / (kSumAllThreads * 8);
  blocks = blocks < 1 ? 1 : (blocks > kSumAllMaxBlocks ? kSumAllMaxBlocks : blocks);
  return {dim3(static_cast<unsigned>(blocks)), dim3(kSumAllThreads), 0};
}

// x: (n) -> out[blockIdx.x] = this block's grid-stride share, summed in float
// in a fixed (thread, then warp-tree) order, rounded into out's type once.
template <class TI, class TO>
VIT_DEVICE void sum_all_partial(const TI* x, int64_t n, TO* out) {
  __shared__ float scratch[kWarp];
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  float s = 0.f;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    s += float(x[i]);
  s = block_sum(s, scratch);
  if (threadIdx.x == 0) out[blockIdx.x] = to_storage<TO>(s);
}
template <class TI, class TO>
VIT_KERNEL void sum_all_partial_kernel_t(const TI* x, int64_t n, TO* out) {
  sum_all_partial<TI, TO>(x, n, out);
}
VIT_KERNEL void sum_all_partial_kernel(const float* x, int64_t n, float* out) {
  sum_all_partial<float, float>(x, n, out);
}

}  // namespace vit::cuda::kernels
