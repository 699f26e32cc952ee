// Reductions: sum and mean, over everything (a scalar) or over one dim.
// Accumulation is in T, in index order, so results are deterministic.
#pragma once

#include "vit/ops/common.hpp"

namespace vit {
namespace detail {
template <class T>
struct ReduceNode : Node<T> {
  int dim = -1;     // -1: over everything
  bool keepdim = false;
  T factor = 1;     // 1 for sum, 1/count for mean
  const char* name() const override { return factor == T(1) ? "sum" : "mean"; }
  void backward(const Tensor<T>& dout) override {
    const Shape& s = this->input_shape(0);
    Tensor<T> g = Tensor<T>::empty(s);
    if (dim < 0) {
      g.fill_(dout.data()[0] * factor);
    } else {
      const int64_t outer = numel(s, 0, dim);
      const int64_t inner = numel(s, dim + 1, s.size());
      for (int64_t o = 0; o < outer; ++o)
        for (int64_t k = 0; k < s[dim]; ++k)
          for (int64_t i = 0; i < inner; ++i)
            g.data()[(o * s[dim] + k) * inner + i] = dout.data()[o * inner + i] * factor;
    }
    this->accumulate(0, g);
  }
};

template <class T>
Tensor<T> reduce(const Tensor<T>& x, int dim, bool keepdim, bool mean, const char* name) {
  ops::detail::check_cpu(name, x);
  const Shape& s = x.shape();
  Tensor<T> out;
  T factor = 1;
  if (dim < 0) {
    out = Tensor<T>::empty({});
    double acc = 0;  // double: a long sum in float loses digits
    for (int64_t i = 0; i < x.numel(); ++i) acc += x.data()[i];
    if (mean) factor = T(1) / static_cast<T>(std::max<int64_t>(x.numel(), 1));
    out.data()[0] = static_cast<T>(acc) * factor;
  } else {
    Shape os = s;
    if (keepdim) os[dim] = 1;
    else os.erase(os.begin() + dim);
    out = Tensor<T>::zeros(os);
    if (mean) factor = T(1) / static_cast<T>(std::max<int64_t>(s[dim], 1));
    const int64_t outer = numel(s, 0, dim);
    const int64_t inner = numel(s, dim + 1, s.size());
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t k = 0; k < s[dim]; ++k)
        for (int64_t i = 0; i < inner; ++i)
          out.data()[o * inner + i] += x.data()[(o * s[dim] + k) * inner + i];
    for (int64_t i = 0; i < out.numel(); ++i) out.data()[i] *= factor;
  }
  if (autograd::needs_grad(x)) {
    auto node = std::make_shared<ReduceNode<T>>();
    node->dim = dim;
    node->keepdim = keepdim;
    node->factor = factor;
    autograd::attach(out, node, {&x});
  }
  return out;
}
}  // namespace detail

/// Sum of all elements (a 0-dim tensor).
template <class T>
Tensor<T> sum(const Tensor<T>& x) { return detail::reduce(x, -1, false, false, "sum"); }
/// Mean of all elements (a 0-dim tensor).
template <class T>
Tensor<T> mean(const Tensor<T>& x) { return detail::reduce(x, -1, false, true, "mean"); }
/// Sum over one dim.
template <class T>
Tensor<T> sum(const Tensor<T>& x, int64_t dim, bool keepdim = false) {
  return detail::reduce(x, normalize_dim(dim, x.shape().size(), "sum"), keepdim, false, "sum");
}
/// Mean over one dim.
template <class T>
Tensor<T> mean(const Tensor<T>& x, int64_t dim, bool keepdim = false) {
  return detail::reduce(x, normalize_dim(dim, x.shape().size(), "mean"), keepdim, true, "mean");
}

}  // namespace vit
