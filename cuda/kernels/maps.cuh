// Flat elementwise maps over float arrays, out[i] = op(a[i], b[i]) or op(x[i]),
// with the ops the launchers share (add, sub, mul, scale, tanh and its
// backward; GELU's live in gelu.cuh). float4 loads when every pointer is
// 16-byte aligned, plain coalesced scalars otherwise, a grid-stride loop past
// kElementwiseMaxBlocks.
// Only templates and inline host code: nvcc emits a __global__ function's host
// stub as a strong symbol in every .cu that sees it, so a non-template kernel
// in a header included by two launchers breaks the link of vit::cuda users.
// elementwise.cu, gelu.cu and strided.cu all include this one.
#pragma once

#include <cstdint>

#include "device_api.cuh"

namespace vit::cuda::kernels {

struct ElementwiseLaunch {
  dim3 grid, block;
  size_t smem;
};

constexpr int kElementwiseThreads = 256;
constexpr int64_t kElementwiseMaxBlocks = 4096;  // grid-stride beyond: ~30 resident blocks per SM

/// Maps: one thread per 4 elements per step, grid-stride past max_blocks.
inline ElementwiseLaunch elementwise_launch(int64_t n, int64_t max_blocks = kElementwiseMaxBlocks) {
  const int64_t quads = (n + 3) / 4;
  int64_t blocks = (quads + kElementwiseThreads - 1) / kElementwiseThreads;
  blocks = blocks < 1 ? 1 : (blocks > max_blocks ? max_blocks : blocks);
  return {dim3(static_cast<unsigned>(blocks)), dim3(kElementwiseThreads), 0};
}

VIT_DEVICE bool ew_aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

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
struct EwTanh {
  VIT_DEVICE float operator()(float a) const { return tanhf(a); }
};
/// (dy, y) -> dy·(1 − y²), from the forward's output y, as the CPU TanhNode.
struct EwTanhGrad {
  VIT_DEVICE float operator()(float dy, float y) const { return dy * (1.f - y * y); }
};

// out[i] = op(a[i], b[i]), n elements. out may alias a or b: each element is
// read and then written by the same thread.
template <class Op>
VIT_KERNEL void ew_binary_kernel(const float* a, const float* b, float* out, int64_t n, Op op) {
  const int64_t first = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  if (ew_aligned16(a) && ew_aligned16(b) && ew_aligned16(out)) {
    const int64_t quads = n / 4;
    for (int64_t q = first; q < quads; q += stride) {
      const float4 x = reinterpret_cast<const float4*>(a)[q];
      const float4 y = reinterpret_cast<const float4*>(b)[q];
      float4 r;
      r.x = op(x.x, y.x), r.y = op(x.y, y.y), r.z = op(x.z, y.z), r.w = op(x.w, y.w);
      reinterpret_cast<float4*>(out)[q] = r;
    }
    const int64_t i = 4 * quads + first;  // the n % 4 tail
    if (i < n) out[i] = op(a[i], b[i]);
  } else {
    for (int64_t i = first; i < n; i += stride) out[i] = op(a[i], b[i]);
  }
}

// out[i] = op(x[i]); out may alias x.
template <class Op>
VIT_KERNEL void ew_unary_kernel(const float* x, float* out, int64_t n, Op op) {
  const int64_t first = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  if (ew_aligned16(x) && ew_aligned16(out)) {
    const int64_t quads = n / 4;
    for (int64_t q = first; q < quads; q += stride) {
      const float4 v = reinterpret_cast<const float4*>(x)[q];
      float4 r;
      r.x = op(v.x), r.y = op(v.y), r.z = op(v.z), r.w = op(v.w);
      reinterpret_cast<float4*>(out)[q] = r;
    }
    const int64_t i = 4 * quads + first;
    if (i < n) out[i] = op(x[i]);
  } else {
    for (int64_t i = first; i < n; i += stride) out[i] = op(x[i]);
  }
}

}  // namespace vit::cuda::kernels
