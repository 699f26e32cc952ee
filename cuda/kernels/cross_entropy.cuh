// Softmax cross-entropy with label smoothing, the CUDA twin of
// include/vit/ops/cross_entropy.hpp:
//   q = (1−ε)·onehot(label) + ε/K  (or a given target row, e.g. mixup),
//   loss = mean_b (logsumexp(z_b) − Σ_k q_bk·z_bk),  dlogits = (softmax(z) − q)·dloss/B.
// q is built inside the kernels from the labels: no (B,K) target tensor is
// materialised. Deliberately avoided: atomics for the batch mean (per-row
// losses, then one block sums them in a fixed order, so the loss is bitwise
// repeatable) and reading memory at a label index (an out-of-range label
// cannot fault; it makes that row's loss NaN).
#pragma once

#include <cstdint>

#include "device_api.cuh"

namespace vit::cuda::kernels {

/// Threads of the one block that sums the per-row losses; grid bound of the row kernels.
constexpr int kLossSumThreads = 256;
constexpr int64_t kCrossEntropyMaxBlocks = int64_t(1) << 16;

/// ε/K and 1−ε rounded to float, as the CPU op rounds its dense target
/// (Tensor<float>::full(ε/K), then += 1−ε at the label). Host code.
struct SmoothingValues {
  float off = 0.f, on = 1.f;
};
inline SmoothingValues label_smoothing_values(double eps, int64_t K) {
  return {static_cast<float>(eps / static_cast<double>(K)), static_cast<float>(1.0 - eps)};
}

/// q_k of a row: the target row when given, else ε/K plus (1−ε) at the label.
/// smooth_off = ε/K and smooth_on = 1−ε are rounded to float on the host, as the
/// CPU op rounds its target tensor, so both add the same two floats.
template <class Label>
VIT_DEVICE float target_prob(const Label* labels, const float* target, float smooth_off,
                             float smooth_on, int64_t row, int64_t k, int64_t K) {
  if (!labels) return target[row * K + k];
  return static_cast<int64_t>(labels[row]) == k ? smooth_off + smooth_on : smooth_off;
}

/// logits: (B,K), labels: (B) or target: (B,K) -> probs: (B,K), row_loss: (B).
/// One block per row (blockDim a multiple of 32): max, Σexp, then probs and Σ q·z.
template <class Label>
VIT_KERNEL void cross_entropy_rows_kernel(const float* logits, const Label* labels,
                                          const float* target, float smooth_off, float smooth_on,
                                          float* probs, float* row_loss, int64_t B, int64_t K) {
  __shared__ float scratch[kWarp];
  for (int64_t row = blockIdx.x; row < B; row += gridDim.x) {
    const float* z = logits + row * K;
    float mx = -INFINITY;
    for (int64_t k = threadIdx.x; k < K; k += blockDim.x) mx = fmaxf(mx, z[k]);
    mx = block_max(mx, scratch);
    float sum = 0.f;
    for (int64_t k = threadIdx.x; k < K; k += blockDim.x) sum += expf(z[k] - mx);
    const float lse = mx + logf(block_sum(sum, scratch));
    float qz = 0.f;
    for (int64_t k = threadIdx.x; k < K; k += blockDim.x) {
      probs[row * K + k] = expf(z[k] - lse);
      qz += target_prob(labels, target, smooth_off, smooth_on, row, k, K) * z[k];
    }
    qz = block_sum(qz, scratch);
    if (threadIdx.x == 0) {
      const bool bad_label = labels && (labels[row] < 0 || static_cast<int64_t>(labels[row]) >= K);
      row_loss[row] = bad_label ? nanf("") : lse - qz;
    }
  }
}

/// row_loss: (B) -> loss: (1) = mean. One block of kThreads: each thread sums
/// rows t, t + kThreads, ... in order, then block_sum's fixed tree.
template <int kThreads>
VIT_KERNEL void cross_entropy_mean_kernel(const float* row_loss, float* loss, int64_t B) {
  __shared__ float scratch[kWarp];
  float s = 0.f;
  for (int64_t b = threadIdx.x; b < B; b += kThreads) s += row_loss[b];
  s = block_sum(s, scratch);
  if (threadIdx.x == 0) loss[0] = s / static_cast<float>(B);
}

/// dloss: (1), probs: (B,K), labels (B) or target (B,K) -> dlogits: (B,K), grid-stride.
/// dlogits may alias probs.
template <class Label>
VIT_KERNEL void cross_entropy_backward_kernel(const float* dloss, const float* probs,
                                              const Label* labels, const float* target,
                                              float smooth_off, float smooth_on, float* dlogits,
                                              int64_t B, int64_t K) {
  const float scale = dloss[0] / static_cast<float>(B);  // as the CPU op: (p − q)·(dloss/B)
  const int64_t n = B * K, stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    const int64_t row = i / K, k = i - row * K;
    dlogits[i] = (probs[i] - target_prob(labels, target, smooth_off, smooth_on, row, k, K)) * scale;
  }
}

using CrossEntropyRowsKernel = void (*)(const float*, const int32_t*, const float*, float, float,
                                        float*, float*, int64_t, int64_t);
using CrossEntropyMeanKernel = void (*)(const float*, float*, int64_t);
using CrossEntropyBackwardKernel = void (*)(const float*, const float*, const int32_t*,
                                            const float*, float, float, float*, int64_t, int64_t);

struct CrossEntropyForwardLaunch {
  dim3 rows_grid, rows_block;
  CrossEntropyRowsKernel rows_kernel;
  dim3 mean_grid, mean_block;
  CrossEntropyMeanKernel mean_kernel;
};
/// A block per row, as many threads as K needs up to 256 (a multiple of 32).
inline CrossEntropyForwardLaunch cross_entropy_forward_geometry(int64_t B, int64_t K) {
  const int64_t threads = K >= 256 ? 256 : (K + kWarp - 1) / kWarp * kWarp;
  const int64_t blocks = B < 1 ? 1 : (B > kCrossEntropyMaxBlocks ? kCrossEntropyMaxBlocks : B);
  return {dim3(static_cast<unsigned>(blocks)),
          dim3(static_cast<unsigned>(threads < kWarp ? kWarp : threads)),
          cross_entropy_rows_kernel<int32_t>,
          dim3(1),
          dim3(kLossSumThreads),
          cross_entropy_mean_kernel<kLossSumThreads>};
}

struct CrossEntropyBackwardLaunch {
  dim3 grid, block;
  CrossEntropyBackwardKernel kernel;
};
inline CrossEntropyBackwardLaunch cross_entropy_backward_geometry(int64_t B, int64_t K) {
  const int64_t threads = 256, blocks = (B * K + threads - 1) / threads;
  return {
      dim3(static_cast<unsigned>(
          blocks < 1 ? 1 : (blocks > kCrossEntropyMaxBlocks ? kCrossEntropyMaxBlocks : blocks))),
      dim3(static_cast<unsigned>(threads)), cross_entropy_backward_kernel<int32_t>};
}

}  // namespace vit::cuda::kernels
