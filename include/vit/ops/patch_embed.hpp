// patch_embed: nn.Conv2d with kernel = stride = P, then flatten(2).transpose(1,2),
// i.e. timm's PatchEmbed, as one op. Non-overlapping patches make the
// convolution an exact im2col gather followed by one GEMM against the weight
// viewed as [C, ch·P·P]; the gathered patches are saved for the weight gradient.
// patchify/unpatchify move elements of any type unchanged (bf16 included, on
// both devices); the GEMM part is ops::linear's.
#pragma once

#include "vit/cuda/patchify.hpp"
#include "vit/ops/linear.hpp"

namespace vit {
namespace ops {

// x: (B,ch,H,W) -> cols: (B·N, ch·P·P), N = (H/P)·(W/P), column = c·P·P + ky·P + kx
template <class T>
void patchify(const T* x, T* cols, int64_t B, int64_t ch, int64_t H, int64_t W, int64_t P) {
  const int64_t gh = H / P, gw = W / P, K = ch * P * P;
#pragma omp parallel for schedule(static) if (B * H * W * ch > 65536)
  for (int64_t b = 0; b < B; ++b)
    for (int64_t py = 0; py < gh; ++py)
      for (int64_t px = 0; px < gw; ++px) {
        T* dst = cols + ((b * gh + py) * gw + px) * K;
        for (int64_t c = 0; c < ch; ++c)
          for (int64_t ky = 0; ky < P; ++ky)
            std::copy_n(x + ((b * ch + c) * H + py * P + ky) * W + px * P, P, dst + (c * P + ky) * P);
      }
}

// dcols: (B·N, ch·P·P) -> dx: (B,ch,H,W) written (patches do not overlap)
template <class T>
void unpatchify(const T* dcols, T* dx, int64_t B, int64_t ch, int64_t H, int64_t W, int64_t P) {
  const int64_t gh = H / P, gw = W / P, K = ch * P * P;
#pragma omp parallel for schedule(static) if (B * H * W * ch > 65536)
  for (int64_t b = 0; b < B; ++b)
    for (int64_t py = 0; py < gh; ++py)
      for (int64_t px = 0; px < gw; ++px) {
        const T* src = dcols + ((b * gh + py) * gw + px) * K;
        for (int64_t c = 0; c < ch; ++c)
          for (int64_t ky = 0; ky < P; ++ky)
            std::copy_n(src + (c * P + ky) * P, P, dx + ((b * ch + c) * H + py * P + ky) * W + px * P);
      }
}

template <class T>
void patchify(Device dev, const T* x, T* cols, int64_t B, int64_t ch, int64_t H, int64_t W, int64_t P) {
  if (dev == Device::CUDA) {
    if constexpr (detail::kCudaKernels<T>) cuda::patchify(x, cols, B, ch, H, W, P);
    else detail::cuda_branch_missing("patchify");
    return;
  }
  patchify(x, cols, B, ch, H, W, P);
}

template <class T>
void unpatchify(Device dev, const T* dcols, T* dx, int64_t B, int64_t ch, int64_t H, int64_t W,
                int64_t P) {
  if (dev == Device::CUDA) {
    if constexpr (detail::kCudaKernels<T>) cuda::unpatchify(dcols, dx, B, ch, H, W, P);
    else detail::cuda_branch_missing("unpatchify");
    return;
  }
  unpatchify(dcols, dx, B, ch, H, W, P);
}

}  // namespace ops

namespace detail {
template <class T>
struct PatchEmbedNode : Node<T> {
  Tensor<T> cols, w;  // cols: (B·N, ch·P·P)
  Shape x_shape;
  int64_t P = 0;
  bool has_bias = false;
  const char* name() const override { return "patch_embed"; }
  void backward(const Tensor<T>& dout) override {
    const int64_t C = w.shape()[0], K = cols.shape()[1], R = cols.shape()[0];
    const Device dev = cols.device();
    T* dw = this->needs_grad(1) ? this->grad_buffer(1).data() : nullptr;
    T* db = has_bias && this->needs_grad(2) ? this->grad_buffer(2).data() : nullptr;
    Tensor<T> dcols;
    if (this->needs_grad(0)) dcols = Tensor<T>::empty(cols.shape(), dev);
    ops::linear_backward(dev, dout.data(), cols.data(), w.data(), dcols.defined() ? dcols.data() : nullptr,
                         dw, db, R, K, C);
    if (dcols.defined()) {
      Tensor<T> dx = Tensor<T>::empty(x_shape, dev);
      ops::unpatchify(dev, dcols.data(), dx.data(), x_shape[0], x_shape[1], x_shape[2], x_shape[3], P);
      this->accumulate(0, dx);
    }
  }
};
}  // namespace detail

/// x (B,ch,H,W), weight (C,ch,P,P), bias (C) -> (B, (H/P)·(W/P), C), patches in row-major order.
template <class T>
Tensor<T> patch_embed(const Tensor<T>& x, const Tensor<T>& weight, const Tensor<T>& bias = {}) {
  const Device dev = ops::detail::same_device("patch_embed", x, weight, bias);
  VIT_CHECK(x.dim() == 4 && weight.dim() == 4 && weight.shape()[1] == x.shape()[1] &&
                weight.shape()[2] == weight.shape()[3],
            "patch_embed: x ", x.shape(), " (need B,ch,H,W) vs weight ", weight.shape(),
            " (need C,ch,P,P)");
  const int64_t B = x.shape()[0], ch = x.shape()[1], H = x.shape()[2], W = x.shape()[3];
  const int64_t C = weight.shape()[0], P = weight.shape()[2];
  VIT_CHECK(P > 0 && H % P == 0 && W % P == 0, "patch_embed: image ", H, "x", W,
            " is not divisible by patch size ", P);
  VIT_CHECK(!bias.defined() || bias.shape() == Shape{C}, "patch_embed: bias ",
            bias.defined() ? bias.shape() : Shape{}, " vs weight ", weight.shape());
  const int64_t N = (H / P) * (W / P), K = ch * P * P;
  Tensor<T> cols = Tensor<T>::empty({B * N, K}, dev);
  ops::patchify(dev, x.data(), cols.data(), B, ch, H, W, P);
  Tensor<T> out = Tensor<T>::empty({B, N, C}, dev);
  ops::linear_forward(dev, cols.data(), weight.data(), bias.defined() ? bias.data() : nullptr,
                      out.data(), B * N, K, C);
  if (autograd::needs_grad(x, weight, bias)) {
    auto node = std::make_shared<detail::PatchEmbedNode<T>>();
    node->cols = cols;
    node->w = weight.detach();
    node->x_shape = x.shape();
    node->P = P;
    node->has_bias = bias.defined();
    autograd::attach(out, node, {&x, &weight, &bias});
  }
  return out;
}

}  // namespace vit
