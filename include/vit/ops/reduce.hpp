// Reductions: sum and mean, over everything (a scalar) or over one dim.
// Accumulation is in T (float for bf16; a sum over everything in double), in
// index order, so results are deterministic. The mean's factor is kept in the
// compute type, so a bf16 mean is rounded once, not through a rounded 1/n.
#pragma once

#include "vit/ops/elementwise.hpp"  // reduce_sum, the strided layouts

namespace vit {
namespace ops {

// out = factor · Σ x over dim (dim < 0: over everything, out one element), on `dev`.
template <class T>
void reduce_forward(Device dev, const T* x, const Shape& s, int dim, T* out, compute_t<T> factor) {
  if (dev == Device::CUDA) {
    std::vector<bool> keep(s.size(), dim >= 0);
    if (dim >= 0) keep[dim] = false;
    reduce_sum(dev, x, s, keep, out, factor);
    return;
  }
  using C = compute_t<T>;
  const int64_t n = numel(s);
  if (dim < 0) {
    double acc = 0;  // double: a long sum in float loses digits
    for (int64_t i = 0; i < n; ++i) acc += static_cast<double>(static_cast<C>(x[i]));
    out[0] = static_cast<T>(static_cast<C>(acc) * factor);
    return;
  }
  const int64_t outer = numel(s, 0, dim), inner = numel(s, dim + 1, s.size());
  std::vector<C> acc(static_cast<size_t>(outer * inner), C(0));
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t k = 0; k < s[dim]; ++k)
      for (int64_t i = 0; i < inner; ++i)
        acc[o * inner + i] += static_cast<C>(x[(o * s[dim] + k) * inner + i]);
  for (int64_t i = 0; i < outer * inner; ++i) out[i] = static_cast<T>(acc[i] * factor);
}

// dx (shape s) = factor · dout repeated over dim (dim < 0: over everything), written.
template <class T>
void reduce_backward(Device dev, const T* dout, const Shape& s, int dim, T* dx, compute_t<T> factor) {
  if (dev == Device::CUDA) {
    if constexpr (detail::kCudaKernels<T>) {
      VIT_CHECK(s.size() <= static_cast<size_t>(cuda::kMaxDims), "reduce on cuda: ", s.size(), " dims");
      if (numel(s) == 0) return;
      cuda::StridedLayout l;
      l.ndim = static_cast<int>(s.size());
      const auto st = contiguous_strides(s);
      for (size_t d = 0; d < s.size(); ++d) {
        l.size[d] = s[d];
        // dout has s's layout without `dim`: its stride for d < dim is st[d] / s[dim].
        l.stride_a[d] = dim < 0 || static_cast<int>(d) == dim ? 0
                        : static_cast<int>(d) < dim           ? st[d] / std::max<int64_t>(s[dim], 1)
                                                              : st[d];
      }
      cuda::broadcast_copy(dout, dx, l, static_cast<float>(factor));
    } else {
      detail::cuda_branch_missing("reduce");
    }
    return;
  }
  using C = compute_t<T>;
  if (dim < 0) {
    std::fill_n(dx, numel(s), static_cast<T>(static_cast<C>(dout[0]) * factor));
    return;
  }
  const int64_t outer = numel(s, 0, dim), inner = numel(s, dim + 1, s.size());
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t k = 0; k < s[dim]; ++k)
      for (int64_t i = 0; i < inner; ++i)
        dx[(o * s[dim] + k) * inner + i] = static_cast<T>(static_cast<C>(dout[o * inner + i]) * factor);
}

}  // namespace ops

namespace detail {
template <class T>
struct ReduceNode : Node<T> {
  int dim = -1;     // -1: over everything
  compute_t<T> factor = 1;  // 1 for sum, 1/count for mean
  const char* name() const override { return factor == compute_t<T>(1) ? "sum" : "mean"; }
  void backward(const Tensor<T>& dout) override {
    Tensor<T> g = Tensor<T>::empty(this->input_shape(0), dout.device());
    ops::reduce_backward(dout.device(), dout.data(), this->input_shape(0), dim, g.data(), factor);
    this->accumulate(0, g);
  }
};

template <class T>
Tensor<T> reduce(const Tensor<T>& x, int dim, bool keepdim, bool mean, const char* name) {
  const Shape& s = x.shape();
  using C = compute_t<T>;
  Shape os;
  C factor = 1;
  if (dim < 0) {
    if (mean) factor = C(1) / static_cast<C>(std::max<int64_t>(x.numel(), 1));
  } else {
    VIT_CHECK(dim < static_cast<int>(s.size()), name, ": dim ", dim, " of ", s);
    os = s;
    if (keepdim) os[dim] = 1;
    else os.erase(os.begin() + dim);
    if (mean) factor = C(1) / static_cast<C>(std::max<int64_t>(s[dim], 1));
  }
  Tensor<T> out = Tensor<T>::empty(os, x.device());
  ops::reduce_forward(x.device(), x.data(), s, dim, out.data(), factor);
  if (autograd::needs_grad(x)) {
    auto node = std::make_shared<ReduceNode<T>>();
    node->dim = dim;
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
