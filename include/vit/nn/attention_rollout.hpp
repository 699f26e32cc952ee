// Attention rollout (Abnar & Zuidema, 2020): how much each image patch flows
// into the cls token through all layers. Per layer, the head-averaged attention
// A plus the residual identity, rows renormalised: Â = (A + I) / 2; the rollout
// is Â_L ··· Â_1, and row 0 (the cls token) over the patch columns is the map.
// The per-head probabilities come from attention_probabilities (attention_maps.hpp).
#pragma once

#include <cmath>
#include <vector>

#include "vit/nn/attention_maps.hpp"

namespace vit::nn {

template <class T>
struct AttentionRollout {
  Tensor<T> logits;         // (1,K) on the CPU, model.forward(image) in eval mode
  int64_t grid = 0;         // patches per side
  std::vector<double> map;  // grid·grid, row-major, scaled to [0,1]
};

/// Rollout map and logits for one image (1,ch,H,W). Switches the model to eval.
template <class T>
AttentionRollout<T> attention_rollout(VisionTransformer<T>& model, const Tensor<T>& image) {
  VIT_CHECK(image.dim() == 4 && image.shape()[0] == 1, "attention_rollout: image ", image.shape(),
            " (need one image, 1,ch,H,W)");
  model.eval();
  const AttentionProbabilities<T> probs = attention_probabilities(model, image);
  const int64_t N = model.config.image_size / model.config.patch_size;
  const int64_t tokens = N * N + 1;
  std::vector<double> roll(static_cast<size_t>(tokens * tokens), 0.0), A(roll.size()), next(roll.size());
  for (int64_t i = 0; i < tokens; ++i) roll[i * tokens + i] = 1;
  for (const Tensor<T>& P : probs.per_block) {  // (1,H,tokens,tokens)
    const int64_t H = P.shape()[1];
    const T* p = P.data();
    for (int64_t i = 0; i < tokens * tokens; ++i) {  // Â = (mean_h P + I)/2, rows sum to 1 already
      double s = 0;
      for (int64_t h = 0; h < H; ++h) s += p[h * tokens * tokens + i];
      A[i] = 0.5 * s / H;
    }
    for (int64_t i = 0; i < tokens; ++i) A[i * tokens + i] += 0.5;
    for (int64_t i = 0; i < tokens; ++i)  // roll = Â · roll
      for (int64_t j = 0; j < tokens; ++j) {
        double s = 0;
        for (int64_t k = 0; k < tokens; ++k) s += A[i * tokens + k] * roll[k * tokens + j];
        next[i * tokens + j] = s;
      }
    roll.swap(next);
  }
  AttentionRollout<T> out;
  out.logits = probs.logits;
  out.grid = N;
  out.map.assign(roll.begin() + 1, roll.begin() + tokens);  // row 0 = cls, patch columns
  double lo = INFINITY, hi = -INFINITY;
  for (double v : out.map) lo = std::min(lo, v), hi = std::max(hi, v);
  for (double& v : out.map) v = hi > lo ? (v - lo) / (hi - lo) : 0.0;
  return out;
}

}  // namespace vit::nn
