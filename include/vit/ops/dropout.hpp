// dropout (nn.Dropout) and drop_path (timm's stochastic depth, one keep/drop
// decision per sample). Both are the identity outside training or at p = 0, and
// scale kept values by 1/(1-p). Masks come from a vit::Generator, counter-based,
// so they are the same for any thread count.
#pragma once

#include "vit/ops/common.hpp"

namespace vit {
namespace detail {
template <class T>
struct MaskNode : Node<T> {
  Tensor<T> mask;  // 0 or 1/(1-p), broadcast over trailing dims by `inner`
  int64_t inner = 1;
  const char* name() const override { return inner == 1 ? "dropout" : "drop_path"; }
  void backward(const Tensor<T>& dout) override {
    Tensor<T> dx = Tensor<T>::empty(dout.shape());
    const T *g = dout.data(), *m = mask.data();
    T* d = dx.data();
    const int64_t n = dout.numel(), in = inner;
#pragma omp parallel for schedule(static) if (n > 32768)
    for (int64_t i = 0; i < n; ++i) d[i] = g[i] * m[i / in];
    this->accumulate(0, dx);
  }
};

// One mask value per `inner` consecutive elements of x.
template <class T>
Tensor<T> apply_mask(const Tensor<T>& x, double p, int64_t inner, Generator& gen) {
  const int64_t groups = x.numel() / std::max<int64_t>(inner, 1);
  Tensor<T> mask = Tensor<T>::empty({groups});
  const uint64_t c0 = gen.reserve(static_cast<uint64_t>(groups));
  const T keep_scale = static_cast<T>(1.0 / (1.0 - p));
  T* m = mask.data();
#pragma omp parallel for schedule(static) if (groups > 32768)
  for (int64_t i = 0; i < groups; ++i) m[i] = gen.uniform(c0 + i) >= p ? keep_scale : T(0);
  Tensor<T> out = Tensor<T>::empty(x.shape());
  const T* xs = x.data();
  T* o = out.data();
  const int64_t n = x.numel();
#pragma omp parallel for schedule(static) if (n > 32768)
  for (int64_t i = 0; i < n; ++i) o[i] = xs[i] * m[i / inner];
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
  ops::detail::check_cpu("dropout", x);
  return detail::apply_mask(x, p, 1, gen);
}

/// timm DropPath(p): in training drops each sample's whole residual branch with probability p.
template <class T>
Tensor<T> drop_path(const Tensor<T>& x, double p, bool training, Generator& gen) {
  VIT_CHECK(p >= 0.0 && p < 1.0, "drop_path: p must be in [0, 1), got ", p);
  if (!training || p == 0.0) return x;
  ops::detail::check_cpu("drop_path", x);
  VIT_CHECK(x.dim() >= 1 && x.shape()[0] > 0, "drop_path: need a batch dim, got ", x.shape());
  return detail::apply_mask(x, p, x.numel() / x.shape()[0], gen);
}

}  // namespace vit
