// The ViT's building blocks, each timm's module of the same name:
// PatchEmbedding (proj conv as one op), Attention (qkv Linear -> fused
// attention with attn_drop on its probabilities -> proj -> proj_drop), Mlp (fc1 -> GELU -> fc2, dropout after each), and the
// pre-norm Block: x + drop_path(attn(norm1(x))), then x + drop_path(mlp(norm2(x))).
#pragma once

#include <cmath>

#include "vit/nn/linear.hpp"
#include "vit/ops/attention.hpp"
#include "vit/ops/dropout.hpp"
#include "vit/ops/elementwise.hpp"
#include "vit/ops/gelu.hpp"
#include "vit/ops/patch_embed.hpp"

namespace vit::nn {

template <class T>
class PatchEmbedding : public Module<T> {
 public:
  PatchEmbedding(int64_t image, int64_t patch, int64_t in_chans, int64_t dim, Generator& init)
      : image(image), patch(patch), in_chans(in_chans) {
    VIT_CHECK(patch > 0 && image % patch == 0, "PatchEmbedding: image ", image,
              " is not divisible by patch ", patch);
    // nn.Conv2d's default init (timm leaves the conv to it): U(±1/√fan_in).
    const double bound = 1.0 / std::sqrt(static_cast<double>(in_chans * patch * patch));
    weight = this->register_parameter(
        "proj.weight", Tensor<T>::uniform({dim, in_chans, patch, patch}, -bound, bound, init));
    bias = this->register_parameter("proj.bias", Tensor<T>::uniform({dim}, -bound, bound, init));
  }
  int64_t num_patches() const { return (image / patch) * (image / patch); }
  // x: (B,ch,H,W) -> (B,N,C)
  Tensor<T> forward(const Tensor<T>& x) const {
    VIT_CHECK(x.dim() == 4 && x.shape()[1] == in_chans && x.shape()[2] == image &&
                  x.shape()[3] == image,
              "PatchEmbedding: input ", x.shape(), " but the model expects (B,", in_chans, ",",
              image, ",", image, ")");
    return patch_embed(x, weight, bias);
  }

  Tensor<T> weight, bias;
  int64_t image, patch, in_chans;
};

template <class T>
class Attention : public Module<T> {
 public:
  Attention(int64_t dim, int64_t heads, Generator& init, bool qkv_bias = true, double proj_drop = 0,
            double attn_drop = 0)
      : qkv(dim, 3 * dim, init, qkv_bias),
        proj(dim, dim, init),
        heads(heads),
        proj_drop(proj_drop),
        attn_drop(attn_drop) {
    VIT_CHECK(heads > 0 && dim % heads == 0, "Attention: dim ", dim, " is not divisible by ",
              heads, " heads");
    VIT_CHECK(attn_drop >= 0 && attn_drop < 1, "Attention: attn_drop must be in [0, 1), got ",
              attn_drop);
    this->register_module("qkv", qkv);
    this->register_module("proj", proj);
  }
  // x: (B,N,C) -> (B,N,C)
  Tensor<T> forward(const Tensor<T>& x) const {
    const bool tr = this->is_training();
    // attn_drop draws before proj_drop (timm's order); at 0 it draws nothing.
    Tensor<T> ctx = attention(qkv.forward(x), heads, attn_drop, tr, this->generator());
    return dropout(proj.forward(ctx), proj_drop, tr, this->generator());
  }

  Linear<T> qkv, proj;
  int64_t heads;
  double proj_drop;
  double attn_drop;  // timm's attn_drop: dropout on the attention probabilities
};

template <class T>
class Mlp : public Module<T> {
 public:
  Mlp(int64_t dim, int64_t hidden, Generator& init, double drop = 0,
      GeluApprox approx = GeluApprox::None)
      : fc1(dim, hidden, init), fc2(hidden, dim, init), drop(drop), approx(approx) {
    this->register_module("fc1", fc1);
    this->register_module("fc2", fc2);
  }
  Tensor<T> forward(const Tensor<T>& x) const {
    const bool tr = this->is_training();
    // On the GPU fc1's bias rides in the GELU kernel (and its gradient in the
    // GELU backward's pass): one pass over the (B·N, hidden) activations fewer.
    // The CPU GEMM adds the bias in its own epilogue already, so it keeps linear + gelu.
    const bool fuse = x.device() == Device::CUDA && fc1.bias.defined();
    Tensor<T> a = fuse ? bias_gelu(linear(x, fc1.weight), fc1.bias, approx) : gelu(fc1.forward(x), approx);
    Tensor<T> h = dropout(a, drop, tr, this->generator());
    return dropout(fc2.forward(h), drop, tr, this->generator());
  }

  Linear<T> fc1, fc2;
  double drop;
  GeluApprox approx;
};

template <class T>
class Block : public Module<T> {
 public:
  Block(int64_t dim, int64_t heads, int64_t mlp_hidden, Generator& init, double drop = 0,
        double drop_path = 0, double eps = 1e-6, GeluApprox approx = GeluApprox::None,
        bool qkv_bias = true, double attn_drop = 0)
      : norm1(dim, eps),
        attn(dim, heads, init, qkv_bias, drop, attn_drop),
        norm2(dim, eps),
        mlp(dim, mlp_hidden, init, drop, approx),
        drop_path_rate(drop_path) {
    this->register_module("norm1", norm1);
    this->register_module("attn", attn);
    this->register_module("norm2", norm2);
    this->register_module("mlp", mlp);
  }
  Tensor<T> forward(const Tensor<T>& x) const {
    const bool tr = this->is_training();
    Generator& g = this->generator();
    Tensor<T> h = add(x, drop_path(attn.forward(norm1.forward(x)), drop_path_rate, tr, g));
    return add(h, drop_path(mlp.forward(norm2.forward(h)), drop_path_rate, tr, g));
  }

  LayerNorm<T> norm1;
  Attention<T> attn;
  LayerNorm<T> norm2;
  Mlp<T> mlp;
  double drop_path_rate;
};

}  // namespace vit::nn
