// cross_entropy: softmax + negative log-likelihood + label smoothing in one op,
// as F.cross_entropy(logits, target, label_smoothing=ε) with mean reduction:
//   q = (1-ε)·onehot(y) + ε/K,  loss_b = logsumexp(z_b) − Σ_k q_k z_bk,
//   dlogits = (softmax(z) − q) / B.
// Soft targets (rows of q given directly, e.g. mixup) use the same kernel.
#pragma once

#include <cmath>
#include <vector>

#include "vit/ops/common.hpp"

namespace vit {
namespace ops {

// logits: (B,K), target: (B,K) distribution per row -> loss (mean), probs: (B,K)
template <class T>
T cross_entropy_forward(const T* logits, const T* target, T* probs, int64_t B, int64_t K) {
  double total = 0;
  for (int64_t b = 0; b < B; ++b) {
    const T* z = logits + b * K;
    T* p = probs + b * K;
    T m = z[0];
    for (int64_t k = 1; k < K; ++k) m = std::max(m, z[k]);
    double s = 0;
    for (int64_t k = 0; k < K; ++k) s += std::exp(static_cast<double>(z[k] - m));
    const double lse = m + std::log(s);
    double qz = 0;
    for (int64_t k = 0; k < K; ++k) {
      p[k] = static_cast<T>(std::exp(z[k] - lse));
      qz += static_cast<double>(target[b * K + k]) * z[k];
    }
    total += lse - qz;
  }
  return static_cast<T>(total / static_cast<double>(B));
}

// dloss (scalar) -> dlogits written
template <class T>
void cross_entropy_backward(T dloss, const T* probs, const T* target, T* dlogits, int64_t B, int64_t K) {
  const T s = dloss / static_cast<T>(B);
  for (int64_t i = 0; i < B * K; ++i) dlogits[i] = (probs[i] - target[i]) * s;
}

}  // namespace ops

namespace detail {
template <class T>
struct CrossEntropyNode : Node<T> {
  Tensor<T> probs, target;
  const char* name() const override { return "cross_entropy"; }
  void backward(const Tensor<T>& dout) override {
    Tensor<T> d = Tensor<T>::empty(probs.shape());
    ops::cross_entropy_backward(dout.data()[0], probs.data(), target.data(), d.data(),
                                probs.shape()[0], probs.shape()[1]);
    this->accumulate(0, d);
  }
};

template <class T>
Tensor<T> cross_entropy_with(const Tensor<T>& logits, const Tensor<T>& target) {
  const int64_t B = logits.shape()[0], K = logits.shape()[1];
  Tensor<T> probs = Tensor<T>::empty({B, K});
  Tensor<T> loss = Tensor<T>::empty({});
  loss.data()[0] = ops::cross_entropy_forward(logits.data(), target.data(), probs.data(), B, K);
  if (autograd::needs_grad(logits)) {
    auto node = std::make_shared<CrossEntropyNode<T>>();
    node->probs = probs;
    node->target = target;
    autograd::attach(loss, node, {&logits});
  }
  return loss;
}
}  // namespace detail

/// F.cross_entropy(logits (B,K), labels (B), label_smoothing) averaged over the batch.
template <class T>
Tensor<T> cross_entropy(const Tensor<T>& logits, const std::vector<int64_t>& labels,
                        double label_smoothing = 0.0) {
  VIT_CHECK(logits.dim() == 2 && logits.shape()[0] > 0 && logits.shape()[1] > 0,
            "cross_entropy: logits ", logits.shape(), " (need B,K)");
  const int64_t B = logits.shape()[0], K = logits.shape()[1];
  VIT_CHECK(static_cast<int64_t>(labels.size()) == B, "cross_entropy: ", labels.size(),
            " labels for logits ", logits.shape());
  VIT_CHECK(label_smoothing >= 0.0 && label_smoothing <= 1.0,
            "cross_entropy: label_smoothing must be in [0, 1], got ", label_smoothing);
  Tensor<T> target = Tensor<T>::full({B, K}, static_cast<T>(label_smoothing / K));
  for (int64_t b = 0; b < B; ++b) {
    VIT_CHECK(labels[b] >= 0 && labels[b] < K, "cross_entropy: label ", labels[b], " at row ", b,
              " is out of range for ", K, " classes");
    target.data()[b * K + labels[b]] += static_cast<T>(1.0 - label_smoothing);
  }
  if (logits.device() == Device::CUDA) return cross_entropy(logits, target.to(Device::CUDA));
  return detail::cross_entropy_with(logits, target);
}

/// Cross-entropy against soft targets (B,K), each row a distribution (mixup/cutmix).
template <class T>
Tensor<T> cross_entropy(const Tensor<T>& logits, const Tensor<T>& target_probs) {
  const Device dev = ops::detail::same_device("cross_entropy", logits, target_probs);
  VIT_CHECK(logits.dim() == 2 && target_probs.shape() == logits.shape(), "cross_entropy: logits ",
            logits.shape(), " vs soft targets ", target_probs.shape());
  if (dev == Device::CUDA) {
    if constexpr (ops::detail::kCudaFloat<T>) return cuda_twins::cross_entropy(logits, target_probs);
    else ops::detail::cuda_branch_missing("cross_entropy");
  }
  return detail::cross_entropy_with(logits, target_probs.detach());
}

}  // namespace vit
