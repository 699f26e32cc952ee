// Shape ops: reshape (a view), permute/transpose, expand, concat, select.
// Only reshape shares storage; the others copy into a fresh contiguous tensor,
// because every kernel here reads contiguous rows. Their backwards are the
// inverse data movement (inverse permutation, slice, sum over the expanded dims).
// Any element type (float, double, bf16): the moves copy elements as they are,
// no float round trip; expand's backward sums in float for bf16 (reduce_to_shape).
#pragma once

#include <numeric>

#include "vit/cuda/runtime.hpp"
#include "vit/ops/elementwise.hpp"

namespace vit {
namespace ops {

// x: shape s, perm -> out: shape s[perm]; a strided gather
template <class T>
void permute_copy(const T* x, const Shape& s, const std::vector<int>& perm, T* out) {
  const auto in_st = contiguous_strides(s);
  Shape out_shape(perm.size());
  std::vector<int64_t> st(perm.size());
  for (size_t d = 0; d < perm.size(); ++d) out_shape[d] = s[perm[d]], st[d] = in_st[perm[d]];
  const int64_t n = numel(s);
  if (n == 0) return;
  if (perm.empty()) {  // a 0-dim tensor: one element, nothing to reorder
    out[0] = x[0];
    return;
  }
  // The outermost output dim is split across threads; each walks the rest.
  const int64_t outer = out_shape[0], inner = n / outer;
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t o = 0; o < outer; ++o) {
    std::vector<int64_t> idx(perm.size(), 0);
    int64_t off = o * st[0];
    T* dst = out + o * inner;
    for (int64_t i = 0; i < inner; ++i) {
      dst[i] = x[off];
      for (int d = static_cast<int>(perm.size()) - 1; d >= 1; --d) {
        off += st[d];
        if (++idx[d] < out_shape[d]) break;
        off -= st[d] * out_shape[d];
        idx[d] = 0;
      }
    }
  }
}

template <class T>
void permute_copy(Device dev, const T* x, const Shape& s, const std::vector<int>& perm, T* out) {
  if (dev == Device::CUDA) {
    if constexpr (detail::kCudaKernels<T>) {
      VIT_CHECK(s.size() <= static_cast<size_t>(cuda::kMaxDims), "permute on cuda: ", s.size(), " dims");
      if (numel(s) == 0) return;
      int64_t sizes[cuda::kMaxDims];
      int p[cuda::kMaxDims];
      for (size_t d = 0; d < s.size(); ++d) sizes[d] = s[d], p[d] = perm[d];
      cuda::permute(x, out, static_cast<int>(s.size()), sizes, p);
    } else {
      detail::cuda_branch_missing("permute");
    }
    return;
  }
  permute_copy(x, s, perm, out);
}

// out (shape) = x (x_shape) broadcast, written.
template <class T>
void expand_copy(Device dev, const T* x, const Shape& x_shape, T* out, const Shape& shape) {
  if (numel(shape) == 0) return;
  if (dev == Device::CUDA) {
    if constexpr (detail::kCudaKernels<T>)
      cuda::broadcast_copy(x, out, strided_layout(shape, x_shape, x_shape), 1.f);
    else detail::cuda_branch_missing("expand");
    return;
  }
  const BroadcastPlan p = plan_broadcast(x_shape, shape);
  for_each_broadcast(p, shape, [&](int64_t i, int64_t k) { out[i] = x[k]; });
}

// `rows` chunks of `chunk` elements: row o from src + o·src_stride to dst + o·dst_stride.
// Concat, select and their backwards are such strided copies.
template <class T>
void copy_chunks(Device dev, T* dst, int64_t dst_stride, const T* src, int64_t src_stride,
                 int64_t chunk, int64_t rows) {
  if (chunk == 0 || rows == 0) return;
  if (dev == Device::CUDA) {
#if VIT_WITH_CUDA
    cuda::copy_rows_on_device(dst, sizeof(T) * dst_stride, src, sizeof(T) * src_stride,
                              sizeof(T) * chunk, rows);
#else
    detail::cuda_branch_missing("copy");
#endif
    return;
  }
  for (int64_t o = 0; o < rows; ++o) std::copy_n(src + o * src_stride, chunk, dst + o * dst_stride);
}

}  // namespace ops

