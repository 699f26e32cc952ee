// Attention rollout (Abnar & Zuidema, 2020): how much each image patch flows
// into the cls token through all layers. Per layer, the head-averaged attention
// A plus the residual identity, rows renormalised: Â = (A + I) / 2; the rollout
// is Â_L ··· Â_1, and row 0 (the cls token) over the patch columns is the map.
// Inference only: runs the blocks one by one (eval mode, no graph) so it can
// read each layer's attention probabilities, which the fused training op keeps
// private.
#pragma once

#include <cmath>
#include <vector>

#include "vit/nn/vision_transformer.hpp"

namespace vit::nn {

template <class T>
struct AttentionRollout {
  Tensor<T> logits;         // (1,K), the same as model.forward(image) in eval mode
  int64_t grid = 0;         // patches per side
  std::vector<double> map;  // grid·grid, row-major, scaled to [0,1]
};

namespace detail {
// Head-averaged softmax(q·kᵀ/√D) of one image's qkv (N,3C), into A (N,N).
template <class T>
void mean_attention(const T* qkv, int64_t N, int64_t C, int64_t H, std::vector<double>& A) {
  const int64_t D = C / H;
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  A.assign(static_cast<size_t>(N * N), 0.0);
  std::vector<double> row(static_cast<size_t>(N));
  for (int64_t h = 0; h < H; ++h)
    for (int64_t i = 0; i < N; ++i) {
      double mx = -INFINITY;
      for (int64_t j = 0; j < N; ++j) {
        double s = 0;
        for (int64_t d = 0; d < D; ++d) s += double(qkv[i * 3 * C + h * D + d]) * qkv[j * 3 * C + C + h * D + d];
        row[j] = s * scale;
        mx = std::max(mx, row[j]);
      }
      double z = 0;
      for (int64_t j = 0; j < N; ++j) z += (row[j] = std::exp(row[j] - mx));
      for (int64_t j = 0; j < N; ++j) A[i * N + j] += row[j] / (z * H);
    }
}
}  // namespace detail

/// Rollout map and logits for one image (1,ch,H,W). Switches the model to eval.
template <class T>
AttentionRollout<T> attention_rollout(VisionTransformer<T>& model, const Tensor<T>& image) {
  VIT_CHECK(image.dim() == 4 && image.shape()[0] == 1, "attention_rollout: image ", image.shape(),
            " (need one image, 1,ch,H,W)");
  model.eval();
  NoGradGuard no_grad;
  const auto& cfg = model.config;
  const int64_t C = cfg.dim;
  Tensor<T> t = model.patch_embed.forward(image);
  t = add(concat<T>({model.cls_token, t}, 1), model.pos_embed);
  const int64_t N = t.shape()[1];
  std::vector<double> roll(static_cast<size_t>(N * N), 0.0), A, next(static_cast<size_t>(N * N));
  for (int64_t i = 0; i < N; ++i) roll[i * N + i] = 1;
  for (const auto& blk : model.blocks) {
    const Tensor<T> qkv = blk->attn.qkv.forward(blk->norm1.forward(t));
    // The rollout itself is small host arithmetic: one image's qkv comes over.
    detail::mean_attention(qkv.to(Device::CPU).data(), N, C, blk->attn.heads, A);
    for (int64_t i = 0; i < N; ++i) {  // Â = (A + I)/2, rows sum to 1 already
      for (int64_t j = 0; j < N; ++j) A[i * N + j] *= 0.5;
      A[i * N + i] += 0.5;
    }
    for (int64_t i = 0; i < N; ++i)  // roll = Â · roll
      for (int64_t j = 0; j < N; ++j) {
        double s = 0;
        for (int64_t k = 0; k < N; ++k) s += A[i * N + k] * roll[k * N + j];
        next[i * N + j] = s;
      }
    roll.swap(next);
    t = add(t, blk->attn.proj.forward(attention(qkv, blk->attn.heads)));
    t = add(t, blk->mlp.forward(blk->norm2.forward(t)));
  }
  AttentionRollout<T> out;
  Tensor<T> cls = select(model.norm.forward(t), 1, 0);
  if (model.pre_logits) cls = tanh(model.pre_logits->forward(cls));
  out.logits = model.head->forward(cls);
  out.grid = cfg.image_size / cfg.patch_size;
  out.map.assign(roll.begin() + 1, roll.begin() + N);  // row 0 = cls, patch columns
  double lo = INFINITY, hi = -INFINITY;
  for (double v : out.map) lo = std::min(lo, v), hi = std::max(hi, v);
  for (double& v : out.map) v = hi > lo ? (v - lo) / (hi - lo) : 0.0;
  return out;
}

}  // namespace vit::nn
