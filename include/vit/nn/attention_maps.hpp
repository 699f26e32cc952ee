// Every block's attention probabilities, per head (timm/HF output_attentions):
// P = softmax(q·kᵀ/√D) for each image, head and block, beside the logits.
// Inference only: the blocks run one by one with no graph and no dropout or
// drop-path whatever the model's mode (the probabilities are eval-mode ones),
// through the same ops as forward, so the logits are model.forward's in eval.
// The fused attention op keeps P private (the CUDA kernels never store it), so
// each block's qkv comes to the host and P is recomputed there in double:
// the op's own arithmetic, to rounding.
#pragma once

#include <algorithm>
#include <cmath>
#include <vector>

#include "vit/nn/vision_transformer.hpp"

namespace vit::nn {

template <class T>
struct AttentionProbabilities {
  Tensor<T> logits;                  // (B, K), on the CPU
  std::vector<Tensor<T>> per_block;  // one per block: (B, H, N, N) softmax probabilities, on the CPU
};

namespace detail {
/// P (B,H,N,N) from a host qkv (B,N,3C) in timm's layout: head h of q is
/// columns [h·D, h·D+D) of the first third, of k the same of the second.
template <class T>
Tensor<T> attention_probs_from_qkv(const Tensor<T>& qkv, int64_t H) {
  const int64_t B = qkv.shape()[0], N = qkv.shape()[1], C = qkv.shape()[2] / 3, D = C / H;
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  Tensor<T> P = Tensor<T>::empty({B, H, N, N});
  const T* src = qkv.data();
  T* dst = P.data();
#pragma omp parallel for schedule(static)
  for (int64_t bh = 0; bh < B * H; ++bh) {
    const int64_t b = bh / H, h = bh % H;
    const T* base = src + b * N * 3 * C;
    std::vector<double> row(static_cast<size_t>(N));
    for (int64_t i = 0; i < N; ++i) {
      const T* q = base + i * 3 * C + h * D;
      double mx = -INFINITY;
      for (int64_t j = 0; j < N; ++j) {
        const T* k = base + j * 3 * C + C + h * D;
        double s = 0;
        for (int64_t d = 0; d < D; ++d) s += static_cast<double>(q[d]) * static_cast<double>(k[d]);
        row[j] = s * scale;
        mx = std::max(mx, row[j]);
      }
      double z = 0;
      for (int64_t j = 0; j < N; ++j) z += (row[j] = std::exp(row[j] - mx));
      T* out = dst + (bh * N + i) * N;
      for (int64_t j = 0; j < N; ++j) out[j] = static_cast<T>(row[j] / z);
    }
  }
  return P;
}
}  // namespace detail

/// Logits and each block's (B,H,N,N) attention probabilities for a batch
/// x (B,ch,H,W) on the model's device; the results are host tensors.
template <class T>
AttentionProbabilities<T> attention_probabilities(const VisionTransformer<T>& model,
                                                  const Tensor<T>& x) {
  VIT_CHECK(x.dim() == 4 && x.shape()[0] > 0, "attention_probabilities: input ", x.shape(),
            " (need a batch B,ch,H,W)");
  VIT_CHECK(x.device() == model.device(), "attention_probabilities: input on ", x.device(),
            " but the model on ", model.device());
  NoGradGuard no_grad;
  const int64_t C = model.config.dim;
  Tensor<T> t = model.patch_embed.forward(x);
  const int64_t B = t.shape()[0];
  t = add(concat<T>({expand(model.cls_token, {B, 1, C}), t}, 1), model.pos_embed);
  AttentionProbabilities<T> out;
  for (const auto& blk : model.blocks) {
    const Tensor<T> qkv = blk->attn.qkv.forward(blk->norm1.forward(t));
    out.per_block.push_back(detail::attention_probs_from_qkv(qkv.to(Device::CPU), blk->attn.heads));
    t = add(t, blk->attn.proj.forward(attention(qkv, blk->attn.heads)));
    const Mlp<T>& mlp = blk->mlp;
    t = add(t, mlp.fc2.forward(gelu(mlp.fc1.forward(blk->norm2.forward(t)), mlp.approx)));
  }
  Tensor<T> cls = select(model.norm.forward(t), 1, 0);
  if (model.pre_logits) cls = tanh(model.pre_logits->forward(cls));
  out.logits = model.head->forward(cls).to(Device::CPU);
  return out;
}

}  // namespace vit::nn
