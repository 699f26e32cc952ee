// Softmax cross-entropy with label smoothing on the GPU (cuda/cross_entropy.cu),
// the twin of vit/ops/cross_entropy.hpp (F.cross_entropy, mean reduction).
// Declarations only: no CUDA header. float and bf16 overloads; bf16 is storage
// only: float math inside, per-row losses and their mean in float, each output
// (probs, the loss, dlogits) rounded once.
#pragma once

#include <cstdint>

#include "vit/core/bf16.hpp"

namespace vit::cuda {

/// logits (B,K). Targets are either integer labels (B) with label smoothing ε
/// (q = (1−ε)·onehot + ε/K, built inside the kernel from ε/K and 1−ε rounded to
/// float exactly as the CPU op rounds its dense target, hence ε in double), or,
/// when labels is null, a target distribution `target` (B,K) (mixup; smoothing
/// ignored).
/// probs (B,K) written; loss: ONE float on the device, the batch mean, summed
/// in a fixed order (bitwise repeatable). Label range is the caller's check:
/// the device cannot throw, so a label outside [0, K) makes the loss NaN.
/// Device pointers, queued on vit::cuda::stream().
void cross_entropy_forward(const float* logits, const int32_t* labels, const float* target,
                           double label_smoothing, float* probs, float* loss, int64_t B, int64_t K);
void cross_entropy_forward(const bf16* logits, const int32_t* labels, const bf16* target,
                           double label_smoothing, bf16* probs, bf16* loss, int64_t B, int64_t K);

/// dloss: device pointer to ONE float (the upstream gradient of the loss).
/// dlogits (B,K) = (probs − q) · dloss / B, written. dlogits may be probs.
void cross_entropy_backward(const float* dloss, const float* probs, const int32_t* labels,
                            const float* target, double label_smoothing, float* dlogits, int64_t B,
                            int64_t K);
void cross_entropy_backward(const bf16* dloss, const bf16* probs, const int32_t* labels,
                            const bf16* target, double label_smoothing, bf16* dlogits, int64_t B,
                            int64_t K);

}  // namespace vit::cuda
