// Multi-tensor optimizer kernels: one launch updates every parameter tensor
// with optim::Adam/AdamW's or optim::SGD's exact per-element rule, and one
// launch plus a one-block finish gives clip_grad_norm's global norm and clip
// coefficient.
// Per-step values live on the device: a one-thread prologue turns StepInputs
// (lr, clip coefficient, skip flag, step count) into OptimStepScalars (the
// host-side double arithmetic of the CPU optimizer) and advances the step
// count; the update kernels read those scalars and return at once on a
// skipped step. Nothing is uploaded or read back per step, so a step can be
// captured as a CUDA graph and replayed.
// The slot table (pointers, sizes, weight decays and a prefix table of chunk
// starts) travels by value as a __grid_constant__ kernel parameter.
// Every block takes one fixed-size chunk of one slot (found by binary search
// in the prefix table), so small and large tensors share the GPU evenly.
// The norm uses no atomics: per-chunk partial sums of squares, summed in a
// fixed order by one block, so it is bitwise repeatable.
#pragma once

#include <cstdint>
#include <cstdlib>

#include "device_api.cuh"
#include "vit/cuda/optimizer.hpp"  // ParamSlot, StepInputs, AdamHyper, SgdHyper (plain structs)

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
/// The one thread of optim_prologue_kernel.
inline OptimLaunch optim_prologue_launch() { return {dim3(1), dim3(1), 0}; }
/// The one block that sums every chunk's partial for grad_norm.
inline OptimLaunch grad_norm_finish_launch() { return {dim3(1), dim3(512), 0}; }

// ---- the per-step scalars ------------------------------------------------------------

/// What the one-thread prologue computes from StepInputs for the update
/// kernels of this step, in a small device scratch: everything the CPU
/// optimizer computes on the host, rounded to float where the CPU rounds.
struct OptimStepScalars {
  double lr;        // this step's learning rate (AdamW's per-slot decay 1 − lr·wd in double)
  float lr_f;       // float(lr) (SGD)
  float step_size;  // Adam: float(lr / (1 − β1ᵗ))
  float bc2_sqrt;   // Adam: float(√(1 − β2ᵗ))
  float grad_scale; // *grad_scale, or 1
  int scaled;       // grad_scale given: g·grad_scale (no multiply at all without one, as the CPU)
  int skip;         // nonzero: the update kernels return at once
  int first_step;   // SGD: no update applied before this one (buffer = d)
};

/// The prologue's rule: Adam's bias corrections need the double betas.
struct OptimPrologue {
  double beta1, beta2;
  int adam;
};

/// One thread: reads in.lr, in.grad_scale, in.skip and in.step into *out, and
/// increments *in.step unless the step is skipped. The double expressions are
/// optim::Adam's, so the rounded values equal the CPU's (the device pow may
/// differ from the host's by an ulp of double, invisible after the float
/// rounding but for ties).
VIT_KERNEL void optim_prologue_kernel(const StepInputs in, const OptimPrologue rule, OptimStepScalars* out) {
  if (threadIdx.x != 0 || blockIdx.x != 0) return;
  const int skip = in.skip != nullptr && in.skip[0] != 0.f ? 1 : 0;  // NaN != 0: skipped
  const int64_t before = in.step[0];
  const int64_t t = before + 1;
  const double lr = in.lr[0];
  OptimStepScalars s;
  s.lr = lr;
  s.lr_f = static_cast<float>(lr);
  s.step_size = 0.f;
  s.bc2_sqrt = 1.f;
  if (rule.adam) {
    const double bc1 = 1.0 - pow(rule.beta1, static_cast<double>(t));
    const double bc2_sqrt = sqrt(1.0 - pow(rule.beta2, static_cast<double>(t)));
    s.step_size = static_cast<float>(lr / bc1);
    s.bc2_sqrt = static_cast<float>(bc2_sqrt);
  }
  s.grad_scale = in.grad_scale != nullptr ? in.grad_scale[0] : 1.f;
  s.scaled = in.grad_scale != nullptr ? 1 : 0;
  s.skip = skip;
  s.first_step = before == 0 ? 1 : 0;
  *out = s;
  if (!skip) in.step[0] = t;
}

// ---- per-element rules (g already multiplied by the clip coefficient) ----
// Each rule has coef(): the per-slot constants from the slot's weight decay and
// the step's scalars (once per block), and operator(): one element.

/// optim::Adam / AdamW: state0 = m, state1 = v.
struct AdamUpdate {
  float beta1, beta2, one_minus_beta1, one_minus_beta2, eps;
  int decoupled;
  struct Coef {
    float step_size, bc2_sqrt, decay, wd;
    int l2;
  };
  VIT_DEVICE Coef coef(double wd, const OptimStepScalars& s) const {
    // As optim::Adam: decay = T(1 − lr·wd) from the double lr and wd; L2 uses T(wd).
    return {s.step_size, s.bc2_sqrt, static_cast<float>(1.0 - s.lr * wd), static_cast<float>(wd),
            !decoupled && wd != 0.0 ? 1 : 0};
  }
  VIT_DEVICE void operator()(float& w, float g, float& m, float& v, const Coef& c) const {
    if (decoupled) w *= c.decay;
    else if (c.l2) g += c.wd * w;
    m = beta1 * m + one_minus_beta1 * g;
    v = beta2 * v + one_minus_beta2 * g * g;
    w -= c.step_size * m / (sqrtf(v) / c.bc2_sqrt + eps);
  }
};
/// The float constants as optim::Adam rounds them from the double options.
inline AdamUpdate adam_update(const AdamHyper& h) {
  return {static_cast<float>(h.beta1),       static_cast<float>(h.beta2),
          static_cast<float>(1.0 - h.beta1), static_cast<float>(1.0 - h.beta2),
          static_cast<float>(h.eps),         h.decoupled ? 1 : 0};
}
inline OptimPrologue adam_prologue(const AdamHyper& h) { return {h.beta1, h.beta2, 1}; }

