// Softmax cross-entropy with label smoothing, the CUDA twin of
// include/vit/ops/cross_entropy.hpp:
//   q = (1−ε)·onehot(label) + ε/K  (or a given target row, e.g. mixup),
//   loss = mean_b (logsumexp(z_b) − Σ_k q_bk·z_bk),  dlogits = (softmax(z) − q)·dloss/B.
// q is built inside the kernels from the labels: no (B,K) target tensor is
// materialised. Deliberately avoided: atomics for the batch mean (per-row
// losses, then one block sums them in a fixed order, so the loss is bitwise
// repeatable) and reading memory at a label index (an out-of-range label
// cannot fault; it makes that row's loss NaN).
// Templates on the storage type T of logits, target, probs, loss, dloss and
// dlogits (float or vit::bf16: bf16 in and out, float math; the per-row
// losses stay float). K is small (10..1000 classes, a (B,K) tensor of a few
// hundred KB), so these kernels use scalar loads: vectorising them would not
// show next to the GEMM that produces the logits.
#pragma once

#include <cstdint>

#include "rows.cuh"  // rows::load1, rows::to_storage

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
template <class Label, class T>
VIT_DEVICE float target_prob(const Label* labels, const T* target, float smooth_off,
                             float smooth_on, int64_t row, int64_t k, int64_t K) {
  if (!labels) return rows::load1(target + row * K + k);
  return static_cast<int64_t>(labels[row]) == k ? smooth_off + smooth_on : smooth_off;
}

/// logits: (B,K), labels: (B) or target: (B,K) -> probs: (B,K), row_loss: (B).
/// One block per row (blockDim a multiple of 32): max, Σexp, then probs and Σ q·z.
template <class T, class Label>
VIT_KERNEL void cross_entropy_rows_kernel(const T* logits, const Label* labels, const T* target,
                                          float smooth_off, float smooth_on, T* probs,
                                          float* row_loss, int64_t B, int64_t K) {
  __shared__ float scratch[kWarp];
  for (int64_t row = blockIdx.x; row < B; row += gridDim.x) {
    const T* z = logits + row * K;
    float mx = -INFINITY;
    for (int64_t k = threadIdx.x; k < K; k += blockDim.x) mx = fmaxf(mx, rows::load1(z + k));
    mx = block_max(mx, scratch);
    float sum = 0.f;
    for (int64_t k = threadIdx.x; k < K; k += blockDim.x) sum += expf(rows::load1(z + k) - mx);
    const float lse = mx + logf(block_sum(sum, scratch));
    float qz = 0.f;
    for (int64_t k = threadIdx.x; k < K; k += blockDim.x) {
      const float zk = rows::load1(z + k);
      probs[row * K + k] = rows::to_storage<T>(expf(zk - lse));
      qz += target_prob(labels, target, smooth_off, smooth_on, row, k, K) * zk;
    }
    qz = block_sum(qz, scratch);
    if (threadIdx.x == 0) {
      const bool bad_label = labels && (labels[row] < 0 || static_cast<int64_t>(labels[row]) >= K);
      row_loss[row] = bad_label ? nanf("") : lse - qz;
    }
  }
}

/// row_loss: (B) float -> loss: (1) = mean, rounded once to T. One block of kThreads:
/// each thread sums rows t, t + kThreads, ... in order, then block_sum's fixed tree.
template <int kThreads, class T = float>
VIT_KERNEL void cross_entropy_mean_kernel(const float* row_loss, T* loss, int64_t B) {
  __shared__ float scratch[kWarp];
  float s = 0.f;
  for (int64_t b = threadIdx.x; b < B; b += kThreads) s += row_loss[b];
  s = block_sum(s, scratch);
  if (threadIdx.x == 0) loss[0] = rows::to_storage<T>(s / static_cast<float>(B));
}

/// dloss: (1), probs: (B,K), labels (B) or target (B,K) -> dlogits: (B,K), grid-stride.
/// dlogits may alias probs.
template <class T, class Label>
VIT_KERNEL void cross_entropy_backward_kernel(const T* dloss, const T* probs, const Label* labels,
                                              const T* target, float smooth_off, float smooth_on,
                                              T* dlogits, int64_t B, int64_t K) {
  // as the CPU op: (p − q)·(dloss/B)
  const float scale = rows::load1(dloss) / static_cast<float>(B);
  const int64_t n = B * K, stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    const int64_t row = i / K, k = i - row * K;
    dlogits[i] = rows::to_storage<T>(
        (rows::load1(probs + i) - target_prob(labels, target, smooth_off, smooth_on, row, k, K)) *
        scale);
  }
}

template <class T = float>
using CrossEntropyRowsKernel = void (*)(const T*, const int32_t*, const T*, float, float, T*,
                                        float*, int64_t, int64_t);
template <class T = float>
using CrossEntropyMeanKernel = void (*)(const float*, T*, int64_t);
template <class T = float>
using CrossEntropyBackwardKernel = void (*)(const T*, const T*, const int32_t*, const T*, float,
                                            float, T*, int64_t, int64_t);

template <class T = float>
struct CrossEntropyForwardLaunch {
  dim3 rows_grid, rows_block;
  CrossEntropyRowsKernel<T> rows_kernel;
  dim3 mean_grid, mean_block;
  CrossEntropyMeanKernel<T> mean_kernel;
};
/// A block per row, as many threads as K needs up to 256 (a multiple of 32).
template <class T = float>
inline CrossEntropyForwardLaunch<T> cross_entropy_forward_geometry(int64_t B, int64_t K) {
  const int64_t threads = K >= 256 ? 256 : (K + kWarp - 1) / kWarp * kWarp;
  const int64_t blocks = B < 1 ? 1 : (B > kCrossEntropyMaxBlocks ? kCrossEntropyMaxBlocks : B);
  return {dim3(static_cast<unsigned>(blocks)),
          dim3(static_cast<unsigned>(threads < kWarp ? kWarp : threads)),
          cross_entropy_rows_kernel<T, int32_t>,
          dim3(1),
          dim3(kLossSumThreads),
          cross_entropy_mean_kernel<kLossSumThreads, T>};
}

template <class T = float>
struct CrossEntropyBackwardLaunch {
  dim3 grid, block;
  CrossEntropyBackwardKernel<T> kernel;
};
template <class T = float>
inline CrossEntropyBackwardLaunch<T> cross_entropy_backward_geometry(int64_t B, int64_t K) {
  const int64_t threads = 256, blocks = (B * K + threads - 1) / threads;
  return {
      dim3(static_cast<unsigned>(
          blocks < 1 ? 1 : (blocks > kCrossEntropyMaxBlocks ? kCrossEntropyMaxBlocks : blocks))),
      dim3(static_cast<unsigned>(threads)), cross_entropy_backward_kernel<T, int32_t>};
}

}  // namespace vit::cuda::kernels
