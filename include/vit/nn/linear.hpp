// nn::Linear (weight [out,in], bias [out]) and nn::LayerNorm, initialised as
// timm initialises a ViT: trunc-normal(0.02) weights, zero biases, norm 1/0.
#pragma once

#include "vit/nn/module.hpp"
#include "vit/ops/layernorm.hpp"
#include "vit/ops/linear.hpp"

namespace vit::nn {

template <class T>
class Linear : public Module<T> {
 public:
  Linear(int64_t in, int64_t out, Generator& init, bool bias = true) {
    VIT_CHECK(in > 0 && out > 0, "Linear: sizes must be positive, got in=", in, " out=", out);
    weight = this->register_parameter("weight", trunc_normal_init<T>({out, in}, init));
    if (bias) this->bias = this->register_parameter("bias", Tensor<T>::zeros({out}));
  }
  Tensor<T> forward(const Tensor<T>& x) const { return linear(x, weight, bias); }

  Tensor<T> weight, bias;
};

template <class T>
class LayerNorm : public Module<T> {
 public:
  explicit LayerNorm(int64_t dim, double eps = 1e-6) : eps(eps) {
    VIT_CHECK(dim > 0, "LayerNorm: dim must be positive, got ", dim);
    weight = this->register_parameter("weight", Tensor<T>::ones({dim}));
    bias = this->register_parameter("bias", Tensor<T>::zeros({dim}));
  }
  Tensor<T> forward(const Tensor<T>& x) const { return layer_norm(x, weight, bias, eps); }

  Tensor<T> weight, bias;
  double eps;
};

}  // namespace vit::nn
