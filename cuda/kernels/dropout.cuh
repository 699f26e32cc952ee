// Dropout and drop-path on the GPU, the twin of include/vit/ops/dropout.hpp:
// a keep mask drawn from vit::Generator's counter-based hash, then x times the
// mask of its group. The mask is a pure function of (seed, counter, element),
// so the GPU draws bit for bit the CPU's mask, run to run and across a resume.
// Deliberately avoided: doubles on the device. The CPU keeps an element when
// uniform(c) = (bits(c) >> 11)·2⁻⁵³ >= p; since p·2⁵³ is exact in double and
// the left side is an integer, that is (bits(c) >> 11) >= ceil(p·2⁵³), an
// integer compare against a threshold computed once on the host.
// bf16 tensors keep a float mask (saved state stays float): the kept value is
// x·(1/(1−p)) rounded once. dropout_mask_kernel (float) is not a template (nvcc
// gives it a strong host stub): only dropout.cu (and the emulated tests) may
// include this header.
#pragma once

#include <cmath>
#include <cstdint>

#include "device_api.cuh"
#include "maps.cuh"  // Pack, to_storage
#include "rng.cuh"

namespace vit::cuda::kernels {

constexpr int kDropoutThreads = 256;
constexpr int64_t kDropoutMaxBlocks = 4096;

struct DropoutLaunch {
  dim3 grid, block;
  size_t smem = 0;
};
/// One thread per element (mask) or per 4 elements (apply), grid-stride past max_blocks.
inline DropoutLaunch dropout_launch(int64_t work, int64_t max_blocks = kDropoutMaxBlocks) {
  int64_t blocks = (work + kDropoutThreads - 1) / kDropoutThreads;
  blocks = blocks < 1 ? 1 : (blocks > max_blocks ? max_blocks : blocks);
  return {dim3(static_cast<unsigned>(blocks)), dim3(kDropoutThreads), 0};
}

/// mask: (groups) -> mask[i] = keep_scale if (bits(c + i) >> 11) >= threshold, else 0,
/// c = counter0 + *counter_shift (null: 0).
template <class T>
VIT_DEVICE void dropout_mask_body(T* mask, int64_t groups, uint64_t seed, uint64_t counter0,
                                  const uint64_t* counter_shift, uint64_t threshold,
                                  float keep_scale) {
  if (counter_shift) counter0 += *counter_shift;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < groups;
       i += stride) {
    const uint64_t u = generator_bits(seed, counter0 + static_cast<uint64_t>(i)) >> 11;
    mask[i] = to_storage<T>(u >= threshold ? keep_scale : 0.f);
  }
}
template <class T>
VIT_KERNEL void dropout_mask_kernel_t(T* mask, int64_t groups, uint64_t seed, uint64_t counter0,
                                      const uint64_t* counter_shift, uint64_t threshold,
                                      float keep_scale) {
  dropout_mask_body<T>(mask, groups, seed, counter0, counter_shift, threshold, keep_scale);
}
VIT_KERNEL void dropout_mask_kernel(float* mask, int64_t groups, uint64_t seed, uint64_t counter0,
                                    const uint64_t* counter_shift, uint64_t threshold,
                                    float keep_scale) {
  dropout_mask_body<float>(mask, groups, seed, counter0, counter_shift, threshold, keep_scale);
}

/// x: (n), mask: (ceil(n / inner)) -> out[i] = x[i]·mask[i / inner]; out may alias x.
/// The group index advances with the fixed grid stride, so there is one 64-bit
/// division per thread, not one per element. With inner % kVec == 0 and aligned
/// pointers a vector (4 floats, 8 bf16) never straddles two groups. x and out
/// of storage type T, the mask float.
template <int kVec, class T = float>
VIT_KERNEL void apply_group_mask_kernel(const T* x, const float* mask, T* out, int64_t n,
                                        int64_t inner) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t first = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t units = n / kVec, unit_inner = inner / kVec;  // inner % kVec == 0
  const int64_t g_step = stride / unit_inner, r_step = stride % unit_inner;
  int64_t g = first / unit_inner, r = first % unit_inner;
  for (int64_t u = first; u < units; u += stride) {
    const float m = mask[g];
    if constexpr (kVec > 1) {
      const Pack<T, kVec> v = load_pack<T, kVec>(x, u);
      Pack<T, kVec> o;
#pragma unroll
      for (int k = 0; k < kVec; ++k) o.v[k] = to_storage<T>(float(v.v[k]) * m);
      store_pack<T, kVec>(out, u, o);
    } else {
      out[u] = to_storage<T>(float(x[u]) * m);
    }
    g += g_step;
    r += r_step;
    if (r >= unit_inner) r -= unit_inner, ++g;
  }
  if constexpr (kVec > 1) {  // the n % kVec tail
    const int64_t i = kVec * units + first;
    if (i < n) out[i] = to_storage<T>(float(x[i]) * mask[i / inner]);
  }
}

template <class T>
using ApplyGroupMaskKernelT = void (*)(const T*, const float*, T*, int64_t, int64_t);
using ApplyGroupMaskKernel = ApplyGroupMaskKernelT<float>;
template <class T>
struct ApplyGroupMaskLaunchT {
  dim3 grid, block;
  size_t smem = 0;
  ApplyGroupMaskKernelT<T> kernel;
};
using ApplyGroupMaskLaunch = ApplyGroupMaskLaunchT<float>;
/// 16-byte vectors (4 floats, 8 bf16) when x and out are 16-byte aligned (the
/// mask is read one float at a time) and inner is a multiple of the vector. Host code.
template <class T>
inline ApplyGroupMaskLaunchT<T> apply_group_mask_geometry(const T* x, const T* out, int64_t n,
                                                          int64_t inner,
                                                          int64_t max_blocks = kDropoutMaxBlocks) {
  constexpr int V = kVecOf<T>;
  const bool vec = reinterpret_cast<uintptr_t>(x) % 16 == 0 &&
                   reinterpret_cast<uintptr_t>(out) % 16 == 0 && inner % V == 0;
  const DropoutLaunch l = dropout_launch(vec ? (n + V - 1) / V : n, max_blocks);
  return {l.grid, l.block, 0, vec ? apply_group_mask_kernel<V, T> : apply_group_mask_kernel<1, T>};
}

}  // namespace vit::cuda::kernels
