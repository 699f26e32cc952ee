// Strided elementwise kernels, the CUDA side of the general shapes of
// include/vit/ops/elementwise.hpp (broadcasting add/sub/mul, expand),
// reduce.hpp (sum/mean over any set of dims) and shape_ops.hpp (permute).
// An output of up to kMaxDims dims is addressed row-major; each input has its
// own element stride per output dim (0 where broadcast). Before launching, the
// host merges dims that are contiguous in every operand and drops size-1 dims
// (strided_coalesce), so the common shapes cost one or two divisions per
// element, not eight.
// Deliberately avoided: atomics (every output element has one writer, a
// reduction one block that sums in a fixed order: bitwise repeatable), and
// shared-memory transposes (permute is a plain gather; fine for the small
// permutes of a ViT, a tiled transpose if one ever shows up in a profile).
// StridedLayout comes from the launchers' header, which is plain C++.
// Every kernel is a template on the storage type (float, vit::bf16: read into
// float, one rounding per output, float sums); strided_copy_kernel and
// reduce_sum_kernel are also kept as plain float kernels under their names,
// which are not templates (nvcc gives them strong host stubs): only strided.cu
// (and the emulated tests) may include this.
#pragma once

#include <cstdint>

#include "device_api.cuh"
#include "maps.cuh"  // EwAdd, EwSub, EwMul, the flat kernels for contiguous operands
#include "vit/cuda/strided.hpp"

namespace vit::cuda::kernels {

using vit::cuda::StridedLayout;

/// Host: number of output elements (1 for 0 dims).
inline int64_t strided_numel(const StridedLayout& l) {
  int64_t n = 1;
  for (int d = 0; d < l.ndim; ++d) n *= l.size[d];
  return n;
}

/// Host: the same layout with size-1 dims dropped and each dim merged into the
/// one outside it wherever that is contiguous in both inputs (stride_outer ==
/// stride_inner · size_inner). Addresses are unchanged: element i of the result
/// reads the same a and b elements as element i of `l`. Needs every size > 0.
inline StridedLayout strided_coalesce(const StridedLayout& l) {
  StridedLayout c;
  c.ndim = 0;
  for (int d = 0; d < l.ndim; ++d) {
    if (l.size[d] == 1) continue;
    const int p = c.ndim - 1;
    if (p >= 0 && c.stride_a[p] == l.stride_a[d] * l.size[d] &&
        c.stride_b[p] == l.stride_b[d] * l.size[d]) {
      c.size[p] *= l.size[d];
      c.stride_a[p] = l.stride_a[d];
      c.stride_b[p] = l.stride_b[d];
    } else {
      c.size[c.ndim] = l.size[d];
      c.stride_a[c.ndim] = l.stride_a[d];
      c.stride_b[c.ndim] = l.stride_b[d];
      ++c.ndim;
    }
  }
  return c;
}

/// True when output element i reads a[i] and b[i] (or only a[i], when b_used is false).
inline bool strided_is_flat(const StridedLayout& c, bool b_used) {
  return c.ndim == 0 || (c.ndim == 1 && c.stride_a[0] == 1 && (!b_used || c.stride_b[0] == 1));
}

/// Host: the gather layout of a permute of a contiguous x: out.shape[d] =
/// x.shape[perm[d]], read with x's stride of dim perm[d]. False (and l
/// unspecified) when perm is not a permutation of 0..ndim-1.
inline bool permute_layout(int ndim, const int64_t* x_size, const int* perm, StridedLayout& l) {
  if (ndim < 0 || ndim > kMaxDims) return false;
  int64_t x_stride[kMaxDims] = {};
  int64_t stride = 1;
  for (int d = ndim - 1; d >= 0; --d) x_stride[d] = stride, stride *= x_size[d];
  bool seen[kMaxDims] = {};
  l = StridedLayout{};
  l.ndim = ndim;
  for (int d = 0; d < ndim; ++d) {
    const int src = perm[d];
    if (src < 0 || src >= ndim || seen[src]) return false;
    seen[src] = true;
    l.size[d] = x_size[src];
    l.stride_a[d] = x_stride[src];
  }
  return true;
}

/// The offsets in a and b of output element i (row-major over l.size).
VIT_DEVICE void strided_offsets(const StridedLayout& l, int64_t i, int64_t& oa, int64_t& ob) {
  oa = 0, ob = 0;
  for (int d = l.ndim - 1; d >= 0; --d) {
    const int64_t s = l.size[d], q = i / s, c = i - q * s;
    oa += c * l.stride_a[d];
    ob += c * l.stride_b[d];
    i = q;
  }
}
VIT_DEVICE int64_t strided_offset_a(const StridedLayout& l, int64_t i) {
  int64_t oa = 0;
  for (int d = l.ndim - 1; d >= 0; --d) {
    const int64_t s = l.size[d], q = i / s;
    oa += (i - q * s) * l.stride_a[d];
    i = q;
  }
  return oa;
}

constexpr int kStridedThreads = 256;
constexpr int64_t kStridedMaxBlocks = int64_t(1) << 16;

struct StridedLaunch {
  dim3 grid, block;
  size_t smem = 0;
};
/// One thread per output element, grid-stride past max_blocks.
inline StridedLaunch strided_launch(int64_t n, int64_t max_blocks = kStridedMaxBlocks) {
  int64_t blocks = (n + kStridedThreads - 1) / kStridedThreads;
  blocks = blocks < 1 ? 1 : (blocks > max_blocks ? max_blocks : blocks);
  return {dim3(static_cast<unsigned>(blocks)), dim3(kStridedThreads), 0};
}

/// out (n = the layout's count) = op(a[off_a(i)], b[off_b(i)]).
template <class Op, class T = float>
VIT_KERNEL void strided_binary_kernel(const T* a, const T* b, T* out, StridedLayout l, int64_t n,
                                      Op op) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    int64_t oa, ob;
    strided_offsets(l, i, oa, ob);
    out[i] = to_storage<T>(op(float(a[oa]), float(b[ob])));
  }
}

