// Elementwise ops with numpy/PyTorch broadcasting: add, sub, mul, scale, tanh.
// The ViT only broadcasts in three ways (bias over rows, pos_embed over the
// batch, a per-sample mask over tokens and channels); those have flat fast
// paths, every other broadcast goes through one general strided loop.
// Backward reduces the gradient back to each input's shape (sum over the
// broadcast dims), as autograd in PyTorch does.
#pragma once

#include <algorithm>
#include <cmath>

#include "vit/ops/common.hpp"

namespace vit {
namespace ops {

/// How an input of shape `in` is laid over an output of shape `out`.
struct BroadcastPlan {
  enum Kind { Same, Trailing, Leading, General } kind = General;
  int64_t inner = 1;                 // Trailing: in repeats every `inner`; Leading: in[i / inner]
  std::vector<int64_t> in_strides;   // General: stride of `in` per output dim (0 = broadcast)
};

inline BroadcastPlan plan_broadcast(const Shape& in, const Shape& out) {
  BroadcastPlan p;
  if (in == out) {
    p.kind = BroadcastPlan::Same;
    return p;
  }
  const size_t lead = out.size() - in.size();
  Shape padded(lead, 1);
  padded.insert(padded.end(), in.begin(), in.end());
  // Trailing: padded = 1..1, out[k..] ; Leading: padded = out[..k], 1..1
  size_t k = 0;
  while (k < padded.size() && padded[k] == 1) ++k;
  if (std::equal(padded.begin() + k, padded.end(), out.begin() + k)) {
    p.kind = BroadcastPlan::Trailing;
    p.inner = numel(out, k, out.size());
    return p;
  }
  size_t j = padded.size();
  while (j > 0 && padded[j - 1] == 1) --j;
  if (std::equal(padded.begin(), padded.begin() + j, out.begin())) {
    p.kind = BroadcastPlan::Leading;
    p.inner = numel(out, j, out.size());
    return p;
  }
  const auto st = contiguous_strides(padded);
  p.in_strides.resize(out.size());
  for (size_t d = 0; d < out.size(); ++d) p.in_strides[d] = padded[d] == 1 ? 0 : st[d];
  return p;
}

/// Offset into the input for every output element i, in order.
template <class F>
void for_each_broadcast(const BroadcastPlan& p, const Shape& out, F&& f) {
  const int64_t n = numel(out);
  switch (p.kind) {
    case BroadcastPlan::Same:
      for (int64_t i = 0; i < n; ++i) f(i, i);
      return;
    case BroadcastPlan::Trailing:
      for (int64_t i = 0; i < n; ++i) f(i, i % p.inner);
      return;
    case BroadcastPlan::Leading:
      for (int64_t i = 0; i < n; ++i) f(i, i / p.inner);
      return;
    case BroadcastPlan::General: {
      std::vector<int64_t> idx(out.size(), 0);
      int64_t off = 0;
      for (int64_t i = 0; i < n; ++i) {
        f(i, off);
        for (int d = static_cast<int>(out.size()) - 1; d >= 0; --d) {
          off += p.in_strides[d];
          if (++idx[d] < out[d]) break;
          off -= p.in_strides[d] * out[d];
          idx[d] = 0;
        }
      }
      return;
    }
  }
}

/// Sums g (shape `out`) into the shape `in` it was broadcast from.
template <class T>
Tensor<T> reduce_to_shape(const Tensor<T>& g, const Shape& in) {
  if (g.shape() == in) return g;
  const BroadcastPlan p = plan_broadcast(in, g.shape());
  Tensor<T> r = Tensor<T>::zeros(in);
  const T* src = g.data();
  T* dst = r.data();
  const int64_t n = g.numel();
  if (p.kind == BroadcastPlan::Trailing) {  // sum over leading rows: column sums
    detail::add_column_sums(src, n / std::max<int64_t>(p.inner, 1), p.inner, dst);
  } else if (p.kind == BroadcastPlan::Leading) {
    const int64_t outer = n / std::max<int64_t>(p.inner, 1);
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t o = 0; o < outer; ++o) {
      T acc = 0;
      for (int64_t j = 0; j < p.inner; ++j) acc += src[o * p.inner + j];
      dst[o] = acc;
    }
  } else {
    for_each_broadcast(p, g.shape(), [&](int64_t i, int64_t k) { dst[k] += src[i]; });
  }
  return r;
}

enum class BinaryOp { Add, Sub, Mul };

template <class T>
T apply(BinaryOp op, T a, T b) {
  return op == BinaryOp::Add ? a + b : op == BinaryOp::Sub ? a - b : a * b;
}

}  // namespace ops

