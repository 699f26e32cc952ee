// What a ViT costs, from its config alone (no weights allocated): parameter
// count, forward FLOPs per image (a multiply-add counts 2), and the activation
// memory a training step keeps for backward at a batch size, counted from the
// tensors this library's ops save (checked against the allocator in the tests).
#pragma once

#include <cstdint>

#include "vit/nn/presets.hpp"

namespace vit::nn {

struct ModelStats {
  int64_t parameters = 0;
  double forward_flops = 0;     // per image
  double train_flops = 0;       // per image: forward + backward (≈ 3× forward)
  double activation_bytes = 0;  // per batch, saved for backward
  int64_t tokens = 0;           // patches + cls
};

inline ModelStats model_stats(const VitConfig& c, int64_t batch, int64_t bytes_per_element = 4) {
  validate(c);
  const double Np = static_cast<double>((c.image_size / c.patch_size) * (c.image_size / c.patch_size));
  const double N = Np + 1, C = c.dim, M = c.mlp_dim, H = c.heads, L = c.depth, K = c.num_classes;
  const double patch_in = static_cast<double>(c.in_chans * c.patch_size * c.patch_size);
  const double R = c.representation_size, head_in = R > 0 ? R : C;
  ModelStats s;
  s.tokens = static_cast<int64_t>(N);
  const double block_params = 4 * C /*2 norms*/ + 3 * C * C + 3 * C /*qkv*/ + C * C + C /*proj*/ +
                              C * M + M + M * C + C /*mlp*/;
  s.parameters = static_cast<int64_t>(patch_in * C + C /*patch*/ + C /*cls*/ + N * C /*pos*/ +
                                      L * block_params + 2 * C /*norm*/ + (R > 0 ? C * R + R : 0) +
                                      head_in * K + K);
  const double block_flops = 2 * N * C * 3 * C + 2 * N * N * C * 2 + 2 * N * C * C + 2 * N * C * M * 2;
  s.forward_flops = 2 * Np * patch_in * C + L * block_flops + (R > 0 ? 2 * C * R : 0) + 2 * head_in * K;
  s.train_flops = 3 * s.forward_flops;
  // Held per image after the forward (elements): patch columns and the three
  // embedding-stage token tensors; per block the LayerNorm inputs and stats, the
  // Linear inputs (norm outputs, context, GELU in/out), attention's qkv and
  // probabilities, the two branch outputs; the final norm's input; dropout masks.
  const double drop = c.drop_rate > 0 ? 1 : 0;
  const double per_block = 2 * N * C /*norm inputs*/ + 4 * N /*mean,rstd*/ + 2 * N * C /*norm outs*/ +
                           3 * N * C + H * N * N /*qkv, probs*/ + N * C /*context*/ + 2 * N * M /*gelu*/ +
                           2 * N * C /*branch outputs*/ +
                           drop * (4 * N * C + 2 * N * M) /*masks, outputs*/;
  const double per_image = Np * patch_in + 3 * N * C + L * per_block + N * C + 2 * N /*final norm*/ + drop * 2 * N * C +
                           C /*cls row*/ + (R > 0 ? 2 * R : 0) + K;
  s.activation_bytes = per_image * static_cast<double>(batch) * static_cast<double>(bytes_per_element);
  return s;
}

}  // namespace vit::nn