/// out (n) = scale · a[off_a(i)]: expand, the backward of sum/mean, and (scale 1)
/// permute; with kScaled false a plain copy of the element (no float round trip).
template <class T, bool kScaled>
VIT_DEVICE void strided_copy(const T* a, T* out, StridedLayout l, int64_t n, float scale) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    if constexpr (kScaled) out[i] = to_storage<T>(scale * float(a[strided_offset_a(l, i)]));
    else out[i] = a[strided_offset_a(l, i)];
  }
}
template <class T, bool kScaled>
VIT_KERNEL void strided_copy_kernel_t(const T* a, T* out, StridedLayout l, int64_t n, float scale) {
  strided_copy<T, kScaled>(a, out, l, n, scale);
}
VIT_KERNEL void strided_copy_kernel(const float* a, float* out, StridedLayout l, int64_t n,
                                    float scale) {
  strided_copy<float, true>(a, out, l, n, scale);
}

// ---- reductions ---------------------------------------------------------------------

/// A sum over some dims of a contiguous x: `kept` addresses the outputs (its
/// stride_a are x's strides of the kept dims), `reduced` the elements summed
/// into each (x's strides of the other dims). Both coalesced.
struct ReducePlan {
  StridedLayout kept, reduced;
  int64_t n_out = 0, n_reduced = 0;
  dim3 grid, block;
};

constexpr int kReduceMaxThreads = 256;
constexpr int64_t kReduceMaxBlocks = int64_t(1) << 20;

/// Host: x has `ndim` dims of sizes x_size (row-major, contiguous); keep[d]
/// marks the dims the output keeps. The block size depends on the shape only
/// (a multiple of 32, enough for the reduced count, at most 256), so the
/// summation order, and the result, is a function of the shape.
inline ReducePlan reduce_plan(int ndim, const int64_t* x_size, const bool* keep) {
  ReducePlan p;
  StridedLayout kept, reduced;
  kept.ndim = reduced.ndim = 0;
  int64_t stride = 1;
  int64_t x_stride[kMaxDims] = {};
  for (int d = ndim - 1; d >= 0; --d) x_stride[d] = stride, stride *= x_size[d];
  p.n_out = 1, p.n_reduced = 1;
  for (int d = 0; d < ndim; ++d) {
    StridedLayout& l = keep[d] ? kept : reduced;
    l.size[l.ndim] = x_size[d];
    l.stride_a[l.ndim] = x_stride[d];
    ++l.ndim;
    (keep[d] ? p.n_out : p.n_reduced) *= x_size[d];
  }
  p.kept = p.n_out > 0 ? strided_coalesce(kept) : kept;
  p.reduced = p.n_reduced > 0 ? strided_coalesce(reduced) : reduced;
  int64_t threads = (p.n_reduced + kWarp - 1) / kWarp * kWarp;
  threads = threads < kWarp ? kWarp : (threads > kReduceMaxThreads ? kReduceMaxThreads : threads);
  const int64_t blocks =
      p.n_out < 1 ? 1 : (p.n_out > kReduceMaxBlocks ? kReduceMaxBlocks : p.n_out);
  p.grid = dim3(static_cast<unsigned>(blocks));
  p.block = dim3(static_cast<unsigned>(threads));
  return p;
}

/// out[j] = scale · Σ_r x[off_kept(j) + off_reduced(r)], one block per output
/// element (grid-stride over outputs): thread t sums r = t, t + blockDim, ... in
/// order, then block_sum's fixed tree. blockDim.x a multiple of 32.
template <class T>
VIT_DEVICE void reduce_sum_body(const T* x, T* out, StridedLayout kept, int64_t n_out,
                                StridedLayout reduced, int64_t n_reduced, float scale) {
  __shared__ float scratch[kWarp];
  for (int64_t j = blockIdx.x; j < n_out; j += gridDim.x) {
    const T* base = x + strided_offset_a(kept, j);
    float s = 0.f;
    for (int64_t r = threadIdx.x; r < n_reduced; r += blockDim.x)
      s += float(base[strided_offset_a(reduced, r)]);
    s = block_sum(s, scratch);
    if (threadIdx.x == 0) out[j] = to_storage<T>(s * scale);
  }
}
template <class T>
VIT_KERNEL void reduce_sum_kernel_t(const T* x, T* out, StridedLayout kept, int64_t n_out,
                                    StridedLayout reduced, int64_t n_reduced, float scale) {
  reduce_sum_body<T>(x, out, kept, n_out, reduced, n_reduced, scale);
}
VIT_KERNEL void reduce_sum_kernel(const float* x, float* out, StridedLayout kept, int64_t n_out,
                                  StridedLayout reduced, int64_t n_reduced, float scale) {
  reduce_sum_body<float>(x, out, kept, n_out, reduced, n_reduced, scale);
}

}  // namespace vit::cuda::kernels
