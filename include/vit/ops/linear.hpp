// linear: out = x · Wᵀ + b over the last dim (nn.Linear, weight [out,in]);
// matmul: a @ b batched over leading dims (torch.matmul for rank >= 2, with a
// rank-2 right operand broadcast). Both are one big GEMM over all rows, which is
// what makes a ViT fast on the CPU: B·N rows at once, never a loop of small ones.
#pragma once

#include <type_traits>

#include "vit/ops/common.hpp"

namespace vit {
namespace ops {

// x: (R,Cin), w: (Cout,Cin), b: (Cout) or null -> out: (R,Cout)
// The bias goes into the GEMM: with the AVX2 SGEMM it is added as each output
// tile is first written, saving a pass over out (19 MB for qkv at batch 128).
template <class T>
void linear_forward(const T* x, const T* w, const T* b, T* out, int64_t R, int64_t Cin,
                    int64_t Cout) {
  gemm<T>(false, true, R, Cout, Cin, T(1), x, Cin, w, Cin, T(0), out, Cout, b);
}

// dout: (R,Cout) -> dx: (R,Cout)·W written (if dx); dw += doutᵀ·x; db += Σ_r dout
// With the AVX2 SGEMM and dw wanted, db comes out of the dw GEMM (row sums of
// its A = doutᵀ, taken from the packed panels), saving a pass over dout; that
// sum is also independent of the thread count. bf16 (the reference of the
// bf16 path): every product is bf16 in, fp32 accumulation, rounded once, and
// db is summed in float and rounded once (the dw GEMM's float row sums, or
// add_column_sums' float sums without dw).
template <class T>
void linear_backward(const T* dout, const T* x, const T* w, T* dx, T* dw, T* db, int64_t R,
                     int64_t Cin, int64_t Cout) {
#if VIT_HAVE_SGEMM_AVX2
  constexpr bool db_in_gemm = std::is_same_v<T, float> || is_bf16_v<T>;
#else
  constexpr bool db_in_gemm = is_bf16_v<T>;  // gemm_bf16's float row sums
#endif
  if (dx) gemm<T>(false, false, R, Cin, Cout, T(1), dout, Cout, w, Cin, T(0), dx, Cin);
  if (dw)
    gemm<T>(true, false, Cout, Cin, R, T(1), dout, Cout, x, Cin, T(1), dw, Cin, nullptr,
            db_in_gemm ? db : nullptr);
  if (db && !(dw && db_in_gemm)) detail::add_column_sums(dout, R, Cout, db);
}

// The same on `dev` (cuBLAS on CUDA; the bias and its gradient by kernels).
// bf16 on CUDA: cuBLASLt with fp32 accumulation, the forward's bias added in
// the GEMM's epilogue (cuda::gemm_bias: no separate pass over out).
template <class T>
void linear_forward(Device dev, const T* x, const T* w, const T* b, T* out, int64_t R, int64_t Cin,
                    int64_t Cout) {
  if (dev == Device::CPU) return linear_forward(x, w, b, out, R, Cin, Cout);
  gemm<T>(dev, false, true, R, Cout, Cin, T(1), x, Cin, w, Cin, T(0), out, Cout, b);
}

template <class T>
void linear_backward(Device dev, const T* dout, const T* x, const T* w, T* dx, T* dw, T* db,
                     int64_t R, int64_t Cin, int64_t Cout) {
  if (dev == Device::CPU) return linear_backward(dout, x, w, dx, dw, db, R, Cin, Cout);
  if (dx) gemm<T>(dev, false, false, R, Cin, Cout, T(1), dout, Cout, w, Cin, T(0), dx, Cin);
  if (dw) gemm<T>(dev, true, false, Cout, Cin, R, T(1), dout, Cout, x, Cin, T(1), dw, Cin);
  if (db) detail::add_column_sums(dev, dout, R, Cout, db);
}

}  // namespace ops

namespace detail {
template <class T>
struct LinearNode : Node<T> {
  Tensor<T> x, w;
  bool has_bias = false;
  const char* name() const override { return "linear"; }
  void backward(const Tensor<T>& dout) override {
    const int64_t Cin = w.shape()[1], Cout = w.shape()[0], R = x.numel() / Cin;
    Tensor<T> dx;
    if (this->needs_grad(0)) dx = Tensor<T>::empty(x.shape(), x.device());
    T* dw = this->needs_grad(1) ? this->grad_buffer(1).data() : nullptr;
    T* db = has_bias && this->needs_grad(2) ? this->grad_buffer(2).data() : nullptr;
    ops::linear_backward(x.device(), dout.data(), x.data(), w.data(), dx.defined() ? dx.data() : nullptr, dw,
                         db, R, Cin, Cout);
    if (dx.defined()) this->accumulate(0, dx);
  }
};

template <class T>
struct MatmulNode : Node<T> {
  Tensor<T> a, b;
  const char* name() const override { return "matmul"; }
  void backward(const Tensor<T>& dout) override;
};
}  // namespace detail

/// nn.Linear: x (...,in) · weightᵀ (weight [out,in]) + bias [out]; bias may be undefined.
template <class T>
Tensor<T> linear(const Tensor<T>& x, const Tensor<T>& weight, const Tensor<T>& bias = {}) {
  const Device dev = ops::detail::same_device("linear", x, weight, bias);
  VIT_CHECK(weight.dim() == 2 && x.dim() >= 1 && x.shape().back() == weight.shape()[1],
            "linear: x ", x.shape(), " vs weight ", weight.shape(), " (need x (...,in), weight (out,in))");
  VIT_CHECK(!bias.defined() || (bias.dim() == 1 && bias.shape()[0] == weight.shape()[0]),
            "linear: bias ", bias.defined() ? bias.shape() : Shape{}, " vs weight ", weight.shape());
  const int64_t Cin = weight.shape()[1], Cout = weight.shape()[0];
  Shape out_shape = x.shape();
  out_shape.back() = Cout;
  Tensor<T> out = Tensor<T>::empty(out_shape, dev);
  ops::linear_forward(dev, x.data(), weight.data(), bias.defined() ? bias.data() : nullptr, out.data(),
                      x.numel() / std::max<int64_t>(Cin, 1), Cin, Cout);
  if (autograd::needs_grad(x, weight, bias)) {
    auto node = std::make_shared<detail::LinearNode<T>>();
    node->x = x.detach();
    node->w = weight.detach();
    node->has_bias = bias.defined();
    autograd::attach(out, node, {&x, &weight, &bias});
  }
  return out;
}

/// torch.matmul for a (...,M,K) @ b (...,K,N) with equal batch dims, or b (K,N).
template <class T>
Tensor<T> matmul(const Tensor<T>& a, const Tensor<T>& b) {
  const Device dev = ops::detail::same_device("matmul", a, b);
  VIT_CHECK(a.dim() >= 2 && b.dim() >= 2, "matmul: need rank >= 2, got ", a.shape(), " @ ",
            b.shape());
  const int64_t M = a.size(-2), K = a.size(-1), N = b.size(-1);
  VIT_CHECK(b.size(-2) == K, "matmul: inner dimensions differ: ", a.shape(), " @ ", b.shape());
  const bool b_shared = b.dim() == 2;
  VIT_CHECK(b_shared || (a.dim() == b.dim() &&
                         std::equal(a.shape().begin(), a.shape().end() - 2, b.shape().begin())),
            "matmul: batch dimensions differ: ", a.shape(), " @ ", b.shape());
  Shape out_shape = a.shape();
  out_shape.back() = N;
  Tensor<T> out = Tensor<T>::empty(out_shape, dev);
  const int64_t batch = a.numel() / std::max<int64_t>(M * K, 1);
  if (b_shared) {  // one GEMM over all rows of a
    ops::gemm<T>(dev, false, false, batch * M, N, K, T(1), a.data(), K, b.data(), N, T(0), out.data(), N);
  } else {
    ops::gemm_batched<T>(dev, false, false, M, N, K, T(1), a.data(), K, M * K, b.data(), N, K * N, T(0),
                         out.data(), N, M * N, batch);
  }
  if (autograd::needs_grad(a, b)) {
    auto node = std::make_shared<detail::MatmulNode<T>>();
    node->a = a.detach();
    node->b = b.detach();
    autograd::attach(out, node, {&a, &b});
  }
  return out;
}

template <class T>
void detail::MatmulNode<T>::backward(const Tensor<T>& dout) {
  const int64_t M = a.size(-2), K = a.size(-1), N = b.size(-1);
  const int64_t batch = a.numel() / std::max<int64_t>(M * K, 1);
  const bool b_shared = b.dim() == 2;
  const Device dev = a.device();
  if (this->needs_grad(0)) {  // da = dout · bᵀ
    Tensor<T> da = Tensor<T>::empty(a.shape(), dev);
    if (b_shared)
      ops::gemm<T>(dev, false, true, batch * M, K, N, T(1), dout.data(), N, b.data(), N, T(0), da.data(), K);
    else
      ops::gemm_batched<T>(dev, false, true, M, K, N, T(1), dout.data(), N, M * N, b.data(), N, K * N, T(0),
                           da.data(), K, M * K, batch);
    this->accumulate(0, da);
  }
  if (this->needs_grad(1)) {  // db = aᵀ · dout
    Tensor<T> db = Tensor<T>::empty(b.shape(), dev);
    if (b_shared)
      ops::gemm<T>(dev, true, false, K, N, batch * M, T(1), a.data(), K, dout.data(), N, T(0), db.data(), N);
    else
      ops::gemm_batched<T>(dev, true, false, K, N, M, T(1), a.data(), K, M * K, dout.data(), N, M * N, T(0),
                           db.data(), N, K * N, batch);
    this->accumulate(1, db);
  }
}

}  // namespace vit
