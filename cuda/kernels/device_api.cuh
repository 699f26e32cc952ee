// What a kernel body in cuda/kernels/ may use beyond plain C++. Built by nvcc
// this is CUDA itself; built by g++ (tests/cuda_emu/ and the emulated backend,
// VIT_CUDA_EMULATED) the same names come from emu.hpp, which runs each block's
// threads as real threads so the kernel logic is checked on a machine with no
// GPU. Keep kernels inside this list:
//   threadIdx, blockIdx, blockDim, gridDim, __syncthreads(),
//   __shfl_xor_sync(0xffffffff, v, m)   (all 32 lanes of the warp take part),
//   __shared__ fixed-size arrays, VIT_DYNAMIC_SMEM(type, name), float4,
//   and <cmath> float functions (expf, logf, erff, tanhf, sqrtf, fmaxf,
//   fminf, fabsf) plus rsqrtf and __fmul_rn (a product never fused into an FMA).
// No atomics: reductions go through per-block partials summed in a fixed
// order, so every result is bitwise repeatable (the project's rule).
// Kernels are templates or `inline`, declared VIT_KERNEL / VIT_DEVICE.
#pragma once

#if defined(__CUDACC__) && !defined(VIT_CUDA_EMULATED)
#define VIT_KERNEL __global__
#define VIT_DEVICE __device__ __forceinline__
#define VIT_DYNAMIC_SMEM(type, name) extern __shared__ __align__(16) unsigned char vit_smem_raw_[]; \
  type* name = reinterpret_cast<type*>(vit_smem_raw_)
#else
#include "emu.hpp"  // found through tests/cuda_emu on the include path
#endif

namespace vit::cuda::kernels {

constexpr int kWarp = 32;

/// Sum over the 32 lanes of a warp; every lane gets the total.
VIT_DEVICE float warp_sum(float v) {
  for (int m = kWarp / 2; m > 0; m /= 2) v += __shfl_xor_sync(0xffffffffu, v, m);
  return v;
}
VIT_DEVICE float warp_max(float v) {
  for (int m = kWarp / 2; m > 0; m /= 2) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, m));
  return v;
}

/// Sum over the whole block (blockDim.x a multiple of 32, at most 1024);
/// every thread gets the total. `scratch` holds 32 floats of shared memory.
VIT_DEVICE float block_sum(float v, float* scratch) {
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  const int warps = blockDim.x / kWarp;
  v = warp_sum(v);
  __syncthreads();  // scratch may still be read by a previous call
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < warps ? scratch[lane] : 0.f;
  return warp_sum(v);
}
VIT_DEVICE float block_max(float v, float* scratch) {
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  const int warps = blockDim.x / kWarp;
  v = warp_max(v);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < warps ? scratch[lane] : -INFINITY;
  return warp_max(v);
}

}  // namespace vit::cuda::kernels