namespace detail {
template <class T>
struct ReshapeNode : Node<T> {
  const char* name() const override { return "reshape"; }
  void backward(const Tensor<T>& dout) override {
    this->accumulate(0, dout.view_as_shape(this->input_shape(0)));
  }
};
template <class T>
struct PermuteNode : Node<T> {
  std::vector<int> perm;
  const char* name() const override { return "permute"; }
  void backward(const Tensor<T>& dout) override {
    std::vector<int> inv(perm.size());
    for (size_t d = 0; d < perm.size(); ++d) inv[perm[d]] = static_cast<int>(d);
    Tensor<T> g = Tensor<T>::empty(this->input_shape(0), dout.device());
    ops::permute_copy(dout.device(), dout.data(), dout.shape(), inv, g.data());
    this->accumulate(0, g);
  }
};
template <class T>
struct ExpandNode : Node<T> {
  const char* name() const override { return "expand"; }
  void backward(const Tensor<T>& dout) override {
    this->accumulate(0, ops::reduce_to_shape(dout, this->input_shape(0)));
  }
};
template <class T>
struct ConcatNode : Node<T> {
  int dim = 0;
  std::vector<int64_t> sizes;  // each input's extent along dim
  const char* name() const override { return "concat"; }
  void backward(const Tensor<T>& dout) override {
    const Shape& s = dout.shape();
    const int64_t outer = numel(s, 0, dim);
    const int64_t inner = numel(s, dim + 1, s.size());
    int64_t start = 0;
    for (size_t k = 0; k < sizes.size(); ++k) {
      if (this->needs_grad(k)) {
        Tensor<T> g = Tensor<T>::empty(this->input_shape(k), dout.device());
        const int64_t chunk = sizes[k] * inner;
        ops::copy_chunks(dout.device(), g.data(), chunk, dout.data() + start * inner, s[dim] * inner,
                         chunk, outer);
        this->accumulate(k, g);
      }
      start += sizes[k];
    }
  }
};
template <class T>
struct SelectNode : Node<T> {
  int dim = 0;
  int64_t index = 0;
  const char* name() const override { return "select"; }
  void backward(const Tensor<T>& dout) override {
    const Shape& s = this->input_shape(0);
    Tensor<T> g = Tensor<T>::zeros(s, dout.device());
    const int64_t outer = numel(s, 0, dim);
    const int64_t inner = numel(s, dim + 1, s.size());
    ops::copy_chunks(dout.device(), g.data() + index * inner, s[dim] * inner, dout.data(), inner,
                     inner, outer);
    this->accumulate(0, g);
  }
};
}  // namespace detail

/// Same data in a new shape (one dim may be -1); shares storage like torch.reshape on contiguous input.
template <class T>
Tensor<T> reshape(const Tensor<T>& x, Shape shape) {
  int64_t known = 1, infer = -1;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == -1) {
      VIT_CHECK(infer < 0, "reshape: more than one -1 in ", shape);
      infer = static_cast<int64_t>(d);
    } else {
      VIT_CHECK(shape[d] >= 0, "reshape: negative size in ", shape);
      known *= shape[d];
    }
  }
  if (infer >= 0) {
    VIT_CHECK(known > 0 && x.numel() % known == 0, "reshape: cannot reshape ", x.shape(), " to ", shape);
    shape[infer] = x.numel() / known;
  }
  VIT_CHECK(numel(shape) == x.numel(), "reshape: cannot reshape ", x.shape(), " (", x.numel(),
            " elements) to ", shape);
  Tensor<T> out = x.view_as_shape(shape);
  if (autograd::needs_grad(x)) autograd::attach(out, std::make_shared<detail::ReshapeNode<T>>(), {&x});
  return out;
}

/// Reorders dimensions: out.shape[d] = x.shape[perm[d]] (torch.permute), copied contiguous.
template <class T>
Tensor<T> permute(const Tensor<T>& x, std::vector<int> perm) {
  VIT_CHECK(perm.size() == x.shape().size(), "permute: ", perm.size(), " dims for shape ", x.shape());
  std::vector<bool> used(perm.size(), false);
  Shape out_shape(perm.size());
  for (size_t d = 0; d < perm.size(); ++d) {
    perm[d] = normalize_dim(perm[d], perm.size(), "permute");
    VIT_CHECK(!used[perm[d]], "permute: dimension ", perm[d], " repeated");
    used[perm[d]] = true;
    out_shape[d] = x.shape()[perm[d]];
  }
  Tensor<T> out = Tensor<T>::empty(out_shape, x.device());
  ops::permute_copy(x.device(), x.data(), x.shape(), perm, out.data());
  if (autograd::needs_grad(x)) {
    auto node = std::make_shared<detail::PermuteNode<T>>();
    node->perm = perm;
    autograd::attach(out, node, {&x});
  }
  return out;
}

