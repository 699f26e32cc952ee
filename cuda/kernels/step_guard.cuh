// The device-side decisions of a training step (include/vit/cuda/step_guard.hpp):
// the finite check that sets the optimizer's skip flag and keeps the trainer's
// non-finite counters, and the loss / top-1 / image sums the trainer reads only
// when it logs. Both are single-block kernels with a fixed order of work:
// integer counts and one thread's double adds, so bitwise repeatable, no
// atomics, and nothing for the host to wait for.
#pragma once

#include <cstdint>

#include "device_api.cuh"
#include "vit/cuda/step_guard.hpp"  // StepCounter, MetricSlot

namespace vit::cuda::kernels {

struct StepGuardLaunch {
  dim3 grid, block;
  size_t smem;
};

/// NaN and ±inf fail (a NaN compares false); no isfinite needed on either side.
VIT_DEVICE bool step_finite(float x) { return fabsf(x) <= 3.402823466e+38f; }

/// One thread: the skip flag and the counters (see cuda::check_step_finite).
VIT_KERNEL void check_step_finite_kernel(const float* loss, const float* norm, float* skip,
                                         int64_t* counters) {
  if (threadIdx.x != 0 || blockIdx.x != 0) return;
  const bool bad = !step_finite(loss[0]) || (norm != nullptr && !step_finite(norm[0]));
  skip[0] = bad ? 1.f : 0.f;
  counters[kNonfiniteSteps] += bad ? 1 : 0;
  counters[kNonfiniteRun] = bad ? counters[kNonfiniteRun] + 1 : 0;
  counters[kUpdatesApplied] += bad ? 0 : 1;
  if (counters[kNonfiniteRun] > counters[kLongestRun]) counters[kLongestRun] = counters[kNonfiniteRun];
}
inline StepGuardLaunch check_step_finite_launch() { return {dim3(1), dim3(1), 0}; }

constexpr int kMetricsThreads = 256;
/// One block; its warps take rows in turn (any multiple of 32 up to 1024 works).
inline StepGuardLaunch metrics_launch() { return {dim3(1), dim3(kMetricsThreads), 0}; }

/// The better of two top-1 candidates (idx −1: none): the larger value, on a
/// tie the smaller index. A total order, so the butterfly below gives every
/// lane the same winner whatever order it meets the candidates in.
VIT_DEVICE void top1_merge(float& best, long long& idx, float other, long long other_idx) {
  if (other_idx < 0) return;
  if (idx < 0 || best < other || (!(other < best) && other_idx < idx)) best = other, idx = other_idx;
}

// logits: (B,K), labels: (B), loss: (1) -> acc[kLossSum, kCorrect, kImages] +=.
// Row b's top-1 is std::max_element's: it keeps index 0 while a later element
// is not greater, so a NaN at index 0 wins and any other NaN is passed over;
// otherwise the first of the maximal values. Warp w scans rows w, w+warps, …;
// lane l the columns l, l+32, …; lane 0 counts, thread 0 sums the warps in order.
VIT_KERNEL void accumulate_metrics_kernel(const float* logits, const int32_t* labels, const float* loss,
                                          const float* skip, int64_t B, int64_t K, double* acc) {
  __shared__ long long warp_correct[kWarp];
  if (skip != nullptr && skip[0] != 0.f) return;  // uniform: the whole block leaves
  const int lane = static_cast<int>(threadIdx.x) % kWarp, warp = static_cast<int>(threadIdx.x) / kWarp;
  const int warps = static_cast<int>(blockDim.x) / kWarp;
  long long correct = 0;
  for (int64_t b = warp; b < B; b += warps) {
    const float* row = logits + b * K;
    float best = 0.f;
    long long idx = -1;
    for (int64_t k = lane; k < K; k += kWarp) {
      const float v = row[k];
      if (v != v) continue;  // NaN
      top1_merge(best, idx, v, k);
    }
    for (int m = kWarp / 2; m > 0; m /= 2) {
      const float other = __shfl_xor_sync(0xffffffffu, best, m);
      const long long other_idx = __shfl_xor_sync(0xffffffffu, idx, m);
      top1_merge(best, idx, other, other_idx);
    }
    if (lane == 0) {
      const float first = row[0];
      const long long top1 = first != first || idx < 0 ? 0 : idx;  // idx < 0: every logit NaN
      correct += top1 == static_cast<long long>(labels[b]) ? 1 : 0;
    }
  }
  if (lane == 0) warp_correct[warp] = correct;
  __syncthreads();
  if (threadIdx.x == 0) {
    long long total = 0;
    for (int w = 0; w < warps; ++w) total += warp_correct[w];
    acc[kLossSum] += static_cast<double>(loss[0]) * static_cast<double>(B);
    acc[kCorrect] += static_cast<double>(total);
    acc[kImages] += static_cast<double>(B);
  }
}

}  // namespace vit::cuda::kernels
