// cross_entropy: softmax + negative log-likelihood + label smoothing in one op,
// as F.cross_entropy(logits, target, label_smoothing=ε) with mean reduction:
//   q = (1-ε)·onehot(y) + ε/K,  loss_b = logsumexp(z_b) − Σ_k q_k z_bk,
//   dlogits = (softmax(z) − q) / B.
// Soft targets (rows of q given directly, e.g. mixup) use the same kernel.
// bf16 logits: bf16 storage (logits, probs, the loss, dlogits), float math: the
// float loops on widened copies with q built in float from the labels (ε/K and
// 1−ε rounded to float, as the float op and the kernels round them), each
// output rounded once. The loss is a Tensor<bf16> computed in float.
#pragma once

#include <cmath>
#include <vector>

#include "vit/cuda/cross_entropy.hpp"
#include "vit/ops/common.hpp"
#include "vit/ops/detail/bf16_buffers.hpp"

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

namespace detail {
/// q (B,K) in float for the bf16 path: the given target rows widened, or, from
/// integer labels, ε/K rounded to float plus 1−ε rounded to float at the label
/// (the float op's dense target, and the kernels' smoothing values).
inline TensorF float_targets(const int32_t* labels, const bf16* target, double label_smoothing,
                             int64_t B, int64_t K) {
  if (!labels) {
    VIT_CHECK(target, "cross_entropy (cpu): needs labels or a target distribution");
    return widen(target, B * K);
  }
  TensorF q = TensorF::full({B * K}, static_cast<float>(label_smoothing / static_cast<double>(K)));
  for (int64_t b = 0; b < B; ++b) {
    VIT_CHECK(labels[b] >= 0 && labels[b] < K, "cross_entropy: label ", labels[b], " at row ", b,
              " is out of range for ", K, " classes");
    q.data()[b * K + labels[b]] += static_cast<float>(1.0 - label_smoothing);
  }
  return q;
}
}  // namespace detail

// bf16 storage, float math. Targets: integer labels (B) with label smoothing, or
// a target distribution (B,K) when labels is null. loss: one bf16, written.
inline void cross_entropy_forward(const bf16* logits, const int32_t* labels, const bf16* target,
                                  double label_smoothing, bf16* probs, bf16* loss, int64_t B,
                                  int64_t K) {
  const TensorF zf = detail::widen(logits, B * K),
                qf = detail::float_targets(labels, target, label_smoothing, B, K);
  TensorF pf = TensorF::empty({B * K});
  loss[0] = bf16(cross_entropy_forward(zf.data(), qf.data(), pf.data(), B, K));
  detail::narrow(pf.data(), probs, B * K);
}

// dloss: one bf16 -> dlogits (B,K) written; bf16 storage, float math.
inline void cross_entropy_backward(const bf16* dloss, const bf16* probs, const int32_t* labels,
                                   const bf16* target, double label_smoothing, bf16* dlogits,
                                   int64_t B, int64_t K) {
  const TensorF pf = detail::widen(probs, B * K),
                qf = detail::float_targets(labels, target, label_smoothing, B, K);
  TensorF df = TensorF::empty({B * K});
  cross_entropy_backward(static_cast<float>(dloss[0]), pf.data(), qf.data(), df.data(), B, K);
  detail::narrow(df.data(), dlogits, B * K);
}

// The same on `dev`. Targets are integer labels (B) with label smoothing
// (on CUDA, where the kernel builds q itself, and for bf16 on the CPU; the
// float CPU wrapper passes the dense q) or a dense target (B,K). loss: one
// element on `dev`, written.
template <class T>
void cross_entropy_forward(Device dev, const T* logits, const int32_t* labels, const T* target,
                           double label_smoothing, T* probs, T* loss, int64_t B, int64_t K) {
  if (dev == Device::CUDA) {
    if constexpr (detail::kCudaKernels<T>)
      cuda::cross_entropy_forward(logits, labels, target, label_smoothing, probs,
                                  loss, B, K);
    else detail::cuda_branch_missing("cross_entropy");
    return;
  }
  if constexpr (is_bf16_v<T>) {
    cross_entropy_forward(logits, labels, target, label_smoothing, probs, loss, B, K);
  } else {
    VIT_CHECK(target, "cross_entropy (cpu): needs the dense target");
    loss[0] = cross_entropy_forward(logits, target, probs, B, K);
  }
}