/// Swaps two dimensions.
template <class T>
Tensor<T> transpose(const Tensor<T>& x, int64_t d0, int64_t d1) {
  std::vector<int> perm(x.shape().size());
  std::iota(perm.begin(), perm.end(), 0);
  std::swap(perm[normalize_dim(d0, perm.size(), "transpose")],
            perm[normalize_dim(d1, perm.size(), "transpose")]);
  return permute(x, perm);
}

/// Broadcasts x to `shape` (torch.expand, but materialised); backward sums.
template <class T>
Tensor<T> expand(const Tensor<T>& x, const Shape& shape) {
  VIT_CHECK(broadcast_shapes(x.shape(), shape, "expand") == shape, "expand: cannot expand ",
            x.shape(), " to ", shape);
  const Device dev = x.device();
  Tensor<T> out = Tensor<T>::empty(shape, dev);
  ops::expand_copy(dev, x.data(), x.shape(), out.data(), shape);
  if (autograd::needs_grad(x)) autograd::attach(out, std::make_shared<detail::ExpandNode<T>>(), {&x});
  return out;
}

/// Joins tensors along dim; all other dims must match (torch.cat).
template <class T>
Tensor<T> concat(const std::vector<Tensor<T>>& xs, int64_t dim) {
  VIT_CHECK(!xs.empty(), "concat: no tensors");
  const Shape& s0 = xs[0].shape();
  const int d = normalize_dim(dim, s0.size(), "concat");
  Shape out_shape = s0;
  out_shape[d] = 0;
  const Device dev = xs[0].device();
  for (const auto& x : xs) {
    VIT_CHECK(x.device() == dev, "concat: tensors on different devices (", device_name(dev),
              " and ", device_name(x.device()), ")");
    Shape a = x.shape(), b = s0;
    VIT_CHECK(a.size() == b.size(), "concat: ranks differ: ", s0, " and ", x.shape());
    a[d] = b[d] = 0;
    VIT_CHECK(a == b, "concat: shapes ", s0, " and ", x.shape(), " differ outside dim ", d);
    out_shape[d] += x.shape()[d];
  }
  Tensor<T> out = Tensor<T>::empty(out_shape, dev);
  const int64_t outer = numel(s0, 0, d);
  const int64_t inner = numel(s0, d + 1, s0.size());
  int64_t start = 0;
  for (const auto& x : xs) {
    const int64_t chunk = x.shape()[d] * inner;
    ops::copy_chunks(dev, out.data() + start * inner, out_shape[d] * inner, x.data(), chunk, chunk, outer);
    start += x.shape()[d];
  }
  bool any = false;
  for (const auto& x : xs) any = any || autograd::needs_grad(x);
  if (any) {
    auto node = std::make_shared<detail::ConcatNode<T>>();
    node->dim = d;
    std::vector<const Tensor<T>*> inputs;
    for (const auto& x : xs) {
      node->sizes.push_back(x.shape()[d]);
      inputs.push_back(&x);
    }
    autograd::attach_range(out, node, inputs);
  }
  return out;
}

/// x[..., index, ...] along dim, removing that dim (e.g. the cls token x[:, 0]).
template <class T>
Tensor<T> select(const Tensor<T>& x, int64_t dim, int64_t index) {
  const Device dev = x.device();
  const int d = normalize_dim(dim, x.shape().size(), "select");
  const Shape& s = x.shape();
  VIT_CHECK(index >= -s[d] && index < s[d], "select: index ", index, " out of range for dim ", d,
            " of shape ", s);
  if (index < 0) index += s[d];
  Shape out_shape = s;
  out_shape.erase(out_shape.begin() + d);
  Tensor<T> out = Tensor<T>::empty(out_shape, dev);
  const int64_t outer = numel(s, 0, d);
  const int64_t inner = numel(s, d + 1, s.size());
  ops::copy_chunks(dev, out.data(), inner, x.data() + index * inner, s[d] * inner, inner, outer);
  if (autograd::needs_grad(x)) {
    auto node = std::make_shared<detail::SelectNode<T>>();
    node->dim = d;
    node->index = index;
    autograd::attach(out, node, {&x});
  }
  return out;
}

}  // namespace vit
