// Elementwise ops with numpy/PyTorch broadcasting: add, sub, mul, scale, tanh.
// The ViT only broadcasts in three ways (bias over rows, pos_embed over the
// batch, a per-sample mask over tokens and channels); those have flat fast
// paths, every other broadcast goes through one general strided loop.
// Backward reduces the gradient back to each input's shape (sum over the
// broadcast dims), as autograd in PyTorch does.
// bf16 tensors: bf16 storage, float math (compute_t<T>), each result rounded
// once; sums accumulate in float and are rounded once; scalars (scale factors)
// stay float.
#pragma once

#include <algorithm>
#include <cmath>

#include "vit/cuda/strided.hpp"
#include "vit/ops/common.hpp"

namespace vit {
namespace ops {

/// How an input of shape `in` is laid over an output of shape `out`.
struct BroadcastPlan {
  enum Kind { Same, Trailing, Leading, General } kind = General;
  int64_t inner = 1;                 // Trailing: in repeats every `inner`; Leading: in[i / inner]
  std::vector<int64_t> in_strides;   // General: stride of `in` per output dim (0 = broadcast)
};

/// The strides of `in` (broadcast to `out`) per output dim, 0 where broadcast.
inline std::vector<int64_t> broadcast_strides(const Shape& in, const Shape& out) {
  const size_t lead = out.size() - in.size();
  Shape padded(lead, 1);
  padded.insert(padded.end(), in.begin(), in.end());
  const auto st = contiguous_strides(padded);
  std::vector<int64_t> r(out.size());
  for (size_t d = 0; d < out.size(); ++d) r[d] = padded[d] == 1 ? 0 : st[d];
  return r;
}

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
  p.in_strides = broadcast_strides(in, out);
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

/// The kernels' view of a broadcast: the output's sizes, each input's strides.
inline cuda::StridedLayout strided_layout(const Shape& out, const Shape& a, const Shape& b) {
  VIT_CHECK(out.size() <= static_cast<size_t>(cuda::kMaxDims), "broadcast on cuda: ", out.size(),
            " dims (at most ", cuda::kMaxDims, ")");
  cuda::StridedLayout l;
  l.ndim = static_cast<int>(out.size());
  const auto sa = broadcast_strides(a, out), sb = broadcast_strides(b, out);
  for (size_t d = 0; d < out.size(); ++d) l.size[d] = out[d], l.stride_a[d] = sa[d], l.stride_b[d] = sb[d];
  return l;
}

enum class BinaryOp { Add, Sub, Mul };

template <class T>
T apply(BinaryOp op, T a, T b) {
  using C = compute_t<T>;
  const C x = static_cast<C>(a), y = static_cast<C>(b);
  return static_cast<T>(op == BinaryOp::Add ? x + y : op == BinaryOp::Sub ? x - y : x * y);
}

// out (out_shape) = a op b, each broadcast from its shape; on `dev`.
template <class T>
void binary_forward(Device dev, BinaryOp op, const T* pa, const Shape& a_shape, const T* pb,
                    const Shape& b_shape, T* po, const Shape& out_shape) {
  const int64_t n = numel(out_shape);
  if (n == 0) return;
  const BroadcastPlan plan_a = plan_broadcast(a_shape, out_shape);
  const BroadcastPlan plan_b = plan_broadcast(b_shape, out_shape);
  const bool same = plan_a.kind == BroadcastPlan::Same && plan_b.kind == BroadcastPlan::Same;
  if (dev == Device::CUDA) {
    if constexpr (detail::kCudaKernels<T>) {
      if (same && op == BinaryOp::Add) cuda::add(pa, pb, po, n);
      else if (same && op == BinaryOp::Sub) cuda::sub(pa, pb, po, n);
      else if (same) cuda::mul(pa, pb, po, n);
      else if (op == BinaryOp::Add && plan_a.kind == BroadcastPlan::Same &&
               plan_b.kind == BroadcastPlan::Trailing)  // bias, pos_embed: the common case
        cuda::add_row_broadcast(pa, pb, po, n / std::max<int64_t>(plan_b.inner, 1), plan_b.inner);
      else
        cuda::broadcast_binary(op == BinaryOp::Add   ? cuda::BinaryKind::Add
                               : op == BinaryOp::Sub ? cuda::BinaryKind::Sub
                                                     : cuda::BinaryKind::Mul,
                               pa, pb, po, strided_layout(out_shape, a_shape, b_shape));
    } else {
      detail::cuda_branch_missing("binary op");
    }
    return;
  }
  if (same) {
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
}

// out = s·x over n elements on `dev` (out may be x); s in the compute type (float for bf16).
template <class T>
void scale_forward(Device dev, const T* x, compute_t<T> s, T* out, int64_t n) {
  if (dev == Device::CUDA) {
    if constexpr (detail::kCudaKernels<T>) cuda::scale(x, static_cast<float>(s), out, n);
    else detail::cuda_branch_missing("scale");
    return;
  }
  using C = compute_t<T>;
#pragma omp parallel for schedule(static) if (n > 32768)
  for (int64_t i = 0; i < n; ++i) out[i] = static_cast<T>(static_cast<C>(x[i]) * s);
}

template <class T>
void tanh_forward(Device dev, const T* x, T* y, int64_t n) {
  if (dev == Device::CUDA) {
    if constexpr (detail::kCudaKernels<T>) cuda::tanh_forward(x, y, n);
    else detail::cuda_branch_missing("tanh");
    return;
  }
  using C = compute_t<T>;
  for (int64_t i = 0; i < n; ++i) y[i] = static_cast<T>(std::tanh(static_cast<C>(x[i])));
}

// dx = dy·(1 - y²) from the forward's output y.
template <class T>
void tanh_backward(Device dev, const T* dy, const T* y, T* dx, int64_t n) {
  if (dev == Device::CUDA) {
    if constexpr (detail::kCudaKernels<T>) cuda::tanh_backward(dy, y, dx, n);
    else detail::cuda_branch_missing("tanh");
    return;
  }
  using C = compute_t<T>;
  for (int64_t i = 0; i < n; ++i) {
    const C yi = static_cast<C>(y[i]);
    dx[i] = static_cast<T>(static_cast<C>(dy[i]) * (C(1) - yi * yi));
  }
}

// out (the kept dims of `x_shape`, row-major) = scale · Σ x over the other dims, written; on `dev`.
// The sums are in the compute type (float for bf16), rounded once.
template <class T>
void reduce_sum(Device dev, const T* x, const Shape& x_shape, const std::vector<bool>& keep, T* out,
                compute_t<T> scale) {
  const int64_t n = numel(x_shape);
  Shape out_shape;
  for (size_t d = 0; d < x_shape.size(); ++d)
    if (keep[d]) out_shape.push_back(x_shape[d]);
  const int64_t m = numel(out_shape);
  if (dev == Device::CUDA) {
    if constexpr (detail::kCudaKernels<T>) {
      VIT_CHECK(x_shape.size() <= static_cast<size_t>(cuda::kMaxDims), "reduce on cuda: ",
                x_shape.size(), " dims (at most ", cuda::kMaxDims, ")");
      int64_t sizes[cuda::kMaxDims];
      bool kept[cuda::kMaxDims];
      for (size_t d = 0; d < x_shape.size(); ++d) sizes[d] = x_shape[d], kept[d] = keep[d];
      if (m > 0)
        cuda::reduce_sum(x, out, static_cast<int>(x_shape.size()), sizes, kept,
                         static_cast<float>(scale));
    } else {
      detail::cuda_branch_missing("reduce");
    }
    return;
  }
  using C = compute_t<T>;
  std::vector<C> acc(static_cast<size_t>(m), C(0));
  // Each x element adds into the output element its kept coordinates name.
  const auto xs = contiguous_strides(x_shape);
  const auto os = contiguous_strides(out_shape);
  std::vector<int64_t> ostride(x_shape.size(), 0);
  for (size_t d = 0, k = 0; d < x_shape.size(); ++d)
    if (keep[d]) ostride[d] = os[k++];
  for (int64_t i = 0; i < n; ++i) {
    int64_t rem = i, o = 0;
    for (size_t d = 0; d < x_shape.size(); ++d) {
      const int64_t c = rem / xs[d];
      rem -= c * xs[d];
      o += c * ostride[d];
    }
    acc[o] += static_cast<C>(x[i]);
  }
  for (int64_t j = 0; j < m; ++j) out[j] = static_cast<T>(scale != C(1) ? acc[j] * scale : acc[j]);
}

/// Sums g (shape `out`) into the shape `in` it was broadcast from, on g's device.
template <class T>
Tensor<T> reduce_to_shape(const Tensor<T>& g, const Shape& in) {
  if (g.shape() == in) return g;
  const Device dev = g.device();
  const BroadcastPlan p = plan_broadcast(in, g.shape());
  Tensor<T> r = Tensor<T>::zeros(in, dev);
  const T* src = g.data();
  T* dst = r.data();
  const int64_t n = g.numel();
  if (p.kind == BroadcastPlan::Trailing) {  // sum over leading rows: column sums
    detail::add_column_sums(dev, src, n / std::max<int64_t>(p.inner, 1), p.inner, dst);
  } else if (p.kind == BroadcastPlan::Leading && dev == Device::CPU) {
    const int64_t outer = n / std::max<int64_t>(p.inner, 1);
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t o = 0; o < outer; ++o) {
      compute_t<T> acc = 0;
      for (int64_t j = 0; j < p.inner; ++j) acc += static_cast<compute_t<T>>(src[o * p.inner + j]);
      dst[o] = static_cast<T>(acc);
    }
  } else if (dev == Device::CPU) {
    std::vector<compute_t<T>> acc(static_cast<size_t>(r.numel()), compute_t<T>(0));
    for_each_broadcast(p, g.shape(), [&](int64_t i, int64_t k) { acc[k] += static_cast<compute_t<T>>(src[i]); });
    for (int64_t k = 0; k < r.numel(); ++k) dst[k] = static_cast<T>(acc[k]);
  } else {  // general broadcast on the device: sum over the dims where `in` is 1
    const Shape& out = g.shape();
    const size_t lead = out.size() - in.size();
    std::vector<bool> keep(out.size());
    for (size_t d = 0; d < out.size(); ++d) keep[d] = d >= lead && in[d - lead] != 1;
    reduce_sum(dev, src, out, keep, dst, compute_t<T>(1));
  }
  return r;
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
        Tensor<T> neg = Tensor<T>::empty(g.shape(), g.device());
        ops::scale_forward(g.device(), g.data(), T(-1), neg.data(), g.numel());
        g = neg;
      }
      this->accumulate(1, g);
    }
  }
  static Tensor<T> product(const Tensor<T>& dout, const Tensor<T>& other) {
    Tensor<T> r = Tensor<T>::empty(dout.shape(), dout.device());
    ops::binary_forward(dout.device(), ops::BinaryOp::Mul, dout.data(), dout.shape(), other.data(),
                        other.shape(), r.data(), dout.shape());
    return r;
  }
};
}  // namespace detail