// dloss: one element on `dev` -> dlogits written.
template <class T>
void cross_entropy_backward(Device dev, const T* dloss, const T* probs, const int32_t* labels,
                            const T* target, double label_smoothing, T* dlogits, int64_t B, int64_t K) {
  if (dev == Device::CUDA) {
    if constexpr (detail::kCudaKernels<T>)
      cuda::cross_entropy_backward(dloss, probs, labels, target, label_smoothing,
                                   dlogits, B, K);
    else detail::cuda_branch_missing("cross_entropy");
    return;
  }
  if constexpr (is_bf16_v<T>)
    cross_entropy_backward(dloss, probs, labels, target, label_smoothing, dlogits, B, K);
  else
    cross_entropy_backward(dloss[0], probs, target, dlogits, B, K);
}

}  // namespace ops

namespace detail {
template <class T>
struct CrossEntropyNode : Node<T> {
  Tensor<T> probs, target;   // target: the dense q, or undefined with labels
  Tensor<int32_t> labels;    // integer labels on the logits' device, or undefined
  double label_smoothing = 0;
  const char* name() const override { return "cross_entropy"; }
  void backward(const Tensor<T>& dout) override {
    Tensor<T> d = Tensor<T>::empty(probs.shape(), probs.device());
    ops::cross_entropy_backward(probs.device(), dout.data(), probs.data(),
                                labels.defined() ? labels.data() : nullptr,
                                target.defined() ? target.data() : nullptr, label_smoothing,
                                d.data(), probs.shape()[0], probs.shape()[1]);
    this->accumulate(0, d);
  }
};

// Either labels (on the logits' device) or a dense target, never both.
template <class T>
Tensor<T> cross_entropy_with(const Tensor<T>& logits, const Tensor<int32_t>& labels,
                             const Tensor<T>& target, double label_smoothing) {
  const Device dev = logits.device();
  const int64_t B = logits.shape()[0], K = logits.shape()[1];
  Tensor<T> probs = Tensor<T>::empty({B, K}, dev);
  Tensor<T> loss = Tensor<T>::empty({}, dev);
  ops::cross_entropy_forward(dev, logits.data(), labels.defined() ? labels.data() : nullptr,
                             target.defined() ? target.data() : nullptr, label_smoothing,
                             probs.data(), loss.data(), B, K);
  if (autograd::needs_grad(logits)) {
    auto node = std::make_shared<CrossEntropyNode<T>>();
    node->probs = probs;
    node->target = target;
    node->labels = labels;
    node->label_smoothing = label_smoothing;
    autograd::attach(loss, node, {&logits});
  }
  return loss;
}

/// Checks logits (B,K) and the label count and range (on the host, where labels are).
template <class T, class Label>
void check_labels(const Tensor<T>& logits, const Label* labels, int64_t n, double label_smoothing) {
  VIT_CHECK(logits.dim() == 2 && logits.shape()[0] > 0 && logits.shape()[1] > 0,
            "cross_entropy: logits ", logits.shape(), " (need B,K)");
  const int64_t B = logits.shape()[0], K = logits.shape()[1];
  VIT_CHECK(n == B, "cross_entropy: ", n, " labels for logits ", logits.shape());
  VIT_CHECK(label_smoothing >= 0.0 && label_smoothing <= 1.0,
            "cross_entropy: label_smoothing must be in [0, 1], got ", label_smoothing);
  for (int64_t b = 0; b < B; ++b)
    VIT_CHECK(labels[b] >= 0 && labels[b] < K, "cross_entropy: label ", labels[b], " at row ", b,
              " is out of range for ", K, " classes");
}

/// q = (1-ε)·onehot(y) + ε/K as a dense (B,K) CPU tensor: the CPU kernel's target.
template <class T, class Label>
Tensor<T> smoothed_targets(const Label* labels, int64_t B, int64_t K, double label_smoothing) {
  Tensor<T> target = Tensor<T>::full({B, K}, static_cast<T>(label_smoothing / K));
  for (int64_t b = 0; b < B; ++b)
    target.data()[b * K + labels[b]] += static_cast<T>(1.0 - label_smoothing);
  return target;
}
}  // namespace detail

