// Strided elementwise work on the GPU (cuda/strided.cu): broadcasting binary
// ops, broadcast copies, reductions over any set of dims and permutes, for the
// general shapes of vit/ops/elementwise.hpp, reduce.hpp and shape_ops.hpp.
// Every output element is written by one thread or one block; reductions run
// in a fixed order (no atomics): bitwise repeatable. Each launcher exists for
// float and vit::bf16 storage (bf16: fp32 math and sums, one rounding per
// output; permutes and unscaled copies move elements unchanged). Declarations only.
#pragma once

#include <cstdint>

#include "vit/core/bf16.hpp"

namespace vit::cuda {

constexpr int kMaxDims = 8;

/// An output of `ndim` dims (row-major, sizes `size`) and, per input, the
/// element stride of each output dim in that input (0 where it is broadcast).
struct StridedLayout {
  int ndim = 0;
  int64_t size[kMaxDims] = {};
  int64_t stride_a[kMaxDims] = {};
  int64_t stride_b[kMaxDims] = {};
};

enum class BinaryKind { Add, Sub, Mul };

/// out[i] = a[off_a(i)] op b[off_b(i)] over the layout's output (written).
void broadcast_binary(BinaryKind op, const float* a, const float* b, float* out,
                      const StridedLayout& layout);
void broadcast_binary(BinaryKind op, const bf16* a, const bf16* b, bf16* out,
                      const StridedLayout& layout);
/// out[i] = scale * a[off_a(i)] (expand, and the backward of sum/mean over dims); stride_b unused.
void broadcast_copy(const float* a, float* out, const StridedLayout& layout, float scale);
void broadcast_copy(const bf16* a, bf16* out, const StridedLayout& layout, float scale);
/// out[j] = scale * Σ x[i] over the elements i of x (row-major, `ndim` dims of
/// sizes `x_size`) whose index agrees with j on every dim where keep[d] is
/// true; out has the kept dims' sizes, row-major (written). One block per
/// output element, the sum in a fixed order.
void reduce_sum(const float* x, float* out, int ndim, const int64_t* x_size, const bool* keep,
                float scale);
void reduce_sum(const bf16* x, bf16* out, int ndim, const int64_t* x_size, const bool* keep,
                float scale);
/// out.shape[d] = x.shape[perm[d]]: out is x with its dims reordered, contiguous (written).
void permute(const float* x, float* out, int ndim, const int64_t* x_size, const int* perm);
void permute(const bf16* x, bf16* out, int ndim, const int64_t* x_size, const int* perm);

}  // namespace vit::cuda