namespace ops::detail {
template <class T>
Tensor<T> binary(BinaryOp op, const Tensor<T>& a, const Tensor<T>& b, const char* name) {
  const Device dev = same_device(name, a, b);
  const Shape out_shape = broadcast_shapes(a.shape(), b.shape(), name);
  Tensor<T> out = Tensor<T>::empty(out_shape, dev);
  binary_forward(dev, op, a.data(), a.shape(), b.data(), b.shape(), out.data(), out_shape);
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
  compute_t<T> s;
  const char* name() const override { return "scale"; }
  void backward(const Tensor<T>& dout) override {
    Tensor<T> g = Tensor<T>::empty(dout.shape(), dout.device());
    ops::scale_forward(dout.device(), dout.data(), s, g.data(), g.numel());
    this->accumulate(0, g);
  }
};
template <class T>
struct TanhNode : Node<T> {
  Tensor<T> out;
  const char* name() const override { return "tanh"; }
  void backward(const Tensor<T>& dout) override {
    Tensor<T> g = Tensor<T>::empty(dout.shape(), dout.device());
    ops::tanh_backward(dout.device(), dout.data(), out.data(), g.data(), g.numel());
    this->accumulate(0, g);
  }
};
}  // namespace detail

/// x * s for a scalar s.
template <class T>
Tensor<T> scale(const Tensor<T>& x, double s) {
  Tensor<T> out = Tensor<T>::empty(x.shape(), x.device());
  const compute_t<T> st = static_cast<compute_t<T>>(s);
  ops::scale_forward(x.device(), x.data(), st, out.data(), x.numel());
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
  Tensor<T> out = Tensor<T>::empty(x.shape(), x.device());
  ops::tanh_forward(x.device(), x.data(), out.data(), x.numel());
  if (autograd::needs_grad(x)) {
    auto node = std::make_shared<detail::TanhNode<T>>();
    node->out = out.detach();
    autograd::attach(out, node, {&x});
  }
  return out;
}

}  // namespace vit