/// F.cross_entropy(logits (B,K), labels (B), label_smoothing) averaged over the batch.
/// On CUDA the labels travel as int32 (a queued copy, no wait) and the kernel
/// applies the smoothing.
template <class T>
Tensor<T> cross_entropy(const Tensor<T>& logits, const std::vector<int64_t>& labels,
                        double label_smoothing = 0.0) {
  detail::check_labels(logits, labels.data(), static_cast<int64_t>(labels.size()), label_smoothing);
  const int64_t B = logits.shape()[0], K = logits.shape()[1];
  if constexpr (!is_bf16_v<T>) {
    if (logits.device() == Device::CPU)  // the float CPU loops take the dense q
      return detail::cross_entropy_with(
          logits, Tensor<int32_t>{},
          detail::smoothed_targets<T>(labels.data(), B, K, label_smoothing), label_smoothing);
  }
  // CUDA, and bf16 on the CPU: q is built from the labels in float
  Tensor<int32_t> l32 = Tensor<int32_t>::empty({B});
  for (int64_t b = 0; b < B; ++b) l32.data()[b] = static_cast<int32_t>(labels[b]);
  if (logits.device() == Device::CUDA) l32 = l32.to(Device::CUDA);
  return detail::cross_entropy_with(logits, l32, Tensor<T>{}, label_smoothing);
}

/// The same with the labels in an int32 tensor (B) on the logits' device: the
/// trainer uploads a batch's labels once. Labels on CUDA are not range-checked
/// (the device cannot throw): one out of range makes the loss NaN.
template <class T>
Tensor<T> cross_entropy(const Tensor<T>& logits, const Tensor<int32_t>& labels,
                        double label_smoothing = 0.0) {
  VIT_CHECK(labels.dim() == 1 && labels.device() == logits.device(), "cross_entropy: labels ",
            labels.shape(), " on ", device_name(labels.device()), " for logits ", logits.shape(),
            " on ", device_name(logits.device()));
  if (logits.device() == Device::CUDA) {
    VIT_CHECK(logits.dim() == 2 && labels.shape()[0] == logits.shape()[0] && logits.shape()[1] > 0,
              "cross_entropy: ", labels.shape()[0], " labels for logits ", logits.shape());
    VIT_CHECK(label_smoothing >= 0.0 && label_smoothing <= 1.0,
              "cross_entropy: label_smoothing must be in [0, 1], got ", label_smoothing);
    return detail::cross_entropy_with(logits, labels, Tensor<T>{}, label_smoothing);
  }
  detail::check_labels(logits, labels.data(), labels.numel(), label_smoothing);
  if constexpr (is_bf16_v<T>) {  // q is built in float from the labels
    return detail::cross_entropy_with(logits, labels, Tensor<T>{}, label_smoothing);
  } else {
    return detail::cross_entropy_with(
        logits, Tensor<int32_t>{},
        detail::smoothed_targets<T>(labels.data(), logits.shape()[0], logits.shape()[1],
                                    label_smoothing),
        label_smoothing);
  }
}

/// Cross-entropy against soft targets (B,K), each row a distribution (mixup/cutmix).
template <class T>
Tensor<T> cross_entropy(const Tensor<T>& logits, const Tensor<T>& target_probs) {
  ops::detail::same_device("cross_entropy", logits, target_probs);
  VIT_CHECK(logits.dim() == 2 && target_probs.shape() == logits.shape(), "cross_entropy: logits ",
            logits.shape(), " vs soft targets ", target_probs.shape());
  return detail::cross_entropy_with(logits, Tensor<int32_t>{}, target_probs.detach(), 0.0);
}

}  // namespace vit