namespace detail {
template <class T>
struct BinaryNode : Node<T> {
  ops::BinaryOp op;
  Tensor<T> a, b;  // saved only for Mul
  Shape a_shape, b_shape;
  const char* name() const override {
    return op == ops::BinaryOp::Add ? "add" : op == ops::BinaryOp::Sub ? "sub" : "mul";
  }
  void backward(const Tensor<T>& dout) override {
    if (op == ops::BinaryOp::Mul) {
      // d(a*b)/da = b broadcast to the output, then reduced to a's shape.
      if (this->needs_grad(0)) this->accumulate(0, ops::reduce_to_shape(product(dout, b), a_shape));
      if (this->needs_grad(1)) this->accumulate(1, ops::reduce_to_shape(product(dout, a), b_shape));
      return;
    }
    if (this->needs_grad(0)) this->accumulate(0, ops::reduce_to_shape(dout, a_shape));
    if (this->needs_grad(1)) {
      Tensor<T> g = ops::reduce_to_shape(dout, b_shape);
      if (op == ops::BinaryOp::Sub) {
        Tensor<T> neg = Tensor<T>::empty(g.shape());
        for (int64_t i = 0; i < g.numel(); ++i) neg.data()[i] = -g.data()[i];
        g = neg;
      }
      this->accumulate(1, g);
    }
  }
  static Tensor<T> product(const Tensor<T>& dout, const Tensor<T>& other) {
    Tensor<T> r = Tensor<T>::empty(dout.shape());
    const ops::BroadcastPlan p = ops::plan_broadcast(other.shape(), dout.shape());
    const T *g = dout.data(), *o = other.data();
    T* d = r.data();
    ops::for_each_broadcast(p, dout.shape(), [&](int64_t i, int64_t k) { d[i] = g[i] * o[k]; });
    return r;
  }
};
}  // namespace detail

namespace ops::detail {
template <class T>
Tensor<T> binary(BinaryOp op, const Tensor<T>& a, const Tensor<T>& b, const char* name) {
  const Device dev = same_device(name, a, b);
  const Shape out_shape = broadcast_shapes(a.shape(), b.shape(), name);
  if (dev == Device::CUDA) {
    VIT_CHECK(op == BinaryOp::Add, name, ": on cuda only add has a kernel; copy with .to(Device::CPU)");
    if constexpr (kCudaFloat<T>) return cuda_twins::add(a, b);
    else cuda_branch_missing(name);
  }
  Tensor<T> out = Tensor<T>::empty(out_shape);
  const int64_t n = out.numel();
  const T *pa = a.data(), *pb = b.data();
  T* po = out.data();
  const BroadcastPlan plan_a = plan_broadcast(a.shape(), out_shape);
  const BroadcastPlan plan_b = plan_broadcast(b.shape(), out_shape);
  if (plan_a.kind == BroadcastPlan::Same && plan_b.kind == BroadcastPlan::Same) {
#pragma omp parallel for schedule(static) if (n > 32768)
    for (int64_t i = 0; i < n; ++i) po[i] = apply(op, pa[i], pb[i]);
  } else if (plan_a.kind == BroadcastPlan::Same && plan_b.kind == BroadcastPlan::Trailing) {
    const int64_t inner = plan_b.inner, rows = n / std::max<int64_t>(inner, 1);
#pragma omp parallel for schedule(static) if (n > 32768)
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < inner; ++j) po[r * inner + j] = apply(op, pa[r * inner + j], pb[j]);
  } else {
    std::vector<int64_t> ia(n);
    for_each_broadcast(plan_a, out_shape, [&](int64_t i, int64_t k) { ia[i] = k; });
    for_each_broadcast(plan_b, out_shape, [&](int64_t i, int64_t k) { po[i] = apply(op, pa[ia[i]], pb[k]); });
  }
  if (autograd::needs_grad(a, b)) {
    auto node = std::make_shared<vit::detail::BinaryNode<T>>();
    node->op = op;
    node->a_shape = a.shape();
    node->b_shape = b.shape();
    if (op == BinaryOp::Mul) {
      node->a = a.detach();
      node->b = b.detach();
    }
    autograd::attach(out, node, {&a, &b});
  }
  return out;
}
}  // namespace ops::detail

