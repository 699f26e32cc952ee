// dropout (nn.Dropout) and drop_path (timm's stochastic depth, one keep/drop
// decision per sample). Both are the identity outside training or at p = 0, and
// scale kept values by 1/(1-p). The mask is a pure function of the generator's
// (seed, counter) and the element, the same on every device and thread count:
// a GPU run draws the CPU's masks, run to run and across a resume.
// A bf16 tensor's mask is float (compute_t<T>, saved state stays float), so
// the kept value x·(1/(1-p)) is rounded once.
#pragma once

#include "vit/core/rng.hpp"
#include "vit/cuda/dropout.hpp"
#include "vit/ops/common.hpp"

namespace vit {
namespace ops {

/// While a CUDA graph of a training step is captured: a device uint64 added
/// to every mask counter, which the graph's owner rewrites before each replay
/// so that every replay draws the masks the eager step would have drawn;
/// null otherwise (set by nn::CapturedStep).
inline const uint64_t*& dropout_counter_shift() {
  thread_local const uint64_t* shift = nullptr;
  return shift;
}

// mask[i] = keep_scale if gen.uniform(counter0 + i) >= p else 0, for i < groups; on `dev`.
template <class T>
void dropout_mask(Device dev, T* mask, int64_t groups, const Generator& gen, uint64_t counter0,
                  double p, T keep_scale) {
  if (dev == Device::CUDA) {
    if constexpr (detail::kCudaKernels<T>)
      cuda::dropout_mask(mask, groups, gen.seed(), counter0, p, static_cast<float>(keep_scale),
                         dropout_counter_shift());
    else detail::cuda_branch_missing("dropout");
    return;
  }
#pragma omp parallel for schedule(static) if (groups > 32768)
  for (int64_t i = 0; i < groups; ++i) mask[i] = gen.uniform(counter0 + i) >= p ? keep_scale : T(0);
}

// out[i] = x[i] · mask[i / inner] (forward and backward alike); on `dev`. The
// mask is in the compute type (float for bf16 x).
template <class T>
void apply_group_mask(Device dev, const T* x, const compute_t<T>* mask, T* out, int64_t n,
                      int64_t inner) {
  if (dev == Device::CUDA) {
    if constexpr (detail::kCudaKernels<T>) cuda::apply_group_mask(x, mask, out, n, inner);
    else detail::cuda_branch_missing("dropout");
    return;
  }
  using C = compute_t<T>;
#pragma omp parallel for schedule(static) if (n > 32768)
  for (int64_t i = 0; i < n; ++i) out[i] = static_cast<T>(static_cast<C>(x[i]) * mask[i / inner]);
}

}  // namespace ops

namespace detail {
template <class T>
struct MaskNode : Node<T> {
  Tensor<compute_t<T>> mask;  // 0 or 1/(1-p), broadcast over trailing dims by `inner`
  int64_t inner = 1;
  const char* name() const override { return inner == 1 ? "dropout" : "drop_path"; }
  void backward(const Tensor<T>& dout) override {
    Tensor<T> dx = Tensor<T>::empty(dout.shape(), dout.device());
    ops::apply_group_mask(dout.device(), dout.data(), mask.data(), dx.data(), dout.numel(), inner);
    this->accumulate(0, dx);
  }
};

// One mask value per `inner` consecutive elements of x.
template <class T>
Tensor<T> apply_mask(const Tensor<T>& x, double p, int64_t inner, Generator& gen) {
  const Device dev = x.device();
  const int64_t groups = x.numel() / std::max<int64_t>(inner, 1);
  using C = compute_t<T>;
  Tensor<C> mask = Tensor<C>::empty({groups}, dev);
  const uint64_t c0 = gen.reserve(static_cast<uint64_t>(groups));
  ops::dropout_mask(dev, mask.data(), groups, gen, c0, p, static_cast<C>(1.0 / (1.0 - p)));
  Tensor<T> out = Tensor<T>::empty(x.shape(), dev);
  ops::apply_group_mask(dev, x.data(), mask.data(), out.data(), x.numel(), inner);
  if (autograd::needs_grad(x)) {
    auto node = std::make_shared<MaskNode<T>>();
    node->mask = mask;
    node->inner = inner;
    autograd::attach(out, node, {&x});
  }
  return out;
}
}  // namespace detail

/// nn.Dropout(p): in training zeroes each element with probability p, scales the rest by 1/(1-p).
template <class T>
Tensor<T> dropout(const Tensor<T>& x, double p, bool training, Generator& gen) {
  VIT_CHECK(p >= 0.0 && p < 1.0, "dropout: p must be in [0, 1), got ", p);
  if (!training || p == 0.0) return x;
  return detail::apply_mask(x, p, 1, gen);
}

/// timm DropPath(p): in training drops each sample's whole residual branch with probability p.
template <class T>
Tensor<T> drop_path(const Tensor<T>& x, double p, bool training, Generator& gen) {
  VIT_CHECK(p >= 0.0 && p < 1.0, "drop_path: p must be in [0, 1), got ", p);
  if (!training || p == 0.0) return x;
  VIT_CHECK(x.dim() >= 1 && x.shape()[0] > 0, "drop_path: need a batch dim, got ", x.shape());
  return detail::apply_mask(x, p, x.numel() / x.shape()[0], gen);
}

}  // namespace vit
