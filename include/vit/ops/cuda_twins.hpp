// The autograd ops of the ViT on CUDA tensors: each function here is what the
// op of the same name in ops/<op>.hpp calls when its inputs live on the GPU,
// with its node (saved tensors + backward) beside it. The kernels are
// vit::cuda's (include/vit/cuda/); GEMMs are cuBLAS. float32 only.
// Everything is queued on the library stream: nothing here waits for the GPU.
// The ops reach these only under `if constexpr (kCudaFloat<T>)`, true only when
// the program links vit::cuda (VIT_WITH_CUDA=1): elsewhere nothing here is
// instantiated or emitted, so CPU-only programs need no CUDA library.
#pragma once

#include <memory>
#include <vector>

#include "vit/autograd/engine.hpp"
#include "vit/core/tensor.hpp"
#include "vit/cuda/attention.hpp"
#include "vit/cuda/cross_entropy.hpp"
#include "vit/cuda/elementwise.hpp"
#include "vit/cuda/gelu.hpp"
#include "vit/cuda/gemm.hpp"
#include "vit/cuda/layernorm.hpp"
#include "vit/cuda/patchify.hpp"
#include "vit/cuda/runtime.hpp"
#include "vit/cuda/softmax.hpp"

namespace vit::cuda_twins {

using TensorF = Tensor<float>;
constexpr Device kGpu = Device::CUDA;

inline int64_t rows_of(const TensorF& t) {
  return t.shape().back() == 0 ? 0 : t.numel() / t.shape().back();
}

// ---- linear: out = x·Wᵀ + b -------------------------------------------------
struct LinearNode : Node<float> {
  TensorF x, w;
  bool has_bias = false;
  const char* name() const override { return "linear (cuda)"; }
  void backward(const TensorF& dout) override {
    const int64_t Cin = w.shape()[1], Cout = w.shape()[0], R = rows_of(x);
    if (needs_grad(0)) {  // dx = dout·W
      TensorF dx = TensorF::empty(x.shape(), kGpu);
      cuda::gemm(false, false, R, Cin, Cout, 1.f, dout.data(), Cout, w.data(), Cin, 0.f, dx.data(), Cin);
      accumulate(0, dx);
    }
    if (needs_grad(1))  // dW += doutᵀ·x
      cuda::gemm(true, false, Cout, Cin, R, 1.f, dout.data(), Cout, x.data(), Cin, 1.f,
                 grad_buffer(1).data(), Cin);
    if (has_bias && needs_grad(2)) cuda::column_sums_accumulate(dout.data(), grad_buffer(2).data(), R, Cout);
  }
};

inline TensorF linear(const TensorF& x, const TensorF& w, const TensorF& b) {
  const int64_t Cin = w.shape()[1], Cout = w.shape()[0], R = rows_of(x);
  Shape out_shape = x.shape();
  out_shape.back() = Cout;
  TensorF out = TensorF::empty(out_shape, kGpu);
  cuda::gemm(false, true, R, Cout, Cin, 1.f, x.data(), Cin, w.data(), Cin, 0.f, out.data(), Cout);
  if (b.defined()) cuda::add_row_broadcast(out.data(), b.data(), out.data(), R, Cout);
  if (autograd::needs_grad(x, w, b)) {
    auto node = std::make_shared<LinearNode>();
    node->x = x.detach();
    node->w = w.detach();
    node->has_bias = b.defined();
    autograd::attach(out, node, {&x, &w, &b});
  }
  return out;
}

// ---- patch_embed: patchify, then cols·Wᵀ + b ---------------------------------
struct PatchEmbedNode : Node<float> {
  TensorF cols, w;  // cols (B·N, ch·P·P), w viewed (C, ch·P·P)
  Shape x_shape;
  int64_t P = 1;
  bool has_bias = false;
  const char* name() const override { return "patch_embed (cuda)"; }
  void backward(const TensorF& dout) override {
    const int64_t R = cols.shape()[0], K = cols.shape()[1], C = w.shape()[0];
    if (needs_grad(1))
      cuda::gemm(true, false, C, K, R, 1.f, dout.data(), C, cols.data(), K, 1.f, grad_buffer(1).data(), K);
    if (has_bias && needs_grad(2)) cuda::column_sums_accumulate(dout.data(), grad_buffer(2).data(), R, C);
    if (needs_grad(0)) {
      TensorF dcols = TensorF::empty(cols.shape(), kGpu);
      cuda::gemm(false, false, R, K, C, 1.f, dout.data(), C, w.data(), K, 0.f, dcols.data(), K);
      TensorF dx = TensorF::empty(x_shape, kGpu);
      cuda::unpatchify(dcols.data(), dx.data(), x_shape[0], x_shape[1], x_shape[2], x_shape[3], P);
      accumulate(0, dx);
    }
  }
};

inline TensorF patch_embed(const TensorF& x, const TensorF& w, const TensorF& b) {
  const int64_t B = x.shape()[0], ch = x.shape()[1], H = x.shape()[2], W = x.shape()[3];
  const int64_t C = w.shape()[0], P = w.shape()[2], K = ch * P * P, N = (H / P) * (W / P);
  TensorF cols = TensorF::empty({B * N, K}, kGpu);
  cuda::patchify(x.data(), cols.data(), B, ch, H, W, P);
  TensorF out = TensorF::empty({B, N, C}, kGpu);
  cuda::gemm(false, true, B * N, C, K, 1.f, cols.data(), K, w.data(), K, 0.f, out.data(), C);
  if (b.defined()) cuda::add_row_broadcast(out.data(), b.data(), out.data(), B * N, C);
  if (autograd::needs_grad(x, w, b)) {
    auto node = std::make_shared<PatchEmbedNode>();
    node->cols = cols;
    node->w = w.detach();
    node->x_shape = x.shape();
    node->P = P;
    node->has_bias = b.defined();
    autograd::attach(out, node, {&x, &w, &b});
  }
  return out;
}

// ---- layer_norm ---------------------------------------------------------------
struct LayerNormNode : Node<float> {
  TensorF x, w, mean, rstd;
  const char* name() const override { return "layer_norm (cuda)"; }
  void backward(const TensorF& dout) override {
    const int64_t C = w.numel(), R = rows_of(x);
    TensorF dx;
    if (needs_grad(0)) dx = TensorF::empty(x.shape(), kGpu);
    float* dw = needs_grad(1) ? grad_buffer(1).data() : nullptr;
    float* db = needs_grad(2) ? grad_buffer(2).data() : nullptr;
    cuda::layer_norm_backward(dout.data(), x.data(), w.data(), mean.data(), rstd.data(),
                              dx.defined() ? dx.data() : nullptr, dw, db, R, C);
    if (dx.defined()) accumulate(0, dx);
  }
};

inline TensorF layer_norm(const TensorF& x, const TensorF& w, const TensorF& b, double eps) {
  const int64_t C = x.shape().back(), R = rows_of(x);
  TensorF out = TensorF::empty(x.shape(), kGpu);
  TensorF mean = TensorF::empty({R}, kGpu), rstd = TensorF::empty({R}, kGpu);
  cuda::layer_norm_forward(x.data(), nullptr, nullptr, w.data(), b.data(), out.data(), mean.data(),
                           rstd.data(), R, C, static_cast<float>(eps));
  if (autograd::needs_grad(x, w, b)) {
    auto node = std::make_shared<LayerNormNode>();
    node->x = x.detach();
    node->w = w.detach();
    node->mean = mean;
    node->rstd = rstd;
    autograd::attach(out, node, {&x, &w, &b});
  }
  return out;
}

// ---- gelu ---------------------------------------------------------------------
struct GeluNode : Node<float> {
  TensorF x;
  bool tanh_approx = false;
  const char* name() const override { return "gelu (cuda)"; }
  void backward(const TensorF& dout) override {
    TensorF dx = TensorF::empty(x.shape(), kGpu);
    cuda::bias_gelu_backward(dout.data(), x.data(), nullptr, dx.data(), nullptr, 1, x.numel(), tanh_approx);
    accumulate(0, dx);
  }
};

inline TensorF gelu(const TensorF& x, bool tanh_approx) {
  TensorF out = TensorF::empty(x.shape(), kGpu);
  cuda::bias_gelu_forward(x.data(), nullptr, out.data(), 1, x.numel(), tanh_approx);
  if (autograd::needs_grad(x)) {
    auto node = std::make_shared<GeluNode>();
    node->x = x.detach();
    node->tanh_approx = tanh_approx;
    autograd::attach(out, node, {&x});
  }
  return out;
}

// ---- softmax over the last dim -------------------------------------------------
struct SoftmaxNode : Node<float> {
  TensorF y;
  const char* name() const override { return "softmax (cuda)"; }
  void backward(const TensorF& dout) override {
    TensorF dx = TensorF::empty(y.shape(), kGpu);
    cuda::softmax_backward(y.data(), dout.data(), dx.data(), rows_of(y), y.shape().back());
    accumulate(0, dx);
  }
};

inline TensorF softmax(const TensorF& x) {
  TensorF out = TensorF::empty(x.shape(), kGpu);
  cuda::softmax_forward(x.data(), out.data(), rows_of(x), x.shape().back());
  if (autograd::needs_grad(x)) {
    auto node = std::make_shared<SoftmaxNode>();
    node->y = out.detach();
    autograd::attach(out, node, {&x});
  }
  return out;
}

// ---- fused attention: qkv (B,N,3C) -> context (B,N,C) ----------------------------
struct AttentionNode : Node<float> {
  TensorF qkv, out, lse;
  int64_t heads = 1;
  const char* name() const override { return "attention (cuda)"; }
  void backward(const TensorF& dout) override {
    const int64_t B = qkv.shape()[0], N = qkv.shape()[1], C = qkv.shape()[2] / 3;
    TensorF dqkv = TensorF::empty(qkv.shape(), kGpu);
    cuda::attention_backward(dout.data(), qkv.data(), out.data(), lse.data(), dqkv.data(), B, N, C, heads);
    accumulate(0, dqkv);
  }
};

inline TensorF attention(const TensorF& qkv, int64_t heads) {
  const int64_t B = qkv.shape()[0], N = qkv.shape()[1], C = qkv.shape()[2] / 3;
  TensorF out = TensorF::empty({B, N, C}, kGpu);
  TensorF lse = TensorF::empty({B, heads, N}, kGpu);
  cuda::attention_forward(qkv.data(), out.data(), lse.data(), B, N, C, heads);
  if (autograd::needs_grad(qkv)) {
    auto node = std::make_shared<AttentionNode>();
    node->qkv = qkv.detach();
    node->out = out.detach();
    node->lse = lse;
    node->heads = heads;
    autograd::attach(out, node, {&qkv});
  }
  return out;
}

// ---- cross-entropy against a target distribution (B,K) on the GPU -----------------
struct CrossEntropyNode : Node<float> {
  TensorF probs, target;
  const char* name() const override { return "cross_entropy (cuda)"; }
  void backward(const TensorF& dloss) override {
    TensorF d = TensorF::empty(probs.shape(), kGpu);
    cuda::cross_entropy_backward(dloss.data(), probs.data(), nullptr, target.data(), 0.f, d.data(),
                                 probs.shape()[0], probs.shape()[1]);
    accumulate(0, d);
  }
};

inline TensorF cross_entropy(const TensorF& logits, const TensorF& target) {
  const int64_t B = logits.shape()[0], K = logits.shape()[1];
  TensorF probs = TensorF::empty({B, K}, kGpu);
  TensorF loss = TensorF::empty({}, kGpu);
  cuda::cross_entropy_forward(logits.data(), nullptr, target.data(), 0.f, probs.data(), loss.data(), B, K);
  if (autograd::needs_grad(logits)) {
    auto node = std::make_shared<CrossEntropyNode>();
    node->probs = probs;
    node->target = target.detach();
    autograd::attach(loss, node, {&logits});
  }
  return loss;
}

// ---- add with the two broadcasts the ViT uses -------------------------------------
// Same shape (residuals), or b repeating over leading rows (bias, pos_embed
// over the batch: b's shape is a suffix of a's after leading 1s).
struct AddNode : Node<float> {
  Shape a_shape, b_shape;
  const char* name() const override { return "add (cuda)"; }
  static TensorF reduce_rows(const TensorF& g, const Shape& to) {
    if (g.shape() == to) return g;
    const int64_t inner = vit::numel(to), rows = g.numel() / std::max<int64_t>(inner, 1);
    TensorF r = TensorF::zeros(to, kGpu);
    cuda::column_sums_accumulate(g.data(), r.data(), rows, inner);
    return r;
  }
  void backward(const TensorF& dout) override {
    if (needs_grad(0)) accumulate(0, reduce_rows(dout, a_shape));
    if (needs_grad(1)) accumulate(1, reduce_rows(dout, b_shape));
  }
};

/// Whether `small` (after dropping leading 1s) is a suffix of `big`: then
/// `small` repeats over big's leading rows.
inline bool is_row_broadcast(const Shape& small, const Shape& big) {
  size_t k = 0;
  while (k < small.size() && small[k] == 1) ++k;
  const size_t n = small.size() - k;
  return n <= big.size() && std::equal(small.begin() + k, small.end(), big.end() - n) &&
         small.size() <= big.size();
}

inline TensorF add(const TensorF& a, const TensorF& b) {
  TensorF out;
  if (a.shape() == b.shape()) {
    out = TensorF::empty(a.shape(), kGpu);
    cuda::add(a.data(), b.data(), out.data(), a.numel());
  } else {
    const bool b_small = is_row_broadcast(b.shape(), a.shape());
    VIT_CHECK(b_small || is_row_broadcast(a.shape(), b.shape()), "add: broadcasting ", a.shape(),
              " with ", b.shape(), " on cuda: only equal shapes or a tensor repeated over leading "
              "rows are supported there");
    const TensorF& big = b_small ? a : b;
    const TensorF& small = b_small ? b : a;
    out = TensorF::empty(big.shape(), kGpu);
    const int64_t inner = small.numel();
    cuda::add_row_broadcast(big.data(), small.data(), out.data(), big.numel() / std::max<int64_t>(inner, 1), inner);
  }
  if (autograd::needs_grad(a, b)) {
    auto node = std::make_shared<AddNode>();
    node->a_shape = a.shape();
    node->b_shape = b.shape();
    autograd::attach(out, node, {&a, &b});
  }
  return out;
}

// ---- expand (repeat over leading rows), concat, select ------------------------------
struct ExpandNode : Node<float> {
  const char* name() const override { return "expand (cuda)"; }
  void backward(const TensorF& dout) override { accumulate(0, AddNode::reduce_rows(dout, input_shape(0))); }
};

inline TensorF expand(const TensorF& x, const Shape& shape) {
  VIT_CHECK(is_row_broadcast(x.shape(), shape), "expand: ", x.shape(), " to ", shape,
            " on cuda: only repeating over leading dims is supported there");
  TensorF out = TensorF::zeros(shape, kGpu);
  const int64_t inner = x.numel();
  cuda::add_row_broadcast(out.data(), x.data(), out.data(), out.numel() / std::max<int64_t>(inner, 1), inner);
  if (autograd::needs_grad(x)) autograd::attach(out, std::make_shared<ExpandNode>(), {&x});
  return out;
}

/// Copies the `rows` chunks of `chunk` floats that make up a slice of a
/// (outer, ·) layout: row o of src at o·src_stride, of dst at o·dst_stride.
inline void copy_chunks(float* dst, int64_t dst_stride, const float* src, int64_t src_stride,
                        int64_t chunk, int64_t rows) {
  cuda::copy_rows_on_device(dst, sizeof(float) * dst_stride, src, sizeof(float) * src_stride,
                            sizeof(float) * chunk, rows);
}

struct ConcatNode : Node<float> {
  int d = 0;
  std::vector<int64_t> sizes;
  const char* name() const override { return "concat (cuda)"; }
  void backward(const TensorF& dout) override {
    const Shape& s = dout.shape();
    const int64_t outer = vit::numel(s, 0, d), inner = vit::numel(s, d + 1, s.size());
    int64_t start = 0;
    for (size_t i = 0; i < sizes.size(); ++i) {
      if (needs_grad(i)) {
        TensorF g = TensorF::empty(input_shape(i), kGpu);
        copy_chunks(g.data(), sizes[i] * inner, dout.data() + start * inner, s[d] * inner,
                    sizes[i] * inner, outer);
        accumulate(i, g);
      }
      start += sizes[i];
    }
  }
};

inline TensorF concat(const std::vector<TensorF>& xs, int d, const Shape& out_shape) {
  TensorF out = TensorF::empty(out_shape, kGpu);
  const int64_t outer = vit::numel(out_shape, 0, d), inner = vit::numel(out_shape, d + 1, out_shape.size());
  int64_t start = 0;
  bool any = false;
  for (const auto& x : xs) {
    copy_chunks(out.data() + start * inner, out_shape[d] * inner, x.data(), x.shape()[d] * inner,
                x.shape()[d] * inner, outer);
    start += x.shape()[d];
    any = any || autograd::needs_grad(x);
  }
  if (any) {
    auto node = std::make_shared<ConcatNode>();
    node->d = d;
    std::vector<const TensorF*> inputs;
    for (const auto& x : xs) {
      node->sizes.push_back(x.shape()[d]);
      inputs.push_back(&x);
    }
    autograd::attach_range(out, node, inputs);
  }
  return out;
}

struct SelectNode : Node<float> {
  int d = 0;
  int64_t index = 0;
  const char* name() const override { return "select (cuda)"; }
  void backward(const TensorF& dout) override {
    const Shape& s = input_shape(0);
    const int64_t outer = vit::numel(s, 0, d), inner = vit::numel(s, d + 1, s.size());
    TensorF g = TensorF::zeros(s, kGpu);
    copy_chunks(g.data() + index * inner, s[d] * inner, dout.data(), inner, inner, outer);
    accumulate(0, g);
  }
};

inline TensorF select(const TensorF& x, int d, int64_t index, const Shape& out_shape) {
  const Shape& s = x.shape();
  const int64_t outer = vit::numel(s, 0, d), inner = vit::numel(s, d + 1, s.size());
  TensorF out = TensorF::empty(out_shape, kGpu);
  copy_chunks(out.data(), inner, x.data() + index * inner, s[d] * inner, inner, outer);
  if (autograd::needs_grad(x)) {
    auto node = std::make_shared<SelectNode>();
    node->d = d;
    node->index = index;
    autograd::attach(out, node, {&x});
  }
  return out;
}

}  // namespace vit::cuda_twins
