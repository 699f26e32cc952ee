// Launchers of the cross-entropy kernels (cuda/kernels/cross_entropy.cuh):
// argument checks, the kernels header's geometry, one stream, no host sync.
// The float and bf16 overloads share one template per launcher.
// The batch mean goes through a scratch buffer of per-row float losses that one
// block sums in fixed order: no atomics, so the loss is bitwise repeatable.
#include "common.cuh"
#include "kernels/cross_entropy.cuh"
#include "vit/cuda/cross_entropy.hpp"

namespace vit::cuda {
namespace {

/// ε/K and 1−ε rounded to float as the CPU op rounds its target tensor
/// (Tensor<float>::full(ε/K), then += 1−ε at the label).
kernels::SmoothingValues smoothing_for(const int32_t* labels, double eps, int64_t K,
                                       const char* op) {
  if (!labels) return {};  // soft targets: smoothing ignored
  VIT_CHECK(eps >= 0.0 && eps <= 1.0, op, ": label_smoothing must be in [0, 1], got ", eps);
  return kernels::label_smoothing_values(eps, K);
}

template <class T>
void forward_impl(const T* logits, const int32_t* labels, const T* target, double label_smoothing,
                  T* probs, T* loss, int64_t B, int64_t K) {
  const char* op = "cross_entropy_forward (cuda)";
  VIT_CHECK(B >= 0 && K >= 0, op, ": negative size B ", B, ", K ", K);
  if (B == 0) return;
  VIT_CHECK(K > 0, op, ": ", B, " rows of 0 classes");
  VIT_CHECK(logits && probs && loss, op, ": null logits, probs or loss");
  VIT_CHECK(labels || target, op, ": needs labels or a target distribution");
  const kernels::SmoothingValues s = smoothing_for(labels, label_smoothing, K, op);
  const auto l = kernels::cross_entropy_forward_geometry<T>(B, K);
  detail::Scratch row_loss(static_cast<size_t>(B));
  detail::launch(l.rows_kernel, l.rows_grid, l.rows_block, 0, logits, labels, target, s.off, s.on,
                 probs, row_loss.p, B, K);
  VIT_CUDA_LAUNCH_CHECK();
  detail::launch(l.mean_kernel, l.mean_grid, l.mean_block, 0,
                 static_cast<const float*>(row_loss.p), loss, B);
  VIT_CUDA_LAUNCH_CHECK();
}

template <class T>
void backward_impl(const T* dloss, const T* probs, const int32_t* labels, const T* target,
                   double label_smoothing, T* dlogits, int64_t B, int64_t K) {
  const char* op = "cross_entropy_backward (cuda)";
  VIT_CHECK(B >= 0 && K >= 0, op, ": negative size B ", B, ", K ", K);
  if (B == 0 || K == 0) return;
  VIT_CHECK(dloss && probs && dlogits, op, ": null dloss, probs or dlogits");
  VIT_CHECK(labels || target, op, ": needs labels or a target distribution");
  const kernels::SmoothingValues s = smoothing_for(labels, label_smoothing, K, op);
  const auto l = kernels::cross_entropy_backward_geometry<T>(B, K);
  detail::launch(l.kernel, l.grid, l.block, 0, dloss, probs, labels, target, s.off, s.on, dlogits,
                 B, K);
  VIT_CUDA_LAUNCH_CHECK();
}

}  // namespace

void cross_entropy_forward(const float* logits, const int32_t* labels, const float* target,
                           double label_smoothing, float* probs, float* loss, int64_t B,
                           int64_t K) {
  forward_impl(logits, labels, target, label_smoothing, probs, loss, B, K);
}
void cross_entropy_forward(const bf16* logits, const int32_t* labels, const bf16* target,
                           double label_smoothing, bf16* probs, bf16* loss, int64_t B, int64_t K) {
  forward_impl(logits, labels, target, label_smoothing, probs, loss, B, K);
}

void cross_entropy_backward(const float* dloss, const float* probs, const int32_t* labels,
                            const float* target, double label_smoothing, float* dlogits, int64_t B,
                            int64_t K) {
  backward_impl(dloss, probs, labels, target, label_smoothing, dlogits, B, K);
}
void cross_entropy_backward(const bf16* dloss, const bf16* probs, const int32_t* labels,
                            const bf16* target, double label_smoothing, bf16* dlogits, int64_t B,
                            int64_t K) {
  backward_impl(dloss, probs, labels, target, label_smoothing, dlogits, B, K);
}

}  // namespace vit::cuda
