// Multi-tensor optimizer kernels: one launch updates every parameter tensor
// with optim::Adam/AdamW's or optim::SGD's exact per-element rule, and one
// launch plus a one-block finish gives clip_grad_norm's global norm and clip
// coefficient.
// The slot table (pointers, sizes, weight decays and a prefix table of chunk
// starts) travels by value as a __grid_constant__ kernel parameter, so nothing
// is uploaded, no host synchronisation, and the launch can be graph-captured.
// Every block takes one fixed-size chunk of one slot (found by binary search
// in the prefix table), so small and large tensors share the GPU evenly.
// The norm uses no atomics: per-chunk partial sums of squares, summed in a
// fixed order by one block, so it is bitwise repeatable.
#pragma once

#include <cstdint>
#include <cstdlib>

#include "device_api.cuh"
#include "vit/cuda/optimizer.hpp"  // ParamSlot, AdamHyper, SgdHyper (plain structs)

// A by-value kernel parameter that the kernel indexes at run time stays in the
// parameter bank instead of being copied to local memory (sm_70+).
#ifndef VIT_GRID_CONSTANT
#ifdef __CUDACC__
#define VIT_GRID_CONSTANT __grid_constant__
#else
#define VIT_GRID_CONSTANT
#endif
#endif

namespace vit::cuda::kernels {

constexpr int kOptimSlotsPerLaunch = 256;
constexpr int kOptimThreads = 256;
constexpr int64_t kOptimChunk = 4096;  // elements per block: 4 float4 steps per thread

struct OptimSlotTable {
  ParamSlot slot[kOptimSlotsPerLaunch];
  // Block b works on slot s where chunk_start[s] <= b < chunk_start[s+1];
  // chunk_start[count] is the grid size. Empty slots are left out.
  int chunk_start[kOptimSlotsPerLaunch + 1];
  int count;
  int64_t first_chunk;  // this table's first chunk among all tables (grad_norm's partials)
};
// CUDA 12.1+ allows 32764 bytes of kernel parameters; leave room for the rest.
static_assert(sizeof(OptimSlotTable) < 31 * 1024, "slot table too large for a kernel parameter");

/// Calls fn(table) for consecutive tables covering every non-empty slot, each
/// holding at most kOptimSlotsPerLaunch slots. Launchers and tests share it.
/// A slot needs n <= INT32_MAX·kOptimChunk (checked by the launchers).
template <class Fn>
void for_each_slot_table(const ParamSlot* slots, int count, Fn&& fn) {
  OptimSlotTable t{};
  t.count = 0;
  t.chunk_start[0] = 0;
  t.first_chunk = 0;
  for (int i = 0; i < count; ++i) {
    if (slots[i].n <= 0) continue;
    const int64_t chunks = (slots[i].n + kOptimChunk - 1) / kOptimChunk;
    if (t.count == kOptimSlotsPerLaunch || t.chunk_start[t.count] + chunks > INT32_MAX) {
      fn(static_cast<const OptimSlotTable&>(t));
      t.first_chunk += t.chunk_start[t.count];
      t.count = 0;
    }
    t.slot[t.count] = slots[i];
    t.chunk_start[t.count + 1] = static_cast<int>(t.chunk_start[t.count] + chunks);
    ++t.count;
  }
  if (t.count > 0) fn(static_cast<const OptimSlotTable&>(t));
}

struct OptimLaunch {
  dim3 grid, block;
  size_t smem;
};
/// One block per chunk of the table.
inline OptimLaunch optim_launch(const OptimSlotTable& t) {
  return {dim3(static_cast<unsigned>(t.chunk_start[t.count])), dim3(kOptimThreads), 0};
}
/// The one block that sums every chunk's partial for grad_norm.
inline OptimLaunch grad_norm_finish_launch() { return {dim3(1), dim3(512), 0}; }

// ---- per-element rules (g already multiplied by the clip coefficient) ----

/// optim::Adam / AdamW: state0 = m, state1 = v.
struct AdamUpdate {
  float lr, beta1, beta2, one_minus_beta1, one_minus_beta2, eps, step_size, bc2_sqrt;
  int decoupled;
  VIT_DEVICE void operator()(float& w, float g, float& m, float& v, float wd) const {
    if (decoupled) w *= 1.f - lr * wd;
    else if (wd != 0.f) g += wd * w;
    m = beta1 * m + one_minus_beta1 * g;
    v = beta2 * v + one_minus_beta2 * g * g;
    w -= step_size * m / (sqrtf(v) / bc2_sqrt + eps);
  }
};
inline AdamUpdate adam_update(const AdamHyper& h) {
  return {h.lr,
          h.beta1,
          h.beta2,
          h.one_minus_beta1,
          h.one_minus_beta2,
          h.eps,
          h.step_size,
          h.bias_correction2_sqrt,
          h.decoupled ? 1 : 0};
}

/// optim::SGD: state0 = momentum buffer (when momentum != 0).
struct SgdUpdate {
  float lr, momentum, one_minus_dampening;
  int nesterov, first_step, has_buffer;
  VIT_DEVICE void operator()(float& w, float g, float& buf, float& /*unused*/, float wd) const {
    const float d = g + wd * w;
    if (!has_buffer) {
      w -= lr * d;
      return;
    }
    buf = first_step ? d : momentum * buf + one_minus_dampening * d;
    w -= lr * (nesterov ? d + momentum * buf : buf);
  }
};
inline SgdUpdate sgd_update(const SgdHyper& h) {
  return {h.lr,
          h.momentum,
          h.one_minus_dampening,
          h.nesterov ? 1 : 0,
          h.first_step ? 1 : 0,
          h.momentum != 0.f ? 1 : 0};
}

// ---- kernels ----------------------------------------------------------------------

VIT_DEVICE bool optim_aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

/// The slot whose chunk range holds `block` (chunk_start strictly increases).
VIT_DEVICE int optim_find_slot(const OptimSlotTable& t, int block) {
  int lo = 0, hi = t.count - 1;
  while (lo < hi) {
    const int mid = (lo + hi + 1) / 2;
    if (t.chunk_start[mid] <= block) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

// Every slot's param (n), grad (n) and kStates state arrays (n): block b
// updates chunk b - chunk_start[s] of slot s. float4 steps when all of the
// slot's arrays are 16-byte aligned (chunk starts are multiples of 4), then
// the n % 4 tail; scalars otherwise.
template <int kStates, class Update>
VIT_KERNEL void multi_tensor_update_kernel(VIT_GRID_CONSTANT const OptimSlotTable table, const Update up,
                                           const float* grad_scale) {
  const int s = optim_find_slot(table, static_cast<int>(blockIdx.x));
  const ParamSlot& slot = table.slot[s];
  float* w = slot.param;
  const float* g = slot.grad;
  float* s0 = slot.state0;
  float* s1 = slot.state1;
  const float wd = slot.weight_decay;
  const float gs = grad_scale != nullptr ? *grad_scale : 1.f;
  const int64_t begin = int64_t(static_cast<int>(blockIdx.x) - table.chunk_start[s]) * kOptimChunk;
  const int64_t end = begin + kOptimChunk < slot.n ? begin + kOptimChunk : slot.n;
  int64_t i = begin + threadIdx.x;  // where the scalar loop starts
  if (optim_aligned16(w) && optim_aligned16(g) && (kStates < 1 || optim_aligned16(s0)) &&
      (kStates < 2 || optim_aligned16(s1))) {
    const int64_t vend = begin + ((end - begin) & ~int64_t(3));
    for (int64_t j = begin + 4 * int64_t(threadIdx.x); j < vend; j += 4 * int64_t(blockDim.x)) {
      float4 wv = *reinterpret_cast<const float4*>(w + j);
      const float4 gv = *reinterpret_cast<const float4*>(g + j);
      float4 av = {0.f, 0.f, 0.f, 0.f}, bv = {0.f, 0.f, 0.f, 0.f};
      if (kStates >= 1) av = *reinterpret_cast<const float4*>(s0 + j);
      if (kStates >= 2) bv = *reinterpret_cast<const float4*>(s1 + j);
      up(wv.x, gv.x * gs, av.x, bv.x, wd);
      up(wv.y, gv.y * gs, av.y, bv.y, wd);
      up(wv.z, gv.z * gs, av.z, bv.z, wd);
      up(wv.w, gv.w * gs, av.w, bv.w, wd);
      *reinterpret_cast<float4*>(w + j) = wv;
      if (kStates >= 1) *reinterpret_cast<float4*>(s0 + j) = av;
      if (kStates >= 2) *reinterpret_cast<float4*>(s1 + j) = bv;
    }
    i = vend + threadIdx.x;
  }
  for (; i < end; i += blockDim.x) {
    float wi = w[i], a = kStates >= 1 ? s0[i] : 0.f, b = kStates >= 2 ? s1[i] : 0.f;
    up(wi, g[i] * gs, a, b, wd);
    w[i] = wi;
    if (kStates >= 1) s0[i] = a;
    if (kStates >= 2) s1[i] = b;
  }
}

// partials[first_chunk + b] = sum of grad² over chunk b of the table.
VIT_KERNEL void grad_sumsq_kernel(VIT_GRID_CONSTANT const OptimSlotTable table, float* partials) {
  __shared__ float scratch[kWarp];
  const int s = optim_find_slot(table, static_cast<int>(blockIdx.x));
  const float* g = table.slot[s].grad;
  const int64_t n = table.slot[s].n;
  const int64_t begin = int64_t(static_cast<int>(blockIdx.x) - table.chunk_start[s]) * kOptimChunk;
  const int64_t end = begin + kOptimChunk < n ? begin + kOptimChunk : n;
  float acc = 0.f;
  int64_t i = begin + threadIdx.x;
  if (optim_aligned16(g)) {
    const int64_t vend = begin + ((end - begin) & ~int64_t(3));
    for (int64_t j = begin + 4 * int64_t(threadIdx.x); j < vend; j += 4 * int64_t(blockDim.x)) {
      const float4 v = *reinterpret_cast<const float4*>(g + j);
      acc += v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w;
    }
    i = vend + threadIdx.x;
  }
  for (; i < end; i += blockDim.x) acc += g[i] * g[i];
  acc = block_sum(acc, scratch);
  if (threadIdx.x == 0) partials[table.first_chunk + blockIdx.x] = acc;
}

// partials: (count) -> norm_out[0] = sqrt(sum), coef_out[0] = the clip
// coefficient. One block; thread-strided then warp-tree order, fixed. A NaN
// norm gives coefficient 1, as clip_grad_norm (coef < 1 is false) leaves the
// gradients alone then; an infinite one gives 0.
VIT_KERNEL void grad_norm_finish_kernel(const float* partials, int64_t count, float max_norm,
                                        float* norm_out, float* coef_out) {
  __shared__ float scratch[kWarp];
  float acc = 0.f;
  for (int64_t i = threadIdx.x; i < count; i += blockDim.x) acc += partials[i];
  acc = block_sum(acc, scratch);
  if (threadIdx.x == 0) {
    const float norm = sqrtf(acc);
    const float c = max_norm / (norm + 1e-6f);
    norm_out[0] = norm;
    coef_out[0] = max_norm > 0.f && c < 1.f ? c : 1.f;
  }
}

}  // namespace vit::cuda::kernels