/// a + b with broadcasting.
template <class T>
Tensor<T> add(const Tensor<T>& a, const Tensor<T>& b) {
  return ops::detail::binary(ops::BinaryOp::Add, a, b, "add");
}
/// a - b with broadcasting.
template <class T>
Tensor<T> sub(const Tensor<T>& a, const Tensor<T>& b) {
  return ops::detail::binary(ops::BinaryOp::Sub, a, b, "sub");
}
/// a * b (elementwise) with broadcasting.
template <class T>
Tensor<T> mul(const Tensor<T>& a, const Tensor<T>& b) {
  return ops::detail::binary(ops::BinaryOp::Mul, a, b, "mul");
}
template <class T>
Tensor<T> operator+(const Tensor<T>& a, const Tensor<T>& b) { return add(a, b); }
template <class T>
Tensor<T> operator-(const Tensor<T>& a, const Tensor<T>& b) { return sub(a, b); }
template <class T>
Tensor<T> operator*(const Tensor<T>& a, const Tensor<T>& b) { return mul(a, b); }

namespace detail {
template <class T>
struct ScaleNode : Node<T> {
  T s;
  const char* name() const override { return "scale"; }
  void backward(const Tensor<T>& dout) override {
    Tensor<T> g = Tensor<T>::empty(dout.shape());
    for (int64_t i = 0; i < g.numel(); ++i) g.data()[i] = dout.data()[i] * s;
    this->accumulate(0, g);
  }
};
template <class T>
struct TanhNode : Node<T> {
  Tensor<T> out;
  const char* name() const override { return "tanh"; }
  void backward(const Tensor<T>& dout) override {
    Tensor<T> g = Tensor<T>::empty(dout.shape());
    for (int64_t i = 0; i < g.numel(); ++i) {
      const T y = out.data()[i];
      g.data()[i] = dout.data()[i] * (T(1) - y * y);
    }
    this->accumulate(0, g);
  }
};
}  // namespace detail

/// x * s for a scalar s.
template <class T>
Tensor<T> scale(const Tensor<T>& x, double s) {
  ops::detail::check_cpu("scale", x);
  Tensor<T> out = Tensor<T>::empty(x.shape());
  const T st = static_cast<T>(s);
  for (int64_t i = 0; i < x.numel(); ++i) out.data()[i] = x.data()[i] * st;
  if (autograd::needs_grad(x)) {
    auto node = std::make_shared<detail::ScaleNode<T>>();
    node->s = st;
    autograd::attach(out, node, {&x});
  }
  return out;
}

/// Elementwise tanh (the pre-logits activation).
template <class T>
Tensor<T> tanh(const Tensor<T>& x) {
  ops::detail::check_cpu("tanh", x);
  Tensor<T> out = Tensor<T>::empty(x.shape());
  for (int64_t i = 0; i < x.numel(); ++i) out.data()[i] = std::tanh(x.data()[i]);
  if (autograd::needs_grad(x)) {
    auto node = std::make_shared<detail::TanhNode<T>>();
    node->out = out.detach();
    autograd::attach(out, node, {&x});
  }
  return out;
}

}  // namespace vit
