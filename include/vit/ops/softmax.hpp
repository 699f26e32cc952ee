// softmax over the last dim (F.softmax(x, -1)): max-subtracted for stability,
// the output saved for backward, dx = y ⊙ (dy − Σ dy·y).
// The row kernels are reused by fused attention. bf16 tensors: bf16 storage,
// float math (the float loops on float copies of each block of rows, each
// output rounded once).
#pragma once

#include "vit/cuda/softmax.hpp"
#include "vit/ops/common.hpp"
#include "vit/ops/detail/bf16_buffers.hpp"

namespace vit {
namespace ops {

// In place over one row of length n.
template <class T>
void softmax_row(T* row, int64_t n) {
  Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>> a(row, n);
  const T m = a.maxCoeff();
  a = (a - m).exp();
  a *= T(1) / a.sum();
}

// y, dy: one row of length n -> dx written
template <class T>
void softmax_row_backward(const T* y, const T* dy, T* dx, int64_t n) {
  T dot = 0;
#pragma omp simd reduction(+ : dot)
  for (int64_t i = 0; i < n; ++i) dot += dy[i] * y[i];
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) dx[i] = y[i] * (dy[i] - dot);
}

// x: (R,n) -> out: (R,n)
template <class T>
void softmax_forward(const T* x, T* out, int64_t R, int64_t n) {
#pragma omp parallel for schedule(static) if (R * n > 32768)
  for (int64_t r = 0; r < R; ++r) {
    std::copy_n(x + r * n, n, out + r * n);
    softmax_row(out + r * n, n);
  }
}

template <class T>
void softmax_backward(const T* y, const T* dy, T* dx, int64_t R, int64_t n) {
#pragma omp parallel for schedule(static) if (R * n > 32768)
  for (int64_t r = 0; r < R; ++r) softmax_row_backward(y + r * n, dy + r * n, dx + r * n, n);
}

// bf16 storage, float math on float copies of each block of rows.
inline void softmax_forward(const bf16* x, bf16* out, int64_t R, int64_t n) {
  detail::for_row_blocks(R, n, detail::row_block_threads(R, n), [&](int64_t r0, int64_t rows, int) {
    float* xs = detail::row_scratch(0, rows * n);
    float* os = detail::row_scratch(1, rows * n);
    detail::widen_n(x + r0 * n, xs, rows * n);
    softmax_forward(xs, os, rows, n);
    detail::narrow_n(os, out + r0 * n, rows * n);
  });
}

inline void softmax_backward(const bf16* y, const bf16* dy, bf16* dx, int64_t R, int64_t n) {
  detail::for_row_blocks(R, n, detail::row_block_threads(R, n), [&](int64_t r0, int64_t rows, int) {
    float* ys = detail::row_scratch(0, rows * n);
    float* gs = detail::row_scratch(1, rows * n);
    detail::widen_n(y + r0 * n, ys, rows * n);
    detail::widen_n(dy + r0 * n, gs, rows * n);
    softmax_backward(ys, gs, gs, rows, n);
    detail::narrow_n(gs, dx + r0 * n, rows * n);
  });
}

template <class T>
void softmax_forward(Device dev, const T* x, T* out, int64_t R, int64_t n) {
  if (dev == Device::CUDA) {
    if constexpr (detail::kCudaKernels<T>) cuda::softmax_forward(x, out, R, n);
    else detail::cuda_branch_missing("softmax");
    return;
  }
  softmax_forward(x, out, R, n);
}

template <class T>
void softmax_backward(Device dev, const T* y, const T* dy, T* dx, int64_t R, int64_t n) {
  if (dev == Device::CUDA) {
    if constexpr (detail::kCudaKernels<T>) cuda::softmax_backward(y, dy, dx, R, n);
    else detail::cuda_branch_missing("softmax");
    return;
  }
  softmax_backward(y, dy, dx, R, n);
}

}  // namespace ops

namespace detail {
template <class T>
struct SoftmaxNode : Node<T> {
  Tensor<T> y;
  const char* name() const override { return "softmax"; }
  void backward(const Tensor<T>& dout) override {
    Tensor<T> dx = Tensor<T>::empty(y.shape(), y.device());
    const int64_t n = y.shape().back();
    ops::softmax_backward(y.device(), y.data(), dout.data(), dx.data(), ops::detail::rows_of(y), n);
    this->accumulate(0, dx);
  }
};
}  // namespace detail

/// F.softmax(x, dim=-1).
template <class T>
Tensor<T> softmax(const Tensor<T>& x) {
  const Device dev = x.device();
  VIT_CHECK(x.dim() >= 1 && x.shape().back() > 0, "softmax: need a non-empty last dim, got ", x.shape());
  Tensor<T> out = Tensor<T>::empty(x.shape(), dev);
  ops::softmax_forward(dev, x.data(), out.data(), ops::detail::rows_of(x), x.shape().back());
  if (autograd::needs_grad(x)) {
    auto node = std::make_shared<detail::SoftmaxNode<T>>();
    node->y = out.detach();
    autograd::attach(out, node, {&x});
  }
  return out;
}

}  // namespace vit