/// optim::SGD: state0 = momentum buffer (when momentum != 0).
struct SgdUpdate {
  float momentum, one_minus_dampening;
  int nesterov, has_buffer;
  struct Coef {
    float lr, wd;
    int first_step;
  };
  VIT_DEVICE Coef coef(double wd, const OptimStepScalars& s) const {
    return {s.lr_f, static_cast<float>(wd), s.first_step};
  }
  VIT_DEVICE void operator()(float& w, float g, float& buf, float& /*unused*/, const Coef& c) const {
    const float d = g + c.wd * w;
    if (!has_buffer) {
      w -= c.lr * d;
      return;
    }
    buf = c.first_step ? d : momentum * buf + one_minus_dampening * d;
    w -= c.lr * (nesterov ? d + momentum * buf : buf);
  }
};
inline SgdUpdate sgd_update(const SgdHyper& h) {
  return {static_cast<float>(h.momentum), static_cast<float>(1.0 - h.dampening), h.nesterov ? 1 : 0,
          h.momentum != 0.0 ? 1 : 0};
}
inline OptimPrologue sgd_prologue() { return {0.0, 0.0, 0}; }

// ---- kernels ----------------------------------------------------------------------

VIT_DEVICE bool optim_aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }
VIT_DEVICE bool optim_aligned8(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 7u) == 0; }

/// Four bf16 written as one 8-byte store (a float4 step's low-precision copy).
struct alignas(8) OptimBf16x4 {
  vit::bf16 v[4];
};

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
// updates chunk b - chunk_start[s] of slot s, with the step's scalars from
// optim_prologue_kernel (nothing at all when the step is skipped). float4 steps when all of the
// slot's arrays are 16-byte aligned (chunk starts are multiples of 4), then
// the n % 4 tail; scalars otherwise. A slot with param_bf16 also gets
// param_bf16[i] = bf16(new param[i]) from the register holding it: one 8-byte
// store per float4 step when the copy is 8-byte aligned, four 2-byte ones if
// not, one per element on the scalar path.
template <int kStates, class Update>
VIT_KERNEL void multi_tensor_update_kernel(VIT_GRID_CONSTANT const OptimSlotTable table, const Update up,
                                           const OptimStepScalars* scalars) {
  const OptimStepScalars sc = *scalars;
  if (sc.skip) return;  // a non-finite step: nothing changes
  const int s = optim_find_slot(table, static_cast<int>(blockIdx.x));
  const ParamSlot& slot = table.slot[s];
  float* w = slot.param;
  const float* g = slot.grad;
  float* s0 = slot.state0;
  float* s1 = slot.state1;
  vit::bf16* w16 = slot.param_bf16;
  const bool w16_vec = w16 != nullptr && optim_aligned8(w16);
  const typename Update::Coef c = up.coef(slot.weight_decay, sc);
  const float gs = sc.grad_scale;
  const bool scaled = sc.scaled != 0;
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
      up(wv.x, scaled ? gv.x * gs : gv.x, av.x, bv.x, c);
      up(wv.y, scaled ? gv.y * gs : gv.y, av.y, bv.y, c);
      up(wv.z, scaled ? gv.z * gs : gv.z, av.z, bv.z, c);
      up(wv.w, scaled ? gv.w * gs : gv.w, av.w, bv.w, c);
      *reinterpret_cast<float4*>(w + j) = wv;
      if (w16_vec) {
        *reinterpret_cast<OptimBf16x4*>(w16 + j) = {{vit::bf16(wv.x), vit::bf16(wv.y), vit::bf16(wv.z),
                                                     vit::bf16(wv.w)}};
      } else if (w16 != nullptr) {
        w16[j] = vit::bf16(wv.x);
        w16[j + 1] = vit::bf16(wv.y);
        w16[j + 2] = vit::bf16(wv.z);
        w16[j + 3] = vit::bf16(wv.w);
      }
      if (kStates >= 1) *reinterpret_cast<float4*>(s0 + j) = av;
      if (kStates >= 2) *reinterpret_cast<float4*>(s1 + j) = bv;
    }
    i = vend + threadIdx.x;
  }
  for (; i < end; i += blockDim.x) {
    float wi = w[i], a = kStates >= 1 ? s0[i] : 0.f, b = kStates >= 2 ? s1[i] : 0.f;
    up(wi, scaled ? g[i] * gs : g[i], a, b, c);
    w[i] = wi;
    if (w16 != nullptr) w16[i] = vit::bf16(wi);
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
